"""The REST-XML (S3) codec against botocore's own serializer, parser and boto3 client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError as BotoClientError
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from defusedxml.ElementTree import (  # type: ignore[import-untyped,unused-ignore]
    fromstring as safe_fromstring,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.errors import AwsError
from sealbox.protocols.codec import restxml
from sealbox.protocols.codec.models import load_service
from sealbox.protocols.codec.restxml import (
    S3_NAMESPACE,
    parse_input,
    serialize_error,
    serialize_output,
)
from sealbox.protocols.s3_errors import InvalidArgument, MalformedXML, MissingRequestBodyError
from sealbox.protocols.s3_routing import identify, split_target

S3 = load_service("s3")
NS = "{" + S3_NAMESPACE + "}"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WHEN = datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
SECOND = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
OWNER = {"ID": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}
PARSER = create_parser("rest-xml")


def op(name: str) -> OperationModel:
    return S3.operation_model(name)


# ---------------------------------------------------------------------------- requests


def wire(name: str, params: dict[str, Any], routed: bool = True) -> dict[str, Any]:
    """The keyword arguments of parse_input for the request botocore makes of params."""
    request = create_serializer("rest-xml").serialize_to_request(params, op(name))
    path, _, marker = request["url_path"].partition("?")
    query = parse_qsl(marker, keep_blank_values=True)
    query += parse_qsl(urlencode(request["query_string"], doseq=True), keep_blank_values=True)
    headers = {k.lower(): str(v) for k, v in request["headers"].items()}
    bucket, key = split_target("localhost:4566", unquote(path))
    if routed:
        assert identify(request["method"], bucket, key, dict(query), headers) == name
    uri = {"Bucket": bucket} if key is None else {"Bucket": bucket, "Key": key}
    body = request["body"]
    return {"uri_params": uri, "query": query, "headers": headers, "body": body or None}


def roundtrip_input(name: str, params: dict[str, Any], routed: bool = True) -> dict[str, Any]:
    return parse_input(op(name), **wire(name, params, routed))


def test_put_object_headers_metadata_and_sse() -> None:
    params = {
        "Bucket": "my-bucket",
        "Key": "dir/a key+with%odd&chars.txt",
        "Body": b"hello",
        "ContentLength": 5,
        "ContentType": "text/plain",
        "Metadata": {"Owner": "alice", "x-Trace": "1 2"},
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY_ARN,
        "SSEKMSEncryptionContext": base64.b64encode(b'{"k":"v"}').decode(),
        "BucketKeyEnabled": True,
        "Expires": SECOND,
        "ObjectLockRetainUntilDate": SECOND + timedelta(days=1),
        "Tagging": "a=1&b=2",
        "StorageClass": "STANDARD",
    }
    parsed = roundtrip_input("PutObject", params)
    expected = {k: v for k, v in params.items() if k != "Body"}
    expected["Metadata"] = {"owner": "alice", "x-trace": "1 2"}  # S3 lower-cases them
    assert parsed == expected


def test_put_object_body_is_left_to_the_endpoint() -> None:
    kwargs = wire("PutObject", {"Bucket": "b", "Key": "k", "Body": b"<not xml"})
    assert parse_input(op("PutObject"), **kwargs) == {"Bucket": "b", "Key": "k"}


def test_delete_objects() -> None:
    params = {
        "Bucket": "b",
        "Delete": {
            "Objects": [
                {"Key": "a"},
                {"Key": "b <&>", "VersionId": "v1"},
                {"Key": "c", "ETag": '"e"', "Size": 3, "LastModifiedTime": SECOND},
            ],
            "Quiet": True,
        },
        "BypassGovernanceRetention": False,
    }
    assert roundtrip_input("DeleteObjects", params) == params


def test_complete_multipart_upload() -> None:
    params = {
        "Bucket": "b",
        "Key": "big/file.bin",
        "UploadId": "upload-1",
        "MultipartUpload": {
            "Parts": [
                {"ETag": '"etag1"', "PartNumber": 1, "ChecksumCRC32": "AAAAAA=="},
                {"ETag": '"etag2"', "PartNumber": 2},
            ]
        },
        "MpuObjectSize": 10485760,
    }
    assert roundtrip_input("CompleteMultipartUpload", params) == params


def test_put_bucket_encryption() -> None:
    params = {
        "Bucket": "b",
        "ServerSideEncryptionConfiguration": {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": KEY_ARN,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    }
    assert roundtrip_input("PutBucketEncryption", params) == params


def test_put_public_access_block() -> None:
    params = {
        "Bucket": "b",
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": False,
        },
    }
    assert roundtrip_input("PutPublicAccessBlock", params) == params


def test_list_objects_v2_query() -> None:
    params = {
        "Bucket": "b",
        "Prefix": "photos/2026/",
        "Delimiter": "/",
        "MaxKeys": 250,
        "ContinuationToken": "tok/en+=",
        "StartAfter": "photos/2026/a",
        "FetchOwner": True,
        "EncodingType": "url",
    }
    assert roundtrip_input("ListObjectsV2", params) == params


@pytest.mark.parametrize(
    ("name", "params"),
    [
        (
            "CreateBucket",
            {
                "Bucket": "b",
                "ACL": "private",
                "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
                "ObjectLockEnabledForBucket": True,
            },
        ),
        ("CreateBucket", {"Bucket": "b"}),
        (
            "PutBucketTagging",
            {"Bucket": "b", "Tagging": {"TagSet": [{"Key": "env", "Value": "prod"}]}},
        ),
        (
            "PutObjectTagging",
            {"Bucket": "b", "Key": "k", "VersionId": "v", "Tagging": {"TagSet": []}},
        ),
        (
            "PutBucketVersioning",
            {
                "Bucket": "b",
                "VersioningConfiguration": {"Status": "Enabled", "MFADelete": "Disabled"},
            },
        ),
        ("PutBucketPolicy", {"Bucket": "b", "Policy": '{"Version":"2012-10-17","é":1}'}),
        (
            "GetObjectAttributes",
            {
                "Bucket": "b",
                "Key": "k",
                "ObjectAttributes": ["ETag", "ObjectParts", "ObjectSize"],
                "MaxParts": 10,
                "PartNumberMarker": 2,
            },
        ),
        ("UploadPart", {"Bucket": "b", "Key": "k", "UploadId": "u", "PartNumber": 3}),
        (
            "UploadPartCopy",
            {
                "Bucket": "b",
                "Key": "k",
                "UploadId": "u",
                "PartNumber": 3,
                "CopySource": "src/key?versionId=1",
                "CopySourceRange": "bytes=0-9",
            },
        ),
        (
            "CopyObject",
            {
                "Bucket": "b",
                "Key": "k",
                "CopySource": "src/key",
                "CopySourceIfModifiedSince": SECOND,
                "MetadataDirective": "REPLACE",
                "Metadata": {"a": "b"},
            },
        ),
        (
            "GetObject",
            {
                "Bucket": "b",
                "Key": "k",
                "Range": "bytes=0-99",
                "IfModifiedSince": SECOND,
                "IfNoneMatch": '"x"',
                "ResponseExpires": SECOND,
                "ResponseContentType": "text/csv",
                "PartNumber": 2,
                "VersionId": "v",
            },
        ),
        (
            "UpdateObjectEncryption",
            {
                "Bucket": "b",
                "Key": "k",
                "ObjectEncryption": {"SSEKMS": {"KMSKeyArn": KEY_ARN, "BucketKeyEnabled": True}},
            },
        ),
        ("ListObjectVersions", {"Bucket": "b", "KeyMarker": "k", "VersionIdMarker": "v"}),
        ("ListMultipartUploads", {"Bucket": "b", "MaxUploads": 7, "Prefix": "p"}),
        ("ListParts", {"Bucket": "b", "Key": "k", "UploadId": "u", "MaxParts": 2}),
        ("AbortMultipartUpload", {"Bucket": "b", "Key": "k", "UploadId": "u"}),
        ("CreateMultipartUpload", {"Bucket": "b", "Key": "k", "ContentType": "a/b"}),
        ("ListBuckets", {"MaxBuckets": 10, "Prefix": "p"}),
        ("HeadObject", {"Bucket": "b", "Key": "k", "IfUnmodifiedSince": SECOND}),
        ("DeleteObject", {"Bucket": "b", "Key": "k", "VersionId": "v", "IfMatchSize": 4}),
    ],
)
def test_requests_parse_to_the_params_botocore_sent(name: str, params: dict[str, Any]) -> None:
    expected = dict(params)
    if "Metadata" in expected:
        expected["Metadata"] = {k.lower(): v for k, v in expected["Metadata"].items()}
    assert roundtrip_input(name, params) == expected


def test_list_buckets_has_no_uri_params() -> None:
    assert parse_input(op("ListBuckets"), uri_params={}, query=[], headers={}, body=None) == {}


def test_repeated_query_value_takes_the_first() -> None:
    query = [("max-keys", "3"), ("max-keys", "x")]
    parsed = parse_input(
        op("ListObjects"), uri_params={"Bucket": "b"}, query=query, headers={}, body=None
    )
    assert parsed == {"Bucket": "b", "MaxKeys": 3}


def test_quoted_header_list_items() -> None:
    headers = {"x-amz-object-attributes": 'ETag, "a,b", "say \\"hi\\"" ,ObjectSize'}
    parsed = parse_input(
        op("GetObjectAttributes"),
        uri_params={"Bucket": "b", "Key": "k"},
        query=[],
        headers=headers,
        body=None,
    )
    assert parsed["ObjectAttributes"] == ["ETag", "a,b", 'say "hi"', "ObjectSize"]


def test_header_timestamps_accept_rfc1123_and_iso8601() -> None:
    for text in ("Wed, 25 Nov 2026 10:00:00 GMT", "2026-11-25T10:00:00Z", "2026-11-25T11:00+01:00"):
        parsed = parse_input(
            op("PutObject"),
            uri_params={"Bucket": "b", "Key": "k"},
            query=[],
            headers={"expires": text},
            body=None,
        )
        assert parsed["Expires"] == SECOND
        assert parsed["Expires"].tzinfo is UTC


def test_xml_body_without_namespace_and_with_whitespace() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
    <Delete>
      <!-- a comment -->
      <Object> <Key> spaced key </Key> </Object>
      <Quiet> true </Quiet>
    </Delete>"""
    parsed = parse_input(
        op("DeleteObjects"), uri_params={"Bucket": "b"}, query=[], headers={}, body=body
    )
    assert parsed["Delete"] == {"Objects": [{"Key": " spaced key "}], "Quiet": True}


