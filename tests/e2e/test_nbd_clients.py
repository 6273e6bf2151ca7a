"""The NBD server through real block clients: libnbd's nbdinfo and nbdcopy, and QEMU's
qemu-img and qemu-io, over plain TCP and TLS, against file-backed devices served by an
NbdServer running in a background thread of the test process.

A client that is not installed fails its tests (with the install command) rather than
skipping them. The Linux kernel client (nbd-client + /dev/nbdX) is not tested: it needs
the nbd kernel module, which containers normally cannot load.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sealbox.crypto.tls import write_self_signed
from sealbox.nbd import BackgroundNbdServer, NbdServer

MIB = 1024 * 1024
VOLUME_SIZE = 64 * MIB
RO_SIZE = 4 * MIB

#: One apt command installs every client these tests drive.
APT_INSTALL = "apt-get install -y libnbd-bin qemu-utils"
TOOLS = ("nbdinfo", "nbdcopy", "qemu-img", "qemu-io")


def require(*tools: str) -> None:
    """Fail (never skip) when a client the suite is meant to exercise is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"NBD client(s) {', '.join(missing)} not installed; install with: {APT_INSTALL}",
            pytrace=False,
        )


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    return proc


# --- a file-backed device ------------------------------------------------------------------


class FileDevice:
    """A VolumeDevice over a regular file (its own descriptor per connection)."""

    def __init__(self, path: Path, *, read_only: bool = False, closed: list[str]) -> None:
        self._fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        self._size = os.fstat(self._fd).st_size
        self._read_only = read_only
        self._closed = closed
        self._name = path.name

    @property
    def size(self) -> int:
        return self._size

    @property
    def read_only(self) -> bool:
        return self._read_only

    def read(self, offset: int, length: int) -> bytes:
        chunks = []
        while length:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                raise OSError("unexpected end of file")
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def write(self, offset: int, data: bytes, *, fua: bool = False) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written
        if fua:
            os.fdatasync(self._fd)

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def trim(self, offset: int, length: int) -> None:
        self.write_zeroes(offset, length)

    def write_zeroes(self, offset: int, length: int, *, fua: bool = False) -> None:
        while length:
            n = min(length, MIB)
            self.write(offset, bytes(n))
            offset += n
            length -= n
        if fua:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if not self._read_only:
            os.fdatasync(self._fd)
        os.close(self._fd)
        self._closed.append(self._name)


@dataclass
class Volumes:
    """Backing files by export name; the resolver opens one FileDevice per connection."""

    files: dict[str, Path]
    read_only: set[str] = field(default_factory=set)
    closed: list[str] = field(default_factory=list)

    def __call__(self, export_name: str) -> FileDevice | None:
        path = self.files.get(export_name)
        if path is None:
            return None
        return FileDevice(path, read_only=export_name in self.read_only, closed=self.closed)

    def names(self) -> list[str]:
        return sorted(self.files)


@dataclass
class Served:
    volumes: Volumes
    runner: BackgroundNbdServer
    port: int

    def uri(self, name: str = "vol-123", scheme: str = "nbd", query: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{name}{'?' + query if query else ''}"

    def path(self, name: str = "vol-123") -> Path:
        return self.volumes.files[name]


def _serve(directory: Path, tls: ssl.SSLContext | None = None) -> Served:
    files = {"vol-123": directory / "vol-123.img", "vol-ro": directory / "vol-ro.img"}
    files["vol-123"].write_bytes(b"")
    os.truncate(files["vol-123"], VOLUME_SIZE)
    files["vol-ro"].write_bytes(secrets.token_bytes(RO_SIZE))
    volumes = Volumes(files, read_only={"vol-ro"})
    server = NbdServer(volumes, list_exports=volumes.names, tls=tls)
    runner = BackgroundNbdServer(server, "127.0.0.1", 0)
    return Served(volumes, runner, runner.start())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = _serve(tmp_path_factory.mktemp("nbd"))
    yield running
    running.runner.stop()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A libnbd/GnuTLS certificate directory: ca-cert.pem is the server's self-signed cert."""
    directory = tmp_path_factory.mktemp("nbd-tls")
    write_self_signed(directory / "server-cert.pem", directory / "server-key.pem", ["localhost"])
    shutil.copy(directory / "server-cert.pem", directory / "ca-cert.pem")
    return directory


@pytest.fixture(scope="module")
def tls_served(tmp_path_factory: pytest.TempPathFactory, tls_dir: Path) -> Iterator[Served]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "server-cert.pem", tls_dir / "server-key.pem")
    running = _serve(tmp_path_factory.mktemp("nbd-tls-data"), context)
    yield running
    running.runner.stop()


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size // MIB):
            f.write(secrets.token_bytes(MIB))
    return path


