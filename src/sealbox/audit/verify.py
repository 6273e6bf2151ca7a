"""Verify the audit hash chain (see audit/chain.py) from its anchor to its head.

The walk reads the records in sequence order, a bounded batch per read transaction
(constant memory, no long-lived snapshot on a live server), recomputes every link and
compares it with the stored chain_hash, then compares the end of the walk with the
head row. It reports the FIRST broken record:

- "record changed": the record's bytes no longer hash to its stored chain_hash (its
  JSON was edited, or a record right before it was removed with no trace in seq);
- "record missing before seq N": as above, after a gap in seq. Gaps alone are not
  errors (PostgreSQL leaves them when a transaction rolls back), so a deletion is
  detected by the broken link, and a gap only names the likelier cause;
- "chain hash changed": the stored chain_hash itself was edited (the record and the
  records after it still link up from the recomputed hash);
- "chain truncated after seq N": the newest records are gone (the head names a later
  seq and a hash the walk never reached);
- "head does not match": the head row disagrees with the end of the walk (the newest
  record was rewritten and re-hashed, the head was edited, or records lie past it).

A chain is self-consistent by construction: someone able to rewrite a record AND every
chain hash after it AND the head is not detected here; that needs the chain hashes
kept somewhere else too (delivered log files and their digests, later).

Live servers: records appended during the walk are past the head read at its start
and are left for the next run; if retention removes records the walk has not reached
yet, the walk restarts from the new anchor instead of reporting them missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from sealbox.audit import chain
from sealbox.storage import audit_repo
from sealbox.storage.db import Database
from sealbox.storage.tables import audit_events

BATCH_SIZE = 5000

RECORD_CHANGED = "record_changed"
RECORD_MISSING = "record_missing"
CHAIN_HASH_CHANGED = "chain_hash_changed"
CHAIN_TRUNCATED = "chain_truncated"
HEAD_MISMATCH = "head_mismatch"

Progress = Callable[[int, int], None]  # (records walked, records expected at most)


@dataclass(frozen=True)
class Break:
    """Where the chain first fails to verify."""

    kind: str  # one of the constants above
    message: str
    seq: int | None  # the broken record (for truncation: the last record that verifies)
    event_id: str | None = None
    event_time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "seq": self.seq,
            "event_id": self.event_id,
            "event_time": None if self.event_time is None else self.event_time.isoformat(),
        }


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    first_break: Break | None
    records_checked: int  # records in the from/to range whose links were verified
    records_walked: int  # every record walked (the chain is walked from the anchor)
    anchor_seq: int
    head_seq: int
    elapsed_seconds: float
    from_time: datetime | None = None
    to_time: datetime | None = None
    breaks_outside_range: int = 0  # problems in records the from/to range leaves out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "first_break": None if self.first_break is None else self.first_break.to_dict(),
            "records_checked": self.records_checked,
            "records_walked": self.records_walked,
            "anchor_seq": self.anchor_seq,
            "head_seq": self.head_seq,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "from_time": None if self.from_time is None else self.from_time.isoformat(),
            "to_time": None if self.to_time is None else self.to_time.isoformat(),
            "breaks_outside_range": self.breaks_outside_range,
        }


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    event_id: str
    event_time: datetime
    record: bytes
    chain_hash: bytes | None


def _rows(db: Database, after_seq: int, upto_seq: int, limit: int) -> list[_Row]:
    c = audit_events.c
    with db.read() as conn:
        rows = conn.execute(
            select(c.seq, c.event_id, c.event_time, c.record, c.chain_hash)
            .where((c.seq > after_seq) & (c.seq <= upto_seq))
            .order_by(c.seq)
            .limit(limit)
        ).all()
    return [
        _Row(
            int(r.seq),
            r.event_id,
            r.event_time,
            r.record.encode(),
            None if r.chain_hash is None else bytes(r.chain_hash),
        )
        for r in rows
    ]


class _Walk:
    """One verification run: the chain state it started from and what it found."""

    def __init__(
        self,
        db: Database,
        from_time: datetime | None,
        to_time: datetime | None,
        batch_size: int,
        progress: Progress | None,
    ) -> None:
        self.db = db
        self.from_time = from_time
        self.to_time = to_time
        self.batch_size = batch_size
        self.progress = progress
        with db.read() as conn:
            self.head_seq, self.head_hash, self.anchor_seq, self.anchor_hash = (
                audit_repo.chain_state(conn)
            )
        self.first_break: Break | None = None
        self.outside = 0
        self.walked = 0
        self.checked = 0
        # The last record that verified (or the anchor), and its hash.
        self.prev_seq, self.prev_hash = self.anchor_seq, self.anchor_hash
        self.last_time: datetime | None = None
        # A record whose link failed, waiting for the next record to tell whether its
        # bytes or its stored hash changed: (row, hash computed for it, seq before it).
        self.pending: tuple[_Row, bytes, int] | None = None

    def in_range(self, when: datetime) -> bool:
        return (self.from_time is None or when >= self.from_time) and (
            self.to_time is None or when <= self.to_time
        )

    def found(self, kind: str, message: str, row: _Row | None, seq: int | None = None) -> None:
        if row is not None and not self.in_range(row.event_time):
            self.outside += 1
        elif self.first_break is None:
            self.first_break = Break(
                kind,
                message,
                row.seq if row is not None else seq,
                row.event_id if row is not None else None,
                row.event_time if row is not None else None,
            )

    def changed_or_missing(self, row: _Row, seq_before: int) -> None:
        if row.seq > seq_before + 1:
            self.found(
                RECORD_MISSING,
                f"record missing before seq {row.seq} (after seq {seq_before}), "
                f"or record {row.seq} changed",
                row,
            )
        else:
            self.found(RECORD_CHANGED, f"record changed (seq {row.seq})", row)

    def settle_pending(self, row: _Row) -> bytes:
        """Classify the pending failure now that row follows it; the hash row must have."""
        assert self.pending is not None
        bad, computed, seq_before = self.pending
        self.pending = None
        follows_computed = chain.link(computed, row.record)
        if bad.chain_hash is None:
            self.found(CHAIN_HASH_CHANGED, f"chain hash missing (seq {bad.seq})", bad)
            return follows_computed
        if row.chain_hash == follows_computed:
            self.found(CHAIN_HASH_CHANGED, f"chain hash changed (seq {bad.seq})", bad)
            return follows_computed
        self.changed_or_missing(bad, seq_before)
        return chain.link(bad.chain_hash, row.record)  # go on from the stored hash

    def settle_last(self) -> None:
        """Classify a failure at the last record walked, by the head."""
        assert self.pending is not None
        bad, computed, seq_before = self.pending
        self.pending = None
        if bad.chain_hash is None or computed == self.head_hash:
            what = "missing" if bad.chain_hash is None else "changed"
            self.found(CHAIN_HASH_CHANGED, f"chain hash {what} (seq {bad.seq})", bad)
            self.prev_hash = computed
        else:
            self.changed_or_missing(bad, seq_before)
            self.prev_hash = bad.chain_hash

    def anchor_moved(self) -> bool:
        """Retention removed records this walk had not reached: go on from its anchor."""
        with self.db.read() as conn:
            _, _, anchor_seq, anchor_hash = audit_repo.chain_state(conn)
        if anchor_seq <= self.prev_seq:
            return False
        self.prev_seq, self.prev_hash = anchor_seq, anchor_hash
        self.pending = None
        return True

    def walk(self) -> None:
        while self.first_break is None:
            rows = _rows(self.db, self.prev_seq, self.head_seq, self.batch_size)
            if not rows:
                break
            for row in rows:
                if not self.step(row):
                    break  # stopped, or restarted from a moved anchor
            if self.progress is not None:
                self.progress(self.walked, self.head_seq - self.anchor_seq)
        if self.first_break is None and self.pending is not None:
            self.settle_last()
        if self.first_break is None:
            self.check_head()

    def step(self, row: _Row) -> bool:
        """Verify one record; False to leave the batch."""
        self.walked += 1
        if self.in_range(row.event_time):
            self.checked += 1
        if self.pending is not None:
            expected = self.settle_pending(row)
        else:
            expected = chain.link(self.prev_hash, row.record)
        if self.first_break is not None:
            return False
        if row.chain_hash == expected:
            self.prev_seq, self.prev_hash, self.last_time = row.seq, expected, row.event_time
            return True
        if self.anchor_moved():
            return False
        self.pending = (row, expected, self.prev_seq)
        self.prev_seq, self.last_time = row.seq, row.event_time
        return True

    def check_head(self) -> None:
        if self.prev_seq < self.head_seq:
            if self.prev_hash == self.head_hash:
                self.found(
                    HEAD_MISMATCH,
                    f"head does not match: it names seq {self.head_seq} with the hash of "
                    f"seq {self.prev_seq}",
                    None,
                    self.head_seq,
                )
            elif self.to_time is None or self.last_time is None or self.last_time <= self.to_time:
                self.found(
                    CHAIN_TRUNCATED,
                    f"chain truncated after seq {self.prev_seq} "
                    f"(the head names seq {self.head_seq})",
                    None,
                    self.prev_seq,
                )
            return
        if self.prev_hash != self.head_hash:
            self.found(
                HEAD_MISMATCH,
                f"head does not match: seq {self.head_seq} hashes differently",
                None,
                self.head_seq,
            )
            return
        # Records committed after the walk started move the head along with them; a
        # record past the head as it is now was written around the chain.
        with self.db.read() as conn:
            newest = conn.execute(select(func.max(audit_events.c.seq))).scalar()
            head_seq = audit_repo.chain_state(conn)[0]
        if newest is not None and int(newest) > head_seq:
            self.found(
                HEAD_MISMATCH,
                f"head does not match: records after the head (seq {head_seq} < {newest})",
                None,
                head_seq,
            )


def verify_chain(
    db: Database,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> VerifyReport:
    """Walk the chain from its anchor and report the first broken record.

    from_time/to_time (inclusive) limit which records are reported on; the walk still
    starts at the anchor, since each link needs its predecessor. A problem in a record
    outside the range is counted (breaks_outside_range) and the walk goes on past it
    from the stored hash. A truncated tail is reported unless the newest record that
    verifies is already past to_time; a head that disagrees is always reported.
    """
    for when in (from_time, to_time):
        if when is not None and when.tzinfo is None:
            raise ValueError("from_time and to_time must be timezone-aware")
    started = time.monotonic()
    w = _Walk(db, from_time, to_time, batch_size, progress)
    w.walk()
    return VerifyReport(
        ok=w.first_break is None,
        first_break=w.first_break,
        records_checked=w.checked,
        records_walked=w.walked,
        anchor_seq=w.anchor_seq,
        head_seq=w.head_seq,
        elapsed_seconds=time.monotonic() - started,
        from_time=from_time,
        to_time=to_time,
        breaks_outside_range=w.outside,
    )