def test_xml_attribute_members_are_read() -> None:
    body = (
        b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<AccessControlList><Grant>"
        b'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
        b"<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>"
        b"<Permission>READ</Permission></Grant></AccessControlList>"
        b"<Owner><ID>o</ID></Owner></AccessControlPolicy>"
    )
    parsed = parse_input(
        op("PutBucketAcl"), uri_params={"Bucket": "b"}, query=[], headers={}, body=body
    )
    grant = parsed["AccessControlPolicy"]["Grants"][0]
    assert grant["Grantee"] == {
        "Type": "Group",
        "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
    }
    assert parsed == roundtrip_input("PutBucketAcl", parsed, routed=False)


def test_body_members_without_a_payload() -> None:
    params = {
        "Bucket": "b",
        "Key": "data.csv",
        "Expression": "SELECT * FROM S3Object s WHERE s.a < 3",
        "ExpressionType": "SQL",
        "InputSerialization": {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": "NONE"},
        "OutputSerialization": {"JSON": {"RecordDelimiter": "\n"}},
        "RequestProgress": {"Enabled": True},
        "ScanRange": {"Start": 0, "End": 100},
    }
    assert roundtrip_input("SelectObjectContent", params, routed=False) == params


# A made-up REST-XML service for what S3's model does not use: querystring maps, JSON
# headers, flattened maps, recursive shapes, doubles and blobs in XML.
SYNTH = ServiceModel(
    {
        "metadata": {
            "protocol": "rest-xml",
            "apiVersion": "2020-01-01",
            "endpointPrefix": "synth",
            "serviceId": "Synth",
            "signatureVersion": "v4",
        },
        "operations": {
            "Op": {
                "name": "Op",
                "http": {"method": "POST", "requestUri": "/{Id}", "responseCode": 201},
                "input": {"shape": "OpInput"},
                "output": {"shape": "OpOutput"},
            }
        },
        "shapes": {
            "OpInput": {
                "type": "structure",
                "required": ["Id"],
                "members": {
                    "Id": {"shape": "Str", "location": "uri", "locationName": "Id"},
                    "Tags": {"shape": "StrList", "location": "querystring", "locationName": "tag"},
                    "Extra": {"shape": "StrMap", "location": "querystring"},
                    "Doc": {
                        "shape": "Str",
                        "location": "header",
                        "locationName": "x-doc",
                        "jsonvalue": True,
                    },
                    "Ratio": {"shape": "Dbl", "location": "header", "locationName": "x-ratio"},
                    "Node": {"shape": "Node", "locationName": "Node"},
                },
                "payload": "Node",
            },
            "OpOutput": {
                "type": "structure",
                "members": {
                    "Doc": {
                        "shape": "Str",
                        "location": "header",
                        "locationName": "x-doc",
                        "jsonvalue": True,
                    },
                    "Tags": {"shape": "StrList", "location": "header", "locationName": "x-tags"},
                    "Node": {"shape": "Node"},
                },
                "payload": "Node",
            },
            "Node": {
                "type": "structure",
                "members": {
                    "Name": {"shape": "Str"},
                    "Weight": {"shape": "Dbl"},
                    "Data": {"shape": "Blob"},
                    "Children": {"shape": "NodeList"},
                    "Attrs": {"shape": "FlatMap", "locationName": "Attr"},
                    "Props": {"shape": "StrMap"},
                },
            },
            "NodeList": {"type": "list", "member": {"shape": "Node", "locationName": "Node"}},
            "FlatMap": {
                "type": "map",
                "key": {"shape": "Str", "locationName": "K"},
                "value": {"shape": "Str", "locationName": "V"},
                "flattened": True,
            },
            "StrMap": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Str"}},
            "StrList": {"type": "list", "member": {"shape": "Str"}},
            "Str": {"type": "string"},
            "Dbl": {"type": "double"},
            "Blob": {"type": "blob"},
        },
    },
    service_name="synth",
)
NODE = {
    "Name": "root <&>",
    "Weight": 0.5,
    "Data": b"\x00\xffbytes",
    "Children": [
        {"Name": "leaf", "Children": [], "Attrs": {"a": "1", "b": "2"}},
        {"Name": "other", "Props": {"x": "y"}, "Weight": -2.0},
    ],
    "Attrs": {"k": "v"},
}


def test_generic_rest_xml_request() -> None:
    params = {
        "Id": "node-1",
        "Tags": ["a", "b,c"],
        "Extra": {"free": "form", "other": ""},
        "Doc": {"nested": [1, "two", None]},
        "Ratio": 1.25,
        "Node": NODE,
    }
    operation = SYNTH.operation_model("Op")
    request = create_serializer("rest-xml").serialize_to_request(params, operation)
    query = parse_qsl(urlencode(request["query_string"], doseq=True), keep_blank_values=True)
    parsed = parse_input(
        operation,
        uri_params={"Id": unquote(request["url_path"][1:])},
        query=query,
        headers={k.lower(): v for k, v in request["headers"].items()},
        body=request["body"],
    )
    assert parsed == params


def test_header_lists_quote_items_with_commas_or_quotes() -> None:
    # botocore's serializer quotes them too; its parser splits on every comma.
    tags = ["x", 'say "hi", twice']
    _, headers, _ = serialize_output(SYNTH.operation_model("Op"), {"Tags": tags})
    assert headers == [(b"x-tags", b'x,"say \\"hi\\", twice"')]


def test_generic_rest_xml_response() -> None:
    operation = SYNTH.operation_model("Op")
    result = {"Doc": {"ok": True}, "Tags": ["x", "y z"], "Node": NODE}
    status, headers, body = serialize_output(operation, result)
    assert status == 201
    assert (b"x-doc", base64.b64encode(b'{"ok":true}')) in headers
    assert root_of(body) == NS + "Node"
    response = {
        "status_code": status,
        "headers": HeadersDict({k.decode(): v.decode() for k, v in headers}),
        "body": body,
    }
    parsed = PARSER.parse(response, operation.output_shape)
    parsed.pop("ResponseMetadata")
    assert parsed == result


# ---------------------------------------------------------------------------- request errors


def parse_body(name: str, body: bytes, uri: dict[str, str] | None = None) -> dict[str, Any]:
    return parse_input(op(name), uri_params=uri or {"Bucket": "b"}, query=[], headers={}, body=body)


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",  # not well-formed
        b"not xml at all",
        b"<Wrong><Object><Key>a</Key></Object></Wrong>",  # wrong root
        b"<Delete><Object><Key>a</Key></Object><Quiet>yes</Quiet></Delete>",  # bad boolean
        b"<Delete><Quiet>true</Quiet></Delete>",  # Objects is required
        b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",  # Key is required
        b"<Delete><Object><Key><b>a</b></Key></Object></Delete>",  # markup in a scalar
        b'<!DOCTYPE Delete [<!ENTITY x "xx">]><Delete><Object><Key>&x;</Key></Object></Delete>',
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;">]><Delete><Object><Key>&lol2;</Key></Object></Delete>',
        b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><Delete>&e;</Delete>',
        b"\xff\xfe<Delete/>",
    ],
)
def test_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML) as info:
        parse_body("DeleteObjects", body)
    err = info.value
    assert (err.code, err.http_status) == ("MalformedXML", 400)
    assert err.message == (
        "The XML you provided was not well-formed or did not validate against our published schema"
    )


