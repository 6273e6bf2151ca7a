"""Tests for AWS policy evaluation (sealbox.iam.policy.evaluate)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sealbox.iam.policy.document import PolicyDocumentError, PolicyKind, parse_policy
from sealbox.iam.policy.evaluate import (
    AuthzPrincipal,
    AuthzRequest,
    CompiledPolicy,
    Decision,
    Result,
    compile_policy,
    compile_text,
    evaluate,
)

ALLOW = Decision.ALLOW
EXPLICIT = Decision.EXPLICIT_DENY
IMPLICIT = Decision.IMPLICIT_DENY

A = "111122223333"
B = "444455556666"
C = "777788889999"

ROOT_A = AuthzPrincipal(f"arn:aws:iam::{A}:root", A, "Account", A)
ALICE = AuthzPrincipal(
    f"arn:aws:iam::{A}:user/dev/alice", A, "User", "AIDAALICE", "alice", tags={"Team": "ops"}
)
CAROL = AuthzPrincipal(f"arn:aws:iam::{A}:user/carol", A, "User", "AIDACAROL", "carol")
ADMIN_ROLE = f"arn:aws:iam::{A}:role/ops/Admin"
SESSION = AuthzPrincipal(
    f"arn:aws:sts::{A}:assumed-role/Admin/sess1",
    A,
    "AssumedRole",
    "AROAADMIN:sess1",
    None,
    role_arn=ADMIN_ROLE,
    tags={"team": "sec"},
)
OTHER_SESSION = AuthzPrincipal(
    f"arn:aws:sts::{A}:assumed-role/Admin/sess2",
    A,
    "AssumedRole",
    "AROAADMIN:sess2",
    None,
    role_arn=ADMIN_ROLE,
)
READER_SESSION = AuthzPrincipal(
    f"arn:aws:sts::{A}:assumed-role/Reader/s",
    A,
    "AssumedRole",
    "AROAREADER:s",
    None,
    role_arn=f"arn:aws:iam::{A}:role/Reader",
)
BOB = AuthzPrincipal(f"arn:aws:iam::{B}:user/bob", B, "User", "AIDABOB", "bob")
ROOT_B = AuthzPrincipal(f"arn:aws:iam::{B}:root", B, "Account", B)
SERVICE = AuthzPrincipal("cloudtrail.amazonaws.com", "", "AWSService", "")

KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd"
OBJECT = "arn:aws:s3:::bucket/obj"
ROOT_A_ARN = f"arn:aws:iam::{A}:root"
ROOT_B_ARN = f"arn:aws:iam::{B}:root"


def policy(kind: PolicyKind, *statements: dict[str, Any], **top: Any) -> CompiledPolicy:
    body: dict[str, Any] = {"Version": "2012-10-17", **top, "Statement": list(statements)}
    return compile_text(json.dumps(body), kind)


def identity(*statements: dict[str, Any], **top: Any) -> CompiledPolicy:
    return policy("identity", *statements, **top)


def resource(*statements: dict[str, Any], **top: Any) -> CompiledPolicy:
    return policy("resource", *statements, **top)


def stmt(effect: str = "Allow", action: Any = "*", res: Any = "*", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Effect": effect}
    if "not_action" in extra:
        body["NotAction"] = extra.pop("not_action")
    else:
        body["Action"] = action
    if "not_resource" in extra:
        body["NotResource"] = extra.pop("not_resource")
    else:
        body["Resource"] = res
    for name, value in extra.items():
        body[{"principal": "Principal", "not_principal": "NotPrincipal"}.get(name, name)] = value
    return body


def allow(action: Any = "*", res: Any = "*", **extra: Any) -> dict[str, Any]:
    return stmt("Allow", action, res, **extra)


def deny(action: Any = "*", res: Any = "*", **extra: Any) -> dict[str, Any]:
    return stmt("Deny", action, res, **extra)


def aws(*values: str) -> dict[str, Any]:
    return {"AWS": list(values) if len(values) > 1 else values[0]}


def req(
    action: str = "kms:Decrypt",
    res: str = KEY,
    account: str | None = A,
    ctx: Mapping[str, str | Sequence[str]] | None = None,
    **context: str | Sequence[str],
) -> AuthzRequest:
    """A request; keyword context keys spell ':' as '__' (``aws__SourceIp``)."""
    merged = {k.replace("__", ":"): v for k, v in context.items()}
    merged.update(ctx or {})
    return AuthzRequest(action, res, account, merged)


@dataclass
class Case:
    principal: AuthzPrincipal
    expected: Decision
    ids: Sequence[CompiledPolicy] = ()
    res: CompiledPolicy | None = None
    request: AuthzRequest = field(default_factory=req)
    gates: bool = False
    grant: bool = False

    def run(self) -> Result:
        return evaluate(
            self.principal,
            self.request,
            identity_policies=self.ids,
            resource_policy=self.res,
            resource_policy_gates=self.gates,
            grant_allows=self.grant,
        )


def run_cases(cases: dict[str, Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", list(cases.values()), ids=list(cases))


ALLOW_ALL = identity(allow())
ALLOW_KMS = identity(allow("kms:*"))
DENY_ALL = identity(deny())

# --------------------------------------------------------------------------------------------
# Identity policies, same account, no resource policy (S3 semantics)

IDENTITY_CASES = {
    "no policies": Case(ALICE, IMPLICIT),
    "allow": Case(ALICE, ALLOW, [ALLOW_KMS]),
    "allow other service": Case(ALICE, IMPLICIT, [identity(allow("s3:*"))]),
    "allow in second policy": Case(ALICE, ALLOW, [identity(allow("s3:*")), ALLOW_KMS]),
    "deny beats allow": Case(ALICE, EXPLICIT, [ALLOW_ALL, identity(deny("kms:Decrypt"))]),
    "deny in same policy": Case(ALICE, EXPLICIT, [identity(allow(), deny("kms:*"))]),
    "deny of other action": Case(ALICE, ALLOW, [identity(allow(), deny("kms:Encrypt"))]),
    "deny alone": Case(ALICE, EXPLICIT, [DENY_ALL]),
    "action case-insensitive": Case(ALICE, ALLOW, [identity(allow("KMS:dEcRyPt"))]),
    "request action case-insensitive": Case(
        ALICE, ALLOW, [identity(allow("kms:Decrypt"))], request=req("KMS:DECRYPT")
    ),
    "action prefix wildcard": Case(ALICE, ALLOW, [identity(allow("kms:De*"))]),
    "action prefix mismatch": Case(ALICE, IMPLICIT, [identity(allow("kms:En*"))]),
    "action ? wildcard": Case(ALICE, ALLOW, [identity(allow("kms:?ecrypt"))]),
    "action ? needs one char": Case(ALICE, IMPLICIT, [identity(allow("kms:?Decrypt"))]),
    "action is whole string": Case(ALICE, IMPLICIT, [identity(allow("kms:Decryp"))]),
    "action list": Case(ALICE, ALLOW, [identity(allow(["s3:GetObject", "kms:Decrypt"]))]),
    "service wildcard": Case(ALICE, ALLOW, [identity(allow("*:Decrypt"))]),
    "NotAction allows others": Case(ALICE, ALLOW, [identity(allow(not_action="iam:*"))]),
    "NotAction excludes listed": Case(ALICE, IMPLICIT, [identity(allow(not_action="kms:*"))]),
    "NotAction * matches nothing": Case(ALICE, IMPLICIT, [identity(allow(not_action="*"))]),
    "deny NotAction": Case(ALICE, EXPLICIT, [ALLOW_ALL, identity(deny(not_action="s3:*"))]),
    "deny NotAction spares listed": Case(
        ALICE, ALLOW, [ALLOW_ALL, identity(deny(not_action="kms:Decrypt"))]
    ),
    "resource exact": Case(ALICE, ALLOW, [identity(allow("kms:*", KEY))]),
    "resource other key": Case(ALICE, IMPLICIT, [identity(allow("kms:*", KEY + "x"))]),
    "resource wildcard spans colons": Case(
        ALICE,
        ALLOW,
        [identity(allow("s3:*", "arn:aws:s3:*:b:c"))],
        request=req("s3:GetObject", "arn:aws:s3:::bucket/a:b:c"),
    ),
    "resource wildcard region": Case(
        ALICE, ALLOW, [identity(allow("kms:*", f"arn:aws:kms:*:{A}:key/*"))]
    ),
    "resource wildcard other account": Case(
        ALICE, IMPLICIT, [identity(allow("kms:*", f"arn:aws:kms:*:{B}:key/*"))]
    ),
    "resource ? wildcard": Case(
        ALICE, ALLOW, [identity(allow("kms:*", f"arn:aws:kms:us-east-?:{A}:key/*"))]
    ),
    "resource case-sensitive": Case(
        ALICE,
        IMPLICIT,
        [identity(allow("s3:*", "arn:aws:s3:::Bucket/*"))],
        request=req("s3:GetObject", OBJECT),
    ),
    "NotResource allows others": Case(
        ALICE, ALLOW, [identity(allow(not_resource="arn:aws:s3:::secret/*"))]
    ),
    "NotResource excludes listed": Case(
        ALICE, IMPLICIT, [identity(allow(not_resource="arn:aws:kms:*:*:*"))]
    ),
    "deny NotResource": Case(
        ALICE, EXPLICIT, [ALLOW_ALL, identity(deny(not_resource="arn:aws:s3:::*"))]
    ),
    "deny NotResource spares listed": Case(
        ALICE, ALLOW, [ALLOW_ALL, identity(deny(not_resource=KEY))]
    ),
    "resource-less action needs *": Case(
        ALICE,
        IMPLICIT,
        [identity(allow("kms:*", "arn:aws:kms:*:*:*"))],
        request=req("kms:ListKeys", "*"),
    ),
    "resource-less action with *": Case(
        ALICE, ALLOW, [identity(allow("kms:*"))], request=req("kms:ListKeys", "*", None)
    ),
    "conditions all hold": Case(
        ALICE,
        ALLOW,
        [
            identity(
                allow(
                    Condition={
                        "Bool": {"aws:SecureTransport": "true"},
                        "StringEquals": {"test:Env": "prod"},
                    }
                )
            )
        ],
        request=req(aws__SecureTransport="true", test__Env="prod"),
    ),
    "conditions AND": Case(
        ALICE,
        IMPLICIT,
        [
            identity(
                allow(
                    Condition={
                        "Bool": {"aws:SecureTransport": "true"},
                        "StringEquals": {"test:Env": "prod"},
                    }
                )
            )
        ],
        request=req(aws__SecureTransport="true", test__Env="dev"),
    ),
    "two keys in one operator AND": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"StringEquals": {"test:Env": "prod", "test:Tier": "web"}}))],
        request=req(test__Env="prod", test__Tier="db"),
    ),
    "condition values OR": Case(
        ALICE,
        ALLOW,
        [identity(allow(Condition={"StringEquals": {"test:Env": ["dev", "prod"]}}))],
        request=req(test__Env="prod"),
    ),
    "condition missing key": Case(
        ALICE, IMPLICIT, [identity(allow(Condition={"StringEquals": {"test:Env": "prod"}}))]
    ),
    "deny with failing condition": Case(
        ALICE,
        ALLOW,
        [ALLOW_ALL, identity(deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))],
        request=req(aws__SecureTransport="true"),
    ),
    "deny with holding condition": Case(
        ALICE,
        EXPLICIT,
        [ALLOW_ALL, identity(deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))],
        request=req(aws__SecureTransport="false"),
    ),
    "deny negated operator, key absent": Case(
        ALICE,
        EXPLICIT,
        [ALLOW_ALL, identity(deny(Condition={"StringNotEquals": {"test:Env": "prod"}}))],
    ),
    "deny IfExists, key absent": Case(
        ALICE,
        EXPLICIT,
        [ALLOW_ALL, identity(deny(Condition={"StringNotEqualsIfExists": {"test:Env": "prod"}}))],
    ),
    "allow IfExists, key absent": Case(
        ALICE,
        ALLOW,
        [identity(allow(Condition={"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}))],
    ),
    "allow IfExists, key present and wrong": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}))],
        request=req(aws__SourceIp="192.0.2.1"),
    ),
    "context key case-insensitive": Case(
        ALICE,
        ALLOW,
        [identity(allow(Condition={"StringEquals": {"Test:ENV": "prod"}}))],
        request=req(TEST__env="prod"),
    ),
    "ForAllValues with no tags allows": Case(
        ALICE,
        ALLOW,
        [identity(allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}))],
    ),
    "ForAnyValue with no tags": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}))],
    ),
    "ForAllValues with extra tag": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}))],
        request=req(aws__TagKeys=["a", "c"]),
    ),
    "malformed numeric condition": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"NumericLessThan": {"test:N": "ten"}}))],
        request=req(test__N="5"),
    ),
    "malformed request value": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"NumericLessThan": {"test:N": "10"}}))],
        request=req(test__N="five"),
    ),
    "role session identity": Case(SESSION, ALLOW, [ALLOW_KMS]),
    "role session deny": Case(SESSION, EXPLICIT, [ALLOW_KMS, DENY_ALL]),
    "account-less request": Case(ALICE, ALLOW, [ALLOW_KMS], request=req(account=None)),
}


@run_cases(IDENTITY_CASES)
def test_identity_policies(case: Case) -> None:
    assert case.run().decision is case.expected


# --------------------------------------------------------------------------------------------
# Root

ROOT_CASES = {
    "root own account, nothing attached": Case(ROOT_A, ALLOW),
    "root ignores identity deny": Case(ROOT_A, ALLOW, [DENY_ALL]),
    "root own account-less action": Case(ROOT_A, ALLOW, request=req("kms:ListKeys", "*", None)),
    "root denied by resource policy": Case(ROOT_A, EXPLICIT, res=resource(deny(principal="*"))),
    "root denied by resource policy naming the account": Case(
        ROOT_A, EXPLICIT, res=resource(deny(principal=aws(A)))
    ),
    "root cross-account without resource policy": Case(ROOT_B, IMPLICIT),
    "root cross-account, resource policy names account": Case(
        ROOT_B, ALLOW, res=resource(allow(principal=aws(B)))
    ),
    "root cross-account, resource policy names root ARN": Case(
        ROOT_B, ALLOW, res=resource(allow(principal=aws(ROOT_B_ARN)))
    ),
    "root cross-account, resource policy names other account": Case(
        ROOT_B, IMPLICIT, res=resource(allow(principal=aws(C)))
    ),
    "root cross-account, resource policy names a user there": Case(
        ROOT_B, IMPLICIT, res=resource(allow(principal=aws(BOB.arn)))
    ),
    "root cross-account ignores its identity deny": Case(
        ROOT_B, ALLOW, [DENY_ALL], res=resource(allow(principal=aws(B)))
    ),
}


@run_cases(ROOT_CASES)
def test_root(case: Case) -> None:
    assert case.run().decision is case.expected


# --------------------------------------------------------------------------------------------
# Resource policies without gating (S3 semantics)

S3 = req("s3:GetObject", OBJECT)
S3_B = req("s3:GetObject", OBJECT, B)  # a bucket in account B, for cross-account callers from A

S3_CASES = {
    # same account
    "names user directly": Case(
        ALICE, ALLOW, res=resource(allow(principal=aws(ALICE.arn))), request=S3
    ),
    "names other user": Case(
        ALICE, IMPLICIT, res=resource(allow(principal=aws(CAROL.arn))), request=S3
    ),
    "names account only, no identity": Case(
        ALICE, IMPLICIT, res=resource(allow(principal=aws(A))), request=S3
    ),
    "names account root ARN only": Case(
        ALICE, IMPLICIT, res=resource(allow(principal=aws(ROOT_A_ARN))), request=S3
    ),
    "names account, identity allows": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(allow(principal=aws(A))), request=S3
    ),
    "identity alone suffices": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(allow(principal=aws(C))), request=S3
    ),
    "star principal": Case(ALICE, ALLOW, res=resource(allow(principal="*")), request=S3),
    "AWS star principal": Case(ALICE, ALLOW, res=resource(allow(principal=aws("*"))), request=S3),
    "star principal, wrong action": Case(
        ALICE, IMPLICIT, res=resource(allow("s3:PutObject", principal="*")), request=S3
    ),
    "star principal, wrong resource": Case(
        ALICE,
        IMPLICIT,
        res=resource(allow("s3:*", "arn:aws:s3:::other/*", principal="*")),
        request=S3,
    ),
    "star principal, condition fails": Case(
        ALICE,
        IMPLICIT,
        res=resource(allow(principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": C}})),
        request=S3,
    ),
    "role ARN matches its sessions": Case(
        SESSION, ALLOW, res=resource(allow(principal=aws(ADMIN_ROLE))), request=S3
    ),
    "role ARN without path does not match": Case(
        SESSION,
        IMPLICIT,
        res=resource(allow(principal=aws(f"arn:aws:iam::{A}:role/Admin"))),
        request=S3,
    ),
    "session ARN exact": Case(
        SESSION, ALLOW, res=resource(allow(principal=aws(SESSION.arn))), request=S3
    ),
    "other session ARN": Case(
        OTHER_SESSION, IMPLICIT, res=resource(allow(principal=aws(SESSION.arn))), request=S3
    ),
    "other role": Case(
        READER_SESSION, IMPLICIT, res=resource(allow(principal=aws(ADMIN_ROLE))), request=S3
    ),
    "service principal": Case(
        SERVICE,
        ALLOW,
        res=resource(allow(principal={"Service": "cloudtrail.amazonaws.com"})),
        request=S3,
    ),
    "other service principal": Case(
        SERVICE,
        IMPLICIT,
        res=resource(allow(principal={"Service": "logs.amazonaws.com"})),
        request=S3,
    ),
    "AWS principal does not match service": Case(
        SERVICE, IMPLICIT, res=resource(allow(principal=aws(A))), request=S3
    ),
    "service name does not match users": Case(
        ALICE,
        IMPLICIT,
        res=resource(allow(principal={"Service": "cloudtrail.amazonaws.com"})),
        request=S3,
    ),
    "star matches service": Case(SERVICE, ALLOW, res=resource(allow(principal="*")), request=S3),
    "deny naming account applies to its users": Case(
        ALICE, EXPLICIT, [ALLOW_ALL], res=resource(deny(principal=aws(A))), request=S3
    ),
    "deny naming other user": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(deny(principal=aws(CAROL.arn))), request=S3
    ),
    "deny beats direct allow": Case(
        ALICE,
        EXPLICIT,
        res=resource(
            allow(principal=aws(ALICE.arn)),
            deny(principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}}),
        ),
        request=req("s3:GetObject", OBJECT, aws__SecureTransport="false"),
    ),
    "deny condition not met": Case(
        ALICE,
        ALLOW,
        res=resource(
            allow(principal=aws(ALICE.arn)),
            deny(principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}}),
        ),
        request=req("s3:GetObject", OBJECT, aws__SecureTransport="true"),
    ),
    "identity deny beats resource allow": Case(
        ALICE, EXPLICIT, [DENY_ALL], res=resource(allow(principal=aws(ALICE.arn))), request=S3
    ),
    "grant same account": Case(ALICE, ALLOW, request=S3, grant=True),
    # cross account
    "cross: account named, identity allows": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(allow(principal=aws(A))), request=S3_B
    ),
    "cross: account named, no identity": Case(
        ALICE, IMPLICIT, res=resource(allow(principal=aws(A))), request=S3_B
    ),
    "cross: user named, no identity": Case(
        ALICE, IMPLICIT, res=resource(allow(principal=aws(ALICE.arn))), request=S3_B
    ),
    "cross: user named, identity allows": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(allow(principal=aws(ALICE.arn))), request=S3_B
    ),
    "cross: star, identity allows": Case(
        ALICE, ALLOW, [ALLOW_ALL], res=resource(allow(principal="*")), request=S3_B
    ),
    "cross: star, no identity": Case(
        ALICE, IMPLICIT, res=resource(allow(principal="*")), request=S3_B
    ),
    "cross: other account named": Case(
        ALICE, IMPLICIT, [ALLOW_ALL], res=resource(allow(principal=aws(C))), request=S3_B
    ),
    "cross: no resource policy": Case(ALICE, IMPLICIT, [ALLOW_ALL], request=S3_B),
    "cross: role session via role ARN": Case(
        SESSION,
        ALLOW,
        [ALLOW_ALL],
        res=resource(allow(principal=aws(ADMIN_ROLE))),
        request=S3_B,
    ),
    "cross: identity deny": Case(
        ALICE, EXPLICIT, [ALLOW_ALL, DENY_ALL], res=resource(allow(principal="*")), request=S3_B
    ),
    "cross: grant needs identity": Case(ALICE, IMPLICIT, request=S3_B, grant=True),
    "cross: grant with identity": Case(ALICE, ALLOW, [ALLOW_ALL], request=S3_B, grant=True),
    "cross: resource policy action mismatch": Case(
        ALICE,
        IMPLICIT,
        [ALLOW_ALL],
        res=resource(allow("s3:PutObject", principal=aws(A))),
        request=S3_B,
    ),
}


@run_cases(S3_CASES)
def test_resource_policy_without_gating(case: Case) -> None:
    assert case.run().decision is case.expected


# --------------------------------------------------------------------------------------------
# NotPrincipal (with Deny)


def not_principal_deny(*values: str, **kinds: Any) -> CompiledPolicy:
    principals: dict[str, Any] = dict(kinds)
    if values:
        principals["AWS"] = list(values)
    return resource(allow(principal="*"), deny(not_principal=principals))


NOT_PRINCIPAL_CASES = {
    "user and account listed: excluded": Case(
        ALICE, ALLOW, res=not_principal_deny(ALICE.arn, ROOT_A_ARN), request=S3
    ),
    "user and bare account id listed: excluded": Case(
        ALICE, ALLOW, res=not_principal_deny(ALICE.arn, A), request=S3
    ),
    "user listed without account: denied": Case(
        ALICE, EXPLICIT, res=not_principal_deny(ALICE.arn), request=S3
    ),
    "other user of listed account: denied": Case(
        CAROL, EXPLICIT, res=not_principal_deny(ALICE.arn, ROOT_A_ARN), request=S3
    ),
    "account only: root excluded": Case(
        ROOT_A, ALLOW, res=not_principal_deny(ROOT_A_ARN), request=S3
    ),
    "account only: users denied": Case(
        ALICE, EXPLICIT, res=not_principal_deny(ROOT_A_ARN), request=S3
    ),
    "session ARN and account: excluded": Case(
        SESSION, ALLOW, res=not_principal_deny(SESSION.arn, ROOT_A_ARN), request=S3
    ),
    "role ARN and account: session excluded": Case(
        SESSION, ALLOW, res=not_principal_deny(ADMIN_ROLE, ROOT_A_ARN), request=S3
    ),
    "session ARN: other session denied": Case(
        OTHER_SESSION, EXPLICIT, res=not_principal_deny(SESSION.arn, ROOT_A_ARN), request=S3
    ),
    "session ARN without account: denied": Case(
        SESSION, EXPLICIT, res=not_principal_deny(SESSION.arn), request=S3
    ),
    "cross-account caller: denied": Case(
        BOB, EXPLICIT, [ALLOW_ALL], res=not_principal_deny(ALICE.arn, ROOT_A_ARN), request=S3
    ),
    "service listed: excluded": Case(
        SERVICE, ALLOW, res=not_principal_deny(Service="cloudtrail.amazonaws.com"), request=S3
    ),
    "service listed: users denied": Case(
        ALICE, EXPLICIT, res=not_principal_deny(Service="cloudtrail.amazonaws.com"), request=S3
    ),
    "users listed: service denied": Case(
        SERVICE, EXPLICIT, res=not_principal_deny(ALICE.arn, ROOT_A_ARN), request=S3
    ),
    "AWS star: everyone excluded": Case(ALICE, ALLOW, res=not_principal_deny("*"), request=S3),
}


@run_cases(NOT_PRINCIPAL_CASES)
def test_not_principal(case: Case) -> None:
    assert case.run().decision is case.expected


# --------------------------------------------------------------------------------------------
# KMS key policies (resource_policy_gates=True)

KEY_DEFAULT = resource(
    allow("kms:*", principal=aws(ROOT_A_ARN), Sid="Enable IAM User Permissions"),
    Id="key-default-1",
)
KEY_ALICE_ONLY = resource(allow("kms:*", principal=aws(ALICE.arn)))
KEY_CAROL_ONLY = resource(allow("kms:*", principal=aws(CAROL.arn)))
KEY_ENCRYPT_DELEGATION = resource(allow("kms:Encrypt", principal=aws(A)))
KEY_FOR_B = resource(allow(["kms:Decrypt", "kms:DescribeKey"], principal=aws(ROOT_B_ARN)))
KEY_FOR_BOB = resource(allow("kms:Decrypt", principal=aws(BOB.arn)))


def kms(principal: AuthzPrincipal, expected: Decision, *ids: CompiledPolicy, **kw: Any) -> Case:
    return Case(principal, expected, list(ids), gates=True, **kw)


KMS_CASES = {
    "default policy delegates to IAM": kms(ALICE, ALLOW, ALLOW_KMS, res=KEY_DEFAULT),
    "default policy without IAM allow": kms(ALICE, IMPLICIT, res=KEY_DEFAULT),
    "default policy, root": kms(ROOT_A, ALLOW, res=KEY_DEFAULT),
    "bare account id delegates": kms(
        ALICE, ALLOW, ALLOW_KMS, res=resource(allow(principal=aws(A)))
    ),
    "no delegation: IAM alone is not enough": kms(ALICE, IMPLICIT, ALLOW_ALL, res=KEY_CAROL_ONLY),
    "other principal named, IAM allows": kms(CAROL, IMPLICIT, ALLOW_ALL, res=KEY_ALICE_ONLY),
    "principal named directly": kms(ALICE, ALLOW, res=KEY_ALICE_ONLY),
    "root not implicitly allowed": kms(ROOT_A, IMPLICIT, res=KEY_ALICE_ONLY),
    "no key policy": kms(ALICE, IMPLICIT, ALLOW_ALL),
    "no key policy, root": kms(ROOT_A, IMPLICIT),
    "delegation for another action": kms(ALICE, IMPLICIT, ALLOW_KMS, res=KEY_ENCRYPT_DELEGATION),
    "delegation for this action": kms(
        ALICE, ALLOW, ALLOW_KMS, res=KEY_ENCRYPT_DELEGATION, request=req("kms:Encrypt")
    ),
    "delegation condition fails": kms(
        ALICE,
        IMPLICIT,
        ALLOW_KMS,
        res=resource(
            allow(
                principal=aws(A),
                Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            )
        ),
    ),
    "delegation condition holds": kms(
        ALICE,
        ALLOW,
        ALLOW_KMS,
        res=resource(
            allow(
                principal=aws(A),
                Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            )
        ),
        request=req(kms__ViaService="s3.us-east-1.amazonaws.com"),
    ),
    "IAM allows other key only": kms(
        ALICE, IMPLICIT, identity(allow("kms:*", KEY + "-other")), res=KEY_DEFAULT
    ),
    "star with CallerAccount": kms(
        ALICE,
        ALLOW,
        res=resource(
            allow(principal=aws("*"), Condition={"StringEquals": {"kms:CallerAccount": A}})
        ),
        request=req(kms__CallerAccount=A),
    ),
    "star with wrong CallerAccount": kms(
        ALICE,
        IMPLICIT,
        res=resource(
            allow(principal=aws("*"), Condition={"StringEquals": {"kms:CallerAccount": B}})
        ),
        request=req(kms__CallerAccount=A),
    ),
    "role ARN names sessions": kms(SESSION, ALLOW, res=resource(allow(principal=aws(ADMIN_ROLE)))),
    "session through delegation": kms(SESSION, ALLOW, ALLOW_KMS, res=KEY_DEFAULT),
    "identity deny beats key policy": kms(ALICE, EXPLICIT, DENY_ALL, res=KEY_ALICE_ONLY),
    "key policy deny beats everything": kms(
        ALICE,
        EXPLICIT,
        ALLOW_ALL,
        res=resource(allow(principal=aws(ALICE.arn)), deny("kms:Decrypt", principal=aws(A))),
    ),
    "key policy deny applies to root": kms(
        ROOT_A, EXPLICIT, res=resource(allow(principal=aws(A)), deny(principal="*"))
    ),
    "service principal": kms(
        SERVICE, ALLOW, res=resource(allow(principal={"Service": "CloudTrail.amazonaws.com"}))
    ),
    "grant same account": kms(ALICE, ALLOW, res=KEY_CAROL_ONLY, grant=True),
    "grant, key policy names someone else": kms(CAROL, ALLOW, res=KEY_ALICE_ONLY, grant=True),
    "grant, no key policy": kms(CAROL, ALLOW, grant=True),
    "grant beaten by key policy deny": kms(
        ALICE, EXPLICIT, res=resource(deny(principal="*")), grant=True
    ),
    "grant beaten by identity deny": kms(ALICE, EXPLICIT, DENY_ALL, res=KEY_DEFAULT, grant=True),
    # cross account: key in A, callers in B
    "cross: account delegated, IAM allows": kms(BOB, ALLOW, ALLOW_KMS, res=KEY_FOR_B),
    "cross: account delegated, no IAM": kms(BOB, IMPLICIT, res=KEY_FOR_B),
    "cross: account delegated, other action": kms(
        BOB, IMPLICIT, ALLOW_KMS, res=KEY_FOR_B, request=req("kms:Encrypt")
    ),
    "cross: root of delegated account": kms(ROOT_B, ALLOW, res=KEY_FOR_B),
    "cross: root of other account": kms(ROOT_B, IMPLICIT, res=KEY_DEFAULT),
    "cross: user named, IAM allows": kms(BOB, ALLOW, ALLOW_KMS, res=KEY_FOR_BOB),
    "cross: user named, no IAM": kms(BOB, IMPLICIT, res=KEY_FOR_BOB),
    "cross: not in key policy, IAM allows": kms(BOB, IMPLICIT, ALLOW_ALL, res=KEY_DEFAULT),
    "cross: star, IAM allows": kms(BOB, ALLOW, ALLOW_KMS, res=resource(allow(principal="*"))),
    "cross: star, no IAM": kms(BOB, IMPLICIT, res=resource(allow(principal="*"))),
    "cross: grant, IAM allows": kms(BOB, ALLOW, ALLOW_KMS, res=KEY_DEFAULT, grant=True),
    "cross: grant, no IAM": kms(BOB, IMPLICIT, res=KEY_DEFAULT, grant=True),
    "cross: grant, root": kms(ROOT_B, ALLOW, res=KEY_DEFAULT, grant=True),
    "cross: IAM deny": kms(BOB, EXPLICIT, ALLOW_KMS, DENY_ALL, res=KEY_FOR_B),
}


@run_cases(KMS_CASES)
def test_kms_key_policy_gating(case: Case) -> None:
    assert case.run().decision is case.expected


def test_gating_makes_the_difference() -> None:
    """The same inputs that S3 semantics allow are refused under KMS semantics."""
    no_delegation = resource(allow("kms:*", principal=aws(CAROL.arn)))
    s3_style = Case(ALICE, ALLOW, [ALLOW_KMS], res=no_delegation)
    kms_style = Case(ALICE, IMPLICIT, [ALLOW_KMS], res=no_delegation, gates=True)
    assert s3_style.run().decision is ALLOW
    assert kms_style.run().decision is IMPLICIT
    root_s3 = Case(ROOT_A, ALLOW, res=no_delegation)
    root_kms = Case(ROOT_A, IMPLICIT, res=no_delegation, gates=True)
    assert root_s3.run().decision is ALLOW
    assert root_kms.run().decision is IMPLICIT


# --------------------------------------------------------------------------------------------
# Policy variables and principal-derived condition keys

HOME = identity(allow("s3:*", "arn:aws:s3:::b/home/${aws:username}/*"))


def s3_get(path: str, **context: str | Sequence[str]) -> AuthzRequest:
    return req(
        "s3:GetObject",
        f"arn:aws:s3:::b/{path}",
        A,
        {k.replace("__", ":"): v for k, v in context.items()},
    )


VARIABLE_CASES = {
    "username matches own home": Case(ALICE, ALLOW, [HOME], request=s3_get("home/alice/x")),
    "username other home": Case(ALICE, IMPLICIT, [HOME], request=s3_get("home/bob/x")),
    "no username for sessions": Case(SESSION, IMPLICIT, [HOME], request=s3_get("home//x")),
    "no username, literal text does not match": Case(
        SESSION, IMPLICIT, [HOME], request=s3_get("home/${aws:username}/x")
    ),
    "request context cannot spoof username": Case(
        ALICE, IMPLICIT, [HOME], request=s3_get("home/bob/x", aws__username="bob")
    ),
    "userid": Case(
        SESSION,
        ALLOW,
        [identity(allow("s3:*", "arn:aws:s3:::b/${aws:userid}/*"))],
        request=s3_get("AROAADMIN:sess1/x"),
    ),
    "principal tag, key case-insensitive": Case(
        ALICE,
        ALLOW,
        [identity(allow("s3:*", "arn:aws:s3:::b/${aws:PrincipalTag/TEAM}/*"))],
        request=s3_get("ops/x"),
    ),
    "principal tag missing": Case(
        CAROL,
        IMPLICIT,
        [identity(allow("s3:*", "arn:aws:s3:::b/${aws:PrincipalTag/team}/*"))],
        request=s3_get("/x"),
    ),
    "principal tag default": Case(
        CAROL,
        ALLOW,
        [identity(allow("s3:*", "arn:aws:s3:::b/${aws:PrincipalTag/team,'shared'}/*"))],
        request=s3_get("shared/x"),
    ),
    "request context key variable": Case(
        ALICE,
        ALLOW,
        [identity(allow("kms:*", "arn:aws:kms:*:${kms:CallerAccount}:key/*"))],
        request=req(kms__CallerAccount=A),
    ),
    "request context key variable, other value": Case(
        ALICE,
        IMPLICIT,
        [identity(allow("kms:*", "arn:aws:kms:*:${kms:CallerAccount}:key/*"))],
        request=req(kms__CallerAccount=B),
    ),
    "substituted wildcard is literal": Case(
        ALICE,
        IMPLICIT,
        [identity(allow("s3:*", "arn:aws:s3:::b/${s3:prefix}"))],
        request=s3_get("anything", s3__prefix="*"),
    ),
    "substituted wildcard matches itself": Case(
        ALICE,
        ALLOW,
        [identity(allow("s3:*", "arn:aws:s3:::b/${s3:prefix}"))],
        request=s3_get("*", s3__prefix="*"),
    ),
    "escape ${*} is a literal star": Case(
        ALICE, IMPLICIT, [identity(allow("s3:*", "arn:aws:s3:::b/${*}"))], request=s3_get("x")
    ),
    "escape ${*} matches a star": Case(
        ALICE, ALLOW, [identity(allow("s3:*", "arn:aws:s3:::b/${*}"))], request=s3_get("*")
    ),
    "2008 policies: variables are literal": Case(
        ALICE,
        IMPLICIT,
        [
            policy(
                "identity",
                allow("s3:*", "arn:aws:s3:::b/home/${aws:username}/*"),
                Version="2008-10-17",
            )
        ],
        request=s3_get("home/alice/x"),
    ),
    "2008 policies: literal text matches": Case(
        ALICE,
        ALLOW,
        [
            policy(
                "identity",
                allow("s3:*", "arn:aws:s3:::b/home/${aws:username}/*"),
                Version="2008-10-17",
            )
        ],
        request=s3_get("home/${aws:username}/x"),
    ),
    "NotResource with variable": Case(
        ALICE,
        EXPLICIT,
        [ALLOW_ALL, identity(deny("s3:*", not_resource="arn:aws:s3:::b/home/${aws:username}/*"))],
        request=s3_get("home/bob/x"),
    ),
    "NotResource with variable, own home": Case(
        ALICE,
        ALLOW,
        [ALLOW_ALL, identity(deny("s3:*", not_resource="arn:aws:s3:::b/home/${aws:username}/*"))],
        request=s3_get("home/alice/x"),
    ),
    "NotResource with unresolved variable does not apply": Case(
        SESSION,
        ALLOW,
        [ALLOW_ALL, identity(deny("s3:*", not_resource="arn:aws:s3:::b/home/${aws:username}/*"))],
        request=s3_get("home/bob/x"),
    ),
    "resource list: unresolved entry skipped": Case(
        SESSION,
        ALLOW,
        [
            identity(
                allow("s3:*", ["arn:aws:s3:::b/home/${aws:username}/*", "arn:aws:s3:::b/pub/*"])
            )
        ],
        request=s3_get("pub/x"),
    ),
    "condition variable": Case(
        ALICE,
        ALLOW,
        [identity(allow(Condition={"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}}))],
        request=req(ctx={"aws:ResourceTag/owner": "alice"}),
    ),
    "condition variable mismatch": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}}))],
        request=req(ctx={"aws:ResourceTag/owner": "bob"}),
    ),
    "PrincipalArn of a session is the role": Case(
        SESSION,
        ALLOW,
        [
            identity(
                allow(Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/ops/*"}})
            )
        ],
    ),
    "PrincipalArn cannot be spoofed": Case(
        ALICE,
        IMPLICIT,
        [identity(allow(Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/*"}}))],
        request=req(aws__PrincipalArn=f"arn:aws:iam::{A}:role/x"),
    ),
    "PrincipalAccount": Case(
        BOB,
        ALLOW,
        [ALLOW_ALL],
        res=resource(allow(principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": B}})),
        request=req(account=A),
    ),
    "PrincipalType": Case(
        SESSION,
        ALLOW,
        [identity(allow(Condition={"StringEquals": {"aws:PrincipalType": "AssumedRole"}}))],
    ),
    "PrincipalIsAWSService false for users": Case(
        ALICE, ALLOW, [identity(allow(Condition={"Bool": {"aws:PrincipalIsAWSService": "false"}}))]
    ),
    "PrincipalServiceName": Case(
        SERVICE,
        ALLOW,
        res=resource(
            allow(
                principal="*", Condition={"StringEquals": {"aws:PrincipalServiceName": SERVICE.arn}}
            )
        ),
    ),
    "PrincipalTag condition": Case(
        SESSION,
        ALLOW,
        [identity(allow(Condition={"StringEquals": {"aws:PrincipalTag/Team": "sec"}}))],
    ),
    "username absent for sessions (Null)": Case(
        SESSION, ALLOW, [identity(allow(Condition={"Null": {"aws:username": "true"}}))]
    ),
}


@run_cases(VARIABLE_CASES)
def test_policy_variables_and_principal_keys(case: Case) -> None:
    assert case.run().decision is case.expected


# --------------------------------------------------------------------------------------------
# Compilation, caching, results


def test_compile_text_is_cached() -> None:
    text = json.dumps({"Version": "2012-10-17", "Statement": [allow("kms:Decrypt")]})
    first = compile_text(text, "identity")
    assert compile_text(text, "identity") is first
    resource_text = json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("kms:Decrypt", principal="*")]}
    )
    assert compile_text(resource_text, "resource") is not compile_text(text, "identity")
    before = compile_text.cache_info().hits
    compile_text(text, "identity")
    assert compile_text.cache_info().hits == before + 1


def test_compile_text_rejects_invalid_documents() -> None:
    with pytest.raises(PolicyDocumentError):
        compile_text('{"Statement": []}', "identity")
    with pytest.raises(PolicyDocumentError):
        compile_text(json.dumps({"Statement": [allow()]}), "resource")  # no Principal


def test_compile_policy_splits_effects() -> None:
    document = parse_policy(
        json.dumps({"Statement": [allow("s3:*"), deny("s3:Delete*"), allow("kms:*")]}),
        kind="identity",
    )
    compiled = compile_policy(document)
    assert compiled.document is document
    assert [s.index for s in compiled.statements] == [0, 1, 2]
    assert [s.index for s in compiled.allows] == [0, 2]
    assert [s.index for s in compiled.denies] == [1]
    assert all(s.is_deny for s in compiled.denies)


def test_reasons_name_policy_and_statement_but_no_context_values() -> None:
    secret = "s3cr3t-context-value"
    key_policy = resource(
        allow("kms:*", principal=aws(ALICE.arn), Sid="KeyUsers"),
        deny("kms:ScheduleKeyDeletion", principal="*", Sid="NoDeletes"),
        Id="key-policy-7",
    )
    allowed = evaluate(
        ALICE,
        req(test__Secret=secret),
        identity_policies=[],
        resource_policy=key_policy,
        resource_policy_gates=True,
    )
    assert allowed.allowed
    assert "KeyUsers" in allowed.reason and "key-policy-7" in allowed.reason
    denied = evaluate(
        ALICE,
        req("kms:ScheduleKeyDeletion", test__Secret=secret),
        identity_policies=[],
        resource_policy=key_policy,
        resource_policy_gates=True,
    )
    assert denied.decision is EXPLICIT and not denied.allowed
    assert "NoDeletes" in denied.reason
    ident = evaluate(ALICE, req(test__Secret=secret), identity_policies=[ALLOW_KMS, DENY_ALL])
    assert ident.decision is EXPLICIT
    assert "identity policy #2" in ident.reason and "statement #1" in ident.reason
    for result in (allowed, denied, ident):
        assert secret not in result.reason


def test_principal_properties() -> None:
    assert ROOT_A.is_root and not ROOT_A.is_service
    assert SERVICE.is_service and not SERVICE.is_root
    assert not ALICE.is_root and not ALICE.is_service
    assert dict(CAROL.tags) == {}


# --------------------------------------------------------------------------------------------
# Properties

PRINCIPALS = [ROOT_A, ALICE, SESSION, BOB, ROOT_B, SERVICE]
ACTIONS = ["kms:Decrypt", "kms:Encrypt", "s3:GetObject", "iam:CreateUser"]
RESOURCES = [KEY, OBJECT, "*"]
ACTION_PATTERNS = [
    "*",
    "kms:*",
    "kms:Decrypt",
    "KMS:encrypt",
    "s3:Get*",
    "iam:?reateUser",
    "s3:Put*",
]
RESOURCE_PATTERNS = [
    "*",
    KEY,
    "arn:aws:kms:*:*:*",
    "arn:aws:s3:::bucket/*",
    "arn:aws:s3:::bucket/${aws:username}",
    "arn:aws:s3:::other/*",
]
PRINCIPAL_VALUES: list[Any] = [
    "*",
    aws("*"),
    aws(A),
    aws(ROOT_B_ARN),
    aws(ALICE.arn),
    aws(ADMIN_ROLE),
    aws(SESSION.arn),
    aws(BOB.arn),
    {"Service": SERVICE.arn},
    aws(ALICE.arn, ROOT_A_ARN),
]
CONDITIONS: list[dict[str, Any]] = [
    {"StringEquals": {"test:Env": "prod"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"StringNotEquals": {"aws:PrincipalAccount": B}},
    {"ForAllValues:StringLike": {"test:Tags": "a*"}},
    {"NumericLessThanIfExists": {"test:N": "5"}},
    {"StringLike": {"test:Env": "${aws:username}*"}},
]
CONTEXT_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "test:Env": st.sampled_from(["prod", "dev", "alice-x"]),
    "aws:SecureTransport": st.sampled_from(["true", "false"]),
    "aws:SourceIp": st.sampled_from(["10.1.1.1", "192.0.2.1", "garbage"]),
    "test:Tags": st.lists(st.sampled_from(["ab", "b"]), max_size=2),
    "test:N": st.sampled_from(["1", "9", "x"]),
}


@st.composite
def statements(draw: st.DrawFn, kind: PolicyKind) -> dict[str, Any]:
    effect = draw(st.sampled_from(["Allow", "Deny"]))
    body: dict[str, Any] = {"Effect": effect}
    actions = draw(st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=3))
    body[draw(st.sampled_from(["Action", "NotAction"]))] = actions
    resources = draw(st.lists(st.sampled_from(RESOURCE_PATTERNS), min_size=1, max_size=2))
    body[draw(st.sampled_from(["Resource", "NotResource"]))] = resources
    if kind == "resource":
        element = "Principal"
        if effect == "Deny" and draw(st.booleans()):
            element = "NotPrincipal"
        body[element] = draw(st.sampled_from(PRINCIPAL_VALUES))
    conditions = draw(st.lists(st.sampled_from(CONDITIONS), max_size=2))
    if conditions:
        merged: dict[str, Any] = {}
        for condition in conditions:
            for operator, tests in condition.items():
                merged.setdefault(operator, {}).update(tests)
        body["Condition"] = merged
    return body


def build(kind: PolicyKind, body: list[dict[str, Any]]) -> CompiledPolicy:
    return compile_text(json.dumps({"Version": "2012-10-17", "Statement": body}), kind)


@dataclass
class Scenario:
    principal: AuthzPrincipal
    request: AuthzRequest
    identity_docs: list[list[dict[str, Any]]]
    resource_doc: list[dict[str, Any]] | None
    gates: bool
    grant: bool

    def run(
        self,
        identity_docs: list[list[dict[str, Any]]] | None = None,
        resource_doc: list[dict[str, Any]] | bool | None = False,
        grant: bool | None = None,
    ) -> Result:
        ids = self.identity_docs if identity_docs is None else identity_docs
        res = self.resource_doc if resource_doc is False else resource_doc
        assert res is not True
        return evaluate(
            self.principal,
            self.request,
            identity_policies=[build("identity", doc) for doc in ids if doc],
            resource_policy=build("resource", res) if res else None,
            resource_policy_gates=self.gates,
            grant_allows=self.grant if grant is None else grant,
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    context = {key: draw(values) for key, values in CONTEXT_VALUES.items() if draw(st.booleans())}
    request = AuthzRequest(
        draw(st.sampled_from(ACTIONS)),
        draw(st.sampled_from(RESOURCES)),
        draw(st.sampled_from([A, B, None])),
        context,
    )
    return Scenario(
        principal=draw(st.sampled_from(PRINCIPALS)),
        request=request,
        identity_docs=draw(
            st.lists(st.lists(statements("identity"), min_size=1, max_size=3), max_size=2)
        ),
        resource_doc=draw(st.none() | st.lists(statements("resource"), min_size=1, max_size=4)),
        gates=draw(st.booleans()),
        grant=draw(st.booleans()),
    )


def matching_principal_values(principal: AuthzPrincipal) -> list[Any]:
    values: list[Any] = ["*", aws("*")]
    if principal.is_service:
        values.append({"Service": principal.arn})
    else:
        values += [aws(principal.account_id), aws(f"arn:aws:iam::{principal.account_id}:root")]
        if not principal.is_root:
            values.append(aws(principal.arn))
        if principal.role_arn:
            values.append(aws(principal.role_arn))
    return values


@settings(max_examples=400, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_adding_a_matching_deny_always_denies(scenario: Scenario, data: st.DataObject) -> None:
    before = scenario.run()
    request = scenario.request
    deny_stmt: dict[str, Any] = {
        "Effect": "Deny",
        "Action": data.draw(st.sampled_from(["*", request.action, request.action.upper(), "*:*"])),
        "Resource": data.draw(st.sampled_from(["*", request.resource])),
    }
    # Identity policies do not apply to an account root: deny it in the resource policy.
    where = (
        "resource"
        if scenario.principal.is_root
        else data.draw(st.sampled_from(["resource", "identity"]))
    )
    if where == "resource":
        deny_stmt["Principal"] = data.draw(
            st.sampled_from(matching_principal_values(scenario.principal))
        )
        after = scenario.run(resource_doc=[*(scenario.resource_doc or []), deny_stmt])
    else:
        docs = [list(doc) for doc in scenario.identity_docs] or [[]]
        docs[data.draw(st.integers(0, len(docs) - 1))].append(deny_stmt)
        after = scenario.run(identity_docs=docs)
    assert after.decision is EXPLICIT, (before, after)


@settings(max_examples=400, deadline=None)
@given(scenario=scenarios())
def test_without_allow_statements_nothing_is_allowed(scenario: Scenario) -> None:
    # The one implicit allow: an account root acting in its own account without gating.
    p, r = scenario.principal, scenario.request
    assume(not (p.is_root and not scenario.gates and r.resource_account in (None, p.account_id)))
    identity_docs = [[s for s in doc if s["Effect"] == "Deny"] for doc in scenario.identity_docs]
    resource_doc = [s for s in scenario.resource_doc or [] if s["Effect"] == "Deny"] or None
    result = scenario.run(identity_docs=identity_docs, resource_doc=resource_doc, grant=False)
    assert result.decision is not ALLOW


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_root_in_own_account_is_allowed_unless_denied_without_gating(scenario: Scenario) -> None:
    principal = ROOT_A
    result = evaluate(
        principal,
        AuthzRequest(
            scenario.request.action, scenario.request.resource, A, scenario.request.context
        ),
        identity_policies=[build("identity", doc) for doc in scenario.identity_docs],
        resource_policy=build("resource", scenario.resource_doc) if scenario.resource_doc else None,
    )
    assert result.decision in (ALLOW, EXPLICIT)
    if not scenario.resource_doc:
        assert result.decision is ALLOW


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_action_case_and_context_key_case_do_not_matter(scenario: Scenario) -> None:
    result = scenario.run()
    r = scenario.request
    variant = Scenario(
        scenario.principal,
        AuthzRequest(
            r.action.swapcase(),
            r.resource,
            r.resource_account,
            {key.upper(): value for key, value in r.context.items()},
        ),
        scenario.identity_docs,
        scenario.resource_doc,
        scenario.gates,
        scenario.grant,
    )
    assert variant.run() == result


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_grant_and_identity_allow_are_monotonic(scenario: Scenario) -> None:
    """Adding a grant or an identity Allow never turns an ALLOW into a deny."""
    result = scenario.run(grant=False)
    if result.decision is ALLOW:
        assert scenario.run(grant=True).decision is ALLOW
        extra = [*scenario.identity_docs, [{"Effect": "Allow", "Action": "*", "Resource": "*"}]]
        assert scenario.run(identity_docs=extra, grant=False).decision is ALLOW


OPERATOR_FORMS = [
    f"{q}{base}{suffix}"
    for base in [
        "StringEquals", "StringNotLike", "NumericLessThan", "DateGreaterThan", "Bool",
        "BinaryEquals", "IpAddress", "NotIpAddress", "ArnLike", "ArnNotEquals",
        "StringEqualsIgnoreCase", "NumericNotEquals", "DateEquals",
    ]
    for q in ("", "ForAnyValue:", "ForAllValues:")
    for suffix in ("", "IfExists")
] + ["Null"]  # fmt: skip
KEYS = ["test:A", "test:B", "aws:SourceIp", "aws:username", "aws:PrincipalTag/team"]
junk = st.text(max_size=10) | st.sampled_from(
    ["10.0.0.1", "::1", "2020-01-01T00:00:00Z", "12", "true", "arn:aws:s3:::x", "${test:A}", "QQ=="]
)


@st.composite
def random_conditions(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        operator = draw(st.sampled_from(OPERATOR_FORMS))
        block.setdefault(operator, {})[draw(st.sampled_from(KEYS))] = draw(
            st.lists(junk, max_size=3) | junk
        )
    return block


@settings(max_examples=400, deadline=None)
@given(
    principal=st.sampled_from(PRINCIPALS),
    conditions=st.lists(random_conditions(), min_size=1, max_size=3),
    context=st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=8),
        junk | st.lists(junk, max_size=3) | st.integers() | st.booleans(),
        max_size=5,
    ),
    gates=st.booleans(),
    resource_name=st.text(max_size=20) | st.sampled_from(RESOURCES),
)
def test_evaluation_never_raises(
    principal: AuthzPrincipal,
    conditions: list[dict[str, Any]],
    context: dict[str, Any],
    gates: bool,
    resource_name: str,
) -> None:
    ids = [
        build("identity", [{"Effect": e, "Action": "*", "Resource": "*", "Condition": c}])
        for e, c in zip(["Allow", "Deny"] * 3, conditions, strict=False)
    ]
    res = build(
        "resource",
        [
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": c}
            for c in conditions
        ],
    )
    result = evaluate(
        principal,
        AuthzRequest("kms:Decrypt", resource_name, A, context),
        identity_policies=ids,
        resource_policy=res,
        resource_policy_gates=gates,
    )
    assert isinstance(result.decision, Decision)
    assert isinstance(result.reason, str) and result.reason