def nbdinfo_json(*args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run("nbdinfo", "--json", *args).stdout)
    return result


# --- nbdinfo ----------------------------------------------------------------------------------


def test_nbdinfo(served: Served) -> None:
    require("nbdinfo")
    info = nbdinfo_json(served.uri())
    assert info["protocol"] == "newstyle-fixed" and info["TLS"] is False
    (export,) = info["exports"]
    assert export["export-name"] == "vol-123"
    assert export["export-size"] == VOLUME_SIZE
    assert export["is_read_only"] is False
    for feature in ("can_flush", "can_fua", "can_trim", "can_zero"):
        assert export[feature] is True, feature
    assert export["can_multi_conn"] is False
    assert export["block_size_minimum"] == 1
    assert export["block_size_preferred"] == 4096
    assert export["block_size_maximum"] == 32 * MIB
    assert run("nbdinfo", "--size", served.uri()).stdout.strip() == str(VOLUME_SIZE)


def test_nbdinfo_read_only_export(served: Served) -> None:
    require("nbdinfo")
    (export,) = nbdinfo_json(served.uri("vol-ro"))["exports"]
    assert export["is_read_only"] is True
    assert export["export-size"] == RO_SIZE


def test_nbdinfo_list(served: Served) -> None:
    require("nbdinfo")
    info = nbdinfo_json("--list", served.uri(""))
    names = {e["export-name"]: e["export-size"] for e in info["exports"]}
    assert names == {"vol-123": VOLUME_SIZE, "vol-ro": RO_SIZE}


def test_nbdinfo_unknown_export(served: Served) -> None:
    require("nbdinfo")
    proc = run("nbdinfo", served.uri("vol-missing"), check=False)
    assert proc.returncode != 0
    assert "vol-missing" in proc.stderr


# --- nbdcopy ----------------------------------------------------------------------------------


def test_nbdcopy_in_and_out(served: Served, tmp_path: Path) -> None:
    require("nbdcopy")
    source = random_file(tmp_path / "in.bin", VOLUME_SIZE)
    run("nbdcopy", "--flush", str(source), served.uri())
    assert served.path().read_bytes() == source.read_bytes()
    out = tmp_path / "out.bin"
    run("nbdcopy", served.uri(), str(out))
    assert out.read_bytes() == source.read_bytes()


def test_nbdcopy_sparse_source_writes_zeroes(served: Served, tmp_path: Path) -> None:
    """A source with holes: nbdcopy sends zeroing requests for them."""
    require("nbdcopy")
    run("nbdcopy", str(random_file(tmp_path / "noise.bin", VOLUME_SIZE)), served.uri())
    source = tmp_path / "sparse.bin"
    with source.open("wb") as f:
        f.truncate(VOLUME_SIZE)
        f.seek(5 * MIB)
        f.write(b"island" * 1000)
    run("nbdcopy", str(source), served.uri())
    assert served.path().read_bytes() == source.read_bytes()


def test_nbdcopy_into_read_only_export_fails(served: Served, tmp_path: Path) -> None:
    require("nbdcopy")
    before = served.path("vol-ro").read_bytes()
    source = random_file(tmp_path / "in.bin", RO_SIZE)
    proc = run("nbdcopy", str(source), served.uri("vol-ro"), check=False)
    assert proc.returncode != 0
    assert served.path("vol-ro").read_bytes() == before


# --- QEMU ---------------------------------------------------------------------------------------


def test_qemu_img_info_and_convert(served: Served, tmp_path: Path) -> None:
    require("qemu-img")
    info = json.loads(run("qemu-img", "info", "--output=json", served.uri()).stdout)
    assert info["virtual-size"] == VOLUME_SIZE
    assert info["format"] == "raw"

    source = random_file(tmp_path / "in.raw", VOLUME_SIZE)
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(source), served.uri())
    assert served.path().read_bytes() == source.read_bytes()
    out = tmp_path / "out.raw"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", served.uri(), str(out))
    assert out.read_bytes() == source.read_bytes()
    # The old-style URI syntax goes through NBD_OPT_GO as well.
    legacy = f"nbd:127.0.0.1:{served.port}:exportname=vol-123"
    assert (
        json.loads(run("qemu-img", "info", "--output=json", legacy).stdout)["virtual-size"]
        == VOLUME_SIZE
    )


