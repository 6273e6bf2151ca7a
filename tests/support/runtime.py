"""An in-process Runtime on a real database, with a ManualClock, for domain tests."""

from __future__ import annotations

from pathlib import Path

from sealbox import arn
from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.config import Settings
from sealbox.iam.model import Principal
from sealbox.server.runtime import Runtime
from sealbox.storage.db import Database

ACCOUNT = "111122223333"


def build_runtime(data_dir: Path, clock: ManualClock, database_url: str | None = None) -> Runtime:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=database_url)
    migrator = Database.for_migrations(settings.resolved_database_url)
    migrator.migrate()
    migrator.dispose()
    return Runtime.build(settings, clock=clock)


def root_call(event_name: str, region: str = "us-east-1", account: str = ACCOUNT) -> Call:
    return Call(
        principal=Principal(
            account_id=account,
            arn=arn.account_root_arn(account),
            principal_type="Root",
            principal_id=account,
            access_key_id="AKIATEST",
        ),
        region=region,
        event_source="kms.amazonaws.com",
        event_name=event_name,
        request_id="test",
    )