@pytest.mark.parametrize(
    ("name", "body"),
    [
        (
            "CompleteMultipartUpload",
            b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber></Part>"
            b"</CompleteMultipartUpload>",
        ),
        (
            "CompleteMultipartUpload",
            b"<CompleteMultipartUpload><Part><PartNumber>99999999999</PartNumber></Part>"
            b"</CompleteMultipartUpload>",
        ),
        ("PutBucketTagging", b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>"),
        ("PutBucketTagging", b""),  # a required document
        ("PutBucketTagging", b"  \n"),
        ("DeleteObjects", b""),
    ],
)
def test_invalid_documents(name: str, body: bytes) -> None:
    uri = {"Bucket": "b", "Key": "k"}
    with pytest.raises(MalformedXML):
        parse_input(op(name), uri_params=uri, query=[("uploadId", "u")], headers={}, body=body)


def test_empty_body_leaves_an_optional_payload_out() -> None:
    for body in (b"", None):
        assert parse_body("CreateBucket", body) == {"Bucket": "b"}  # type: ignore[arg-type]
    multipart = parse_input(
        op("CompleteMultipartUpload"),
        uri_params={"Bucket": "b", "Key": "k"},
        query=[("uploadId", "u")],
        headers={},
        body=b"",
    )
    assert multipart == {"Bucket": "b", "Key": "k", "UploadId": "u"}


def test_empty_policy_is_a_missing_body() -> None:
    with pytest.raises(MissingRequestBodyError) as info:
        parse_body("PutBucketPolicy", b"")
    assert info.value.code == "MissingRequestBodyError"
    with pytest.raises(InvalidArgument):
        parse_body("PutBucketPolicy", b"\xff{}")


@pytest.mark.parametrize(
    ("name", "query", "headers", "argument"),
    [
        ("ListObjectsV2", [("max-keys", "abc")], {}, "max-keys"),
        ("ListObjectsV2", [("max-keys", "")], {}, "max-keys"),
        ("ListObjectsV2", [("max-keys", "2147483648")], {}, "max-keys"),
        ("ListObjectsV2", [("fetch-owner", "maybe")], {}, "fetch-owner"),
        (
            "GetObjectAttributes",
            [],
            {"x-amz-max-parts": "ten", "x-amz-object-attributes": "ETag"},
            "x-amz-max-parts",
        ),
        ("PutObject", [], {"content-length": "-x"}, "content-length"),
        (
            "PutObject",
            [],
            {"x-amz-server-side-encryption-bucket-key-enabled": "yes"},
            "x-amz-server-side-encryption-bucket-key-enabled",
        ),
        ("PutObject", [], {"expires": "next tuesday"}, "expires"),
        (
            "PutObject",
            [],
            {"x-amz-object-lock-retain-until-date": "2026-13-45"},
            "x-amz-object-lock-retain-until-date",
        ),
        ("GetObject", [("partNumber", "1.5")], {}, "partNumber"),
        ("GetObject", [("response-expires", "soon")], {}, "response-expires"),
    ],
)
def test_bad_scalar_values_are_invalid_arguments(
    name: str, query: list[tuple[str, str]], headers: dict[str, str], argument: str
) -> None:
    uri = {"Bucket": "b", "Key": "k"}
    with pytest.raises(InvalidArgument) as info:
        parse_input(op(name), uri_params=uri, query=query, headers=headers, body=None)
    err = info.value
    assert (err.code, err.http_status) == ("InvalidArgument", 400)
    assert argument in err.message
    assert err.details()["ArgumentName"] == argument


def test_invalid_argument_details_show_the_value() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_input(
            op("ListObjectsV2"),
            uri_params={"Bucket": "b"},
            query=[("max-keys", "abc")],
            headers={},
            body=None,
        )
    assert info.value.message == "Provided max-keys not an integer or within integer range"
    assert info.value.details() == {"ArgumentName": "max-keys", "ArgumentValue": "abc"}


def test_invalid_conditional_dates_are_ignored() -> None:
    parsed = parse_input(
        op("GetObject"),
        uri_params={"Bucket": "b", "Key": "k"},
        query=[],
        headers={"if-modified-since": "garbage", "if-unmodified-since": "also garbage"},
        body=None,
    )
    assert parsed == {"Bucket": "b", "Key": "k"}


def test_missing_required_parameter() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_input(
            op("UploadPart"),
            uri_params={"Bucket": "b", "Key": "k"},
            query=[("uploadId", "u")],
            headers={},
            body=None,
        )
    assert info.value.argument_name == "partNumber"


# ---------------------------------------------------------------------------- responses


def parse_response(name: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    response = {
        "status_code": status,
        "headers": HeadersDict({k.decode(): v.decode("latin-1") for k, v in headers}),
        "body": body,
    }
    parsed = PARSER.parse(response, op(name).output_shape)
    parsed.pop("ResponseMetadata")
    return parsed


def roundtrip_output(name: str, result: dict[str, Any]) -> Any:
    return parse_response(name, *serialize_output(op(name), result))


def root_of(body: bytes) -> str:
    tag: str = safe_fromstring(body).tag
    return tag


def test_list_objects_v2() -> None:
    result = {
        "IsTruncated": True,
        "Contents": [
            {
                "Key": "photos/a <&> 'b\".jpg",
                "LastModified": WHEN,
                "ETag": '"0cc175b9c0f1b6a831c399e269772661"',
                "Size": 1,
                "StorageClass": "STANDARD",
                "Owner": OWNER,
                "ChecksumAlgorithm": ["CRC32"],
            },
            {"Key": "photos/b", "LastModified": WHEN, "Size": 0, "ETag": '"e"'},
        ],
        "Name": "bucket",
        "Prefix": "photos/",
        "Delimiter": "/",
        "MaxKeys": 2,
        "CommonPrefixes": [{"Prefix": "photos/2025/"}, {"Prefix": "photos/2026/"}],
        "KeyCount": 4,
        "ContinuationToken": "c",
        "NextContinuationToken": "n",
        "StartAfter": "s",
    }
    status, headers, body = serialize_output(op("ListObjectsV2"), result)
    assert status == 200
    assert (b"content-type", b"application/xml") in headers
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns=')
    assert root_of(body) == NS + "ListBucketResult"
    assert b"<LastModified>2026-11-25T10:00:00.123Z</LastModified>" in body
    assert b"<Contents>" in body and b"<ObjectList>" not in body  # flattened
    assert parse_response("ListObjectsV2", status, headers, body) == result


def test_list_objects_v1_and_none_values() -> None:
    result = {
        "IsTruncated": False,
        "Marker": "",
        "NextMarker": None,
        "Contents": [],
        "Name": "bucket",
        "MaxKeys": 1000,
    }
    status, headers, body = serialize_output(op("ListObjects"), result)
    assert b"NextMarker" not in body and b"Contents" not in body
    assert parse_response("ListObjects", status, headers, body) == {
        "IsTruncated": False,
        "Marker": "",
        "Name": "bucket",
        "MaxKeys": 1000,
    }


def test_list_object_versions() -> None:
    result = {
        "IsTruncated": False,
        "KeyMarker": "",
        "Name": "bucket",
        "Prefix": "",
        "MaxKeys": 1000,
        "Versions": [
            {
                "ETag": '"e1"',
                "Size": 10,
                "StorageClass": "STANDARD",
                "Key": "k",
                "VersionId": "v2",
                "IsLatest": False,
                "LastModified": WHEN,
                "Owner": OWNER,
            },
            {"Key": "j", "VersionId": "null", "IsLatest": True, "LastModified": WHEN, "Size": 0},
        ],
        "DeleteMarkers": [
            {"Owner": OWNER, "Key": "k", "VersionId": "v3", "IsLatest": True, "LastModified": WHEN}
        ],
    }
    status, headers, body = serialize_output(op("ListObjectVersions"), result)
    assert root_of(body) == NS + "ListVersionsResult"
    assert body.count(b"<Version>") == 2 and body.count(b"<DeleteMarker>") == 1
    assert parse_response("ListObjectVersions", status, headers, body) == result


def test_list_parts() -> None:
    result = {
        "AbortDate": SECOND,
        "AbortRuleId": "rule",
        "Bucket": "b",
        "Key": "k",
        "UploadId": "u",
        "PartNumberMarker": 0,
        "NextPartNumberMarker": 2,
        "MaxParts": 2,
        "IsTruncated": True,
        "Parts": [
            {"PartNumber": 1, "LastModified": WHEN, "ETag": '"a"', "Size": 5242880},
            {"PartNumber": 2, "LastModified": WHEN, "ETag": '"b"', "Size": 1},
        ],
        "Initiator": {"ID": "i", "DisplayName": "me"},
        "Owner": OWNER,
        "StorageClass": "STANDARD",
    }
    status, headers, body = serialize_output(op("ListParts"), result)
    assert root_of(body) == NS + "ListPartsResult"
    assert (b"x-amz-abort-date", b"Wed, 25 Nov 2026 10:00:00 GMT") in headers
    assert parse_response("ListParts", status, headers, body) == result


def test_delete_result() -> None:
    result = {
        "Deleted": [
            {"Key": "a", "VersionId": "v", "DeleteMarker": True, "DeleteMarkerVersionId": "d"},
            {"Key": "b"},
        ],
        "Errors": [{"Key": "c", "Code": "AccessDenied", "Message": "Access Denied"}],
    }
    status, headers, body = serialize_output(op("DeleteObjects"), result)
    assert root_of(body) == NS + "DeleteResult"
    assert body.count(b"<Deleted>") == 2 and body.count(b"<Error>") == 1
    assert parse_response("DeleteObjects", status, headers, body) == result


@pytest.mark.parametrize(
    ("name", "result", "root"),
    [
        (
            "CopyObject",
            {
                "CopyObjectResult": {"ETag": '"e"', "LastModified": WHEN},
                "VersionId": "v",
                "CopySourceVersionId": "cv",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": KEY_ARN,
                "BucketKeyEnabled": True,
            },
            "CopyObjectResult",
        ),
        (
            "UploadPartCopy",
            {"CopyPartResult": {"ETag": '"e"', "LastModified": WHEN}},
            "CopyPartResult",
        ),
        (
            "GetObjectAttributes",
            {
                "LastModified": SECOND,
                "VersionId": "v",
                "ETag": "e",
                "Checksum": {"ChecksumCRC32": "AAAAAA==", "ChecksumType": "FULL_OBJECT"},
                "ObjectParts": {
                    "TotalPartsCount": 2,
                    "PartNumberMarker": 0,
                    "NextPartNumberMarker": 1,
                    "MaxParts": 1,
                    "IsTruncated": True,
                    "Parts": [{"PartNumber": 1, "Size": 5}],
                },
                "StorageClass": "STANDARD",
                "ObjectSize": 10,
            },
            "GetObjectAttributesResponse",
        ),
        (
            "CreateMultipartUpload",
            {"Bucket": "b", "Key": "k", "UploadId": "u", "ServerSideEncryption": "AES256"},
            "InitiateMultipartUploadResult",
        ),
        (
            "CompleteMultipartUpload",
            {
                "Location": "http://localhost/b/k",
                "Bucket": "b",
                "Key": "k",
                "ETag": '"e-2"',
                "VersionId": "v",
            },
            "CompleteMultipartUploadResult",
        ),
        (
            "ListBuckets",
            {
                "Buckets": [
                    {"Name": "a", "CreationDate": WHEN, "BucketRegion": "us-east-1"},
                    {"Name": "b", "CreationDate": WHEN},
                ],
                "Owner": OWNER,
            },
            "ListAllMyBucketsResult",
        ),
        (
            "ListMultipartUploads",
            {
                "Bucket": "b",
                "MaxUploads": 1000,
                "IsTruncated": False,
                "Uploads": [{"UploadId": "u", "Key": "k", "Initiated": WHEN, "Owner": OWNER}],
            },
            "ListMultipartUploadsResult",
        ),
        (
            "GetBucketTagging",
            {"TagSet": [{"Key": "env", "Value": "prod & <test>"}]},
            "Tagging",
        ),
        ("GetObjectTagging", {"VersionId": "v", "TagSet": []}, "Tagging"),
        (
            "GetBucketVersioning",
            {"Status": "Enabled", "MFADelete": "Disabled"},
            "VersioningConfiguration",
        ),
        ("GetBucketVersioning", {}, "VersioningConfiguration"),
        (
            "GetBucketEncryption",
            {
                "ServerSideEncryptionConfiguration": {
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": KEY_ARN,
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                }
            },
            "ServerSideEncryptionConfiguration",
        ),
        (
            "GetPublicAccessBlock",
            {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": False,
                    "RestrictPublicBuckets": False,
                }
            },
            "PublicAccessBlockConfiguration",
        ),
        ("GetBucketPolicyStatus", {"PolicyStatus": {"IsPublic": False}}, "PolicyStatus"),
        (
            "GetBucketAcl",
            {
                "Owner": OWNER,
                "Grants": [
                    {
                        "Grantee": {"ID": OWNER["ID"], "Type": "CanonicalUser"},
                        "Permission": "FULL_CONTROL",
                    }
                ],
            },
            "AccessControlPolicy",
        ),
    ],
)
def test_outputs_parse_back_through_botocore(name: str, result: dict[str, Any], root: str) -> None:
    status, headers, body = serialize_output(op(name), result)
    assert status == 200
    assert root_of(body) == NS + root
    assert parse_response(name, status, headers, body) == result


def test_get_bucket_acl_declares_the_xsi_prefix() -> None:
    result = {"Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "i"}, "Permission": "READ"}]}
    _, _, body = serialize_output(op("GetBucketAcl"), result)
    assert (
        b'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        in body
    )


def test_head_object_headers() -> None:
    result = {
        "LastModified": SECOND,
        "ContentLength": 1234,
        "ETag": '"abc"',
        "ContentType": "image/png",
        "Metadata": {"owner": "alice", "trace-id": "1"},
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY_ARN,
        "BucketKeyEnabled": True,
        "VersionId": "v1",
        "DeleteMarker": False,
        "PartsCount": 3,
        "ObjectLockRetainUntilDate": SECOND,
        "AcceptRanges": "bytes",
    }
    status, headers, body = serialize_output(op("HeadObject"), result)
    assert (status, body) == (200, b"")
    assert (b"last-modified", b"Wed, 25 Nov 2026 10:00:00 GMT") in headers
    assert (b"x-amz-meta-owner", b"alice") in headers
    assert (b"x-amz-server-side-encryption-bucket-key-enabled", b"true") in headers
    assert (b"x-amz-object-lock-retain-until-date", b"2026-11-25T10:00:00.000Z") in headers
    assert all(k == k.lower() for k, _ in headers)
    assert parse_response("HeadObject", status, headers, body) == result


def test_get_object_body_is_left_to_the_endpoint() -> None:
    status, headers, body = serialize_output(
        op("GetObject"), {"Body": b"data", "ContentLength": 4, "ContentRange": "bytes 0-3/9"}
    )
    assert (status, body) == (200, b"")
    assert headers == [(b"content-length", b"4"), (b"content-range", b"bytes 0-3/9")]


def test_get_bucket_policy_is_the_raw_body() -> None:
    policy = '{"Version":"2012-10-17","Statement":[{"Sid":"é<&>"}]}'
    status, headers, body = serialize_output(op("GetBucketPolicy"), {"Policy": policy})
    assert (status, headers, body) == (200, [], policy.encode())
    assert parse_response("GetBucketPolicy", status, headers, body) == {"Policy": policy}


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("DeleteObject", 204),
        ("DeleteBucket", 204),
        ("DeleteBucketPolicy", 204),
        ("DeleteObjectTagging", 204),
        ("AbortMultipartUpload", 204),
        ("PutObject", 200),
        ("CreateBucket", 200),
        ("HeadBucket", 200),
    ],
)
def test_status_codes_and_empty_bodies(name: str, status: int) -> None:
    assert serialize_output(op(name), {}) == (status, [], b"")


