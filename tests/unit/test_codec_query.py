"""The Query codec against botocore's own serializers and parsers (the LocalStack pattern)."""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSRequest
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealbox.errors import (
    AccessDeniedError,
    AwsError,
    ClientError,
    InternalFailure,
    SerializationError,
    UnknownOperationError,
    ValidationError,
)
from sealbox.protocols.codec import query
from sealbox.protocols.codec.models import load_service
from sealbox.protocols.codec.query import (
    EC2,
    QUERY,
    InvalidActionError,
    InvalidQueryParameterError,
    MalformedInputError,
    MissingActionError,
    QueryValidationError,
    operation_for_action,
    parse_form,
    parse_request,
    protocol_of,
    render_error,
    serialize_response,
)

IAM = load_service("iam")
STS = load_service("sts")
EC2_MODEL = load_service("ec2")
ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app/deployer"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/read-only"
POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def op(service: ServiceModel | str, name: str) -> OperationModel:
    model = load_service(service) if isinstance(service, str) else service
    return model.operation_model(name)


def wire_body(operation: OperationModel, params: dict[str, Any]) -> bytes:
    """The form body botocore sends for params (its serializer, then its request encoding)."""
    protocol = operation.service_model.protocol
    # Without client-side validation: botocore checks min constraints (never max) itself.
    serializer = create_serializer(protocol, include_validation=False)
    request = serializer.serialize_to_request(params, operation)
    assert request["body"]["Action"] == operation.name
    prepared = AWSRequest(method="POST", url="https://example.com/", data=request["body"]).prepare()
    body = prepared.body
    assert isinstance(body, str)
    return body.encode("ascii")


def round_trip(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    form = parse_form(wire_body(operation, params), "")
    assert operation_for_action(operation.service_model, form) is operation
    return parse_request(operation, form)


def botocore_parse(operation: OperationModel, body: bytes) -> dict[str, Any]:
    response = {"status_code": 200, "headers": {}, "body": body}
    parser = create_parser(operation.service_model.protocol)
    parsed: dict[str, Any] = parser.parse(response, operation.output_shape)
    meta = parsed.pop("ResponseMetadata")
    assert meta["RequestId"] == "req-1"
    return parsed


def form_of(operation: OperationModel, **params: str) -> dict[str, str]:
    return {
        "Action": operation.name,
        "Version": operation.service_model.api_version,
        **params,
    }


def error_of(operation: OperationModel, form: dict[str, str]) -> AwsError:
    with pytest.raises(AwsError) as info:
        parse_request(operation, form)
    return info.value


def validation_message(operation: OperationModel, params: dict[str, Any]) -> str:
    form = parse_form(wire_body(operation, params), "")
    err = error_of(operation, form)
    assert isinstance(err, QueryValidationError) and isinstance(err, ValidationError)
    assert err.code == "ValidationError" and err.http_status == 400
    return err.message


# ----------------------------------------------------------------------------- requests

TAGS = [{"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": ""}]
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "iam",
        "CreateUser",
        {
            "UserName": "alice+ops@example.com",
            "Path": "/engineering/",
            "PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/boundary",
            "Tags": TAGS,
        },
    ),
    ("iam", "CreateUser", {"UserName": "bob", "Tags": []}),
    (
        "iam",
        "PutUserPolicy",
        {
            "UserName": "alice",
            "PolicyName": "inline-1",
            "PolicyDocument": '{\n\t"Version": "2012-10-17",\r\n "Statement": [] } +&=%ü',
        },
    ),
    ("iam", "AttachRolePolicy", {"RoleName": "deployer", "PolicyArn": POLICY_ARN}),
    (
        "iam",
        "CreateRole",
        {
            "Path": "/app/",
            "RoleName": "deployer",
            "AssumeRolePolicyDocument": POLICY,
            "Description": "Deploys things",
            "MaxSessionDuration": 43200,
            "PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/boundary",
            "Tags": [{"Key": "team", "Value": "ops"}],
        },
    ),
    ("iam", "ListUsers", {"PathPrefix": "/engineering/", "Marker": "abc+/=", "MaxItems": 1000}),
    ("iam", "ListUsers", {}),
    (
        "iam",
        "UpdateAccessKey",
        {"UserName": "alice", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "Status": "Inactive"},
    ),
    ("iam", "CreateAccessKey", {}),
    ("iam", "GetUser", {"UserName": "alice"}),
    (
        "iam",
        "CreatePolicy",
        {
            "PolicyName": "read-only",
            "Path": "/",
            "PolicyDocument": POLICY,
            "Description": "Reads",
            "Tags": TAGS,
        },
    ),
    (
        "iam",
        "CreatePolicyVersion",
        {"PolicyArn": POLICY_ARN, "PolicyDocument": POLICY, "SetAsDefault": False},
    ),
    ("iam", "UntagUser", {"UserName": "alice", "TagKeys": ["env", "owner"]}),
    ("iam", "TagRole", {"RoleName": "deployer", "Tags": [{"Key": "ключ 1", "Value": "значение"}]}),
    (
        "iam",
        "SimulatePrincipalPolicy",
        {
            "PolicySourceArn": ROLE_ARN,
            "ActionNames": ["s3:GetObject", "kms:Decrypt"],
            "ResourceArns": ["arn:aws:s3:::bucket/key"],
            "ContextEntries": [
                {
                    "ContextKeyName": "aws:MultiFactorAuthPresent",
                    "ContextKeyValues": ["true"],
                    "ContextKeyType": "boolean",
                },
                {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": []},
            ],
            "MaxItems": 10,
        },
    ),
    ("iam", "GetAccountSummary", {}),
    (
        "sts",
        "AssumeRole",
        {
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "session-1",
            "PolicyArns": [{"arn": POLICY_ARN}, {"arn": "arn:aws:iam::aws:policy/ReadOnly"}],
            "Policy": POLICY,
            "DurationSeconds": 3600,
            "Tags": [{"Key": "project", "Value": "sealbox"}],
            "TransitiveTagKeys": ["project"],
            "ExternalId": "ext-123",
            "SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/alice",
            "TokenCode": "123456",
            "SourceIdentity": "alice",
            "ProvidedContexts": [{"ProviderArn": "arn:aws:iam::aws:contextProvider/x"}],
        },
    ),
    ("sts", "AssumeRole", {"RoleArn": ROLE_ARN, "RoleSessionName": "s1"}),
    ("sts", "GetCallerIdentity", {}),
    ("sts", "GetSessionToken", {"DurationSeconds": 900}),
    (
        "sts",
        "AssumeRoleWithWebIdentity",
        {
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "web",
            "WebIdentityToken": "eyJhbGciOi.JIUzI1NiJ9.e30",
            "DurationSeconds": 43200,
        },
    ),
    ("sts", "GetFederationToken", {"Name": "bob", "Policy": POLICY, "Tags": []}),
    # Other Query services, for the traits IAM and STS do not use.
    (
        "sns",
        "Publish",
        {
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
            "Message": "hello",
            "MessageAttributes": {
                "bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff data"},
                "str": {"DataType": "String", "StringValue": "v"},
            },
        },
    ),
    (
        "sns",
        "CreateTopic",
        {"Name": "t", "Attributes": {"DisplayName": "T", "Policy": POLICY}, "Tags": []},
    ),
    (
        "sdb",
        "PutAttributes",
        {
            "DomainName": "d",
            "ItemName": "i",
            "Attributes": [
                {"Name": "a", "Value": "1", "Replace": True},
                {"Name": "b", "Value": "2"},
            ],
        },
    ),
    (
        "rds",
        "DescribeEvents",
        {
            "StartTime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "EndTime": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "Duration": 60,
            "EventCategories": ["backup", "failover"],
        },
    ),
    (
        "rds",
        "CreateDBSecurityGroup",
        {"DBSecurityGroupName": "g", "DBSecurityGroupDescription": "d"},
    ),
    (
        "rds",
        "ModifyDBInstance",
        {"DBInstanceIdentifier": "db", "VpcSecurityGroupIds": ["sg-1", "sg-2"]},
    ),
    # EC2's variant.
    (
        "ec2",
        "DescribeInstances",
        {
            "Filters": [
                {"Name": "tag:env", "Values": ["prod", "stage"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ],
            "InstanceIds": ["i-1", "i-2"],
            "DryRun": True,
            "MaxResults": 5,
        },
    ),
    ("ec2", "ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": b"ssh-ed25519 AAAA"}),
    (
        "ec2",
        "DescribeSpotPriceHistory",
        {
            "StartTime": datetime(2024, 1, 1, tzinfo=UTC),
            "InstanceTypes": ["t3.micro"],
            "AvailabilityZone": "us-east-1a",
        },
    ),
]


