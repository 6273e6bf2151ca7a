"""Move audit journal lines into audit_events, exactly once and in time order.

The journal (journal.py) is the durable record the moment a request is answered;
audit_events is where events are chained into the one global chain, searched
(LookupEvents), delivered by trails and verified. Indexing runs in the write
transaction that appends the rows, and records in the same transaction how far each
segment has been read, so a crash at any point neither loses nor repeats an event.

It runs every second in each server process, before anything reads audit_events
(LookupEvents, trail delivery, `sealbox audit`), and inside every transaction that
appends an event of its own (a state change and its record), so that the table's
order follows the order events happened. Lines from several segments are merged by
event time. A segment whose writer has gone (its flock is free) and that is fully
indexed is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from sealbox.audit import journal_format as fmt
from sealbox.storage import audit_repo
from sealbox.storage.blobstore import fsync_dir
from sealbox.storage.db import Database, FastConnection

log = logging.getLogger(__name__)

# Bytes read from one segment per transaction, so a long backlog is moved in steps.
READ_LIMIT = 16 * 1024 * 1024
READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Pending:
    name: str
    known: bool
    indexed_bytes: int
    parsed: fmt.ParsedLines


class JournalIndexer:
    def __init__(self, db: Database, directory: Path) -> None:
        self._db = db
        self._dir = directory
        self._seen: dict[str, int] = {}  # segment -> bytes known to be indexed
        self._lock = threading.Lock()  # one catch_up at a time in this process
        self.corrupt: dict[str, fmt.JournalCorrupt] = {}

    @property
    def directory(self) -> Path:
        return self._dir

    def segments(self) -> list[str]:
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if fmt.SEGMENT_NAME.match(n))

    def index_in(self, fast: FastConnection) -> int:
        """Append every pending journal line inside the caller's write transaction."""
        names = self.segments()
        if not names:
            return 0
        audit_repo.lock_chain_head(fast)  # PostgreSQL: read positions after our turn
        positions = audit_repo.journal_positions(fast)
        pending = [p for p in self._read_all(names, positions) if p.parsed.entries]
        if not pending:
            return 0
        merged = list(heapq.merge(*(p.parsed.entries for p in pending), key=_time))
        audit_repo.append_journal_entries(fast, merged)
        for p in pending:
            done = p.indexed_bytes + p.parsed.consumed
            audit_repo.set_journal_position(fast, p.name, done, p.parsed.head, known=p.known)
        return len(merged)

    def _read_all(
        self, names: list[str], positions: dict[str, tuple[int, bytes]]
    ) -> Iterator[_Pending]:
        for name in names:
            known = name in positions
            indexed, head = positions[name] if known else (0, fmt.genesis(name))
            data = self._read(name, indexed, READ_LIMIT)
            if data is None:
                continue
            try:
                parsed = fmt.parse(name, data, indexed, head)
            except fmt.JournalCorrupt as exc:
                if name not in self.corrupt:
                    log.error("%s; its later events are not indexed", exc)
                self.corrupt[name] = exc
                continue
            yield _Pending(name, known, indexed, parsed)

    def _read(self, name: str, offset: int, limit: int) -> bytes | None:
        """Up to limit bytes from offset, stopping at the zero-filled, unwritten rest."""
        try:
            with open(self._dir / name, "rb", buffering=0) as f:
                f.seek(offset)
                return _read_written(f, limit)
        except FileNotFoundError:
            return None

    def has_pending(self) -> bool:
        """A cheap look, without the database: is there a line past what we indexed?"""
        for name in self.segments():
            data = self._read(name, self._seen.get(name, 0), 1)
            if data and data != b"\0":
                return True
        return False

    def catch_up(self) -> int:
        """Index everything pending, in transactions of their own; tidy finished segments."""
        total = 0
        with self._lock:
            while self.has_pending():
                moved = self._db.fast_transaction(self.index_in)
                total += moved
                self._remember_positions()
                if moved == 0:
                    break
            self._remove_finished()
        return total

    def _remember_positions(self) -> None:
        positions = self._db.fast_transaction(audit_repo.journal_positions)
        self._seen = {name: indexed for name, (indexed, _) in positions.items()}

    def _remove_finished(self) -> None:
        """Delete segments whose writer is gone and whose every line is indexed.

        A segment whose flock is free will never grow again (writers lock before they
        name a segment and hold the lock until they are done with it). Only then is
        the database asked how far it was indexed; while every writer is alive this
        costs a directory listing and a failed flock per segment.
        """
        positions: dict[str, tuple[int, bytes]] | None = None
        for name in self.segments():
            try:
                fd = os.open(self._dir / name, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer still has it
                if positions is None:
                    positions = self._db.fast_transaction(audit_repo.journal_positions)
                known = positions.get(name)
                indexed, head = known if known else (0, fmt.genesis(name))
                if not self._fully_indexed(fd, name, indexed, head):
                    continue
                self._unlink(name)
            finally:
                os.close(fd)
            if known:
                self._db.fast_transaction(partial(audit_repo.forget_journal_segment, name=name))
            self._seen.pop(name, None)

    def _unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._dir / name).unlink()
        fsync_dir(self._dir)

    @staticmethod
    def _fully_indexed(fd: int, name: str, indexed: int, head: bytes) -> bool:
        """What is left past indexed is zeros, or a last line torn by a crash before it
        was acknowledged; a complete line is indexed first, a corrupt one kept."""
        os.lseek(fd, indexed, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
            rest = _read_written(f, READ_LIMIT)
        try:
            return not fmt.parse(name, rest, indexed, head).entries
        except fmt.JournalCorrupt:
            return False


def _read_written(f: BinaryIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = f.read(min(READ_CHUNK, limit - size))
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            chunks.append(chunk[: nul + 1])  # the NUL tells the parser where it ends
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _time(entry: fmt.JournalEntry) -> int:
    return entry.time_us
