"""Accounts: several tenants in one Sealbox, each with its own root credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from sealbox import crypto
from sealbox.clock import Clock
from sealbox.iam.bootstrap import insert_account_with_root, new_root_key
from sealbox.iam.model import NewCredentials
from sealbox.keystore.base import KeyStore
from sealbox.storage import account_repo
from sealbox.storage.db import Database

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AccountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: str
    name: str
    created_at: datetime


def create_account(
    db: Database, keystore: KeyStore, clock: Clock, name: str, account_id: str | None = None
) -> NewCredentials:
    if not _NAME.fullmatch(name):
        raise AccountError("account names are 1-64 of letters, digits, '.', '_' and '-'")
    if account_id is not None and not re.fullmatch(r"\d{12}", account_id):
        raise AccountError("account ids are 12 digits")

    def work(conn: Connection) -> NewCredentials:
        if account_repo.account_by_name(conn, name) is not None:
            raise AccountError(f"an account named {name!r} already exists")
        account = account_id or crypto.random_digits(12)
        if account_repo.account_exists(conn, account):
            raise AccountError(f"account {account} already exists")
        insert_account_with_root(conn, account, name, clock)
        return new_root_key(conn, keystore, account, clock)

    return db.write(work)


def list_accounts(db: Database) -> list[AccountInfo]:
    with db.read() as conn:
        return [AccountInfo(*row) for row in account_repo.list_accounts(conn)]
