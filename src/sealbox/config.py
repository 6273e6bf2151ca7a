"""Typed settings. Every `sealbox serve` flag has a SEALBOX_* environment variable."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REGION = "us-east-1"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./sealbox-data")
    database_url: str | None = None  # default: SQLite in data_dir
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    master_passphrase: str | None = None
    root_access_key_id: str | None = None
    root_secret_access_key: str | None = None
    account_id: str | None = None
    # Shifts the domain clock; for disaster drills and end-to-end tests of time-driven
    # work. SigV4 freshness always uses real time.
    clock_offset_seconds: float = 0.0
    scheduler_interval_seconds: float = 60.0
    # Audit records older than this many days leave the database (0: keep forever).
    audit_retention_days: int = 0
    # Multipart uploads unfinished for this long are aborted (0: never).
    s3_upload_expiry_hours: float = 168.0
    # CloudTrail trails: how often a logging trail delivers a log file, and how often one
    # with log file validation delivers a digest (AWS: about 5 minutes, and hourly).
    trail_delivery_interval_seconds: float = 300.0
    trail_digest_interval_seconds: float = 3600.0
    # Benchmark only: record no audit events (to measure what auditing costs).
    bench_disable_audit: bool = False
    log_level: str = "info"
    # Serve attached volumes over NBD on this port (None: no block server).
    nbd_port: int | None = None
    # Set by the supervisor for its workers: the journal process's socket.
    audit_journal_socket: Path | None = None

    @property
    def audit_journal_dir(self) -> Path:
        """Where each server process makes its audit events durable (audit/journal.py)."""
        return self.data_dir / "audit-journal"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'sealbox.db'}"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_self_signed or self.tls_cert is not None

    def validate(self) -> None:
        if self.account_id is not None and not re.fullmatch(r"\d{12}", self.account_id):
            raise ConfigError("SEALBOX_ACCOUNT_ID must be 12 digits")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_self_signed and self.tls_cert is not None:
            raise ConfigError("use either --tls-cert/--tls-key or --tls-self-signed")
        if (self.root_access_key_id is None) != (self.root_secret_access_key is None):
            raise ConfigError(
                "SEALBOX_ROOT_ACCESS_KEY_ID and SEALBOX_ROOT_SECRET_ACCESS_KEY go together"
            )
        if self.root_access_key_id is not None and not re.fullmatch(
            r"[A-Z0-9]{16,128}", self.root_access_key_id
        ):
            raise ConfigError("SEALBOX_ROOT_ACCESS_KEY_ID must be 16-128 of A-Z and 0-9")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.s3_upload_expiry_hours < 0:
            raise ConfigError("--s3-upload-expiry-hours must be 0 (never) or more")
        if self.audit_retention_days < 0:
            raise ConfigError("--audit-retention-days must be 0 (keep forever) or more")
        if self.trail_delivery_interval_seconds <= 0 or self.trail_digest_interval_seconds <= 0:
            raise ConfigError("--trail-delivery-interval and --trail-digest-interval must be > 0")


def env_overrides() -> dict[str, str]:
    """Settings only taken from the environment (secrets never go on a command line)."""
    names = {
        "master_passphrase": "SEALBOX_MASTER_PASSPHRASE",
        "root_access_key_id": "SEALBOX_ROOT_ACCESS_KEY_ID",
        "root_secret_access_key": "SEALBOX_ROOT_SECRET_ACCESS_KEY",
        "account_id": "SEALBOX_ACCOUNT_ID",
    }
    return {attr: os.environ[var] for attr, var in names.items() if os.environ.get(var)}
