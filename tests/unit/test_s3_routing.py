"""S3 request routing: bucket and key from host and path, operation from method and query."""

from __future__ import annotations

import pytest

from sealbox.errors import ClientError
from sealbox.protocols.codec.models import load_service
from sealbox.protocols.s3_routing import S3NotImplemented, identify, split_target

COPY = {"x-amz-copy-source": "/src/key"}


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("localhost:4566", "/", (None, None)),
        ("localhost", "", (None, None)),
        ("localhost:4566", "/bucket", ("bucket", None)),
        ("localhost:4566", "/bucket/", ("bucket", None)),
        ("localhost:4566", "/bucket/key", ("bucket", "key")),
        ("localhost:4566", "/bucket/a/b/c.txt", ("bucket", "a/b/c.txt")),
        ("localhost:4566", "/bucket/dir/", ("bucket", "dir/")),
        ("localhost:4566", "/bucket//lead", ("bucket", "/lead")),
        ("localhost:4566", "/bucket/sp ace%?#", ("bucket", "sp ace%?#")),
        ("127.0.0.1:4566", "/bucket/key", ("bucket", "key")),
        ("10.0.0.7", "/bucket/key", ("bucket", "key")),
        ("[::1]:4566", "/bucket/key", ("bucket", "key")),
        ("s3.localhost:4566", "/bucket/key", ("bucket", "key")),
        ("s3.us-east-1.localhost", "/bucket", ("bucket", None)),
        ("example.com", "/bucket/key", ("bucket", "key")),
        ("bucket.localhost:4566", "/", ("bucket", None)),
        ("bucket.localhost:4566", "", ("bucket", None)),
        ("bucket.localhost", "/a/b", ("bucket", "a/b")),
        ("Bucket.LOCALHOST:4566", "/k", ("bucket", "k")),
        ("bucket.s3.localhost", "/k", ("bucket", "k")),
        ("bucket.s3.us-west-2.localhost:9000", "/k/", ("bucket", "k/")),
        ("my.dotted.bucket.localhost", "/k", ("my.dotted.bucket", "k")),
        ("my.dotted.bucket.s3.localhost", "/k", ("my.dotted.bucket", "k")),
        ("bucket.localhost", "//k", ("bucket", "/k")),
    ],
)
def test_split_target(host: str, path: str, expected: tuple[str | None, str | None]) -> None:
    assert split_target(host, path) == expected


def test_split_target_custom_suffixes() -> None:
    suffixes = ("sealbox.internal", "localhost")
    assert split_target("b.sealbox.internal", "/k", suffixes) == ("b", "k")
    assert split_target("b.s3.sealbox.internal:443", "/", suffixes) == ("b", None)
    assert split_target("sealbox.internal", "/b/k", suffixes) == ("b", "k")
    # a host that only ends in the suffix's text is not under it
    assert split_target("bsealbox.internal", "/b/k", suffixes) == ("b", "k")


def test_no_virtual_hosting_without_suffixes() -> None:
    assert split_target("b.localhost", "/x/k", ()) == ("x", "k")


