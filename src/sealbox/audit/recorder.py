"""Append audit events durably: in the caller's transaction, or by group commit.

A state-changing call appends its event inside its own transaction, so the change and
its record commit together. A call that changes nothing but must still be recorded
(Encrypt, GenerateDataKey, ...) submits its event to a per-process writer thread that
commits whatever has queued in one transaction — one fsync for many events — and the
request's response waits for that commit. If the commit fails the request fails:
there is no unaudited key use.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from sqlalchemy import Connection

from sealbox.audit.model import AuditEvent, build_event
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.storage import audit_repo
from sealbox.storage.db import Database

log = logging.getLogger(__name__)

_MAX_BATCH = 512
_STOP = object()


class AuditRecorder:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[AuditEvent, Future[None]] | object] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def event_for(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> AuditEvent:
        return build_event(call, self._clock.now(), error_code, error_message)

    def append(self, conn: Connection, call: Call) -> None:
        """Record a successful call inside the caller's transaction."""
        audit_repo.insert_events(conn, [self.event_for(call)])

    def submit(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> Future[None]:
        """Queue an event for group commit; the future resolves once it is durable."""
        future: Future[None] = Future()
        self._ensure_writer()
        self._queue.put((self.event_for(call, error_code, error_message), future))
        return future

    def record_now(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        """Record synchronously in a transaction of its own."""
        event = self.event_for(call, error_code, error_message)
        self._db.write(lambda conn: audit_repo.insert_events(conn, [event]))

    def _ensure_writer(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="audit-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            items = [b for b in batch if b is not _STOP]
            self._commit(items)  # type: ignore[arg-type]
            if stop:
                return

    def _commit(self, items: list[tuple[AuditEvent, Future[None]]]) -> None:
        events = [event for event, _ in items]
        try:
            self._db.write(lambda conn: audit_repo.insert_events(conn, events))
        except Exception as exc:
            log.exception("audit batch of %d events could not be committed", len(events))
            for _, future in items:
                future.set_exception(exc)
            return
        for _, future in items:
            future.set_result(None)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
