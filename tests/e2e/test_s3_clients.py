"""S3 through real third-party clients against a real server: the aws CLI (v1, from pip),
rclone, s3cmd and fsspec's s3fs -- uploads and downloads of directory trees, every
server-side encryption mode each client can ask for, multipart uploads, ranged reads,
and, after each test, a scan of the data directory for the plaintext canary.

A client in REQUIRED_CLIENTS that is not installed fails its tests (with the install
command) rather than skipping them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.s3clients import (
    MIB,
    AwsCli,
    clean_env,
    make_tree,
    rclone_env,
    read_tree,
    require,
    run,
    s3cmd_config,
    scan,
    sha256_file,
    write_big_file,
)
from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerProcess

#: Clients these tests drive; a missing one fails its tests with an install hint.
REQUIRED_CLIENTS: tuple[str, ...] = ("aws", "rclone", "s3cmd", "s3fs")

#: Size of the file `aws s3 cp` uploads multipart under SSE-KMS (lower it if CI is tight).
BIG_FILE_SIZE: int = 1024 * MIB


def _name(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def canary() -> bytes:
    """Random plaintext written through every client; it must never reach the disk."""
    return b"SBX-CLIENT-CANARY-" + uuid.uuid4().hex.encode() + os.urandom(6).hex().encode()


@pytest.fixture(scope="module")
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


@pytest.fixture(scope="module")
def kms_alias(server: ServerProcess) -> tuple[str, str]:
    """(alias name, key ARN) of a fresh KMS key created with boto3."""
    kms = server.client("kms")
    arn = kms.create_key(Description="s3 clients e2e")["KeyMetadata"]["Arn"]
    alias = f"alias/{_name('clients')}"
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return alias, arn


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A private server on HTTPS (self-signed, cert at data_dir/tls-cert.pem) for SSE-C."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("https") / "data", args=["--tls-self-signed"]
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def no_plaintext_on_disk(server: ServerProcess, canary: bytes) -> Iterator[None]:
    """After the test, the shared server's data directory holds no canary."""
    yield
    assert scan(server.data_dir, canary) == []


def _require(client: str) -> None:
    assert client in REQUIRED_CLIENTS, client
    require(client)


def _aws(server: ServerProcess, tmp_path: Path) -> AwsCli:
    _require("aws")
    return AwsCli(server, tmp_path / "aws-home")


def _head(aws: AwsCli, bucket: str, key: str, *extra: str) -> dict[str, Any]:
    out = aws("s3api", "head-object", "--bucket", bucket, "--key", key, *extra)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _ls_recursive(aws: AwsCli, uri: str) -> dict[str, int]:
    """key → size from `aws s3 ls --recursive` (lines: date time size key)."""
    listed = {}
    for line in aws("s3", "ls", uri, "--recursive").stdout.splitlines():
        _date, _time, size, key = line.split(None, 3)
        listed[key] = int(size)
    return listed


