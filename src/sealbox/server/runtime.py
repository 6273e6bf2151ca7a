"""Everything one process needs to serve: database, root of trust, services."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sealbox.audit import trail_wiring
from sealbox.audit.delivery import TrailDelivery, retention_bound
from sealbox.audit.lookup import LookupService
from sealbox.audit.recorder import AuditRecorder, DisabledAuditRecorder
from sealbox.audit.retention import prune as prune_audit
from sealbox.audit.trails import TrailService
from sealbox.auth.principal import CredentialStore
from sealbox.auth.sigv4 import Verifier
from sealbox.call import Call
from sealbox.clock import Clock, SystemClock
from sealbox.config import Settings
from sealbox.ebs.service import EbsService
from sealbox.iam.authz import Authorizer
from sealbox.iam.model import Principal
from sealbox.iam.sts import StsService
from sealbox.keystore.base import KeyStore
from sealbox.keystore.sealed_file import SealedFileKeyStore
from sealbox.kms.grant_ops import GrantService
from sealbox.kms.scheduler import KeyScheduler
from sealbox.kms.service import KmsService
from sealbox.s3.service import S3Service
from sealbox.server.metrics import count_internal_kms
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database

log = logging.getLogger("sealbox")


def settings_from_env() -> Settings:
    """The settings `sealbox serve` exported for its worker processes."""
    env = os.environ
    return Settings(
        data_dir=Path(env.get("SEALBOX_DATA_DIR", "./sealbox-data")),
        database_url=env.get("SEALBOX_DATABASE") or None,
        master_passphrase=env.get("SEALBOX_MASTER_PASSPHRASE") or None,
        clock_offset_seconds=float(env.get("SEALBOX_CLOCK_OFFSET_SECONDS", "0") or 0),
        scheduler_interval_seconds=float(env.get("SEALBOX_SCHEDULER_INTERVAL", "60") or 60),
        audit_retention_days=int(env.get("SEALBOX_AUDIT_RETENTION_DAYS", "0") or 0),
        s3_upload_expiry_hours=float(env.get("SEALBOX_S3_UPLOAD_EXPIRY_HOURS", "168") or 168),
        trail_delivery_interval_seconds=float(
            env.get("SEALBOX_TRAIL_DELIVERY_INTERVAL", "300") or 300
        ),
        trail_digest_interval_seconds=float(
            env.get("SEALBOX_TRAIL_DIGEST_INTERVAL", "3600") or 3600
        ),
        bench_disable_audit=env.get("SEALBOX_BENCH_DISABLE_AUDIT") == "1",
        audit_journal_socket=Path(env["SEALBOX_AUDIT_JOURNAL_SOCKET"])
        if env.get("SEALBOX_AUDIT_JOURNAL_SOCKET")
        else None,
    )


def open_keystore(settings: Settings) -> KeyStore:
    return SealedFileKeyStore.open_or_create(settings.data_dir, settings.master_passphrase)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keystore: KeyStore
    clock: Clock
    audit: AuditRecorder
    authorizer: Authorizer
    kms: KmsService
    kms_scheduler: KeyScheduler
    grants: GrantService
    lookup: LookupService
    sts: StsService
    credentials: CredentialStore
    verifier: Verifier
    s3: S3Service
    trails: TrailService
    trail_delivery: TrailDelivery
    ebs: EbsService

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        clock = clock or SystemClock(timedelta(seconds=settings.clock_offset_seconds))
        db = Database(settings.resolved_database_url)
        keystore = open_keystore(settings)
        audit = AuditRecorder(db, clock, settings.audit_journal_dir, settings.audit_journal_socket)
        if settings.bench_disable_audit:
            log.warning("BENCHMARK MODE: audit recording is DISABLED; calls go unaudited")
            audit = DisabledAuditRecorder(db, clock)
        authorizer = Authorizer(db, clock)
        kms = KmsService(db, keystore, clock, audit, authorizer, on_internal_op=count_internal_kms)
        s3 = S3Service(
            db,
            clock,
            keystore,
            kms,
            authorizer,
            BlobStore(settings.data_dir / "blobs"),
            count_kms=lambda operation: count_internal_kms(operation, "s3"),
        )
        trails, trail_delivery = trail_wiring.build(
            settings, db, keystore, clock, audit, authorizer, kms, s3
        )
        ebs = EbsService(
            db,
            clock,
            keystore,
            kms,
            authorizer,
            settings.data_dir,
            # BENCHMARK ONLY: volumes stored unencrypted, to measure what XTS costs.
            null_cipher=os.environ.get("SEALBOX_BENCH_EBS_NULL_CIPHER") == "1",
            count_kms=lambda operation: count_internal_kms(operation, "ebs"),
        )
        return cls(
            settings=settings,
            db=db,
            keystore=keystore,
            clock=clock,
            audit=audit,
            authorizer=authorizer,
            kms=kms,
            kms_scheduler=KeyScheduler(kms, db, clock),
            grants=kms.grant_service,
            lookup=LookupService(db, authorizer, audit.catch_up),
            sts=StsService(db, keystore, clock, audit, authorizer),
            credentials=CredentialStore(db, keystore, clock),
            # SigV4 freshness is judged against real time, never the shifted clock.
            verifier=Verifier(SystemClock()),
            s3=s3,
            trails=trails,
            trail_delivery=trail_delivery,
            ebs=ebs,
        )

    def system_call(self, account_id: str, region: str, event_name: str) -> Call:
        """A Call made by Sealbox itself (scheduled rotation and deletion)."""
        return Call(
            principal=Principal(
                account_id=account_id,
                arn="kms.amazonaws.com",
                principal_type="AWSService",
                principal_id="kms.amazonaws.com",
            ),
            region=region,
            event_source="kms.amazonaws.com",
            event_name=event_name,
            request_id="",
            invoked_by="kms.amazonaws.com",
        )

    def run_scheduled_work(self) -> None:
        deleted, rotated = self.kms_scheduler.run_due_work(self.system_call)
        if deleted or rotated:
            log.info("scheduled work: %d keys deleted, %d keys rotated", deleted, rotated)
        hours = self.settings.s3_upload_expiry_hours
        if hours > 0:
            aborted = self.s3.multipart.expire_uploads(timedelta(hours=hours))
            if aborted:
                log.info("aborted %d multipart uploads unfinished for %g hours", aborted, hours)
        expired = self.ebs.run_scheduled_work()
        if expired:
            log.info("%d EBS direct-API snapshots timed out", expired)
        self.audit.catch_up()  # trails deliver what the journal holds too
        delivered = self.trail_delivery.run_due()
        if delivered.log_files or delivered.digests:
            log.info("trails: %d log files, %d digests", delivered.log_files, delivered.digests)
        days = self.settings.audit_retention_days
        if days > 0:
            cutoff = self.clock.now() - timedelta(days=days)
            undelivered = retention_bound(self.db)  # trails deliver before records go
            if undelivered is not None:
                cutoff = min(cutoff, undelivered)
            removed = prune_audit(self.db, cutoff)
            if removed:
                log.info("audit retention: %d records older than %d days removed", removed, days)

    def close(self) -> None:
        self.ebs.close()
        self.audit.close()
        self.db.dispose()
