"""The same storage behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sealbox.clock import ManualClock
from sealbox.kms.errors import DisabledError
from sealbox.server.runtime import Runtime
from tests.support.runtime import ACCOUNT, build_runtime, root_call
from tests.support.server import ServerProcess


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None  # the default: SQLite in the data dir
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def rt(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", ManualClock(), database_url)
    yield runtime
    runtime.close()


def test_migrations_are_idempotent(tmp_path: Path, database_url: str | None) -> None:
    for _ in range(2):  # a second start finds the schema current
        build_runtime(tmp_path / "again", ManualClock(), database_url).close()


def test_keys_versions_aliases_and_tags_round_trip(rt: Runtime) -> None:
    account = f"{ACCOUNT}"
    region = f"ap-south-{id(rt) % 1000}"  # unique per test on a shared schema
    call = root_call("CreateKey", region=region, account=account)
    desc = rt.kms.create_key(call, description="pg", tags=[("a", "1"), ("b", "2")])
    key_id = desc.key.key_id
    rt.kms.create_alias(root_call("CreateAlias", region, account), "alias/rt", key_id)
    rt.kms.rotate_key_on_demand(root_call("RotateKeyOnDemand", region, account), key_id)
    blob = rt.kms.encrypt(root_call("Encrypt", region, account), "alias/rt", b"p").ciphertext

    again = rt.kms.describe_key(root_call("DescribeKey", region, account), "alias/rt")
    assert again.key.key_id == key_id
    assert again.key.current_version == 2
    assert again.key.creation_date == desc.key.creation_date
    assert again.key.creation_date.utcoffset() == timedelta(0)
    listing = root_call("ListResourceTags", region, account)
    tags = rt.kms.list_resource_tags(listing, key_id, None, None)
    assert tags.tags == [("a", "1"), ("b", "2")]
    plain = rt.kms.decrypt(root_call("Decrypt", region, account), blob).plaintext
    assert plain == b"p"


def test_a_change_in_one_process_is_seen_by_another(
    tmp_path: Path, database_url: str | None
) -> None:
    # Two runtimes on one database stand in for two worker processes.
    clock = ManualClock()
    a = build_runtime(tmp_path / "data", clock, database_url)
    b = build_runtime(tmp_path / "data", clock, database_url)
    try:
        region = f"sa-east-{id(a) % 1000}"
        key_id = a.kms.create_key(root_call("CreateKey", region)).key.key_id
        b.kms.encrypt(root_call("Encrypt", region), key_id, b"warm the cache")
        a.kms.disable_key(root_call("DisableKey", region), key_id)
        with pytest.raises(DisabledError):
            b.kms.encrypt(root_call("Encrypt", region), key_id, b"x")
        a.kms.enable_key(root_call("EnableKey", region), key_id)
        a.kms.rotate_key_on_demand(root_call("RotateKeyOnDemand", region), key_id)
        blob = a.kms.encrypt(root_call("Encrypt", region), key_id, b"v2").ciphertext
        assert b.kms.decrypt(root_call("Decrypt", region), blob).plaintext == b"v2"
    finally:
        a.close()
        b.close()


def test_server_runs_on_postgresql(
    make_server: Callable[..., ServerProcess], postgres_url: str
) -> None:
    srv = make_server(database=postgres_url)
    kms = srv.client(region="ca-central-1")
    key_id = kms.create_key(Description="on postgres")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"pg")["CiphertextBlob"]
    srv.restart()
    kms = srv.client(region="ca-central-1")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"pg"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "on postgres"
