"""Audit events ⇄ rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import orjson
from sqlalchemy import Connection, select

from sealbox.audit.model import AuditEvent
from sealbox.storage.db import Database
from sealbox.storage.tables import audit_events

_COLUMNS = (
    "event_id", "event_time", "account_id", "region", "event_source", "event_name",
    "access_key_id", "principal_arn", "resource_arn", "error_code", "read_only", "record",
)  # fmt: skip


def _rows(events: Sequence[AuditEvent], sqlite: bool) -> list[tuple[Any, ...]]:
    """Values converted exactly as the column types would store them."""
    rows = []
    for e in events:
        when = e.event_time.astimezone(UTC)
        rows.append(
            (
                e.event_id,
                when.replace(tzinfo=None).strftime(_SQLITE_TIME) if sqlite else when,
                e.account_id,
                e.region,
                e.event_source,
                e.event_name,
                e.access_key_id,
                e.principal_arn,
                e.resource_arn,
                e.error_code,
                int(e.read_only) if sqlite else e.read_only,
                orjson.dumps(e.record).decode(),
            )
        )
    return rows


def insert_events(conn: Connection, events: Sequence[AuditEvent]) -> None:
    """Append events inside the caller's transaction (one driver executemany)."""
    if events:
        sqlite = conn.dialect.name == "sqlite"
        conn.exec_driver_sql(_INSERT_SQLITE if sqlite else _INSERT_PYFORMAT, _rows(events, sqlite))


def commit_events(db: Database, events: Sequence[AuditEvent]) -> None:
    """Append events in a durable transaction of their own: the group-commit path.

    This runs for every API call that changes no state, so it bypasses SQLAlchemy's
    per-call bookkeeping and bind processing.
    """
    if events:
        db.fast_executemany(_INSERT_SQLITE, _rows(events, db.is_sqlite))


# Built from the constant column list only (no caller input reaches the SQL text).
_INSERT_SQLITE = "INSERT INTO audit_events ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS))
)
_INSERT_PYFORMAT = _INSERT_SQLITE.replace("?", "%s")

# SQLAlchemy's storage format for DateTime on SQLite.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def latest_records(conn: Connection, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest records first (for `sealbox audit` and tests)."""
    rows = conn.execute(
        select(audit_events.c.record)
        .where(audit_events.c.account_id == account_id)
        .order_by(audit_events.c.seq.desc())
        .limit(limit)
    )
    return [json.loads(r.record) for r in rows]


def last_successful_use(
    conn: Connection, account_id: str, resource_arn: str, event_names: frozenset[str]
) -> dict[str, Any] | None:
    """The newest successful record naming resource_arn among event_names."""
    row = conn.execute(
        select(audit_events.c.record)
        .where(
            (audit_events.c.account_id == account_id)
            & (audit_events.c.resource_arn == resource_arn)
            & (audit_events.c.error_code.is_(None))
            & (audit_events.c.event_name.in_(sorted(event_names)))
        )
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else dict(json.loads(row.record))