# -- 1. the aws CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["default", "AES256", "aws:kms"])
def test_aws_cli_recursive_copy_round_trips(
    server: ServerProcess,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    mode: str,
    no_plaintext_on_disk: None,
) -> None:
    aws = _aws(server, tmp_path)
    alias, key_arn = kms_alias
    bucket = _name()
    aws("s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    files = make_tree(src, canary)
    sse: list[str] = []
    if mode == "AES256":
        sse = ["--sse", "AES256"]
    elif mode == "aws:kms":
        sse = ["--sse", "aws:kms", "--sse-kms-key-id", alias]
    aws("s3", "cp", str(src), f"s3://{bucket}/tree/", "--recursive", *sse)

    listed = _ls_recursive(aws, f"s3://{bucket}/tree/")
    assert listed == {f"tree/{rel}": len(data) for rel, data in files.items()}
    top = aws("s3", "ls", f"s3://{bucket}/tree/").stdout
    assert "PRE a/" in top and "PRE unicode/" in top and "top.txt" in top
    assert bucket in aws("s3", "ls").stdout

    for key in ("tree/top.txt", "tree/big/mid.bin", "tree/a/space name.txt"):
        head = _head(aws, bucket, key)
        assert head["ContentLength"] == len(files[key.removeprefix("tree/")])
        if mode == "aws:kms":
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == key_arn
        else:
            assert head["ServerSideEncryption"] == "AES256"
            assert "SSEKMSKeyId" not in head
    # 9 MiB is over the CLI's 8 MiB multipart threshold: a multipart ETag.
    assert _head(aws, bucket, "tree/big/mid.bin")["ETag"].endswith('-2"')

    down = tmp_path / "down"
    aws("s3", "cp", f"s3://{bucket}/tree/", str(down), "--recursive")
    assert read_tree(down) == files


def test_aws_cli_big_file_multipart_sse_kms(
    server: ServerProcess,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    no_plaintext_on_disk: None,
) -> None:
    aws = _aws(server, tmp_path)
    alias, key_arn = kms_alias
    bucket = _name("big")
    aws("s3", "mb", f"s3://{bucket}")
    big = tmp_path / "big.bin"
    started = time.monotonic()
    digest = write_big_file(big, BIG_FILE_SIZE, canary)
    made = time.monotonic()
    aws("s3", "cp", str(big), f"s3://{bucket}/big.bin", "--sse", "aws:kms",
        "--sse-kms-key-id", alias, timeout=600)  # fmt: skip
    uploaded = time.monotonic()
    big.unlink()
    head = _head(aws, bucket, "big.bin")
    assert head["ContentLength"] == BIG_FILE_SIZE
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    parts = -(-BIG_FILE_SIZE // (8 * MIB))  # the CLI's default 8 MiB part size
    assert head["ETag"].endswith(f'-{parts}"'), head["ETag"]
    down = tmp_path / "down.bin"
    aws("s3", "cp", f"s3://{bucket}/big.bin", str(down), timeout=600)
    downloaded = time.monotonic()
    assert down.stat().st_size == BIG_FILE_SIZE
    assert sha256_file(down) == digest
    down.unlink()
    assert scan(server.data_dir, canary) == []
    aws("s3", "rm", f"s3://{bucket}/big.bin")
    print(
        f"\n{BIG_FILE_SIZE // MIB} MiB: generate {made - started:.1f}s, upload "
        f"{uploaded - made:.1f}s, download {downloaded - uploaded:.1f}s"
    )


def test_aws_cli_sync_s3_copy_streams_and_presign(
    server: ServerProcess,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    no_plaintext_on_disk: None,
) -> None:
    aws = _aws(server, tmp_path)
    alias, key_arn = kms_alias
    bucket = _name("sync")
    aws("s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    files = make_tree(src, canary)

    aws("s3", "sync", str(src), f"s3://{bucket}/sync/")
    assert aws("s3", "sync", str(src), f"s3://{bucket}/sync/").stdout.strip() == ""
    (src / "top.txt").write_bytes(canary + b" changed\n")
    files["top.txt"] = (src / "top.txt").read_bytes()
    (src / "empty.txt").unlink()
    del files["empty.txt"]
    changed = aws("s3", "sync", str(src), f"s3://{bucket}/sync/", "--delete").stdout
    assert "upload:" in changed and "top.txt" in changed and "delete:" in changed, changed
    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{bucket}/sync/", str(down))
    assert read_tree(down) == files

    # Server-side copies; 9 MiB goes through UploadPartCopy, re-encrypted under KMS.
    aws("s3", "cp", f"s3://{bucket}/sync/big/mid.bin", f"s3://{bucket}/copy/mid.bin",
        "--sse", "aws:kms", "--sse-kms-key-id", alias)  # fmt: skip
    aws("s3", "cp", f"s3://{bucket}/sync/a/space name.txt", f"s3://{bucket}/copy/space name.txt",
        "--sse", "aws:kms", "--sse-kms-key-id", alias)  # fmt: skip
    for key in ("copy/mid.bin", "copy/space name.txt"):
        head = _head(aws, bucket, key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == key_arn, key
    aws("s3", "mv", f"s3://{bucket}/copy/", f"s3://{bucket}/moved/", "--recursive")
    assert _ls_recursive(aws, f"s3://{bucket}/copy/") == {}
    moved = tmp_path / "moved"
    aws("s3", "cp", f"s3://{bucket}/moved/", str(moved), "--recursive")
    assert read_tree(moved) == {
        "mid.bin": files["big/mid.bin"],
        "space name.txt": files["a/space name.txt"],
    }

    # Streams of unknown length: stdin up (multipart past 8 MiB), stdout down.
    streamed = files["big/mid.bin"]
    env = aws.env
    up = subprocess.run(
        ["aws", "s3", "cp", "-", f"s3://{bucket}/stream.bin", "--endpoint-url", server.url],
        input=streamed, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr.decode(errors="replace")
    out = subprocess.run(
        ["aws", "s3", "cp", f"s3://{bucket}/stream.bin", "-", "--endpoint-url", server.url],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert out.stdout == streamed

    # A presigned URL works without credentials, for its one object only.
    url = aws("s3", "presign", f"s3://{bucket}/sync/top.txt", "--expires-in", "300").stdout
    with urllib.request.urlopen(url.strip(), timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.read() == files["top.txt"]
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url.strip().replace("top.txt", "a/b/c.bin"), timeout=10)  # noqa: S310
    assert denied.value.code == 403

    aws("s3", "rm", f"s3://{bucket}", "--recursive")
    aws("s3", "rb", f"s3://{bucket}")
    assert bucket not in aws("s3", "ls").stdout


# -- 2. the aws CLI with SSE-C over HTTPS ------------------------------------------------------


def test_aws_cli_sse_c_over_https(
    https_server: ServerProcess, tmp_path: Path, canary: bytes
) -> None:
    _require("aws")
    server = https_server
    assert server.url.startswith("https://")
    aws = AwsCli(server, tmp_path / "aws-home")
    bucket = _name("ssec")
    aws("s3", "mb", f"s3://{bucket}")
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(secrets.token_hex(16).encode())  # 32 bytes
    other_key = tmp_path / "other.key"
    other_key.write_bytes(secrets.token_hex(16).encode())
    ssec = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key_file}"]
    src = tmp_path / "src"
    files = make_tree(src, canary)

    # New buckets block SSE-C writes, as AWS's do since April 2026.
    config = json.loads(aws("s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
    rule = config["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
    refused = aws("s3", "cp", str(src / "top.txt"), f"s3://{bucket}/top.txt", *ssec, check=False)
    assert refused.returncode != 0
    assert "AccessDenied" in refused.stderr, refused.stderr

    unblock = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
            }
        ]
    }
    aws("s3api", "put-bucket-encryption", "--bucket", bucket,
        "--server-side-encryption-configuration", json.dumps(unblock))  # fmt: skip
    config = json.loads(aws("s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
    rule = config["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule.get("BlockedEncryptionTypes", {"EncryptionType": ["NONE"]}) == {
        "EncryptionType": ["NONE"]
    }

    aws("s3", "cp", str(src), f"s3://{bucket}/tree/", "--recursive", *ssec)
    head = _head(aws, bucket, "tree/big/mid.bin", "--sse-customer-algorithm", "AES256",
                 "--sse-customer-key", key_file.read_text())  # fmt: skip
    assert head["SSECustomerAlgorithm"] == "AES256"
    assert head["ContentLength"] == len(files["big/mid.bin"])
    assert "ServerSideEncryption" not in head

    down = tmp_path / "down"
    aws("s3", "cp", f"s3://{bucket}/tree/", str(down), "--recursive", *ssec)
    assert read_tree(down) == files

    # Without the key, or with another one, nothing is readable.
    no_key = aws("s3", "cp", f"s3://{bucket}/tree/top.txt", str(tmp_path / "x"), check=False)
    assert no_key.returncode != 0
    assert "400" in no_key.stderr or "Bad Request" in no_key.stderr, no_key.stderr
    no_key = aws("s3api", "get-object", "--bucket", bucket, "--key", "tree/top.txt",
                 str(tmp_path / "y"), check=False)  # fmt: skip
    assert no_key.returncode != 0
    assert "InvalidRequest" in no_key.stderr, no_key.stderr
    wrong = aws("s3", "cp", f"s3://{bucket}/tree/top.txt", str(tmp_path / "z"), "--sse-c",
                "AES256", "--sse-c-key", f"fileb://{other_key}", check=False)  # fmt: skip
    assert wrong.returncode != 0
    assert "403" in wrong.stderr or "Forbidden" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()

    assert scan(server.data_dir, canary) == []


def test_rclone_and_s3fs_sse_c_over_https(
    https_server: ServerProcess, tmp_path: Path, canary: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require("rclone")
    _require("s3fs")
    server = https_server
    s3 = server.client("s3")
    bucket = _name("ssec2")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
                }
            ]
        },
    )
    key = secrets.token_hex(16)
    src = tmp_path / "src"
    files = make_tree(src, canary)

    env = rclone_env(server, tmp_path / "rclone-home")
    ssec = [
        "--s3-sse-customer-algorithm", "AES256", "--s3-sse-customer-key", key,
        "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
    ]  # fmt: skip

    def rclone(*args: str) -> str:
        return run(["rclone", *args], env, server=server, timeout=120).stdout

    rclone("copy", str(src), f"sb:{bucket}/rclone", *ssec)
    rclone("check", "--download", str(src), f"sb:{bucket}/rclone", *ssec)
    down = tmp_path / "down"
    rclone("copy", f"sb:{bucket}/rclone", str(down), *ssec)
    assert read_tree(down) == files
    no_key = run(["rclone", "cat", f"sb:{bucket}/rclone/top.txt"], env, check=False)
    assert no_key.returncode != 0

    import s3fs  # imported here: a missing client fails this test, not the module

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY_ID,
        secret=SECRET_ACCESS_KEY,
        endpoint_url=server.url,
        client_kwargs={"verify": str(server.data_dir / "tls-cert.pem")},
        config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
        s3_additional_kwargs={"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key},
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    body = canary + os.urandom(11 * MIB) + canary
    with fs.open(f"{bucket}/s3fs/big.bin", "wb", block_size=5 * MIB) as f:
        f.write(body)
    head = s3.head_object(
        Bucket=bucket, Key="s3fs/big.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=key
    )
    assert head["SSECustomerAlgorithm"] == "AES256"
    assert head["ContentLength"] == len(body)
    for start in (0, 5 * MIB - 3, 10 * MIB, len(body) - 50):
        end = min(start + 100_000, len(body))
        assert fs.cat_file(f"{bucket}/s3fs/big.bin", start=start, end=end) == body[start:end]
    with fs.open(f"{bucket}/s3fs/big.bin", "rb", block_size=512 * 1024) as f:
        f.seek(5 * MIB - 10)
        assert f.read(20) == body[5 * MIB - 10 : 5 * MIB + 10]
    # Ranged reads of the rclone-written (multipart, SSE-C) object too.
    for start in (0, 5 * MIB - 1, 9 * MIB):
        got = fs.cat_file(f"{bucket}/rclone/big/mid.bin", start=start, end=start + 4096)
        assert got == files["big/mid.bin"][start : start + 4096]

    assert scan(server.data_dir, canary) == []


# -- 3. rclone ---------------------------------------------------------------------------------


def test_rclone_copy_check_and_sse_kms(
    server: ServerProcess,
    s3: Any,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    no_plaintext_on_disk: None,
) -> None:
    _require("rclone")
    env = rclone_env(server, tmp_path / "rclone-home")
    _alias, key_arn = kms_alias
    bucket = _name("rclone")
    # Parts of 5 MiB from 5 MiB up: the 9 MiB file goes multipart.
    multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]

    def rclone(*args: str) -> str:
        return run(["rclone", *args], env, server=server, timeout=120).stdout

    rclone("mkdir", f"sb:{bucket}")
    src = tmp_path / "src"
    files = make_tree(src, canary)
    rclone("copy", str(src), f"sb:{bucket}/plain", *multipart)
    rclone("check", str(src), f"sb:{bucket}/plain")
    rclone("check", "--download", str(src), f"sb:{bucket}/plain")
    listed = dict(
        reversed(line.strip().split(None, 1))
        for line in rclone("ls", f"sb:{bucket}/plain").splitlines()
    )
    assert {k: int(v) for k, v in listed.items()} == {k: len(v) for k, v in files.items()}
    down = tmp_path / "down"
    rclone("copy", f"sb:{bucket}/plain", str(down))
    assert read_tree(down) == files
    assert s3.head_object(Bucket=bucket, Key="plain/top.txt")["ServerSideEncryption"] == "AES256"

    kms = [
        "--s3-server-side-encryption", "aws:kms",
        "--s3-sse-kms-key-id", key_arn,
    ]  # fmt: skip
    rclone("copy", str(src), f"sb:{bucket}/kms", *multipart, *kms)
    rclone("check", "--download", str(src), f"sb:{bucket}/kms")
    for key in ("kms/top.txt", "kms/big/mid.bin", "kms/unicode/\u00e9t\u00e9-\u65e5\u672c.txt"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_arn
    down_kms = tmp_path / "down-kms"
    rclone("copy", f"sb:{bucket}/kms", str(down_kms))
    assert read_tree(down_kms) == files

    # Server-side copies (multipart past the 5 MiB copy cutoff), then a move.
    rclone("copy", f"sb:{bucket}/kms", f"sb:{bucket}/copied", "--s3-copy-cutoff", "5M")
    rclone("check", "--download", str(src), f"sb:{bucket}/copied")
    rclone("moveto", f"sb:{bucket}/copied/big/mid.bin", f"sb:{bucket}/moved/mid.bin",
           "--s3-copy-cutoff", "5M")  # fmt: skip
    moved = tmp_path / "moved"
    rclone("copy", f"sb:{bucket}/moved", str(moved))
    assert read_tree(moved) == {"mid.bin": files["big/mid.bin"]}
    assert "big/mid.bin" not in rclone("ls", f"sb:{bucket}/copied")

    # A changed file is found by check, and sync puts it right.
    (src / "a/b/c.bin").write_bytes(os.urandom(1000) + canary)
    failed = run(["rclone", "check", str(src), f"sb:{bucket}/plain"], env, check=False)
    assert failed.returncode != 0
    rclone("sync", str(src), f"sb:{bucket}/plain", *multipart)
    rclone("check", "--download", str(src), f"sb:{bucket}/plain")
    rclone("purge", f"sb:{bucket}")
    assert bucket not in rclone("lsd", "sb:")


# -- 4. s3cmd ----------------------------------------------------------------------------------


def test_s3cmd_put_get_ls_sync_and_sse(
    server: ServerProcess,
    s3: Any,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    no_plaintext_on_disk: None,
) -> None:
    _require("s3cmd")
    home = tmp_path / "s3cmd-home"
    env = clean_env(home)
    cfg = s3cmd_config(server, home)
    _alias, key_arn = kms_alias
    bucket = _name("s3cmd")

    def s3cmd(*args: str) -> str:
        return run(["s3cmd", "-c", str(cfg), *args], env, server=server, timeout=120).stdout

    s3cmd("mb", f"s3://{bucket}")
    src = tmp_path / "src"
    files = make_tree(src, canary)

    s3cmd("put", str(src / "top.txt"), f"s3://{bucket}/one/top.txt")
    s3cmd("put", str(src / "big/mid.bin"), f"s3://{bucket}/one/mid.bin")  # multipart (5 MiB)
    assert s3.head_object(Bucket=bucket, Key="one/mid.bin")["ETag"].endswith('-2"')
    s3cmd("get", f"s3://{bucket}/one/top.txt", str(tmp_path / "top.txt"))
    s3cmd("get", f"s3://{bucket}/one/mid.bin", str(tmp_path / "mid.bin"))
    assert (tmp_path / "top.txt").read_bytes() == files["top.txt"]
    assert (tmp_path / "mid.bin").read_bytes() == files["big/mid.bin"]
    listing = s3cmd("ls", f"s3://{bucket}/one/")
    assert f"s3://{bucket}/one/top.txt" in listing and f"s3://{bucket}/one/mid.bin" in listing
    assert f"s3://{bucket}" in s3cmd("ls")

    s3cmd("sync", f"{src}/", f"s3://{bucket}/sync/")
    listed = s3cmd("ls", "--recursive", f"s3://{bucket}/sync/")
    for rel in files:
        assert f"s3://{bucket}/sync/{rel}" in listed, (rel, listed)
    down = tmp_path / "down"
    down.mkdir()
    s3cmd("sync", f"s3://{bucket}/sync/", f"{down}/")
    assert read_tree(down) == files
    # A second sync finds nothing to transfer.
    again = s3cmd("sync", "--dry-run", f"{src}/", f"s3://{bucket}/sync/")
    assert "upload:" not in again, again

    s3cmd("put", "--server-side-encryption", str(src / "top.txt"), f"s3://{bucket}/sse/s3.txt")
    s3cmd("put", f"--server-side-encryption-kms-id={key_arn}", str(src / "top.txt"),
          f"s3://{bucket}/sse/kms.txt")  # fmt: skip
    s3cmd("put", f"--server-side-encryption-kms-id={key_arn}", str(src / "big/mid.bin"),
          f"s3://{bucket}/sse/kms-mid.bin")  # fmt: skip
    assert s3.head_object(Bucket=bucket, Key="sse/s3.txt")["ServerSideEncryption"] == "AES256"
    for key in ("sse/kms.txt", "sse/kms-mid.bin"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == key_arn, key
    s3cmd("get", f"s3://{bucket}/sse/kms-mid.bin", str(tmp_path / "kms-mid.bin"))
    assert (tmp_path / "kms-mid.bin").read_bytes() == files["big/mid.bin"]

    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/")
    s3cmd("rb", f"s3://{bucket}")
    assert f"s3://{bucket}" not in s3cmd("ls")


# -- 5. s3fs -----------------------------------------------------------------------------------


def test_s3fs_ranged_reads(
    server: ServerProcess,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    no_plaintext_on_disk: None,
) -> None:
    _require("s3fs")
    import s3fs  # imported here: a missing client fails this test, not the module

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    # The region comes from the environment, not client_kwargs: with region_name there,
    # s3fs's mkdir sends LocationConstraint=us-east-1, which S3 (and Sealbox) refuses.
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    alias, key_arn = kms_alias

    def filesystem(**kwargs: Any) -> Any:
        return s3fs.S3FileSystem(
            key=ACCESS_KEY_ID,
            secret=SECRET_ACCESS_KEY,
            endpoint_url=server.url,
            config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
            skip_instance_cache=True,
            use_listings_cache=False,
            **kwargs,
        )

    fs = filesystem()
    bucket = _name("s3fs")
    fs.mkdir(bucket)
    body = canary + os.urandom(12 * MIB) + canary
    # A 5 MiB write block size makes this a three-part multipart upload.
    with fs.open(f"{bucket}/data/big.bin", "wb", block_size=5 * MIB) as f:
        for start in range(0, len(body), 1_000_000):
            f.write(body[start : start + 1_000_000])
    small = canary * 100
    fs.pipe_file(f"{bucket}/data/small.txt", small)

    assert fs.info(f"{bucket}/data/big.bin")["size"] == len(body)
    assert sorted(fs.ls(f"{bucket}/data", detail=False)) == [
        f"{bucket}/data/big.bin",
        f"{bucket}/data/small.txt",
    ]
    assert fs.cat_file(f"{bucket}/data/small.txt") == small
    # By keyword: s3fs's cat_file takes version_id as its second positional argument.
    boundaries = [0, 1, 5 * MIB - 7, 5 * MIB, 10 * MIB - 1, len(body) - 10]
    for start in boundaries:
        end = min(start + 70_000, len(body))
        assert fs.cat_file(f"{bucket}/data/big.bin", start=start, end=end) == body[start:end], start
    assert fs.cat_file(f"{bucket}/data/big.bin", start=-100) == body[-100:]
    with fs.open(f"{bucket}/data/big.bin", "rb", block_size=256 * 1024) as f:
        for start in (7 * MIB + 3, 17, 5 * MIB - 100, len(body) - 5):
            f.seek(start)
            assert f.read(200_000) == body[start : start + 200_000], start
        f.seek(-len(canary), os.SEEK_END)
        assert f.read() == canary

    kms_fs = filesystem(
        s3_additional_kwargs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": alias}
    )
    with kms_fs.open(f"{bucket}/kms/big.bin", "wb", block_size=5 * MIB) as f:
        f.write(body)
    info = kms_fs.info(f"{bucket}/kms/big.bin")
    assert info["size"] == len(body)
    head = server.client("s3").head_object(Bucket=bucket, Key="kms/big.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    for start in boundaries:
        end = min(start + 70_000, len(body))
        assert kms_fs.cat_file(f"{bucket}/kms/big.bin", start=start, end=end) == body[start:end], (
            start
        )

    local = tmp_path / "got.bin"
    fs.get_file(f"{bucket}/kms/big.bin", str(local))
    assert sha256_file(local) == hashlib.sha256(body).hexdigest()
    fs.rm(bucket, recursive=True)
    assert not fs.exists(bucket)