def test_put_object_output_headers() -> None:
    result = {"ETag": '"e"', "VersionId": "v", "ServerSideEncryption": "AES256", "Size": 5}
    status, headers, body = serialize_output(op("PutObject"), result)
    assert body == b""
    assert parse_response("PutObject", status, headers, body) == result


def test_create_bucket_location_header() -> None:
    status, headers, body = serialize_output(op("CreateBucket"), {"Location": "/b"})
    assert (status, headers, body) == (200, [(b"location", b"/b")], b"")


def test_empty_payload_structure_is_an_empty_body() -> None:
    assert serialize_output(op("GetBucketEncryption"), {}) == (200, [], b"")


def get_bucket_location(result: dict[str, Any]) -> tuple[bytes, Any]:
    _, _, body = serialize_output(op("GetBucketLocation"), result)
    parsed: dict[str, Any] = {"ResponseMetadata": {}}

    class Response:
        raw = object()
        content = body

    botocore.handlers.parse_get_bucket_location(parsed, Response())
    return body, parsed["LocationConstraint"]


def test_get_bucket_location() -> None:
    body, region = get_bucket_location({"LocationConstraint": "us-west-2"})
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"us-west-2</LocationConstraint>"
    )
    assert region == "us-west-2"
    for us_east_1 in ({}, {"LocationConstraint": None}, {"LocationConstraint": ""}):
        body, region = get_bucket_location(us_east_1)
        assert body.endswith(
            b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
        )
        assert region is None


