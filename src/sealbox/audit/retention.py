"""Audit retention: old records leave the hot table without breaking the hash chain.

Records are removed oldest first (in seq order, the chain's order), a batch per write
transaction. The same transaction moves the chain's anchor to the sequence number and
chain hash of the newest record it removed, so `verify_chain` starts from there and the
records that remain still verify.

The removed events are meant to live on in delivered log files; delivery (to S3) comes
later. Until then, records removed here are gone for good: retention is off unless the
operator asks for it (`sealbox serve --audit-retention-days N`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from sealbox.storage import audit_repo
from sealbox.storage.db import Database
from sealbox.storage.tables import audit_chain, audit_events

BATCH_SIZE = 5000


def prune(db: Database, older_than: datetime, *, batch_size: int = BATCH_SIZE) -> int:
    """Remove records whose event_time is before older_than; returns how many.

    Removal stops at the first record (in seq order) that is not old enough, even if
    records after it are: the chain can only lose a prefix. The newest record is always
    kept, so SQLite (which numbers a row one past the largest seq present) never hands
    out a sequence number at or below the anchor again. Safe to run from several
    processes at once: each batch locks the chain head and re-reads the anchor.
    """
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware")
    total = 0
    while True:
        removed = db.write(lambda conn: _prune_batch(conn, older_than, batch_size))
        total += removed
        if removed < batch_size:
            return total


def _prune_batch(conn: Connection, older_than: datetime, limit: int) -> int:
    # The head row first and locked: appends and other pruners take turns with us.
    head = conn.execute(
        select(audit_chain.c.last_seq, audit_chain.c.anchor_seq)
        .where(audit_chain.c.id == 1)
        .with_for_update()
    ).one()
    c = audit_events.c
    rows = conn.execute(
        select(c.seq, c.event_time, c.chain_hash)
        .where((c.seq > head.anchor_seq) & (c.seq < head.last_seq))
        .order_by(c.seq)
        .limit(limit)
    ).all()
    count, newest = 0, None
    for row in rows:
        if row.event_time >= older_than:
            break
        count, newest = count + 1, row
    if newest is None:
        return 0
    if newest.chain_hash is None:
        raise RuntimeError(f"audit record {newest.seq} has no chain hash (run the migrations)")
    conn.execute(delete(audit_events).where((c.seq > head.anchor_seq) & (c.seq <= newest.seq)))
    audit_repo.set_anchor(conn, int(newest.seq), bytes(newest.chain_hash))
    return count
