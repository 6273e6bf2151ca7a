"""STS sessions and the role facts AssumeRole needs ⇄ rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, select

from sealbox.storage.db import Database
from sealbox.storage.tables import iam_roles, sts_sessions


@dataclass(frozen=True, slots=True)
class RoleFacts:
    account_id: str
    role_name: str
    role_id: str
    arn: str
    trust_policy: str
    max_session_duration: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    access_key_id: str
    account_id: str
    role_name: str
    role_id: str
    session_name: str
    wrapped_secret: bytes = field(repr=False)
    token_digest: bytes = field(repr=False)
    expires_at: datetime
    source_arn: str


def role_arn(db: Database, account_id: str, role_name: str) -> str | None:
    """A role's ARN (hot path of authorization for role sessions)."""
    row = db.fast_row(
        "SELECT arn FROM iam_roles WHERE account_id = ? AND role_name = ?",
        (account_id, role_name),
    )
    return None if row is None else str(row[0])


def get_role(conn: Connection, account_id: str, role_name: str) -> RoleFacts | None:
    row = conn.execute(
        select(iam_roles).where(
            (iam_roles.c.account_id == account_id) & (iam_roles.c.role_name == role_name)
        )
    ).first()
    if row is None:
        return None
    return RoleFacts(
        account_id=row.account_id,
        role_name=row.role_name,
        role_id=row.role_id,
        arn=row.arn,
        trust_policy=row.trust_policy,
        max_session_duration=row.max_session_duration,
    )


def insert_session(conn: Connection, session: SessionRow, now: datetime) -> None:
    conn.execute(
        sts_sessions.insert().values(
            access_key_id=session.access_key_id,
            account_id=session.account_id,
            role_name=session.role_name,
            role_id=session.role_id,
            session_name=session.session_name,
            wrapped_secret=session.wrapped_secret,
            token_digest=session.token_digest,
            expires_at=session.expires_at,
            created_at=now,
            source_arn=session.source_arn,
        )
    )


def get_session(conn: Connection, access_key_id: str) -> SessionRow | None:
    row = conn.execute(
        select(sts_sessions).where(sts_sessions.c.access_key_id == access_key_id)
    ).first()
    if row is None:
        return None
    return SessionRow(
        access_key_id=row.access_key_id,
        account_id=row.account_id,
        role_name=row.role_name,
        role_id=row.role_id,
        session_name=row.session_name,
        wrapped_secret=bytes(row.wrapped_secret),
        token_digest=bytes(row.token_digest),
        expires_at=row.expires_at,
        source_arn=row.source_arn,
    )


def delete_expired_sessions(conn: Connection, before: datetime) -> int:
    result = conn.execute(delete(sts_sessions).where(sts_sessions.c.expires_at < before))
    return int(result.rowcount or 0)