@pytest.mark.parametrize(
    ("service", "name", "params"),
    REQUESTS,
    ids=[f"{s}-{n}-{i}" for i, (s, n, _) in enumerate(REQUESTS)],
)
def test_botocore_request_round_trips(service: str, name: str, params: dict[str, Any]) -> None:
    assert round_trip(op(service, name), params) == params


def request_params(service: str, name: str) -> dict[str, Any]:
    return next(p for s, n, p in REQUESTS if (s, n) == (service, name))


def test_wire_names_of_botocore_requests() -> None:
    # The syntax the codec reads, as botocore writes it.
    body = wire_body(op(IAM, "CreateUser"), {"UserName": "a", "Tags": TAGS}).decode()
    assert "&Tags.member.2.Key=owner&" in body and body.endswith("&Tags.member.2.Value=")
    body = wire_body(op(IAM, "CreateUser"), {"UserName": "a", "Tags": []}).decode()
    assert body.endswith("&Tags=")
    body = wire_body(op("sns", "Publish"), request_params("sns", "Publish")).decode()
    assert "MessageAttributes.entry.1.Name=bin" in body
    assert "MessageAttributes.entry.1.Value.BinaryValue=" in body
    body = wire_body(op("sdb", "PutAttributes"), request_params("sdb", "PutAttributes")).decode()
    assert "Attribute.2.Name=b" in body  # flattened, named after the list member
    body = wire_body(
        op("rds", "ModifyDBInstance"), request_params("rds", "ModifyDBInstance")
    ).decode()
    assert "VpcSecurityGroupIds.VpcSecurityGroupId.2=sg-2" in body
    body = wire_body(
        op(EC2_MODEL, "DescribeInstances"), request_params("ec2", "DescribeInstances")
    ).decode()
    assert "Filter.1.Value.2=stage" in body and "InstanceId.2=i-2" in body


def test_request_types_are_converted() -> None:
    params = round_trip(op("rds", "DescribeEvents"), request_params("rds", "DescribeEvents"))
    assert params["EndTime"] == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert params["EndTime"].utcoffset() == timedelta(0)
    params = round_trip(op("sns", "Publish"), request_params("sns", "Publish"))
    assert params["MessageAttributes"]["bin"]["BinaryValue"] == b"\x00\xff data"
    params = round_trip(
        op(IAM, "CreatePolicyVersion"), request_params("iam", "CreatePolicyVersion")
    )
    assert params["SetAsDefault"] is False


def test_ec2_empty_lists_are_not_sent() -> None:
    # EC2's serializer writes nothing for an empty list; Query writes "Name=".
    operation = op(EC2_MODEL, "DescribeInstances")
    assert round_trip(operation, {"InstanceIds": [], "DryRun": False}) == {"DryRun": False}


def test_query_string_and_body_are_merged() -> None:
    operation = op(STS, "GetCallerIdentity")
    form = parse_form(b"Version=2011-06-15", "Action=GetCallerIdentity")
    assert operation_for_action(STS, form) is operation
    assert parse_request(operation, form) == {}
    form = parse_form(b"", "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900")
    assert parse_request(op(STS, "GetSessionToken"), form) == {"DurationSeconds": 900}


def test_form_decoding() -> None:
    form = parse_form(b"A=a+b%2Bc&B=%E2%98%83&C=&D", "")
    assert form == {"A": "a b+c", "B": "\u2603", "C": "", "D": ""}
    assert parse_form("K=ü".encode(), "") == {"K": "ü"}  # raw UTF-8 is tolerated
    assert parse_form(b"", "") == {}


