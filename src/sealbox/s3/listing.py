"""ListObjectsV2, ListObjects and ListObjectVersions: prefix, delimiter, markers.

Keys come from the database in byte order, a page at a time. With a delimiter, a key
that rolls up into a common prefix makes the scan jump past every key under that
prefix, so a million keys below one prefix cost one row, not a million.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from sealbox.call import Call
from sealbox.s3.access import S3RequestFacts
from sealbox.s3.base import S3Base
from sealbox.s3.errors import InvalidArgument
from sealbox.s3.model import Bucket, ObjectVersion
from sealbox.storage import s3_repo

MAX_KEYS = 1000
_TOP = "\U0010ffff"
_PAGE = 1000


def _encoder(params: Mapping[str, Any]) -> Callable[[str], str]:
    encoding = params.get("EncodingType")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    return lambda s: urllib.parse.quote(s, safe="/")


def _max_keys(params: Mapping[str, Any], name: str = "MaxKeys") -> int:
    value = params.get(name)
    if value is None:
        return MAX_KEYS
    if value < 0:
        raise InvalidArgument(f"Argument {name} must be an integer between 0 and 2147483647")
    return min(int(value), MAX_KEYS)


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"k": key})).decode()


def decode_token(token: str) -> str:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        key = data["k"]
        if not isinstance(key, str):
            raise TypeError
        return key
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidArgument(
            "The continuation token provided is incorrect", ArgumentName="continuation-token"
        ) from None


class Lister(S3Base):
    def _walk(
        self,
        bucket: str,
        prefix: str,
        delimiter: str | None,
        after: str | None,
        limit: int,
    ) -> tuple[list[ObjectVersion], list[str], bool, str | None]:
        """(objects, common prefixes, truncated, last item) of one page."""
        contents: list[ObjectVersion] = []
        prefixes: list[str] = []
        last: str | None = None
        cursor = after
        if limit == 0:
            return contents, prefixes, False, None
        while True:
            with self.db.read() as conn:
                rows = s3_repo.scan_latest(conn, bucket, prefix, cursor, _PAGE)
            if not rows:
                return contents, prefixes, False, last
            for index, obj in enumerate(rows):
                rolled = _rollup(obj.key, prefix, delimiter)
                if rolled is not None:
                    if after is not None and rolled <= after:
                        cursor = rolled + _TOP  # a prefix already returned
                        break
                    if len(contents) + len(prefixes) == limit:
                        return contents, prefixes, True, last
                    prefixes.append(rolled)
                    last = rolled
                    cursor = rolled + _TOP
                    break
                if len(contents) + len(prefixes) == limit:
                    return contents, prefixes, True, last
                contents.append(obj)
                last = obj.key
                cursor = obj.key
                if index == len(rows) - 1 and len(rows) < _PAGE:
                    return contents, prefixes, False, last

    def _begin(
        self, call: Call, params: Mapping[str, Any]
    ) -> tuple[Bucket, str, str | None, S3RequestFacts]:
        bucket = self.bucket(params["Bucket"])
        self.resources(call, bucket)
        prefix = params.get("Prefix") or ""
        delimiter = params.get("Delimiter") or None
        facts = S3RequestFacts(
            prefix=prefix if "Prefix" in params else None,
            delimiter=delimiter,
            max_keys=str(params["MaxKeys"]) if params.get("MaxKeys") is not None else None,
        )
        return bucket, prefix, delimiter, facts

    def list_objects_v2(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, facts = self._begin(call, params)
        self.authorize(call, "s3:ListBucket", bucket, facts=facts)
        enc = _encoder(params)
        limit = _max_keys(params)
        token = params.get("ContinuationToken")
        after = decode_token(token) if token else params.get("StartAfter") or None
        contents, prefixes, truncated, last = self._walk(
            bucket.name, prefix, delimiter, after, limit
        )
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "MaxKeys": limit,
            "KeyCount": len(contents) + len(prefixes),
            "IsTruncated": truncated,
            "Contents": [_entry(o, enc, params.get("FetchOwner")) for o in contents],
            "CommonPrefixes": [{"Prefix": enc(p)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if token:
            out["ContinuationToken"] = token
        if params.get("StartAfter"):
            out["StartAfter"] = enc(params["StartAfter"])
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        if truncated and last is not None:
            out["NextContinuationToken"] = encode_token(last)
        return out

    def list_objects(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, facts = self._begin(call, params)
        self.authorize(call, "s3:ListBucket", bucket, facts=facts)
        enc = _encoder(params)
        limit = _max_keys(params)
        marker = params.get("Marker") or None
        contents, prefixes, truncated, last = self._walk(
            bucket.name, prefix, delimiter, marker, limit
        )
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "Marker": enc(marker or ""),
            "MaxKeys": limit,
            "IsTruncated": truncated,
            "Contents": [_entry(o, enc, True) for o in contents],
            "CommonPrefixes": [{"Prefix": enc(p)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
            if truncated and last is not None:
                out["NextMarker"] = enc(last)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        return out

    def list_object_versions(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, facts = self._begin(call, params)
        self.authorize(call, "s3:ListBucketVersions", bucket, facts=facts)
        enc = _encoder(params)
        limit = _max_keys(params)
        key_marker = params.get("KeyMarker") or None
        version_marker = params.get("VersionIdMarker") or None
        after_row: int | None = None
        if version_marker is not None:
            if key_marker is None:
                raise InvalidArgument(
                    "A version-id marker cannot be specified without a key marker."
                )
            with self.db.read() as conn:
                marked = s3_repo.get_version(conn, bucket.name, key_marker, version_marker)
            if marked is None:
                raise InvalidArgument("Invalid version id specified")
            after_row = marked.row_id
        versions: list[dict[str, Any]] = []
        markers: list[dict[str, Any]] = []
        prefixes: list[str] = []
        truncated = False
        next_key: str | None = None
        next_version: str | None = None
        cursor_key, cursor_row = key_marker, after_row
        count = 0
        while not truncated:
            with self.db.read() as conn:
                rows = s3_repo.scan_versions(
                    conn, bucket.name, prefix, cursor_key, cursor_row, _PAGE
                )
            if not rows:
                break
            for obj in rows:
                rolled = _rollup(obj.key, prefix, delimiter)
                if rolled is not None:
                    if (key_marker is not None and rolled <= key_marker) or (
                        prefixes and prefixes[-1] == rolled
                    ):
                        cursor_key, cursor_row = rolled + _TOP, None
                        break
                    if count == limit:
                        truncated = True
                        break
                    prefixes.append(rolled)
                    count += 1
                    next_key, next_version = rolled, None
                    cursor_key, cursor_row = rolled + _TOP, None
                    break
                if count == limit:
                    truncated = True
                    break
                entry = _version_entry(obj, enc)
                (markers if obj.delete_marker else versions).append(entry)
                count += 1
                next_key, next_version = obj.key, obj.version_id
                cursor_key, cursor_row = obj.key, obj.row_id
            else:
                if len(rows) < _PAGE:
                    break
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "KeyMarker": enc(key_marker or ""),
            "VersionIdMarker": version_marker or "",
            "MaxKeys": limit,
            "IsTruncated": truncated,
            "Versions": versions,
            "DeleteMarkers": markers,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if truncated and next_key is not None:
            out["NextKeyMarker"] = enc(next_key)
            if next_version is not None:
                out["NextVersionIdMarker"] = next_version
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        return out


def _rollup(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix key rolls up into, or None."""
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    if at < 0:
        return None
    return key[: at + len(delimiter)]


def _owner(account_id: str) -> dict[str, str]:
    return {"ID": account_id, "DisplayName": account_id}


def _entry(obj: ObjectVersion, enc: Callable[[str], str], owner: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Key": enc(obj.key),
        "LastModified": obj.last_modified,
        "ETag": obj.etag,
        "Size": obj.size,
        "StorageClass": obj.headers.get("StorageClass", "STANDARD"),
    }
    if obj.checksum is not None:
        entry["ChecksumAlgorithm"] = [obj.checksum.algorithm]
        entry["ChecksumType"] = obj.checksum.type
    if owner:
        entry["Owner"] = _owner(obj.owner_account)
    return entry


def _version_entry(obj: ObjectVersion, enc: Callable[[str], str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Key": enc(obj.key),
        "VersionId": obj.version_id,
        "IsLatest": obj.is_latest,
        "LastModified": obj.last_modified,
        "Owner": _owner(obj.owner_account),
    }
    if not obj.delete_marker:
        entry.update(
            ETag=obj.etag,
            Size=obj.size,
            StorageClass=obj.headers.get("StorageClass", "STANDARD"),
        )
    return entry
