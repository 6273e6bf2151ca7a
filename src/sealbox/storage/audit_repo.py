"""Audit events ⇄ rows, appended to the hash chain (see audit/chain.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from sealbox.audit import chain
from sealbox.audit.journal_format import JournalEntry
from sealbox.audit.model import AuditEvent
from sealbox.storage.db import Database, FastConnection
from sealbox.storage.tables import audit_chain, audit_events

_COLUMNS = (
    "event_id", "event_time", "account_id", "region", "event_source", "event_name",
    "access_key_id", "principal_arn", "resource_arn", "error_code", "read_only", "record",
    "username", "chain_hash",
)  # fmt: skip
# Built from the constant column list only (no caller input reaches the SQL text).
_INSERT = "INSERT INTO audit_events ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS))
)
_HEAD_SQLITE = "SELECT last_hash FROM audit_chain WHERE id = 1"
_HEAD_LOCKED = _HEAD_SQLITE + " FOR UPDATE"  # PostgreSQL: writers take turns on the head
_LAST_SEQ = "SELECT max(seq) FROM audit_events"
_SET_HEAD = "UPDATE audit_chain SET last_seq = ?, last_hash = ? WHERE id = 1"
# SQLAlchemy's storage format for DateTime on SQLite.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_EPOCH_NAIVE = datetime(1970, 1, 1)
_RECORD = _COLUMNS.index("record")
Row = tuple[Any, ...]


def _event_rows(events: Sequence[AuditEvent], records: list[str], sqlite: bool) -> list[Row]:
    """Values converted exactly as the column types would store them (no chain hash)."""
    rows: list[Row] = []
    for e, record in zip(events, records, strict=True):
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
                record,
                e.username,
            )
        )
    return rows


def _journal_rows(entries: Sequence[JournalEntry], sqlite: bool) -> list[Row]:
    """The same values from journal lines (columns in journal_format.COLUMNS order)."""
    rows: list[Row] = []
    for entry in entries:
        (event_id, micros, account, region, source, name, key_id, principal, resource,
         error, read_only, username) = entry.columns  # fmt: skip
        when = _EPOCH_NAIVE + timedelta(microseconds=micros)
        rows.append(
            (
                event_id,
                when.strftime(_SQLITE_TIME) if sqlite else when.replace(tzinfo=UTC),
                account,
                region,
                source,
                name,
                key_id,
                principal,
                resource,
                error,
                int(read_only) if sqlite else bool(read_only),
                entry.record,
                username,
            )
        )
    return rows


def lock_chain_head(fast: FastConnection) -> bytes:
    """The chain head; on PostgreSQL held FOR UPDATE until the transaction ends."""
    head = fast.fetchone(_HEAD_SQLITE if fast.is_sqlite else _HEAD_LOCKED)
    if head is None:
        raise RuntimeError("the audit chain head is missing (run the migrations)")
    return bytes(head[0])


def _append_rows(fast: FastConnection, rows: list[Row]) -> None:
    """Chain rows (whose record is at _RECORD) after the head and insert them."""
    hashes = chain.extend(lock_chain_head(fast), (row[_RECORD].encode() for row in rows))
    fast.executemany(_INSERT, [(*row, h) for row, h in zip(rows, hashes, strict=True)])
    last = fast.fetchone(_LAST_SEQ)
    fast.execute(_SET_HEAD, (int(last[0]) if last else 0, hashes[-1]))


def _append(fast: FastConnection, events: Sequence[AuditEvent]) -> None:
    records = [orjson.dumps(e.record).decode() for e in events]
    _append_rows(fast, _event_rows(events, records, fast.is_sqlite))


def append_journal_entries(fast: FastConnection, entries: Sequence[JournalEntry]) -> None:
    """Append events read from the audit journal, in the order given."""
    if entries:
        _append_rows(fast, _journal_rows(entries, fast.is_sqlite))


def journal_positions(fast: FastConnection) -> dict[str, tuple[int, bytes]]:
    """Per journal segment: (bytes already indexed, the segment's chain hash there)."""
    rows = fast.fetchall("SELECT name, indexed_bytes, head FROM audit_journal_segments")
    return {str(r[0]): (int(r[1]), bytes(r[2])) for r in rows}


def set_journal_position(
    fast: FastConnection, name: str, indexed_bytes: int, head: bytes, *, known: bool
) -> None:
    if known:
        fast.execute(
            "UPDATE audit_journal_segments SET indexed_bytes = ?, head = ? WHERE name = ?",
            (indexed_bytes, head, name),
        )
    else:
        fast.execute(
            "INSERT INTO audit_journal_segments (name, indexed_bytes, head) VALUES (?, ?, ?)",
            (name, indexed_bytes, head),
        )


def forget_journal_segment(fast: FastConnection, name: str) -> None:
    fast.execute("DELETE FROM audit_journal_segments WHERE name = ?", (name,))


def append_events(fast: FastConnection, events: Sequence[AuditEvent]) -> None:
    """Append events inside the caller's write transaction."""
    if events:
        _append(fast, events)


def fast_connection(conn: Connection) -> FastConnection:
    """The driver connection under conn's transaction, for the statements here."""
    return FastConnection(conn.connection.driver_connection, conn.dialect.name == "sqlite")


def commit_events(db: Database, events: Sequence[AuditEvent]) -> None:
    """Append events in a durable transaction of their own (tests and bulk loads)."""
    if events:
        db.fast_transaction(lambda fast: _append(fast, events))


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


def chain_state(conn: Connection) -> tuple[int, bytes, int, bytes]:
    """(last_seq, last_hash, anchor_seq, anchor_hash) of the chain."""
    row = conn.execute(select(audit_chain).where(audit_chain.c.id == 1)).one()
    return int(row.last_seq), bytes(row.last_hash), int(row.anchor_seq), bytes(row.anchor_hash)


def chain_rows(conn: Connection, after_seq: int, limit: int) -> list[tuple[int, str, bytes | None]]:
    """(seq, record, chain_hash) in order, for verification."""
    rows = conn.execute(
        select(audit_events.c.seq, audit_events.c.record, audit_events.c.chain_hash)
        .where(audit_events.c.seq > after_seq)
        .order_by(audit_events.c.seq)
        .limit(limit)
    )
    return [
        (int(r.seq), r.record, None if r.chain_hash is None else bytes(r.chain_hash)) for r in rows
    ]


def set_anchor(conn: Connection, anchor_seq: int, anchor_hash: bytes) -> None:
    conn.execute(
        update(audit_chain)
        .where(audit_chain.c.id == 1)
        .values(anchor_seq=anchor_seq, anchor_hash=anchor_hash)
    )
