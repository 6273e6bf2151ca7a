"""Objects: PUT (streamed), GET/HEAD (ranged, streamed), DELETE, COPY, tagging,
attributes and re-keying.

Methods take the operation's input members and return its output members under
botocore's names (S3's own vocabulary, not HTTP): the REST-XML adapter maps them to
headers and XML. Bodies never pass through here whole: a PUT returns a PendingWrite
the adapter feeds, a GET an ObjectRead whose chunks() the adapter sends.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import checksums, keycheck
from sealbox.s3 import conditions, integrity
from sealbox.s3.access import BucketAccess, S3RequestFacts
from sealbox.s3.base import S3Base
from sealbox.s3.datapath import StreamWriter, Written, read_plaintext
from sealbox.s3.encryption import (
    Encryption,
    Resolved,
    SseRequest,
    customer_key_from,
    resolve,
    sse_request_from,
)
from sealbox.s3.errors import (
    InvalidArgument,
    InvalidRange,
    InvalidRequest,
    InvalidTag,
    KeyTooLong,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    PreconditionFailed,
    S3AccessDenied,
    S3Error,
)
from sealbox.s3.model import (
    NULL_VERSION,
    SSE_C,
    SSE_KMS,
    Bucket,
    Checksum,
    Extent,
    Keying,
    ObjectVersion,
)
from sealbox.s3.versions import (
    delete_blobs,
    new_version_id,
    reported_version,
    store_version,
    store_version_fast,
)
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database, FastConnection

_GRANT_MEMBERS = ("GrantFullControl", "GrantRead", "GrantReadACP", "GrantWrite", "GrantWriteACP")
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
MAX_OBJECT_TAGS = 10
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
# Stored system metadata: botocore member names S3 echoes back on GET/HEAD.
CONTENT_MEMBERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "WebsiteRedirectLocation",
    "StorageClass",
)
_OVERRIDES = {
    "ResponseContentType": "ContentType",
    "ResponseContentLanguage": "ContentLanguage",
    "ResponseExpires": "Expires",
    "ResponseCacheControl": "CacheControl",
    "ResponseContentDisposition": "ContentDisposition",
    "ResponseContentEncoding": "ContentEncoding",
}


# -- small rules ----------------------------------------------------------------------------


def check_key(key: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLong("Your key is too long", Key=key[:64] + "...")
    if not key:
        raise InvalidArgument("The object key must not be empty.")


def parse_tag_query(text: str | None) -> dict[str, str]:
    """The x-amz-tagging header: URL-query encoded tags."""
    if not text:
        return {}
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    return validate_tags([(k, v) for k, v in pairs])


def validate_tags(pairs: list[tuple[str, str]], limit: int = MAX_OBJECT_TAGS) -> dict[str, str]:
    if len(pairs) > limit:
        raise InvalidTag(f"Object tags cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= 128:
            raise InvalidTag("The TagKey you have provided is invalid")
        if len(value) > 256:
            raise InvalidTag("The TagValue you have provided is invalid")
        if key.startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:")
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def content_headers(params: Mapping[str, Any]) -> dict[str, str]:
    headers = {m: params[m] for m in CONTENT_MEMBERS if params.get(m) is not None}
    encoding = headers.get("ContentEncoding")
    if encoding is not None:
        # aws-chunked describes the upload's framing, not the object.
        kept = [e for e in (p.strip() for p in encoding.split(",")) if e != "aws-chunked"]
        if kept:
            headers["ContentEncoding"] = ",".join(kept)
        else:
            del headers["ContentEncoding"]
    if params.get("Expires") is not None:
        expires = params["Expires"]
        headers["Expires"] = expires.isoformat() if hasattr(expires, "isoformat") else expires
    headers.setdefault("ContentType", DEFAULT_CONTENT_TYPE)
    return headers


def user_metadata(params: Mapping[str, Any]) -> dict[str, str]:
    metadata: dict[str, str] = dict(params.get("Metadata") or {})
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise S3MetadataTooLarge(
            "Your metadata headers exceed the maximum allowed metadata size",
            MaxSizeAllowed=str(MAX_METADATA_BYTES),
        )
    return metadata


class S3MetadataTooLarge(S3Error):
    code = "MetadataTooLarge"


def sse_output(keying: Keying | None, customer_key: bytes | None = None) -> dict[str, Any]:
    """The encryption members S3 returns for an object."""
    if keying is None:
        return {}
    if keying.sse == SSE_C:
        out: dict[str, Any] = {"SSECustomerAlgorithm": "AES256"}
        if customer_key is not None:
            out["SSECustomerKeyMD5"] = base64.b64encode(keycheck.md5(customer_key)).decode()
        return out
    if keying.sse == SSE_KMS:
        out = {"ServerSideEncryption": SSE_KMS, "SSEKMSKeyId": keying.kms_key_arn}
        if keying.bucket_key:
            out["BucketKeyEnabled"] = True
        return out
    return {"ServerSideEncryption": keying.sse}


def checksum_output(checksum: Checksum | None) -> dict[str, Any]:
    if checksum is None:
        return {}
    return {f"Checksum{checksum.algorithm}": checksum.value, "ChecksumType": checksum.type}


def request_facts(params: Mapping[str, Any], **more: Any) -> S3RequestFacts:
    return S3RequestFacts(
        sse=params.get("ServerSideEncryption"),
        sse_kms_key_id=params.get("SSEKMSKeyId"),
        sse_customer_algorithm=params.get("SSECustomerAlgorithm"),
        **more,
    )


# -- reads ------------------------------------------------------------------------------------


@dataclass
class ObjectRead:
    """A GET or HEAD answer: output members, and for GET the plaintext to send."""

    output: dict[str, Any]
    partial: bool
    _chunks: Callable[[], Iterator[bytes]] | None = field(default=None, repr=False)

    def chunks(self) -> Iterator[bytes]:
        if self._chunks is None:
            return iter(())
        return self._chunks()


@dataclass
class _PutState:
    call: Call
    bucket: Bucket
    key: str
    keying: Keying
    writer: StreamWriter
    expected: integrity.Expected
    headers: dict[str, str]
    metadata: dict[str, str]
    tags: dict[str, str]
    customer_key: bytes | None
    if_none_match: str | None
    if_match: str | None


class ObjectService(S3Base):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        access: BucketAccess,
        blobs: BlobStore,
        encryption: Encryption,
    ) -> None:
        super().__init__(db, clock, access, blobs)
        self.encryption = encryption

    # -- lookups -------------------------------------------------------------------------

    def find(
        self,
        call: Call,
        bucket: Bucket,
        key: str,
        version_id: str | None,
        action: str,
        params: Mapping[str, Any] | None = None,
    ) -> ObjectVersion:
        """An object version the caller may act on, with S3's errors for what is not."""
        obj = s3_repo.fast_get_version(self.db, bucket.name, key, version_id)
        facts = request_facts(
            params or {},
            version_id=version_id,
            existing_object_tags=obj.tags if obj is not None else None,
        )
        if version_id is not None and action.endswith("Object"):
            action += "Version"
        self.authorize(call, action, bucket, key, facts)
        if obj is None:
            if version_id is not None:
                if version_id != NULL_VERSION and len(version_id) != 32:
                    raise InvalidArgument("Invalid version id specified")
                raise NoSuchVersion(
                    "The specified version does not exist.", Key=key, VersionId=version_id
                )
            self._hide_absence(call, bucket)
            raise NoSuchKey("The specified key does not exist.", Key=key)
        if obj.delete_marker:
            if version_id is None:
                err: S3Error = NoSuchKey("The specified key does not exist.", Key=key)
            else:
                err = MethodNotAllowed(
                    "The specified method is not allowed against this resource.",
                    Method="GET",
                    ResourceType="DeleteMarker",
                )
            err.headers["x-amz-delete-marker"] = "true"
            if bucket.versioning is not None:
                err.headers["x-amz-version-id"] = obj.version_id
            raise err
        return obj

    def _hide_absence(self, call: Call, bucket: Bucket) -> None:
        """Without s3:ListBucket a missing key is AccessDenied, as S3 answers."""
        try:
            self.authorize(call, "s3:ListBucket", bucket)
        except S3AccessDenied:
            raise S3AccessDenied("Access Denied") from None

    # -- GET / HEAD ----------------------------------------------------------------------

    def get_object(self, call: Call, params: Mapping[str, Any], *, head: bool) -> ObjectRead:
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        call.data_event = True
        obj = self.find(call, bucket, key, params.get("VersionId"), "s3:GetObject", params)
        conditions.check(obj, params)
        customer_key = customer_key_from(params, secure=call.secure_transport)
        dek = self.encryption.open_data_key(call, bucket, key, obj.keying_or_fail(), customer_key)
        extents = obj.extents
        size = obj.size
        output: dict[str, Any] = {
            "AcceptRanges": "bytes",
            "LastModified": obj.last_modified,
            "ETag": obj.etag,
            "Metadata": obj.metadata,
            **{k: v for k, v in obj.headers.items() if k != "Expires"},
            **sse_output(obj.keying, customer_key),
        }
        if "Expires" in obj.headers:
            output["ExpiresString"] = obj.headers["Expires"]
        version = reported_version(bucket, obj.version_id)
        if version is not None:
            output["VersionId"] = version
        if obj.tags:
            output["TagCount"] = len(obj.tags)
        start, end = 0, size - 1
        partial = False
        part_number = params.get("PartNumber")
        if part_number is not None:
            start, end, count = _part_range(obj, part_number)
            partial = True
            output["PartsCount"] = count
        else:
            wanted = conditions.parse_range(params.get("Range"), size)
            if wanted is not None:
                start, end = wanted
                partial = True
        if partial:
            output["ContentRange"] = f"bytes {start}-{end}/{size}"
        elif params.get("ChecksumMode") == "ENABLED":
            # A whole-object checksum only describes a whole-object response.
            output.update(checksum_output(obj.checksum))
        output["ContentLength"] = end - start + 1 if size else 0
        if not head:
            for override, member in _OVERRIDES.items():
                if params.get(override) is not None:
                    output[member] = params[override]
        if head or size == 0:
            return ObjectRead(output, partial)
        blobs = self.blobs
        return ObjectRead(output, partial, lambda: read_plaintext(blobs, dek, extents, start, end))

    # -- PUT -----------------------------------------------------------------------------

    def start_put(
        self,
        call: Call,
        params: Mapping[str, Any],
        payload_sha256: str | None,
        trailer_names: tuple[str, ...] = (),
    ) -> integrity.PendingWrite:
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        check_key(key)
        self.resources(call, bucket, key)
        call.data_event = True
        sse = sse_request_from(params, secure=call.secure_transport)
        tags = parse_tag_query(params.get("Tagging"))
        self.authorize(
            call, "s3:PutObject", bucket, key, request_facts(params, request_object_tags=tags)
        )
        headers = content_headers(params)
        metadata = user_metadata(params)
        expected = integrity.expected_from(params, payload_sha256, trailer_names)
        resolved = resolve(sse, bucket)
        dek, keying = self.encryption.new_data_key(call, bucket, key, resolved)
        writer = StreamWriter(
            self.blobs,
            dek,
            expected.algorithms,
            want_sha256=expected.payload_sha256 is not None,
        )
        return _PendingPut(
            self,
            _PutState(
                call,
                bucket,
                key,
                keying,
                writer,
                expected,
                headers,
                metadata,
                tags,
                resolved.customer_key,
                params.get("IfNoneMatch"),
                params.get("IfMatch"),
            ),
        )

    def commit_object(
        self,
        call: Call,
        bucket_name: str,
        key: str,
        make: Callable[[Bucket, str], ObjectVersion],
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> ObjectVersion:
        """Record a fully written object as its key's newest version, atomically.

        The bucket is read again here: versioning may have changed while the body
        streamed. A failed commit deletes the new blobs; a successful one deletes the
        blobs of the version it replaced (after the commit).
        """
        try:
            bucket = self.bucket(bucket_name)
            obj = make(bucket, new_version_id(bucket))

            def work(fast: FastConnection) -> list[Extent]:
                if if_none_match is not None or if_match is not None:
                    current = s3_repo.fast_get_version_in(fast, bucket.name, key)
                    exists = current is not None and not current.delete_marker
                    if if_none_match == "*" and exists:
                        raise PreconditionFailed(
                            "At least one of the pre-conditions you specified did not hold",
                            Condition="If-None-Match",
                        )
                    if if_match is not None and (
                        current is None
                        or current.delete_marker
                        or (if_match != "*" and if_match.strip('"') != current.etag.strip('"'))
                    ):
                        if current is None or current.delete_marker:
                            raise NoSuchKey("The specified key does not exist.", Key=key)
                        raise PreconditionFailed(
                            "At least one of the pre-conditions you specified did not hold",
                            Condition="If-Match",
                        )
                return store_version_fast(fast, obj)

            replaced = self.fast_write(work)
        except BaseException:
            on_failure()
            raise
        delete_blobs(self.blobs, replaced)
        return obj

    # -- DELETE --------------------------------------------------------------------------

    def delete_object(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        call.data_event = True
        return self._delete_one(call, bucket, key, params.get("VersionId"))

    def _delete_one(
        self, call: Call, bucket: Bucket, key: str, version_id: str | None
    ) -> dict[str, Any]:
        action = "s3:DeleteObjectVersion" if version_id is not None else "s3:DeleteObject"
        self.authorize(call, action, bucket, key, S3RequestFacts(version_id=version_id))
        if version_id is not None:
            if version_id != NULL_VERSION and len(version_id) != 32:
                raise InvalidArgument("Invalid version id specified")
            return self._delete_version(bucket, key, version_id)
        if bucket.versioning is None:
            return self._delete_version(bucket, key, NULL_VERSION, report=False)
        marker_id = new_version_id(bucket)
        marker = ObjectVersion(
            bucket=bucket.name,
            key=key,
            version_id=marker_id,
            is_latest=True,
            delete_marker=True,
            size=0,
            etag="",
            last_modified=self.clock.now(),
            owner_account=call.principal.account_id or bucket.account_id,
            keying=None,
        )
        replaced = self.write(lambda conn: store_version(conn, marker))
        delete_blobs(self.blobs, replaced)
        return {"DeleteMarker": True, "VersionId": marker_id}

    def _delete_version(
        self, bucket: Bucket, key: str, version_id: str, *, report: bool = True
    ) -> dict[str, Any]:
        def work(conn: Any) -> ObjectVersion | None:
            obj = s3_repo.get_version(conn, bucket.name, key, version_id)
            if obj is not None:
                s3_repo.delete_version(conn, obj)
            return obj

        gone = self.write(work)
        out: dict[str, Any] = {}
        if gone is not None:
            delete_blobs(self.blobs, gone.extents)
            if gone.delete_marker:
                out["DeleteMarker"] = True
        if report:
            out["VersionId"] = version_id
        return out

    def delete_objects(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(params["Bucket"])
        self.resources(call, bucket)
        call.data_event = True
        wanted = (params.get("Delete") or {}).get("Objects") or []
        if len(wanted) > 1000:
            from sealbox.s3.errors import MalformedXML

            raise MalformedXML(
                "The XML you provided was not well-formed or did not validate against "
                "our published schema"
            )
        quiet = bool((params.get("Delete") or {}).get("Quiet"))
        deleted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in wanted:
            key = item.get("Key", "")
            version_id = item.get("VersionId")
            try:
                result = self._delete_one(call, bucket, key, version_id)
            except S3Error as err:
                entry = {"Key": key, "Code": err.code, "Message": err.message}
                if version_id is not None:
                    entry["VersionId"] = version_id
                errors.append(entry)
                continue
            if quiet:
                continue
            done: dict[str, Any] = {"Key": key}
            if version_id is not None:
                done["VersionId"] = version_id
                if result.get("DeleteMarker"):
                    done["DeleteMarker"] = True
                    done["DeleteMarkerVersionId"] = version_id
            elif result.get("DeleteMarker"):
                done["DeleteMarker"] = True
                done["DeleteMarkerVersionId"] = result["VersionId"]
            deleted.append(done)
        out: dict[str, Any] = {}
        if deleted:
            out["Deleted"] = deleted
        if errors:
            out["Errors"] = errors
        return out

    # -- COPY ----------------------------------------------------------------------------

    def copy_object(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        dest_bucket = self.bucket(params["Bucket"])
        dest_key = params["Key"]
        check_key(dest_key)
        self.resources(call, dest_bucket, dest_key)
        call.data_event = True
        src_bucket_name, src_key, src_version = parse_copy_source(params["CopySource"])
        src_bucket = self.bucket(src_bucket_name)
        source = self.find(call, src_bucket, src_key, src_version, "s3:GetObject")
        conditions.check(source, params, "CopySource")
        source_key = customer_key_from(params, "CopySource", secure=call.secure_transport)
        sse = sse_request_from(params, secure=call.secure_transport)
        replace_meta = params.get("MetadataDirective") == "REPLACE"
        replace_tags = params.get("TaggingDirective") == "REPLACE"
        if (
            src_bucket.name == dest_bucket.name
            and src_key == dest_key
            and (src_version is None or source.is_latest)
            and not replace_meta
            and _no_encryption_change(params, sse)
        ):
            raise InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to "
                "itself without changing the object's metadata, storage class, website "
                "redirect location or encryption attributes."
            )
        tags = parse_tag_query(params.get("Tagging")) if replace_tags else dict(source.tags)
        self.authorize(
            call,
            "s3:PutObject",
            dest_bucket,
            dest_key,
            request_facts(params, request_object_tags=tags),
        )
        headers = content_headers(params) if replace_meta else dict(source.headers)
        metadata = user_metadata(params) if replace_meta else dict(source.metadata)
        source_dek = self.encryption.open_data_key(
            call, src_bucket, src_key, source.keying_or_fail(), source_key
        )
        resolved = resolve(sse, dest_bucket)
        dek, keying = self.encryption.new_data_key(call, dest_bucket, dest_key, resolved)
        algorithm = params.get("ChecksumAlgorithm") or (
            source.checksum.algorithm if source.checksum is not None else None
        )
        writer = StreamWriter(self.blobs, dek, (algorithm,) if algorithm else ())
        try:
            if source.size:
                for chunk in read_plaintext(
                    self.blobs, source_dek, source.extents, 0, source.size - 1
                ):
                    writer.write(chunk)
            written = writer.finish()
            blob_id = writer.commit()
        except BaseException:
            writer.abort()
            raise
        checksum = (
            Checksum(algorithm, checksums.b64(written.checksums[algorithm])) if algorithm else None
        )
        obj = self.commit_object(
            call,
            dest_bucket.name,
            dest_key,
            lambda bucket, version_id: new_object(
                call, bucket, dest_key, version_id, keying, written, blob_id, writer.segment_size,
                headers, metadata, tags, checksum, self.clock,
            ),
            on_failure=lambda: self.blobs.delete(blob_id),
        )  # fmt: skip
        result: dict[str, Any] = {"ETag": obj.etag, "LastModified": obj.last_modified}
        if checksum is not None:
            result[f"Checksum{checksum.algorithm}"] = checksum.value
        out: dict[str, Any] = {
            "CopyObjectResult": result,
            **sse_output(keying, resolved.customer_key),
        }
        version = reported_version(self.bucket(dest_bucket.name), obj.version_id)
        if version is not None:
            out["VersionId"] = version
        if src_bucket.versioning is not None:
            out["CopySourceVersionId"] = source.version_id
        return out

    # -- tagging -------------------------------------------------------------------------

    def _retag(
        self,
        call: Call,
        params: Mapping[str, Any],
        action: str,
        tags: dict[str, str] | None,
    ) -> dict[str, Any]:
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        version_id = params.get("VersionId")
        obj = self.find(call, bucket, key, version_id, action)
        if tags is None:
            out: dict[str, Any] = {"TagSet": tag_set(obj.tags)}
        else:
            updated = _replace(obj, tags=tags)
            self.write(lambda conn: s3_repo.replace_in_place(conn, updated))
            out = {}
        if bucket.versioning is not None:
            out["VersionId"] = obj.version_id
        return out

    def get_object_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._retag(call, params, "s3:GetObjectTagging", None)

    def put_object_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        pairs = [(t["Key"], t.get("Value", "")) for t in params["Tagging"].get("TagSet", [])]
        return self._retag(call, params, "s3:PutObjectTagging", validate_tags(pairs))

    def delete_object_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._retag(call, params, "s3:DeleteObjectTagging", {})

    # -- re-keying -----------------------------------------------------------------------

    def update_object_encryption(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        """Move an object to SSE-KMS (another key, or a bucket key) by rewrapping its data
        key: the data, metadata, ETag and checksums stay exactly as they were."""
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        call.data_event = True
        version_id = params.get("VersionId")
        obj = self.find(call, bucket, key, version_id, "s3:PutObject")
        self.authorize(call, "s3:UpdateObjectEncryption", bucket, key)
        target = (params.get("ObjectEncryption") or {}).get("SSEKMS")
        if target is None:
            raise InvalidRequest(
                "Requests that modify an object encryption configuration require a valid new "
                "encryption type. Valid values are SSEKMS."
            )
        key_arn = target.get("KMSKeyArn")
        if not key_arn:
            raise InvalidRequest(
                "Requests that modify an object's encryption type to SSE-KMS require an AWS "
                "KMS key Amazon Resource Name (ARN)."
            )
        if not key_arn.startswith("arn:") or ":key/" not in key_arn:
            raise InvalidRequest(
                "Requests that modify an object's encryption type to SSE-KMS require a valid "
                "AWS KMS key Amazon Resource Name (ARN)."
            )
        keying = obj.keying_or_fail()
        if keying.sse == SSE_C:
            raise InvalidRequest(
                "The UpdateObjectEncryption operation doesn't support source objects with the "
                "encryption type DSSE-KMS or SSE-C. Only source objects encrypted with SSE-S3 "
                "or SSE-KMS are supported."
            )
        dek = self.encryption.open_data_key(call, bucket, key, keying, None)
        resolved = Resolved(SSE_KMS, key_arn, None, bool(target.get("BucketKeyEnabled")))
        rekeyed = _replace(obj, keying=self.encryption.wrap(call, bucket, key, dek, resolved))

        def work(conn: Any) -> None:
            if not s3_repo.replace_in_place(conn, rekeyed):
                raise NoSuchKey("The specified key does not exist.", Key=key)

        self.write(work)
        return {}

    def get_object_acl(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        """Objects are owned by the bucket owner (BucketOwnerEnforced): one grant."""
        from sealbox.s3.buckets import canonical_user_id

        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        self.find(call, bucket, key, params.get("VersionId"), "s3:GetObjectAcl")
        owner = {"ID": canonical_user_id(bucket.account_id)}
        grant = {"Grantee": {**owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}
        return {"Owner": owner, "Grants": [grant]}

    def put_object_acl(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        """ACLs are disabled (BucketOwnerEnforced): only owner-only ACLs are accepted."""
        from sealbox.s3.buckets import _ACLS_NOT_SUPPORTED, AccessControlListNotSupported

        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        self.find(call, bucket, key, params.get("VersionId"), "s3:PutObjectAcl")
        grants = [g for g in _GRANT_MEMBERS if params.get(g) is not None]
        if params.get("ACL") not in (None, "private", "bucket-owner-full-control") or grants:
            raise AccessControlListNotSupported(_ACLS_NOT_SUPPORTED)
        return {}

    # -- attributes ----------------------------------------------------------------------

    def get_object_attributes(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(params["Bucket"])
        key = params["Key"]
        self.resources(call, bucket, key)
        call.data_event = True
        obj = self.find(call, bucket, key, params.get("VersionId"), "s3:GetObject")
        self.authorize(call, "s3:GetObjectAttributes", bucket, key)
        if obj.keying is not None and obj.keying.sse == SSE_C:
            customer_key = customer_key_from(params, secure=call.secure_transport)
            self.encryption.open_data_key(call, bucket, key, obj.keying, customer_key)
        wanted = set(params.get("ObjectAttributes") or ())
        out: dict[str, Any] = {"LastModified": obj.last_modified}
        if bucket.versioning is not None:
            out["VersionId"] = obj.version_id
        if "ETag" in wanted:
            out["ETag"] = obj.etag.strip('"')
        if "ObjectSize" in wanted:
            out["ObjectSize"] = obj.size
        if "StorageClass" in wanted:
            out["StorageClass"] = obj.headers.get("StorageClass", "STANDARD")
        if "Checksum" in wanted and obj.checksum is not None:
            out["Checksum"] = checksum_output(obj.checksum)
        if "ObjectParts" in wanted and obj.multipart:
            out["ObjectParts"] = _parts_page(obj, params)
        return out


def _parts_page(obj: ObjectVersion, params: Mapping[str, Any]) -> dict[str, Any]:
    marker = int(params.get("PartNumberMarker") or 0)
    limit = int(params.get("MaxParts") or 1000)
    parts = [e for e in obj.extents if e.part_number > marker]
    page = parts[:limit]
    listed = []
    for extent in page:
        entry: dict[str, Any] = {"PartNumber": extent.part_number, "Size": extent.size}
        for algorithm, value in (extent.checksum or {}).items():
            entry[f"Checksum{algorithm}"] = value
        listed.append(entry)
    out: dict[str, Any] = {
        "TotalPartsCount": len(obj.extents),
        "PartNumberMarker": marker,
        "MaxParts": limit,
        "IsTruncated": len(parts) > limit,
        "Parts": listed,
    }
    if page:
        out["NextPartNumberMarker"] = page[-1].part_number
    return out


def _part_range(obj: ObjectVersion, part_number: int) -> tuple[int, int, int]:
    """(start, end, parts count) of one part; a single-part object has part 1 only."""
    extents = obj.extents if obj.multipart else ()
    if not extents:
        if part_number != 1:
            raise InvalidPartNumber("The requested partnumber is not satisfiable")
        return 0, obj.size - 1, 1
    offset = 0
    for extent in extents:
        if extent.part_number == part_number:
            return offset, offset + extent.size - 1, len(extents)
        offset += extent.size
    raise InvalidPartNumber("The requested partnumber is not satisfiable")


class InvalidPartNumber(InvalidRange):
    code = "InvalidPartNumber"


def _no_encryption_change(params: Mapping[str, Any], sse: SseRequest) -> bool:
    return (
        sse.sse is None
        and sse.customer_key is None
        and sse.bucket_key is None
        and params.get("StorageClass") is None
        and params.get("WebsiteRedirectLocation") is None
    )


def parse_copy_source(text: str) -> tuple[str, str, str | None]:
    """x-amz-copy-source: "bucket/key" or "/bucket/key", URL-encoded, ?versionId=."""
    source, _, query = text.partition("?")
    version_id = None
    if query:
        values = urllib.parse.parse_qs(query).get("versionId")
        version_id = values[0] if values else None
    source = urllib.parse.unquote(source).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise InvalidArgument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
        )
    return bucket, key, version_id


def _replace(obj: ObjectVersion, **changes: Any) -> ObjectVersion:
    from dataclasses import replace

    return replace(obj, **changes)


def new_object(
    call: Call,
    bucket: Bucket,
    key: str,
    version_id: str,
    keying: Keying,
    written: Written,
    blob_id: str,
    segment_size: int,
    headers: dict[str, str],
    metadata: dict[str, str],
    tags: dict[str, str],
    checksum: Checksum | None,
    clock: Clock,
) -> ObjectVersion:
    """A single-stream object version, as PUT and COPY make them."""
    etag = checksums.etag(written.md5)
    return ObjectVersion(
        bucket=bucket.name,
        key=key,
        version_id=version_id,
        is_latest=True,
        delete_marker=False,
        size=written.size,
        etag=etag,
        last_modified=clock.now(),
        owner_account=call.principal.account_id or bucket.account_id,
        keying=keying,
        headers=headers,
        metadata=metadata,
        tags=tags,
        checksum=checksum,
        extents=(Extent(blob_id, written.size, segment_size, 1, etag),),
    )


class _PendingPut:
    """PutObject's body on its way in (see integrity.PendingWrite)."""

    def __init__(self, service: ObjectService, state: _PutState) -> None:
        self._service = service
        self._state = state

    def write(self, data: bytes | memoryview) -> None:
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
        checksum = None
        if stored:
            algorithm, value = next(iter(stored.items()))
            checksum = Checksum(algorithm, value)
        service = self._service
        fresh: list[Bucket] = []  # the bucket as commit_object read it

        def make(bucket: Bucket, version_id: str) -> ObjectVersion:
            fresh.append(bucket)
            return new_object(
                s.call, bucket, s.key, version_id, s.keying, written, blob_id,
                s.writer.segment_size, s.headers, s.metadata, s.tags, checksum, service.clock,
            )  # fmt: skip

        obj = service.commit_object(
            s.call,
            s.bucket.name,
            s.key,
            make,
            if_none_match=s.if_none_match,
            if_match=s.if_match,
            on_failure=lambda: service.blobs.delete(blob_id),
        )  # fmt: skip
        out: dict[str, Any] = {
            "ETag": obj.etag,
            **sse_output(s.keying, s.customer_key),
            **checksum_output(checksum),
        }
        if s.keying.context and s.keying.sse == SSE_KMS:
            user_context = {k: v for k, v in s.keying.context.items() if k != "aws:s3:arn"}
            if user_context:
                import orjson

                out["SSEKMSEncryptionContext"] = base64.b64encode(
                    orjson.dumps(user_context)
                ).decode()
        version = reported_version(fresh[-1], obj.version_id)
        if version is not None:
            out["VersionId"] = version
        s.call.response_elements = None
        return out


__all__ = [
    "NoSuchBucket",
    "ObjectRead",
    "ObjectService",
    "Resolved",
    "parse_copy_source",
]