B, K = "bucket", "key"


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "headers", "op"),
    [
        ("GET", None, None, {}, {}, "ListBuckets"),
        ("PUT", B, None, {}, {}, "CreateBucket"),
        ("HEAD", B, None, {}, {}, "HeadBucket"),
        ("DELETE", B, None, {}, {}, "DeleteBucket"),
        ("GET", B, None, {"location": ""}, {}, "GetBucketLocation"),
        ("GET", B, None, {"tagging": ""}, {}, "GetBucketTagging"),
        ("PUT", B, None, {"tagging": ""}, {}, "PutBucketTagging"),
        ("DELETE", B, None, {"tagging": ""}, {}, "DeleteBucketTagging"),
        ("GET", B, None, {"policy": ""}, {}, "GetBucketPolicy"),
        ("PUT", B, None, {"policy": ""}, {}, "PutBucketPolicy"),
        ("DELETE", B, None, {"policy": ""}, {}, "DeleteBucketPolicy"),
        ("GET", B, None, {"policyStatus": ""}, {}, "GetBucketPolicyStatus"),
        ("GET", B, None, {"encryption": ""}, {}, "GetBucketEncryption"),
        ("PUT", B, None, {"encryption": ""}, {}, "PutBucketEncryption"),
        ("DELETE", B, None, {"encryption": ""}, {}, "DeleteBucketEncryption"),
        ("GET", B, None, {"publicAccessBlock": ""}, {}, "GetPublicAccessBlock"),
        ("PUT", B, None, {"publicAccessBlock": ""}, {}, "PutPublicAccessBlock"),
        ("DELETE", B, None, {"publicAccessBlock": ""}, {}, "DeletePublicAccessBlock"),
        ("GET", B, None, {"versioning": ""}, {}, "GetBucketVersioning"),
        ("PUT", B, None, {"versioning": ""}, {}, "PutBucketVersioning"),
        ("GET", B, None, {"acl": ""}, {}, "GetBucketAcl"),
        ("PUT", B, None, {"acl": ""}, {}, "PutBucketAcl"),
        ("GET", B, None, {"ownershipControls": ""}, {}, "GetBucketOwnershipControls"),
        ("GET", B, None, {}, {}, "ListObjects"),
        ("GET", B, None, {"prefix": "a/", "max-keys": "5"}, {}, "ListObjects"),
        ("GET", B, None, {"list-type": "2", "prefix": "a/"}, {}, "ListObjectsV2"),
        ("GET", B, None, {"versions": "", "prefix": "a"}, {}, "ListObjectVersions"),
        ("GET", B, None, {"uploads": ""}, {}, "ListMultipartUploads"),
        ("POST", B, None, {"delete": ""}, {}, "DeleteObjects"),
        ("PUT", B, K, {}, {}, "PutObject"),
        ("PUT", B, K, {}, COPY, "CopyObject"),
        ("GET", B, K, {}, {}, "GetObject"),
        ("GET", B, K, {"versionId": "v1", "response-content-type": "a/b"}, {}, "GetObject"),
        ("GET", B, K, {"partNumber": "2"}, {}, "GetObject"),
        ("HEAD", B, K, {}, {}, "HeadObject"),
        ("HEAD", B, K, {"partNumber": "1"}, {}, "HeadObject"),
        ("DELETE", B, K, {}, {}, "DeleteObject"),
        ("DELETE", B, K, {"versionId": "v1"}, {}, "DeleteObject"),
        ("GET", B, K, {"attributes": ""}, {}, "GetObjectAttributes"),
        ("GET", B, K, {"tagging": ""}, {}, "GetObjectTagging"),
        ("PUT", B, K, {"tagging": ""}, {}, "PutObjectTagging"),
        ("DELETE", B, K, {"tagging": ""}, {}, "DeleteObjectTagging"),
        ("GET", B, K, {"acl": ""}, {}, "GetObjectAcl"),
        ("PUT", B, K, {"acl": ""}, {}, "PutObjectAcl"),
        ("GET", B, None, {"lifecycle": ""}, {}, "GetBucketLifecycleConfiguration"),
        ("POST", B, K, {"uploads": ""}, {}, "CreateMultipartUpload"),
        ("PUT", B, K, {"partNumber": "1", "uploadId": "u"}, {}, "UploadPart"),
        ("PUT", B, K, {"partNumber": "1", "uploadId": "u"}, COPY, "UploadPartCopy"),
        ("POST", B, K, {"uploadId": "u"}, {}, "CompleteMultipartUpload"),
        ("DELETE", B, K, {"uploadId": "u"}, {}, "AbortMultipartUpload"),
        ("GET", B, K, {"uploadId": "u", "max-parts": "3"}, {}, "ListParts"),
        ("PUT", B, K, {"encryption": ""}, {}, "UpdateObjectEncryption"),
        ("put", B, K, {}, {}, "PutObject"),
    ],
)
def test_identify(
    method: str,
    bucket: str | None,
    key: str | None,
    query: dict[str, str],
    headers: dict[str, str],
    op: str,
) -> None:
    assert identify(method, bucket, key, query, headers) == op


def test_every_route_is_a_botocore_operation_with_that_method() -> None:
    s3 = load_service("s3")
    cases = [
        ("GET", None, None, {}),
        ("PUT", B, None, {"encryption": ""}),
        ("PUT", B, K, {"encryption": ""}),
        ("POST", B, K, {"uploads": ""}),
        ("GET", B, None, {"list-type": "2"}),
    ]
    for method, bucket, key, query in cases:
        op = s3.operation_model(identify(method, bucket, key, query, {}))
        assert op.http["method"] == method


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "fragment"),
    [
        ("PUT", None, None, {}, "PUT with no subresource on the service"),
        ("GET", B, None, {"cors": ""}, "GET with ?cors on a bucket"),
        ("PUT", B, None, {"lifecycle": ""}, "PUT with ?lifecycle on a bucket"),
        ("POST", B, None, {}, "POST with no subresource on a bucket"),
        ("GET", B, K, {"retention": ""}, "GET with ?retention on an object"),
        ("POST", B, K, {"restore": ""}, "POST with ?restore on an object"),
        ("POST", B, K, {"select": "", "select-type": "2"}, "POST with ?select on an object"),
        ("POST", B, K, {}, "POST with no subresource on an object"),
        ("GET", B, None, {"tagging": "", "acl": ""}, "GET with ?tagging&acl on a bucket"),
        ("PATCH", B, K, {}, "PATCH with no subresource on an object"),
        ("GET", B, None, {"encryption": ""} | {"website": ""}, "?encryption&website"),
    ],
)
def test_unknown_routes_are_not_implemented(
    method: str, bucket: str | None, key: str | None, query: dict[str, str], fragment: str
) -> None:
    with pytest.raises(S3NotImplemented) as info:
        identify(method, bucket, key, query, {})
    err = info.value
    assert isinstance(err, ClientError)
    assert err.code == "NotImplemented"
    assert err.http_status == 501
    assert fragment in err.message
