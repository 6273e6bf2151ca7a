"""Trails as the domain sees them: configuration, logging status and delivery state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sealbox import arn as arns

SERVICE_PRINCIPAL = "cloudtrail.amazonaws.com"


def trail_arn(region: str, account_id: str, name: str) -> str:
    return str(arns.Arn("cloudtrail", region, account_id, f"trail/{name}"))


@dataclass(frozen=True, slots=True)
class Trail:
    trail_id: str
    account_id: str
    region: str  # the home region
    name: str
    s3_bucket: str
    s3_prefix: str | None
    include_global: bool
    multi_region: bool
    log_validation: bool
    kms_key_id: str | None
    event_selectors: list[dict[str, Any]] | None  # None: the default selector
    advanced_selectors: list[dict[str, Any]] | None
    tags: dict[str, str]
    created_at: datetime
    is_logging: bool
    start_logging_time: datetime | None = None
    stop_logging_time: datetime | None = None

    @property
    def arn(self) -> str:
        return trail_arn(self.region, self.account_id, self.name)

    @property
    def has_custom_selectors(self) -> bool:
        return self.event_selectors is not None or self.advanced_selectors is not None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where delivery stands for one trail (see audit/delivery.py)."""

    trail_id: str
    delivered_seq: int
    stop_seq: int | None
    skipped: list[tuple[int, int]]  # (after, upto]: seqs recorded while stopped
    next_delivery_at: datetime | None
    latest_delivery_time: datetime | None
    latest_delivery_attempt: datetime | None
    latest_delivery_error: str | None
    digest_epoch: int
    digest_start: datetime | None
    next_digest_at: datetime | None
    latest_digest_time: datetime | None
    latest_digest_error: str | None
    pending: dict[str, Any] | None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    def skips(self, seq: int) -> bool:
        return any(after < seq <= upto for after, upto in self.skipped)


@dataclass(frozen=True, slots=True)
class LogFile:
    id: int
    trail_id: str
    region: str
    bucket: str
    key: str
    sha256: str
    oldest_event_time: datetime | None
    newest_event_time: datetime | None
    delivered_at: datetime
    digest_id: int | None


@dataclass(frozen=True, slots=True)
class Digest:
    id: int
    trail_id: str
    region: str
    epoch: int
    account_id: str
    start_time: datetime
    end_time: datetime
    bucket: str
    key: str
    sha256: str
    signature: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    region: str
    generation: int
    fingerprint: str
    public_key: bytes  # DER PKCS #1
    wrapped_private_key: bytes = field(repr=False)
    valid_from: datetime
    valid_to: datetime | None = None