def test_timestamps_are_utc_with_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    for value, text in [
        (datetime(2026, 11, 25, 12, 0, 0, 999999, tzinfo=plus_two), b"2026-11-25T10:00:00.999Z"),
        (datetime(2026, 11, 25, 10, 0, 0), b"2026-11-25T10:00:00.000Z"),  # naive is UTC
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), b"0999-01-02T03:04:05.000Z"),
    ]:
        result = {"Buckets": [{"Name": "b", "CreationDate": value}]}
        _, _, body = serialize_output(op("ListBuckets"), result)
        assert b"<CreationDate>" + text + b"</CreationDate>" in body


def test_text_is_escaped_and_unrepresentable_characters_replaced() -> None:
    key = "a\rb\nc\td & <e> \"f\" 'g' \x00\x1f\ufffe"
    _, _, body = serialize_output(op("ListObjectsV2"), {"Contents": [{"Key": key}]})
    parsed = safe_fromstring(body)
    (text,) = [el.text for el in parsed.iter(NS + "Key")]
    assert text == "a\rb\nc\td & <e> \"f\" 'g' \ufffd\ufffd\ufffd"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40))
def test_keys_round_trip_through_botocore(key: str) -> None:
    representable = not restxml._NOT_XML.search(key)
    result = {"Contents": [{"Key": key}], "Name": "b"}
    parsed = roundtrip_output("ListObjectsV2", result)
    if representable:
        assert parsed == result