@pytest.mark.parametrize(
    ("body", "query_string"),
    [
        (b"Action=A&Action=B", ""),
        (b"Action=A", "Action=A"),
        (b"X=1&Y=2&X=1", ""),
        (b"", "Tags.member.1.Key=a&Tags.member.1.Key=b"),
    ],
)
def test_repeated_parameters_are_rejected(body: bytes, query_string: str) -> None:
    with pytest.raises(InvalidQueryParameterError) as info:
        parse_form(body, query_string)
    assert info.value.code == "InvalidQueryParameter" and info.value.http_status == 400
    assert "occurs more than once" in info.value.message


@pytest.mark.parametrize(
    ("body", "query_string"),
    [(b"A=%FF", ""), (b"", "A=%C3"), (b"A=\xff", ""), (b"A=\xed\xa0\x80", "")],
)
def test_form_text_must_be_utf8(body: bytes, query_string: str) -> None:
    with pytest.raises(InvalidQueryParameterError):
        parse_form(body, query_string)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64), query_string=st.text(max_size=32))
def test_arbitrary_forms_parse_or_raise_invalid_query_parameter(
    body: bytes, query_string: str
) -> None:
    try:
        form = parse_form(body, query_string)
    except InvalidQueryParameterError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.items())


def test_unknown_parameters_are_ignored() -> None:
    operation = op(IAM, "CreateUser")
    extra = {
        "Tags.member.1.Key": "k",
        "Tags.member.1.Value": "v",
        "Tags.member.1.Extra": "e",
        "Tags.member.0.Key": "zero",
        "Tags.member.01.Key": "leading-zero",
        "Tags.member.x.Key": "not-a-number",
        "Tags.entry.1.Key": "wrong-syntax",
        "Future.Nested.1": "f",
        "": "empty",
    }
    form = form_of(operation, UserName="alice", Unknown="x", **extra)
    assert parse_request(operation, form) == {
        "UserName": "alice",
        "Tags": [{"Key": "k", "Value": "v"}],
    }


def test_list_elements_are_ordered_by_index() -> None:
    operation = op(IAM, "UntagUser")
    form = form_of(
        operation,
        UserName="u",
        **{"TagKeys.member.10": "c", "TagKeys.member.2": "b", "TagKeys.member.1": "a"},
    )
    assert parse_request(operation, form)["TagKeys"] == ["a", "b", "c"]


def test_a_list_with_only_unknown_children_is_absent() -> None:
    operation = op(IAM, "CreateUser")
    form = form_of(operation, UserName="u", **{"Tags.1.Key": "k", "Tags.1.Value": "v"})
    assert parse_request(operation, form) == {"UserName": "u"}


# ----------------------------------------------------------------------------- actions


def test_every_action_resolves() -> None:
    for service in (IAM, STS, EC2_MODEL):
        version = service.api_version
        for name in service.operation_names:
            form = {"Action": name, "Version": version}
            assert operation_for_action(service, form).name == name


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"Action": "NoSuchAction", "Version": "2011-06-15"},
            "Could not find operation NoSuchAction for version 2011-06-15",
        ),
        (
            {"Action": "GetCallerIdentity"},
            "Could not find operation GetCallerIdentity for version NO_VERSION_SPECIFIED",
        ),
        (
            {"Action": "GetCallerIdentity", "Version": ""},
            "Could not find operation GetCallerIdentity for version ",
        ),
        (
            {"Action": "GetCallerIdentity", "Version": "2010-05-08"},
            "Could not find operation GetCallerIdentity for version 2010-05-08",
        ),
        (
            {"Action": "", "Version": "2011-06-15"},
            "Could not find operation  for version 2011-06-15",
        ),
        (
            {"Action": "getcalleridentity", "Version": "2011-06-15"},
            "Could not find operation getcalleridentity for version 2011-06-15",
        ),
        (
            {"Action": "A" * 5000, "Version": "2011-06-15"},
            f"Could not find operation {'A' * 128}... for version 2011-06-15",
        ),
    ],
)
def test_invalid_actions(form: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidActionError) as info:
        operation_for_action(STS, form)
    err = info.value
    assert isinstance(err, UnknownOperationError)
    assert err.code == "InvalidAction" and err.http_status == 400 and err.sender_fault
    assert err.message == message


def test_missing_action() -> None:
    with pytest.raises(MissingActionError) as info:
        operation_for_action(IAM, {"Version": "2010-05-08", "UserName": "a"})
    assert info.value.code == "MissingAction" and info.value.http_status == 400
    assert isinstance(info.value, UnknownOperationError)


@pytest.mark.parametrize("version", [None, "", "2011-06-15", "2010-05-08 "])
def test_parse_request_checks_the_version(version: str | None) -> None:
    operation = op(IAM, "GetUser")
    form = {"Action": "GetUser", "UserName": "u"}
    if version is not None:
        form["Version"] = version
    err = error_of(operation, form)
    assert isinstance(err, InvalidActionError)
    shown = "NO_VERSION_SPECIFIED" if version is None else version
    assert err.message == f"Could not find operation GetUser for version {shown}"


def test_non_query_services_are_refused() -> None:
    with pytest.raises(ValueError, match="query protocol"):
        protocol_of(load_service("kms"))
    with pytest.raises(ValueError):
        operation_for_action(load_service("kms"), {"Action": "Encrypt"})
    assert protocol_of(IAM) is QUERY and protocol_of(EC2_MODEL) is EC2


# ----------------------------------------------------------------------------- validation


