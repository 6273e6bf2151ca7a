"""Rotation and deletion windows, driven by moving a ManualClock (never by sleeping)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sealbox.clock import ManualClock
from sealbox.kms.errors import InvalidStateError, NotFoundError
from sealbox.server.runtime import Runtime
from sealbox.storage import audit_repo
from tests.support.runtime import ACCOUNT, build_runtime, root_call


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", clock)
    yield runtime
    runtime.close()


def new_key(rt: Runtime) -> str:
    return rt.kms.create_key(root_call("CreateKey")).key.key_id


def test_automatic_rotation_adds_a_version_when_due(rt: Runtime, clock: ManualClock) -> None:
    key_id = new_key(rt)
    old = rt.kms.encrypt(root_call("Encrypt"), key_id, b"before").ciphertext
    rt.kms.enable_key_rotation(root_call("EnableKeyRotation"), key_id, 90)

    clock.advance(timedelta(days=89))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 0)
    clock.advance(timedelta(days=1, seconds=1))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 1)
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 0)  # idempotent

    status = rt.kms.get_key_rotation_status(root_call("GetKeyRotationStatus"), key_id)
    assert status.next_rotation_date == clock.now() + timedelta(days=90)
    rotations = rt.kms.list_key_rotations(root_call("ListKeyRotations"), key_id, None, None)
    assert [r.rotation_type for r in rotations.rotations] == ["AUTOMATIC"]
    new = rt.kms.encrypt(root_call("Encrypt"), key_id, b"after").ciphertext
    assert new[:44] != old[:44]  # the header names version 2 now
    assert rt.kms.decrypt(root_call("Decrypt"), old).plaintext == b"before"
    assert rt.kms.decrypt(root_call("Decrypt"), new).plaintext == b"after"


def test_disabled_keys_do_not_rotate(rt: Runtime, clock: ManualClock) -> None:
    key_id = new_key(rt)
    rt.kms.enable_key_rotation(root_call("EnableKeyRotation"), key_id, 90)
    rt.kms.disable_key(root_call("DisableKey"), key_id)
    clock.advance(timedelta(days=91))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 0)
    rt.kms.enable_key(root_call("EnableKey"), key_id)
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 1)


def test_deletion_window_ends_with_crypto_shredding(rt: Runtime, clock: ManualClock) -> None:
    key_id = new_key(rt)
    blob = rt.kms.encrypt(root_call("Encrypt"), key_id, b"secret").ciphertext
    rt.kms.create_alias(root_call("CreateAlias"), "alias/doomed", key_id)
    scheduled = rt.kms.schedule_key_deletion(root_call("ScheduleKeyDeletion"), key_id, 7)
    assert scheduled.deletion_date == clock.now() + timedelta(days=7)
    with pytest.raises(InvalidStateError):
        rt.kms.decrypt(root_call("Decrypt"), blob)

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 0)
    assert rt.kms.describe_key(root_call("DescribeKey"), key_id).key.key_state.value == (
        "PendingDeletion"
    )
    clock.advance(timedelta(seconds=1))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (1, 0)

    with pytest.raises(NotFoundError):
        rt.kms.describe_key(root_call("DescribeKey"), key_id)
    with pytest.raises(NotFoundError):
        rt.kms.decrypt(root_call("Decrypt"), blob)
    aliases = rt.kms.list_aliases(root_call("ListAliases"), None, None, None).aliases
    assert "alias/doomed" not in [a.alias_name for a in aliases]
    with rt.db.read() as conn:
        events = audit_repo.latest_records(conn, ACCOUNT, limit=5)
    assert events[0]["eventName"] == "DeleteKey"
    assert events[0]["userIdentity"]["invokedBy"] == "kms.amazonaws.com"


def test_cancelled_deletion_keeps_the_key_disabled(rt: Runtime, clock: ManualClock) -> None:
    key_id = new_key(rt)
    rt.kms.schedule_key_deletion(root_call("ScheduleKeyDeletion"), key_id, 7)
    rt.kms.cancel_key_deletion(root_call("CancelKeyDeletion"), key_id)
    clock.advance(timedelta(days=31))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 0)
    key = rt.kms.describe_key(root_call("DescribeKey"), key_id).key
    assert key.key_state.value == "Disabled" and key.deletion_date is None


def test_keys_live_in_their_region(rt: Runtime) -> None:
    key_id = new_key(rt)
    with pytest.raises(NotFoundError):
        rt.kms.describe_key(root_call("DescribeKey", region="eu-west-1"), key_id)


def test_aws_managed_key_is_created_once(rt: Runtime) -> None:
    first = rt.kms.ensure_aws_managed_key(ACCOUNT, "us-east-1", "s3")
    second = rt.kms.ensure_aws_managed_key(ACCOUNT, "us-east-1", "s3")
    assert first.key_id == second.key_id
    assert first.key_manager.value == "AWS"
    desc = rt.kms.describe_key(root_call("DescribeKey"), "alias/aws/s3")
    assert desc.key.key_id == first.key_id


def test_key_material_never_lies_in_the_data_dir_unwrapped(rt: Runtime, tmp_path: Path) -> None:
    key_id = new_key(rt)
    rt.kms.rotate_key_on_demand(root_call("RotateKeyOnDemand"), key_id)
    rt.kms.encrypt(root_call("Encrypt"), key_id, b"x")
    key = rt.kms.describe_key(root_call("DescribeKey"), key_id).key
    with rt.db.read() as conn:
        materials = list(rt.kms.keyring.load_view(conn, key).materials.values())
    assert len(materials) == 2
    rt.close()
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert files
    for path in files:
        content = path.read_bytes()
        for material in materials:
            assert material.secret not in content, f"key material in {path}"
            assert material.secret.hex().encode() not in content


def test_primary_waits_for_its_replica_then_starts_its_window(
    rt: Runtime, clock: ManualClock
) -> None:
    key = rt.kms.create_key(root_call("CreateKey"), multi_region=True).key
    rt.kms.multi_region.replicate_key(root_call("ReplicateKey"), key.key_id, "eu-west-1")
    scheduled = rt.kms.schedule_key_deletion(root_call("ScheduleKeyDeletion"), key.key_id, 7)
    assert scheduled.key_state == "PendingReplicaDeletion" and scheduled.deletion_date is None
    replica = root_call("ScheduleKeyDeletion", region="eu-west-1")
    rt.kms.schedule_key_deletion(replica, key.key_id, 7)

    clock.advance(timedelta(days=7, seconds=1))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (1, 0)  # the replica goes
    primary = rt.kms.describe_key(root_call("DescribeKey"), key.key_id).key
    assert primary.key_state.value == "PendingDeletion"
    assert primary.deletion_date == clock.now() + timedelta(days=7)
    clock.advance(timedelta(days=7, seconds=1))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (1, 0)
    with pytest.raises(NotFoundError):
        rt.kms.describe_key(root_call("DescribeKey"), key.key_id)


def test_multi_region_rotation_reaches_replicas(rt: Runtime, clock: ManualClock) -> None:
    key = rt.kms.create_key(root_call("CreateKey"), multi_region=True).key
    rt.kms.multi_region.replicate_key(root_call("ReplicateKey"), key.key_id, "eu-west-1")
    rt.kms.enable_key_rotation(root_call("EnableKeyRotation"), key.key_id, 90)
    west = root_call("GetKeyRotationStatus", region="eu-west-1")
    assert rt.kms.get_key_rotation_status(west, key.key_id).enabled
    clock.advance(timedelta(days=91))
    assert rt.kms_scheduler.run_due_work(rt.system_call) == (0, 1)  # once, on the primary
    blob = rt.kms.encrypt(root_call("Encrypt"), key.key_id, b"v2").ciphertext
    assert rt.kms.decrypt(root_call("Decrypt", region="eu-west-1"), blob).plaintext == b"v2"
