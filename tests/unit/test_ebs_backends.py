"""The EBS service on SQLite and PostgreSQL: volumes, incremental snapshots, copies,
direct-API blocks and deletes round-trip the same on both."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.ebs.model import BLOCK_SIZE
from sealbox.server.runtime import Runtime
from sealbox.storage import ebs_repo
from tests.support.runtime import build_runtime, root_call


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def rt(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", ManualClock(), database_url)
    yield runtime
    runtime.close()


def test_volumes_snapshots_and_blocks_round_trip(rt: Runtime) -> None:
    region = f"eu-north-{id(rt) % 100000}"  # unique on a shared schema
    ebs = rt.ebs

    def call(name: str) -> Call:
        return root_call(name, region=region)

    volume = ebs.create_volume(
        call("CreateVolume"),
        size=1,
        availability_zone=f"{region}a",
        tag_specifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    ebs.attach_volume(call("AttachVolume"), volume.volume_id, "i-0123456789abcdef0", "xvdf")
    device = ebs.export(volume.volume_id)
    assert device is not None
    data = os.urandom(3 * BLOCK_SIZE)
    device.write(0, data)
    first = ebs.create_snapshot(call("CreateSnapshot"), volume.volume_id)
    device.write(0, os.urandom(100))
    second = ebs.create_snapshot(call("CreateSnapshot"), volume.volume_id)
    with rt.db.read() as conn:
        a = {r.block_index: r.block_id for r in ebs_repo.snapshot_blocks(conn, first.snapshot_id)}
        b = {r.block_index: r.block_id for r in ebs_repo.snapshot_blocks(conn, second.snapshot_id)}
    assert a[1] == b[1] and a[2] == b[2] and a[0] != b[0]
    volumes, _ = ebs.describe_volumes(
        call("DescribeVolumes"),
        filters=[{"Name": "tag:k", "Values": ["v"]}, {"Name": "status", "Values": ["in-use"]}],
    )
    assert [v.volume_id for v in volumes] == [volume.volume_id]
    key = rt.kms.create_key(root_call("CreateKey", region=region)).key.arn
    copy = ebs.copy_snapshot(
        call("CopySnapshot"),
        source_region=region,
        source_snapshot_id=first.snapshot_id,
        encrypted=True,
        kms_key_id=key,
    )
    restored = ebs.create_volume(
        call("CreateVolume"),
        snapshot_id=copy.snapshot_id,
        availability_zone=f"{region}b",
    )
    ebs.attach_volume(call("AttachVolume"), restored.volume_id, "i-0123456789abcdef1", "xvdg")
    back = ebs.export(restored.volume_id)
    assert back is not None and back.read(0, len(data)) == data

    direct = ebs.start_snapshot(call("StartSnapshot"), volume_size=1, client_token=region)
    block = os.urandom(BLOCK_SIZE)
    ebs.put_snapshot_block(
        call("PutSnapshotBlock"),
        direct.snapshot_id,
        4,
        block,
        data_length=BLOCK_SIZE,
        checksum=base64.b64encode(hashlib.sha256(block).digest()).decode(),
        checksum_algorithm="SHA256",
    )
    ebs.complete_snapshot(call("CompleteSnapshot"), direct.snapshot_id, 1)
    [listed] = ebs.list_snapshot_blocks(call("ListSnapshotBlocks"), direct.snapshot_id)["Blocks"]
    got, _ = ebs.get_snapshot_block(
        call("GetSnapshotBlock"),
        direct.snapshot_id,
        4,
        listed["BlockToken"],
    )
    assert got == block

    for snap in (first, second, copy, direct):
        ebs.delete_snapshot(call("DeleteSnapshot"), snap.snapshot_id)
    with rt.db.read() as conn:
        left = ebs_repo.all_block_ids(conn)
    assert not left & (set(a.values()) | set(b.values()))
