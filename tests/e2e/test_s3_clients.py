"""S3 through real third-party clients against a real server: the aws CLI (v1, from pip),
rclone, s3cmd, fsspec's s3fs and curl's SigV4 signer -- uploads and downloads of
directory trees, every server-side encryption mode each client can ask for (SSE-C over
HTTPS), multipart uploads and copies, ranged reads, presigned URLs, virtual-hosted
addressing, and, after each test, a scan of the data directory for the plaintext canary.

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
REQUIRED_CLIENTS: tuple[str, ...] = ("aws", "rclone", "s3cmd", "s3fs", "curl")

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


def _s3fs_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """s3fs runs in this process: no AWS_* variable or ~/.aws file of the machine reaches it.
    The region comes from here, not client_kwargs: with region_name there, s3fs's mkdir
    sends LocationConstraint=us-east-1, which S3 (and Sealbox) refuses."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


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
    assert aws("s3", "sync", f"s3://{bucket}/sync/", str(down)).stdout.strip() == ""

    # Flexible checksums: SHA-256 per part (composite) and CRC64NVME (always full-object).
    for algorithm, rel, kind in [
        ("SHA256", "big/mid.bin", "COMPOSITE"),
        ("CRC64NVME", "big/mid.bin", "FULL_OBJECT"),
    ]:
        key = f"sum/{algorithm}/{rel}"
        aws("s3", "cp", str(src / rel), f"s3://{bucket}/{key}", "--checksum-algorithm", algorithm)
        head = _head(aws, bucket, key, "--checksum-mode", "ENABLED")
        assert head[f"Checksum{algorithm}"], head
        assert head["ChecksumType"] == kind, head
        got = tmp_path / f"sum-{algorithm}"
        aws("s3", "cp", f"s3://{bucket}/{key}", str(got))  # validates the checksum
        assert got.read_bytes() == files[rel]

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
    # `aws s3 ls` of a prefix with nothing under it lists nothing and exits 1.
    gone = aws("s3", "ls", f"s3://{bucket}/copy/", "--recursive", check=False)
    assert (gone.returncode, gone.stdout) == (1, "")
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
    denied.value.close()
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

    # Server-side copies re-keyed to the other key (the 9 MiB one via UploadPartCopy).
    aws("s3", "cp", f"s3://{bucket}/tree/", f"s3://{bucket}/rekeyed/", "--recursive",
        "--sse-c-copy-source", "AES256", "--sse-c-copy-source-key", f"fileb://{key_file}",
        "--sse-c", "AES256", "--sse-c-key", f"fileb://{other_key}")  # fmt: skip
    rekeyed = tmp_path / "rekeyed"
    aws("s3", "cp", f"s3://{bucket}/rekeyed/", str(rekeyed), "--recursive", "--sse-c",
        "AES256", "--sse-c-key", f"fileb://{other_key}")  # fmt: skip
    assert read_tree(rekeyed) == files
    old_key = aws("s3", "cp", f"s3://{bucket}/rekeyed/big/mid.bin", str(tmp_path / "w"),
                  *ssec, check=False)  # fmt: skip
    assert old_key.returncode != 0
    assert "403" in old_key.stderr or "Forbidden" in old_key.stderr, old_key.stderr

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
    # Without the key the listing works but every download fails (S3 answers 400).
    no_key_dir = tmp_path / "no-key"
    no_key = run(
        ["rclone", "copy", "--retries", "1", "--low-level-retries", "1",
         f"sb:{bucket}/rclone", str(no_key_dir)],
        env, check=False,
    )  # fmt: skip
    assert no_key.returncode != 0
    assert "400" in no_key.stderr, no_key.stderr
    assert [p for p in no_key_dir.rglob("*") if p.is_file() and p.stat().st_size] == []

    import s3fs  # imported here: a missing client fails this test, not the module

    _s3fs_environment(monkeypatch, tmp_path)
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
    listed: dict[str, int] = {}
    for line in rclone("ls", f"sb:{bucket}/plain").splitlines():  # "   SIZE path"
        size, rel = line.strip().split(None, 1)
        listed[rel] = int(size)
    assert listed == {rel: len(data) for rel, data in files.items()}
    down = tmp_path / "down"
    rclone("copy", f"sb:{bucket}/plain", str(down))
    assert read_tree(down) == files
    assert s3.head_object(Bucket=bucket, Key="plain/top.txt")["ServerSideEncryption"] == "AES256"
    # Listing two keys a page, with ListObjects (markers) and ListObjectsV2 (tokens).
    everything = [*sorted(files), "a/", "a/b/", "big/", "unicode/"]
    for version in ("1", "2"):
        paged = rclone("lsf", "-R", "--s3-list-chunk", "2", "--s3-list-version", version,
                       f"sb:{bucket}/plain")  # fmt: skip
        assert sorted(paged.splitlines()) == sorted(everything), version
    # A presigned link (SigV4 query auth) fetched without credentials.
    link = rclone("link", "--expire", "5m", f"sb:{bucket}/plain/a/space name.txt").strip()
    with urllib.request.urlopen(link, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.read() == files["a/space name.txt"]
    # touch rewrites the modification time in place (CopyObject, metadata REPLACE).
    before = rclone("lsl", f"sb:{bucket}/plain/top.txt")
    rclone("touch", "--timestamp", "2001-02-03T04:05:06", f"sb:{bucket}/plain/top.txt")
    after = rclone("lsl", f"sb:{bucket}/plain/top.txt")
    assert "2001-02-03 04:05:06" in after and after != before, (before, after)
    assert rclone("cat", f"sb:{bucket}/plain/top.txt").encode() == files["top.txt"]

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

    info = s3cmd("info", f"s3://{bucket}/sse/kms.txt")
    assert "SSE:       aws:kms" in info and "MD5 sum:" in info, info
    s3cmd("cp", f"s3://{bucket}/one/mid.bin", f"s3://{bucket}/two/mid.bin")
    s3cmd("mv", f"s3://{bucket}/two/mid.bin", f"s3://{bucket}/three/mid.bin")
    s3cmd("get", f"s3://{bucket}/three/mid.bin", str(tmp_path / "three.bin"))
    assert (tmp_path / "three.bin").read_bytes() == files["big/mid.bin"]
    assert f"s3://{bucket}/two/" not in s3cmd("ls", f"s3://{bucket}/")
    # s3cmd signs URLs with SigV2 query authentication.
    url = s3cmd("signurl", f"s3://{bucket}/one/top.txt", "+300").strip()
    assert "Signature=" in url, url
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.read() == files["top.txt"]

    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/")
    s3cmd("rb", f"s3://{bucket}")
    assert f"s3://{bucket}" not in s3cmd("ls")


# -- 5. s3fs -----------------------------------------------------------------------------------


def test_s3fs_ranged_reads_trees_and_versions(
    server: ServerProcess,
    tmp_path: Path,
    canary: bytes,
    kms_alias: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    no_plaintext_on_disk: None,
) -> None:
    _require("s3fs")
    import s3fs  # imported here: a missing client fails this test, not the module

    _s3fs_environment(monkeypatch, tmp_path)
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

    # Whole trees, server-side copies and moves, metadata rewrites.
    src = tmp_path / "src"
    files = make_tree(src, canary)
    fs.put(f"{src}/", f"{bucket}/tree/", recursive=True)
    assert sorted(fs.find(f"{bucket}/tree")) == sorted(f"{bucket}/tree/{rel}" for rel in files)
    assert fs.du(f"{bucket}/tree") == sum(len(data) for data in files.values())
    fs.copy(f"{bucket}/tree/a", f"{bucket}/copy/a", recursive=True)
    fs.mv(f"{bucket}/tree/big/mid.bin", f"{bucket}/moved/mid.bin")
    assert not fs.exists(f"{bucket}/tree/big/mid.bin")
    assert fs.cat_file(f"{bucket}/moved/mid.bin") == files["big/mid.bin"]
    fs.setxattr(f"{bucket}/tree/top.txt", color="blue")
    assert fs.getxattr(f"{bucket}/tree/top.txt", "color") == "blue"
    assert fs.cat_file(f"{bucket}/tree/top.txt") == files["top.txt"]
    got = tmp_path / "got"
    fs.get(f"{bucket}/copy/", f"{got}/", recursive=True)
    assert read_tree(got) == {k: v for k, v in files.items() if k.startswith("a/")}

    # Versions, read back by id.
    fs.make_bucket_versioned(bucket)
    versioned = filesystem(version_aware=True)
    versioned.pipe_file(f"{bucket}/v/file", canary + b" one")
    versioned.pipe_file(f"{bucket}/v/file", canary + b" two")
    history = versioned.object_version_info(f"{bucket}/v/file")
    assert [v["IsLatest"] for v in history] == [True, False]
    old = history[1]["VersionId"]
    with versioned.open(f"{bucket}/v/file", version_id=old) as f:
        assert f.read() == canary + b" one"
    assert versioned.cat_file(f"{bucket}/v/file") == canary + b" two"

    fs.rm(bucket, recursive=True)
    assert not fs.exists(bucket)


# -- 6. curl's SigV4 signer, virtual-hosted style ----------------------------------------------


def test_curl_sigv4_virtual_hosted_style(
    server: ServerProcess, s3: Any, tmp_path: Path, canary: bytes, no_plaintext_on_disk: None
) -> None:
    """BUCKET.localhost names the bucket. curl is the one client here that resolves
    *.localhost to loopback by itself (botocore, rclone and aiohttp ask DNS)."""
    _require("curl")
    env = clean_env(tmp_path / "curl-home")
    bucket = _name("vhost")
    s3.create_bucket(Bucket=bucket)
    body = b"via curl " + canary + os.urandom(5000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    out = tmp_path / "out"

    def curl(url: str, *args: str, payload: str | None = "UNSIGNED-PAYLOAD") -> tuple[int, bytes]:
        sha = [] if payload is None else ["-H", f"x-amz-content-sha256: {payload}"]
        out.unlink(missing_ok=True)
        result = run(
            ["curl", "-sS", "--aws-sigv4", f"aws:amz:{REGION}:s3",
             "--user", f"{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}",
             "-o", str(out), "-w", "%{http_code}", *sha, *args, url],
            env, server=server, timeout=30,
        )  # fmt: skip
        return int(result.stdout), out.read_bytes() if out.exists() else b""

    host = f"http://{bucket}.localhost:{server.port}"
    # curl 7.88 signs the query as written: keep it sorted and percent-encoded.
    status, _ = curl(
        f"{host}/up/plus%2Bspace%20key.bin", "-T", str(upload),
        "-H", "x-amz-server-side-encryption: aws:kms", "-H", "x-amz-meta-via: curl",
        payload=hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    assert status == 200
    head = s3.head_object(Bucket=bucket, Key="up/plus+space key.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["Metadata"] == {"via": "curl"}
    assert head["ContentLength"] == len(body)

    assert curl(f"{host}/up/plus%2Bspace%20key.bin") == (200, body)
    regional = f"http://{bucket}.s3.{REGION}.localhost:{server.port}"
    assert curl(f"{regional}/up/plus%2Bspace%20key.bin") == (200, body)
    assert curl(f"{host}/up/plus%2Bspace%20key.bin", "-r", "100-199") == (206, body[100:200])
    status, listing = curl(f"{host}/?list-type=2&prefix=up%2F")
    assert status == 200
    assert b"<Key>up/plus+space key.bin</Key>" in listing, listing
    status, listing = curl(f"http://localhost:{server.port}/")
    assert status == 200 and f"<Name>{bucket}</Name>".encode() in listing

    assert curl(f"{host}/up/plus%2Bspace%20key.bin", "-X", "DELETE")[0] == 204
    status, error = curl(f"{host}/up/plus%2Bspace%20key.bin")
    assert status == 404 and b"<Code>NoSuchKey</Code>" in error

    # SigV4 requests to S3 must carry x-amz-content-sha256 (curl 7.x does not add it by
    # itself); S3 answers 400 InvalidRequest "Missing required header for this request".
    status, error = curl(f"{host}/?list-type=2&prefix=up%2F", payload=None)
    assert status == 400
    assert b"Missing required header for this request: x-amz-content-sha256" in error, error
    assert b"<Code>InvalidRequest</Code>" in error, error