def test_wrong_value_types_are_caller_bugs() -> None:
    with pytest.raises(TypeError):
        serialize_output(op("ListObjectsV2"), {"MaxKeys": "1000"})
    with pytest.raises(TypeError):
        serialize_output(op("ListObjectsV2"), {"IsTruncated": 1})
    with pytest.raises(TypeError):
        serialize_output(op("HeadObject"), {"LastModified": "yesterday"})
    with pytest.raises(TypeError):
        serialize_output(op("ListObjectsV2"), {"Name": 5})


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        serialize_output(op("HeadObject"), {"Metadata": {"a": "x\r\nSet-Cookie: y"}})
    with pytest.raises(ValueError, match="header name"):
        serialize_output(op("HeadObject"), {"Metadata": {"a: b": "x"}})
    with pytest.raises(ValueError):
        serialize_output(op("HeadObject"), {"ContentType": "text/plain\n"})


def test_latin1_header_values_round_trip_bytes() -> None:
    # The endpoint decodes request headers as latin-1; the same bytes must go back out.
    raw = "café".encode()
    _, headers, _ = serialize_output(op("HeadObject"), {"Metadata": {"n": raw.decode("latin-1")}})
    assert headers == [(b"x-amz-meta-n", raw)]


# ---------------------------------------------------------------------------- errors


