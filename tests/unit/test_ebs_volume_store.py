"""The encrypted live-volume store as a block device (sealbox.ebs.volume_store)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealbox.crypto.xts import UNIT_SIZE
from sealbox.ebs.device import DeviceError, VolumeDevice
from sealbox.ebs.volume_store import EncryptedVolume, VolumeStore

SIZE = 64 * 1024 * 1024
DATA_KEY = bytes(range(1, 33))
CANARY = b"SEALBOX-CANARY-" + os.urandom(8).hex().encode()


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "volumes")


@pytest.fixture
def volume(store: VolumeStore) -> Iterator[EncryptedVolume]:
    store.create("vol-0123456789abcdef0", SIZE)
    device = store.open("vol-0123456789abcdef0", SIZE, DATA_KEY)
    yield device
    device.close()


def test_is_a_volume_device(volume: EncryptedVolume) -> None:
    device: VolumeDevice = volume
    assert device.size == SIZE
    assert device.read_only is False


def test_unwritten_space_reads_as_zeros(volume: EncryptedVolume) -> None:
    assert volume.read(0, 8192) == bytes(8192)
    assert volume.read(SIZE - 10, 10) == bytes(10)
    assert volume.read(123, 0) == b""


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, UNIT_SIZE),
        (0, 1024 * 1024),
        (512, 512),  # inside one unit
        (UNIT_SIZE - 100, 300),  # across a unit boundary
        (3 * UNIT_SIZE + 7, 5 * UNIT_SIZE + 11),  # partial head and tail
        (SIZE - UNIT_SIZE - 3, UNIT_SIZE + 3),  # up to the end
    ],
)
def test_writes_read_back(volume: EncryptedVolume, offset: int, length: int) -> None:
    data = os.urandom(length)
    volume.write(offset, data)
    assert volume.read(offset, length) == data
    # The bytes around a partial write are untouched (read-modify-write of its units).
    if offset >= 10:
        assert volume.read(offset - 10, 10) == bytes(10)


def test_partial_write_keeps_the_rest_of_its_unit(volume: EncryptedVolume) -> None:
    first = os.urandom(UNIT_SIZE * 2)
    volume.write(0, first)
    volume.write(1000, b"x" * 100)
    expected = first[:1000] + b"x" * 100 + first[1100:]
    assert volume.read(0, len(first)) == expected


def test_trim_and_write_zeroes_read_as_zeros(volume: EncryptedVolume) -> None:
    data = os.urandom(10 * UNIT_SIZE)
    volume.write(0, data)
    volume.trim(UNIT_SIZE + 5, 3 * UNIT_SIZE)
    volume.write_zeroes(6 * UNIT_SIZE, 100, fua=True)
    got = volume.read(0, len(data))
    assert got[: UNIT_SIZE + 5] == data[: UNIT_SIZE + 5]
    assert got[UNIT_SIZE + 5 : 4 * UNIT_SIZE + 5] == bytes(3 * UNIT_SIZE)
    assert got[4 * UNIT_SIZE + 5 : 6 * UNIT_SIZE] == data[4 * UNIT_SIZE + 5 : 6 * UNIT_SIZE]
    assert got[6 * UNIT_SIZE : 6 * UNIT_SIZE + 100] == bytes(100)
    assert got[6 * UNIT_SIZE + 100 :] == data[6 * UNIT_SIZE + 100 :]


def test_out_of_range_requests_name_their_nbd_error(volume: EncryptedVolume) -> None:
    with pytest.raises(DeviceError) as read_err:
        volume.read(SIZE - 1, 2)
    assert read_err.value.errno_name == "EINVAL"
    with pytest.raises(DeviceError) as write_err:
        volume.write(SIZE, b"x")
    assert write_err.value.errno_name == "ENOSPC"
    with pytest.raises(DeviceError):
        volume.read(-1, 1)


def test_read_only_devices_refuse_writes(store: VolumeStore) -> None:
    store.create("vol-00000000000000001", SIZE)
    device = store.open("vol-00000000000000001", SIZE, DATA_KEY, read_only=True)
    with pytest.raises(DeviceError) as err:
        device.write(0, b"x")
    assert err.value.errno_name == "EPERM"
    assert device.read(0, 4) == bytes(4)
    device.close()


def test_closed_devices_fail_with_eio(store: VolumeStore) -> None:
    store.create("vol-00000000000000002", SIZE)
    device = store.open("vol-00000000000000002", SIZE, DATA_KEY)
    device.close()
    device.close()  # idempotent
    with pytest.raises(DeviceError) as err:
        device.read(0, 1)
    assert err.value.errno_name == "EIO"


def test_nothing_is_stored_in_plaintext(store: VolumeStore, volume: EncryptedVolume) -> None:
    volume.write(5 * UNIT_SIZE + 9, CANARY * 1000)
    volume.write(0, CANARY)  # a partial unit too
    volume.flush()
    raw = store.path("vol-0123456789abcdef0").read_bytes()
    assert CANARY not in raw
    assert CANARY[:12] not in raw


def test_another_data_key_reads_garbage(store: VolumeStore, volume: EncryptedVolume) -> None:
    volume.write(0, CANARY * 100)
    other = store.open("vol-0123456789abcdef0", SIZE, bytes(32))
    assert CANARY not in other.read(0, len(CANARY) * 100)
    other.close()


def test_null_cipher_is_plaintext_on_disk(store: VolumeStore) -> None:
    """The benchmark-only switch: same code path, no encryption."""
    store.create("vol-00000000000000003", SIZE)
    device = store.open("vol-00000000000000003", SIZE, DATA_KEY, null_cipher=True)
    assert device.null_cipher
    device.write(UNIT_SIZE, CANARY)
    device.flush()
    assert CANARY in store.path("vol-00000000000000003").read_bytes()
    assert device.read(UNIT_SIZE, len(CANARY)) == CANARY
    device.close()


def test_concurrent_writes_to_different_bytes_of_one_unit_all_land(
    volume: EncryptedVolume,
) -> None:
    """512-byte sectors of the same 4 KiB units written from many threads at once."""
    sectors = [(i, os.urandom(512)) for i in range(64)]  # 8 units, 8 sectors each
    barrier = threading.Barrier(8)

    def writer(part: list[tuple[int, bytes]]) -> None:
        barrier.wait()
        for _ in range(20):
            for index, data in part:
                volume.write(index * 512, data)

    threads = [threading.Thread(target=writer, args=(sectors[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = volume.read(0, 64 * 512)
    assert got == b"".join(data for _, data in sectors)


def test_concurrent_partial_reads_never_see_half_written_units(
    volume: EncryptedVolume,
) -> None:
    fixed = os.urandom(2048)
    volume.write(0, fixed)  # first half of unit 0, never rewritten
    stop = threading.Event()
    errors: list[str] = []

    def rewrite_second_half() -> None:
        while not stop.is_set():
            volume.write(2048, os.urandom(2048))

    def read_first_half() -> None:
        for _ in range(300):
            if volume.read(0, 2048) != fixed:
                errors.append("torn")

    writer = threading.Thread(target=rewrite_second_half)
    writer.start()
    readers = [threading.Thread(target=read_first_half) for _ in range(3)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer.join()
    assert errors == []


def test_allocated_ranges_skip_holes(volume: EncryptedVolume) -> None:
    volume.write(8 * 1024 * 1024, os.urandom(UNIT_SIZE))
    ranges = list(volume.allocated(0, SIZE))
    assert ranges
    assert all(start <= 8 * 1024 * 1024 < end for start, end in ranges)


def test_flushed_and_fua_writes_survive_a_crash(tmp_path: Path) -> None:
    """A child process writes, FLUSHes or uses FUA, then dies without closing."""
    root = tmp_path / "volumes"
    VolumeStore(root).create("vol-0000000000000000a", SIZE)
    script = f"""
import os
from pathlib import Path
from sealbox.ebs.volume_store import VolumeStore
store = VolumeStore(Path({str(root)!r}))
d = store.open("vol-0000000000000000a", {SIZE}, {DATA_KEY!r})
d.write(0, b"flushed" * 1000)
d.flush()
d.write(1 << 20, b"fua" * 1000, fua=True)
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    device = VolumeStore(root).open("vol-0000000000000000a", SIZE, DATA_KEY)
    assert device.read(0, 7000) == b"flushed" * 1000
    assert device.read(1 << 20, 3000) == b"fua" * 1000
    device.close()
