"""S3 authorization: actions, condition keys, bucket policies, anonymous callers and Block
Public Access — over a real Authorizer on a real SQLite database with IAM users in two
accounts, plus the policy engine's anonymous-principal rules on their own."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from sealbox import arn as arns
from sealbox.audit.recorder import AuditRecorder
from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.config import Settings
from sealbox.iam.accounts import create_account
from sealbox.iam.authz import Authorizer
from sealbox.iam.bootstrap import bootstrap
from sealbox.iam.model import Principal
from sealbox.iam.policy.document import PolicyDocumentError
from sealbox.iam.policy.evaluate import (
    AuthzPrincipal,
    AuthzRequest,
    Decision,
    compile_text,
    evaluate,
)
from sealbox.iam.service import IamService
from sealbox.keystore.sealed_file import SealedFileKeyStore
from sealbox.s3.access import (
    ACTIONS,
    ANONYMOUS,
    NO_FACTS,
    BucketAccess,
    S3AccessDenied,
    S3RequestFacts,
    bucket_arn,
    check_put_policy,
    copy_source_action,
    is_anonymous,
    object_arn,
    request_context,
    required_actions,
)
from sealbox.s3.errors import MethodNotAllowed
from sealbox.s3.public import (
    ALL_OFF,
    ALL_ON,
    PublicAccessBlock,
    is_public_canned_acl,
    is_public_policy,
)
from sealbox.storage.db import Database

A = "111122223333"
B = "444455556666"
BUCKET = "amzn-s3-demo-bucket"
KEY = "photos/cat.jpg"
KMS_KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# -- AWS documentation policies, as AWS publishes them (with its placeholder bucket) -------

# Requiring SSE-KMS: deny s3:PutObject unless x-amz-server-side-encryption is aws:kms, with the
# Null companion statement that denies requests without the header (S3 User Guide /
# AWS Knowledge Center "s3-bucket-store-kms-encrypted-objects").
SSE_KMS_POLICY = """{
  "Version": "2012-10-17",
  "Id": "PutObjPolicy",
  "Statement": [
    {
      "Sid": "DenyIncorrectEncryptionHeader",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:PutObject",
      "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
      "Condition": {
        "StringNotEquals": {
          "s3:x-amz-server-side-encryption": "aws:kms"
        }
      }
    },
    {
      "Sid": "DenyUnEncryptedObjectUploads",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:PutObject",
      "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
      "Condition": {
        "Null": {
          "s3:x-amz-server-side-encryption": "true"
        }
      }
    }
  ]
}"""

# Managing access based on HTTP or HTTPS requests (S3 User Guide, bucket policy examples).
TLS_ONLY_POLICY = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "RestrictToTLSRequestsOnly",
            "Action": "s3:*",
            "Effect": "Deny",
            "Resource": [
                "arn:aws:s3:::amzn-s3-demo-bucket",
                "arn:aws:s3:::amzn-s3-demo-bucket/*"
            ],
            "Condition": {
                "Bool": {
                    "aws:SecureTransport": "false"
                }
            },
            "Principal": "*"
        }
    ]
}"""


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if principal is not None:
        statement["Principal"] = principal
    statement.update(extra)
    return statement


