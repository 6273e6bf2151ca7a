"""Drive real third-party S3 clients (the aws CLI, rclone, s3cmd, s3fs) against a test server.

Every client is configured only through environment variables and files under a test's
``tmp_path``: HOME points there too, so nothing reads or writes ~/.aws, ~/.config or
~/.s3cfg of the machine running the tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerProcess

#: How to install each client (what the failure message of a missing one says).
INSTALL_HINTS: dict[str, str] = {
    "aws": "python3 -m pip install awscli",
    "rclone": "apt-get install -y rclone",
    "s3cmd": "apt-get install -y s3cmd",
    # Pinning botocore to the installed one makes pip pick an aiobotocore that accepts
    # it, instead of upgrading botocore past what the installed awscli pins.
    "s3fs": "python3 -m pip install s3fs "
    "\"botocore==$(python3 -c 'import botocore; print(botocore.__version__)')\"",
    "curl": "apt-get install -y curl",
}

_CLIENT_ENV_PREFIXES = ("AWS_", "RCLONE_", "S3CMD", "BOTO_", "FSSPEC_")


def require(client: str) -> None:
    """Fail (never skip) when a client the suite is meant to exercise is missing."""
    found = (
        importlib.util.find_spec(client) is not None
        if client == "s3fs"
        else shutil.which(client) is not None
    )
    if not found:
        pytest.fail(
            f"S3 client {client!r} is not installed; install it with: "
            f"{INSTALL_HINTS.get(client, client)}",
            pytrace=False,
        )


def clean_env(home: Path) -> dict[str, str]:
    """The process environment without any client configuration, HOME moved to ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    return env


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    env: dict[str, str],
    *,
    server: ServerProcess | None = None,
    check: bool = True,
    timeout: float = 300,
    cwd: Path | None = None,
) -> Result:
    """Run a client command; with ``check``, fail showing its output and the server's log."""
    proc = subprocess.run(
        list(args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    result = Result(list(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        log = server.log()[-3000:] if server is not None else ""
        pytest.fail(
            f"{' '.join(args)}\nexited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}\n--- server log (tail)\n{log}",
            pytrace=False,
        )
    return result


# -- the aws CLI -------------------------------------------------------------------------------


class AwsCli:
    """`aws` pointed at one server with the root credentials and a config file in ``home``."""

    def __init__(self, server: ServerProcess, home: Path) -> None:
        self.server = server
        self.env = clean_env(home)
        config = home / "aws-config"
        config.write_text(
            f"[default]\nregion = {REGION}\noutput = json\ns3 =\n    addressing_style = path\n"
        )
        credentials = home / "aws-credentials"
        credentials.write_text("")
        self.env.update(
            AWS_CONFIG_FILE=str(config),
            AWS_SHARED_CREDENTIALS_FILE=str(credentials),
            AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            AWS_PAGER="",
        )
        self.tls_args: list[str] = []
        if server.scheme == "https":
            self.tls_args = ["--ca-bundle", str(server.data_dir / "tls-cert.pem")]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> Result:
        cmd = ["aws", *args, "--endpoint-url", self.server.url, *self.tls_args]
        return run(cmd, self.env, server=self.server, check=check, timeout=timeout)


# -- rclone ------------------------------------------------------------------------------------


def rclone_env(server: ServerProcess, home: Path, remote: str = "SB") -> dict[str, str]:
    """Environment defining the rclone remote ``remote`` (lower-cased in paths) on ``server``."""
    env = clean_env(home)
    config = home / "rclone.conf"
    config.write_text("")
    prefix = f"RCLONE_CONFIG_{remote.upper()}_"
    env.update(
        {
            "RCLONE_CONFIG": str(config),
            f"{prefix}TYPE": "s3",
            f"{prefix}PROVIDER": "Other",
            f"{prefix}ENV_AUTH": "false",
            f"{prefix}ACCESS_KEY_ID": ACCESS_KEY_ID,
            f"{prefix}SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            f"{prefix}REGION": REGION,
            f"{prefix}ENDPOINT": server.url,
            f"{prefix}FORCE_PATH_STYLE": "true",
        }
    )
    if server.scheme == "https":
        env["RCLONE_CA_CERT"] = str(server.data_dir / "tls-cert.pem")
    return env


# -- s3cmd -------------------------------------------------------------------------------------


def s3cmd_config(server: ServerProcess, home: Path) -> Path:
    """An s3cmd configuration file for ``server`` (path-style, SigV4)."""
    host = f"127.0.0.1:{server.port}"
    home.mkdir(parents=True, exist_ok=True)
    path = home / "s3cfg"
    lines = [
        "[default]",
        f"access_key = {ACCESS_KEY_ID}",
        f"secret_key = {SECRET_ACCESS_KEY}",
        f"host_base = {host}",
        f"host_bucket = {host}",
        f"bucket_location = {REGION}",
        f"use_https = {server.scheme == 'https'}",
        "signature_v2 = False",
        "check_ssl_certificate = True",
        f"ca_certs_file = {server.data_dir / 'tls-cert.pem' if server.scheme == 'https' else ''}",
        "multipart_chunk_size_mb = 5",
        "progress_meter = False",
        "guess_mime_type = True",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- files -------------------------------------------------------------------------------------

MIB = 1024 * 1024


def make_tree(root: Path, canary: bytes) -> dict[str, bytes]:
    """A small directory tree whose every non-empty file holds ``canary``; the 9 MiB file
    crosses the multipart thresholds the tests configure (aws: 8 MiB, others: 5 MiB)."""
    files = {
        "top.txt": canary + b"\n",
        "a/b/c.bin": os.urandom(300_000) + canary + os.urandom(1000),
        "a/space name.txt": canary * 3,
        "a/plus+sign=eq.txt": b"plus " + canary,
        "a/tilde~(paren)&amp.txt": canary + b" tilde",
        "unicode/\u00e9t\u00e9-\u65e5\u672c.txt": "caf\u00e9 ".encode() + canary,
        "empty.txt": b"",
        "big/mid.bin": _blocks(9 * MIB + 12_345, canary),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _blocks(size: int, canary: bytes) -> bytes:
    block = os.urandom(MIB)
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += canary + counter.to_bytes(8, "big") + block
        counter += 1
    return bytes(out[:size])


def write_big_file(path: Path, size: int, canary: bytes, block_size: int = 8 * MIB) -> str:
    """Write ``size`` bytes of non-repeating data quickly (one random block, each copy
    stamped with the canary and a counter); return their SHA-256 hex digest."""
    block = bytearray(os.urandom(block_size))
    digest = hashlib.sha256()
    stamp_len = len(canary) + 8
    with path.open("wb") as f:
        written = 0
        counter = 0
        while written < size:
            block[:stamp_len] = canary + counter.to_bytes(8, "big")
            chunk = memoryview(block)[: min(block_size, size - written)]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            counter += 1
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def scan(data_dir: Path, needle: bytes) -> list[Path]:
    """Files under ``data_dir`` that contain ``needle`` (read in blocks, so large blobs
    are not loaded whole)."""
    hits = []
    overlap = len(needle) - 1
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        tail = b""
        with path.open("rb") as f:
            while chunk := f.read(16 * MIB):
                if needle in tail + chunk:
                    hits.append(path)
                    break
                tail = chunk[-overlap:] if overlap else b""
    return hits
