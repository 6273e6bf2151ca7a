"""Snapshot blocks: sealing, authentication failures, and sharing between snapshots
(incremental snapshots, reference counting on delete)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealbox.clock import ManualClock
from sealbox.crypto import InvalidCiphertext
from sealbox.ebs.blocks import BlockKeys, BlockStore
from sealbox.ebs.errors import StoredDataCorrupt
from sealbox.ebs.model import BLOCK_SIZE
from sealbox.server.runtime import Runtime
from sealbox.storage import ebs_repo
from tests.support.runtime import build_runtime, root_call

DATA_KEY = os.urandom(32)
INSTANCE = "i-0123456789abcdef0"


def test_blocks_round_trip_and_bind_lineage_and_index(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    keys = BlockKeys(DATA_KEY, "vol-0123456789abcdef0")
    data = os.urandom(BLOCK_SIZE)
    block_id = store.put(keys, 7, data)
    assert store.get(keys, block_id, 7) == data
    with pytest.raises(StoredDataCorrupt):
        store.get(keys, block_id, 8)  # moved to another index
    with pytest.raises(StoredDataCorrupt):
        store.get(BlockKeys(DATA_KEY, "vol-ffffffffffffffff0"), block_id, 7)  # other lineage
    with pytest.raises(StoredDataCorrupt):
        store.get(BlockKeys(os.urandom(32), "vol-0123456789abcdef0"), block_id, 7)


def test_tampered_or_missing_blocks_are_never_served(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    keys = BlockKeys(DATA_KEY, "snap-0123456789abcdef0")
    block_id = store.put(keys, 0, b"\x01" * BLOCK_SIZE)
    path = next(p for p in (tmp_path / "blocks").rglob(block_id))
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(StoredDataCorrupt):
        store.get(keys, block_id, 0)
    path.unlink()
    with pytest.raises(StoredDataCorrupt):
        store.get(keys, block_id, 0)


def test_block_files_hold_no_plaintext(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    canary = b"BLOCK-CANARY-" + os.urandom(6).hex().encode()
    keys = BlockKeys(DATA_KEY, "snap-0123456789abcdef0")
    store.put(keys, 3, (canary * (BLOCK_SIZE // len(canary) + 1))[:BLOCK_SIZE])
    for path in (tmp_path / "blocks").rglob("*"):
        if path.is_file():
            assert canary not in path.read_bytes()


def test_macs_are_keyed_by_lineage() -> None:
    data = os.urandom(4096)
    a = BlockKeys(DATA_KEY, "vol-1")
    assert a.same(a.mac(data), a.mac(data))
    assert not a.same(a.mac(data), a.mac(data + b"x"))
    assert a.mac(data) != BlockKeys(DATA_KEY, "vol-2").mac(data)
    assert a.mac(data) != BlockKeys(os.urandom(32), "vol-1").mac(data)
    assert not a.same(None, a.mac(data))


def test_sealed_checksums_open_only_for_their_block() -> None:
    keys = BlockKeys(DATA_KEY, "snap-1")
    sealed = keys.seal_checksum("snap-1", 4, b"d" * 32)
    assert keys.open_checksum("snap-1", 4, sealed) == b"d" * 32
    with pytest.raises(InvalidCiphertext):
        keys.open_checksum("snap-1", 5, sealed)


# -- sharing between snapshots -------------------------------------------------------------------


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", ManualClock())
    yield runtime
    runtime.close()


def _block_files(rt: Runtime) -> set[str]:
    return rt.ebs.block_store.block_ids()


def _blocks(rt: Runtime, snapshot_id: str) -> dict[int, str]:
    with rt.db.read() as conn:
        return {r.block_index: r.block_id for r in ebs_repo.snapshot_blocks(conn, snapshot_id)}


def test_snapshots_are_incremental_and_deletes_keep_what_children_need(rt: Runtime) -> None:
    ebs = rt.ebs
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone="us-east-1a")
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    device = ebs.export(volume.volume_id)
    assert device is not None
    contents = {i: os.urandom(BLOCK_SIZE) for i in (0, 1, 2, 9)}
    for index, data in contents.items():
        device.write(index * BLOCK_SIZE, data)
    device.write(20 * BLOCK_SIZE, bytes(BLOCK_SIZE))  # written zeros: nothing to store

    first = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    first_blocks = _blocks(rt, first.snapshot_id)
    assert sorted(first_blocks) == [0, 1, 2, 9]
    assert len(_block_files(rt)) == 4

    changed = os.urandom(BLOCK_SIZE)
    device.write(1 * BLOCK_SIZE, changed)
    device.write(2 * BLOCK_SIZE + 100, b"\xff")  # changed...
    device.write(2 * BLOCK_SIZE, contents[2])  # ...and put back: the same content again
    second = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    second_blocks = _blocks(rt, second.snapshot_id)
    assert second.parent_snapshot_id == first.snapshot_id
    assert second_blocks[0] == first_blocks[0]
    assert second_blocks[2] == first_blocks[2]
    assert second_blocks[9] == first_blocks[9]
    assert second_blocks[1] != first_blocks[1]
    assert len(_block_files(rt)) == 5  # one new block, three shared

    ebs.delete_snapshot(root_call("DeleteSnapshot"), first.snapshot_id)
    assert _block_files(rt) == set(second_blocks.values())  # the replaced block is gone

    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    restored = ebs.create_volume(
        root_call("CreateVolume"), snapshot_id=second.snapshot_id, availability_zone="us-east-1b"
    )
    ebs.attach_volume(root_call("AttachVolume"), restored.volume_id, INSTANCE, "/dev/sdg")
    copy = ebs.export(restored.volume_id)
    assert copy is not None
    assert copy.read(0, BLOCK_SIZE) == contents[0]
    assert copy.read(BLOCK_SIZE, BLOCK_SIZE) == changed
    assert copy.read(9 * BLOCK_SIZE, BLOCK_SIZE) == contents[9]
    assert copy.read(20 * BLOCK_SIZE, BLOCK_SIZE) == bytes(BLOCK_SIZE)

    ebs.delete_snapshot(root_call("DeleteSnapshot"), second.snapshot_id)
    assert _block_files(rt) == set()


def test_a_restored_volume_is_incremental_to_its_snapshot(rt: Runtime) -> None:
    ebs = rt.ebs
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone="us-east-1a")
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    device = ebs.export(volume.volume_id)
    assert device is not None
    device.write(0, os.urandom(4 * BLOCK_SIZE))
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    restored = ebs.create_volume(
        root_call("CreateVolume"), snapshot_id=snap.snapshot_id, availability_zone="us-east-1a"
    )
    assert restored.keying.context_id == volume.keying.context_id  # same data key
    again = ebs.create_snapshot(root_call("CreateSnapshot"), restored.volume_id)
    assert again.parent_snapshot_id == snap.snapshot_id
    assert _blocks(rt, again.snapshot_id) == _blocks(rt, snap.snapshot_id)
    assert len(_block_files(rt)) == 4


def test_orphans_are_found(rt: Runtime) -> None:
    keys = BlockKeys(DATA_KEY, "vol-x")
    orphan = rt.ebs.block_store.put(keys, 0, bytes(BLOCK_SIZE))
    assert rt.ebs.orphan_blocks() == {orphan}
