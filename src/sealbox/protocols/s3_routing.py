"""Which bucket, key and S3 operation a request is for.

S3 has no operation name on the wire: it is implied by the method, whether a bucket and
a key are named, "subresource" query parameters (``?tagging``, ``?uploads``) and, for
copies, a header. The subresource names are read from botocore's S3 model so that a
request for an operation we do not serve is refused as NotImplemented by name, never
mistaken for a plain GetObject or ListObjects.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from typing import Final

from sealbox.errors import ClientError
from sealbox.protocols.codec.models import load_service

__all__ = ["S3NotImplemented", "identify", "split_target"]


class S3NotImplemented(ClientError):
    """A request for an S3 operation Sealbox does not serve."""

    code = "NotImplemented"
    http_status = 501


# (method, scope, subresource) → operation; scope is "service", "bucket" or "object".
_ROUTES: Final[dict[tuple[str, str, str | None], str]] = {
    ("GET", "service", None): "ListBuckets",
    ("GET", "bucket", None): "ListObjects",
    ("HEAD", "bucket", None): "HeadBucket",
    ("PUT", "bucket", None): "CreateBucket",
    ("DELETE", "bucket", None): "DeleteBucket",
    ("GET", "bucket", "location"): "GetBucketLocation",
    ("GET", "bucket", "tagging"): "GetBucketTagging",
    ("PUT", "bucket", "tagging"): "PutBucketTagging",
    ("DELETE", "bucket", "tagging"): "DeleteBucketTagging",
    ("GET", "bucket", "policy"): "GetBucketPolicy",
    ("PUT", "bucket", "policy"): "PutBucketPolicy",
    ("DELETE", "bucket", "policy"): "DeleteBucketPolicy",
    ("GET", "bucket", "policyStatus"): "GetBucketPolicyStatus",
    ("GET", "bucket", "encryption"): "GetBucketEncryption",
    ("PUT", "bucket", "encryption"): "PutBucketEncryption",
    ("DELETE", "bucket", "encryption"): "DeleteBucketEncryption",
    ("GET", "bucket", "publicAccessBlock"): "GetPublicAccessBlock",
    ("PUT", "bucket", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "bucket", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("GET", "bucket", "versioning"): "GetBucketVersioning",
    ("PUT", "bucket", "versioning"): "PutBucketVersioning",
    ("GET", "bucket", "versions"): "ListObjectVersions",
    ("GET", "bucket", "uploads"): "ListMultipartUploads",
    ("GET", "bucket", "acl"): "GetBucketAcl",
    ("PUT", "bucket", "acl"): "PutBucketAcl",
    ("GET", "bucket", "ownershipControls"): "GetBucketOwnershipControls",
    ("POST", "bucket", "delete"): "DeleteObjects",
    ("GET", "object", None): "GetObject",
    ("HEAD", "object", None): "HeadObject",
    ("PUT", "object", None): "PutObject",
    ("DELETE", "object", None): "DeleteObject",
    ("GET", "object", "attributes"): "GetObjectAttributes",
    ("GET", "object", "tagging"): "GetObjectTagging",
    ("PUT", "object", "tagging"): "PutObjectTagging",
    ("DELETE", "object", "tagging"): "DeleteObjectTagging",
    ("PUT", "object", "encryption"): "UpdateObjectEncryption",
    ("GET", "object", "acl"): "GetObjectAcl",
    ("PUT", "object", "acl"): "PutObjectAcl",
    ("GET", "bucket", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("POST", "object", "uploads"): "CreateMultipartUpload",
}

# Parameters that select an operation without being a subresource of botocore's model.
_UPLOAD_ROUTES: Final[dict[str, str]] = {
    "GET": "ListParts",
    "POST": "CompleteMultipartUpload",
    "DELETE": "AbortMultipartUpload",
}


@functools.cache
def _subresources() -> frozenset[str]:
    """The valueless query markers in S3's request URIs (``?tagging``, ``?uploads``...)."""
    names: set[str] = set()
    service = load_service("s3")
    for name in service.operation_names:
        uri: str = service.operation_model(name).http.get("requestUri", "")
        _, _, query = uri.partition("?")
        # "list-type=2" and "select-type=2" qualify another marker; they are not one.
        names.update(part for part in query.split("&") if part and "=" not in part)
    return frozenset(names)


def split_target(
    host: str, path: str, virtual_host_suffixes: tuple[str, ...] = ("localhost",)
) -> tuple[str | None, str | None]:
    """(bucket, key) of a request; None for what it does not name.

    A host ``BUCKET[.s3[.REGION]].SUFFIX[:port]`` names the bucket (virtual-hosted style)
    and the whole path is the key; otherwise the path is ``/bucket/key``. ``path`` is
    already percent-decoded; a key keeps its slashes, and an empty key is None.
    """
    bucket = _virtual_bucket(host, virtual_host_suffixes)
    rest = path[1:] if path.startswith("/") else path
    if bucket is None:
        if not rest:
            return None, None
        bucket, sep, rest = rest.partition("/")
        if not sep:
            return bucket, None
    return bucket, rest or None


def _virtual_bucket(host: str, suffixes: tuple[str, ...]) -> str | None:
    name = host.strip().lower()
    if not name or name.startswith("["):  # an IPv6 literal is never a bucket
        return None
    head, colon, port = name.rpartition(":")
    if colon and port.isdigit():
        name = head
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    for suffix in suffixes:
        suffix = suffix.lower().strip(".")
        if not suffix or not name.endswith("." + suffix):
            continue
        labels = name[: -len(suffix) - 1].split(".")
        # A label "s3" separates the bucket from the endpoint ("b.s3.us-east-1.localhost").
        cut = next((i for i in range(len(labels) - 1, -1, -1) if labels[i] == "s3"), None)
        bucket = ".".join(labels if cut is None else labels[:cut])
        return bucket or None
    return None


def identify(
    method: str,
    bucket: str | None,
    key: str | None,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    """The botocore name of the S3 operation a request asks for.

    ``headers`` is keyed by lower-case name. A request no route serves raises
    S3NotImplemented naming its method and subresource.
    """
    method = method.upper()
    scope = "service" if bucket is None else "bucket" if key is None else "object"
    known = _subresources()
    subs = [name for name in query if name in known]
    if len(subs) > 1:
        raise _not_implemented(method, scope, subs)
    sub = subs[0] if subs else None
    if scope == "object" and sub is None:
        op = _object_without_subresource(method, query, headers)
        if op is not None:
            return op
    if scope == "bucket" and sub is None and method == "GET" and query.get("list-type") == "2":
        return "ListObjectsV2"
    op = _ROUTES.get((method, scope, sub))
    if op is None:
        raise _not_implemented(method, scope, subs)
    return op


def _object_without_subresource(
    method: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> str | None:
    copy = "x-amz-copy-source" in headers
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if "uploadId" in query:
        return _UPLOAD_ROUTES.get(method)
    return None


def _not_implemented(method: str, scope: str, subs: list[str]) -> S3NotImplemented:
    target = {"service": "the service", "bucket": "a bucket", "object": "an object"}[scope]
    shown = "?" + "&".join(s[:64] for s in subs) if subs else "no subresource"
    return S3NotImplemented(f"{method[:16]} with {shown} on {target} is not implemented.")
