"""Accounts ⇄ rows (creation of the root user lives in iam_repo)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from sealbox.storage.tables import accounts


def account_by_name(conn: Connection, name: str) -> str | None:
    row = conn.execute(select(accounts.c.account_id).where(accounts.c.name == name)).first()
    return None if row is None else str(row.account_id)


def account_exists(conn: Connection, account_id: str) -> bool:
    row = conn.execute(
        select(accounts.c.account_id).where(accounts.c.account_id == account_id)
    ).first()
    return row is not None


def list_accounts(conn: Connection) -> list[tuple[str, str, datetime]]:
    rows = conn.execute(
        select(accounts.c.account_id, accounts.c.name, accounts.c.created_at).order_by(
            accounts.c.created_at, accounts.c.account_id
        )
    )
    return [(r.account_id, r.name, r.created_at) for r in rows]