def test_missing_required_members() -> None:
    # The exact text AWS STS answers.
    assert validation_message(op(STS, "AssumeRole"), {"RoleSessionName": "s1"}) == (
        "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: "
        "Member must not be null"
    )
    assert validation_message(op(STS, "AssumeRole"), {}) == (
        "2 validation errors detected: "
        "Value null at 'roleArn' failed to satisfy constraint: Member must not be null; "
        "Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"
    )
    message = validation_message(op(IAM, "CreateUser"), {"UserName": "u", "Tags": [{"Key": "k"}]})
    assert message == (
        "1 validation error detected: Value null at 'tags.1.member.value' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_too_long_and_badly_formed_names() -> None:
    name = "a" * 65
    assert validation_message(op(IAM, "CreateUser"), {"UserName": name}) == (
        f"1 validation error detected: Value '{name}' at 'userName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64"
    )
    assert validation_message(op(IAM, "GetUser"), {"UserName": "bad name"}) == (
        "1 validation error detected: Value 'bad name' at 'userName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    )
    assert validation_message(op(IAM, "GetUser"), {"UserName": "é"}).endswith(
        "Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    )  # Java's \w is ASCII
    # An empty value is sent, and fails min length and pattern (each is reported, as AWS does).
    message = validation_message(op(STS, "GetFederationToken"), {"Name": "bob", "Policy": ""})
    assert message == (
        "2 validation errors detected: Value '' at 'policy' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; Value '' at 'policy' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
    )


def test_bad_enum() -> None:
    params = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "Status": "Paused"}
    assert validation_message(op(IAM, "UpdateAccessKey"), params) == (
        "1 validation error detected: Value 'Paused' at 'status' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Active, Inactive, Expired]"
    )


@pytest.mark.parametrize(
    ("name", "params", "phrase"),
    [
        (
            "ListUsers",
            {"MaxItems": 0},
            "Value '0' at 'maxItems' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1",
        ),
        (
            "ListUsers",
            {"MaxItems": 1001},
            "Value '1001' at 'maxItems' failed to satisfy "
            "constraint: Member must have value less than or equal to 1000",
        ),
    ],
)
def test_integer_ranges(name: str, params: dict[str, Any], phrase: str) -> None:
    assert validation_message(op(IAM, name), params) == f"1 validation error detected: {phrase}"


def test_duration_seconds_range() -> None:
    message = validation_message(
        op(STS, "AssumeRole"),
        {"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "DurationSeconds": 899},
    )
    assert message == (
        "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 900"
    )


def test_several_violations_in_one_error() -> None:
    message = validation_message(
        op(IAM, "CreateUser"),
        {"UserName": "", "Path": "no-slash", "Tags": [{"Key": "k", "Value": "v"}] * 51},
    )
    assert message.startswith("4 validation errors detected: ")
    parts = message.removeprefix("4 validation errors detected: ").split("; ")
    assert sorted(parts) == sorted(
        [
            "Value '' at 'userName' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1",
            "Value '' at 'userName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
            "Value 'no-slash' at 'path' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: "
            "(\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
            "Value at 'tags' failed to satisfy constraint: "
            "Member must have length less than or equal to 50",
        ]
    )


def test_nested_and_list_element_constraints() -> None:
    message = validation_message(
        op(IAM, "TagUser"),
        {"UserName": "u", "Tags": [{"Key": "ok", "Value": "v"}, {"Key": "k" * 129, "Value": "v"}]},
    )
    assert message == (
        f"1 validation error detected: Value '{'k' * 129}' at 'tags.2.member.key' failed to "
        "satisfy constraint: Member must have length less than or equal to 128"
    )
    message = validation_message(op(IAM, "UntagUser"), {"UserName": "u", "TagKeys": ["a", ""]})
    assert message == (
        "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must have length greater than or equal to 1, "
        "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+]"
    )


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("env", True),
        ("ключ", True),  # \p{L}
        ("key 1", True),  # \p{Z}, \p{N}
        ("٣", True),  # Arabic-Indic digit: \p{N}
        ("a_.:/=+-@", True),
        ("a#b", False),
        ("tab\t", False),
        ("emoji😀", False),
        ("", False),
    ],
)
def test_java_unicode_categories_in_tag_patterns(key: str, ok: bool) -> None:
    operation = op(IAM, "TagRole")
    form = parse_form(
        wire_body(operation, {"RoleName": "r", "Tags": [{"Key": key, "Value": key}]}), ""
    )
    if ok:
        assert parse_request(operation, form)["Tags"] == [{"Key": key, "Value": key}]
    else:
        err = error_of(operation, form)
        assert isinstance(err, QueryValidationError)
        assert "[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+" in err.message


def test_unknown_java_patterns_are_not_checked() -> None:
    assert query._pattern("[\\p{IsAlphabetic}]+") is None
    rx = query._pattern("\\p{Lu}[\\p{Ll}\\p{Nd}]*")
    assert rx is not None and rx.fullmatch("Ab1") and not rx.fullmatch("ab")


def test_sensitive_strings_are_not_echoed() -> None:
    message = validation_message(
        op(STS, "AssumeRoleWithWebIdentity"),
        {"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "WebIdentityToken": "tok"},
    )
    assert message == (
        "1 validation error detected: Value at 'webIdentityToken' failed to satisfy "
        "constraint: Member must have length greater than or equal to 4"
    )
    message = validation_message(
        op(IAM, "CreateLoginProfile"), {"UserName": "u", "Password": "x" * 129}
    )
    assert "x" * 129 not in message and "at 'password'" in message


# ----------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "an integer"),
        ("1.5", "an integer"),
        ("", "an integer"),
        (" 1", "an integer"),
        ("1_000", "an integer"),
        ("\uff11", "an integer"),  # a fullwidth digit, which int() would take
        ("0x10", "an integer"),
        ("2147483648", "an integer from -2147483648 to 2147483647"),
        ("9" * 5000, "an integer"),
    ],
)
def test_bad_integers(value: str, expected: str) -> None:
    operation = op(IAM, "ListUsers")
    err = error_of(operation, form_of(operation, MaxItems=value))
    assert isinstance(err, MalformedInputError) and isinstance(err, SerializationError)
    assert err.code == "MalformedInput" and err.http_status == 400
    assert err.message == f"Value at 'maxItems' must be {expected}"


@pytest.mark.parametrize(("value", "number"), [("+5", 5), ("007", 7), ("1000", 1000)])
def test_integer_spellings(value: str, number: int) -> None:
    operation = op(IAM, "ListUsers")
    assert parse_request(operation, form_of(operation, MaxItems=value)) == {"MaxItems": number}
    with pytest.raises(QueryValidationError):  # well-formed, then out of range
        parse_request(operation, form_of(operation, MaxItems="-0"))


