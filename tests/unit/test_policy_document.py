"""Tests for the AWS policy document parser/validator (sealbox.iam.policy.document)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any, cast, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.iam.policy.document import (
    ANY_PRINCIPAL,
    BASE_CONDITION_OPERATORS,
    KMS_KEY_POLICY_MAX_SIZE,
    Condition,
    Effect,
    PolicyDocument,
    PolicyDocumentError,
    PolicyKind,
    PrincipalKind,
    Principals,
    Statement,
    parse_policy,
    statement_actions_match,
)

KINDS: tuple[PolicyKind, ...] = get_args(PolicyKind)

KMS_DEFAULT_KEY_POLICY = (
    '{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User '
    'Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},'
    '"Action":"kms:*","Resource":"*"}]}'
)

IDENTITY_STMT: dict[str, Any] = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
RESOURCE_STMT: dict[str, Any] = {
    "Effect": "Allow",
    "Principal": "*",
    "Action": "kms:*",
    "Resource": "*",
}
TRUST_STMT: dict[str, Any] = {
    "Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"},
    "Action": "sts:AssumeRole",
}
BASE_STMT: dict[PolicyKind, dict[str, Any]] = {
    "identity": IDENTITY_STMT,
    "resource": RESOURCE_STMT,
    "trust": TRUST_STMT,
}
CANONICAL_ID = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def doc(*statements: dict[str, Any], **top: Any) -> str:
    body: dict[str, Any] = {"Version": "2012-10-17", **top}
    if "Statement" not in top:
        body["Statement"] = list(statements)
    return json.dumps(body)


def drop(stmt: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in stmt.items() if k not in names}


# ---------------------------------------------------------------------------------------------
# Valid documents


def test_kms_default_key_policy() -> None:
    parsed = parse_policy(KMS_DEFAULT_KEY_POLICY, kind="resource", max_size=KMS_KEY_POLICY_MAX_SIZE)
    assert parsed == PolicyDocument(
        version="2012-10-17",
        id="key-default-1",
        statements=(
            Statement(
                sid="Enable IAM User Permissions",
                effect="Allow",
                principal=Principals(by_kind={"AWS": ("arn:aws:iam::111122223333:root",)}),
                not_principal=None,
                action=("kms:*",),
                not_action=None,
                resource=("*",),
                not_resource=None,
                conditions=(),
            ),
        ),
    )


def test_identity_policy_with_not_action_not_resource_and_conditions() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowReads1",
                    "Effect": "Allow",
                    "Action": ["s3:Get*", "s3:List?ucket", "kms:Decrypt"],
                    "Resource": ["arn:aws:s3:::my-bucket", "arn:aws:s3:::my-bucket/*"],
                    "Condition": {
                        "StringEquals": {"aws:PrincipalTag/team": ["a", "b"]},
                        "IpAddress": {"aws:SourceIp": "203.0.113.0/24"},
                    },
                },
                {
                    "Effect": "Deny",
                    "NotAction": "iam:*",
                    "NotResource": "arn:aws:iam::111122223333:role/${aws:username}",
                },
            ],
        }
    )
    parsed = parse_policy(text, kind="identity")
    assert parsed.version == "2012-10-17"
    assert parsed.id is None
    first, second = parsed.statements
    assert first == Statement(
        sid="AllowReads1",
        effect="Allow",
        action=("s3:Get*", "s3:List?ucket", "kms:Decrypt"),
        resource=("arn:aws:s3:::my-bucket", "arn:aws:s3:::my-bucket/*"),
        conditions=(
            Condition(
                "StringEquals", "StringEquals", False, None, "aws:PrincipalTag/team", ("a", "b")
            ),
            Condition("IpAddress", "IpAddress", False, None, "aws:SourceIp", ("203.0.113.0/24",)),
        ),
    )
    assert second == Statement(
        sid=None,
        effect="Deny",
        not_action=("iam:*",),
        not_resource=("arn:aws:iam::111122223333:role/${aws:username}",),
    )
    assert second.principal is None and second.not_principal is None


def test_s3_bucket_policy_deny_insecure_transport() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "BucketPolicy",
            "Statement": {
                "Sid": "Deny insecure transport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                "Condition": {"Bool": {"aws:SecureTransport": False}},
            },
        }
    )
    (stmt,) = parse_policy(text, kind="resource").statements
    assert stmt.principal == Principals(by_kind={"AWS": ("*",)})
    assert stmt.principal != ANY_PRINCIPAL
    assert stmt.conditions == (
        Condition("Bool", "Bool", False, None, "aws:SecureTransport", ("false",)),
    )


def test_trust_policy_with_federated_principal_and_set_operators() -> None:
    provider = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
                        },
                        "ForAnyValue:StringLikeIfExists": {
                            "token.actions.githubusercontent.com:sub": ["repo:o/r:*"]
                        },
                    },
                },
                {
                    "Sid": "Services and accounts",
                    "Effect": "Allow",
                    "Principal": {
                        "Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"],
                        "AWS": ["111122223333", "arn:aws:iam::444455556666:role/x"],
                    },
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                },
            ],
        }
    )
    first, second = parse_policy(text, kind="trust").statements
    assert first.resource is None and first.not_resource is None
    assert first.principal == Principals(by_kind={"Federated": (provider,)})
    assert first.conditions[1] == Condition(
        operator="ForAnyValue:StringLikeIfExists",
        base_operator="StringLike",
        if_exists=True,
        set_qualifier="ForAnyValue",
        key="token.actions.githubusercontent.com:sub",
        values=("repo:o/r:*",),
    )
    assert second.principal is not None
    assert list(second.principal.by_kind) == ["Service", "AWS"]
    assert second.principal.values("AWS") == ("111122223333", "arn:aws:iam::444455556666:role/x")
    assert second.principal.values("CanonicalUser") == ()


def test_missing_version_means_2008_and_single_statement_object() -> None:
    text = json.dumps({"Statement": RESOURCE_STMT})
    parsed = parse_policy(text, kind="resource")
    assert parsed.version == "2008-10-17"
    assert parsed.statements == (
        Statement(
            sid=None, effect="Allow", principal=ANY_PRINCIPAL, action=("kms:*",), resource=("*",)
        ),
    )
    assert parse_policy(doc(RESOURCE_STMT, Version="2008-10-17"), kind="resource").version == (
        "2008-10-17"
    )


def test_not_principal_with_deny_and_canonical_user() -> None:
    stmt = {
        **drop(RESOURCE_STMT, "Principal"),
        "Effect": "Deny",
        "NotPrincipal": {"CanonicalUser": CANONICAL_ID, "AWS": "arn:aws:iam::111122223333:root"},
    }
    (parsed,) = parse_policy(doc(stmt), kind="resource").statements
    assert parsed.principal is None
    assert parsed.not_principal == Principals(
        by_kind={"AWS": ("arn:aws:iam::111122223333:root",), "CanonicalUser": (CANONICAL_ID,)}
    )


def test_condition_values_normalised_like_aws() -> None:
    text = (
        '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket",'
        '"Resource":"*","Condition":{"NumericLessThanEquals":{"s3:max-keys":[10, 1.50, 1e3, -0]},'
        '"Bool":{"aws:MultiFactorAuthPresent":true},"Null":{"aws:TokenIssueTime":"false"},'
        '"ForAllValues:StringEquals":{"aws:TagKeys":[]},'
        '"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}}'
    )
    (stmt,) = parse_policy(text, kind="identity").statements
    assert [(c.base_operator, c.key, c.values) for c in stmt.conditions] == [
        ("NumericLessThanEquals", "s3:max-keys", ("10", "1.50", "1e3", "-0")),
        ("Bool", "aws:MultiFactorAuthPresent", ("true",)),
        ("Null", "aws:TokenIssueTime", ("false",)),
        ("StringEquals", "aws:TagKeys", ()),
        ("DateGreaterThan", "aws:CurrentTime", ("2020-01-01T00:00:00Z",)),
    ]
    assert stmt.conditions[3].set_qualifier == "ForAllValues"


@pytest.mark.parametrize("base", sorted(BASE_CONDITION_OPERATORS))
@pytest.mark.parametrize("qualifier", [None, "ForAnyValue", "ForAllValues"])
@pytest.mark.parametrize("if_exists", [False, True])
def test_condition_operator_catalogue(base: str, qualifier: str | None, if_exists: bool) -> None:
    operator = (f"{qualifier}:" if qualifier else "") + base + ("IfExists" if if_exists else "")
    text = doc({**IDENTITY_STMT, "Condition": {operator: {"aws:SourceIp": "x"}}})
    if base == "Null" and if_exists:
        with pytest.raises(PolicyDocumentError, match="Null has no IfExists form"):
            parse_policy(text, kind="identity")
        return
    (stmt,) = parse_policy(text, kind="identity").statements
    assert stmt.conditions == (
        Condition(operator, base, if_exists, cast(Any, qualifier), "aws:SourceIp", ("x",)),
    )


def test_empty_condition_blocks_and_empty_sids_are_accepted() -> None:
    stmt = {**IDENTITY_STMT, "Sid": "", "Condition": {}}
    stmt2 = {**IDENTITY_STMT, "Sid": "", "Condition": {"StringEquals": {}}}
    parsed = parse_policy(doc(stmt, stmt2), kind="identity")
    assert [s.sid for s in parsed.statements] == ["", ""]
    assert all(s.conditions == () for s in parsed.statements)


def test_sid_rules_by_kind() -> None:
    for kind in ("resource", "trust"):
        stmt = {**BASE_STMT[kind], "Sid": "Any chars: allowed here!"}
        (parsed,) = parse_policy(doc(stmt), kind=kind).statements
        assert parsed.sid == "Any chars: allowed here!"
    (parsed,) = parse_policy(doc({**IDENTITY_STMT, "Sid": "Abc123"}), kind="identity").statements
    assert parsed.sid == "Abc123"


def test_max_size_boundary() -> None:
    text = doc(IDENTITY_STMT)
    assert parse_policy(text, kind="identity", max_size=len(text)).statements
    with pytest.raises(PolicyDocumentError, match=rf"{len(text)} characters long; the maximum"):
        parse_policy(text, kind="identity", max_size=len(text) - 1)


def test_types_are_frozen_and_hashable() -> None:
    parsed = parse_policy(KMS_DEFAULT_KEY_POLICY, kind="resource")
    assert hash(parsed) == hash(parse_policy(KMS_DEFAULT_KEY_POLICY, kind="resource"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.statements[0].effect = "Deny"  # type: ignore[misc]
    principal = parsed.statements[0].principal
    assert principal is not None
    with pytest.raises(TypeError):
        principal.by_kind["AWS"] = ()  # type: ignore[index]
    source: dict[PrincipalKind, tuple[str, ...]] = {"AWS": ("*",)}
    copy = Principals(by_kind=source)
    source["Service"] = ("x",)
    assert copy.values("Service") == ()
    assert hash(Principals(by_kind={"AWS": ("a",), "Service": ("b",)})) == hash(
        Principals(by_kind={"Service": ("b",), "AWS": ("a",)})
    )
    with pytest.raises(ValueError, match="wildcard"):
        Principals(wildcard=True, by_kind={"AWS": ("*",)})


def test_policy_document_error_is_value_error_not_aws_error() -> None:
    assert issubclass(PolicyDocumentError, ValueError)
    assert PolicyDocumentError.__mro__[1] is ValueError


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown policy kind"):
        parse_policy(doc(IDENTITY_STMT), kind="bucket")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("kms:*", "kms:Encrypt", True),
        ("*", "s3:GetObject", True),
        ("KMS:encrypt", "kms:Encrypt", True),
        ("kms:Get*", "kms:GetKeyPolicy", True),
        ("kms:Get*", "kms:ListKeys", False),
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get?bject", "s3:GetObjectAcl", False),
        ("s3:Get.bject", "s3:GetObject", False),
        ("kms:Encrypt", "kms:EncryptX", False),
    ],
)
def test_statement_actions_match(pattern: str, action: str, expected: bool) -> None:
    assert statement_actions_match(pattern, action) is expected


# ---------------------------------------------------------------------------------------------
# Invalid documents: every rule has a failing example with a helpful message.

ARN = "arn:aws:iam::111122223333:root"

INVALID: list[tuple[str, PolicyKind, str, str]] = [
    # JSON level
    ("not-json", "identity", '{"Statement": [', "not valid JSON"),
    ("trailing-garbage", "identity", doc(IDENTITY_STMT) + "x", "not valid JSON"),
    ("empty", "identity", "   ", "Policy document is empty"),
    ("array-root", "identity", "[]", "must be a JSON object"),
    ("string-root", "identity", '"policy"', "must be a JSON object"),
    ("nan", "identity", '{"Statement": NaN}', "NaN is not a JSON value"),
    ("infinity", "identity", '{"Version": -Infinity}', "-Infinity is not a JSON value"),
    (
        "duplicate-top-level-key",
        "identity",
        '{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}',
        'duplicate JSON key "Version"',
    ),
    (
        "duplicate-statement-key",
        "identity",
        '{"Statement":{"Effect":"Allow","Action":"s3:*","Action":"kms:*","Resource":"*"}}',
        'duplicate JSON key "Action"',
    ),
    (
        "duplicate-condition-key",
        "identity",
        '{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":'
        '{"IpAddress":{"aws:SourceIp":"1.2.3.4","aws:SourceIp":"5.6.7.8"}}}}',
        'duplicate JSON key "aws:SourceIp"',
    ),
    ("deeply-nested", "identity", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    # Top-level elements
    ("bad-version", "identity", doc(IDENTITY_STMT, Version="2012-10-18"), 'Version "2012-10-18"'),
    ("numeric-version", "identity", doc(IDENTITY_STMT, Version=2012), "Version must be a string"),
    ("null-version", "identity", doc(IDENTITY_STMT, Version=None), "not null"),
    ("numeric-id", "identity", doc(IDENTITY_STMT, Id=7), "Id must be a string, not a number"),
    ("unknown-top-level", "identity", doc(IDENTITY_STMT, Statements=[]), '"Statements"'),
    ("lowercase-statement", "identity", doc(Statement=None, statement=[]), '"statement"'),
    ("missing-statement", "identity", json.dumps({"Version": "2012-10-17"}), '"Statement"'),
    ("empty-statement-list", "identity", doc(Statement=[]), "Statement list must not be empty"),
    ("statement-string", "identity", doc(Statement="Allow"), "not a string"),
    ("statement-item-string", "identity", doc(Statement=["x"]), "Statement 0 must be an object"),
    # Statement elements
    (
        "unknown-statement-element",
        "identity",
        doc({**IDENTITY_STMT, "Actions": "s3:*"}),
        '"Actions"',
    ),
    ("missing-effect", "identity", doc(drop(IDENTITY_STMT, "Effect")), 'missing the "Effect"'),
    ("lowercase-effect", "identity", doc({**IDENTITY_STMT, "Effect": "allow"}), 'not "allow"'),
    ("boolean-effect", "identity", doc({**IDENTITY_STMT, "Effect": True}), "not a boolean"),
    (
        "action-and-not-action",
        "identity",
        doc({**IDENTITY_STMT, "NotAction": "s3:*"}),
        'both "Action" and "NotAction"',
    ),
    ("no-action", "identity", doc(drop(IDENTITY_STMT, "Action")), '"Action" or "NotAction"'),
    ("empty-action", "identity", doc({**IDENTITY_STMT, "Action": []}), "must not be an empty list"),
    ("numeric-action", "identity", doc({**IDENTITY_STMT, "Action": 5}), "not a number"),
    ("action-list-of-ints", "identity", doc({**IDENTITY_STMT, "Action": [5]}), "must be strings"),
    (
        "action-without-service",
        "identity",
        doc({**IDENTITY_STMT, "Action": "GetObject"}),
        "prefixed",
    ),
    ("action-empty-name", "identity", doc({**IDENTITY_STMT, "Action": "s3:"}), '"s3:" is invalid'),
    ("action-with-space", "identity", doc({**IDENTITY_STMT, "Action": "s3:Get Object"}), "invalid"),
    ("action-empty-string", "identity", doc({**IDENTITY_STMT, "Action": ""}), '"" is invalid'),
    (
        "resource-and-not-resource",
        "identity",
        doc({**IDENTITY_STMT, "NotResource": "*"}),
        'both "Resource" and "NotResource"',
    ),
    ("identity-no-resource", "identity", doc(drop(IDENTITY_STMT, "Resource")), '"NotResource"'),
    ("resource-no-resource", "resource", doc(drop(RESOURCE_STMT, "Resource")), '"NotResource"'),
    ("empty-resource", "identity", doc({**IDENTITY_STMT, "Resource": []}), "empty list"),
    ("resource-not-arn", "identity", doc({**IDENTITY_STMT, "Resource": "bucket"}), "ARN format"),
    ("resource-short-arn", "identity", doc({**IDENTITY_STMT, "Resource": "arn:aws:s3"}), "ARN"),
    (
        "resource-no-res-part",
        "identity",
        doc({**IDENTITY_STMT, "Resource": "arn:aws:s3:::"}),
        "ARN",
    ),
    (
        "trust-with-resource",
        "trust",
        doc({**TRUST_STMT, "Resource": "*"}),
        'trust policies must not contain "Resource"',
    ),
    (
        "trust-with-not-resource",
        "trust",
        doc({**TRUST_STMT, "NotResource": "*"}),
        'trust policies must not contain "NotResource"',
    ),
    # Principal rules
    (
        "identity-with-principal",
        "identity",
        doc({**IDENTITY_STMT, "Principal": "*"}),
        'identity policies must not contain "Principal"',
    ),
    (
        "identity-with-not-principal",
        "identity",
        doc({**IDENTITY_STMT, "Effect": "Deny", "NotPrincipal": {"AWS": ARN}}),
        'identity policies must not contain "NotPrincipal"',
    ),
    ("resource-no-principal", "resource", doc(drop(RESOURCE_STMT, "Principal")), '"NotPrincipal"'),
    ("trust-no-principal", "trust", doc(drop(TRUST_STMT, "Principal")), 'contain "Principal"'),
    (
        "principal-and-not-principal",
        "resource",
        doc({**RESOURCE_STMT, "Effect": "Deny", "NotPrincipal": {"AWS": ARN}}),
        'both "Principal" and "NotPrincipal"',
    ),
    (
        "trust-not-principal",
        "trust",
        doc({**drop(TRUST_STMT, "Principal"), "Effect": "Deny", "NotPrincipal": {"AWS": ARN}}),
        'trust policies do not support "NotPrincipal"',
    ),
    (
        "not-principal-with-allow",
        "resource",
        doc({**drop(RESOURCE_STMT, "Principal"), "NotPrincipal": {"AWS": ARN}}),
        '"NotPrincipal" may only be used with "Effect": "Deny"',
    ),
    ("principal-arn-string", "resource", doc({**RESOURCE_STMT, "Principal": ARN}), 'be "*" or an'),
    ("principal-list", "resource", doc({**RESOURCE_STMT, "Principal": ["*"]}), "not a list"),
    ("principal-empty-object", "resource", doc({**RESOURCE_STMT, "Principal": {}}), "at least one"),
    (
        "principal-unknown-kind",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"aws": ARN}}),
        'unknown principal type "aws"',
    ),
    (
        "principal-empty-values",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"AWS": []}}),
        "Principal AWS must not be an empty list",
    ),
    (
        "principal-numeric-account",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"AWS": 111122223333}}),
        "not a number",
    ),
    (
        "principal-partial-wildcard",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}}),
        "wildcards cannot match part of a principal",
    ),
    (
        "principal-service-wildcard",
        "trust",
        doc({**TRUST_STMT, "Principal": {"Service": "*"}}),
        "wildcards",
    ),
    (
        "principal-not-arn",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"AWS": "alice"}}),
        'AWS value "alice" is invalid',
    ),
    (
        "principal-short-account",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"AWS": "1111"}}),
        "12-digit account ID",
    ),
    (
        "principal-bad-canonical-user",
        "resource",
        doc({**RESOURCE_STMT, "Principal": {"CanonicalUser": "abc"}}),
        "canonical user ID",
    ),
    (
        "principal-empty-service",
        "trust",
        doc({**TRUST_STMT, "Principal": {"Service": ""}}),
        'Service value "" is invalid',
    ),
    # Sid rules
    ("numeric-sid", "identity", doc({**IDENTITY_STMT, "Sid": 1}), "Sid must be a string"),
    (
        "identity-sid-with-space",
        "identity",
        doc({**IDENTITY_STMT, "Sid": "Allow reads"}),
        "ASCII letters and digits",
    ),
    ("identity-sid-unicode", "identity", doc({**IDENTITY_STMT, "Sid": "Ab\u00e9"}), "ASCII"),
    (
        "duplicate-sid",
        "resource",
        doc({**RESOURCE_STMT, "Sid": "One"}, {**RESOURCE_STMT, "Sid": "One"}),
        'Sid) must be unique; "One"',
    ),
    # Conditions
    ("condition-list", "identity", doc({**IDENTITY_STMT, "Condition": []}), "Condition must be"),
    (
        "unknown-operator",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEqual": {"aws:SourceIp": "x"}}}),
        'unknown condition operator "StringEqual"',
    ),
    (
        "lowercase-operator",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"stringequals": {"aws:SourceIp": "x"}}}),
        "unknown condition operator",
    ),
    (
        "bad-set-qualifier",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"ForSomeValues:StringEquals": {"aws:x": "x"}}}),
        "unknown condition operator",
    ),
    (
        "qualifier-without-colon",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"ForAnyValueStringEquals": {"aws:x": "x"}}}),
        "unknown condition operator",
    ),
    (
        "double-if-exists",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEqualsIfExistsIfExists": {"aws:x": "x"}}}),
        "unknown condition operator",
    ),
    (
        "null-if-exists",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"NullIfExists": {"aws:x": "true"}}}),
        "Null has no IfExists form",
    ),
    (
        "operator-block-string",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEquals": "x"}}),
        "must map condition keys to values",
    ),
    (
        "condition-key-without-service",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"IpAddress": {"SourceIp": "1.2.3.4"}}}),
        'condition key "SourceIp" is invalid',
    ),
    (
        "condition-null-value",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEquals": {"aws:x": None}}}),
        "strings, numbers or booleans, not null",
    ),
    (
        "condition-nested-list",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEquals": {"aws:x": [["a"]]}}}),
        "not a list",
    ),
    (
        "condition-object-value",
        "identity",
        doc({**IDENTITY_STMT, "Condition": {"StringEquals": {"aws:x": {"a": "b"}}}}),
        "not an object",
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [pytest.param(kind, text, message, id=name) for name, kind, text, message in INVALID],
)
def test_invalid_documents(kind: PolicyKind, text: str, message: str) -> None:
    with pytest.raises(PolicyDocumentError) as excinfo:
        parse_policy(text, kind=kind)
    assert message in str(excinfo.value)


def test_error_names_the_statement() -> None:
    text = doc(IDENTITY_STMT, {**IDENTITY_STMT, "Sid": "Second", "Action": "bogus"})
    with pytest.raises(PolicyDocumentError, match=r'^Statement 1 \(Sid "Second"\): Action "bogus"'):
        parse_policy(text, kind="identity")


# ---------------------------------------------------------------------------------------------
# Property-based tests

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_ALNUM = _LOWER + _LOWER.upper() + _DIGITS


def _chars(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


_account_ids = _chars(_DIGITS, 12, 12)
_actions = st.one_of(
    st.just("*"),
    _joined(_chars(_LOWER + _DIGITS + "-", 1, 12), st.just(":"), _chars(_ALNUM + "*?", 1, 16)),
)
_resources = st.one_of(
    st.just("*"),
    _joined(
        st.just("arn:aws:"),
        _chars(_LOWER + _DIGITS + "-", 1, 8),
        st.just(":"),
        _chars(_LOWER + _DIGITS + "-", 0, 12),
        st.just(":"),
        _chars(_DIGITS, 0, 12),
        st.just(":"),
        _chars(_ALNUM + "/*?:._${}-", 1, 24),
    ),
)
_principal_values: dict[PrincipalKind, st.SearchStrategy[str]] = {
    "AWS": st.one_of(
        st.just("*"),
        _account_ids,
        _joined(
            st.just("arn:aws:iam::"),
            _account_ids,
            st.sampled_from([":root", ":user/", ":role/path/"]),
            _chars(_ALNUM, 0, 8),
        ),
    ),
    "Service": _joined(_chars(_LOWER + _DIGITS + "-", 1, 10), st.just(".amazonaws.com")),
    "Federated": st.one_of(
        st.just("accounts.google.com"),
        _joined(
            st.just("arn:aws:iam::"), _account_ids, st.just(":saml-provider/"), _chars(_ALNUM, 1, 8)
        ),
    ),
    "CanonicalUser": _chars("0123456789abcdef", 64, 64),
}
_condition_keys = _joined(
    _chars(_LOWER + _DIGITS + ".-", 1, 12), st.just(":"), _chars(_ALNUM + "/_-", 1, 16)
)
_condition_scalars = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _expected_condition_value(value: str | bool | int | float) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def _string_or_list(draw: st.DrawFn, values: st.SearchStrategy[str]) -> tuple[Any, tuple[str, ...]]:
    items = draw(st.lists(values, min_size=1, max_size=4))
    if len(items) == 1 and draw(st.booleans()):
        return items[0], tuple(items)
    return items, tuple(items)


@st.composite
def _principals(draw: st.DrawFn) -> tuple[Any, Principals]:
    if draw(st.integers(0, 4)) == 0:
        return "*", ANY_PRINCIPAL
    kinds = draw(st.lists(st.sampled_from(list(_principal_values)), min_size=1, unique=True))
    raw: dict[str, Any] = {}
    expected: dict[PrincipalKind, tuple[str, ...]] = {}
    for principal_kind in kinds:
        raw[principal_kind], expected[principal_kind] = draw(
            _string_or_list(_principal_values[principal_kind])
        )
    return raw, Principals(by_kind=expected)


@st.composite
def _conditions(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Condition, ...]]:
    raw: dict[str, Any] = {}
    expected: list[Condition] = []
    for base in draw(st.lists(st.sampled_from(sorted(BASE_CONDITION_OPERATORS)), max_size=3)):
        qualifier = draw(st.sampled_from([None, "ForAnyValue", "ForAllValues"]))
        if_exists = base != "Null" and draw(st.booleans())
        operator = (f"{qualifier}:" if qualifier else "") + base + ("IfExists" if if_exists else "")
        if operator in raw:
            continue
        tests: dict[str, Any] = {}
        for key in draw(st.lists(_condition_keys, min_size=1, max_size=3, unique=True)):
            values = draw(st.lists(_condition_scalars, max_size=3))
            if len(values) == 1 and draw(st.booleans()):
                tests[key] = values[0]
            else:
                tests[key] = values
            expected.append(
                Condition(
                    operator=operator,
                    base_operator=base,
                    if_exists=if_exists,
                    set_qualifier=cast(Any, qualifier),
                    key=key,
                    values=tuple(_expected_condition_value(v) for v in values),
                )
            )
        raw[operator] = tests
    return raw, tuple(expected)


@st.composite
def _statement(
    draw: st.DrawFn, kind: PolicyKind, sid: str | None
) -> tuple[dict[str, Any], Statement]:
    raw: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    if sid is not None:
        raw["Sid"] = sid
    effect: Effect = draw(st.sampled_from(get_args(Effect)))
    raw["Effect"] = effect
    if kind != "identity":
        principal_raw, principal = draw(_principals())
        if kind == "resource" and effect == "Deny" and draw(st.booleans()):
            raw["NotPrincipal"], fields["not_principal"] = principal_raw, principal
        else:
            raw["Principal"], fields["principal"] = principal_raw, principal
    name = draw(st.sampled_from(["Action", "NotAction"]))
    raw[name], fields["action" if name == "Action" else "not_action"] = draw(
        _string_or_list(_actions)
    )
    if kind != "trust":
        name = draw(st.sampled_from(["Resource", "NotResource"]))
        raw[name], fields["resource" if name == "Resource" else "not_resource"] = draw(
            _string_or_list(_resources)
        )
    if draw(st.booleans()):
        raw["Condition"], fields["conditions"] = draw(_conditions())
    # JSON object member order must not matter.
    keys = draw(st.permutations(list(raw)))
    return {k: raw[k] for k in keys}, Statement(sid=sid, effect=effect, **fields)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[PolicyKind, dict[str, Any], PolicyDocument]:
    kind = draw(st.sampled_from(KINDS))
    count = draw(st.integers(1, 4))
    # Identity policies only allow [A-Za-z0-9] in Sids; other kinds allow any text.
    sid_alphabet = (
        st.characters(codec="ascii", categories=["Lu", "Ll", "Nd"])
        if kind == "identity"
        else st.characters(codec="ascii", categories=["Lu", "Ll", "Nd", "Zs", "Po"])
    )
    sids = draw(
        st.lists(
            st.text(sid_alphabet, min_size=1, max_size=10),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    pairs = [draw(_statement(kind, sids[i] if draw(st.booleans()) else None)) for i in range(count)]
    raw: dict[str, Any] = {}
    version = draw(st.sampled_from([None, "2012-10-17", "2008-10-17"]))
    if version is not None:
        raw["Version"] = version
    policy_id = draw(st.none() | st.text(max_size=10))
    if policy_id is not None:
        raw["Id"] = policy_id
    if count == 1 and draw(st.booleans()):
        raw["Statement"] = pairs[0][0]
    else:
        raw["Statement"] = [p[0] for p in pairs]
    expected = PolicyDocument(
        version=version or "2008-10-17",
        id=policy_id,
        statements=tuple(p[1] for p in pairs),
    )
    return kind, raw, expected


@settings(max_examples=200, deadline=None)
@given(_documents(), st.booleans())
def test_random_valid_documents_round_trip(
    generated: tuple[PolicyKind, dict[str, Any], PolicyDocument], pretty: bool
) -> None:
    kind, raw, expected = generated
    text = json.dumps(raw, indent=2 if pretty else None)
    assert parse_policy(text, kind=kind) == expected


_json_keys = st.one_of(
    st.sampled_from(
        [
            "Version",
            "Id",
            "Statement",
            "Sid",
            "Effect",
            "Principal",
            "NotPrincipal",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
            "AWS",
            "Service",
            "StringEquals",
            "NullIfExists",
            "ForAnyValue:Bool",
            "aws:SourceIp",
        ]
    ),
    st.text(max_size=6),
)
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["*", "Allow", "Deny", "2012-10-17", "kms:*", ARN, "s3:Get*"]),
    st.text(max_size=8),
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_json_keys, children, max_size=5)
    ),
    max_leaves=20,
)


def _parse_or_policy_error(text: str, kind: PolicyKind, max_size: int | None = None) -> None:
    with contextlib.suppress(PolicyDocumentError):
        parse_policy(text, kind=kind, max_size=max_size)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(KINDS), st.none() | st.integers(0, 50))
def test_garbage_text_only_raises_policy_document_error(
    text: str, kind: PolicyKind, max_size: int | None
) -> None:
    _parse_or_policy_error(text, kind, max_size)


@settings(max_examples=200, deadline=None)
@given(_json_values, st.sampled_from(KINDS))
def test_garbage_json_only_raises_policy_document_error(value: Any, kind: PolicyKind) -> None:
    _parse_or_policy_error(json.dumps(value), kind)
    _parse_or_policy_error(json.dumps({"Version": "2012-10-17", "Statement": value}), kind)


@settings(max_examples=200, deadline=None)
@given(_documents(), st.data())
def test_mutated_documents_only_raise_policy_document_error(
    generated: tuple[PolicyKind, dict[str, Any], PolicyDocument], data: st.DataObject
) -> None:
    kind, raw, _ = generated
    statements = raw["Statement"] if isinstance(raw["Statement"], list) else [raw["Statement"]]
    target = data.draw(st.sampled_from(statements))
    element = data.draw(_json_keys)
    target[element] = data.draw(_json_values)
    _parse_or_policy_error(json.dumps(raw), kind)
    _parse_or_policy_error(json.dumps(raw), data.draw(st.sampled_from(KINDS)))
