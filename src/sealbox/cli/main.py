"""The `sealbox` command."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from sealbox.config import Settings, env_overrides


@click.group()
@click.version_option(package_name="sealbox")
def main() -> None:
    """Sealbox: self-hosted KMS and encrypted storage speaking the AWS wire protocols."""


@main.command()
@click.option("--host", envvar="SEALBOX_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="SEALBOX_PORT", type=int, default=8080, show_default=True)
@click.option(
    "--data-dir",
    envvar="SEALBOX_DATA_DIR",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("./sealbox-data"),
    show_default=True,
)
@click.option(
    "--database",
    envvar="SEALBOX_DATABASE",
    default=None,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db [default: SQLite in data dir]",
)
@click.option(
    "--workers",
    envvar="SEALBOX_WORKERS",
    type=int,
    default=None,
    help="Worker processes [default: one per CPU core]",
)
@click.option("--tls-cert", envvar="SEALBOX_TLS_CERT", type=click.Path(path_type=Path))
@click.option("--tls-key", envvar="SEALBOX_TLS_KEY", type=click.Path(path_type=Path))
@click.option(
    "--tls-self-signed",
    envvar="SEALBOX_TLS_SELF_SIGNED",
    is_flag=True,
    help="Serve HTTPS with a certificate generated into the data dir",
)
@click.option(
    "--scheduler-interval",
    envvar="SEALBOX_SCHEDULER_INTERVAL",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between runs of rotation and deletion work",
)
@click.option(
    "--audit-retention-days",
    envvar="SEALBOX_AUDIT_RETENTION_DAYS",
    type=int,
    default=0,
    show_default=True,
    help="Remove audit records older than this many days (0: keep forever)",
)
@click.option(
    "--s3-upload-expiry-hours",
    envvar="SEALBOX_S3_UPLOAD_EXPIRY_HOURS",
    type=float,
    default=168.0,
    show_default=True,
    help="Abort multipart uploads left unfinished for this many hours (0: never)",
)
@click.option(
    "--trail-delivery-interval",
    envvar="SEALBOX_TRAIL_DELIVERY_INTERVAL",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds between a CloudTrail trail's log file deliveries",
)
@click.option(
    "--trail-digest-interval",
    envvar="SEALBOX_TRAIL_DIGEST_INTERVAL",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds between a validating trail's digest files",
)
@click.option(
    "--clock-offset-seconds",
    envvar="SEALBOX_CLOCK_OFFSET_SECONDS",
    type=float,
    default=0.0,
    hidden=True,
    help="Shift the service clock (disaster drills, tests); SigV4 uses real time",
)
@click.option(
    "--bench-disable-audit",
    is_flag=True,
    hidden=True,
    help="BENCHMARK ONLY: record no audit events",
)
@click.option(
    "--nbd-port",
    envvar="SEALBOX_NBD_PORT",
    type=int,
    default=None,
    help="Serve attached EBS volumes over NBD on this port (TLS with the server's certificate)",
)
@click.option("--log-level", envvar="SEALBOX_LOG_LEVEL", default="info", show_default=True)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    database: str | None,
    workers: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    scheduler_interval: float,
    audit_retention_days: int,
    s3_upload_expiry_hours: float,
    trail_delivery_interval: float,
    trail_digest_interval: float,
    clock_offset_seconds: float,
    bench_disable_audit: bool,
    nbd_port: int | None,
    log_level: str,
) -> None:
    """Run the Sealbox server."""
    from sealbox.cli.serve import run

    settings = Settings(
        data_dir=data_dir,
        database_url=database,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_self_signed=tls_self_signed,
        scheduler_interval_seconds=scheduler_interval,
        audit_retention_days=audit_retention_days,
        s3_upload_expiry_hours=s3_upload_expiry_hours,
        trail_delivery_interval_seconds=trail_delivery_interval,
        trail_digest_interval_seconds=trail_digest_interval,
        clock_offset_seconds=clock_offset_seconds,
        bench_disable_audit=bench_disable_audit,
        nbd_port=nbd_port,
        log_level=log_level,
    )
    if workers is not None:
        settings = dataclasses.replace(settings, workers=workers)
    settings = dataclasses.replace(settings, **env_overrides())  # type: ignore[arg-type]
    run(settings)


def _register() -> None:
    from sealbox.cli.account import account
    from sealbox.cli.audit import audit

    main.add_command(account)
    main.add_command(audit)


_register()
