"""`sealbox serve`: prepare the data directory, then run the ASGI app under uvicorn.

The parent process does the one-time work (keystore, migrations, first account,
TLS certificate) before any worker starts; each worker then opens the same data
directory and database. Settings reach the workers through SEALBOX_* variables.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from sealbox.clock import SystemClock
from sealbox.config import ConfigError, Settings
from sealbox.crypto.tls import write_self_signed
from sealbox.iam.bootstrap import bootstrap
from sealbox.iam.model import NewCredentials
from sealbox.keystore.base import KeyStoreError
from sealbox.server import workers
from sealbox.server.runtime import Runtime, open_keystore
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database

log = logging.getLogger("sealbox")


def write_credentials_file(data_dir: Path, creds: NewCredentials) -> Path:
    path = data_dir / "credentials"
    text = (
        "[sealbox]\n"
        f"aws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def prepare(settings: Settings) -> None:
    """Everything that must happen once, before workers start."""
    settings.validate()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keystore = open_keystore(settings)
    if not settings.master_passphrase:
        log.warning(
            "the root key in %s is NOT protected by a passphrase; set "
            "SEALBOX_MASTER_PASSPHRASE to seal it",
            settings.data_dir,
        )
    db = Database.for_migrations(settings.resolved_database_url)
    try:
        db.migrate()
    finally:
        db.dispose()
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        clock = SystemClock(timedelta(seconds=settings.clock_offset_seconds))
        creds = bootstrap(
            db,
            keystore,
            clock,
            settings.account_id,
            settings.root_access_key_id,
            settings.root_secret_access_key,
        )
    finally:
        db.dispose()
    if creds is not None:
        path = write_credentials_file(settings.data_dir, creds)
        click.echo(
            f"Created account {creds.account_id}. Root credentials (shown once; also in "
            f"{path}, profile 'sealbox'):\n"
            f"  aws_access_key_id     = {creds.access_key_id}\n"
            f"  aws_secret_access_key = {creds.secret_access_key}",
            err=True,
        )
    # Blobs a crash left half-written were never named by any object: remove them.
    removed = BlobStore(settings.data_dir / "blobs").clear_tmp()
    if removed:
        log.info("removed %d half-written blobs of an interrupted run", removed)
    # Deletion windows that ended and rotations that fell due while the server was
    # down are acted on before any worker serves a request.
    runtime = Runtime.build(settings)
    try:
        runtime.run_scheduled_work()
    finally:
        runtime.close()
    if settings.tls_self_signed:
        cert, key = settings.data_dir / "tls-cert.pem", settings.data_dir / "tls-key.pem"
        if not cert.exists() or not key.exists():
            write_self_signed(cert, key, ["localhost", settings.host])


def export_for_workers(settings: Settings) -> None:
    os.environ["SEALBOX_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["SEALBOX_DATABASE"] = settings.resolved_database_url
    os.environ["SEALBOX_CLOCK_OFFSET_SECONDS"] = str(settings.clock_offset_seconds)
    os.environ["SEALBOX_SCHEDULER_INTERVAL"] = str(settings.scheduler_interval_seconds)
    os.environ["SEALBOX_AUDIT_RETENTION_DAYS"] = str(settings.audit_retention_days)
    os.environ["SEALBOX_S3_UPLOAD_EXPIRY_HOURS"] = str(settings.s3_upload_expiry_hours)
    os.environ["SEALBOX_TRAIL_DELIVERY_INTERVAL"] = str(settings.trail_delivery_interval_seconds)
    os.environ["SEALBOX_TRAIL_DIGEST_INTERVAL"] = str(settings.trail_digest_interval_seconds)
    os.environ["SEALBOX_BENCH_DISABLE_AUDIT"] = "1" if settings.bench_disable_audit else "0"
    metrics_dir = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        prepare(settings)
    except (ConfigError, KeyStoreError) as exc:
        click.echo(f"sealbox: {exc}", err=True)
        sys.exit(2)
    export_for_workers(settings)
    tls: dict[str, str] = {}
    if settings.tls_self_signed:
        tls = {
            "ssl_certfile": str(settings.data_dir / "tls-cert.pem"),
            "ssl_keyfile": str(settings.data_dir / "tls-key.pem"),
        }
    elif settings.tls_cert is not None and settings.tls_key is not None:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    scheme = "https" if tls else "http"
    click.echo(
        f"Sealbox listening on {scheme}://{settings.host}:{settings.port} "
        f"({settings.workers} workers, data in {settings.data_dir})",
        err=True,
    )
    options: dict[str, Any] = {
        "http": "httptools",
        "loop": "uvloop",
        "access_log": False,
        "log_level": settings.log_level,
        "server_header": False,
        "proxy_headers": False,  # no trusted proxy by default: the peer is the client
        "timeout_keep_alive": 60,
        **tls,
    }
    block_server = None
    if settings.nbd_port is not None:
        from sealbox.server.block_server import BlockServer

        block_server = BlockServer(settings, settings.nbd_port)
        try:
            port = block_server.start()
        except OSError as exc:
            click.echo(f"sealbox: cannot serve NBD on port {settings.nbd_port}: {exc}", err=True)
            sys.exit(2)
        click.echo(f"Sealbox serving attached volumes over NBD on port {port}", err=True)
    try:
        status = workers.run(
            settings.workers,
            settings.host,
            settings.port,
            options,
            None if settings.bench_disable_audit else settings.audit_journal_dir,
        )
    except OSError as exc:
        click.echo(f"sealbox: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        status = 2
    finally:
        if block_server is not None:
            block_server.stop()
    sys.exit(status)
