"""S3 durability and integrity against a real server: interrupted uploads leave
nothing, a killed server keeps the old object or the new one, and ciphertext that
was tampered with, truncated or swapped on disk is refused, never served."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from urllib3.exceptions import ProtocolError

from tests.support.server import ServerProcess


def _blob_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return [p for p in root.glob("??/??/*") if p.is_file()]


def _blob_of(server: ServerProcess, before: set[Path]) -> Path:
    new = set(_blob_files(server.data_dir)) - before
    assert len(new) == 1, new
    return new.pop()


@pytest.fixture
def fresh(make_server: Callable[..., ServerProcess]) -> tuple[ServerProcess, Any, str]:
    server = make_server(workers=1)
    s3 = server.client("s3")
    bucket = f"d-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    return server, s3, bucket


def _get_fails(s3: Any, bucket: str, key: str, **kwargs: Any) -> None:
    """A GET of damaged data must fail: an error status, or a response cut short."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
    except (ClientError, ProtocolError, Exception) as exc:
        if isinstance(exc, ClientError):
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        return
    pytest.fail(f"damaged object was served ({len(body)} bytes)")


def test_flipped_byte_is_detected(fresh: tuple[ServerProcess, Any, str]) -> None:
    server, s3, bucket = fresh
    before = set(_blob_files(server.data_dir))
    body = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    blob = _blob_of(server, before)
    data = bytearray(blob.read_bytes())
    data[200_000] ^= 0x40  # inside the fourth segment
    blob.write_bytes(bytes(data))
    _get_fails(s3, bucket, "k")
    # A range that avoids the damaged segment is still served, and correct.
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-99")["Body"].read() == body[:100]


def test_truncated_blob_is_detected(fresh: tuple[ServerProcess, Any, str]) -> None:
    server, s3, bucket = fresh
    before = set(_blob_files(server.data_dir))
    s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(200_000))
    blob = _blob_of(server, before)
    blob.write_bytes(blob.read_bytes()[: 65_536 + 24 + 16])  # one whole segment left
    _get_fails(s3, bucket, "k")


def test_swapped_objects_are_detected(fresh: tuple[ServerProcess, Any, str]) -> None:
    server, s3, bucket = fresh
    before = set(_blob_files(server.data_dir))
    s3.put_object(Bucket=bucket, Key="a", Body=b"a" * 1000)
    blob_a = _blob_of(server, before)
    s3.put_object(Bucket=bucket, Key="b", Body=b"b" * 1000)
    blob_b = _blob_of(server, before | {blob_a})
    a, b = blob_a.read_bytes(), blob_b.read_bytes()
    blob_a.write_bytes(b)
    blob_b.write_bytes(a)
    _get_fails(s3, bucket, "a")
    _get_fails(s3, bucket, "b")


def test_client_disconnect_mid_upload_leaves_nothing(
    fresh: tuple[ServerProcess, Any, str],
) -> None:
    server, s3, bucket = fresh
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300
    )
    path = url.split(str(server.port), 1)[1]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Length: 10000000\r\n\r\n".encode()
        )
        sock.sendall(os.urandom(3_000_000))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list((server.data_dir / "blobs" / "tmp").iterdir()):
        time.sleep(0.1)
    assert list((server.data_dir / "blobs" / "tmp").iterdir()) == []
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"old"


def test_killed_server_keeps_the_old_object(fresh: tuple[ServerProcess, Any, str]) -> None:
    server, s3, bucket = fresh
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300
    )
    path = url.split(str(server.port), 1)[1]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: 10000000\r\n\r\n".encode()
    )
    sock.sendall(os.urandom(4_000_000))
    time.sleep(0.5)
    assert server.proc is not None
    server.proc.kill()  # one worker: uvicorn runs in this very process
    server.proc.wait(timeout=10)
    sock.close()
    server.proc = None
    server.start()
    s3 = server.client("s3")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"old"
    assert list((server.data_dir / "blobs" / "tmp").iterdir()) == []