def deny(principal: Any, action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {**allow(principal, action, resource, **extra), "Effect": "Deny"}


OBJECTS = f"arn:aws:s3:::{BUCKET}/*"
PUBLIC_READ = doc(allow("*", "s3:GetObject", OBJECTS))


# -- environment: two accounts, IAM users with identity policies ------------------------------


@dataclass
class Env:
    access: BucketAccess
    authz: Authorizer
    principals: dict[str, Principal]

    def __getitem__(self, name: str) -> Principal:
        return self.principals[name]


def root(account: str) -> Principal:
    return Principal(account, arns.account_root_arn(account), "Root", account, access_key_id="AK")


def make_call(principal: Principal, *, secure: bool = True, ip: str = "198.51.100.7") -> Call:
    return Call(
        principal=principal,
        region="us-east-1",
        event_source="s3.amazonaws.com",
        event_name="Test",
        request_id="test",
        source_ip=ip,
        secure_transport=secure,
    )


IDENTITY_POLICIES: dict[tuple[str, str], list[str]] = {
    (A, "alice"): [doc(allow(None, "s3:*"))],
    (A, "bob"): [],
    (A, "lister"): [
        doc(
            allow(
                None,
                "s3:ListBucket",
                f"arn:aws:s3:::{BUCKET}",
                Condition={"StringLike": {"s3:prefix": "projects/*"}},
            ),
            deny(
                None,
                "s3:ListBucket",
                f"arn:aws:s3:::{BUCKET}",
                Condition={"Null": {"s3:prefix": "true"}},
            ),
        )
    ],
    (A, "nodelete"): [doc(allow(None, "s3:*"), deny(None, "s3:DeleteObject*"))],
    (B, "carol"): [
        doc(
            allow(
                None,
                [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:ListBucket",
                    "s3:GetBucketPolicy",
                ],
            )
        )
    ],
    (B, "dave"): [],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir: Path = tmp_path_factory.mktemp("s3access")
    settings = Settings(data_dir=data_dir)
    migrator = Database.for_migrations(settings.resolved_database_url)
    migrator.migrate()
    migrator.dispose()
    db = Database(settings.resolved_database_url)
    clock = ManualClock()
    keystore = SealedFileKeyStore.open_or_create(data_dir, None)
    bootstrap(db, keystore, clock, A, None, None)
    create_account(db, keystore, clock, "other", B)

    def no_check(call: Call, action: str, resource: str) -> None:
        return None

    iam = IamService(db, keystore, clock, AuditRecorder(db, clock), no_check)
    principals: dict[str, Principal] = {"rootA": root(A), "rootB": root(B)}
    for (account, name), policies in IDENTITY_POLICIES.items():
        admin = make_call(root(account))
        user = iam.create_user(admin, name)
        for number, text in enumerate(policies):
            iam.put_user_policy(admin, name, f"p{number}", text)
        principals[name] = Principal(
            account, user.arn, "IAMUser", user.user_id, user_name=name, access_key_id="AK"
        )
    authz = Authorizer(db, clock)
    yield Env(BucketAccess(authz), authz, principals)
    db.dispose()


def allowed(
    env: Env,
    principal: Principal,
    operation: str,
    *,
    key: str | None = KEY,
    policy: str | None = None,
    block: PublicAccessBlock = ALL_OFF,
    facts: S3RequestFacts = NO_FACTS,
    secure: bool = True,
    ip: str = "198.51.100.7",
) -> bool:
    return env.access.allows(
        make_call(principal, secure=secure, ip=ip),
        operation,
        bucket=BUCKET,
        key=key,
        owner_account=A,
        policy=policy,
        block=block,
        facts=facts,
    )


# -- actions ------------------------------------------------------------------------------------


def test_operation_names_are_s3_operations_and_actions_are_s3_actions() -> None:
    model = botocore.session.get_session().get_service_model("s3")
    assert set(ACTIONS) <= set(model.operation_names)
    assert all(action.startswith("s3:") for action in ACTIONS.values())


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("ListObjectsV2", "s3:ListBucket"),
        ("ListObjects", "s3:ListBucket"),
        ("HeadBucket", "s3:ListBucket"),
        ("ListObjectVersions", "s3:ListBucketVersions"),
        ("HeadObject", "s3:GetObject"),
        ("GetObject", "s3:GetObject"),
        ("CopyObject", "s3:PutObject"),
        ("UploadPart", "s3:PutObject"),
        ("UploadPartCopy", "s3:PutObject"),
        ("CreateMultipartUpload", "s3:PutObject"),
        ("CompleteMultipartUpload", "s3:PutObject"),
        ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
        ("ListParts", "s3:ListMultipartUploadParts"),
        ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
        ("DeleteObjects", "s3:DeleteObject"),
        ("GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"),
        ("PutBucketEncryption", "s3:PutEncryptionConfiguration"),
        ("GetBucketEncryption", "s3:GetEncryptionConfiguration"),
        ("DeleteBucketEncryption", "s3:PutEncryptionConfiguration"),
        ("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
        ("GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
        ("DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
        ("PutBucketTagging", "s3:PutBucketTagging"),
        ("DeleteBucketTagging", "s3:PutBucketTagging"),
        ("GetObjectTagging", "s3:GetObjectTagging"),
        ("PutBucketVersioning", "s3:PutBucketVersioning"),
        ("GetBucketVersioning", "s3:GetBucketVersioning"),
        ("ListBuckets", "s3:ListAllMyBuckets"),
        ("CreateBucket", "s3:CreateBucket"),
    ],
)
def test_operation_actions(operation: str, action: str) -> None:
    assert ACTIONS[operation] == action
    assert required_actions(operation)[0] == action


def test_required_actions_depend_on_the_request() -> None:
    versioned = S3RequestFacts(version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert required_actions("GetObject", versioned) == ("s3:GetObjectVersion",)
    assert required_actions("HeadObject", versioned) == ("s3:GetObjectVersion",)
    assert required_actions("DeleteObject", versioned) == ("s3:DeleteObjectVersion",)
    assert required_actions("DeleteObjects", versioned) == ("s3:DeleteObjectVersion",)
    assert required_actions("PutObjectTagging", versioned) == ("s3:PutObjectVersionTagging",)
    assert required_actions("GetObjectAttributes") == ("s3:GetObjectAttributes", "s3:GetObject")
    assert required_actions("GetObjectAttributes", versioned) == (
        "s3:GetObjectVersionAttributes",
        "s3:GetObjectVersion",
    )
    # UpdateObjectEncryption: s3:PutObject and s3:UpdateObjectEncryption (API reference).
    assert set(required_actions("UpdateObjectEncryption")) == {
        "s3:UpdateObjectEncryption",
        "s3:PutObject",
    }
    assert required_actions("PutObject", S3RequestFacts(acl="private")) == (
        "s3:PutObject",
        "s3:PutObjectAcl",
    )
    assert required_actions("PutObject", S3RequestFacts(request_object_tags={"a": "1"})) == (
        "s3:PutObject",
        "s3:PutObjectTagging",
    )
    assert required_actions("PutObject", S3RequestFacts(request_object_tags={})) == (
        "s3:PutObject",
    )
    assert required_actions("s3:GetObjectVersion") == ("s3:GetObjectVersion",)
    assert copy_source_action() == "s3:GetObject"
    assert copy_source_action("v1") == "s3:GetObjectVersion"
    with pytest.raises(ValueError, match="unknown S3 operation"):
        required_actions("FlyToTheMoon")


def test_arns() -> None:
    assert bucket_arn("b") == "arn:aws:s3:::b"
    assert object_arn("b", "a/b c.txt") == "arn:aws:s3:::b/a/b c.txt"


# -- condition keys -----------------------------------------------------------------------------


def test_request_context_has_only_what_the_request_carries() -> None:
    assert request_context(NO_FACTS) == {}
    facts = S3RequestFacts(
        sse="aws:kms",
        sse_kms_key_id=KMS_KEY,
        prefix="",
        max_keys="100",
        version_id="v1",
        existing_object_tags={"environment": "production"},
        request_object_tags={"team": "blue", "cost": "7"},
        auth_type="REST-HEADER",
        signature_version="AWS4-HMAC-SHA256",
    )
    ctx = request_context(facts, owner_account=A)
    assert ctx == {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY,
        "s3:prefix": "",  # present though empty: "Null" says false
        "s3:max-keys": "100",
        "s3:VersionId": "v1",
        "s3:ExistingObjectTag/environment": "production",
        "s3:RequestObjectTag/team": "blue",
        "s3:RequestObjectTag/cost": "7",
        "s3:RequestObjectTagKeys": ["team", "cost"],
        "s3:authType": "REST-HEADER",
        "s3:signatureversion": "AWS4-HMAC-SHA256",
        "s3:ResourceAccount": A,
        "aws:ResourceAccount": A,
    }
    customer = request_context(S3RequestFacts(sse_customer_algorithm="AES256", delimiter="/"))
    assert customer == {
        "s3:x-amz-server-side-encryption-customer-algorithm": "AES256",
        "s3:delimiter": "/",
    }


# -- is_public_policy ---------------------------------------------------------------------------


def cond(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: value}}}


def get_if(operator: str, key: str, value: Any) -> dict[str, Any]:
    """Everyone may GetObject, under one condition."""
    return allow("*", "s3:GetObject", OBJECTS, **cond(operator, key, value))


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        (allow("*", "s3:GetObject", OBJECTS), True),
        (allow({"AWS": "*"}, "s3:GetObject", OBJECTS), True),
        (allow({"AWS": [f"arn:aws:iam::{B}:root", "*"]}, "s3:GetObject", OBJECTS), True),
        (allow({"AWS": B}, "s3:*", "*"), False),
        (allow({"AWS": f"arn:aws:iam::{B}:user/carol"}, "s3:GetObject", OBJECTS), False),
        (allow({"Service": "cloudfront.amazonaws.com"}, "s3:GetObject", OBJECTS), False),
        (deny("*", "s3:*", OBJECTS), False),
        # The User Guide's examples: public, public, and made non-public by a fixed value.
        (allow("*", "s3:PutObject", "*"), True),
        (allow("*", "s3:PutObject", "*", **cond("StringLike", "aws:SourceVpc", "vpc-*")), True),
        (
            allow(
                "*", "s3:PutObject", "*", **cond("StringEquals", "aws:SourceVpc", "vpc-91237329")
            ),
            False,
        ),
        (get_if("IpAddress", "aws:SourceIp", "203.0.113.0/24"), False),
        (get_if("IpAddress", "aws:SourceIp", ["203.0.113.0/24", "2001:db8::/32"]), False),
        (get_if("IpAddress", "aws:SourceIp", "0.0.0.0/1"), True),
        (get_if("IpAddress", "aws:SourceIp", "2001::/16"), True),
        (get_if("NotIpAddress", "aws:SourceIp", "203.0.113.0/24"), True),
        (get_if("StringEquals", "aws:PrincipalOrgID", "o-abc123"), False),
        (get_if("StringEquals", "aws:PrincipalAccount", B), False),
        (get_if("StringEquals", "aws:SourceAccount", B), False),
        (
            get_if(
                "ArnEquals",
                "aws:SourceArn",
                f"arn:aws:cloudfront::{A}:distribution/EDFDVBD6EXAMPLE",
            ),
            False,
        ),
        (get_if("ArnLike", "aws:SourceArn", "arn:aws:cloudfront::*"), True),
        (get_if("StringEquals", "aws:userid", "AIDAEXAMPLE"), False),
        (get_if("StringLike", "aws:userid", "AROAEXAMPLE:*"), True),
        (get_if("StringEquals", "aws:PrincipalAccount", "${aws:username}"), True),
        (get_if("StringEqualsIfExists", "aws:SourceVpce", "vpce-1a2b3c4d"), True),
        (get_if("StringNotEquals", "aws:SourceVpce", "vpce-1a2b3c4d"), True),
        (get_if("ForAllValues:StringEquals", "aws:SourceVpce", "vpce-1a2b3c4d"), True),
        (get_if("StringEquals", "s3:DataAccessPointAccount", A), False),
        (
            get_if(
                "StringLike", "s3:DataAccessPointArn", f"arn:aws:s3:us-east-1:{A}:accesspoint/*"
            ),
            False,
        ),
        (
            get_if("StringLike", "s3:DataAccessPointArn", "arn:aws:s3:us-east-1:*:accesspoint/*"),
            True,
        ),
        # Conditions on keys that do not identify the caller restrict nothing.
        (get_if("Bool", "aws:SecureTransport", "true"), True),
        (get_if("StringEquals", "s3:ExistingObjectTag/public", "yes"), True),
    ],
)
def test_is_public_policy(statement: dict[str, Any], public: bool) -> None:
    assert is_public_policy(doc(statement)) is public


