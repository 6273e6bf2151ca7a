"""Record audit events durably: in the caller's transaction, or in the audit journal.

A state-changing call appends its event inside its own transaction, so the change and
its record commit together. A call that changes nothing but must still be recorded
(Encrypt, GenerateDataKey, GetObject, ...) submits its event to the audit journal
(journal.py): the response waits until the event is durable there, and if it can't
be made durable the request fails. There is no unaudited key use.

Journal lines are moved into audit_events by the indexer (journal_index.py): every
second, before anything reads the table, and first thing in every transaction that
appends an event directly, so the table keeps the order events happened in.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import Connection

from sealbox.audit.journal import JournalWriter
from sealbox.audit.journal_client import RemoteJournal
from sealbox.audit.journal_index import JournalIndexer
from sealbox.audit.model import AuditEvent, build_event
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.storage import audit_repo
from sealbox.storage.db import Database, FastConnection

log = logging.getLogger(__name__)


class AuditRecorder:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        journal_dir: Path | None = None,
        journal_socket: Path | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._journal: JournalWriter | RemoteJournal | None = None
        if journal_socket is not None:
            self._journal = RemoteJournal(journal_socket)  # the supervisor's journal process
        elif journal_dir is not None:
            self._journal = JournalWriter(journal_dir)
        self.indexer = None if journal_dir is None else JournalIndexer(db, journal_dir)

    def event_for(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> AuditEvent:
        return build_event(call, self._clock.now(), error_code, error_message)

    def append(self, conn: Connection, call: Call) -> None:
        """Record a successful call inside the caller's transaction."""
        self._append_in(audit_repo.fast_connection(conn), [self.event_for(call)])

    def record_now(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        """Record synchronously in a transaction of its own (callers off the loop)."""
        event = self.event_for(call, error_code, error_message)
        self._db.fast_transaction(lambda fast: self._append_in(fast, [event]))

    def _append_in(self, fast: FastConnection, events: list[AuditEvent]) -> None:
        if self.indexer is not None:
            self.indexer.index_in(fast)  # what the journal holds happened first
        audit_repo.append_events(fast, events)

    def submit(
        self, call: Call, error_code: str | None = None, error_message: str | None = None
    ) -> asyncio.Future[None]:
        """Make the event durable in the journal; await the result before answering."""
        if self._journal is None:
            raise RuntimeError("this recorder has no audit journal")
        return self._journal.submit(self.event_for(call, error_code, error_message))

    def catch_up(self) -> int:
        """Move what the journal holds into audit_events (before reading the table)."""
        return 0 if self.indexer is None else self.indexer.catch_up()

    def close(self) -> None:
        """Finish the journal's last sync, then index what it holds."""
        if self._journal is not None:
            self._journal.close()
        try:
            self.catch_up()
        except Exception:
            log.exception("audit events left in the journal are indexed at the next start")


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