@pytest.mark.parametrize("value", ["True", "1", "yes", "", "false "])
def test_bad_booleans(value: str) -> None:
    operation = op(IAM, "CreatePolicyVersion")
    form = form_of(operation, PolicyArn=POLICY_ARN, PolicyDocument="{}", SetAsDefault=value)
    err = error_of(operation, form)
    assert isinstance(err, MalformedInputError)
    assert err.message == "Value at 'setAsDefault' must be a boolean (true or false)"


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2024-13-01T00:00:00Z", "1700000000", "", "0001-01-01T00:00:00+01:00"],
)
def test_bad_timestamps(value: str) -> None:
    operation = op("rds", "DescribeEvents")
    err = error_of(operation, form_of(operation, StartTime=value))
    assert isinstance(err, MalformedInputError)
    assert err.message == "Value at 'startTime' must be an ISO 8601 timestamp"


def test_timestamp_offsets_become_utc() -> None:
    operation = op("rds", "DescribeEvents")
    params = parse_request(operation, form_of(operation, StartTime="2024-01-01T02:00:00+02:00"))
    assert params["StartTime"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert params["StartTime"].tzinfo is UTC
    params = parse_request(operation, form_of(operation, StartTime="2024-01-01T00:00:00"))
    assert params["StartTime"].tzinfo is UTC


SECRET = b"\x8fTOP-SECRET\xff" * 4


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64!",
        "QUJ",
        "QU JD",
        "=QUJD",
        "QUJD==",
        base64.b64encode(SECRET).decode()[:-1],
        base64.urlsafe_b64encode(b"\xfb\xff\xfe" * 4).decode(),
    ],
)
def test_bad_base64_is_never_echoed(encoded: str) -> None:
    operation = op("sns", "Publish")
    form = form_of(
        operation,
        Message="m",
        **{
            "MessageAttributes.entry.1.Name": "a",
            "MessageAttributes.entry.1.Value.DataType": "Binary",
            "MessageAttributes.entry.1.Value.BinaryValue": encoded,
        },
    )
    err = error_of(operation, form)
    assert isinstance(err, MalformedInputError)
    assert err.message == (
        "Value at 'messageAttributes.a.binaryValue' must be a base64-encoded string"
    )
    assert encoded not in str(err)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # A scalar sent as a list (IAM answers MalformedInput to this).
        ({"UserName.1": "alice"}, "Value at 'userName' must be a string, not a list or structure"),
        (
            {"UserName": "a", "UserName.x": "b"},
            "Value at 'userName' must be a string, not a list or structure",
        ),
        ({"Tags": "k=v"}, "Value at 'tags' must be a list, not a single value"),
        (
            {"Tags.member.1": "k"},
            "Value at 'tags.1.member' must be a structure, not a single value",
        ),
    ],
)
def test_structural_mismatches(params: dict[str, str], message: str) -> None:
    operation = op(IAM, "CreateUser")
    err = error_of(operation, form_of(operation, **params))
    assert isinstance(err, MalformedInputError)
    assert err.message == message


def test_map_entries_need_a_key_and_a_value() -> None:
    operation = op("sns", "CreateTopic")
    err = error_of(operation, form_of(operation, Name="t", **{"Attributes.entry.1.key": "k"}))
    assert isinstance(err, MalformedInputError)
    assert err.message == "Value at 'attributes.1' must be an entry with a key and a value"


def test_a_type_error_wins_over_constraint_violations() -> None:
    operation = op(IAM, "ListUsers")
    err = error_of(operation, form_of(operation, PathPrefix="", MaxItems="x"))
    assert isinstance(err, MalformedInputError)


PARAM_NAMES = st.lists(
    st.sampled_from(
        [
            *("Tags", "member", "entry", "1", "2", "0", "Key", "Value", "UserName", "Path"),
            *("MaxItems", "RoleArn", "PolicyArns", "arn", "DurationSeconds", "x", "", "TagKeys"),
            *("ContextEntries", "Filter", "Name", "MessageAttributes", "BinaryValue"),
        ]
    ),
    min_size=1,
    max_size=5,
).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(
        [
            *(("iam", "CreateUser"), ("iam", "ListUsers"), ("sts", "AssumeRole")),
            *(("iam", "UntagUser"), ("iam", "SimulatePrincipalPolicy"), ("sns", "Publish")),
            ("ec2", "DescribeInstances"),
        ]
    ),
    params=st.dictionaries(PARAM_NAMES, st.text(max_size=8) | st.sampled_from(["1", "true", ""])),
)
def test_arbitrary_forms_raise_only_aws_errors(
    name: tuple[str, str], params: dict[str, str]
) -> None:
    operation = op(*name)
    try:
        result = parse_request(operation, form_of(operation, **params))
    except AwsError as err:
        assert isinstance(err, ClientError)
        assert err.http_status == 400
    else:
        assert isinstance(result, dict)


# ----------------------------------------------------------------------------- responses