def test_serialize_error() -> None:
    body = serialize_error(
        "NoSuchKey",
        "The specified key does not exist.",
        "4442587FB7D0A2F9",
        {"Key": "a&b<c>", "BucketName": "bucket", "Resource": "/bucket/a&b<c>"},
    )
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
        b"<Key>a&amp;b&lt;c&gt;</Key><BucketName>bucket</BucketName>"
        b"<Resource>/bucket/a&amp;b&lt;c&gt;</Resource>"
        b"<RequestId>4442587FB7D0A2F9</RequestId></Error>"
    )
    parsed = PARSER.parse(
        {
            "status_code": 404,
            "headers": HeadersDict({"x-amz-request-id": "4442587FB7D0A2F9"}),
            "body": body,
        },
        None,
    )
    assert parsed["Error"] == {
        "Code": "NoSuchKey",
        "Message": "The specified key does not exist.",
        "Key": "a&b<c>",
        "BucketName": "bucket",
        "Resource": "/bucket/a&b<c>",
    }


def test_serialize_error_without_extra_and_bad_names() -> None:
    body = serialize_error("MalformedXML", MalformedXML().message, "r")
    assert body.endswith(b"</Message><RequestId>r</RequestId></Error>")
    with pytest.raises(ValueError):
        serialize_error("X", "m", "r", {"bad name": "v"})
    with pytest.raises(ValueError):
        serialize_error("X", "m", "r", {"<x>": "v"})


# ---------------------------------------------------------------------------- caching


def test_operations_are_compiled_once() -> None:
    first = restxml._plan(op("ListObjectsV2"))
    assert restxml._plan(op("ListObjectsV2")) is first


def test_every_operation_compiles() -> None:
    for name in S3.operation_names:
        plan = restxml._plan(S3.operation_model(name))
        assert plan.op.name == name


