"""IamService on a real SQLite database: every operation, AWS's errors, and what it stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import botocore.parsers
import botocore.session
import pytest
from sqlalchemy import func, select

from sealbox import arn as arns
from sealbox.audit.recorder import AuditRecorder
from sealbox.auth.principal import secret_label
from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.config import Settings
from sealbox.errors import AwsError
from sealbox.iam.base import check_name
from sealbox.iam.bootstrap import ROOT_USER_NAME, bootstrap
from sealbox.iam.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    IamAccessDenied,
    IamValidationError,
    InvalidInputError,
    LimitExceededError,
    MalformedPolicyDocumentError,
    NoSuchEntityError,
    ServiceFailureError,
)
from sealbox.iam.model import Principal
from sealbox.iam.service import IamService
from sealbox.keystore.sealed_file import SealedFileKeyStore
from sealbox.protocols import iam as iam_protocol
from sealbox.storage import iam_repo
from sealbox.storage.db import Database
from sealbox.storage.tables import audit_events

ACCOUNT = "111122223333"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def doc(action: str = "kms:Encrypt", resource: str = "*", sid: str | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if sid:
        statement["Sid"] = sid
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


ROOT = Principal(ACCOUNT, arns.account_root_arn(ACCOUNT), "Root", ACCOUNT, access_key_id="AKIAX")


def user_principal(name: str, user_id: str = "AIDAEXAMPLE") -> Principal:
    return Principal(
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "IAMUser",
        user_id,
        user_name=name,
        access_key_id="AKIAY",
    )


ROLE_SESSION = Principal(
    ACCOUNT,
    f"arn:aws:sts::{ACCOUNT}:assumed-role/builder/s1",
    "AssumedRole",
    "AROAEXAMPLE:s1",
    access_key_id="ASIAZ",
)


def call(name: str = "Test", principal: Principal = ROOT) -> Call:
    return Call(
        principal=principal,
        region="us-east-1",
        event_source="iam.amazonaws.com",
        event_name=name,
        request_id="test",
    )


@dataclass
class Env:
    svc: IamService
    db: Database
    data_dir: Path
    keystore: SealedFileKeyStore
    checks: list[tuple[str, str]] = field(default_factory=list)
    deny: set[str] = field(default_factory=set)

    def version(self) -> int:
        with self.db.read() as conn:
            return iam_repo.iam_version(conn, ACCOUNT)

    def audit_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


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
    holder: list[Env] = []

    def authorize(c: Call, action: str, resource: str) -> None:
        holder[0].checks.append((action, resource))
        if action in holder[0].deny:
            raise IamAccessDenied(f"{c.principal.arn} may not {action} on {resource}")

    svc = IamService(db, keystore, clock, AuditRecorder(db, clock), authorize)
    holder.append(Env(svc, db, data_dir, keystore))
    yield holder[0]
    db.dispose()


def raises(err: type[AwsError], fn: Callable[[], object], match: str | None = None) -> AwsError:
    with pytest.raises(err, match=match) as info:
        fn()
    return info.value


def _check_name_ok(name: str) -> bool:
    try:
        check_name(name, "userName", 64)
    except IamValidationError:
        return False
    return True


# -- errors --------------------------------------------------------------------------------


def test_error_codes_and_statuses() -> None:
    expected = {
        NoSuchEntityError: ("NoSuchEntity", 404),
        EntityAlreadyExistsError: ("EntityAlreadyExists", 409),
        DeleteConflictError: ("DeleteConflict", 409),
        LimitExceededError: ("LimitExceeded", 409),
        MalformedPolicyDocumentError: ("MalformedPolicyDocument", 400),
        InvalidInputError: ("InvalidInput", 400),
        IamValidationError: ("ValidationError", 400),
        ServiceFailureError: ("ServiceFailure", 500),
        IamAccessDenied: ("AccessDenied", 403),
    }
    for cls, (code, status) in expected.items():
        assert (cls.code, cls.http_status) == (code, status)
    model = botocore.session.get_session().get_service_model("iam")
    for cls in list(expected)[:6]:
        meta = model.shape_for(f"{cls.code}Exception").metadata["error"]
        assert (meta["code"], meta["httpStatusCode"]) == (cls.code, cls.http_status)


# -- users ---------------------------------------------------------------------------------


def test_user_life_cycle(env: Env) -> None:
    svc = env.svc
    user = svc.create_user(call(), "alice", path="/eng/", tags=[("team", "crypto")])
    assert user.arn == f"arn:aws:iam::{ACCOUNT}:user/eng/alice"
    assert user.user_id.startswith("AIDA") and len(user.user_id) == 21
    assert user.path == "/eng/" and user.tags == (("team", "crypto"),)
    assert env.checks[-1] == ("iam:CreateUser", user.arn)

    got = svc.get_user(call(), "ALICE")  # names are case-insensitive; the stored spelling wins
    assert (got.user_name, got.arn, got.path, got.tags) == ("alice", user.arn, "/eng/", user.tags)
    assert env.checks[-1] == ("iam:GetUser", user.arn)

    svc.create_user(call(), "bob")
    assert svc.get_user(call(), "bob").arn == f"arn:aws:iam::{ACCOUNT}:user/bob"
    assert [u.user_name for u in svc.list_users(call()).items] == ["alice", "bob"]  # no root
    assert [u.user_name for u in svc.list_users(call(), "/eng/").items] == ["alice"]
    assert svc.list_users(call(), "/e").items[0].user_name == "alice"
    assert svc.list_users(call(), "/b").items == []  # a prefix of the path, not the name

    svc.delete_user(call(), "Alice")
    raises(NoSuchEntityError, lambda: svc.get_user(call(), "alice"), "alice cannot be found")
    assert [u.user_name for u in svc.list_users(call()).items] == ["bob"]


def test_user_errors(env: Env) -> None:
    svc = env.svc
    svc.create_user(call(), "carol")
    err = raises(EntityAlreadyExistsError, lambda: svc.create_user(call(), "CAROL"))
    assert err.http_status == 409
    raises(NoSuchEntityError, lambda: svc.delete_user(call(), "nobody"))
    raises(IamValidationError, lambda: svc.create_user(call(), "bad name"), "regular expression")
    raises(IamValidationError, lambda: svc.create_user(call(), "x" * 65), "length")
    raises(IamValidationError, lambda: svc.create_user(call(), ""), "length")
    raises(IamValidationError, lambda: svc.create_user(call(), "dave", path="nope"), "pattern")
    raises(IamValidationError, lambda: svc.create_user(call(), "dave", path="/a"), "pattern")
    # The root user's row is not an IAM user: not listed, not found by name, not creatable.
    if _check_name_ok(ROOT_USER_NAME):
        raises(InvalidInputError, lambda: svc.create_user(call(), ROOT_USER_NAME), "reserved")
        raises(NoSuchEntityError, lambda: svc.get_user(call(), ROOT_USER_NAME))
    else:
        raises(IamValidationError, lambda: svc.get_user(call(), ROOT_USER_NAME))
    raises(
        InvalidInputError,
        lambda: svc.create_user(call(), "erin", permissions_boundary="arn:aws:iam::1:policy/x"),
    )
    assert svc.create_user(call(), "a+b=c,d.e@f-g_1").user_name == "a+b=c,d.e@f-g_1"


def test_get_user_without_a_name_is_the_caller(env: Env) -> None:
    svc = env.svc
    frank = svc.create_user(call(), "frank")
    me = svc.get_user(call(principal=user_principal("frank")))
    assert me.arn == frank.arn and me.user_id == frank.user_id
    root = svc.get_user(call())
    assert (root.user_id, root.arn, root.is_root) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", True)
    assert iam_protocol.user_shape(root) == {
        "UserId": ACCOUNT,
        "Arn": f"arn:aws:iam::{ACCOUNT}:root",
        "CreateDate": root.created_at,
    }
    raises(
        IamValidationError,
        lambda: svc.get_user(call(principal=ROLE_SESSION)),
        "Must specify userName when calling with non-User credentials",
    )


def test_user_tags(env: Env) -> None:
    svc = env.svc
    svc.create_user(call(), "gina", tags=[("Dept", "eng")])
    svc.tag_user(call(), "gina", [("env", "prod"), ("DEPT", "ops")])  # replaces "Dept"
    assert svc.list_user_tags(call(), "gina").items == [("DEPT", "ops"), ("env", "prod")]
    svc.untag_user(call(), "gina", ["Env", "missing"])
    assert svc.list_user_tags(call(), "gina").items == [("DEPT", "ops")]
    raises(InvalidInputError, lambda: svc.tag_user(call(), "gina", [("aws:x", "1")]), "aws:")
    raises(InvalidInputError, lambda: svc.tag_user(call(), "gina", [("a", "1"), ("A", "2")]))
    raises(InvalidInputError, lambda: svc.tag_user(call(), "gina", [("bad<key>", "1")]))
    raises(NoSuchEntityError, lambda: svc.tag_user(call(), "nobody", [("a", "1")]))
    svc.tag_user(call(), "gina", [(f"k{i:02}", "v") for i in range(49)])
    raises(LimitExceededError, lambda: svc.tag_user(call(), "gina", [("one-more", "v")]))
    first = svc.list_user_tags(call(), "gina", max_items=20)
    assert first.is_truncated and len(first.items) == 20
    rest = svc.list_user_tags(call(), "gina", marker=first.marker, max_items=100)
    assert not rest.is_truncated and len(first.items) + len(rest.items) == 50


# -- access keys ---------------------------------------------------------------------------


def test_access_keys(env: Env) -> None:
    svc = env.svc
    svc.create_user(call(), "hank")
    first = svc.create_access_key(call(), "hank")
    assert first.info.access_key_id.startswith("AKIA") and len(first.info.access_key_id) == 20
    assert len(first.secret_access_key) == 40 and first.info.status == "Active"
    assert first.secret_access_key not in repr(first)
    second = svc.create_access_key(call(principal=user_principal("hank")))  # the caller's own
    raises(LimitExceededError, lambda: svc.create_access_key(call(), "hank"), "AccessKeysPerUser")

    listed = svc.list_access_keys(call(), "hank").items
    assert {k.access_key_id for k in listed} == {
        first.info.access_key_id,
        second.info.access_key_id,
    }
    assert {k.user_name for k in listed} == {"hank"}

    svc.update_access_key(call(), first.info.access_key_id, "Inactive", "hank")
    with env.db.read() as conn:
        row = iam_repo.get_access_key(conn, first.info.access_key_id)
    assert row is not None and row.status == "Inactive"
    secret = env.keystore.unwrap(row.wrapped_secret, secret_label(row.access_key_id))
    assert secret.decode() == first.secret_access_key
    raises(IamValidationError, lambda: svc.update_access_key(call(), row.access_key_id, "Nope"))

    svc.create_user(call(), "ivy")
    raises(  # a key of another user is not found under this one
        NoSuchEntityError,
        lambda: svc.delete_access_key(call(), first.info.access_key_id, "ivy"),
        "Access Key",
    )
    raises(NoSuchEntityError, lambda: svc.create_access_key(call(), "nobody"))
    svc.delete_access_key(call(), first.info.access_key_id, "hank")
    raises(NoSuchEntityError, lambda: svc.delete_access_key(call(), first.info.access_key_id))
    assert [k.access_key_id for k in svc.list_access_keys(call(), "hank").items] == [
        second.info.access_key_id
    ]
    raises(IamValidationError, lambda: svc.list_access_keys(call(principal=ROLE_SESSION)))


def test_root_access_keys_without_a_user_name(env: Env) -> None:
    svc = env.svc
    before = svc.list_access_keys(call()).items  # bootstrap made one
    assert len(before) == 1 and before[0].user_name == ""
    new = svc.create_access_key(call())
    assert new.info.user_name == ""
    raises(LimitExceededError, lambda: svc.create_access_key(call()))
    svc.delete_access_key(call(), new.info.access_key_id)
    assert len(svc.list_access_keys(call()).items) == 1


def test_secrets_are_never_stored_in_plaintext(env: Env) -> None:
    env.svc.create_user(call(), "jack")
    secrets = [env.svc.create_access_key(call(), "jack").secret_access_key for _ in range(2)]
    env.db.dispose()  # checkpoint the WAL so everything is on disk
    blobs = b"".join(p.read_bytes() for p in env.data_dir.rglob("*") if p.is_file())
    assert b"jack" in blobs  # the scan does see the database
    for secret in secrets:
        assert secret.encode() not in blobs
        assert secret.encode("utf-16-le") not in blobs


# -- roles ---------------------------------------------------------------------------------


def test_role_life_cycle(env: Env) -> None:
    svc = env.svc
    role = svc.create_role(
        call(),
        "builder",
        TRUST,
        path="/ci/",
        description="CI builds",
        max_session_duration=7200,
        tags=[("owner", "ci")],
    )
    assert role.arn == f"arn:aws:iam::{ACCOUNT}:role/ci/builder"
    assert role.role_id.startswith("AROA") and len(role.role_id) == 21
    got = svc.get_role(call(), "Builder")
    assert (got.role_name, got.trust_policy, got.description) == ("builder", TRUST, "CI builds")
    assert (got.max_session_duration, got.tags) == (7200, (("owner", "ci"),))
    assert svc.create_role(call(), "plain", TRUST).max_session_duration == 3600
    assert [r.role_name for r in svc.list_roles(call()).items] == ["builder", "plain"]
    assert [r.role_name for r in svc.list_roles(call(), "/ci/").items] == ["builder"]

    new_trust = TRUST.replace("sts:AssumeRole", "sts:*")
    svc.update_assume_role_policy(call(), "builder", new_trust)
    assert svc.get_role(call(), "builder").trust_policy == new_trust

    svc.tag_role(call(), "builder", [("env", "prod")])
    svc.untag_role(call(), "builder", ["owner"])
    assert svc.list_role_tags(call(), "builder").items == [("env", "prod")]

    svc.delete_role(call(), "builder")
    raises(NoSuchEntityError, lambda: svc.get_role(call(), "builder"), "role with name builder")


def test_role_errors(env: Env) -> None:
    svc = env.svc
    svc.create_role(call(), "r1", TRUST)
    raises(EntityAlreadyExistsError, lambda: svc.create_role(call(), "R1", TRUST))
    for duration in (3599, 43201):
        raises(
            IamValidationError,
            partial(svc.create_role, call(), "r2", TRUST, max_session_duration=duration),
            "maxSessionDuration",
        )
    assert svc.create_role(call(), "r3", TRUST, max_session_duration=43200)
    bad = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"}
            ],
        }
    )
    err = raises(MalformedPolicyDocumentError, lambda: svc.create_role(call(), "r4", bad))
    assert "Statement 0" in err.message and "Resource" in err.message
    raises(MalformedPolicyDocumentError, lambda: svc.create_role(call(), "r4", "{nope"), "JSON")
    raises(
        MalformedPolicyDocumentError,
        lambda: svc.update_assume_role_policy(call(), "r1", doc()),  # no Principal
    )
    raises(NoSuchEntityError, lambda: svc.update_assume_role_policy(call(), "nobody", TRUST))
    raises(IamValidationError, lambda: svc.create_role(call(), "r5", TRUST, description="x" * 1001))
    big = json.loads(TRUST)
    big["Statement"][0]["Principal"]["AWS"] = [
        f"arn:aws:iam::{ACCOUNT}:user/u{i:04}" for i in range(60)
    ]
    raises(
        LimitExceededError,
        lambda: svc.create_role(call(), "r6", json.dumps(big)),
        "ACLSizePerRole",
    )
    raises(NoSuchEntityError, lambda: svc.delete_role(call(), "nobody"))


# -- inline policies -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "limit"), [("user", 2048), ("role", 10240), ("group", 5120)])
def test_inline_policies(env: Env, kind: str, limit: int) -> None:
    svc = env.svc
    if kind == "user":
        svc.create_user(call(), "owner")
    elif kind == "role":
        svc.create_role(call(), "owner", TRUST)
    else:
        svc.create_group(call(), "owner")
    put = getattr(svc, f"put_{kind}_policy")
    get = getattr(svc, f"get_{kind}_policy")
    delete = getattr(svc, f"delete_{kind}_policy")
    listing = getattr(svc, f"list_{kind}_policies")

    put(call(), "owner", "Read", doc("kms:Decrypt"))
    put(call(), "owner", "Write", doc("kms:Encrypt"))
    put(call(), "owner", "read", doc("kms:DescribeKey"))  # same name in another case: replaced
    assert listing(call(), "owner").items == ["read", "Write"]
    got = get(call(), "OWNER", "READ")
    assert (got.entity_name, got.policy_name, got.document) == (
        "owner",
        "read",
        doc("kms:DescribeKey"),
    )
    assert env.checks[-1][0] == f"iam:Get{kind.title()}Policy"

    page = listing(call(), "owner", max_items=1)
    assert page.items == ["read"] and page.is_truncated
    assert listing(call(), "owner", marker=page.marker).items == ["Write"]

    err = raises(
        MalformedPolicyDocumentError,
        lambda: put(call(), "owner", "Bad", doc(sid="has space")),
    )
    assert "Statement 0" in err.message and "Sid" in err.message
    with_principal = json.loads(doc())
    with_principal["Statement"][0]["Principal"] = "*"
    raises(
        MalformedPolicyDocumentError,
        lambda: put(call(), "owner", "Bad", json.dumps(with_principal)),
        "Principal",
    )
    raises(IamValidationError, lambda: put(call(), "owner", "bad name", doc()))
    raises(NoSuchEntityError, lambda: put(call(), "nobody", "P", doc()))

    # Sizes count characters other than white space, over all the entity's inline policies.
    used = sum(
        len("".join(get(call(), "owner", n).document.split()))
        for n in listing(call(), "owner").items
    )
    filler = limit - used - len("".join(doc(resource="arn:aws:s3:::").split()))
    exact = doc(resource="arn:aws:s3:::" + "b" * filler)
    padded = exact.replace(",", ",     ")  # white space is free
    put(call(), "owner", "Fill", padded)
    raises(
        LimitExceededError,
        lambda: put(call(), "owner", "More", doc(resource="arn:aws:s3:::x")),
        f"Maximum policy size of {limit} bytes exceeded",
    )
    put(call(), "owner", "Fill", exact)  # replacing counts the new text only

    delete(call(), "owner", "Fill")
    raises(NoSuchEntityError, lambda: delete(call(), "owner", "Fill"), "policy with name Fill")
    raises(NoSuchEntityError, lambda: get(call(), "owner", "Fill"))


# -- managed policies ----------------------------------------------------------------------


def test_managed_policy_life_cycle(env: Env) -> None:
    svc = env.svc
    policy = svc.create_policy(
        call(), "Readers", doc("kms:Decrypt"), path="/team/", description="read", tags=[("a", "b")]
    )
    assert policy.arn == f"arn:aws:iam::{ACCOUNT}:policy/team/Readers"
    assert policy.policy_id.startswith("ANPA") and policy.default_version_id == "v1"
    assert policy.attachment_count == 0
    got = svc.get_policy(call(), policy.arn)
    assert (got.description, got.document, got.tags) == ("read", doc("kms:Decrypt"), (("a", "b"),))
    assert env.checks[-1] == ("iam:GetPolicy", policy.arn)

    raises(EntityAlreadyExistsError, lambda: svc.create_policy(call(), "readers", doc()))
    raises(IamValidationError, lambda: svc.create_policy(call(), "P", doc(), path="/a b/"))
    raises(MalformedPolicyDocumentError, lambda: svc.create_policy(call(), "P", '{"Statement": 1}'))
    big = doc(resource="arn:aws:s3:::" + "b" * 6100)
    raises(LimitExceededError, lambda: svc.create_policy(call(), "P", big), "PolicySize: 6144")
    raises(NoSuchEntityError, lambda: svc.get_policy(call(), policy.arn + "x"), "was not found")
    raises(InvalidInputError, lambda: svc.get_policy(call(), "arn:aws:s3:::bucket/key/long"))

    other = svc.create_policy(call(), "Writers", doc("kms:Encrypt"))
    assert [p.policy_name for p in svc.list_policies(call()).items] == ["Readers", "Writers"]
    assert [p.policy_name for p in svc.list_policies(call(), scope="Local").items] == [
        "Readers",
        "Writers",
    ]
    assert svc.list_policies(call(), scope="AWS").items == []
    assert [p.arn for p in svc.list_policies(call(), path_prefix="/team/").items] == [policy.arn]
    raises(IamValidationError, lambda: svc.list_policies(call(), scope="Mine"))

    svc.create_user(call(), "kim")
    svc.attach_user_policy(call(), "kim", other.arn)
    svc.attach_user_policy(call(), "kim", other.arn)  # again: no change, no error
    assert svc.get_policy(call(), other.arn).attachment_count == 1
    assert [p.arn for p in svc.list_policies(call(), only_attached=True).items] == [other.arn]
    err = raises(DeleteConflictError, lambda: svc.delete_policy(call(), other.arn))
    assert err.http_status == 409
    svc.detach_user_policy(call(), "kim", other.arn)
    raises(NoSuchEntityError, lambda: svc.detach_user_policy(call(), "kim", other.arn))
    svc.delete_policy(call(), other.arn)
    raises(NoSuchEntityError, lambda: svc.get_policy(call(), other.arn))
    raises(NoSuchEntityError, lambda: svc.delete_policy(call(), other.arn))


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_attachments(env: Env, kind: str) -> None:
    svc = env.svc
    if kind == "user":
        svc.create_user(call(), "e1")
    elif kind == "role":
        svc.create_role(call(), "e1", TRUST)
    else:
        svc.create_group(call(), "e1")
    attach = getattr(svc, f"attach_{kind}_policy")
    detach = getattr(svc, f"detach_{kind}_policy")
    listing = getattr(svc, f"list_attached_{kind}_policies")
    arns_ = [
        svc.create_policy(call(), f"p{i:02}", doc(), path="/x/" if i == 0 else "/").arn
        for i in range(11)
    ]
    for arn in arns_[:10]:
        attach(call(), "e1", arn)
    assert env.checks[-1] == (f"iam:Attach{kind.title()}Policy", svc_arn(env, kind, "e1"))
    raises(
        LimitExceededError,
        lambda: attach(call(), "e1", arns_[10]),
        f"PoliciesPer{kind.title()}: 10",
    )
    everything = listing(call(), "e1")
    assert [a.policy_name for a in everything.items] == [f"p{i:02}" for i in range(10)]
    assert [a.policy_arn for a in listing(call(), "e1", "/x/").items] == [arns_[0]]
    page = listing(call(), "e1", max_items=4)
    assert len(page.items) == 4 and page.is_truncated
    assert listing(call(), "e1", marker=page.marker, max_items=100).items[0].policy_name == "p04"

    managed = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    raises(NoSuchEntityError, lambda: attach(call(), "e1", managed), "not attachable")
    missing = f"arn:aws:iam::{ACCOUNT}:policy/missing"
    raises(NoSuchEntityError, lambda: attach(call(), "e1", missing), "does not exist")
    raises(InvalidInputError, lambda: attach(call(), "e1", "arn:aws:kms:us-east-1:1:key/abc"))
    raises(NoSuchEntityError, lambda: attach(call(), "nobody", arns_[10]))
    detach(call(), "e1", arns_[0])
    raises(NoSuchEntityError, lambda: detach(call(), "e1", arns_[0]))
    assert len(listing(call(), "e1").items) == 9


def svc_arn(env: Env, kind: str, name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


# -- groups --------------------------------------------------------------------------------


def test_groups(env: Env) -> None:
    svc = env.svc
    group = svc.create_group(call(), "devs", path="/eng/")
    assert group.arn == f"arn:aws:iam::{ACCOUNT}:group/eng/devs"
    assert group.group_id.startswith("AGPA") and len(group.group_id) == 21
    raises(EntityAlreadyExistsError, lambda: svc.create_group(call(), "DEVS"))
    svc.create_group(call(), "ops")
    for name in ("u1", "u2", "u3"):
        svc.create_user(call(), name)
        svc.add_user_to_group(call(), "devs", name)
    svc.add_user_to_group(call(), "devs", "u1")  # again: no change
    svc.add_user_to_group(call(), "ops", "u1")
    assert env.checks[-1] == ("iam:AddUserToGroup", f"arn:aws:iam::{ACCOUNT}:group/ops")

    result = svc.get_group(call(), "devs")
    assert result.group.group_name == "devs"
    assert [u.user_name for u in result.users.items] == ["u1", "u2", "u3"]
    page = svc.get_group(call(), "devs", max_items=2).users
    assert page.is_truncated and [u.user_name for u in page.items] == ["u1", "u2"]
    rest = svc.get_group(call(), "devs", marker=page.marker).users
    assert [u.user_name for u in rest.items] == ["u3"] and not rest.is_truncated

    assert [g.group_name for g in svc.list_groups(call()).items] == ["devs", "ops"]
    assert [g.group_name for g in svc.list_groups(call(), "/eng/").items] == ["devs"]
    assert [g.group_name for g in svc.list_groups_for_user(call(), "u1").items] == ["devs", "ops"]

    raises(DeleteConflictError, lambda: svc.delete_group(call(), "devs"), "remove users")
    raises(DeleteConflictError, lambda: svc.delete_user(call(), "u1"), "groups")
    svc.remove_user_from_group(call(), "ops", "u1")
    raises(NoSuchEntityError, lambda: svc.remove_user_from_group(call(), "ops", "u1"))
    raises(NoSuchEntityError, lambda: svc.add_user_to_group(call(), "nope", "u1"))
    raises(NoSuchEntityError, lambda: svc.add_user_to_group(call(), "ops", "nobody"))

    svc.put_group_policy(call(), "ops", "P", doc())
    raises(DeleteConflictError, lambda: svc.delete_group(call(), "ops"), "delete policies")
    svc.delete_group_policy(call(), "ops", "P")
    policy = svc.create_policy(call(), "OpsPolicy", doc())
    svc.attach_group_policy(call(), "ops", policy.arn)
    raises(DeleteConflictError, lambda: svc.delete_group(call(), "ops"), "detach")
    svc.detach_group_policy(call(), "ops", policy.arn)
    svc.delete_group(call(), "ops")
    raises(NoSuchEntityError, lambda: svc.get_group(call(), "ops"))

    for i in range(9):
        svc.create_group(call(), f"g{i}")
        svc.add_user_to_group(call(), f"g{i}", "u1")
    svc.create_group(call(), "g9")
    raises(LimitExceededError, lambda: svc.add_user_to_group(call(), "g9", "u1"), "GroupsPerUser")


# -- delete conflicts ----------------------------------------------------------------------


def test_delete_user_conflicts_until_everything_is_removed(env: Env) -> None:
    svc = env.svc
    svc.create_user(call(), "lee", tags=[("a", "b")])
    key = svc.create_access_key(call(), "lee").info.access_key_id
    svc.put_user_policy(call(), "lee", "Inline", doc())
    policy = svc.create_policy(call(), "Managed", doc())
    svc.attach_user_policy(call(), "lee", policy.arn)
    svc.create_group(call(), "grp")
    svc.add_user_to_group(call(), "grp", "lee")

    raises(DeleteConflictError, lambda: svc.delete_user(call(), "lee"), "access keys")
    svc.delete_access_key(call(), key, "lee")
    raises(DeleteConflictError, lambda: svc.delete_user(call(), "lee"), "delete policies")
    svc.delete_user_policy(call(), "lee", "Inline")
    raises(DeleteConflictError, lambda: svc.delete_user(call(), "lee"), "detach")
    svc.detach_user_policy(call(), "lee", policy.arn)
    raises(DeleteConflictError, lambda: svc.delete_user(call(), "lee"), "groups")
    svc.remove_user_from_group(call(), "grp", "lee")
    svc.delete_user(call(), "lee")
    with env.db.read() as conn:
        assert iam_repo.principal_tags(conn, ACCOUNT, "user", "lee") == {}
    svc.create_user(call(), "lee")  # the name is free again, without the old tags
    assert svc.get_user(call(), "lee").tags == ()


def test_delete_role_conflicts(env: Env) -> None:
    svc = env.svc
    svc.create_role(call(), "svc", TRUST)
    svc.put_role_policy(call(), "svc", "Inline", doc())
    policy = svc.create_policy(call(), "Managed", doc())
    svc.attach_role_policy(call(), "svc", policy.arn)
    raises(DeleteConflictError, lambda: svc.delete_role(call(), "svc"), "delete policies")
    svc.delete_role_policy(call(), "svc", "Inline")
    raises(DeleteConflictError, lambda: svc.delete_role(call(), "svc"), "detach")
    svc.detach_role_policy(call(), "svc", policy.arn)
    svc.delete_role(call(), "svc")


# -- pagination ----------------------------------------------------------------------------


def test_pagination(env: Env) -> None:
    svc = env.svc
    names = ["Ann", "bea", "Cid", "dee", "Eve"]
    for name in reversed(names):
        svc.create_user(call(), name)
        svc.create_role(call(), name, TRUST)
        svc.create_group(call(), name)
        svc.create_policy(call(), name, doc())
    listers: list[tuple[Callable[..., Any], Callable[[Any], str]]] = [
        (lambda **kw: svc.list_users(call(), **kw), lambda u: u.user_name),
        (lambda **kw: svc.list_roles(call(), **kw), lambda r: r.role_name),
        (lambda **kw: svc.list_groups(call(), **kw), lambda g: g.group_name),
        (lambda **kw: svc.list_policies(call(), **kw), lambda p: p.policy_name),
    ]
    for lister, name_of in listers:
        seen: list[str] = []
        marker = None
        pages = 0
        while True:
            page = lister(marker=marker, max_items=2)
            seen += [name_of(x) for x in page.items]
            pages += 1
            if not page.is_truncated:
                break
            marker = page.marker
        assert seen == names and pages == 3
        raises(IamValidationError, partial(lister, max_items=0), "greater than or equal")
        raises(IamValidationError, partial(lister, max_items=1001), "less than or equal")
        raises(IamValidationError, partial(lister, marker="%%%"), "Marker")


# -- authorization, audit and iam_version --------------------------------------------------


def test_denied_calls_change_nothing(env: Env) -> None:
    svc = env.svc
    version, audited = env.version(), env.audit_count()
    env.deny.add("iam:CreateUser")
    raises(IamAccessDenied, lambda: svc.create_user(call(), "mallory"))
    env.deny.add("iam:GetUser")
    raises(IamAccessDenied, lambda: svc.get_user(call(), "nobody"))  # denied before NoSuchEntity
    assert env.checks[-1] == ("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/nobody")
    env.deny.clear()
    raises(NoSuchEntityError, lambda: svc.get_user(call(), "mallory"))
    assert (env.version(), env.audit_count()) == (version, audited)


def test_every_change_bumps_iam_version_and_is_audited(env: Env) -> None:
    svc = env.svc
    changes: list[tuple[str, Callable[[Call], object]]] = [
        ("CreateUser", lambda c: svc.create_user(c, "nia")),
        ("TagUser", lambda c: svc.tag_user(c, "nia", [("k", "v")])),
        ("UntagUser", lambda c: svc.untag_user(c, "nia", ["k"])),
        ("CreateAccessKey", lambda c: svc.create_access_key(c, "nia")),
        ("CreateRole", lambda c: svc.create_role(c, "rol", TRUST)),
        ("UpdateAssumeRolePolicy", lambda c: svc.update_assume_role_policy(c, "rol", TRUST)),
        ("TagRole", lambda c: svc.tag_role(c, "rol", [("k", "v")])),
        ("UntagRole", lambda c: svc.untag_role(c, "rol", ["k"])),
        ("CreateGroup", lambda c: svc.create_group(c, "grp")),
        ("AddUserToGroup", lambda c: svc.add_user_to_group(c, "grp", "nia")),
        ("PutUserPolicy", lambda c: svc.put_user_policy(c, "nia", "p", doc())),
        ("PutRolePolicy", lambda c: svc.put_role_policy(c, "rol", "p", doc())),
        ("PutGroupPolicy", lambda c: svc.put_group_policy(c, "grp", "p", doc())),
        ("CreatePolicy", lambda c: svc.create_policy(c, "mp", doc())),
        ("AttachUserPolicy", lambda c: svc.attach_user_policy(c, "nia", mp_arn())),
        ("AttachRolePolicy", lambda c: svc.attach_role_policy(c, "rol", mp_arn())),
        ("AttachGroupPolicy", lambda c: svc.attach_group_policy(c, "grp", mp_arn())),
        ("DetachUserPolicy", lambda c: svc.detach_user_policy(c, "nia", mp_arn())),
        ("DetachRolePolicy", lambda c: svc.detach_role_policy(c, "rol", mp_arn())),
        ("DetachGroupPolicy", lambda c: svc.detach_group_policy(c, "grp", mp_arn())),
        ("DeletePolicy", lambda c: svc.delete_policy(c, mp_arn())),
        ("DeleteUserPolicy", lambda c: svc.delete_user_policy(c, "nia", "p")),
        ("DeleteRolePolicy", lambda c: svc.delete_role_policy(c, "rol", "p")),
        ("DeleteGroupPolicy", lambda c: svc.delete_group_policy(c, "grp", "p")),
        ("RemoveUserFromGroup", lambda c: svc.remove_user_from_group(c, "grp", "nia")),
        ("UpdateAccessKey", lambda c: svc.update_access_key(c, key_of("nia"), "Inactive", "nia")),
        ("DeleteAccessKey", lambda c: svc.delete_access_key(c, key_of("nia"), "nia")),
        ("DeleteGroup", lambda c: svc.delete_group(c, "grp")),
        ("DeleteRole", lambda c: svc.delete_role(c, "rol")),
        ("DeleteUser", lambda c: svc.delete_user(c, "nia")),
    ]

    def mp_arn() -> str:
        return f"arn:aws:iam::{ACCOUNT}:policy/mp"

    def key_of(user: str) -> str:
        return svc.list_access_keys(call(), user).items[0].access_key_id

    for name, change in changes:
        version, audited = env.version(), env.audit_count()
        c = call(name)
        change(c)
        assert env.version() == version + 1, name
        assert env.audit_count() == audited + 1, name
        assert c.audited, name
        assert env.checks[-1][0] == f"iam:{name}", name
    with env.db.read() as conn:
        records = conn.execute(
            select(audit_events.c.event_name, audit_events.c.event_source, audit_events.c.record)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).one()
    assert records.event_name == "DeleteUser" and records.event_source == "iam.amazonaws.com"
    assert f"arn:aws:iam::{ACCOUNT}:user/nia" in records.record

    # Reads change nothing.
    version, audited = env.version(), env.audit_count()
    c = call("ListUsers")
    svc.list_users(c)
    svc.list_policies(c)
    assert (env.version(), env.audit_count(), c.audited) == (version, audited, False)


# -- what the authorizer reads -------------------------------------------------------------


def test_identity_policy_documents(env: Env) -> None:
    svc = env.svc
    svc.create_user(call(), "olga", tags=[("team", "blue"), ("tier", "1")])
    svc.create_user(call(), "pete")
    for group in ("g1", "g2", "g3"):
        svc.create_group(call(), group)
    svc.add_user_to_group(call(), "g1", "olga")
    svc.add_user_to_group(call(), "g2", "olga")
    svc.add_user_to_group(call(), "g3", "pete")
    managed = {
        name: svc.create_policy(call(), name, doc(f"kms:{name}"))
        for name in ("UserManaged", "G1Managed", "G2Managed", "Shared", "G3Managed", "RoleManaged")
    }
    svc.put_user_policy(call(), "olga", "UserInline", doc("kms:UserInline"))
    svc.attach_user_policy(call(), "olga", managed["UserManaged"].arn)
    svc.attach_user_policy(call(), "olga", managed["Shared"].arn)
    svc.put_group_policy(call(), "g1", "G1Inline", doc("kms:G1Inline"))
    svc.attach_group_policy(call(), "g1", managed["G1Managed"].arn)
    svc.attach_group_policy(call(), "g1", managed["Shared"].arn)  # reached twice: listed once
    svc.put_group_policy(call(), "g2", "G2Inline", doc("kms:G2Inline"))
    svc.attach_group_policy(call(), "g2", managed["G2Managed"].arn)
    svc.put_group_policy(call(), "g3", "G3Inline", doc("kms:G3Inline"))  # not olga's group
    svc.attach_group_policy(call(), "g3", managed["G3Managed"].arn)
    svc.create_role(call(), "worker", TRUST, tags=[("env", "prod")])
    svc.put_role_policy(call(), "worker", "RoleInline", doc("kms:RoleInline"))
    svc.attach_role_policy(call(), "worker", managed["RoleManaged"].arn)

    def actions(kind: str, name: str) -> list[str]:
        with env.db.read() as conn:
            texts = iam_repo.identity_policy_documents(conn, ACCOUNT, kind, name)
        return sorted(json.loads(t)["Statement"][0]["Action"].split(":")[1] for t in texts)

    assert actions("user", "olga") == sorted(
        [
            "UserInline",
            "UserManaged",
            "Shared",
            "G1Inline",
            "G1Managed",
            "G2Inline",
            "G2Managed",
        ]
    )
    assert actions("user", "pete") == ["G3Inline", "G3Managed"]
    assert actions("role", "worker") == ["RoleInline", "RoleManaged"]
    assert actions("user", "nobody") == []
    assert actions("group", "g1") == []  # only users and roles are principals

    with env.db.read() as conn:
        assert iam_repo.principal_tags(conn, ACCOUNT, "user", "olga") == {
            "team": "blue",
            "tier": "1",
        }
        assert iam_repo.principal_tags(conn, ACCOUNT, "role", "worker") == {"env": "prod"}
        assert iam_repo.principal_tags(conn, ACCOUNT, "user", "pete") == {}

    svc.remove_user_from_group(call(), "g2", "olga")
    assert "G2Inline" not in actions("user", "olga")


# -- the operation table and botocore's output shapes --------------------------------------


def _check_shape(value: Any, shape: Any, where: str) -> None:
    """value fits botocore's shape: known members only, required ones present, types right."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), where
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{where}: {unknown} not in {shape.name}"
        for name, member in value.items():
            _check_shape(member, shape.members[name], f"{where}.{name}")
        root_user = shape.name == "User" and value.get("Arn", "").endswith(":root")
        for name in shape.required_members:
            if root_user and name in ("UserName", "Path"):
                continue  # AWS omits them for the root user
            assert name in value, f"{where}: required {name} missing"
    elif kind == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _check_shape(item, shape.member, f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), where
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    elif kind == "timestamp":
        assert value.tzinfo is not None, where