USER = {
    "Path": "/engineering/",
    "UserName": "alice",
    "UserId": "AIDACKCEVSQ6C2EXAMPLE",
    "Arn": f"arn:aws:iam::{ACCOUNT}:user/engineering/alice",
    "CreateDate": CREATED,
    "PasswordLastUsed": datetime(2024, 6, 1, 0, 0, 0, 123000, tzinfo=UTC),
    "Tags": [{"Key": "env", "Value": "prod <&> \"'"}],
}
RESPONSES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "iam",
        "ListUsers",
        {
            "Users": [USER, {**USER, "UserName": "bob", "Tags": []}],
            "IsTruncated": True,
            "Marker": "m+/=",
        },
    ),
    ("iam", "ListUsers", {"Users": [], "IsTruncated": False}),
    ("iam", "GetUser", {"User": USER}),
    (
        "iam",
        "CreateUser",
        {
            "User": {
                **USER,
                "PermissionsBoundary": {
                    "PermissionsBoundaryType": "Policy",
                    "PermissionsBoundaryArn": POLICY_ARN,
                },
            }
        },
    ),
    (
        "iam",
        "CreateAccessKey",
        {
            "AccessKey": {
                "UserName": "alice",
                "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
                "Status": "Active",
                "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "CreateDate": CREATED,
            }
        },
    ),
    (
        "iam",
        "ListAttachedUserPolicies",
        {
            "AttachedPolicies": [
                {"PolicyName": "read-only", "PolicyArn": POLICY_ARN},
                {"PolicyName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            ],
            "IsTruncated": False,
        },
    ),
    (
        "iam",
        "GetPolicy",
        {
            "Policy": {
                "PolicyName": "read-only",
                "PolicyId": "ANPAEXAMPLE1234567890",
                "Arn": POLICY_ARN,
                "Path": "/",
                "DefaultVersionId": "v1",
                "AttachmentCount": 2,
                "PermissionsBoundaryUsageCount": 0,
                "IsAttachable": True,
                "Description": "",
                "CreateDate": CREATED,
                "UpdateDate": CREATED,
                "Tags": [],
            }
        },
    ),
    (
        "iam",
        "GetUserPolicy",
        {"UserName": "u", "PolicyName": "p", "PolicyDocument": POLICY + "\r\n\t "},
    ),
    (
        "iam",
        "GetAccountSummary",
        {"SummaryMap": {"Users": 5, "Roles": 0, "AccessKeysPerUserQuota": 2}},
    ),
    (
        "iam",
        "CreateVirtualMFADevice",
        {
            "VirtualMFADevice": {
                "SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/alice",
                "Base32StringSeed": b"JBSWY3DPEHPK3PXP",
                "QRCodePNG": b"\x89PNG\r\n\x1a\n\x00\x00",
                "EnableDate": CREATED,
            }
        },
    ),
    (
        "iam",
        "GetCredentialReport",
        {"Content": b"user,arn\n", "ReportFormat": "text/csv", "GeneratedTime": CREATED},
    ),
    (
        "sts",
        "AssumeRole",
        {
            "Credentials": {
                "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
                "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                "SessionToken": "FwoGZXIvYXdzE" * 20,
                "Expiration": datetime(2024, 5, 6, 8, 8, 9, tzinfo=UTC),
            },
            "AssumedRoleUser": {
                "AssumedRoleId": "AROA3XFRBF535PLBIFPI4:session-1",
                "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/session-1",
            },
            "PackedPolicySize": 6,
            "SourceIdentity": "alice",
        },
    ),
    (
        "sts",
        "GetCallerIdentity",
        {"UserId": "AIDACKCEVSQ6C2EXAMPLE", "Account": ACCOUNT, "Arn": USER["Arn"]},
    ),
    ("sns", "GetTopicAttributes", {"Attributes": {"Policy": POLICY, "DisplayName": "ü"}}),
    ("sns", "GetTopicAttributes", {"Attributes": {}}),
    (
        "sdb",
        "GetAttributes",
        {"Attributes": [{"Name": "a", "Value": "1"}, {"Name": "b", "Value": ""}]},
    ),
    (
        "rds",
        "DescribeDBSecurityGroups",
        {
            "DBSecurityGroups": [
                {
                    "DBSecurityGroupName": "g",
                    "EC2SecurityGroups": [{"Status": "authorized", "EC2SecurityGroupId": "sg-1"}],
                    "IPRanges": [],
                }
            ]
        },
    ),
    (
        "ec2",
        "DescribeInstances",
        {
            "Reservations": [
                {
                    "ReservationId": "r-1",
                    "Instances": [
                        {
                            "InstanceId": "i-1",
                            "LaunchTime": CREATED,
                            "Tags": [{"Key": "env", "Value": "prod"}],
                            "EbsOptimized": False,
                            "CpuOptions": {"CoreCount": 2, "ThreadsPerCore": 1},
                        }
                    ],
                }
            ],
            "NextToken": "n",
        },
    ),
    (
        "ec2",
        "DescribeSpotPriceHistory",
        {"SpotPriceHistory": [{"SpotPrice": "0.01", "Timestamp": CREATED}]},
    ),
]


@pytest.mark.parametrize(
    ("service", "name", "result"),
    RESPONSES,
    ids=[f"{s}-{n}-{i}" for i, (s, n, _) in enumerate(RESPONSES)],
)
def test_response_round_trips_through_botocore(
    service: str, name: str, result: dict[str, Any]
) -> None:
    operation = op(service, name)
    assert botocore_parse(operation, serialize_response(operation, result, "req-1")) == result


def test_response_document_layout() -> None:
    body = serialize_response(
        op(STS, "GetCallerIdentity"), {"Account": ACCOUNT, "Arn": "a", "UserId": "u"}, "req-9"
    )
    assert body == (
        b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        b"<GetCallerIdentityResult><UserId>u</UserId><Account>111122223333</Account>"
        b"<Arn>a</Arn></GetCallerIdentityResult>"
        b"<ResponseMetadata><RequestId>req-9</RequestId></ResponseMetadata>"
        b"</GetCallerIdentityResponse>"
    )
    body = serialize_response(op(IAM, "ListUsers"), {"Users": [], "IsTruncated": False}, "r")
    assert b"<ListUsersResult><Users /><IsTruncated>false</IsTruncated></ListUsersResult>" in body


def test_operations_without_output_still_answer() -> None:
    operation = op(IAM, "DeleteUser")
    assert operation.output_shape is None
    body = serialize_response(operation, {}, "req-1")
    assert body == (
        b'<DeleteUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        b"<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>"
        b"</DeleteUserResponse>"
    )
    assert botocore_parse(operation, body) == {}


def test_empty_result_keeps_the_result_wrapper() -> None:
    operation = op(IAM, "ListUsers")
    body = serialize_response(operation, {}, "req-1")
    assert b"<ListUsersResult />" in body
    assert botocore_parse(operation, body) == {}


def test_ec2_envelope() -> None:
    operation = op(EC2_MODEL, "DescribeKeyPairs")
    body = serialize_response(operation, {"KeyPairs": [{"KeyName": "k"}]}, "req-1")
    assert body == (
        b'<DescribeKeyPairsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15">'
        b"<requestId>req-1</requestId>"
        b"<keySet><item><keyName>k</keyName></item></keySet>"
        b"</DescribeKeyPairsResponse>"
    )
    assert botocore_parse(operation, body) == {"KeyPairs": [{"KeyName": "k"}]}


def test_response_encoding_details() -> None:
    operation = op(IAM, "GetUser")
    naive = datetime(2024, 1, 1, 0, 0, 0, 500)
    offset = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    body = serialize_response(
        operation,
        {
            "User": {
                "UserName": "a\x00b\ud800c\r",
                "CreateDate": naive,
                "PasswordLastUsed": offset,
                "Path": None,
                "NotInShape": "dropped",
            },
            "Extra": 1,
        },
        "req-1",
    )
    assert b"<CreateDate>2024-01-01T00:00:00.000500Z</CreateDate>" in body
    assert b"<PasswordLastUsed>2024-01-01T00:00:00Z</PasswordLastUsed>" in body
    assert query._iso_text(datetime(33, 1, 2, 3, 4, 5, 120000)) == "0033-01-02T03:04:05.120Z"
    assert b"NotInShape" not in body and b"Extra" not in body and b"<Path" not in body
    # Characters XML cannot carry become U+FFFD; a CR survives as a reference.
    assert "<UserName>a\ufffdb\ufffdc&#13;</UserName>".encode() in body
    assert botocore_parse(operation, body)["User"]["UserName"] == "a\ufffdb\ufffdc\r"


def test_values_of_the_wrong_type_are_bugs() -> None:
    with pytest.raises(TypeError):
        serialize_response(op(IAM, "GetUser"), {"User": {"UserName": 5}}, "r")
    with pytest.raises(TypeError):
        serialize_response(
            op(IAM, "ListUsers"), {"IsTruncated": True, "Users": [], "Marker": b""}, "r"
        )
    with pytest.raises(TypeError):
        serialize_response(op(IAM, "GetUser"), {"User": {"CreateDate": "2024-01-01"}}, "r")
    with pytest.raises(TypeError):
        serialize_response(op(STS, "AssumeRole"), {"PackedPolicySize": True}, "r")


def test_floats() -> None:
    operation = op(EC2_MODEL, "GetSpotPlacementScores")
    result = {"SpotPlacementScores": [{"Region": "r", "Score": 3}]}
    assert botocore_parse(operation, serialize_response(operation, result, "req-1")) == result
    assert query._float_text(1e-05) == "1e-05"
    assert query._float_text(float("inf")) == "Infinity"
    assert query._float_text(float("-inf")) == "-Infinity"
    assert query._float_text(float("nan")) == "NaN"


# ----------------------------------------------------------------------------- errors

ERRORS: list[AwsError] = [
    QueryValidationError("1 validation error detected: x"),
    ValidationError("The policy is invalid <&>"),
    MalformedInputError("Value at 'maxItems' must be an integer"),
    InvalidActionError("Could not find operation X for version Y"),
    MissingActionError("The request must contain the parameter Action."),
    InvalidQueryParameterError("bad"),
    AccessDeniedError(f"User: arn:aws:iam::{ACCOUNT}:user/u is not authorized"),
    InternalFailure("boom"),
]


def _code(err: AwsError) -> str:
    return "ValidationError" if err.code == "ValidationException" else err.code


@pytest.mark.parametrize("err", ERRORS, ids=[type(e).__name__ for e in ERRORS])
@pytest.mark.parametrize("service", [None, IAM, STS])
def test_render_error_parses_in_botocore(err: AwsError, service: ServiceModel | None) -> None:
    status, headers, body = render_error(err, "req-0123", service)
    assert status == err.http_status
    header_map = {k.decode(): v.decode() for k, v in headers}
    assert header_map == {"content-type": "text/xml", "x-amzn-requestid": "req-0123"}
    namespace = query.AWS_FAULT_NAMESPACE if service is None else service.metadata["xmlNamespace"]
    assert body.startswith(f'<ErrorResponse xmlns="{namespace}"><Error><Type>'.encode())
    response = {"status_code": status, "headers": header_map, "body": body}
    parsed = create_parser("query").parse(response, op(IAM, "GetUser").output_shape)
    assert parsed["Error"] == {
        "Type": "Sender" if err.sender_fault else "Receiver",
        "Code": _code(err),
        "Message": err.message,
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req-0123"


def test_render_error_domain_codes_and_statuses() -> None:
    class NoSuchEntity(ClientError):
        code = "NoSuchEntity"
        http_status = 404

    status, _, body = render_error(
        NoSuchEntity("The user with name bob cannot be found."), "r", IAM
    )
    assert status == 404
    assert body == (
        b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
        b"<Type>Sender</Type><Code>NoSuchEntity</Code>"
        b"<Message>The user with name bob cannot be found.</Message></Error>"
        b"<RequestId>r</RequestId></ErrorResponse>"
    )


@pytest.mark.parametrize("err", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_render_error_ec2(err: AwsError) -> None:
    status, headers, body = render_error(err, "req-7", EC2_MODEL)
    assert status == err.http_status and (b"content-type", b"text/xml") in headers
    assert body.startswith(b"<Response><Errors><Error><Code>")
    response = {"status_code": status, "headers": {}, "body": body}
    parsed = create_parser("ec2").parse(response, op(EC2_MODEL, "DescribeKeyPairs").output_shape)
    assert parsed["Error"] == {"Code": err.code, "Message": err.message}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-7"
    assert EC2.render_error(err, "req-7") == (status, headers, body)


# ----------------------------------------------------------------------------- compilation


@pytest.mark.parametrize("service", ["iam", "sts", "ec2"])
def test_every_operation_compiles(service: str) -> None:
    model = load_service(service)
    for name in model.operation_names:
        operation = model.operation_model(name)
        try:
            parse_request(operation, {"Action": name, "Version": model.api_version})
        except QueryValidationError as err:
            assert "Member must not be null" in err.message
        serialize_response(operation, {}, "r")


def test_codecs_are_compiled_once() -> None:
    operation = op(IAM, "CreateUser")
    parse_request(operation, form_of(operation, UserName="u"))
    codec = query._codec(operation)
    parse_request(operation, form_of(operation, UserName="v"))
    serialize_response(operation, {}, "r")
    assert query._codec(operation) is codec


# ----------------------------------------------------------------------------- properties

# Text XML 1.0 can carry (responses); requests take any text.
XML_TEXT = st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\t\n\r")
ANY_TEXT = st.characters(codec="utf-8")  # any text but lone surrogates


def _length_bounds(shape: Shape, cap: int) -> tuple[int, int]:
    lo = int(shape.metadata.get("min", 0))
    hi = shape.metadata.get("max")
    return lo, lo + cap if hi is None else min(int(hi), lo + cap)


def _ascii_classes(pattern: str) -> str:
    """pattern with Java's ASCII-only \\w and \\d spelled out, for Python's Unicode re."""
    spelled = {"w": "a-zA-Z0-9_", "d": "0-9"}

    def spell(m: re.Match[str]) -> str:
        inside = query._class_depth(pattern[: m.start()], 0) > 0
        chars = spelled[m.group(1)]
        return chars if inside else f"[{chars}]"

    return re.sub(r"(?<!\\)\\([wd])", spell, pattern)


def _string_strategy(shape: Shape, *, xml_safe: bool) -> st.SearchStrategy[str]:
    meta = shape.metadata
    if "enum" in meta:
        return st.sampled_from(meta["enum"])
    lo, hi = _length_bounds(shape, 20)
    alphabet = XML_TEXT if xml_safe else ANY_TEXT
    pattern = meta.get("pattern")
    if pattern is None:
        return st.text(alphabet, min_size=lo, max_size=hi)
    return _pattern_strategy(pattern, lo, hi)


@functools.cache  # building a strategy for a large character class is slow
def _pattern_strategy(pattern: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    # "[class]+" with a length range: generate the right lengths directly.
    simple = re.fullmatch(r"\^?(\[[^\]]*\]|\\[dw]|\.)([+*])\$?", pattern)
    source = (
        f"{simple.group(1)}{{{max(lo, 1) if simple.group(2) == '+' else lo},{hi}}}"
        if simple
        else pattern
    )
    rx = query._pattern(source)
    assert rx is not None
    if "\\p{" in pattern:  # huge classes make from_regex slow: draw from the categories
        categories = re.findall(r"\\p\{(\w+)\}", pattern)
        others = re.sub(r"\\p\{\w+\}|\\", "", pattern)
        letters = st.characters(categories=categories) | st.sampled_from(others)
        return st.text(letters, min_size=lo, max_size=hi).filter(
            lambda s: rx.fullmatch(s) is not None
        )
    # Generate from the pattern compiled without re.ASCII (hypothesis cannot draw its
    # non-ASCII literals then), with Java's ASCII-only \w and \d spelled out.
    generator = re.compile(_ascii_classes(source))
    return (
        st.from_regex(generator, fullmatch=True)
        .filter(lambda s: lo <= len(s) <= hi)
        .filter(lambda s: rx.fullmatch(s) is not None)
    )


def strategy_for(
    shape: Shape, *, output: bool, ec2: bool, nested: bool = False
) -> st.SearchStrategy[Any]:
    """Values that satisfy shape's constraints and survive the wire (sizes kept small)."""
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        members = shape.members
        required = set(shape.required_members)
        strategies = {
            n: strategy_for(m, output=output, ec2=ec2, nested=True) for n, m in members.items()
        }
        value = st.fixed_dictionaries(
            {n: s for n, s in strategies.items() if n in required},
            optional={n: s for n, s in strategies.items() if n not in required},
        )
        # A request's empty nested structure sends no parameters at all.
        return value.filter(bool) if nested and not output else value
    if t == "list":
        lo, hi = _length_bounds(shape, 3)
        flat = shape.serialization.get("flattened") and output
        if (ec2 and not output) or flat:
            lo = max(lo, 1)  # an empty EC2 request list, or flattened response list, is absent
        return st.lists(
            strategy_for(shape.member, output=output, ec2=ec2, nested=True),
            min_size=lo,
            max_size=hi,
        )
    if t == "map":
        lo, hi = _length_bounds(shape, 3)
        if not output:
            lo = max(lo, 1)  # an empty request map sends nothing
        return st.dictionaries(
            strategy_for(shape.key, output=output, ec2=ec2, nested=True),
            strategy_for(shape.value, output=output, ec2=ec2, nested=True),
            min_size=lo,
            max_size=hi,
        )
    if t == "string":
        return _string_strategy(shape, xml_safe=output)
    if t == "blob":
        lo, hi = _length_bounds(shape, 64)
        return st.binary(min_size=lo, max_size=hi)
    if t in ("integer", "long"):
        bits = 31 if t == "integer" else 63
        return st.integers(int(meta.get("min", -(2**bits))), int(meta.get("max", 2**bits - 1)))
    if t in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False)
    if t == "boolean":
        return st.booleans()
    if t == "timestamp":
        return st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    raise AssertionError(f"no strategy for {t}")


@functools.cache
def operation_strategy(service: str, name: str, *, output: bool) -> st.SearchStrategy[Any]:
    operation = op(service, name)
    shape = operation.output_shape if output else operation.input_shape
    return strategy_for(shape, output=output, ec2=service == "ec2")


CASES = [("iam", n) for n in IAM.operation_names] + [("sts", n) for n in STS.operation_names]
CASES += [
    ("sns", "Publish"),
    ("sns", "GetTopicAttributes"),
    ("sdb", "PutAttributes"),
    ("sdb", "GetAttributes"),
    ("rds", "DescribeEvents"),
    ("ec2", "DescribeInstances"),
    ("ec2", "RunInstances"),
    ("ec2", "DescribeSpotPriceHistory"),
]
PROPERTY_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize(("service", "name"), CASES)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_requests_round_trip(service: str, name: str, data: st.DataObject) -> None:
    operation = op(service, name)
    if operation.input_shape is None:
        assert round_trip(operation, {}) == {}
        return
    params = data.draw(operation_strategy(service, name, output=False))
    assert round_trip(operation, params) == params


@pytest.mark.parametrize(("service", "name"), CASES)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_responses_round_trip(service: str, name: str, data: st.DataObject) -> None:
    operation = op(service, name)
    if operation.output_shape is None:
        assert botocore_parse(operation, serialize_response(operation, {}, "req-1")) == {}
        return
    result = data.draw(operation_strategy(service, name, output=True))
    assert botocore_parse(operation, serialize_response(operation, result, "req-1")) == result


def test_percent_encoded_round_trip_of_every_character_class() -> None:
    operation = op(IAM, "PutUserPolicy")
    document = "".join(chr(c) for c in (0x9, 0xA, 0xD, *range(0x20, 0x100)))
    body = "&".join(
        f"{k}={quote(v, safe='')}"
        for k, v in {
            "Action": "PutUserPolicy",
            "Version": "2010-05-08",
            "UserName": "u",
            "PolicyName": "p",
            "PolicyDocument": document,
        }.items()
    )
    params = parse_request(operation, parse_form(body.encode(), ""))
    assert params["PolicyDocument"] == document
