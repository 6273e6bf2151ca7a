"""Multipart uploads: create, upload (and copy) parts, complete, abort, list, expire.

An upload owns one data key (DEK), made when it is created and protected exactly as
the finished object's will be (SSE-S3, SSE-KMS, a Bucket Key or SSE-C). Every part is
its own segment stream under that DEK, in its own blob: the stream binds its blob's
identity and a fresh salt, so no two parts (nor two uploads of the same part number)
ever share a nonce space. Completing an upload turns the listed parts into the
object's extents, without touching their bytes.

Nothing of an upload is visible as an object until CompleteMultipartUpload, which
records the new object version and removes the upload in one transaction. Blobs are
deleted only after the commit that unreferenced them (a crash in between leaves
orphans, never dangling references).

Methods take the operation's input members and return its output members under
botocore's names, as ObjectService does; UploadPart returns a PendingWrite.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection

from sealbox import crypto
from sealbox.call import Call
from sealbox.crypto import checksums
from sealbox.s3 import conditions, integrity
from sealbox.s3.access import S3RequestFacts
from sealbox.s3.datapath import StreamWriter, Written, read_plaintext
from sealbox.s3.encryption import customer_key_from, resolve, sse_request_from
from sealbox.s3.errors import (
    BadDigest,
    EntityTooLarge,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    PreconditionFailed,
)
from sealbox.s3.model import (
    SSE_KMS,
    Bucket,
    Checksum,
    Extent,
    Keying,
    ObjectVersion,
    Part,
    Upload,
)
from sealbox.s3.objects import (
    ObjectService,
    check_key,
    checksum_output,
    content_headers,
    parse_copy_source,
    parse_tag_query,
    request_facts,
    sse_output,
    user_metadata,
)
from sealbox.s3.versions import delete_blobs, new_version_id, reported_version, store_version
from sealbox.storage import s3_repo

MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_LISTED = 1000  # MaxParts / MaxUploads ceiling and default
EXPIRE_BATCH = 100
UPLOAD_ID_BYTES = 45  # 60 url-safe characters

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
CHECKSUM_TYPES = (COMPOSITE, FULL_OBJECT)
_COMPOSITE_ONLY = ("SHA1", "SHA256")
_FULL_OBJECT_ONLY = ("CRC64NVME",)

_TOP = "\U0010ffff"  # prefix + this sorts after every key starting with prefix
_PAGE = 1000
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")

_NO_SUCH_UPLOAD = (
    "The specified upload does not exist. The upload ID may be invalid, or the upload "
    "may have been aborted or completed."
)
_INVALID_PART = (
    "One or more of the specified parts could not be found.  The part may not have been "
    "uploaded, or the specified entity tag may not match the part's entity tag."
)
_MALFORMED_XML = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


# -- small rules ----------------------------------------------------------------------------


def new_upload_id() -> str:
    return base64.urlsafe_b64encode(crypto.random_bytes(UPLOAD_ID_BYTES)).decode()


def part_number_from(params: Mapping[str, Any]) -> int:
    """PartNumber, 1..10000, with S3's InvalidArgument for anything else."""
    raw = params.get("PartNumber")
    try:
        number = int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=str(raw),
        )
    return number


