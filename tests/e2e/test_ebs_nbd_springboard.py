"""The issue's acceptance path through `sealbox serve --nbd-port`, boto3 and real
block clients: a plaintext volume filled over NBD, snapshotted, copied into an
encrypted snapshot under a customer key, restored, attached and read back byte for
byte; detaching ends the export; encryption by default; no plaintext on disk."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess, free_port

MIB = 1024 * 1024
DATA_BYTES = 256 * MIB
INSTANCE = "i-0123456789abcdef0"
TOOLS = ("nbdinfo", "nbdcopy")


def _require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing}: run scripts/install-test-deps (libnbd-bin)")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def _wait(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _attach(ec2: Any, volume_id: str) -> None:
    ec2.attach_volume(VolumeId=volume_id, InstanceId=INSTANCE, Device="/dev/sdf")


def _detach(ec2: Any, volume_id: str) -> None:
    ec2.detach_volume(VolumeId=volume_id)
    _wait(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available",
        f"{volume_id} to be available",
    )


def _snapshot(ec2: Any, **kwargs: Any) -> str:
    snapshot_id = str(kwargs.pop("_id", None) or ec2.create_snapshot(**kwargs)["SnapshotId"])
    _wait(
        lambda: (
            ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
            == "completed"
        ),
        f"{snapshot_id} to complete",
    )
    return snapshot_id


@pytest.fixture
def nbd_server(make_server: Callable[..., ServerProcess]) -> tuple[ServerProcess, int]:
    _require_tools()
    port = free_port()
    return make_server(args=["--nbd-port", str(port)]), port


def test_springboard_plaintext_volume_to_encrypted_copy(
    nbd_server: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    server, port = nbd_server
    ec2, kms = server.client("ec2"), server.client("kms")
    source = tmp_path / "disk.raw"
    canary = b"NBD-CANARY-" + uuid.uuid4().hex.encode()
    with source.open("wb") as f:
        for i in range(DATA_BYTES // MIB):
            block = bytearray(os.urandom(MIB))
            if i % 64 == 0:
                block[100 : 100 + len(canary)] = canary
            f.write(block)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    plain = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")
    assert plain["Encrypted"] is False
    volume_id = plain["VolumeId"]
    url = f"nbd://127.0.0.1:{port}/{volume_id}"
    # Not attached: not exported.
    assert _run("nbdinfo", url, check=False).returncode != 0
    _attach(ec2, volume_id)
    _wait(lambda: _run("nbdinfo", "--size", url, check=False).returncode == 0, "the export")
    assert int(_run("nbdinfo", "--size", url).stdout) == 1024 * MIB
    assert volume_id in _run("nbdinfo", "--list", f"nbd://127.0.0.1:{port}").stdout
    _run("nbdcopy", "--flush", str(source), url)
    _detach(ec2, volume_id)
    _wait(lambda: _run("nbdinfo", url, check=False).returncode != 0, "the export to end")

    snapshot_id = _snapshot(ec2, VolumeId=volume_id)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    copy_id = ec2.copy_snapshot(
        SourceRegion="us-east-1", SourceSnapshotId=snapshot_id, Encrypted=True, KmsKeyId=key_arn
    )["SnapshotId"]
    _snapshot(ec2, _id=copy_id)
    copied = ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
    assert copied["Encrypted"] is True
    assert copied["KmsKeyId"] == key_arn

    restored = ec2.create_volume(SnapshotId=copy_id, AvailabilityZone="us-east-1a")
    assert restored["Encrypted"] is True
    restored_id = restored["VolumeId"]
    _wait(
        lambda: ec2.describe_volumes(VolumeIds=[restored_id])["Volumes"][0]["State"] == "available",
        "the restored volume",
    )
    _attach(ec2, restored_id)
    out = tmp_path / "restored.raw"
    restored_url = f"nbd://127.0.0.1:{port}/{restored_id}"
    _wait(lambda: _run("nbdinfo", restored_url, check=False).returncode == 0, "the export")
    _run("nbdcopy", restored_url, str(out))
    with out.open("rb") as f:
        assert hashlib.sha256(f.read(DATA_BYTES)).hexdigest() == digest
        assert f.read(MIB) == bytes(MIB)  # never written: zeros
    _detach(ec2, restored_id)

    for path in server.data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size:
            with path.open("rb") as f:
                while chunk := f.read(8 * MIB):
                    assert canary not in chunk, path


def test_encryption_by_default_makes_plain_create_volume_encrypted(
    nbd_server: tuple[ServerProcess, int],
) -> None:
    server, _ = nbd_server
    ec2 = server.client("ec2")
    ec2.enable_ebs_encryption_by_default()
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")
    assert volume["Encrypted"] is True
    # GetEbsDefaultKmsKeyId names the alias (as AWS does); the volume names the key.
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"].endswith(":alias/aws/ebs")
    managed = server.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert volume["KmsKeyId"] == managed["Arn"]
    assert managed["KeyManager"] == "AWS"


def test_nbd_uses_tls_when_the_server_has_a_certificate(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    _require_tools()
    port = free_port()
    server = make_server(args=["--tls-self-signed", "--nbd-port", str(port)])
    ec2 = server.client("ec2")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    _attach(ec2, volume_id)
    certs = tmp_path / "certs"  # libnbd (GnuTLS) wants the CA as ca-cert.pem in a directory
    certs.mkdir()
    shutil.copy(server.data_dir / "tls-cert.pem", certs / "ca-cert.pem")
    tls_url = f"nbds://127.0.0.1:{port}/{volume_id}?tls-certificates={certs}"
    _wait(lambda: _run("nbdinfo", "--size", tls_url, check=False).returncode == 0, "TLS export")
    assert int(_run("nbdinfo", "--size", tls_url).stdout) == 1024 * MIB
    # Plain NBD is refused: the volume id is not even listed without TLS.
    assert _run("nbdinfo", f"nbd://127.0.0.1:{port}/{volume_id}", check=False).returncode != 0


def test_flushed_writes_survive_a_killed_server(
    nbd_server: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    server, port = nbd_server
    ec2 = server.client("ec2")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    _attach(ec2, volume_id)
    url = f"nbd://127.0.0.1:{port}/{volume_id}"
    _wait(lambda: _run("nbdinfo", url, check=False).returncode == 0, "the export")
    data = tmp_path / "data.raw"
    data.write_bytes(os.urandom(32 * MIB))
    _run("nbdcopy", "--flush", str(data), url)
    assert server.proc is not None
    server.proc.kill()  # SIGKILL the supervisor (the block server); workers follow it
    server.proc.wait(timeout=10)
    server.proc = None
    time.sleep(1)
    server.start()
    _wait(lambda: _run("nbdinfo", url, check=False).returncode == 0, "the export after restart")
    out = tmp_path / "out.raw"
    _run("nbdcopy", url, str(out))
    assert out.read_bytes()[: 32 * MIB] == data.read_bytes()
