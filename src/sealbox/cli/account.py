"""`sealbox account create|list`: accounts are created by the operator, offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sealbox.cli.output import OUTPUT_OPTION, emit
from sealbox.clock import SystemClock
from sealbox.config import Settings
from sealbox.iam.accounts import AccountError, create_account, list_accounts
from sealbox.keystore.base import KeyStoreError
from sealbox.server.runtime import open_keystore
from sealbox.storage.db import Database

DATA_DIR_OPTION = click.option(
    "--data-dir",
    envvar="SEALBOX_DATA_DIR",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("./sealbox-data"),
    show_default=True,
)
DATABASE_OPTION = click.option("--database", envvar="SEALBOX_DATABASE", default=None)


def _database(data_dir: Path, database: str | None) -> tuple[Settings, Database]:
    settings = Settings(data_dir=data_dir, database_url=database)
    migrator = Database.for_migrations(settings.resolved_database_url)
    try:
        migrator.migrate()
    finally:
        migrator.dispose()
    return settings, Database(settings.resolved_database_url, pool_size=1)


@click.group()
def account() -> None:
    """Manage accounts (tenants) of this Sealbox."""


@account.command("create")
@click.argument("name")
@click.option("--account-id", default=None, help="12 digits [default: random]")
@DATA_DIR_OPTION
@DATABASE_OPTION
def create(name: str, account_id: str | None, data_dir: Path, database: str | None) -> None:
    """Create account NAME; print its id and root credentials (shown once) as JSON."""
    settings, db = _database(data_dir, database)
    try:
        keystore = open_keystore(settings)
        creds = create_account(db, keystore, SystemClock(), name, account_id)
    except (AccountError, KeyStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(
        json.dumps(
            {
                "AccountId": creds.account_id,
                "AccountName": name,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
            },
            indent=2,
        )
    )


@account.command("list")
@DATA_DIR_OPTION
@DATABASE_OPTION
@OUTPUT_OPTION
def list_(data_dir: Path, database: str | None, output: str) -> None:
    """List the accounts."""
    _, db = _database(data_dir, database)
    try:
        rows = [
            {"AccountId": a.account_id, "Name": a.name, "Created": a.created_at.isoformat()}
            for a in list_accounts(db)
        ]
    finally:
        db.dispose()
    emit(rows, ["AccountId", "Name", "Created"], output)