def checksum_setup(params: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(algorithm, type) of a new upload, defaulted and checked as S3 does.

    CRC32 / CRC32C support both types (COMPOSITE unless FULL_OBJECT is asked for),
    SHA1 / SHA256 only COMPOSITE, CRC64NVME only FULL_OBJECT.
    """
    algorithm = params.get("ChecksumAlgorithm")
    kind = params.get("ChecksumType")
    if algorithm is not None:
        algorithm = str(algorithm).upper()
        if algorithm not in checksums.ALGORITHMS:
            raise InvalidRequest("Value for x-amz-checksum-algorithm header is invalid.")
    if kind is not None:
        kind = str(kind).upper()
        if kind not in CHECKSUM_TYPES:
            raise InvalidRequest("Value for x-amz-checksum-type header is invalid.")
        if algorithm is None:
            raise InvalidRequest(
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header."
            )
    if algorithm is None:
        return None, None
    if kind is None:
        kind = FULL_OBJECT if algorithm in _FULL_OBJECT_ONLY else COMPOSITE
    if (kind == COMPOSITE and algorithm in _FULL_OBJECT_ONLY) or (
        kind == FULL_OBJECT and algorithm in _COMPOSITE_ONLY
    ):
        raise InvalidRequest(
            f"The {kind} checksum type cannot be used with the {algorithm.lower()} "
            "checksum algorithm."
        )
    return algorithm, kind


def _type_mismatch(expected: str | None, actual: str | None) -> InvalidRequest:
    return InvalidRequest(
        "Checksum Type mismatch occurred, expected checksum Type: "
        f"{expected.lower() if expected else 'null'}, actual checksum Type: "
        f"{actual.lower() if actual else 'null'}"
    )


def part_expectation(upload: Upload, expected: integrity.Expected) -> integrity.Expected:
    """What a part must be checked against, given its upload's checksum algorithm.

    A part of an upload that declared an algorithm carries that algorithm or none: a
    different one is S3's "Checksum Type mismatch". Without one, a FULL_OBJECT part's
    checksum is computed here (S3 does the same); a COMPOSITE upload needs each part's
    checksum from the client, as S3 requires.
    """
    algorithm = upload.checksum_algorithm
    if algorithm is None:
        return expected
    if expected.algorithm is None:
        if upload.checksum_type == COMPOSITE:
            raise _type_mismatch(algorithm, None)
        return replace(expected, algorithm=algorithm, value=None)
    if expected.algorithm != algorithm:
        raise _type_mismatch(algorithm, expected.algorithm)
    return expected


def copy_range(text: str | None, size: int) -> tuple[int, int]:
    """(start, end inclusive) of x-amz-copy-source-range over a source of `size` bytes."""
    if text is None:
        return 0, size - 1
    match = _COPY_RANGE.fullmatch(text.strip())
    if match is None:
        raise InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=text,
        )
    start, end = int(match.group(1)), int(match.group(2))
    if start > end or end >= size:
        raise InvalidArgument(
            f"Range specified is not valid for source object of size: {size}",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=text,
        )
    return start, end


def _limit(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None:
        return MAX_LISTED
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise InvalidArgument(
            f"Argument {name.lower()} must be an integer between 0 and 2147483647",
            ArgumentName=name.lower(),
            ArgumentValue=str(value),
        )
    return min(number, MAX_LISTED)


def _marker(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise InvalidArgument(
            f"Argument {name.lower()} must be an integer between 0 and 2147483647",
            ArgumentName=name.lower(),
            ArgumentValue=str(value),
        )
    return number


def _encoder(params: Mapping[str, Any]) -> Callable[[str], str]:
    encoding = params.get("EncodingType")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    return lambda s: urllib.parse.quote(s, safe="/")


def _rollup(key: str, prefix: str, delimiter: str | None) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def _owner(account_id: str) -> dict[str, str]:
    return {"ID": account_id, "DisplayName": account_id}


def _initiator(upload: Upload) -> dict[str, str]:
    arn = upload.initiator_arn
    name = arn.rsplit("/", 1)[-1] if "/" in arn else upload.owner_account
    return {"ID": arn, "DisplayName": name}


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


def _md5_of(part: Part) -> bytes:
    return bytes.fromhex(_unquote(part.etag))


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _kms_context_output(keying: Keying) -> dict[str, Any]:
    if keying.sse != SSE_KMS or not keying.context:
        return {}
    user_context = {k: v for k, v in keying.context.items() if k != "aws:s3:arn"}
    if not user_context:
        return {}
    return {"SSEKMSEncryptionContext": base64.b64encode(orjson.dumps(user_context)).decode()}


def check_write_conditions(
    conn: Connection, bucket: str, key: str, if_none_match: str | None, if_match: str | None
) -> None:
    """If-None-Match: * / If-Match on a write, against the key's current version (the
    same rules ObjectService.commit_object applies to PutObject)."""
    if if_none_match is None and if_match is None:
        return
    current = s3_repo.get_version(conn, bucket, key)
    exists = current is not None and not current.delete_marker
    if if_none_match == "*" and exists:
        raise PreconditionFailed(
            "At least one of the pre-conditions you specified did not hold",
            Condition="If-None-Match",
        )
    if if_match is not None:
        if current is None or current.delete_marker:
            raise NoSuchKey("The specified key does not exist.", Key=key)
        if if_match != "*" and _unquote(if_match) != _unquote(current.etag):
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Match",
            )


# -- completing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Wanted:
    """One <Part> of a CompleteMultipartUpload request."""

    number: int
    etag: str
    checksums: dict[str, str]


def wanted_parts(params: Mapping[str, Any], upload_id: str) -> list[_Wanted]:
    """The request's part list, checked for shape and ascending order."""
    listed = (params.get("MultipartUpload") or {}).get("Parts") or []
    if not listed:
        raise MalformedXML(_MALFORMED_XML)
    wanted: list[_Wanted] = []
    previous = 0
    for item in listed:
        try:
            number = int(item.get("PartNumber"))
        except (TypeError, ValueError):
            raise MalformedXML(_MALFORMED_XML) from None
        if number <= previous:
            raise InvalidPartOrder(
                "The list of parts was not in ascending order. Parts must be ordered by "
                "part number.",
                UploadId=upload_id,
            )
        previous = number
        sums = {
            a: str(item[m])
            for a, m in integrity.MEMBERS.items()
            if item.get(m) is not None and item.get(m) != ""
        }
        wanted.append(_Wanted(number, str(item.get("ETag") or ""), sums))
    return wanted


