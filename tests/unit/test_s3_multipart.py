"""Multipart uploads on a real database, blob store, KMS and bucket access."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.crypto import checksums
from sealbox.s3 import multipart
from sealbox.s3.access import BucketAccess
from sealbox.s3.encryption import Encryption
from sealbox.s3.errors import (
    BadDigest,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchUpload,
    PreconditionFailed,
    S3AccessDenied,
    S3Error,
)
from sealbox.s3.model import Bucket
from sealbox.s3.multipart import MultipartService
from sealbox.s3.objects import ObjectService
from sealbox.server.runtime import Runtime
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from tests.support.runtime import ACCOUNT, build_runtime, root_call

BUCKET = "mp-bucket"
KEY = "dir/object.bin"
SMALL = 1024  # MIN_PART_SIZE for these tests


@dataclass
class Env:
    rt: Runtime
    clock: ManualClock
    blobs: BlobStore
    objects: ObjectService
    mp: MultipartService


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def env(tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setattr(multipart, "MIN_PART_SIZE", SMALL)
    rt = build_runtime(tmp_path / "data", clock)
    blobs = BlobStore(tmp_path / "blobs")
    encryption = Encryption(rt.db, rt.keystore, rt.kms, clock)
    objects = ObjectService(rt.db, clock, BucketAccess(rt.authorizer), blobs, encryption)
    add_bucket(rt, clock, BUCKET)
    yield Env(rt, clock, blobs, objects, MultipartService(objects))
    rt.close()


def add_bucket(rt: Runtime, clock: ManualClock, name: str, versioning: str | None = None) -> None:
    bucket = Bucket(
        name=name,
        account_id=ACCOUNT,
        region="us-east-1",
        created_at=clock.now(),
        versioning=versioning,
    )
    rt.db.write(lambda conn: s3_repo.insert_bucket(conn, bucket))


def call(name: str = "S3Call", secure: bool = False) -> Call:
    c = root_call(name)
    c.event_source = "s3.amazonaws.com"
    c.secure_transport = secure
    return c


def create(env: Env, key: str = KEY, **params: Any) -> str:
    out = env.mp.create_multipart_upload(
        call("CreateMultipartUpload"), {"Bucket": BUCKET, "Key": key, **params}
    )
    upload_id: str = out["UploadId"]
    return upload_id


def put_part(
    env: Env,
    upload_id: str,
    number: int,
    data: bytes,
    key: str = KEY,
    secure: bool = False,
    trailers: dict[str, str] | None = None,
    trailer_names: tuple[str, ...] = (),
    **params: Any,
) -> dict[str, Any]:
    pending = env.mp.start_upload_part(
        call("UploadPart", secure),
        {"Bucket": BUCKET, "Key": key, "UploadId": upload_id, "PartNumber": number, **params},
        None,
        trailer_names,
    )
    for i in range(0, len(data), 333):
        pending.write(data[i : i + 333])
    return pending.commit(trailers or {})


def complete(
    env: Env, upload_id: str, parts: list[dict[str, Any]], key: str = KEY, **params: Any
) -> dict[str, Any]:
    return env.mp.complete_multipart_upload(
        call("CompleteMultipartUpload", params.pop("secure", False)),
        {
            "Bucket": BUCKET,
            "Key": key,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": parts},
            **params,
        },
    )


def read(env: Env, key: str = KEY, secure: bool = False, **params: Any) -> bytes:
    got = env.objects.get_object(
        call("GetObject", secure), {"Bucket": BUCKET, "Key": key, **params}, head=False
    )
    return b"".join(got.chunks())


def blob_ids(env: Env) -> set[str]:
    return set(env.blobs.blob_ids())


def listed(number: int, out: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"PartNumber": number, "ETag": out["ETag"], **more}


def upload_three(
    env: Env, sizes: tuple[int, ...] = (1500, 1500, 700)
) -> tuple[str, bytes, list[dict[str, Any]]]:
    upload_id = create(env)
    datas = [os.urandom(n) for n in sizes]
    outs = [put_part(env, upload_id, i + 1, d) for i, d in enumerate(datas)]
    return upload_id, b"".join(datas), [listed(i + 1, o) for i, o in enumerate(outs)]


def md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the round trip -----------------------------------------------------------------------------


def test_three_parts_complete_and_read_back(env: Env) -> None:
    upload_id, whole, parts = upload_three(env)
    assert len(blob_ids(env)) == 3
    out = complete(env, upload_id, parts)
    md5s = [md5(whole[a:b]).digest() for a, b in ((0, 1500), (1500, 3000), (3000, 3700))]
    assert out["ETag"] == checksums.multipart_etag(md5s)
    assert out["ETag"].endswith('-3"')
    assert out["Bucket"] == BUCKET and out["Key"] == KEY
    assert out["Location"] == f"/{BUCKET}/{KEY}"
    assert out["ServerSideEncryption"] == "AES256"
    assert "VersionId" not in out  # versioning never configured
    assert "ChecksumType" not in out
    assert read(env) == whole
    assert len(blob_ids(env)) == 3  # the parts' blobs are the object's now

    head = env.objects.get_object(call(), {"Bucket": BUCKET, "Key": KEY}, head=True)
    assert head.output["ContentLength"] == len(whole)
    assert head.output["ETag"] == out["ETag"]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 3699), (1400, 1600), (1499, 1500), (1000, 3100), (2999, 3000), (3000, 3699), (5, 5)],
)
def test_ranged_reads_cross_part_boundaries(env: Env, start: int, end: int) -> None:
    upload_id, whole, parts = upload_three(env)
    complete(env, upload_id, parts)
    assert read(env, Range=f"bytes={start}-{end}") == whole[start : end + 1]


def test_get_by_part_number(env: Env) -> None:
    upload_id, whole, parts = upload_three(env)
    complete(env, upload_id, parts)
    got = env.objects.get_object(
        call(), {"Bucket": BUCKET, "Key": KEY, "PartNumber": 2}, head=False
    )
    assert b"".join(got.chunks()) == whole[1500:3000]
    assert got.output["PartsCount"] == 3


def test_second_complete_is_no_such_upload(env: Env) -> None:
    upload_id, _, parts = upload_three(env)
    complete(env, upload_id, parts)
    with pytest.raises(NoSuchUpload):
        complete(env, upload_id, parts)
    with pytest.raises(NoSuchUpload):
        put_part(env, upload_id, 1, b"late")


def test_completion_replaces_an_existing_object_and_its_blobs(env: Env) -> None:
    first, _, parts = upload_three(env)
    complete(env, first, parts)
    old = blob_ids(env)
    second, whole, parts = upload_three(env, (1100, 10))
    complete(env, second, parts)
    assert read(env) == whole
    assert not (old & blob_ids(env))
    assert len(blob_ids(env)) == 2


def test_single_small_part_is_allowed(env: Env) -> None:
    upload_id = create(env)
    out = put_part(env, upload_id, 7, b"tiny")
    done = complete(env, upload_id, [listed(7, out)])
    assert done["ETag"].endswith('-1"')
    assert read(env) == b"tiny"


def test_empty_part(env: Env) -> None:
    upload_id = create(env)
    out = put_part(env, upload_id, 1, b"")
    assert out["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    complete(env, upload_id, [listed(1, out)])
    assert read(env) == b""


def test_metadata_tags_and_headers_come_from_create(env: Env) -> None:
    upload_id = create(
        env,
        ContentType="text/plain",
        Metadata={"colour": "blue"},
        Tagging="a=1&b=2",
    )
    out = put_part(env, upload_id, 1, b"hello")
    complete(env, upload_id, [listed(1, out)])
    head = env.objects.get_object(call(), {"Bucket": BUCKET, "Key": KEY}, head=True)
    assert head.output["ContentType"] == "text/plain"
    assert head.output["Metadata"] == {"colour": "blue"}
    assert head.output["TagCount"] == 2


# -- parts ----------------------------------------------------------------------------------


def test_part_replacement_keeps_the_newest_and_deletes_the_old_blob(env: Env) -> None:
    upload_id = create(env)
    first = put_part(env, upload_id, 1, b"a" * 1200)
    before = blob_ids(env)
    second = put_part(env, upload_id, 1, b"b" * 1300)
    after = blob_ids(env)
    assert len(before) == len(after) == 1 and before != after
    last = put_part(env, upload_id, 2, b"tail")
    with pytest.raises(InvalidPart):
        complete(env, upload_id, [listed(1, first), listed(2, last)])
    complete(env, upload_id, [listed(1, second), listed(2, last)])
    assert read(env) == b"b" * 1300 + b"tail"


@pytest.mark.parametrize("number", [0, -1, 10001, "x", None])
def test_part_number_bounds(env: Env, number: Any) -> None:
    upload_id = create(env)
    with pytest.raises(InvalidArgument, match="between 1 and 10000, inclusive"):
        put_part(env, upload_id, number, b"x")


def test_part_numbers_at_the_bounds(env: Env) -> None:
    upload_id = create(env)
    one = put_part(env, upload_id, 1, b"1" * SMALL)
    top = put_part(env, upload_id, 10000, b"top")
    complete(env, upload_id, [listed(1, one), listed(10000, top)])
    assert read(env) == b"1" * SMALL + b"top"


def test_unknown_upload_or_other_key(env: Env) -> None:
    upload_id = create(env)
    with pytest.raises(NoSuchUpload):
        put_part(env, "nope", 1, b"x")
    with pytest.raises(NoSuchUpload):
        put_part(env, upload_id, 1, b"x", key="other-key")
    with pytest.raises(NoSuchUpload):
        complete(env, "nope", [{"PartNumber": 1, "ETag": "x"}])
    with pytest.raises(NoSuchUpload):
        env.mp.list_parts(call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": "nope"})


def test_part_arriving_after_abort_is_refused_and_its_blob_removed(env: Env) -> None:
    upload_id = create(env)
    pending = env.mp.start_upload_part(
        call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id, "PartNumber": 1}, None, ()
    )
    pending.write(b"in flight")
    env.mp.abort_multipart_upload(call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id})
    with pytest.raises(NoSuchUpload):
        pending.commit({})
    assert blob_ids(env) == set()
    assert list(env.blobs.partial_files()) == []


def test_pending_part_abort_leaves_nothing(env: Env) -> None:
    upload_id = create(env)
    pending = env.mp.start_upload_part(
        call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id, "PartNumber": 1}, None, ()
    )
    pending.write(b"half")
    pending.abort()
    assert blob_ids(env) == set()
    assert list(env.blobs.partial_files()) == []


def test_content_md5_mismatch_is_bad_digest(env: Env) -> None:
    upload_id = create(env)
    with pytest.raises(BadDigest):
        put_part(env, upload_id, 1, b"data", ContentMD5=b64(md5(b"other").digest()))
    assert blob_ids(env) == set()
    out = put_part(env, upload_id, 1, b"data", ContentMD5=b64(md5(b"data").digest()))
    assert out["ETag"] == f'"{md5(b"data").hexdigest()}"'


# -- completion errors --------------------------------------------------------------------------


def test_invalid_part_order(env: Env) -> None:
    upload_id, _, parts = upload_three(env)
    with pytest.raises(InvalidPartOrder):
        complete(env, upload_id, [parts[1], parts[0], parts[2]])
    with pytest.raises(InvalidPartOrder):
        complete(env, upload_id, [parts[0], parts[0], parts[2]])
    complete(env, upload_id, parts)  # the upload survived the failures


def test_invalid_part(env: Env) -> None:
    upload_id, _, parts = upload_three(env)
    message = (
        "One or more of the specified parts could not be found.  The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag."
    )
    wrong_etag = [parts[0], {**parts[1], "ETag": '"0123456789abcdef0123456789abcdef"'}, parts[2]]
    with pytest.raises(InvalidPart) as err:
        complete(env, upload_id, wrong_etag)
    assert err.value.message == message
    with pytest.raises(InvalidPart):
        complete(env, upload_id, [*parts, {"PartNumber": 4, "ETag": parts[0]["ETag"]}])
    with pytest.raises(InvalidPart):
        complete(env, upload_id, [parts[0], {"PartNumber": 2}])
    # ETags compare without their quotes.
    bare = [{**p, "ETag": p["ETag"].strip('"')} for p in parts]
    complete(env, upload_id, bare)


def test_empty_part_list_is_malformed(env: Env) -> None:
    upload_id, _, _ = upload_three(env)
    with pytest.raises(MalformedXML):
        complete(env, upload_id, [])


def test_entity_too_small(env: Env) -> None:
    upload_id = create(env)
    small = put_part(env, upload_id, 1, b"s" * (SMALL - 1))
    last = put_part(env, upload_id, 2, b"last")
    with pytest.raises(EntityTooSmall) as err:
        complete(env, upload_id, [listed(1, small), listed(2, last)])
    assert err.value.extra["ProposedSize"] == str(SMALL - 1)
    assert err.value.extra["MinSizeAllowed"] == str(SMALL)
    exact = put_part(env, upload_id, 1, b"e" * SMALL)
    complete(env, upload_id, [listed(1, exact), listed(2, last)])


def test_unlisted_parts_are_deleted_on_completion(env: Env) -> None:
    upload_id, whole, parts = upload_three(env)
    complete(env, upload_id, [parts[0], parts[2]])
    assert read(env) == whole[:1500] + whole[3000:]
    assert len(blob_ids(env)) == 2


def test_if_none_match_star(env: Env) -> None:
    upload_id, whole, parts = upload_three(env)
    complete(env, upload_id, parts, IfNoneMatch="*")
    again, _, parts2 = upload_three(env)
    with pytest.raises(PreconditionFailed):
        complete(env, again, parts2, IfNoneMatch="*")
    assert read(env) == whole
    # The upload is still there after a failed condition.
    listing = env.mp.list_parts(call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": again})
    assert len(listing["Parts"]) == 3


def test_if_match(env: Env) -> None:
    upload_id, _, parts = upload_three(env)
    first = complete(env, upload_id, parts)
    again, whole, parts2 = upload_three(env)
    with pytest.raises(PreconditionFailed):
        complete(env, again, parts2, IfMatch='"not-it"')
    complete(env, again, parts2, IfMatch=first["ETag"])
    assert read(env) == whole


def test_versioned_bucket_reports_version_ids(env: Env) -> None:
    add_bucket(env.rt, env.clock, "versioned", "Enabled")
    ids = []
    for content in (b"one", b"two"):
        out = env.mp.create_multipart_upload(call(), {"Bucket": "versioned", "Key": "k"})
        pending = env.mp.start_upload_part(
            call(),
            {"Bucket": "versioned", "Key": "k", "UploadId": out["UploadId"], "PartNumber": 1},
            None,
            (),
        )
        pending.write(content)
        part = pending.commit({})
        done = env.mp.complete_multipart_upload(
            call(),
            {
                "Bucket": "versioned",
                "Key": "k",
                "UploadId": out["UploadId"],
                "MultipartUpload": {"Parts": [listed(1, part)]},
            },
        )
        ids.append(done["VersionId"])
    assert ids[0] != ids[1] and "null" not in ids
    old = env.objects.get_object(
        call(), {"Bucket": "versioned", "Key": "k", "VersionId": ids[0]}, head=False
    )
    assert b"".join(old.chunks()) == b"one"


# -- abort and expiry -----------------------------------------------------------------------


def test_abort_deletes_blobs(env: Env) -> None:
    upload_id, _, _ = upload_three(env)
    paths = [env.blobs.path(b) for b in blob_ids(env)]
    assert len(paths) == 3 and all(p.exists() for p in paths)
    out = env.mp.abort_multipart_upload(
        call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id}
    )
    assert out == {}
    assert not any(p.exists() for p in paths)
    assert env.mp.list_multipart_uploads(call(), {"Bucket": BUCKET})["Uploads"] == []
    with pytest.raises(NoSuchUpload):
        env.mp.abort_multipart_upload(call(), {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id})


def test_expire_uploads(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multipart, "EXPIRE_BATCH", 2)
    old = [create(env, key=f"old-{i}") for i in range(5)]
    for i, upload_id in enumerate(old):
        put_part(env, upload_id, 1, b"old", key=f"old-{i}")
    env.clock.advance(timedelta(days=3))
    fresh = create(env, key="fresh")
    put_part(env, fresh, 1, b"fresh", key="fresh")
    assert len(blob_ids(env)) == 6
    assert env.mp.expire_uploads(timedelta(days=7)) == 0
    assert env.mp.expire_uploads(timedelta(days=1)) == 5
    assert len(blob_ids(env)) == 1
    left = env.mp.list_multipart_uploads(call(), {"Bucket": BUCKET})["Uploads"]
    assert [u["UploadId"] for u in left] == [fresh]
    assert env.mp.expire_uploads(timedelta(days=1)) == 0


# -- checksums ----------------------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def test_composite_sha256_checksum(env: Env) -> None:
    out = env.mp.create_multipart_upload(
        call(), {"Bucket": BUCKET, "Key": KEY, "ChecksumAlgorithm": "SHA256"}
    )
    assert out["ChecksumAlgorithm"] == "SHA256" and out["ChecksumType"] == "COMPOSITE"
    upload_id = out["UploadId"]
    datas = [os.urandom(1200), os.urandom(1100), os.urandom(10)]
    parts = []
    for i, data in enumerate(datas, 1):
        got = put_part(env, upload_id, i, data, ChecksumSHA256=b64(sha256(data)))
        assert got["ChecksumSHA256"] == b64(sha256(data))
        parts.append(listed(i, got, ChecksumSHA256=got["ChecksumSHA256"]))
    expected = b64(sha256(b"".join(sha256(d) for d in datas))) + "-3"
    done = complete(env, upload_id, parts, ChecksumSHA256=expected)
    assert done["ChecksumSHA256"] == expected
    assert done["ChecksumType"] == "COMPOSITE"
    head = env.objects.get_object(
        call(), {"Bucket": BUCKET, "Key": KEY, "ChecksumMode": "ENABLED"}, head=True
    )
    assert head.output["ChecksumSHA256"] == expected
    assert head.output["ChecksumType"] == "COMPOSITE"
    assert read(env) == b"".join(datas)


def test_composite_crc32_from_trailers(env: Env) -> None:
    upload_id = create(env, ChecksumAlgorithm="CRC32")
    datas = [os.urandom(1500), os.urandom(77)]
    parts = []
    for i, data in enumerate(datas, 1):
        got = put_part(
            env,
            upload_id,
            i,
            data,
            trailers={"x-amz-checksum-crc32": b64(crc32(data))},
            trailer_names=("x-amz-checksum-crc32",),
        )
        parts.append(listed(i, got, ChecksumCRC32=got["ChecksumCRC32"]))
    done = complete(env, upload_id, parts)
    assert done["ChecksumCRC32"] == b64(crc32(b"".join(crc32(d) for d in datas))) + "-2"
    assert done["ChecksumType"] == "COMPOSITE"


def test_full_object_crc32_computed_for_parts_without_checksums(env: Env) -> None:
    upload_id = create(env, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    datas = [os.urandom(1300), os.urandom(1400), os.urandom(5)]
    outs = [put_part(env, upload_id, i, d) for i, d in enumerate(datas, 1)]
    assert [o["ChecksumCRC32"] for o in outs] == [b64(crc32(d)) for d in datas]
    whole = b"".join(datas)
    done = complete(env, upload_id, [listed(i, o) for i, o in enumerate(outs, 1)])
    assert done["ChecksumCRC32"] == b64(crc32(whole))
    assert done["ChecksumType"] == "FULL_OBJECT"


def test_full_object_crc64nvme_is_the_default_type(env: Env) -> None:
    out = env.mp.create_multipart_upload(
        call(), {"Bucket": BUCKET, "Key": KEY, "ChecksumAlgorithm": "crc64nvme"}
    )
    assert out["ChecksumAlgorithm"] == "CRC64NVME" and out["ChecksumType"] == "FULL_OBJECT"
    upload_id = out["UploadId"]
    datas = [os.urandom(2000), os.urandom(1500)]
    outs = [put_part(env, upload_id, i, d) for i, d in enumerate(datas, 1)]
    whole_digest = checksums.new("CRC64NVME")
    whole_digest.update(b"".join(datas))
    expected = b64(whole_digest.digest())
    # Part checksums in the request are optional for FULL_OBJECT, checked when given.
    parts = [listed(1, outs[0], ChecksumCRC64NVME=outs[0]["ChecksumCRC64NVME"]), listed(2, outs[1])]
    done = complete(env, upload_id, parts, ChecksumCRC64NVME=expected, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC64NVME"] == expected


@pytest.mark.parametrize(
    "params",
    [
        {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"},
        {"ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "SHA1", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "MD4"},
        {"ChecksumAlgorithm": "CRC32", "ChecksumType": "PARTIAL"},
    ],
)
def test_invalid_checksum_setups(env: Env, params: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        create(env, **params)


def test_part_checksum_rules(env: Env) -> None:
    upload_id = create(env, ChecksumAlgorithm="SHA256")
    with pytest.raises(InvalidRequest, match="expected checksum Type: sha256, actual checksum"):
        put_part(env, upload_id, 1, b"x" * SMALL, ChecksumCRC32=b64(crc32(b"x" * SMALL)))
    with pytest.raises(InvalidRequest, match="actual checksum Type: null"):
        put_part(env, upload_id, 1, b"x" * SMALL)
    with pytest.raises(BadDigest):
        put_part(env, upload_id, 1, b"x" * SMALL, ChecksumSHA256=b64(sha256(b"y")))
    assert blob_ids(env) == set()
    one = put_part(env, upload_id, 1, b"x" * SMALL, ChecksumSHA256=b64(sha256(b"x" * SMALL)))
    two = put_part(env, upload_id, 2, b"z", ChecksumSHA256=b64(sha256(b"z")))
    with pytest.raises(InvalidRequest, match="must include the checksum for each part"):
        complete(
            env, upload_id, [listed(1, one, ChecksumSHA256=one["ChecksumSHA256"]), listed(2, two)]
        )
    with pytest.raises(InvalidPart):
        complete(
            env,
            upload_id,
            [
                listed(1, one, ChecksumSHA256=one["ChecksumSHA256"]),
                listed(2, two, ChecksumSHA256=one["ChecksumSHA256"]),
            ],
        )
    good = [
        listed(1, one, ChecksumSHA256=one["ChecksumSHA256"]),
        listed(2, two, ChecksumSHA256=two["ChecksumSHA256"]),
    ]
    with pytest.raises(BadDigest):
        complete(env, upload_id, good, ChecksumSHA256=b64(sha256(b"wrong")) + "-2")
    with pytest.raises(BadDigest):
        complete(env, upload_id, good, ChecksumType="FULL_OBJECT")
    with pytest.raises(InvalidRequest):
        complete(env, upload_id, good, MpuObjectSize=5)
    done = complete(env, upload_id, good, MpuObjectSize=SMALL + 1)
    assert done["ChecksumSHA256"].endswith("-2")


def test_upload_without_algorithm_keeps_part_checksums_but_no_object_checksum(env: Env) -> None:
    upload_id = create(env)
    out = put_part(env, upload_id, 1, b"abc", ChecksumCRC32=b64(crc32(b"abc")))
    assert out["ChecksumCRC32"] == b64(crc32(b"abc"))
    done = complete(env, upload_id, [listed(1, out, ChecksumCRC32=out["ChecksumCRC32"])])
    assert "ChecksumCRC32" not in done and "ChecksumType" not in done


# -- UploadPartCopy -----------------------------------------------------------------------------


def put_object(env: Env, key: str, data: bytes) -> dict[str, Any]:
    pending = env.objects.start_put(call("PutObject"), {"Bucket": BUCKET, "Key": key}, None)
    pending.write(data)
    return pending.commit({})


def copy_part(env: Env, upload_id: str, number: int, **params: Any) -> dict[str, Any]:
    return env.mp.upload_part_copy(
        call("UploadPartCopy"),
        {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id, "PartNumber": number, **params},
    )


def test_upload_part_copy_whole_and_ranges(env: Env) -> None:
    source = os.urandom(3000)
    put_object(env, "src", source)
    upload_id = create(env, ChecksumAlgorithm="CRC32C")
    one = copy_part(env, upload_id, 1, CopySource=f"{BUCKET}/src")
    two = copy_part(env, upload_id, 2, CopySource=f"/{BUCKET}/src", CopySourceRange="bytes=10-1509")
    three = put_part(env, upload_id, 3, b"own", ChecksumAlgorithm="CRC32C")
    assert one["CopyPartResult"]["ETag"] == f'"{md5(source).hexdigest()}"'
    assert two["CopyPartResult"]["ETag"] == f'"{md5(source[10:1510]).hexdigest()}"'
    assert "ChecksumCRC32C" in one["CopyPartResult"]
    assert "CopySourceVersionId" not in one
    parts = [
        listed(1, one["CopyPartResult"], ChecksumCRC32C=one["CopyPartResult"]["ChecksumCRC32C"]),
        listed(2, two["CopyPartResult"], ChecksumCRC32C=two["CopyPartResult"]["ChecksumCRC32C"]),
        listed(3, three, ChecksumCRC32C=three["ChecksumCRC32C"]),
    ]
    complete(env, upload_id, parts)
    assert read(env) == source + source[10:1510] + b"own"


@pytest.mark.parametrize("text", ["bytes=5", "0-10", "bytes=-10", "bytes=1-", "bytes=a-b"])
def test_upload_part_copy_malformed_ranges(env: Env, text: str) -> None:
    put_object(env, "src", b"0123456789")
    upload_id = create(env)
    with pytest.raises(InvalidArgument, match="must be of the form bytes=first-last"):
        copy_part(env, upload_id, 1, CopySource=f"{BUCKET}/src", CopySourceRange=text)


@pytest.mark.parametrize("text", ["bytes=0-10", "bytes=5-4", "bytes=10-12"])
def test_upload_part_copy_ranges_outside_the_source(env: Env, text: str) -> None:
    put_object(env, "src", b"0123456789")
    upload_id = create(env)
    with pytest.raises(InvalidArgument, match="not valid for source object of size: 10"):
        copy_part(env, upload_id, 1, CopySource=f"{BUCKET}/src", CopySourceRange=text)


def test_upload_part_copy_conditions_and_missing_source(env: Env) -> None:
    put = put_object(env, "src", b"data")
    upload_id = create(env)
    with pytest.raises(PreconditionFailed):
        copy_part(env, upload_id, 1, CopySource=f"{BUCKET}/src", CopySourceIfMatch='"nope"')
    ok = copy_part(env, upload_id, 1, CopySource=f"{BUCKET}/src", CopySourceIfMatch=put["ETag"])
    assert ok["CopyPartResult"]["ETag"] == put["ETag"]
    with pytest.raises(S3Error) as err:
        copy_part(env, upload_id, 2, CopySource=f"{BUCKET}/missing")
    assert err.value.code == "NoSuchKey"
    with pytest.raises(NoSuchUpload):
        copy_part(env, "nope", 1, CopySource=f"{BUCKET}/src")


# -- encryption ----------------------------------------------------------------------------------


def ssec(key: bytes, prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}SSECustomerAlgorithm": "AES256",
        f"{prefix}SSECustomerKey": b64(key),
        f"{prefix}SSECustomerKeyMD5": b64(md5(key).digest()),
    }


def test_sse_c_needs_the_same_key_on_every_part(env: Env) -> None:
    key = os.urandom(32)
    out = env.mp.create_multipart_upload(
        call(secure=True), {"Bucket": BUCKET, "Key": KEY, **ssec(key)}
    )
    assert out["SSECustomerAlgorithm"] == "AES256"
    upload_id = out["UploadId"]
    with pytest.raises(InvalidRequest):
        put_part(env, upload_id, 1, b"x", secure=True)
    with pytest.raises(S3AccessDenied):
        put_part(env, upload_id, 1, b"x", secure=True, **ssec(os.urandom(32)))
    one = put_part(env, upload_id, 1, b"a" * SMALL, secure=True, **ssec(key))
    assert one["SSECustomerKeyMD5"] == b64(md5(key).digest())
    two = put_part(env, upload_id, 2, b"b", secure=True, **ssec(key))
    done = complete(env, upload_id, [listed(1, one), listed(2, two)])
    assert done["SSECustomerAlgorithm"] == "AES256"
    with pytest.raises(InvalidRequest):
        read(env, secure=True)
    assert read(env, secure=True, **ssec(key)) == b"a" * SMALL + b"b"


def test_sse_c_headers_on_an_sse_s3_upload_are_refused(env: Env) -> None:
    upload_id = create(env)
    with pytest.raises(InvalidRequest):
        put_part(env, upload_id, 1, b"x", secure=True, **ssec(os.urandom(32)))


def test_sse_kms_upload(env: Env) -> None:
    out = env.mp.create_multipart_upload(
        call(), {"Bucket": BUCKET, "Key": KEY, "ServerSideEncryption": "aws:kms"}
    )
    assert out["ServerSideEncryption"] == "aws:kms"
    assert out["SSEKMSKeyId"].startswith("arn:aws:kms:")
    upload_id = out["UploadId"]
    one = put_part(env, upload_id, 1, b"k" * SMALL)
    assert one["SSEKMSKeyId"] == out["SSEKMSKeyId"]
    two = put_part(env, upload_id, 2, b"end")
    done = complete(env, upload_id, [listed(1, one), listed(2, two)])
    assert done["SSEKMSKeyId"] == out["SSEKMSKeyId"]
    assert read(env) == b"k" * SMALL + b"end"


def test_copy_from_an_sse_c_source(env: Env) -> None:
    key = os.urandom(32)
    pending = env.objects.start_put(
        call(secure=True), {"Bucket": BUCKET, "Key": "src", **ssec(key)}, None
    )
    pending.write(b"secret bytes")
    pending.commit({})
    upload_id = create(env)
    with pytest.raises(InvalidRequest):
        env.mp.upload_part_copy(
            call(secure=True),
            {
                "Bucket": BUCKET,
                "Key": KEY,
                "UploadId": upload_id,
                "PartNumber": 1,
                "CopySource": f"{BUCKET}/src",
            },
        )
    out = env.mp.upload_part_copy(
        call(secure=True),
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "UploadId": upload_id,
            "PartNumber": 1,
            "CopySource": f"{BUCKET}/src",
            **ssec(key, "CopySource"),
        },
    )
    complete(env, upload_id, [listed(1, out["CopyPartResult"])])
    assert read(env) == b"secret bytes"


# -- listings -------------------------------------------------------------------------------


def test_list_parts_pages(env: Env) -> None:
    upload_id = create(env, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    for i in range(1, 6):
        put_part(env, upload_id, i, bytes([i]) * i)
    base = {"Bucket": BUCKET, "Key": KEY, "UploadId": upload_id}
    first = env.mp.list_parts(call(), {**base, "MaxParts": 2})
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 2
    assert first["Parts"][1]["Size"] == 2
    assert first["Parts"][1]["ETag"] == f'"{md5(bytes([2]) * 2).hexdigest()}"'
    assert first["Parts"][1]["ChecksumCRC32"] == b64(crc32(bytes([2]) * 2))
    assert first["Initiator"]["ID"] == root_call("x").principal.arn
    assert first["Owner"]["ID"] == ACCOUNT
    assert first["StorageClass"] == "STANDARD"
    assert first["ChecksumAlgorithm"] == "CRC32" and first["ChecksumType"] == "FULL_OBJECT"
    rest = env.mp.list_parts(call(), {**base, "PartNumberMarker": 2})
    assert [p["PartNumber"] for p in rest["Parts"]] == [3, 4, 5]
    assert rest["IsTruncated"] is False and rest["MaxParts"] == 1000
    with pytest.raises(InvalidArgument):
        env.mp.list_parts(call(), {**base, "MaxParts": -1})


def test_list_multipart_uploads_with_delimiter_and_pages(env: Env) -> None:
    keys = ["a/1", "a/2", "b", "c/x/y", "c/z", "d", "d"]
    ids: dict[str, list[str]] = {}
    for key in keys:
        ids.setdefault(key, []).append(create(env, key=key))
    every = env.mp.list_multipart_uploads(call(), {"Bucket": BUCKET})
    assert [u["Key"] for u in every["Uploads"]] == sorted(keys)
    assert every["IsTruncated"] is False
    assert every["Uploads"][0]["Initiator"]["ID"] == root_call("x").principal.arn

    rolled = env.mp.list_multipart_uploads(call(), {"Bucket": BUCKET, "Delimiter": "/"})
    assert [u["Key"] for u in rolled["Uploads"]] == ["b", "d", "d"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["a/", "c/"]

    under_c = env.mp.list_multipart_uploads(
        call(), {"Bucket": BUCKET, "Prefix": "c/", "Delimiter": "/"}
    )
    assert [u["Key"] for u in under_c["Uploads"]] == ["c/z"]
    assert [p["Prefix"] for p in under_c["CommonPrefixes"]] == ["c/x/"]

    seen: list[str] = []
    params: dict[str, Any] = {"Bucket": BUCKET, "Delimiter": "/", "MaxUploads": 1}
    for _ in range(10):
        page = env.mp.list_multipart_uploads(call(), params)
        seen += [u["Key"] for u in page["Uploads"]]
        seen += [p["Prefix"] for p in page["CommonPrefixes"]]
        if not page["IsTruncated"]:
            break
        params["KeyMarker"] = page["NextKeyMarker"]
        params["UploadIdMarker"] = page["NextUploadIdMarker"]
    assert seen == ["a/", "b", "c/", "d", "d"]

    after_d = env.mp.list_multipart_uploads(
        call(), {"Bucket": BUCKET, "KeyMarker": "d", "UploadIdMarker": min(ids["d"])}
    )
    assert [u["UploadId"] for u in after_d["Uploads"]] == [max(ids["d"])]
    empty = env.mp.list_multipart_uploads(call(), {"Bucket": BUCKET, "MaxUploads": 0})
    assert empty["Uploads"] == [] and empty["IsTruncated"] is False


def test_calls_are_data_events_on_the_object(env: Env) -> None:
    c = call("CreateMultipartUpload")
    env.mp.create_multipart_upload(c, {"Bucket": BUCKET, "Key": KEY})
    assert c.data_event is True
    assert c.resources == [f"arn:aws:s3:::{BUCKET}/{KEY}", f"arn:aws:s3:::{BUCKET}"]
