"""Build the CloudTrail trail services of a Runtime (kept here so runtime.py stays small)."""

from __future__ import annotations

from datetime import timedelta

from sealbox.audit.delivery import TrailDelivery
from sealbox.audit.digests import DigestSigner
from sealbox.audit.recorder import AuditRecorder
from sealbox.audit.trail_s3 import TrailS3
from sealbox.audit.trails import TrailService, TrailSettings
from sealbox.clock import Clock
from sealbox.config import Settings
from sealbox.iam.authz import Authorizer
from sealbox.keystore.base import KeyStore
from sealbox.kms.service import KmsService
from sealbox.s3.service import S3Service
from sealbox.storage.db import Database


def trail_settings(settings: Settings) -> TrailSettings:
    return TrailSettings(
        delivery_interval=timedelta(seconds=settings.trail_delivery_interval_seconds),
        digest_interval=timedelta(seconds=settings.trail_digest_interval_seconds),
    )


def build(
    settings: Settings,
    db: Database,
    keystore: KeyStore,
    clock: Clock,
    audit: AuditRecorder,
    authorizer: Authorizer,
    kms: KmsService,
    s3: S3Service,
) -> tuple[TrailService, TrailDelivery]:
    timing = trail_settings(settings)
    writer = TrailS3(db, clock, s3, audit)
    signer = DigestSigner(db, keystore, clock)
    trails = TrailService(db, clock, audit, authorizer, kms, writer, signer, timing)
    return trails, TrailDelivery(db, clock, writer, signer, timing)
