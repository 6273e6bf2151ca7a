"""BucketService on a real SQLite database with the real S3 access layer: every bucket
operation, its defaults, S3's errors and what it stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sealbox import arn as arns
from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.config import Settings
from sealbox.iam.authz import Authorizer
from sealbox.iam.bootstrap import bootstrap
from sealbox.iam.model import Principal
from sealbox.keystore.sealed_file import SealedFileKeyStore
from sealbox.s3.access import ANONYMOUS, BucketAccess
from sealbox.s3.buckets import (
    DEFAULT_ENCRYPTION,
    AccessControlListNotSupported,
    BucketService,
    IllegalLocationConstraintException,
    InvalidBucketAclWithObjectOwnership,
    InvalidLocationConstraint,
    S3NotImplemented,
    canonical_user_id,
    check_bucket_name,
)
from sealbox.s3.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    InvalidTag,
    MalformedPolicy,
    MalformedXML,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchPublicAccessBlockConfiguration,
    NoSuchTagSet,
    S3AccessDenied,
    S3Error,
)
from sealbox.s3.model import SSE_C, Bucket, EncryptionRule, ObjectVersion
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database

ACCOUNT = "111122223333"
OTHER = "444455556666"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"

ROOT = Principal(ACCOUNT, arns.account_root_arn(ACCOUNT), "Root", ACCOUNT, access_key_id="AKIAR")
OTHER_ROOT = Principal(OTHER, arns.account_root_arn(OTHER), "Root", OTHER, access_key_id="AKIAO")
ALICE = Principal(ACCOUNT, ALICE_ARN, "IAMUser", "AIDAALICE", user_name="alice")

AES256_BLOCKING_SSE_C = {
    "Rules": [
        {
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
            "BucketKeyEnabled": False,
            "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]},
        }
    ]
}
ALL_ON = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def call(operation: str, principal: Principal = ROOT, region: str = "us-east-1", **kw: Any) -> Call:
    return Call(
        principal=principal,
        region=region,
        event_source="s3.amazonaws.com",
        event_name=operation,
        request_id="test",
        **kw,
    )


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource}


@dataclass
class Env:
    svc: BucketService
    db: Database
    clock: ManualClock

    def run(self, operation: str, principal: Principal = ROOT, **params: Any) -> dict[str, Any]:
        """Call the operation the way the endpoint will: by its snake_case name."""
        method = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
        region = params.pop("_region", "us-east-1")
        result: dict[str, Any] = getattr(self.svc, method)(
            call(operation, principal, region), params
        )
        return result

    def create(self, name: str = "bucket-1", **params: Any) -> dict[str, Any]:
        return self.run("CreateBucket", Bucket=name, **params)

    def stored(self, name: str) -> Bucket | None:
        with self.db.read() as conn:
            return s3_repo.get_bucket(conn, name)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    migrator = Database.for_migrations(settings.resolved_database_url)
    migrator.migrate()
    migrator.dispose()
    db = Database(settings.resolved_database_url)
    clock = ManualClock()
    keystore = SealedFileKeyStore.open_or_create(data_dir, None)
    bootstrap(db, keystore, clock, ACCOUNT, None, None)
    access = BucketAccess(Authorizer(db, clock))
    svc = BucketService(db, clock, access, BlobStore(tmp_path / "blobs"))
    yield Env(svc, db, clock)
    db.dispose()


def raises(env: Env, err: type[S3Error], operation: str, **kw: Any) -> S3Error:
    with pytest.raises(err) as info:
        env.run(operation, **kw)
    return info.value


# -- CreateBucket -------------------------------------------------------------------------------


def test_create_bucket_gets_aws_current_defaults(env: Env) -> None:
    assert env.create("bucket-1") == {"Location": "/bucket-1"}

    stored = env.stored("bucket-1")
    assert stored is not None
    assert stored.account_id == ACCOUNT and stored.region == "us-east-1"
    assert stored.created_at == env.clock.now()
    assert stored.versioning is None and stored.policy is None and stored.tags == {}
    assert stored.encryption == EncryptionRule("AES256", None, False, (SSE_C,))
    assert stored.public_access_block == ALL_ON

    enc = env.run("GetBucketEncryption", Bucket="bucket-1")
    assert enc == {"ServerSideEncryptionConfiguration": AES256_BLOCKING_SSE_C}
    pab = env.run("GetPublicAccessBlock", Bucket="bucket-1")
    assert pab == {"PublicAccessBlockConfiguration": ALL_ON}
    assert env.run("GetBucketVersioning", Bucket="bucket-1") == {}
    assert env.run("GetBucketLocation", Bucket="bucket-1") == {"LocationConstraint": None}
    assert env.run("HeadBucket", Bucket="bucket-1") == {
        "BucketRegion": "us-east-1",
        "AccessPointAlias": False,
    }
    assert env.run("GetBucketOwnershipControls", Bucket="bucket-1") == {
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    }
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")
    raises(env, NoSuchBucketPolicy, "GetBucketPolicy", Bucket="bucket-1")


def test_create_bucket_records_resources_and_parameters(env: Env) -> None:
    c = call("CreateBucket", region="eu-west-1")
    config = {"LocationConstraint": "eu-west-1"}
    env.svc.create_bucket(c, {"Bucket": "audited", "CreateBucketConfiguration": config})
    assert c.resources == ["arn:aws:s3:::audited"]
    assert c.request_parameters == {"bucketName": "audited", "CreateBucketConfiguration": config}

    c = call("PutBucketTagging")
    tagging = {"TagSet": [{"Key": "team", "Value": "blue"}]}
    env.svc.put_bucket_tagging(c, {"Bucket": "audited", "Tagging": tagging})
    assert c.resources == ["arn:aws:s3:::audited"]
    assert c.request_parameters == {"bucketName": "audited", "tagging": "", "Tagging": tagging}


def test_create_bucket_in_another_region(env: Env) -> None:
    out = env.create(
        "euro-bucket",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        _region="eu-west-1",
    )
    assert out == {"Location": "http://euro-bucket.s3.amazonaws.com/"}
    assert env.run("GetBucketLocation", Bucket="euro-bucket") == {"LocationConstraint": "eu-west-1"}
    assert env.run("HeadBucket", Bucket="euro-bucket")["BucketRegion"] == "eu-west-1"

    # No constraint: the region the request was sent to.
    env.create("frankfurt-bucket", _region="eu-central-1")
    stored = env.stored("frankfurt-bucket")
    assert stored is not None and stored.region == "eu-central-1"

    # The legacy "EU" constraint means eu-west-1.
    env.create(
        "legacy-eu", CreateBucketConfiguration={"LocationConstraint": "EU"}, _region="eu-west-1"
    )
    stored = env.stored("legacy-eu")
    assert stored is not None and stored.region == "eu-west-1"


def test_location_constraint_errors(env: Env) -> None:
    err = raises(
        env,
        IllegalLocationConstraintException,
        "CreateBucket",
        Bucket="misplaced",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    assert err.http_status == 400
    assert err.message == (
        "The eu-west-1 location constraint is incompatible for the region specific endpoint "
        "this request was sent to."
    )
    err = raises(
        env,
        InvalidLocationConstraint,
        "CreateBucket",
        Bucket="explicit-us-east-1",
        CreateBucketConfiguration={"LocationConstraint": "us-east-1"},
    )
    assert err.http_status == 400
    assert err.message == "The specified location-constraint is not valid"
    raises(
        env,
        InvalidLocationConstraint,
        "CreateBucket",
        Bucket="nowhere",
        CreateBucketConfiguration={"LocationConstraint": "moon-base"},
    )
    assert env.stored("misplaced") is None and env.stored("explicit-us-east-1") is None


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Upper-case",
        "under_score",
        "-starts-with-hyphen",
        "ends-with-hyphen-",
        ".starts-with-dot",
        "two..dots",
        "192.168.5.4",
        "xn--punycode",
        "sthree-reserved",
        "amzn-s3-demo-bucket",
        "my-bucket-s3alias",
        "my-bucket--ol-s3",
        "my-bucket.mrap",
        "my-bucket--x-s3",
        "_sealbox",
        "with space",
        "",
    ],
)
def test_invalid_bucket_names(env: Env, name: str) -> None:
    err = raises(env, InvalidBucketName, "CreateBucket", Bucket=name)
    assert err.message == "The specified bucket is not valid."
    assert env.stored(name) is None


@pytest.mark.parametrize(
    "name", ["abc", "a" * 63, "my.bucket.name", "bucket-1", "1bucket9", "192.168.5.4.5"]
)
def test_valid_bucket_names(name: str) -> None:
    assert check_bucket_name(name) == name


def test_bucket_already_owned_or_taken(env: Env) -> None:
    env.create("taken")
    err = raises(env, BucketAlreadyOwnedByYou, "CreateBucket", Bucket="taken")
    assert err.http_status == 409 and err.extra == {"BucketName": "taken"}
    err = raises(env, BucketAlreadyExists, "CreateBucket", principal=OTHER_ROOT, Bucket="taken")
    assert err.http_status == 409
    stored = env.stored("taken")
    assert stored is not None and stored.account_id == ACCOUNT


def test_create_bucket_with_tags(env: Env) -> None:
    tags = [{"Key": "team", "Value": "blue"}, {"Key": "cost centre", "Value": ""}]
    env.create("tagged", CreateBucketConfiguration={"Tags": tags})
    assert env.run("GetBucketTagging", Bucket="tagged") == {"TagSet": tags}

    bad = [{"Key": "aws:cloudformation:stack-name", "Value": "x"}]
    raises(env, InvalidTag, "CreateBucket", Bucket="never", CreateBucketConfiguration={"Tags": bad})
    assert env.stored("never") is None


def test_create_bucket_acl_and_ownership_headers(env: Env) -> None:
    env.create("private-acl", ACL="private", ObjectOwnership="BucketOwnerEnforced")
    env.create(
        "owner-grant",
        GrantFullControl=f'id="{canonical_user_id(ACCOUNT)}"',
    )
    raises(
        env, InvalidBucketAclWithObjectOwnership, "CreateBucket", Bucket="pub", ACL="public-read"
    )
    raises(
        env,
        InvalidBucketAclWithObjectOwnership,
        "CreateBucket",
        Bucket="pub",
        GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"',
    )
    err = raises(
        env, S3NotImplemented, "CreateBucket", Bucket="pub", ObjectOwnership="ObjectWriter"
    )
    assert err.http_status == 501
    raises(env, S3NotImplemented, "CreateBucket", Bucket="pub", ObjectLockEnabledForBucket=True)
    assert env.stored("pub") is None


def test_create_bucket_needs_permission(env: Env) -> None:
    raises(env, S3AccessDenied, "CreateBucket", principal=ALICE, Bucket="alices")
    raises(env, S3AccessDenied, "CreateBucket", principal=ANONYMOUS, Bucket="anons")
    assert env.stored("alices") is None and env.stored("anons") is None


# -- DeleteBucket / HeadBucket / ListBuckets ---------------------------------------------------


def _marker(bucket: str, env: Env) -> ObjectVersion:
    return ObjectVersion(
        bucket=bucket,
        key="k",
        version_id="null",
        is_latest=True,
        delete_marker=True,
        size=0,
        etag="",
        last_modified=env.clock.now(),
        owner_account=ACCOUNT,
        keying=None,
    )


def test_delete_bucket(env: Env) -> None:
    env.create("doomed")
    marker = _marker("doomed", env)
    env.db.write(lambda conn: s3_repo.put_version(conn, marker))
    err = raises(env, BucketNotEmpty, "DeleteBucket", Bucket="doomed")
    assert err.http_status == 409 and err.message == "The bucket you tried to delete is not empty"

    with env.db.read() as conn:
        stored = s3_repo.get_version(conn, "doomed", "k")
    assert stored is not None
    env.db.write(lambda conn: s3_repo.delete_version(conn, stored))
    assert env.run("DeleteBucket", Bucket="doomed") == {}
    assert env.stored("doomed") is None
    raises(env, NoSuchBucket, "HeadBucket", Bucket="doomed")
    raises(env, NoSuchBucket, "DeleteBucket", Bucket="doomed")
    # The name is free again, for anyone.
    env.run("CreateBucket", principal=OTHER_ROOT, Bucket="doomed")


def test_other_accounts_cannot_touch_a_bucket(env: Env) -> None:
    env.create("mine")
    for operation in ("DeleteBucket", "HeadBucket", "GetBucketTagging", "GetBucketEncryption"):
        raises(env, S3AccessDenied, operation, principal=OTHER_ROOT, Bucket="mine")
    raises(env, S3AccessDenied, "HeadBucket", principal=ALICE, Bucket="mine")
    raises(env, S3AccessDenied, "HeadBucket", principal=ANONYMOUS, Bucket="mine")
    assert env.stored("mine") is not None


def test_expected_bucket_owner(env: Env) -> None:
    env.create("owned")
    env.run("HeadBucket", Bucket="owned", ExpectedBucketOwner=ACCOUNT)
    err = raises(env, S3AccessDenied, "HeadBucket", Bucket="owned", ExpectedBucketOwner=OTHER)
    assert err.http_status == 403


def test_list_buckets(env: Env) -> None:
    env.create("b-one")
    env.clock.advance(timedelta(seconds=1))
    env.create("a-two", _region="eu-west-1")
    env.create("c-three")
    env.run("CreateBucket", principal=OTHER_ROOT, Bucket="someone-elses")

    out = env.run("ListBuckets")
    assert [b["Name"] for b in out["Buckets"]] == ["a-two", "b-one", "c-three"]
    assert out["Buckets"][1] == {
        "Name": "b-one",
        "CreationDate": env.clock.now() - timedelta(seconds=1),
        "BucketRegion": "us-east-1",
    }
    owner_id = canonical_user_id(ACCOUNT)
    assert out["Owner"] == {"ID": owner_id}
    assert len(owner_id) == 64 and int(owner_id, 16) >= 0
    assert "ContinuationToken" not in out and "Prefix" not in out

    other = env.run("ListBuckets", principal=OTHER_ROOT)
    assert [b["Name"] for b in other["Buckets"]] == ["someone-elses"]
    assert other["Owner"]["ID"] != owner_id

    assert [b["Name"] for b in env.run("ListBuckets", Prefix="b-")["Buckets"]] == ["b-one"]
    assert env.run("ListBuckets", Prefix="b-")["Prefix"] == "b-"
    regional = env.run("ListBuckets", BucketRegion="eu-west-1")
    assert [b["Name"] for b in regional["Buckets"]] == ["a-two"]


def test_list_buckets_pages(env: Env) -> None:
    for name in ("p-1", "p-2", "p-3", "p-4", "p-5"):
        env.create(name)
    names: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"MaxBuckets": 2}
        if token is not None:
            params["ContinuationToken"] = token
        page = env.run("ListBuckets", **params)
        pages += 1
        names += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if token is None:
            break
    assert names == ["p-1", "p-2", "p-3", "p-4", "p-5"] and pages == 3

    for bad in (0, 10_001, "many"):
        raises(env, InvalidArgument, "ListBuckets", MaxBuckets=bad)
    raises(env, InvalidArgument, "ListBuckets", ContinuationToken="!!not-a-token!!")


def test_list_buckets_needs_permission(env: Env) -> None:
    env.create("listed")
    raises(env, S3AccessDenied, "ListBuckets", principal=ALICE)
    raises(env, S3AccessDenied, "ListBuckets", principal=ANONYMOUS)


def test_operations_on_a_missing_bucket(env: Env) -> None:
    for operation in (
        "HeadBucket",
        "GetBucketLocation",
        "GetBucketTagging",
        "GetBucketPolicy",
        "GetBucketEncryption",
        "GetPublicAccessBlock",
        "GetBucketVersioning",
        "GetBucketAcl",
    ):
        err = raises(env, NoSuchBucket, operation, Bucket="no-such-bucket")
        assert err.http_status == 404 and err.extra == {"BucketName": "no-such-bucket"}


# -- tagging -------------------------------------------------------------------------------------


def test_bucket_tagging_round_trip(env: Env) -> None:
    env.create()
    tags = [{"Key": "team", "Value": "blue"}, {"Key": "env", "Value": "prod"}]
    assert env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": tags}) == {}
    assert env.run("GetBucketTagging", Bucket="bucket-1") == {"TagSet": tags}

    # A put replaces the whole set.
    env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert env.run("GetBucketTagging", Bucket="bucket-1") == {
        "TagSet": [{"Key": "a", "Value": "b"}]
    }

    assert env.run("DeleteBucketTagging", Bucket="bucket-1") == {}
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")
    env.run("DeleteBucketTagging", Bucket="bucket-1")  # idempotent

    env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": tags})
    env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": []})
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")


@pytest.mark.parametrize(
    ("tag_set", "message"),
    [
        (
            [{"Key": f"k{i}", "Value": "v"} for i in range(51)],
            "Bucket tag count cannot be greater than 50",
        ),
        ([{"Key": "", "Value": "v"}], "The TagKey you have provided is invalid"),
        ([{"Key": "k" * 129, "Value": "v"}], "The TagKey you have provided is invalid"),
        ([{"Key": "k", "Value": "v" * 257}], "The TagValue you have provided is invalid"),
        ([{"Key": "k", "Value": "inv&alid"}], "The TagValue you have provided is invalid"),
        ([{"Key": "semi;colon", "Value": "v"}], "The TagKey you have provided is invalid"),
        ([{"Key": "aws:reserved", "Value": "v"}], "Your TagKey cannot be prefixed with aws:"),
        (
            [{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}],
            "Cannot provide multiple Tags with the same key",
        ),
    ],
)
def test_invalid_bucket_tags(env: Env, tag_set: list[dict[str, str]], message: str) -> None:
    env.create()
    err = raises(
        env, InvalidTag, "PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": tag_set}
    )
    assert err.message == message and err.http_status == 400
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")


def test_tags_at_the_limits_are_accepted(env: Env) -> None:
    env.create()
    tag_set = [{"Key": f"k{i:03}" + "k" * 124, "Value": "v" * 256} for i in range(50)]
    tag_set.append({"Key": "ünïcödé +-=._:/@", "Value": "ok"})
    tag_set.pop(0)
    env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": tag_set})
    assert env.run("GetBucketTagging", Bucket="bucket-1") == {"TagSet": tag_set}


def test_tagging_needs_permission(env: Env) -> None:
    env.create()
    tagging = {"TagSet": [{"Key": "a", "Value": "b"}]}
    raises(
        env, S3AccessDenied, "PutBucketTagging", principal=ALICE, Bucket="bucket-1", Tagging=tagging
    )
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")


# -- bucket policy ----------------------------------------------------------------------------


def test_bucket_policy_round_trip(env: Env) -> None:
    env.create()
    text = policy(allow({"AWS": ALICE_ARN}, "s3:GetBucketTagging", "arn:aws:s3:::bucket-1"))
    assert env.run("PutBucketPolicy", Bucket="bucket-1", Policy=text) == {}
    assert env.run("GetBucketPolicy", Bucket="bucket-1") == {"Policy": text}
    assert env.run("GetBucketPolicyStatus", Bucket="bucket-1") == {
        "PolicyStatus": {"IsPublic": False}
    }
    assert env.run("DeleteBucketPolicy", Bucket="bucket-1") == {}
    raises(env, NoSuchBucketPolicy, "GetBucketPolicy", Bucket="bucket-1")
    err = raises(env, NoSuchBucketPolicy, "GetBucketPolicyStatus", Bucket="bucket-1")
    assert err.http_status == 404
    env.run("DeleteBucketPolicy", Bucket="bucket-1")  # idempotent


def test_bucket_policy_grants_access(env: Env) -> None:
    env.create()
    env.run("PutBucketTagging", Bucket="bucket-1", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    raises(env, S3AccessDenied, "GetBucketTagging", principal=ALICE, Bucket="bucket-1")

    text = policy(allow({"AWS": ALICE_ARN}, "s3:GetBucketTagging", "arn:aws:s3:::bucket-1"))
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=text)
    tags = env.run("GetBucketTagging", principal=ALICE, Bucket="bucket-1")
    assert tags == {"TagSet": [{"Key": "a", "Value": "b"}]}
    raises(env, S3AccessDenied, "GetBucketEncryption", principal=ALICE, Bucket="bucket-1")


def test_root_can_always_manage_the_policy(env: Env) -> None:
    env.create()
    deny_all = policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::bucket-1", "arn:aws:s3:::bucket-1/*"],
        }
    )
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=deny_all)
    raises(env, S3AccessDenied, "GetBucketTagging", Bucket="bucket-1")
    assert env.run("GetBucketPolicy", Bucket="bucket-1") == {"Policy": deny_all}
    env.run("DeleteBucketPolicy", Bucket="bucket-1")
    raises(env, NoSuchTagSet, "GetBucketTagging", Bucket="bucket-1")


def test_other_accounts_get_method_not_allowed_on_the_policy(env: Env) -> None:
    env.create()
    text = policy(allow({"AWS": OTHER}, "s3:GetBucketPolicy", "arn:aws:s3:::bucket-1"))
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=text)
    raises(env, MethodNotAllowed, "GetBucketPolicy", principal=OTHER_ROOT, Bucket="bucket-1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Policy document is not valid JSON"),
        ("[]", "Policy document must be a JSON object"),
        (
            policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}),
            'must contain "Principal" or "NotPrincipal"',
        ),
        (
            policy(allow({"AWS": ACCOUNT}, "s3:GetObject", "arn:aws:s3:::other-bucket/*")),
            "Policy has invalid resource",
        ),
        (
            policy(allow({"AWS": ACCOUNT}, "s3:GetObject", "arn:aws:s3:::bucket-10/*")),
            "Policy has invalid resource",
        ),
        (policy(allow({"AWS": ACCOUNT}, "s3:GetObject", "*")), "Policy has invalid resource"),
        (
            policy(allow({"AWS": ACCOUNT}, "kms:Decrypt", "arn:aws:s3:::bucket-1")),
            "Policy has invalid action",
        ),
        ("{" + " " * 20_480 + "}", "the maximum is 20480"),
    ],
)
def test_malformed_bucket_policies(env: Env, text: str, message: str) -> None:
    env.create()
    err = raises(env, MalformedPolicy, "PutBucketPolicy", Bucket="bucket-1", Policy=text)
    assert message in err.message and err.http_status == 400
    raises(env, NoSuchBucketPolicy, "GetBucketPolicy", Bucket="bucket-1")


def test_block_public_policy(env: Env) -> None:
    env.create()
    public = policy(allow("*", "s3:GetObject", "arn:aws:s3:::bucket-1/*"))
    err = raises(env, S3AccessDenied, "PutBucketPolicy", Bucket="bucket-1", Policy=public)
    assert "BlockPublicPolicy" in err.message and err.http_status == 403
    raises(env, NoSuchBucketPolicy, "GetBucketPolicy", Bucket="bucket-1")

    env.run(
        "PutPublicAccessBlock",
        Bucket="bucket-1",
        PublicAccessBlockConfiguration={"BlockPublicPolicy": False},
    )
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=public)
    status = env.run("GetBucketPolicyStatus", Bucket="bucket-1")
    assert status == {"PolicyStatus": {"IsPublic": True}}


# -- default encryption --------------------------------------------------------------------------


def _encryption(**by_default: Any) -> dict[str, Any]:
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": by_default}]}


def test_bucket_encryption_round_trip(env: Env) -> None:
    env.create()
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    config = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key,
                },
                "BucketKeyEnabled": True,
            }
        ]
    }
    assert (
        env.run("PutBucketEncryption", Bucket="bucket-1", ServerSideEncryptionConfiguration=config)
        == {}
    )
    got = env.run("GetBucketEncryption", Bucket="bucket-1")
    # Without BlockedEncryptionTypes the bucket keeps blocking SSE-C.
    assert got == {
        "ServerSideEncryptionConfiguration": {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    },
                    "BucketKeyEnabled": True,
                    "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]},
                }
            ]
        }
    }
    stored = env.stored("bucket-1")
    assert stored is not None
    assert stored.encryption == EncryptionRule("aws:kms", key, True, (SSE_C,))

    # Unblocking SSE-C.
    unblock = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
            }
        ]
    }
    env.run("PutBucketEncryption", Bucket="bucket-1", ServerSideEncryptionConfiguration=unblock)
    rule = env.run("GetBucketEncryption", Bucket="bucket-1")["ServerSideEncryptionConfiguration"]
    assert rule["Rules"][0] == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": False,
        "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
    }
    stored = env.stored("bucket-1")
    assert stored is not None and stored.encryption is not None
    assert SSE_C not in stored.encryption.blocked_types

    # Delete returns the bucket to the default: SSE-S3, SSE-C blocked.
    assert env.run("DeleteBucketEncryption", Bucket="bucket-1") == {}
    got = env.run("GetBucketEncryption", Bucket="bucket-1")
    assert got == {"ServerSideEncryptionConfiguration": AES256_BLOCKING_SSE_C}
    stored = env.stored("bucket-1")
    assert stored is not None and stored.encryption == DEFAULT_ENCRYPTION


def test_dsse_and_default_kms_key(env: Env) -> None:
    env.create()
    env.run(
        "PutBucketEncryption",
        Bucket="bucket-1",
        ServerSideEncryptionConfiguration=_encryption(SSEAlgorithm="aws:kms:dsse"),
    )
    stored = env.stored("bucket-1")
    assert stored is not None and stored.encryption is not None
    assert stored.encryption.algorithm == "aws:kms" and stored.encryption.kms_key_id is None


def test_bucket_encryption_errors(env: Env) -> None:
    env.create()
    err = raises(
        env,
        InvalidArgument,
        "PutBucketEncryption",
        Bucket="bucket-1",
        ServerSideEncryptionConfiguration=_encryption(SSEAlgorithm="AES256", KMSMasterKeyID="k"),
    )
    assert "KMSMasterKeyID is not applicable" in err.message
    malformed: list[dict[str, Any]] = [
        _encryption(SSEAlgorithm="SSE-KMS"),
        _encryption(),
        {"Rules": []},
        {"Rules": [{}, {}]},
        {"Rules": [{"BlockedEncryptionTypes": {"EncryptionType": ["SSE-KMS"]}}]},
        {},
    ]
    for bad in malformed:
        raises(
            env,
            MalformedXML,
            "PutBucketEncryption",
            Bucket="bucket-1",
            ServerSideEncryptionConfiguration=bad,
        )
    raises(
        env,
        InvalidArgument,
        "PutBucketEncryption",
        Bucket="bucket-1",
        ServerSideEncryptionConfiguration={
            "Rules": [{"BlockedEncryptionTypes": {"EncryptionType": ["NONE", "SSE-C"]}}]
        },
    )
    stored = env.stored("bucket-1")
    assert stored is not None and stored.encryption == DEFAULT_ENCRYPTION


def test_encryption_needs_permission(env: Env) -> None:
    env.create()
    raises(
        env,
        S3AccessDenied,
        "DeleteBucketEncryption",
        principal=ALICE,
        Bucket="bucket-1",
    )
    text = policy(
        allow({"AWS": ALICE_ARN}, "s3:PutEncryptionConfiguration", "arn:aws:s3:::bucket-1")
    )
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=text)
    env.run(
        "PutBucketEncryption",
        principal=ALICE,
        Bucket="bucket-1",
        ServerSideEncryptionConfiguration=_encryption(SSEAlgorithm="aws:kms"),
    )
    # Reading needs s3:GetEncryptionConfiguration, which Alice lacks.
    raises(env, S3AccessDenied, "GetBucketEncryption", principal=ALICE, Bucket="bucket-1")


# -- Block Public Access ----------------------------------------------------------------------


def test_public_access_block_round_trip(env: Env) -> None:
    env.create()
    env.run(
        "PutPublicAccessBlock",
        Bucket="bucket-1",
        PublicAccessBlockConfiguration={"BlockPublicAcls": True, "RestrictPublicBuckets": True},
    )
    assert env.run("GetPublicAccessBlock", Bucket="bucket-1") == {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        }
    }
    assert env.run("DeletePublicAccessBlock", Bucket="bucket-1") == {}
    err = raises(
        env, NoSuchPublicAccessBlockConfiguration, "GetPublicAccessBlock", Bucket="bucket-1"
    )
    assert err.http_status == 404
    stored = env.stored("bucket-1")
    assert stored is not None and stored.public_access_block is None

    # Without any configuration a public policy may be stored.
    public = policy(allow("*", "s3:GetObject", "arn:aws:s3:::bucket-1/*"))
    env.run("PutBucketPolicy", Bucket="bucket-1", Policy=public)

    raises(
        env,
        MalformedXML,
        "PutPublicAccessBlock",
        Bucket="bucket-1",
        PublicAccessBlockConfiguration={"BlockPublicAcls": "yes"},
    )


def test_public_access_block_needs_permission(env: Env) -> None:
    env.create()
    raises(env, S3AccessDenied, "DeletePublicAccessBlock", principal=ALICE, Bucket="bucket-1")
    raises(env, S3AccessDenied, "GetPublicAccessBlock", principal=OTHER_ROOT, Bucket="bucket-1")
    assert env.run("GetPublicAccessBlock", Bucket="bucket-1") == {
        "PublicAccessBlockConfiguration": ALL_ON
    }


# -- versioning ----------------------------------------------------------------------------------


def test_bucket_versioning(env: Env) -> None:
    env.create()
    env.run("PutBucketVersioning", Bucket="bucket-1", VersioningConfiguration={"Status": "Enabled"})
    assert env.run("GetBucketVersioning", Bucket="bucket-1") == {"Status": "Enabled"}
    env.run(
        "PutBucketVersioning", Bucket="bucket-1", VersioningConfiguration={"Status": "Suspended"}
    )
    assert env.run("GetBucketVersioning", Bucket="bucket-1") == {"Status": "Suspended"}
    # The cached bucket follows the change.
    assert env.svc.bucket("bucket-1").versioning == "Suspended"

    for bad in ({"Status": "Disabled"}, {"Status": "enabled"}, {"MFADelete": "maybe"}):
        raises(
            env, MalformedXML, "PutBucketVersioning", Bucket="bucket-1", VersioningConfiguration=bad
        )
    raises(
        env,
        S3NotImplemented,
        "PutBucketVersioning",
        Bucket="bucket-1",
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    # A configuration without Status changes nothing; versioning never returns to None.
    env.run(
        "PutBucketVersioning", Bucket="bucket-1", VersioningConfiguration={"MFADelete": "Disabled"}
    )
    assert env.run("GetBucketVersioning", Bucket="bucket-1") == {"Status": "Suspended"}


def test_suspending_a_never_versioned_bucket(env: Env) -> None:
    env.create()
    env.run(
        "PutBucketVersioning", Bucket="bucket-1", VersioningConfiguration={"Status": "Suspended"}
    )
    assert env.run("GetBucketVersioning", Bucket="bucket-1") == {"Status": "Suspended"}


# -- ACLs ----------------------------------------------------------------------------------------


def test_bucket_acl(env: Env) -> None:
    env.create()
    owner = canonical_user_id(ACCOUNT)
    assert env.run("GetBucketAcl", Bucket="bucket-1") == {
        "Owner": {"ID": owner},
        "Grants": [
            {"Grantee": {"ID": owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}
        ],
    }
    assert env.run("PutBucketAcl", Bucket="bucket-1", ACL="private") == {}
    owner_only = {
        "Owner": {"ID": owner},
        "Grants": [
            {"Grantee": {"ID": owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}
        ],
    }
    env.run("PutBucketAcl", Bucket="bucket-1", AccessControlPolicy=owner_only)

    everyone = {
        "Owner": {"ID": owner},
        "Grants": [
            {
                "Grantee": {
                    "Type": "Group",
                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                },
                "Permission": "READ",
            }
        ],
    }
    err = raises(
        env,
        AccessControlListNotSupported,
        "PutBucketAcl",
        Bucket="bucket-1",
        AccessControlPolicy=everyone,
    )
    assert err.http_status == 400 and err.message == "The bucket does not allow ACLs"
    raises(env, AccessControlListNotSupported, "PutBucketAcl", Bucket="bucket-1", ACL="public-read")
    raises(
        env,
        AccessControlListNotSupported,
        "PutBucketAcl",
        Bucket="bucket-1",
        GrantRead=f'id="{canonical_user_id(OTHER)}"',
    )
    raises(env, S3AccessDenied, "GetBucketAcl", principal=ALICE, Bucket="bucket-1")


def test_canonical_user_id_is_stable() -> None:
    assert canonical_user_id(ACCOUNT) == canonical_user_id(ACCOUNT)
    assert canonical_user_id(ACCOUNT) != canonical_user_id(OTHER)