def assemble(
    upload: Upload, wanted: list[_Wanted], stored: Mapping[int, Part]
) -> tuple[tuple[Extent, ...], Checksum | None, list[bytes]]:
    """The object's extents, checksum and part MD5s from the listed parts, with S3's
    InvalidPart / EntityTooSmall / checksum errors."""
    algorithm = upload.checksum_algorithm
    extents: list[Extent] = []
    md5s: list[bytes] = []
    digests: list[tuple[bytes, int]] = []
    found: list[Part] = []
    for item in wanted:
        part = stored.get(item.number)
        if part is None or not item.etag or _unquote(item.etag) != _unquote(part.etag):
            raise InvalidPart(
                _INVALID_PART,
                UploadId=upload.upload_id,
                PartNumber=str(item.number),
                ETag=item.etag,
            )
        found.append(part)
    for index, (item, part) in enumerate(zip(wanted, found, strict=True)):
        last = index == len(wanted) - 1
        if not last and part.size < MIN_PART_SIZE:
            raise EntityTooSmall(
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=str(part.size),
                MinSizeAllowed=str(MIN_PART_SIZE),
                PartNumber=str(item.number),
                ETag=part.etag,
            )
        if algorithm is not None:
            have = (part.checksum or {}).get(algorithm)
            given = item.checksums.get(algorithm)
            if given is None and upload.checksum_type == COMPOSITE:
                raise InvalidRequest(
                    f"The upload was created using a {algorithm.lower()} checksum. The "
                    "complete request must include the checksum for each part. It was "
                    f"missing for part {item.number} in the request."
                )
            if have is None or (given is not None and given != have):
                raise InvalidPart(
                    _INVALID_PART,
                    UploadId=upload.upload_id,
                    PartNumber=str(item.number),
                    ETag=item.etag,
                )
            digests.append((_b64decode(have), part.size))
        md5s.append(_md5_of(part))
        extents.append(
            Extent(
                part.blob, part.size, part.segment_size, part.part_number, part.etag, part.checksum
            )
        )
    checksum: Checksum | None = None
    if algorithm is not None:
        if upload.checksum_type == FULL_OBJECT:
            value = checksums.b64(checksums.combine_crc(algorithm, digests))
            checksum = Checksum(algorithm, value, FULL_OBJECT)
        else:
            value = checksums.composite(algorithm, [d for d, _ in digests])
            checksum = Checksum(algorithm, value, COMPOSITE)
    return tuple(extents), checksum, md5s


