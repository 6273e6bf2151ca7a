"""The EBS ⇄ NBD seam, in process: EbsService.export as the NbdServer's resolver, with
real NBD clients (libnbd's nbdcopy / nbdinfo). The springboard: a plaintext volume
filled over NBD with 256 MiB of random data, a snapshot, CopySnapshot with
Encrypted=true and a customer key, a new volume from the copy, attached and read back
over NBD byte-identical; detaching ends the export."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealbox.clock import ManualClock
from sealbox.nbd.background import BackgroundNbdServer
from sealbox.nbd.server import NbdServer
from sealbox.server.runtime import Runtime
from tests.support.runtime import build_runtime, root_call

pytestmark = pytest.mark.skipif(
    shutil.which("nbdcopy") is None or shutil.which("nbdinfo") is None,
    reason="needs libnbd-bin (nbdcopy, nbdinfo)",
)

SIZE = 256 * 1024 * 1024


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Runtime, BackgroundNbdServer]]:
    rt = build_runtime(tmp_path / "data", ManualClock())
    runner = BackgroundNbdServer(
        NbdServer(rt.ebs.export, list_exports=rt.ebs.export_names), "127.0.0.1", 0
    )
    runner.start()
    rt.ebs.on_detach(runner.disconnect)
    yield rt, runner
    runner.stop()
    rt.close()


def _uri(runner: BackgroundNbdServer, volume_id: str) -> str:
    return f"nbd://127.0.0.1:{runner.port}/{volume_id}"


def test_springboard_over_nbd(served: tuple[Runtime, BackgroundNbdServer], tmp_path: Path) -> None:
    rt, runner = served
    ebs = rt.ebs
    source = tmp_path / "random.img"
    source.write_bytes(os.urandom(SIZE))
    plain = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone="us-east-1a")
    ebs.attach_volume(root_call("AttachVolume"), plain.volume_id, "i-0123456789abcdef0", "xvdf")
    listed = subprocess.run(
        ["nbdinfo", "--list", f"nbd://127.0.0.1:{runner.port}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert plain.volume_id in listed
    subprocess.run(
        ["nbdcopy", "--flush", str(source), _uri(runner, plain.volume_id)],
        check=True,
        timeout=600,
    )
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), plain.volume_id)
    ebs.detach_volume(root_call("DetachVolume"), plain.volume_id)
    key = rt.kms.create_key(root_call("CreateKey")).key.arn
    copy = ebs.copy_snapshot(
        root_call("CopySnapshot"),
        source_region="us-east-1",
        source_snapshot_id=snap.snapshot_id,
        encrypted=True,
        kms_key_id=key,
    )
    volume = ebs.create_volume(
        root_call("CreateVolume"), snapshot_id=copy.snapshot_id, availability_zone="us-east-1a"
    )
    assert volume.keying.encrypted and volume.keying.kms_key_arn == key
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, "i-0123456789abcdef1", "xvdg")
    back = tmp_path / "back.img"  # the whole 1 GiB volume (sparse where it is zeros)
    subprocess.run(["nbdcopy", _uri(runner, volume.volume_id), str(back)], check=True, timeout=600)
    assert back.stat().st_size == volume.size_bytes
    with back.open("rb") as f:
        assert hashlib.sha256(f.read(SIZE)).digest() == hashlib.sha256(source.read_bytes()).digest()
        rest = f.read()
    assert rest == bytes(len(rest))
    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    gone = subprocess.run(
        ["nbdinfo", _uri(runner, volume.volume_id)], capture_output=True, timeout=60
    )
    assert gone.returncode != 0  # no longer exported


def test_detach_disconnects_a_connected_client(
    served: tuple[Runtime, BackgroundNbdServer],
) -> None:
    rt, runner = served
    ebs = rt.ebs
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone="us-east-1a")
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, "i-0123456789abcdef0", "xvdf")
    client = subprocess.Popen(
        [
            "nbdcopy",
            "--synchronous",
            "--request-size=4096",
            _uri(runner, volume.volume_id),
            "null:",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while volume.volume_id not in runner.server.connected_exports():
            assert time.monotonic() < deadline, "the client never connected"
            time.sleep(0.05)
        ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
        assert runner.server.connected_exports() == []  # ended before detach returned
        assert client.wait(timeout=30) != 0  # the client saw its export go
    finally:
        client.kill()
        client.wait()
