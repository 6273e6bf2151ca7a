"""S3 objects through boto3 against a real server: every SSE mode, ranges,
conditionals, listing, copy/re-keying, versioning, and ciphertext-only storage."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess


def _name(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = _name()
    s3.create_bucket(Bucket=name)
    return name


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _scan(data_dir: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in data_dir.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits


def test_default_encryption_is_sse_s3_and_round_trips(s3: Any, bucket: str) -> None:
    body = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="a/b.bin", Body=body, Metadata={"color": "blue"})
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="a/b.bin")
    assert got["Body"].read() == body
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Metadata"] == {"color": "blue"}
    assert got["ContentLength"] == len(body)
    head = s3.head_object(Bucket=bucket, Key="a/b.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]


def test_sse_kms_with_alias_reports_key_and_decrypts(s3: Any, server: ServerProcess) -> None:
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    alias = f"alias/{_name('s3')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    body = b"kms-protected " * 1000
    put = s3.put_object(
        Bucket=bucket, Key="k", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=alias
    )
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"].endswith(key_id)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert got["SSEKMSKeyId"].endswith(key_id)
    # A disabled key makes GET fail the way S3 surfaces KMS errors.
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert _code(exc) == "KMS.DisabledException"
    kms.enable_key(KeyId=key_id)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_ranges_and_conditionals(s3: Any, bucket: str) -> None:
    body = os.urandom(200_000)
    etag = s3.put_object(Bucket=bucket, Key="r", Body=body)["ETag"]
    part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=70000-140000")
    assert part["Body"].read() == body[70000:140001]
    assert part["ContentRange"] == f"bytes 70000-140000/{len(body)}"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-100")["Body"].read() == body[-100:]
    assert (
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=199990-")["Body"].read()
        == (body[199990:])
    )
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body)}-")
    assert _code(exc) == "InvalidRange"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfMatch='"nope"')
    assert _status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfNoneMatch=etag)
    assert _status(exc) == 304
    assert s3.get_object(Bucket=bucket, Key="r", IfMatch=etag)["Body"].read() == body


def test_missing_things_and_bad_headers(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nothing")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=_name("missing"), Key="x")
    assert _code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"1", ServerSideEncryption="rot13")
    assert _code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert _code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"abc", ContentMD5="zz")
    assert _code(exc) == "InvalidDigest"
    # Nothing was stored by the failed uploads.
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="x")
    assert _status(exc) == 404


def test_list_objects_v2_prefix_delimiter_pages(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "b/1", "c", "d", "e/x/y", "e/z"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [c["Key"] for c in listed["Contents"]] == ["c", "d"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "b/", "e/"]
    seen: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, **token)
        seen += [c["Key"] for c in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    assert seen == keys
    paginator = s3.get_paginator("list_objects")
    v1 = [c["Key"] for p in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
          for c in p.get("Contents", [])]  # fmt: skip
    assert v1 == keys
    under_e = s3.list_objects_v2(Bucket=bucket, Prefix="e/", Delimiter="/")
    assert [c["Key"] for c in under_e["Contents"]] == ["e/z"]
    assert [p["Prefix"] for p in under_e["CommonPrefixes"]] == ["e/x/"]


def test_copy_reencrypts_in_place_under_kms(s3: Any, server: ServerProcess) -> None:
    kms = server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="doc", Body=body)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc"})
    assert _code(exc) == "InvalidRequest"
    out = s3.copy_object(
        Bucket=bucket,
        Key="doc",
        CopySource={"Bucket": bucket, "Key": "doc"},
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_arn,
    )
    assert out["ServerSideEncryption"] == "aws:kms"
    head = s3.head_object(Bucket=bucket, Key="doc")
    assert head["SSEKMSKeyId"] == key_arn
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == body


def test_delete_and_delete_objects(s3: Any, bucket: str) -> None:
    for key in ("x", "y", "z"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    s3.delete_object(Bucket=bucket, Key="x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "y"}, {"Key": "z"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["y", "z"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert _status(exc) == 404


def test_bucket_not_empty_and_already_owned(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"1")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert _code(exc) == "BucketNotEmpty"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert _code(exc) == "BucketAlreadyOwnedByYou"
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"1"


def test_versioning_versions_and_delete_markers(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v1)["Body"].read() == b"one"
    marker = s3.delete_object(Bucket=bucket, Key="v")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="v")
    assert _code(exc) == "NoSuchKey"
    listing = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [v2, v1]
    assert listing["DeleteMarkers"][0]["IsLatest"] is True
    s3.delete_object(Bucket=bucket, Key="v", VersionId=marker["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="v", VersionId="A" * 32)
    assert _code(exc) == "NoSuchVersion"


def test_object_tagging_and_attributes(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"abc", Tagging="team=blue&x=1")
    assert {
        t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    } == {
        "team": "blue",
        "x": "1",
    }
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "k", "Value": "v"}]
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="t", ObjectAttributes=["ETag", "ObjectSize", "StorageClass"]
    )
    assert attrs["ObjectSize"] == 3
    assert attrs["ETag"] == hashlib.md5(b"abc", usedforsecurity=False).hexdigest()


def test_checksums_are_verified_and_returned(s3: Any, bucket: str) -> None:
    body = os.urandom(5000)
    put = s3.put_object(Bucket=bucket, Key="c", Body=body, ChecksumAlgorithm="SHA256")
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert put["ChecksumSHA256"] == expected
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c2", Body=body, ChecksumSHA256=expected[::-1])
    assert _code(exc) in ("BadDigest", "InvalidRequest")


def test_data_directory_holds_no_plaintext(s3: Any, server: ServerProcess) -> None:
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    canary = b"CANARY-" + uuid.uuid4().hex.encode() + b"-" + os.urandom(8).hex().encode()
    body = canary * 50
    s3.put_object(Bucket=bucket, Key="s3", Body=body)
    s3.put_object(Bucket=bucket, Key="kms", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id)  # fmt: skip
    s3.put_object(Bucket=bucket, Key="bk", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id, BucketKeyEnabled=True)  # fmt: skip
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "s3"})
    for key in ("s3", "kms", "bk", "copy"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert _scan(server.data_dir, canary) == []


def test_multipart_upload_through_boto3_transfer(s3: Any, bucket: str) -> None:
    from boto3.s3.transfer import TransferConfig

    body = os.urandom(13 * 1024 * 1024)
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    import io

    s3.upload_fileobj(io.BytesIO(body), bucket, "big", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    ranged = s3.get_object(Bucket=bucket, Key="big", Range="bytes=5242000-5243000")
    assert ranged["Body"].read() == body[5242000:5243001]
    part2 = s3.get_object(Bucket=bucket, Key="big", PartNumber=2)
    assert part2["PartsCount"] == 3
    assert part2["Body"].read() == body[5 * 1024 * 1024 : 10 * 1024 * 1024]


def test_multipart_errors(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"a" * 10)
    e2 = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=2, Body=b"b" * 10)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2["ETag"]},
                                       {"PartNumber": 1, "ETag": e1["ETag"]}]},
        )  # fmt: skip
    assert _code(exc) == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1["ETag"]},
                                       {"PartNumber": 2, "ETag": e2["ETag"]}]},
        )  # fmt: skip
    assert _code(exc) == "EntityTooSmall"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )  # fmt: skip
    assert _code(exc) == "InvalidPart"
    listed = s3.list_parts(Bucket=bucket, Key="m", UploadId=upload)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="m", UploadId=upload)
    assert _code(exc) == "NoSuchUpload"


def test_update_object_encryption_rewraps_without_rewriting(
    s3: Any, server: ServerProcess, bucket: str
) -> None:
    kms = server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    body = os.urandom(70_000)
    put = s3.put_object(Bucket=bucket, Key="u", Body=body, ChecksumAlgorithm="CRC32")
    before = {p.name for p in server.data_dir.rglob("*") if p.is_file() and "blobs" in p.parts}
    s3.update_object_encryption(
        Bucket=bucket, Key="u", ObjectEncryption={"SSEKMS": {"KMSKeyArn": key_arn}}
    )
    head = s3.head_object(Bucket=bucket, Key="u", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["ETag"] == put["ETag"]
    assert head["ChecksumCRC32"] == put["ChecksumCRC32"]
    after = {p.name for p in server.data_dir.rglob("*") if p.is_file() and "blobs" in p.parts}
    assert before == after  # no data was rewritten
    assert s3.get_object(Bucket=bucket, Key="u")["Body"].read() == body
    s3.update_object_encryption(
        Bucket=bucket, Key="u",
        ObjectEncryption={"SSEKMS": {"KMSKeyArn": key_arn, "BucketKeyEnabled": True}},
    )  # fmt: skip
    assert s3.head_object(Bucket=bucket, Key="u")["BucketKeyEnabled"] is True
    assert s3.get_object(Bucket=bucket, Key="u")["Body"].read() == body


@pytest.mark.postgres
def test_s3_on_postgresql(make_server: Any, postgres_url: str) -> None:
    server = make_server(database=postgres_url)
    s3 = server.client("s3")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = ["z", "a/1", "a/2", "é", "B"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * 100,
                      ServerSideEncryption="aws:kms")  # fmt: skip
    # Byte order, as S3 lists (PostgreSQL's default collation would not give it).
    listed = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    assert s3.get_object(Bucket=bucket, Key="é")["Body"].read() == "é".encode() * 100
    s3.delete_object(Bucket=bucket, Key="z")
    assert len(s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]) == 1


def test_kms_errors_and_payload_hash_mismatch_surface_as_s3_does(
    s3: Any, server: ServerProcess, bucket: str
) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"1", ServerSideEncryption="aws:kms",
            SSEKMSKeyId="11111111-2222-3333-4444-555555555555",
        )  # fmt: skip
    assert _code(exc) == "KMS.NotFoundException"
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    s3.put_object(
        Bucket=bucket, Key="doomed", Body=b"1", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id
    )
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doomed")
    assert _code(exc) == "KMS.KMSInvalidStateException"

    # A body that is not what the signed x-amz-content-sha256 says (swapped after signing).
    def swap_body(request: Any, **_: Any) -> None:
        request.body = b"the fake body"

    liar = server.client("s3")
    liar.meta.events.register("before-send.s3.PutObject", swap_body)
    with pytest.raises(ClientError) as exc:
        liar.put_object(Bucket=bucket, Key="lie", Body=b"the real body")
    assert _code(exc) == "XAmzContentSHA256Mismatch"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="lie")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