def check_whole_object(
    params: Mapping[str, Any], upload: Upload, checksum: Checksum | None, size: int
) -> None:
    """The optional whole-object checks of a CompleteMultipartUpload request."""
    expected_size = params.get("MpuObjectSize")
    if expected_size is not None and int(expected_size) != size:
        raise InvalidRequest(
            f"The provided 'x-amz-mp-object-size' header value {expected_size} does not "
            f"match what was computed: {size}"
        )
    kind = params.get("ChecksumType")
    if (
        kind is not None
        and upload.checksum_type is not None
        and str(kind).upper() != upload.checksum_type
    ):
        raise BadDigest(
            f"The checksum type you specified ({kind}) did not match the checksum type of "
            f"the upload ({upload.checksum_type})."
        )
    sent = [(a, str(params[m])) for a, m in integrity.MEMBERS.items() if params.get(m)]
    if not sent:
        return
    if len(sent) > 1:
        raise InvalidRequest("Expecting a single x-amz-checksum- header")
    algorithm, value = sent[0]
    if checksum is None or checksum.algorithm != algorithm:
        raise _type_mismatch(upload.checksum_algorithm, algorithm)
    bare = checksum.value.split("-", 1)[0] if checksum.type == COMPOSITE else checksum.value
    if value not in (checksum.value, bare):
        raise BadDigest(f"The {algorithm} you specified did not match the calculated checksum.")


# -- the service ------------------------------------------------------------------------------


@dataclass
class _PartState:
    call: Call
    bucket: Bucket
    upload: Upload
    part_number: int
    writer: StreamWriter
    expected: integrity.Expected
    customer_key: bytes | None