def _roundtrip(op: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Serialize with Sealbox's Query codec, parse with botocore's Query parser."""
    from sealbox.protocols.codec import query

    body = query.serialize_response(op, result, "req-1")
    parser = botocore.parsers.QueryParser()
    parsed = dict(parser.parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape))
    parsed.pop("ResponseMetadata", None)
    return parsed


def test_handlers_produce_botocore_output_shapes(env: Env) -> None:
    model = botocore.session.get_session().get_service_model("iam")
    pid = f"arn:aws:iam::{ACCOUNT}:policy/path/Managed"
    script: list[tuple[str, dict[str, Any]]] = [
        ("CreateUser", {"UserName": "quinn", "Path": "/p/", "Tags": [{"Key": "k", "Value": "v"}]}),
        ("GetUser", {"UserName": "quinn"}),
        ("GetUser", {}),
        ("ListUsers", {"MaxItems": 1}),
        ("TagUser", {"UserName": "quinn", "Tags": [{"Key": "x", "Value": "y"}]}),
        ("ListUserTags", {"UserName": "quinn"}),
        ("UntagUser", {"UserName": "quinn", "TagKeys": ["x"]}),
        ("CreateAccessKey", {"UserName": "quinn"}),
        ("ListAccessKeys", {"UserName": "quinn"}),
        ("ListAccessKeys", {}),
        ("CreateRole", {"RoleName": "rr", "AssumeRolePolicyDocument": TRUST, "Description": "d"}),
        ("GetRole", {"RoleName": "rr"}),
        ("ListRoles", {}),
        ("UpdateAssumeRolePolicy", {"RoleName": "rr", "PolicyDocument": TRUST}),
        ("TagRole", {"RoleName": "rr", "Tags": [{"Key": "a", "Value": "b"}]}),
        ("ListRoleTags", {"RoleName": "rr"}),
        ("UntagRole", {"RoleName": "rr", "TagKeys": ["a"]}),
        ("CreateGroup", {"GroupName": "gg"}),
        ("AddUserToGroup", {"GroupName": "gg", "UserName": "quinn"}),
        ("GetGroup", {"GroupName": "gg"}),
        ("ListGroups", {}),
        ("ListGroupsForUser", {"UserName": "quinn"}),
        ("PutUserPolicy", {"UserName": "quinn", "PolicyName": "u", "PolicyDocument": doc()}),
        ("GetUserPolicy", {"UserName": "quinn", "PolicyName": "u"}),
        ("ListUserPolicies", {"UserName": "quinn"}),
        ("PutRolePolicy", {"RoleName": "rr", "PolicyName": "r", "PolicyDocument": doc()}),
        ("GetRolePolicy", {"RoleName": "rr", "PolicyName": "r"}),
        ("ListRolePolicies", {"RoleName": "rr"}),
        ("PutGroupPolicy", {"GroupName": "gg", "PolicyName": "g", "PolicyDocument": doc()}),
        ("GetGroupPolicy", {"GroupName": "gg", "PolicyName": "g"}),
        ("ListGroupPolicies", {"GroupName": "gg"}),
        ("CreatePolicy", {"PolicyName": "Managed", "Path": "/path/", "PolicyDocument": doc()}),
        ("GetPolicy", {"PolicyArn": pid}),
        ("ListPolicies", {"Scope": "Local"}),
        ("AttachUserPolicy", {"UserName": "quinn", "PolicyArn": pid}),
        ("ListAttachedUserPolicies", {"UserName": "quinn"}),
        ("AttachRolePolicy", {"RoleName": "rr", "PolicyArn": pid}),
        ("ListAttachedRolePolicies", {"RoleName": "rr"}),
        ("AttachGroupPolicy", {"GroupName": "gg", "PolicyArn": pid}),
        ("ListAttachedGroupPolicies", {"GroupName": "gg"}),
        ("DetachUserPolicy", {"UserName": "quinn", "PolicyArn": pid}),
        ("DetachRolePolicy", {"RoleName": "rr", "PolicyArn": pid}),
        ("DetachGroupPolicy", {"GroupName": "gg", "PolicyArn": pid}),
        ("DeletePolicy", {"PolicyArn": pid}),
        ("DeleteUserPolicy", {"UserName": "quinn", "PolicyName": "u"}),
        ("DeleteRolePolicy", {"RoleName": "rr", "PolicyName": "r"}),
        ("DeleteGroupPolicy", {"GroupName": "gg", "PolicyName": "g"}),
        ("RemoveUserFromGroup", {"GroupName": "gg", "UserName": "quinn"}),
        ("DeleteGroup", {"GroupName": "gg"}),
        ("DeleteRole", {"RoleName": "rr"}),
    ]
    assert {name for name, _ in script} | {
        "UpdateAccessKey",
        "DeleteAccessKey",
        "DeleteUser",
    } == set(iam_protocol.OPERATIONS)
    assert iam_protocol.EVENT_SOURCE == "iam.amazonaws.com"
    assert "GetUser" in iam_protocol.READ_ONLY and "CreateUser" not in iam_protocol.READ_ONLY
    results: dict[str, dict[str, Any]] = {}
    for name, params in script:
        op = model.operation_model(name)
        result = iam_protocol.OPERATIONS[name](env.svc, call(name), params)
        results.setdefault(name, result)
        if op.output_shape is None:
            assert result == {}, name
            continue
        _check_shape(result, op.output_shape, name)
        assert _roundtrip(op, result) == result, name

    key = results["CreateAccessKey"]["AccessKey"]
    for name, params in [
        ("UpdateAccessKey", {"UserName": "quinn", "AccessKeyId": key["AccessKeyId"]}),
        ("DeleteAccessKey", {"UserName": "quinn", "AccessKeyId": key["AccessKeyId"]}),
        ("DeleteUser", {"UserName": "quinn"}),
    ]:
        if name == "UpdateAccessKey":
            params["Status"] = "Inactive"
        assert iam_protocol.OPERATIONS[name](env.svc, call(name), params) == {}

    # Policy documents travel URL-encoded, as botocore expects (it decodes them).
    role = results["GetRole"]["Role"]
    assert json.loads(unquote(role["AssumeRolePolicyDocument"])) == json.loads(TRUST)
    assert json.loads(unquote(results["GetUserPolicy"]["PolicyDocument"])) == json.loads(doc())
    assert results["ListUsers"]["IsTruncated"] is False
    assert results["GetUser"]["User"]["Tags"] == [{"Key": "k", "Value": "v"}]
    assert results["GetPolicy"]["Policy"]["AttachmentCount"] == 0
    assert results["GetPolicy"]["Policy"]["DefaultVersionId"] == "v1"
    assert key["SecretAccessKey"] and key["UserName"] == "quinn"
    assert results["GetGroup"]["Users"][0]["UserName"] == "quinn"
