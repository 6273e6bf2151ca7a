"""Append audit events durably: in the caller's transaction, or by group commit.

A state-changing call appends its event inside its own transaction, so the change and
its record commit together. A call that changes nothing but must still be recorded
(Encrypt, GenerateDataKey, ...) submits its event to the event loop's batcher: every
event submitted during one loop iteration is committed by a single transaction — one
fsync for many events — scheduled with call_soon, and each request's response waits
for that commit. If the commit fails the request fails: there is no unaudited key use.

Committing on the loop thread (rather than a writer thread) avoids two cross-thread
wake-ups per request and GIL contention; the loop blocks only for the commit itself.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Connection

from sealbox.audit.model import AuditEvent, build_event
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.storage import audit_repo
from sealbox.storage.db import Database

log = logging.getLogger(__name__)


class AuditRecorder:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._pending: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._flush_scheduled = False

    def event_for(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> AuditEvent:
        return build_event(call, self._clock.now(), error_code, error_message)

    def append(self, conn: Connection, call: Call) -> None:
        """Record a successful call inside the caller's transaction."""
        audit_repo.insert_events(conn, [self.event_for(call)])

    def record_now(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        """Record synchronously in a transaction of its own (callers off the loop)."""
        event = self.event_for(call, error_code, error_message)
        self._db.write(lambda conn: audit_repo.insert_events(conn, [event]))

    def submit(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> asyncio.Future[None]:
        """Queue an event for this loop iteration's group commit; await the result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((self.event_for(call, error_code, error_message), future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        events = [event for event, _ in batch]
        try:
            audit_repo.commit_events(self._db, events)
        except Exception as exc:
            log.exception("audit batch of %d events could not be committed", len(events))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Nothing is buffered between loop iterations; kept for symmetry."""


class DisabledAuditRecorder(AuditRecorder):
    """BENCHMARK ONLY: records nothing, to measure what auditing costs.

    Selected by the hidden `sealbox serve --bench-disable-audit`; the server warns at
    every start. Never run a real deployment with it: calls go unaudited.
    """

    def append(self, conn: Connection, call: Call) -> None:
        return None

    def record_now(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        return None

    def submit(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future