# ---------------------------------------------------------------------------- boto3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class FakeS3:
    """Answers a real boto3 client's requests through routing and the codec, in-process."""

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}
        self.error: AwsError | None = None
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        parts = urlsplit(request.url)
        bucket, key = split_target(parts.netloc, unquote(parts.path))
        query = parse_qsl(parts.query, keep_blank_values=True)
        headers = {
            k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v
            for k, v in request.headers.items()
        }
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        try:
            name = identify(request.method, bucket, key, dict(query), headers)
            uri = {"Bucket": bucket, "Key": key}
            params = parse_input(
                op(name),
                uri_params={k: v for k, v in uri.items() if v is not None},
                query=query,
                headers=headers,
                body=body,
            )
            self.seen.append((name, params))
            if self.error is not None:
                raise self.error
            status, out_headers, out = serialize_output(op(name), self.result)
        except AwsError as err:
            extra = err.details() if hasattr(err, "details") else None
            status = err.http_status
            out_headers = [(b"content-type", b"application/xml")]
            out = serialize_error(err.code, err.message, "req-1", extra)
        raw_headers = {k.decode(): v.decode("latin-1") for k, v in out_headers}
        raw_headers["x-amz-request-id"] = "req-1"
        return AWSResponse(request.url, status, HeadersDict(raw_headers), _Raw(out))


@pytest.fixture(params=["path", "virtual"])
def s3(request: pytest.FixtureRequest) -> Iterator[tuple[Any, FakeS3]]:
    fake = FakeS3()
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://localhost:4566",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(s3={"addressing_style": request.param}, retries={"max_attempts": 1}),
    )
    client.meta.events.register("before-send.s3", fake)
    yield client, fake
    client.close()


def test_boto3_get_bucket_location(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.result = {"LocationConstraint": "us-west-2"}
    assert client.get_bucket_location(Bucket="bucket")["LocationConstraint"] == "us-west-2"
    fake.result = {}
    assert client.get_bucket_location(Bucket="bucket")["LocationConstraint"] is None
    assert fake.seen[-1] == ("GetBucketLocation", {"Bucket": "bucket"})


def test_boto3_put_object(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.result = {"ETag": '"e"', "VersionId": "v1", "ServerSideEncryption": "aws:kms"}
    response = client.put_object(
        Bucket="bucket",
        Key="dir/my file+1.txt",
        Body=b"hello",
        Metadata={"Owner": "alice"},
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=KEY_ARN,
        SSEKMSEncryptionContext=base64.b64encode(json.dumps({"a": "b"}).encode()).decode(),
    )
    assert response["ETag"] == '"e"' and response["VersionId"] == "v1"
    name, params = fake.seen[-1]
    assert name == "PutObject"
    assert params["Bucket"] == "bucket" and params["Key"] == "dir/my file+1.txt"
    assert params["Metadata"] == {"owner": "alice"}
    assert params["SSEKMSKeyId"] == KEY_ARN
    assert params["ContentLength"] == 5


def test_boto3_list_objects_v2(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.result = {
        "Name": "bucket",
        "Prefix": "a/",
        "KeyCount": 1,
        "MaxKeys": 10,
        "IsTruncated": False,
        "Contents": [{"Key": "a/x", "LastModified": WHEN, "Size": 3, "ETag": '"e"'}],
        "CommonPrefixes": [{"Prefix": "a/b/"}],
    }
    response = client.list_objects_v2(Bucket="bucket", Prefix="a/", Delimiter="/", MaxKeys=10)
    assert response["Contents"][0]["Key"] == "a/x"
    assert response["Contents"][0]["LastModified"] == WHEN
    assert response["CommonPrefixes"] == [{"Prefix": "a/b/"}]
    name, params = fake.seen[-1]
    assert name == "ListObjectsV2"
    assert params["MaxKeys"] == 10 and params["Delimiter"] == "/"


def test_boto3_delete_objects_and_multipart(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.result = {"Deleted": [{"Key": "a"}], "Errors": [{"Key": "b", "Code": "AccessDenied"}]}
    response = client.delete_objects(
        Bucket="bucket", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": False}
    )
    assert response["Deleted"] == [{"Key": "a"}]
    assert response["Errors"] == [{"Key": "b", "Code": "AccessDenied"}]
    assert fake.seen[-1][1]["Delete"] == {"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": False}

    fake.result = {"Bucket": "bucket", "Key": "k", "UploadId": "u1"}
    assert client.create_multipart_upload(Bucket="bucket", Key="k")["UploadId"] == "u1"
    fake.result = {"Bucket": "bucket", "Key": "k", "ETag": '"x-2"'}
    done = client.complete_multipart_upload(
        Bucket="bucket",
        Key="k",
        UploadId="u1",
        MultipartUpload={"Parts": [{"ETag": '"p1"', "PartNumber": 1}]},
    )
    assert done["ETag"] == '"x-2"'
    assert fake.seen[-1] == (
        "CompleteMultipartUpload",
        {
            "Bucket": "bucket",
            "Key": "k",
            "UploadId": "u1",
            "MultipartUpload": {"Parts": [{"ETag": '"p1"', "PartNumber": 1}]},
        },
    )


def test_boto3_head_object_metadata(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.result = {
        "LastModified": SECOND,
        "ContentLength": 5,
        "ETag": '"e"',
        "Metadata": {"owner": "alice"},
    }
    response = client.head_object(Bucket="bucket", Key="k")
    assert response["Metadata"] == {"owner": "alice"}
    assert response["LastModified"] == SECOND
    assert response["ContentLength"] == 5


def test_boto3_sees_s3_errors(s3: tuple[Any, FakeS3]) -> None:
    client, fake = s3
    fake.error = InvalidArgument("Provided max-keys not an integer", "max-keys", "abc")
    with pytest.raises(BotoClientError) as info:
        client.list_objects_v2(Bucket="bucket")
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidArgument"
    assert error["ArgumentName"] == "max-keys"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    fake.error = None
    with pytest.raises(BotoClientError) as info:
        client.get_bucket_cors(Bucket="bucket")
    assert info.value.response["Error"]["Code"] == "NotImplemented"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
