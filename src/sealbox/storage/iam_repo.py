"""Accounts, users and access keys ⇄ rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from sealbox.storage.tables import access_keys, accounts, iam_users


@dataclass(frozen=True, slots=True)
class AccessKeyRow:
    access_key_id: str
    account_id: str
    user_name: str
    user_id: str
    user_arn: str
    is_root: bool
    wrapped_secret: bytes
    status: str


def count_accounts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())


def default_account_id(conn: Connection) -> str | None:
    row = conn.execute(
        select(accounts.c.account_id).order_by(accounts.c.created_at).limit(1)
    ).first()
    return None if row is None else str(row.account_id)


def insert_account(conn: Connection, account_id: str, name: str, now: datetime) -> None:
    conn.execute(accounts.insert().values(account_id=account_id, name=name, created_at=now))


def insert_user(
    conn: Connection,
    account_id: str,
    user_name: str,
    user_id: str,
    arn: str,
    is_root: bool,
    now: datetime,
) -> None:
    conn.execute(
        iam_users.insert().values(
            account_id=account_id,
            user_name=user_name,
            user_id=user_id,
            arn=arn,
            is_root=is_root,
            created_at=now,
        )
    )


def insert_access_key(
    conn: Connection,
    access_key_id: str,
    account_id: str,
    user_name: str,
    wrapped_secret: bytes,
    now: datetime,
) -> None:
    conn.execute(
        access_keys.insert().values(
            access_key_id=access_key_id,
            account_id=account_id,
            user_name=user_name,
            wrapped_secret=wrapped_secret,
            status="Active",
            created_at=now,
        )
    )


def get_access_key(conn: Connection, access_key_id: str) -> AccessKeyRow | None:
    row = conn.execute(
        select(
            access_keys.c.access_key_id,
            access_keys.c.account_id,
            access_keys.c.user_name,
            access_keys.c.wrapped_secret,
            access_keys.c.status,
            iam_users.c.user_id,
            iam_users.c.arn,
            iam_users.c.is_root,
        )
        .join(
            iam_users,
            (iam_users.c.account_id == access_keys.c.account_id)
            & (iam_users.c.user_name == access_keys.c.user_name),
        )
        .where(access_keys.c.access_key_id == access_key_id)
    ).first()
    if row is None:
        return None
    return AccessKeyRow(
        access_key_id=row.access_key_id,
        account_id=row.account_id,
        user_name=row.user_name,
        user_id=row.user_id,
        user_arn=row.arn,
        is_root=bool(row.is_root),
        wrapped_secret=bytes(row.wrapped_secret),
        status=row.status,
    )


def replace_secret(conn: Connection, access_key_id: str, wrapped_secret: bytes) -> None:
    conn.execute(
        access_keys.update()
        .where(access_keys.c.access_key_id == access_key_id)
        .values(wrapped_secret=wrapped_secret, status="Active")
    )
