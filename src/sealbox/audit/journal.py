"""Audit journal segments, and the in-process writer: every event durable first.

An event is durable once its line is in a journal segment (format: journal_format.py)
and fdatasynced; only then is the request answered, and if that fails the request
fails: there is no unaudited key use. A multi-worker server has one writer for all
workers, the journal process (journal_process.py), so workers never block on the disk
and concurrent requests share one flush. A single-process server (and tests) use
`JournalWriter` here: once per event-loop iteration the events queued in it are
chained, written with one pwrite and made durable with one fdatasync, on the loop.

Segments are extended in preallocated, zero-filled steps, so each sync overwrites
blocks that already exist and commits no file-system metadata. The writer holds an
exclusive flock on its segment for as long as it may append to it; the indexer
(journal_index.py) takes that as "still being written". A segment is closed and a new
one started when it reaches its size limit. After a failed write or sync the writer
refuses everything: the page cache can no longer be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from pathlib import Path

from sealbox.audit import journal_format as fmt
from sealbox.audit.model import AuditEvent
from sealbox.storage.blobstore import fsync_dir

log = logging.getLogger(__name__)

SEGMENT_LIMIT = 64 * 1024 * 1024
PREALLOCATE_STEP = 4 * 1024 * 1024
_LINE_EXTRA = 66  # TAB, 64 hex digits of the chain hash, LF
_ZEROS = bytes(PREALLOCATE_STEP)


class JournalUnavailable(Exception):
    """The journal can't make events durable; requests must fail."""


class _Segment:
    """One open segment: its descriptor, where the next line goes, and its chain head."""

    def __init__(self, directory: Path) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{fmt.SEGMENT_SUFFIX}"
        self.name = name
        # Locked under a name the indexer ignores, then renamed: the indexer never
        # sees the segment unlocked while this writer may still append to it.
        creating = directory / (name + ".new")
        self.fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = directory / name
        os.rename(creating, self.path)
        fsync_dir(directory)
        self.inode = os.fstat(self.fd).st_ino
        self.offset = 0
        self.allocated = 0
        self.head = fmt.genesis(name)

    def reserve(self, size: int) -> None:
        """Make sure size more bytes fit in zero-filled, already-allocated blocks."""
        while self.offset + size > self.allocated:
            os.pwrite(self.fd, _ZEROS, self.allocated)
            self.allocated += len(_ZEROS)
        # The caller's fdatasync makes the new size and blocks durable with the data.

    def close(self) -> None:
        os.close(self.fd)  # releases the flock: the segment is final


class SegmentWriter:
    """Appends batches of encoded events to this process's segment, durably.

    Not thread-safe: one thread (the event loop, or the journal process) calls append.
    After a failed write or sync it refuses everything: the page cache can no longer be
    trusted to hold what it said it would write.
    """

    def __init__(self, directory: Path, segment_limit: int = SEGMENT_LIMIT) -> None:
        self._dir = directory
        self._limit = segment_limit
        self._segment: _Segment | None = None
        self.failure: OSError | None = None

    def append(self, bodies: list[bytes]) -> None:
        """Chain, write and fdatasync bodies; raises JournalUnavailable on failure."""
        if self.failure is not None:
            raise JournalUnavailable("the audit journal is unavailable")
        try:
            segment = self._segment_for(sum(len(b) for b in bodies) + _LINE_EXTRA * len(bodies))
            data, head = fmt.seal_lines(segment.head, bodies)
            segment.reserve(len(data))
            os.pwrite(segment.fd, data, segment.offset)
            os.fdatasync(segment.fd)
        except OSError as exc:
            log.critical("the audit journal failed; refusing audited requests: %s", exc)
            self.failure = exc
            raise JournalUnavailable("the audit journal could not record the event") from None
        if not _still_named(segment):
            # Lines written to a segment nobody can find again are not a record: fail
            # this batch, and go on in a new segment.
            log.critical(
                "audit journal segment %s was removed or replaced while in use; "
                "events written to it since are lost, and this batch's requests fail",
                segment.name,
            )
            segment.close()
            self._segment = None
            raise JournalUnavailable("the audit journal could not record the event")
        segment.offset += len(data)
        segment.head = head

    def _segment_for(self, size: int) -> _Segment:
        segment = self._segment
        if segment is not None and segment.offset > 0 and segment.offset + size > self._limit:
            segment.close()
            segment = None
        if segment is None:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            segment = self._segment = _Segment(self._dir)
        return segment

    def close(self) -> None:
        """The segment becomes final; the indexer may remove it once indexed."""
        if self._segment is not None:
            with contextlib.suppress(OSError):
                self._segment.close()
            self._segment = None


def _still_named(segment: _Segment) -> bool:
    try:
        return os.stat(segment.path).st_ino == segment.inode
    except FileNotFoundError:
        return False


class LoopBatcher:
    """Events queued during one event-loop iteration, handed on as one batch.

    Subclasses make a batch durable (or fail it) in `_dispatch`; each waiter's future
    completes when its event is durable.
    """

    def __init__(self) -> None:
        self._bodies: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._closed = False

    def submit(self, event: AuditEvent) -> asyncio.Future[None]:
        """Queue event; the future completes once it is durable (or fails)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._closed:
            future.set_exception(JournalUnavailable("the audit journal is closed"))
            return future
        self._bodies.append(fmt.encode_body(event))
        self._waiters.append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._end_of_iteration)
        return future

    def _end_of_iteration(self) -> None:
        self._scheduled = False
        bodies, self._bodies = self._bodies, []
        waiters, self._waiters = self._waiters, []
        self._dispatch(bodies, waiters)

    def _dispatch(self, bodies: list[bytes], waiters: list[asyncio.Future[None]]) -> None:
        raise NotImplementedError


class JournalWriter(LoopBatcher):
    """The in-process journal: one sync per event-loop iteration, on the loop.

    Used when there is no journal process (a single-process server, tests). The sync
    blocks the loop for the write and the fdatasync; handing it to a thread costs more
    in wake-ups and GIL hand-offs than the sync itself.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._segments = SegmentWriter(directory)

    def _dispatch(self, bodies: list[bytes], waiters: list[asyncio.Future[None]]) -> None:
        try:
            self._segments.append(bodies)
        except JournalUnavailable as exc:
            settle(waiters, exc)
        else:
            settle(waiters, None)

    def close(self) -> None:
        self._closed = True
        self._segments.close()


def settle(waiters: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for future in waiters:
        if future.done():
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