def test_is_public_policy_whole_documents() -> None:
    assert is_public_policy(SSE_KMS_POLICY) is False  # only Deny statements
    assert is_public_policy(TLS_ONLY_POLICY) is False
    assert is_public_policy(PUBLIC_READ) is True
    # One public statement is enough.
    assert is_public_policy(doc(allow({"AWS": B}, "s3:*"), allow("*", "s3:ListBucket"))) is True
    with pytest.raises(PolicyDocumentError):
        is_public_policy("{not json")


def test_public_access_block_settings() -> None:
    assert PublicAccessBlock(True, True, True, True) == ALL_ON
    assert PublicAccessBlock.ALL_OFF is ALL_OFF and PublicAccessBlock.ALL_ON is ALL_ON
    assert PublicAccessBlock.from_config(None) == ALL_OFF
    config = {"BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    block = PublicAccessBlock.from_config(config)
    assert block == PublicAccessBlock(False, False, True, True)
    assert block.to_config() == {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert block.combine(PublicAccessBlock(True, False, False, False)) == PublicAccessBlock(
        True, False, True, True
    )
    assert block.combine(None) is block
    assert is_public_canned_acl("public-read") and is_public_canned_acl("authenticated-read")
    assert not is_public_canned_acl("private") and not is_public_canned_acl(None)
    assert not is_public_canned_acl("bucket-owner-full-control")


def test_check_put_policy_blocks_public_policies() -> None:
    alice = f"arn:aws:iam::{A}:user/alice"
    with pytest.raises(S3AccessDenied) as info:
        check_put_policy(ALL_ON, PUBLIC_READ, principal_arn=alice, bucket=BUCKET)
    err = info.value
    assert (err.code, err.http_status) == ("AccessDenied", 403)
    assert err.message == (
        f"User: {alice} is not authorized to perform: s3:PutBucketPolicy on resource: "
        f'"arn:aws:s3:::{BUCKET}" because public policies are blocked by the '
        "BlockPublicPolicy block public access setting."
    )
    with pytest.raises(S3AccessDenied, match="Access Denied"):
        check_put_policy(PublicAccessBlock(False, False, True, False), PUBLIC_READ)
    check_put_policy(ALL_OFF, PUBLIC_READ)  # the setting is off
    check_put_policy(PublicAccessBlock(True, True, False, True), PUBLIC_READ)
    check_put_policy(ALL_ON, TLS_ONLY_POLICY)  # not public
    check_put_policy(ALL_ON, doc(allow({"AWS": B}, "s3:GetObject", OBJECTS)))


# -- the engine's anonymous principal -----------------------------------------------------------

ANON = AuthzPrincipal(arn="*", account_id="", principal_type="Anonymous", user_id="anonymous")
OBJ = object_arn(BUCKET, KEY)


def decide_anon(
    resource_policy: str | None,
    *,
    identity: tuple[str, ...] = (),
    gates: bool = False,
    context: Mapping[str, Any] | None = None,
    action: str = "s3:GetObject",
) -> Decision:
    return evaluate(
        ANON,
        AuthzRequest(action, OBJ, A, context or {}),
        identity_policies=tuple(compile_text(t, "identity") for t in identity),
        resource_policy=compile_text(resource_policy, "resource") if resource_policy else None,
        resource_policy_gates=gates,
    ).decision


def test_engine_anonymous_needs_a_policy_naming_everyone() -> None:
    assert ANON.is_anonymous and not ANON.is_root and not ANON.is_service
    assert decide_anon(PUBLIC_READ) is Decision.ALLOW
    assert decide_anon(doc(allow({"AWS": "*"}, "s3:GetObject", OBJECTS))) is Decision.ALLOW
    assert decide_anon(PUBLIC_READ, action="s3:PutObject") is Decision.IMPLICIT_DENY
    assert decide_anon(None) is Decision.IMPLICIT_DENY
    # Naming an account (even an empty-looking one) or a user never matches anonymous.
    for principal in (
        {"AWS": A},
        {"AWS": f"arn:aws:iam::{A}:root"},
        {"Service": "s3.amazonaws.com"},
    ):
        assert decide_anon(doc(allow(principal, "s3:*", "*"))) is Decision.IMPLICIT_DENY
    # Identity policies never grant anything to an anonymous caller.
    assert decide_anon(None, identity=(doc(allow(None, "*")),)) is Decision.IMPLICIT_DENY
    # KMS semantics (the key policy gates) never admit anonymous callers.
    assert decide_anon(doc(allow("*", "*", "*")), gates=True) is Decision.IMPLICIT_DENY
    # Deny statements for everyone, and NotPrincipal denies, apply to anonymous callers.
    both = doc(allow("*", "s3:GetObject", OBJECTS), deny("*", "s3:GetObject", OBJECTS))
    assert decide_anon(both) is Decision.EXPLICIT_DENY
    not_principal = {
        "Effect": "Deny",
        "NotPrincipal": {"AWS": f"arn:aws:iam::{A}:root"},
        "Action": "s3:*",
        "Resource": "*",
    }
    assert decide_anon(doc(allow("*", "s3:*"), not_principal)) is Decision.EXPLICIT_DENY


def test_engine_anonymous_condition_keys() -> None:
    def public_if(operator: str, key: str, value: str) -> str:
        return doc(get_if(operator, key, value))

    # Principal keys come from the principal, not from the request context.
    ctx = {"aws:PrincipalArn": "arn:aws:iam::111122223333:root", "aws:PrincipalAccount": A}
    assert decide_anon(public_if("Null", "aws:PrincipalArn", "true"), context=ctx) is Decision.ALLOW
    assert decide_anon(public_if("Null", "aws:PrincipalAccount", "true"), context=ctx) is (
        Decision.ALLOW
    )
    assert decide_anon(public_if("StringEquals", "aws:PrincipalType", "Anonymous")) is (
        Decision.ALLOW
    )
    assert decide_anon(public_if("StringEquals", "aws:userid", "anonymous")) is Decision.ALLOW


# -- BucketAccess: identity policies and the bucket policy -------------------------------------


def test_same_account_identity_or_bucket_policy(env: Env) -> None:
    alice, bob = env["alice"], env["bob"]
    assert allowed(env, alice, "GetObject")  # identity policy
    assert allowed(env, env["rootA"], "PutObject")  # the account root
    assert not allowed(env, bob, "GetObject")  # nothing allows bob
    names_bob = doc(allow({"AWS": bob.arn}, "s3:GetObject", OBJECTS))
    assert allowed(env, bob, "GetObject", policy=names_bob)  # the bucket policy alone
    assert not allowed(env, bob, "PutObject", policy=names_bob)
    # Naming only the account delegates to IAM: bob still needs an identity policy.
    names_account = doc(allow({"AWS": f"arn:aws:iam::{A}:root"}, "s3:GetObject", OBJECTS))
    assert not allowed(env, bob, "GetObject", policy=names_account)
    assert allowed(env, alice, "GetObject", policy=names_account)


def test_cross_account_needs_both(env: Env) -> None:
    carol, dave = env["carol"], env["dave"]
    assert not allowed(env, carol, "GetObject")  # no bucket policy
    names_b = doc(
        allow({"AWS": B}, ["s3:GetObject", "s3:ListBucket"], [OBJECTS, bucket_arn(BUCKET)])
    )
    assert allowed(env, carol, "GetObject", policy=names_b)
    assert allowed(env, carol, "ListObjectsV2", key=None, policy=names_b)
    assert not allowed(env, carol, "PutObject", policy=names_b)  # the bucket policy says no
    assert not allowed(env, dave, "GetObject", policy=names_b)  # dave's IAM says no
    names_carol = doc(allow({"AWS": carol.arn}, "s3:PutObject", OBJECTS))
    assert allowed(env, carol, "PutObject", policy=names_carol)
    assert not allowed(env, dave, "PutObject", policy=names_carol)
    assert allowed(env, env["rootB"], "PutObject", policy=doc(allow({"AWS": B}, "s3:PutObject")))
    # A public statement also opens the bucket to other accounts' permitted principals.
    assert allowed(env, carol, "GetObject", policy=PUBLIC_READ)
    assert not allowed(env, dave, "GetObject", policy=PUBLIC_READ)


def test_explicit_deny_anywhere_wins(env: Env) -> None:
    alice = env["alice"]
    no_deletes = doc(deny({"AWS": alice.arn}, "s3:DeleteObject", OBJECTS))
    assert not allowed(env, alice, "DeleteObject", policy=no_deletes)
    assert allowed(env, alice, "GetObject", policy=no_deletes)
    # nodelete's identity policy denies what the bucket policy grants it by name.
    nodelete = env["nodelete"]
    grants = doc(allow({"AWS": nodelete.arn}, "s3:*", [OBJECTS, bucket_arn(BUCKET)]))
    assert not allowed(env, nodelete, "DeleteObject", policy=grants)
    assert not allowed(env, nodelete, "DeleteObjects", facts=S3RequestFacts(version_id="v1"))
    assert allowed(env, nodelete, "PutObject", policy=grants)
    # A bucket policy Deny applies to the account root too.
    assert not allowed(env, env["rootA"], "DeleteObject", policy=doc(deny("*", "s3:Delete*")))


def test_denial_is_s3_access_denied(env: Env) -> None:
    with pytest.raises(S3AccessDenied) as info:
        env.access.check(
            make_call(env["bob"]),
            "GetObject",
            bucket=BUCKET,
            key=KEY,
            owner_account=A,
            policy=None,
            block=ALL_OFF,
            facts=NO_FACTS,
        )
    assert (info.value.code, info.value.http_status, info.value.message) == (
        "AccessDenied",
        403,
        "Access Denied",
    )
    env.access.check(
        make_call(env["alice"]),
        "GetObject",
        bucket=BUCKET,
        key=KEY,
        owner_account=A,
        policy=None,
        block=ALL_OFF,
    )


# -- the AWS documentation policies --------------------------------------------------------------


def test_sse_kms_required_policy(env: Env) -> None:
    alice = env["alice"]

    def put(**facts: Any) -> bool:
        return allowed(
            env, alice, "PutObject", policy=SSE_KMS_POLICY, facts=S3RequestFacts(**facts)
        )

    assert not put()  # no x-amz-server-side-encryption header: the Null statement
    assert not put(sse="AES256")  # the wrong algorithm: the StringNotEquals statement
    assert put(sse="aws:kms")
    assert put(sse="aws:kms", sse_kms_key_id=KMS_KEY)
    assert not put(sse_customer_algorithm="AES256")  # SSE-C carries no SSE header
    # Multipart uploads declare their encryption when they start.
    assert allowed(
        env,
        alice,
        "CreateMultipartUpload",
        policy=SSE_KMS_POLICY,
        facts=S3RequestFacts(sse="aws:kms"),
    )
    assert not allowed(env, alice, "CreateMultipartUpload", policy=SSE_KMS_POLICY)
    # Other actions are untouched.
    assert allowed(env, alice, "GetObject", policy=SSE_KMS_POLICY)
    assert allowed(env, alice, "ListObjectsV2", key=None, policy=SSE_KMS_POLICY)


def test_tls_only_policy(env: Env) -> None:
    alice, root_a = env["alice"], env["rootA"]
    assert allowed(env, alice, "GetObject", policy=TLS_ONLY_POLICY, secure=True)
    assert not allowed(env, alice, "GetObject", policy=TLS_ONLY_POLICY, secure=False)
    assert not allowed(env, alice, "ListObjectsV2", key=None, policy=TLS_ONLY_POLICY, secure=False)
    assert allowed(env, alice, "ListObjectsV2", key=None, policy=TLS_ONLY_POLICY)
    assert not allowed(env, root_a, "PutObject", policy=TLS_ONLY_POLICY, secure=False)
    public_tls = doc(*json.loads(TLS_ONLY_POLICY)["Statement"], allow("*", "s3:GetObject", OBJECTS))
    assert allowed(env, ANONYMOUS, "GetObject", policy=public_tls)
    assert not allowed(env, ANONYMOUS, "GetObject", policy=public_tls, secure=False)
    # The bucket owner's root user keeps its way out of a lockout.
    for operation in ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"):
        assert allowed(env, root_a, operation, key=None, policy=TLS_ONLY_POLICY, secure=False)
        assert not allowed(env, alice, operation, key=None, policy=TLS_ONLY_POLICY, secure=False)
    assert not allowed(
        env, root_a, "PutBucketTagging", key=None, policy=TLS_ONLY_POLICY, secure=False
    )


# -- anonymous callers and Block Public Access ---------------------------------------------------


def test_anonymous_access(env: Env) -> None:
    assert is_anonymous(ANONYMOUS) and not is_anonymous(env["alice"])
    assert not allowed(env, ANONYMOUS, "GetObject")  # no policy
    assert allowed(env, ANONYMOUS, "GetObject", policy=PUBLIC_READ)
    assert allowed(env, ANONYMOUS, "HeadObject", policy=PUBLIC_READ)
    assert not allowed(env, ANONYMOUS, "PutObject", policy=PUBLIC_READ)
    assert not allowed(env, ANONYMOUS, "ListObjectsV2", key=None, policy=PUBLIC_READ)
    # A policy naming the owner account (or anyone but everyone) grants anonymous nothing.
    assert not allowed(env, ANONYMOUS, "GetObject", policy=doc(allow({"AWS": A}, "s3:*")))
    # Fixed-value conditions: non-public, yet they still admit matching anonymous requests.
    from_office = doc(
        allow("*", "s3:GetObject", OBJECTS, **cond("IpAddress", "aws:SourceIp", "203.0.113.0/24"))
    )
    assert not is_public_policy(from_office)
    assert allowed(env, ANONYMOUS, "GetObject", policy=from_office, ip="203.0.113.9")
    assert not allowed(env, ANONYMOUS, "GetObject", policy=from_office, ip="198.51.100.7")
    assert allowed(
        env, ANONYMOUS, "GetObject", policy=from_office, ip="203.0.113.9", block=ALL_ON
    )  # RestrictPublicBuckets only concerns public policies
    # The bucket owner's root-user escape hatch is not for anonymous callers.
    open_policy = doc(allow("*", "s3:*", "*"))
    assert not allowed(env, ANONYMOUS, "PutBucketPolicy", key=None)
    assert allowed(env, ANONYMOUS, "PutBucketPolicy", key=None, policy=open_policy)


def test_restrict_public_buckets(env: Env) -> None:
    restrict = PublicAccessBlock(False, False, False, True)
    carol, bob = env["carol"], env["bob"]
    assert allowed(env, ANONYMOUS, "GetObject", policy=PUBLIC_READ, block=ALL_OFF)
    assert not allowed(env, ANONYMOUS, "GetObject", policy=PUBLIC_READ, block=restrict)
    assert not allowed(env, ANONYMOUS, "GetObject", policy=PUBLIC_READ, block=ALL_ON)
    # BlockPublicPolicy alone does not affect a stored policy.
    block_policy = PublicAccessBlock(False, False, True, False)
    assert allowed(env, ANONYMOUS, "GetObject", policy=PUBLIC_READ, block=block_policy)
    # Cross-account access through a public policy is blocked, even a statement naming B.
    mixed = doc(allow("*", "s3:GetObject", OBJECTS), allow({"AWS": B}, "s3:PutObject", OBJECTS))
    assert allowed(env, carol, "GetObject", policy=mixed)
    assert allowed(env, carol, "PutObject", policy=mixed)
    assert not allowed(env, carol, "GetObject", policy=mixed, block=restrict)
    assert not allowed(env, carol, "PutObject", policy=mixed, block=restrict)
    # Without a public statement, the same delegation to B is unaffected.
    to_b = doc(allow({"AWS": B}, "s3:PutObject", OBJECTS))
    assert allowed(env, carol, "PutObject", policy=to_b, block=restrict)
    # The owner's account keeps the policy's public statements.
    assert allowed(env, bob, "GetObject", policy=PUBLIC_READ, block=restrict)
    assert allowed(env, env["alice"], "PutObject", policy=PUBLIC_READ, block=restrict)
    # AWS service principals too.
    service = Principal("", "cloudfront.amazonaws.com", "AWSService", "cloudfront.amazonaws.com")
    to_service = doc(
        allow("*", "s3:GetObject", OBJECTS),
        allow({"Service": "cloudfront.amazonaws.com"}, "s3:GetObject", OBJECTS),
    )
    assert allowed(env, service, "GetObject", policy=to_service, block=restrict)


# -- service condition keys -------------------------------------------------------------------


def test_existing_object_tag_condition(env: Env) -> None:
    production_only = doc(
        allow(
            "*",
            "s3:GetObject",
            OBJECTS,
            **cond("StringEquals", "s3:ExistingObjectTag/environment", "production"),
        )
    )
    bob = env["bob"]

    def get(tags: dict[str, str] | None) -> bool:
        facts = S3RequestFacts(existing_object_tags=tags)
        return allowed(env, bob, "GetObject", policy=production_only, facts=facts)

    assert get({"environment": "production", "team": "x"})
    assert not get({"environment": "test"})
    assert not get({})
    assert not get(None)
    # And the companion that keeps a tag from being changed by uploads carrying other tags.
    keep_tags = doc(
        allow({"AWS": bob.arn}, "s3:PutObject", OBJECTS),
        deny(
            "*",
            "s3:PutObject",
            OBJECTS,
            **cond("ForAnyValue:StringNotEquals", "s3:RequestObjectTagKeys", ["project", "team"]),
        ),
    )

    def put(tags: dict[str, str] | None) -> bool:
        facts = S3RequestFacts(request_object_tags=tags)
        return allowed(env, bob, "s3:PutObject", policy=keep_tags, facts=facts)

    assert put({"project": "p1"})
    assert put(None)
    assert not put({"project": "p1", "secret": "x"})


def test_prefix_conditions(env: Env) -> None:
    lister = env["lister"]

    def ls(prefix: str | None) -> bool:
        return allowed(env, lister, "ListObjectsV2", key=None, facts=S3RequestFacts(prefix=prefix))

    assert ls("projects/alpha/")
    assert not ls("private/")
    assert not ls(None)  # absent: the Null deny
    assert not ls("")  # present but empty: the StringLike does not match
    assert not allowed(
        env, lister, "ListObjectVersions", key=None, facts=S3RequestFacts(prefix="projects/")
    )


def test_version_conditions(env: Env) -> None:
    bob = env["bob"]
    current_only = doc(allow({"AWS": bob.arn}, "s3:GetObject", OBJECTS))
    v1 = S3RequestFacts(version_id="v1")
    assert allowed(env, bob, "GetObject", policy=current_only)
    assert not allowed(env, bob, "GetObject", policy=current_only, facts=v1)
    one_version = doc(
        allow(
            {"AWS": bob.arn},
            "s3:GetObjectVersion",
            OBJECTS,
            **cond("StringEquals", "s3:VersionId", "v1"),
        )
    )
    assert allowed(env, bob, "GetObject", policy=one_version, facts=v1)
    assert not allowed(
        env, bob, "GetObject", policy=one_version, facts=S3RequestFacts(version_id="v2")
    )
    # GetObjectAttributes needs both of its actions.
    attributes = doc(allow({"AWS": bob.arn}, "s3:GetObjectAttributes", OBJECTS))
    assert not allowed(env, bob, "GetObjectAttributes", policy=attributes)
    both = doc(allow({"AWS": bob.arn}, ["s3:GetObjectAttributes", "s3:GetObject"], OBJECTS))
    assert allowed(env, bob, "GetObjectAttributes", policy=both)
    # PutObject with x-amz-acl needs s3:PutObjectAcl as well.
    put_only = doc(allow({"AWS": bob.arn}, "s3:PutObject", OBJECTS))
    assert allowed(env, bob, "PutObject", policy=put_only)
    assert not allowed(env, bob, "PutObject", policy=put_only, facts=S3RequestFacts(acl="private"))


def test_copy_checks_source_and_destination(env: Env) -> None:
    bob = env["bob"]
    policy = doc(
        allow({"AWS": bob.arn}, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/src/*"),
        allow({"AWS": bob.arn}, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/dst/*"),
    )
    facts = S3RequestFacts(copy_source=f"{BUCKET}/src/a")
    assert allowed(env, bob, "CopyObject", key="dst/a", policy=policy, facts=facts)
    assert allowed(env, bob, copy_source_action(), key="src/a", policy=policy)
    assert not allowed(env, bob, copy_source_action("v1"), key="src/a", policy=policy)
    assert not allowed(env, bob, "CopyObject", key="src/b", policy=policy, facts=facts)


# -- bucket policy operations, account operations, the cache -------------------------------------


def test_bucket_policy_is_the_owner_accounts_business(env: Env) -> None:
    carol = env["carol"]
    lets_b_read_policy = doc(allow({"AWS": B}, "s3:GetBucketPolicy", bucket_arn(BUCKET)))
    with pytest.raises(MethodNotAllowed) as info:
        env.access.check(
            make_call(carol),
            "GetBucketPolicy",
            bucket=BUCKET,
            key=None,
            owner_account=A,
            policy=lets_b_read_policy,
            block=ALL_OFF,
        )
    assert (info.value.code, info.value.http_status) == ("MethodNotAllowed", 405)
    # Another account's root has no escape hatch on this bucket.
    deny_all = doc(deny("*", "s3:*", "*"))
    assert not allowed(env, env["rootB"], "DeleteBucketPolicy", key=None, policy=deny_all)
    assert allowed(env, env["rootA"], "DeleteBucketPolicy", key=None, policy=deny_all)
    assert not allowed(env, env["rootA"], "GetObject", policy=deny_all)


def test_check_account(env: Env) -> None:
    call = make_call
    env.access.check_account(call(env["alice"]), "ListBuckets")
    env.access.check_account(call(env["rootA"]), "ListBuckets")
    env.access.check_account(call(env["alice"]), "CreateBucket", bucket="new-bucket")
    for principal in (env["bob"], ANONYMOUS, env["carol"]):
        with pytest.raises(S3AccessDenied):
            env.access.check_account(call(principal), "ListBuckets")


def test_bucket_policy_cache(env: Env) -> None:
    access = BucketAccess(env.authz, cache_size=2)
    first = access._bucket_policy("b1", PUBLIC_READ)
    assert first is not None and first.public
    assert access._bucket_policy("b1", PUBLIC_READ) is first
    assert access._bucket_policy("b1", "".join(PUBLIC_READ)) is first  # equal text
    changed = access._bucket_policy("b1", TLS_ONLY_POLICY)
    assert changed is not None and changed is not first and not changed.public
    assert access._bucket_policy("b1", None) is None
    access._bucket_policy("b2", PUBLIC_READ)
    access._bucket_policy("b3", PUBLIC_READ)
    assert len(access._policies) == 2 and "b1" not in access._policies
    assert access.policy_is_public("b3", PUBLIC_READ)
    assert not access.policy_is_public("b3", None)
    access.forget("b3")
    assert "b3" not in access._policies


def test_delete_objects_per_key(env: Env) -> None:
    bob = env["bob"]
    policy = doc(allow({"AWS": bob.arn}, "s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/tmp/*"))
    verdicts = {
        key: allowed(env, bob, "DeleteObjects", key=key, policy=policy)
        for key in ("tmp/a", "tmp/b", "keep/c")
    }
    assert verdicts == {"tmp/a": True, "tmp/b": True, "keep/c": False}
    versioned = replace(NO_FACTS, version_id="v1")
    assert not allowed(env, bob, "DeleteObjects", key="tmp/a", policy=policy, facts=versioned)