class MultipartService:
    """CreateMultipartUpload ... CompleteMultipartUpload, over an ObjectService."""

    def __init__(self, objects: ObjectService) -> None:
        self.objects = objects
        self.db = objects.db
        self.blobs = objects.blobs
        self.clock = objects.clock
        self.encryption = objects.encryption

    # -- lookups -----------------------------------------------------------------------------

    def _upload(self, bucket: Bucket, key: str, upload_id: str | None) -> Upload:
        upload = None
        if upload_id:
            with self.db.read() as conn:
                upload = s3_repo.get_upload(conn, upload_id)
        if upload is None or upload.bucket != bucket.name or upload.key != key:
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=str(upload_id))
        return upload

    def _begin(self, call: Call, params: Mapping[str, Any]) -> tuple[Bucket, str]:
        bucket = self.objects.bucket(params["Bucket"])
        key = params["Key"]
        self.objects.resources(call, bucket, key)
        call.data_event = True
        return bucket, key

    # -- CreateMultipartUpload ---------------------------------------------------------------

    def create_multipart_upload(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, key = self._begin(call, params)
        check_key(key)
        sse = sse_request_from(params, secure=call.secure_transport)
        tags = parse_tag_query(params.get("Tagging"))
        self.objects.authorize(
            call, "s3:PutObject", bucket, key, request_facts(params, request_object_tags=tags)
        )
        headers = content_headers(params)
        metadata = user_metadata(params)
        algorithm, kind = checksum_setup(params)
        resolved = resolve(sse, bucket)
        _dek, keying = self.encryption.new_data_key(call, bucket, key, resolved)
        upload = Upload(
            upload_id=new_upload_id(),
            bucket=bucket.name,
            key=key,
            initiated=self.clock.now(),
            owner_account=call.principal.account_id or bucket.account_id,
            initiator_arn=call.principal.arn,
            keying=keying,
            headers=headers,
            metadata=metadata,
            tags=tags,
            checksum_algorithm=algorithm,
            checksum_type=kind,
        )

        def work(conn: Connection) -> None:
            if not s3_repo.lock_bucket(conn, bucket.name, exclusive=False):
                raise NoSuchBucket("The specified bucket does not exist", BucketName=bucket.name)
            s3_repo.insert_upload(conn, upload)

        self.objects.write(work)
        out: dict[str, Any] = {
            "Bucket": bucket.name,
            "Key": key,
            "UploadId": upload.upload_id,
            **sse_output(keying, resolved.customer_key),
            **_kms_context_output(keying),
        }
        if algorithm is not None:
            out["ChecksumAlgorithm"] = algorithm
            out["ChecksumType"] = kind
        return out

    # -- UploadPart --------------------------------------------------------------------------

    def start_upload_part(
        self,
        call: Call,
        params: Mapping[str, Any],
        payload_sha256: str | None,
        trailer_names: tuple[str, ...] = (),
    ) -> integrity.PendingWrite:
        bucket, key = self._begin(call, params)
        part_number = part_number_from(params)
        length = params.get("ContentLength")
        if length is not None and int(length) > MAX_PART_SIZE:
            raise _too_large(int(length))
        self.objects.authorize(call, "s3:PutObject", bucket, key, request_facts(params))
        upload = self._upload(bucket, key, params.get("UploadId"))
        customer_key = customer_key_from(params, secure=call.secure_transport)
        dek = self.encryption.open_data_key(call, bucket, key, upload.keying, customer_key)
        expected = part_expectation(
            upload, integrity.expected_from(params, payload_sha256, trailer_names)
        )
        writer = StreamWriter(
            self.blobs, dek, expected.algorithms, want_sha256=expected.payload_sha256 is not None
        )
        return _PendingPart(
            self, _PartState(call, bucket, upload, part_number, writer, expected, customer_key)
        )

    def store_part(
        self,
        upload: Upload,
        part_number: int,
        blob_id: str,
        written: Written,
        segment_size: int,
        checksum: dict[str, str] | None,
    ) -> Part:
        """Record a committed part blob, replacing (then deleting) one with its number.

        The upload must still exist in the same transaction: a part that arrives after
        its upload was completed or aborted is refused and its blob deleted.
        """
        part = Part(
            part_number=part_number,
            blob=blob_id,
            size=written.size,
            segment_size=segment_size,
            etag=checksums.etag(written.md5),
            last_modified=self.clock.now(),
            checksum=checksum or None,
        )

        def work(conn: Connection) -> Part | None:
            if s3_repo.get_upload(conn, upload.upload_id) is None:
                raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload.upload_id)
            return s3_repo.put_part(conn, upload.upload_id, part)

        try:
            old = self.objects.write(work)
        except BaseException:
            self.blobs.delete(blob_id)
            raise
        if old is not None and old.blob != blob_id:
            self.blobs.delete(old.blob)
        return part

    # -- UploadPartCopy ----------------------------------------------------------------------

    def upload_part_copy(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, key = self._begin(call, params)
        part_number = part_number_from(params)
        src_bucket_name, src_key, src_version = parse_copy_source(params["CopySource"])
        self.objects.authorize(
            call,
            "s3:PutObject",
            bucket,
            key,
            request_facts(params, copy_source=f"{src_bucket_name}/{src_key}"),
        )
        upload = self._upload(bucket, key, params.get("UploadId"))
        src_bucket = self.objects.bucket(src_bucket_name)
        source = self.objects.find(call, src_bucket, src_key, src_version, "s3:GetObject")
        conditions.check(source, params, "CopySource")
        start, end = copy_range(params.get("CopySourceRange"), source.size)
        length = end - start + 1
        if length > MAX_PART_SIZE:
            raise InvalidRequest(
                "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_PART_SIZE}"
            )
        source_key = customer_key_from(params, "CopySource", secure=call.secure_transport)
        source_dek = self.encryption.open_data_key(
            call, src_bucket, src_key, source.keying_or_fail(), source_key
        )
        customer_key = customer_key_from(params, secure=call.secure_transport)
        dek = self.encryption.open_data_key(call, bucket, key, upload.keying, customer_key)
        algorithm = upload.checksum_algorithm
        writer = StreamWriter(self.blobs, dek, (algorithm,) if algorithm else ())
        try:
            if length > 0:
                for chunk in read_plaintext(self.blobs, source_dek, source.extents, start, end):
                    writer.write(chunk)
            written = writer.finish()
            blob_id = writer.commit()
        except BaseException:
            writer.abort()
            raise
        checksum = {algorithm: checksums.b64(written.checksums[algorithm])} if algorithm else None
        part = self.store_part(upload, part_number, blob_id, written, writer.segment_size, checksum)
        result: dict[str, Any] = {"ETag": part.etag, "LastModified": part.last_modified}
        for name, value in (part.checksum or {}).items():
            result[f"Checksum{name}"] = value
        out: dict[str, Any] = {
            "CopyPartResult": result,
            **sse_output(upload.keying, customer_key),
        }
        if src_bucket.versioning is not None:
            out["CopySourceVersionId"] = source.version_id
        return out

    # -- CompleteMultipartUpload -------------------------------------------------------------

    def complete_multipart_upload(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, key = self._begin(call, params)
        upload_id = params.get("UploadId")
        self.objects.authorize(call, "s3:PutObject", bucket, key, request_facts(params))
        upload = self._upload(bucket, key, upload_id)
        wanted = wanted_parts(params, upload.upload_id)
        customer_key = customer_key_from(params, secure=call.secure_transport)
        if customer_key is not None:
            # The key must be this upload's (SSE-C); other modes refuse SSE-C headers.
            self.encryption.open_data_key(call, bucket, key, upload.keying, customer_key)
        if_none_match = params.get("IfNoneMatch")
        if_match = params.get("IfMatch")
        numbers = [w.number for w in wanted]
        listed = set(numbers)

        def work(conn: Connection) -> tuple[ObjectVersion, list[Extent], list[Part]]:
            current = s3_repo.get_upload(conn, upload.upload_id)
            if current is None:
                raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload.upload_id)
            now_bucket = s3_repo.get_bucket(conn, bucket.name)
            if now_bucket is None:
                raise NoSuchBucket("The specified bucket does not exist", BucketName=bucket.name)
            stored = s3_repo.parts_by_number(conn, upload.upload_id, numbers)
            extents, checksum, md5s = assemble(current, wanted, stored)
            size = sum(e.size for e in extents)
            check_whole_object(params, current, checksum, size)
            check_write_conditions(conn, bucket.name, key, if_none_match, if_match)
            obj = ObjectVersion(
                bucket=bucket.name,
                key=key,
                version_id=new_version_id(now_bucket),
                is_latest=True,
                delete_marker=False,
                size=size,
                etag=checksums.multipart_etag(md5s),
                last_modified=self.clock.now(),
                owner_account=current.owner_account,
                keying=current.keying,
                headers=current.headers,
                metadata=current.metadata,
                tags=current.tags,
                checksum=checksum,
                extents=extents,
            )
            replaced = store_version(conn, obj)
            parts = s3_repo.delete_upload(conn, upload.upload_id)
            return obj, replaced, [p for p in parts if p.part_number not in listed]

        obj, replaced, unlisted = self.objects.write(work)
        delete_blobs(self.blobs, replaced)
        for part in unlisted:
            self.blobs.delete(part.blob)
        out: dict[str, Any] = {
            "Location": f"/{bucket.name}/{urllib.parse.quote(key, safe='/')}",
            "Bucket": bucket.name,
            "Key": key,
            "ETag": obj.etag,
            **checksum_output(obj.checksum),
            **sse_output(upload.keying, customer_key),
        }
        version = reported_version(self.objects.bucket(bucket.name), obj.version_id)
        if version is not None:
            out["VersionId"] = version
        return out

    # -- AbortMultipartUpload ----------------------------------------------------------------

    def abort_multipart_upload(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, key = self._begin(call, params)
        self.objects.authorize(call, "s3:AbortMultipartUpload", bucket, key)
        upload = self._upload(bucket, key, params.get("UploadId"))

        def work(conn: Connection) -> list[Part]:
            if s3_repo.get_upload(conn, upload.upload_id) is None:
                raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload.upload_id)
            return s3_repo.delete_upload(conn, upload.upload_id)

        for part in self.objects.write(work):
            self.blobs.delete(part.blob)
        return {}

    # -- ListParts ---------------------------------------------------------------------------

    def list_parts(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = self.objects.bucket(params["Bucket"])
        key = params["Key"]
        self.objects.resources(call, bucket, key)
        call.data_event = True  # an object-level action, as CloudTrail counts it
        self.objects.authorize(call, "s3:ListMultipartUploadParts", bucket, key)
        upload = self._upload(bucket, key, params.get("UploadId"))
        marker = _marker(params, "PartNumberMarker")
        limit = _limit(params, "MaxParts")
        with self.db.read() as conn:
            parts = s3_repo.list_parts(conn, upload.upload_id, marker, limit + 1)
        page = parts[:limit]
        listed: list[dict[str, Any]] = []
        for part in page:
            entry: dict[str, Any] = {
                "PartNumber": part.part_number,
                "LastModified": part.last_modified,
                "ETag": part.etag,
                "Size": part.size,
            }
            for name, value in (part.checksum or {}).items():
                entry[f"Checksum{name}"] = value
            listed.append(entry)
        out: dict[str, Any] = {
            "Bucket": bucket.name,
            "Key": key,
            "UploadId": upload.upload_id,
            "PartNumberMarker": marker,
            "NextPartNumberMarker": page[-1].part_number if page else marker,
            "MaxParts": limit,
            "IsTruncated": len(parts) > limit,
            "Parts": listed,
            "Initiator": _initiator(upload),
            "Owner": _owner(upload.owner_account),
            "StorageClass": upload.headers.get("StorageClass", "STANDARD"),
        }
        if upload.checksum_algorithm is not None:
            out["ChecksumAlgorithm"] = upload.checksum_algorithm
            out["ChecksumType"] = upload.checksum_type
        return out

    # -- ListMultipartUploads ----------------------------------------------------------------

    def list_multipart_uploads(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = self.objects.bucket(params["Bucket"])
        self.objects.resources(call, bucket)
        prefix = params.get("Prefix") or ""
        delimiter = params.get("Delimiter") or None
        facts = S3RequestFacts(
            prefix=prefix if "Prefix" in params else None,
            delimiter=delimiter,
        )
        self.objects.authorize(call, "s3:ListBucketMultipartUploads", bucket, facts=facts)
        enc = _encoder(params)
        limit = _limit(params, "MaxUploads")
        key_marker = params.get("KeyMarker") or None
        upload_id_marker = (params.get("UploadIdMarker") or None) if key_marker else None
        uploads, prefixes, truncated, last = self._walk(
            bucket.name, prefix, delimiter, key_marker, upload_id_marker, limit
        )
        out: dict[str, Any] = {
            "Bucket": bucket.name,
            "KeyMarker": enc(key_marker or ""),
            "UploadIdMarker": upload_id_marker or "",
            "Prefix": enc(prefix),
            "MaxUploads": limit,
            "IsTruncated": truncated,
            "Uploads": [_upload_entry(u, enc) for u in uploads],
            "CommonPrefixes": [{"Prefix": enc(p)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        if truncated and last is not None:
            out["NextKeyMarker"] = enc(last[0])
            out["NextUploadIdMarker"] = last[1] or ""
        return out

    def _walk(
        self,
        bucket: str,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> tuple[list[Upload], list[str], bool, tuple[str, str | None] | None]:
        """(uploads, common prefixes, truncated, last (key, upload id)) of one page.

        A key that rolls up into a common prefix makes the scan jump past every key
        under that prefix.
        """
        uploads: list[Upload] = []
        prefixes: list[str] = []
        last: tuple[str, str | None] | None = None
        if limit == 0:
            return uploads, prefixes, False, None
        cursor: tuple[str | None, str | None] = (key_marker, upload_id_marker)
        while True:
            with self.db.read() as conn:
                rows = s3_repo.list_uploads(conn, bucket, prefix, cursor[0], cursor[1], _PAGE)
            if not rows:
                return uploads, prefixes, False, last
            for index, upload in enumerate(rows):
                rolled = _rollup(upload.key, prefix, delimiter)
                if rolled is not None:
                    if (key_marker is not None and rolled <= key_marker) or (
                        prefixes and prefixes[-1] == rolled
                    ):
                        cursor = (rolled + _TOP, None)
                        break
                    if len(uploads) + len(prefixes) == limit:
                        return uploads, prefixes, True, last
                    prefixes.append(rolled)
                    last = (rolled, None)
                    cursor = (rolled + _TOP, None)
                    break
                if len(uploads) + len(prefixes) == limit:
                    return uploads, prefixes, True, last
                uploads.append(upload)
                last = (upload.key, upload.upload_id)
                cursor = (upload.key, upload.upload_id)
                if index == len(rows) - 1 and len(rows) < _PAGE:
                    return uploads, prefixes, False, last

    # -- scheduled expiry --------------------------------------------------------------------

    def expire_uploads(self, older_than: timedelta) -> int:
        """Abort uploads initiated before now - older_than, a bounded batch per
        transaction (rows first, then their blobs); returns how many were aborted."""
        cutoff = self.clock.now() - older_than
        total = 0

        def work(conn: Connection) -> tuple[int, list[Part]]:
            uploads = s3_repo.uploads_older_than(conn, cutoff, EXPIRE_BATCH)
            parts: list[Part] = []
            for upload in uploads:
                parts += s3_repo.delete_upload(conn, upload.upload_id)
            return len(uploads), parts

        while True:
            count, parts = self.objects.write(work)
            for part in parts:
                self.blobs.delete(part.blob)
            total += count
            if count < EXPIRE_BATCH:
                return total


def _upload_entry(upload: Upload, enc: Callable[[str], str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "UploadId": upload.upload_id,
        "Key": enc(upload.key),
        "Initiated": upload.initiated,
        "StorageClass": upload.headers.get("StorageClass", "STANDARD"),
        "Owner": _owner(upload.owner_account),
        "Initiator": _initiator(upload),
    }
    if upload.checksum_algorithm is not None:
        entry["ChecksumAlgorithm"] = upload.checksum_algorithm
        entry["ChecksumType"] = upload.checksum_type
    return entry


def _too_large(size: int) -> EntityTooLarge:
    return EntityTooLarge(
        "Your proposed upload exceeds the maximum allowed size",
        ProposedSize=str(size),
        MaxSizeAllowed=str(MAX_PART_SIZE),
    )


class _PendingPart:
    """UploadPart's body on its way in (see integrity.PendingWrite)."""

    def __init__(self, service: MultipartService, state: _PartState) -> None:
        self._service = service
        self._state = state
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._size += len(data)
        if self._size > MAX_PART_SIZE:
            raise _too_large(self._size)
        self._state.writer.write(data)

    def abort(self) -> None:
        self._state.writer.abort()

    def commit(self, trailers: Mapping[str, str]) -> dict[str, Any]:
        s = self._state
        try:
            written = s.writer.finish()
            stored = integrity.verify(s.expected, written, trailers)
            blob_id = s.writer.commit()
        except BaseException:
            s.writer.abort()
            raise
        part = self._service.store_part(
            s.upload, s.part_number, blob_id, written, s.writer.segment_size, stored or None
        )
        out: dict[str, Any] = {
            "ETag": part.etag,
            **sse_output(s.upload.keying, s.customer_key),
        }
        for name, value in (part.checksum or {}).items():
            out[f"Checksum{name}"] = value
        s.call.response_elements = None
        return out


__all__ = [
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "MultipartService",
    "checksum_setup",
    "copy_range",
    "part_number_from",
]