def test_qemu_io_commands(served: Served) -> None:
    """Pattern writes with and without FUA, reads, discard (TRIM), write -z (WRITE_ZEROES)
    and flush, checked by qemu-io itself and against the backing file."""
    require("qemu-io")
    commands = [
        "write -P 0x5a 0 1M",
        "write -f -P 0xa5 1M 1M",
        "read -P 0x5a 0 1M",
        "read -P 0xa5 1M 1M",
        "write -P 0x11 2M 2M",
        "discard 2M 1M",
        "write -z 3M 512k",
        "read -P 0x11 3584k 512k",
        "read -P 0 3M 512k",
        "flush",
    ]
    args = ["qemu-io", "-f", "raw"]
    for command in commands:
        args += ["-c", command]
    proc = run(*args, served.uri())
    assert "Pattern verification failed" not in proc.stdout + proc.stderr
    data = served.path().read_bytes()
    assert data[: 1 * MIB] == b"\x5a" * MIB
    assert data[1 * MIB : 2 * MIB] == b"\xa5" * MIB
    assert data[3 * MIB : 3 * MIB + 512 * 1024] == bytes(512 * 1024)
    assert data[3 * MIB + 512 * 1024 : 4 * MIB] == b"\x11" * (512 * 1024)


def test_qemu_io_read_only_export(served: Served) -> None:
    require("qemu-io")
    expected = served.path("vol-ro").read_bytes()[:512]
    proc = run("qemu-io", "-r", "-f", "raw", "-c", "read -v 0 512", served.uri("vol-ro"))
    assert expected[:16].hex(" ") in proc.stdout.replace("\n", " ")


# --- TLS ----------------------------------------------------------------------------------------


def test_nbdinfo_over_tls(tls_served: Served, tls_dir: Path) -> None:
    require("nbdinfo")
    info = nbdinfo_json(tls_served.uri(scheme="nbds", query=f"tls-certificates={tls_dir}"))
    assert info["TLS"] is True
    assert info["exports"][0]["export-size"] == VOLUME_SIZE
    listing = nbdinfo_json(
        "--list", tls_served.uri("", scheme="nbds", query=f"tls-certificates={tls_dir}")
    )
    assert {e["export-name"] for e in listing["exports"]} == {"vol-123", "vol-ro"}


def test_tls_server_refuses_plain_clients(tls_served: Served) -> None:
    require("nbdinfo")
    proc = run("nbdinfo", tls_served.uri(), check=False)
    assert proc.returncode != 0


def test_tls_client_rejects_an_untrusted_server(tls_served: Served, tmp_path: Path) -> None:
    require("nbdinfo")
    write_self_signed(tmp_path / "ca-cert.pem", tmp_path / "ca-key.pem", ["localhost"])
    proc = run(
        "nbdinfo", tls_served.uri(scheme="nbds", query=f"tls-certificates={tmp_path}"), check=False
    )
    assert proc.returncode != 0
    assert "certificate" in proc.stderr.lower()


def test_nbdcopy_over_tls(tls_served: Served, tls_dir: Path, tmp_path: Path) -> None:
    require("nbdcopy")
    uri = tls_served.uri(scheme="nbds", query=f"tls-certificates={tls_dir}")
    source = random_file(tmp_path / "in.bin", 16 * MIB)
    run("nbdcopy", str(source), uri)
    out = tmp_path / "out.bin"
    run("nbdcopy", uri, str(out))
    assert out.read_bytes()[: 16 * MIB] == source.read_bytes()
    assert tls_served.path().read_bytes()[: 16 * MIB] == source.read_bytes()


# --- lifecycle ----------------------------------------------------------------------------------


def test_every_connection_closes_its_device(tmp_path: Path) -> None:
    require("nbdinfo", "nbdcopy")
    running = _serve(tmp_path)
    try:
        run("nbdinfo", running.uri())
        run("nbdcopy", running.uri("vol-ro"), str(tmp_path / "ro.bin"))
        proc = subprocess.Popen(
            ["nbdcopy", str(random_file(tmp_path / "in.bin", VOLUME_SIZE)), running.uri()]
        )
        assert proc.wait(120) == 0
    finally:
        running.runner.stop()
    assert sorted(running.volumes.closed) == ["vol-123.img", "vol-123.img", "vol-ro.img"]
