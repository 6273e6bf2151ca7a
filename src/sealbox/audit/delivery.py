"""Trail delivery: audit records → gzipped log files in S3, and signed digests of them.

Runs in the scheduled-work pass that every worker process runs (Runtime.
run_scheduled_work). For each trail with work due, a process first takes the trail's
lease with one atomic UPDATE (free, or expired after LEASE): two processes never work on
one trail at once, and a process that dies mid-way leaves the lease to expire.

Exactly once per trail: the trail row records the last audit seq delivered. A batch is
planned first — its seq range and object keys are stored as the trail's ``pending``
work — then written to S3, then committed (delivered_seq moves on, the file is recorded,
pending is cleared) in one transaction that also checks the lease is still ours. A
process that dies after writing but before committing leaves the plan behind; the next
one redoes it with the same keys, so the same records land in the same objects again:
no record is lost and none is delivered twice. Digests work the same way (the planned
digest, already signed, is the pending work).

What a trail delivers: its account's records with seq in its logging windows (see
audit/trails.py), in its home region (every region for a multi-region trail, each region
in its own files; IAM's global events with IncludeGlobalServiceEvents), that its event
selectors select (audit/selectors.py). CloudTrail's own writes (the PutObject of every
delivered file, and the KMS calls an SSE-KMS trail's writes make) are recorded in the
audit table like any request but never delivered to a trail: otherwise each delivery
would cause the next one, forever.

Retention: records a trail has not delivered yet are never pruned (see retention_bound).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from sealbox.audit.digests import (
    ALGORITHM,
    META_ALGORITHM,
    META_SIGNATURE,
    DigestContent,
    DigestSigner,
    digest_body,
    string_to_sign,
)
from sealbox.audit.selectors import selects
from sealbox.audit.trail_layout import (
    cloudtrail_time,
    compress,
    digest_key,
    log_file_body,
    log_file_key,
    new_unique,
    parse_cloudtrail_time,
    sha256_hex,
)
from sealbox.audit.trail_model import SERVICE_PRINCIPAL, DeliveryState, Digest, Trail
from sealbox.audit.trail_s3 import TrailS3
from sealbox.audit.trails import TrailSettings
from sealbox.clock import Clock
from sealbox.crypto import unique_id
from sealbox.storage import trail_repo
from sealbox.storage.db import Database
from sealbox.storage.trail_repo import EventRow

log = logging.getLogger("sealbox.audit.delivery")

LEASE: Final = timedelta(minutes=5)
BATCH_EVENTS: Final = 2000  # records per read, and at most per log file
GLOBAL_SOURCES: Final = frozenset({"iam.amazonaws.com"})


class LeaseLost(Exception):
    """Another process took the trail over (our lease expired): stop, change nothing."""


@dataclass
class DeliveryReport:
    log_files: int = 0
    digests: int = 0
    errors: list[str] = field(default_factory=list)


def retention_bound(db: Database) -> datetime | None:
    """Retention must keep records from this time on: the oldest record some trail still
    has to deliver (None: every trail is caught up)."""
    with db.read() as conn:
        return trail_repo.oldest_undelivered_time(conn)


class TrailDelivery:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        s3: TrailS3,
        signer: DigestSigner,
        settings: TrailSettings,
        *,
        lease: timedelta = LEASE,
        batch_events: int = BATCH_EVENTS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._s3 = s3
        self._signer = signer
        self._settings = settings
        self._lease = lease
        self._batch = batch_events
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:{unique_id()[:8]}"

    # -- the scheduled pass --------------------------------------------------------------

    def run_due(self) -> DeliveryReport:
        """Deliver logs and digests of every trail whose turn it is."""
        report = DeliveryReport()
        now = self._clock.now()
        with self._db.read() as conn:
            due = trail_repo.due_trail_ids(conn, now)
        for trail_id in due:
            if not self._claim(trail_id, now):
                continue  # another process has it
            try:
                self._work(trail_id, report)
            except LeaseLost:
                log.warning("trail %s: lease lost to another process", trail_id)
            finally:
                self._release(trail_id)
        return report

    def _claim(self, trail_id: str, now: datetime) -> bool:
        until = now + self._lease
        return self._db.write(lambda conn: trail_repo.claim(conn, trail_id, self.owner, now, until))

    def _release(self, trail_id: str) -> None:
        self._db.write(lambda conn: trail_repo.release(conn, trail_id, self.owner))

    def _load(self, trail_id: str) -> tuple[Trail, DeliveryState] | None:
        with self._db.read() as conn:
            trail = trail_repo.get_trail_by_id(conn, trail_id)
            state = trail_repo.get_state(conn, trail_id)
        return None if trail is None or state is None else (trail, state)

    def _update(self, conn: Connection, trail_id: str, **values: Any) -> None:
        values["lease_until"] = self._clock.now() + self._lease
        if not trail_repo.update_leased(conn, trail_id, self.owner, **values):
            raise LeaseLost(trail_id)

    def _set(self, trail_id: str, **values: Any) -> None:
        self._db.write(lambda conn: self._update(conn, trail_id, **values))

    def _work(self, trail_id: str, report: DeliveryReport) -> None:
        loaded = self._load(trail_id)
        if loaded is None:
            return  # deleted meanwhile
        trail, state = loaded
        now = self._clock.now().replace(microsecond=0)
        retry = now + self._settings.delivery_interval
        try:
            if state.pending is not None:
                self._redo(trail, state.pending, report)
            if state.next_delivery_at is not None and state.next_delivery_at <= now:
                self._deliver(trail, now, report)
        except LeaseLost:
            raise
        except Exception as exc:
            message = _describe(exc)
            report.errors.append(f"{trail.arn}: {message}")
            log.warning("trail %s: log delivery failed: %s", trail.arn, message)
            self._set(
                trail_id,
                latest_delivery_attempt=now,
                latest_delivery_error=message,
                next_delivery_at=retry,
            )
            return
        loaded = self._load(trail_id)
        if loaded is None:
            return
        trail, state = loaded
        if not (trail.log_validation and state.next_digest_at and state.next_digest_at <= now):
            return
        try:
            self._digest(trail, state, now, report)
        except LeaseLost:
            raise
        except Exception as exc:
            message = _describe(exc)
            report.errors.append(f"{trail.arn}: {message}")
            log.warning("trail %s: digest delivery failed: %s", trail.arn, message)
            self._set(trail_id, latest_digest_error=message, next_digest_at=retry)

    def _redo(self, trail: Trail, pending: dict[str, Any], report: DeliveryReport) -> None:
        if pending.get("kind") == "logs":
            self._write_logs(trail, pending, report)
        elif pending.get("kind") == "digest":
            self._write_digest(trail, pending, report)
        else:
            self._set(trail.trail_id, pending=None)

    # -- log files -------------------------------------------------------------------------

    def _deliver(self, trail: Trail, now: datetime, report: DeliveryReport) -> None:
        """Deliver what was recorded up to now (later records wait for the next pass, so
        a pass ends however busy the server is)."""
        with self._db.read() as conn:
            head = trail_repo.head_seq(conn)
        while True:
            loaded = self._load(trail.trail_id)
            if loaded is None:
                return
            trail, state = loaded
            with self._db.read() as conn:
                upper = head
                if state.stop_seq is not None:
                    upper = min(upper, state.stop_seq)
                rows = (
                    trail_repo.events(
                        conn, trail.account_id, state.delivered_seq, upper, self._batch
                    )
                    if state.delivered_seq < upper
                    else []
                )
            if state.delivered_seq >= upper:
                break
            upto = rows[-1].seq if len(rows) == self._batch else upper
            groups = self._select(trail, state, rows)
            if not groups:
                self._set(trail.trail_id, delivered_seq=upto)
                continue
            pending = {
                "kind": "logs",
                "after": state.delivered_seq,
                "upto": upto,
                "bucket": trail.s3_bucket,
                "time": cloudtrail_time(now),
                "keys": {
                    region: log_file_key(
                        trail.s3_prefix, trail.account_id, region, now, new_unique()
                    )
                    for region in groups
                },
            }
            self._set(trail.trail_id, pending=pending)
            self._write_logs(trail, pending, report)
        caught_up = not trail.is_logging and (
            state.stop_seq is None or state.delivered_seq >= state.stop_seq
        )
        self._set(
            trail.trail_id,
            latest_delivery_attempt=now,
            latest_delivery_error=None,
            next_delivery_at=None if caught_up else now + self._settings.delivery_interval,
        )

    def _select(
        self, trail: Trail, state: DeliveryState, rows: Sequence[EventRow]
    ) -> dict[str, list[EventRow]]:
        """The records this trail delivers, by the region whose files they go into."""
        groups: dict[str, list[EventRow]] = defaultdict(list)
        for row in rows:
            if state.skips(row.seq) or row.principal_arn == SERVICE_PRINCIPAL:
                continue
            if not (
                trail.multi_region
                or row.region == trail.region
                or (trail.include_global and row.event_source in GLOBAL_SOURCES)
            ):
                continue
            if not selects(
                trail.event_selectors, trail.advanced_selectors, orjson.loads(row.record)
            ):
                continue
            groups[row.region if trail.multi_region else trail.region].append(row)
        return dict(groups)

    def _write_logs(self, trail: Trail, pending: dict[str, Any], report: DeliveryReport) -> None:
        """Write (or write again) the planned files, then commit the batch."""
        after, upto = int(pending["after"]), int(pending["upto"])
        loaded = self._load(trail.trail_id)
        if loaded is None:
            return
        trail, state = loaded
        with self._db.read() as conn:
            rows = trail_repo.events(conn, trail.account_id, after, upto, upto - after)
        when = parse_cloudtrail_time(pending["time"])
        bucket = pending["bucket"]
        keys: dict[str, str] = pending["keys"]
        written: list[tuple[str, str, str, datetime, datetime]] = []
        for region, events in sorted(self._select(trail, state, rows).items()):
            key = keys.get(region) or log_file_key(
                trail.s3_prefix, trail.account_id, region, when, new_unique()
            )
            body = log_file_body([e.record for e in events])
            self._s3.put(
                bucket,
                key,
                compress(body),
                trail_arn=trail.arn,
                trail_account=trail.account_id,
                kms_key_id=trail.kms_key_id,
            )
            times = [e.event_time for e in events]
            written.append((region, key, sha256_hex(body), min(times), max(times)))

        def commit(conn: Connection) -> None:
            current = trail_repo.get_trail_by_id(conn, trail.trail_id)
            validation = current is not None and current.log_validation
            self._update(
                conn,
                trail.trail_id,
                delivered_seq=upto,
                pending=None,
                latest_delivery_time=when,
            )
            for region, key, digest, oldest, newest in written:
                trail_repo.insert_log_file(
                    conn,
                    trail.trail_id,
                    region,
                    bucket,
                    key,
                    digest,
                    oldest,
                    newest,
                    when,
                    None if validation else 0,
                )

        self._db.write(commit)
        report.log_files += len(written)

    # -- digests -----------------------------------------------------------------------------

    def _digest(
        self, trail: Trail, state: DeliveryState, now: datetime, report: DeliveryReport
    ) -> None:
        with self._db.read() as conn:
            behind = state.stop_seq is not None and state.delivered_seq < state.stop_seq
            undigested = trail_repo.has_undigested_files(conn, trail.trail_id)
            regions = {trail.region}
            if trail.multi_region:
                regions |= trail_repo.log_regions(conn, trail.trail_id)
        if not trail.is_logging:
            # Logging stopped: one last digest for what was delivered since the last one.
            if behind:
                self._set(trail.trail_id, next_digest_at=now + self._settings.delivery_interval)
                return
            if not undigested:
                self._set(trail.trail_id, next_digest_at=None)
                return
        for region in sorted(regions):
            pending = self._plan_digest(trail, state, region, now)
            if pending is not None:
                self._set(trail.trail_id, pending=pending)
                self._write_digest(trail, pending, report)
        self._set(
            trail.trail_id,
            next_digest_at=now + self._settings.digest_interval if trail.is_logging else None,
        )

    def _plan_digest(
        self, trail: Trail, state: DeliveryState, region: str, end: datetime
    ) -> dict[str, Any] | None:
        with self._db.read() as conn:
            previous = trail_repo.last_digest(conn, trail.trail_id, region, state.digest_epoch)
            files = trail_repo.undigested_files(conn, trail.trail_id, region)
        start = previous.end_time if previous is not None else state.digest_start
        start = start or trail.created_at
        if end <= start:
            return None  # nothing can have happened in no time
        key = digest_key(trail.s3_prefix, trail.account_id, region, trail.name, trail.region, end)
        signing_key = self._signer.current(region)
        body = digest_body(
            DigestContent(
                account_id=trail.account_id,
                bucket=trail.s3_bucket,
                key=key,
                start=start,
                end=end,
                fingerprint=signing_key.fingerprint,
                previous=previous,
                files=files,
            )
        )
        body_hash = sha256_hex(body)
        signature = self._signer.sign(
            signing_key,
            string_to_sign(
                cloudtrail_time(end),
                trail.s3_bucket,
                key,
                body_hash,
                None if previous is None else previous.signature,
            ),
        )
        return {
            "kind": "digest",
            "region": region,
            "epoch": state.digest_epoch,
            "start": cloudtrail_time(start),
            "end": cloudtrail_time(end),
            "bucket": trail.s3_bucket,
            "key": key,
            "body": body.decode(),
            "sha256": body_hash,
            "signature": signature,
            "fingerprint": signing_key.fingerprint,
            "files": [f.id for f in files],
        }

    def _write_digest(self, trail: Trail, pending: dict[str, Any], report: DeliveryReport) -> None:
        body = str(pending["body"]).encode()
        self._s3.put(
            pending["bucket"],
            pending["key"],
            compress(body),
            trail_arn=trail.arn,
            trail_account=trail.account_id,
            metadata={META_SIGNATURE: pending["signature"], META_ALGORITHM: ALGORITHM},
            kms_key_id=trail.kms_key_id,
        )
        end = parse_cloudtrail_time(pending["end"])
        digest = Digest(
            id=0,
            trail_id=trail.trail_id,
            region=pending["region"],
            epoch=int(pending["epoch"]),
            account_id=trail.account_id,
            start_time=parse_cloudtrail_time(pending["start"]),
            end_time=end,
            bucket=pending["bucket"],
            key=pending["key"],
            sha256=pending["sha256"],
            signature=pending["signature"],
            fingerprint=pending["fingerprint"],
        )

        def commit(conn: Connection) -> None:
            self._update(
                conn, trail.trail_id, pending=None, latest_digest_time=end, latest_digest_error=None
            )
            digest_id = trail_repo.insert_digest(conn, digest)
            trail_repo.mark_files(conn, [int(i) for i in pending["files"]], digest_id)

        self._db.write(commit)
        report.digests += 1


def _describe(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code}: {message}" if code else f"{type(exc).__name__}: {message}"
