"""First start: the default account, its root user and root credentials."""

from __future__ import annotations

import string

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.auth.principal import secret_label
from sealbox.clock import Clock
from sealbox.iam.model import NewCredentials
from sealbox.keystore.base import KeyStore
from sealbox.storage import iam_repo
from sealbox.storage.db import Database

DEFAULT_ACCOUNT_NAME = "default"
# The row that holds the account root's credentials. Not a valid IAM user name, so no
# CreateUser can collide with it; IAM's user operations never show it.
ROOT_USER_NAME = "<root>"
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def new_access_key_id() -> str:
    return "AKIA" + crypto.random_token(_KEY_ALPHABET, 16)


def new_secret_access_key() -> str:
    return crypto.random_token(_SECRET_ALPHABET, 40)


def bootstrap(
    db: Database,
    keystore: KeyStore,
    clock: Clock,
    account_id: str | None,
    root_access_key_id: str | None,
    root_secret: str | None,
) -> NewCredentials | None:
    """Create the default account on an empty database.

    Returns newly generated credentials (to be shown once), or None when nothing was
    generated. Root credentials given through the environment are added if missing,
    and replace the stored secret of the same key id if it differs.
    """

    def work(conn: Connection) -> NewCredentials | None:
        existing = iam_repo.default_account_id(conn)
        now = clock.now()
        if existing is None:
            account = account_id or crypto.random_digits(12)
            insert_account_with_root(conn, account, DEFAULT_ACCOUNT_NAME, clock)
        else:
            account = existing
        if root_access_key_id and root_secret:
            row = iam_repo.get_access_key(conn, root_access_key_id)
            wrapped = keystore.wrap(root_secret.encode(), secret_label(root_access_key_id))
            if row is None:
                iam_repo.insert_access_key(
                    conn, root_access_key_id, account, ROOT_USER_NAME, wrapped, now
                )
            elif keystore.unwrap(row.wrapped_secret, secret_label(row.access_key_id)) != (
                root_secret.encode()
            ):
                iam_repo.replace_secret(conn, root_access_key_id, wrapped)
            return None
        if existing is not None:
            return None
        return new_root_key(conn, keystore, account, clock)

    return db.write(work)


def insert_account_with_root(conn: Connection, account: str, name: str, clock: Clock) -> None:
    now = clock.now()
    iam_repo.insert_account(conn, account, name, now)
    iam_repo.insert_user(
        conn,
        account,
        ROOT_USER_NAME,
        "R" + crypto.random_token(_KEY_ALPHABET, 20),
        arns.account_root_arn(account),
        True,
        now,
    )


def new_root_key(
    conn: Connection, keystore: KeyStore, account: str, clock: Clock
) -> NewCredentials:
    """A fresh root access key; its secret is returned once and stored only wrapped."""
    key_id, secret = new_access_key_id(), new_secret_access_key()
    wrapped = keystore.wrap(secret.encode(), secret_label(key_id))
    iam_repo.insert_access_key(conn, key_id, account, ROOT_USER_NAME, wrapped, clock.now())
    return NewCredentials(account, key_id, secret)
