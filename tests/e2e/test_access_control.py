"""The access-control acceptance scenario, as a new user would try it through boto3.

Account A holds a key whose policy lets role `app` Encrypt and GenerateDataKey but not
Decrypt, lets role `reader` Decrypt only for tenant=blue, and delegates to IAM, where
user `admin` has kms:* but an explicit Deny on kms:ScheduleKeyDeletion. A grant lets a
user of account B Decrypt with tenant=green, which also needs B's own IAM policy.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.server import REGION, ServerProcess

ACCOUNT_A = "111111111111"
HOUR = 3600


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def denied(fn: Callable[[], Any], code: str = "AccessDeniedException") -> ClientError:
    with pytest.raises(ClientError) as err:
        fn()
    assert err.value.response["Error"]["Code"] == code, err.value.response["Error"]
    return err.value


def client(srv: ServerProcess, service: str, creds: dict[str, str]) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=srv.url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


def new_user(iam: Any, name: str, *statements: dict[str, Any]) -> dict[str, str]:
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def assume(srv: ServerProcess, creds: dict[str, str], role_arn: str) -> dict[str, str]:
    sts = client(srv, "sts", creds)
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=900)
    c = out["Credentials"]
    return {
        "AccessKeyId": c["AccessKeyId"],
        "SecretAccessKey": c["SecretAccessKey"],
        "SessionToken": c["SessionToken"],
    }


@pytest.fixture
def world(make_server: Callable[..., ServerProcess]) -> Iterator[dict[str, Any]]:
    srv = make_server(env={"SEALBOX_ACCOUNT_ID": ACCOUNT_A})
    made = subprocess.run(
        [sys.executable, "-m", "sealbox", "account", "create", "tenant-b",
         "--data-dir", str(srv.data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    b_root = json.loads(made.stdout)
    account_b = b_root["AccountId"]
    iam_a = srv.client("iam")
    kms_root = srv.client("kms")

    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_A}:root"},
            "Action": "sts:AssumeRole",
        }
    )
    app_role = iam_a.create_role(RoleName="app", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    reader_role = iam_a.create_role(RoleName="reader", AssumeRolePolicyDocument=trust)["Role"][
        "Arn"
    ]
    deployer = new_user(
        iam_a, "deployer", {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
    )
    admin = new_user(
        iam_a,
        "admin",
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
    )
    key_policy = policy(
        {
            "Sid": "Delegate to IAM",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_A}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "App encrypts",
            "Effect": "Allow",
            "Principal": {"AWS": app_role},
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": "*",
        },
        {
            "Sid": "Reader decrypts blue",
            "Effect": "Allow",
            "Principal": {"AWS": reader_role},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "blue"}},
        },
    )
    key = kms_root.create_key(Description="shared", Policy=key_policy)["KeyMetadata"]
    b_iam = client(srv, "iam", b_root)
    b_user = new_user(
        b_iam,
        "consumer",
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"]},
    )
    b_user_arn = f"arn:aws:iam::{account_b}:user/consumer"
    yield {
        "srv": srv,
        "key": key,
        "app": assume(srv, deployer, app_role),
        "reader": assume(srv, deployer, reader_role),
        "deployer": deployer,
        "admin": admin,
        "b_root": b_root,
        "b_user": b_user,
        "b_user_arn": b_user_arn,
        "account_b": account_b,
        "app_role": app_role,
    }


def test_key_policy_roles_admin_deny_and_cross_account_grant(world: dict[str, Any]) -> None:
    srv, key = world["srv"], world["key"]
    arn = key["Arn"]
    app = client(srv, "kms", world["app"])
    reader = client(srv, "kms", world["reader"])

    # app encrypts and makes data keys, but cannot decrypt.
    blue = app.encrypt(KeyId=arn, Plaintext=b"blue data", EncryptionContext={"tenant": "blue"})
    red = app.encrypt(KeyId=arn, Plaintext=b"red data", EncryptionContext={"tenant": "red"})
    app.generate_data_key(KeyId=arn, KeySpec="AES_256", EncryptionContext={"tenant": "blue"})
    err = denied(
        lambda: app.decrypt(
            CiphertextBlob=blue["CiphertextBlob"], EncryptionContext={"tenant": "blue"}
        )
    )
    assert "assumed-role/app/s1" in err.response["Error"]["Message"]
    assert "kms:Decrypt" in err.response["Error"]["Message"]

    # reader decrypts only tenant=blue, and encrypts nothing.
    plain = reader.decrypt(
        CiphertextBlob=blue["CiphertextBlob"], EncryptionContext={"tenant": "blue"}
    )
    assert plain["Plaintext"] == b"blue data"
    denied(
        lambda: reader.decrypt(
            CiphertextBlob=red["CiphertextBlob"], EncryptionContext={"tenant": "red"}
        )
    )
    denied(lambda: reader.encrypt(KeyId=arn, Plaintext=b"x"))

    # admin manages the key through IAM, but the explicit Deny holds despite kms:*.
    admin = client(srv, "kms", world["admin"])
    admin.update_key_description(KeyId=arn, Description="managed by admin")
    admin.enable_key_rotation(KeyId=arn)
    err = denied(lambda: admin.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7))
    assert "explicit deny" in err.response["Error"]["Message"]
    assert admin.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"

    # A user of account B decrypts green data only through a grant AND its own IAM policy.
    green = app.encrypt(KeyId=arn, Plaintext=b"green", EncryptionContext={"tenant": "green"})
    b_user = client(srv, "kms", world["b_user"])
    denied(
        lambda: b_user.decrypt(
            CiphertextBlob=green["CiphertextBlob"], EncryptionContext={"tenant": "green"}
        )
    )
    grant = admin.create_grant(
        KeyId=arn,
        GranteePrincipal=world["b_user_arn"],
        Operations=["Decrypt"],
        Constraints={"EncryptionContextEquals": {"tenant": "green"}},
    )
    got = b_user.decrypt(
        CiphertextBlob=green["CiphertextBlob"], EncryptionContext={"tenant": "green"}, KeyId=arn
    )
    assert got["Plaintext"] == b"green"
    # The constraint holds: another context is refused.
    denied(
        lambda: b_user.decrypt(
            CiphertextBlob=blue["CiphertextBlob"], EncryptionContext={"tenant": "blue"}
        )
    )
    # Take B's side away: the grant alone is not enough across accounts.
    b_iam = client(srv, "iam", world["b_root"])
    b_iam.delete_user_policy(UserName="consumer", PolicyName="p")
    denied(
        lambda: b_user.decrypt(
            CiphertextBlob=green["CiphertextBlob"], EncryptionContext={"tenant": "green"}
        )
    )
    b_iam.put_user_policy(
        UserName="consumer",
        PolicyName="p",
        PolicyDocument=policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": arn}),
    )
    b_user.decrypt(CiphertextBlob=green["CiphertextBlob"], EncryptionContext={"tenant": "green"})
    # Take A's side away: revoking the grant refuses it again.
    admin.revoke_grant(KeyId=arn, GrantId=grant["GrantId"])
    denied(
        lambda: b_user.decrypt(
            CiphertextBlob=green["CiphertextBlob"], EncryptionContext={"tenant": "green"}
        )
    )
    assert admin.list_grants(KeyId=arn)["Grants"] == []

    # Account B's root cannot use A's key at all (A's key policy names only A).
    b_root_kms = client(srv, "kms", world["b_root"])
    denied(lambda: b_root_kms.describe_key(KeyId=arn))

    # Every decision is in the audit trail with the right principal.
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "sealbox.db")
    rows = db.execute(
        "SELECT event_name, principal_arn, error_code FROM audit_events ORDER BY seq"
    ).fetchall()
    db.close()
    app_session = f"arn:aws:sts::{ACCOUNT_A}:assumed-role/app/s1"
    assert ("Decrypt", app_session, "AccessDenied") in rows
    assert ("Encrypt", app_session, None) in rows
    assert ("ScheduleKeyDeletion", f"arn:aws:iam::{ACCOUNT_A}:user/admin", "AccessDenied") in rows
    assert ("Decrypt", world["b_user_arn"], None) in rows
    assert ("Decrypt", world["b_user_arn"], "AccessDenied") in rows
    assert ("CreateGrant", f"arn:aws:iam::{ACCOUNT_A}:user/admin", None) in rows


def test_inactive_keys_and_expired_sessions_are_refused(world: dict[str, Any]) -> None:
    srv = world["srv"]
    iam = srv.client("iam")
    deployer = world["deployer"]
    sts = client(srv, "sts", deployer)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT_A}:user/deployer"
    iam.update_access_key(
        UserName="deployer", AccessKeyId=deployer["AccessKeyId"], Status="Inactive"
    )
    denied(lambda: sts.get_caller_identity(), "InvalidClientTokenId")
    denied(lambda: client(srv, "kms", deployer).list_keys(), "UnrecognizedClientException")

    app = world["app"]
    who = client(srv, "sts", app).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT_A}:assumed-role/app/s1"
    # An hour later (the service clock moves; the session lasted 15 minutes).
    srv.restart(
        extra_env={"SEALBOX_ACCOUNT_ID": ACCOUNT_A, "SEALBOX_CLOCK_OFFSET_SECONDS": str(HOUR)}
    )
    denied(lambda: client(srv, "kms", app).list_aliases(), "ExpiredTokenException")
    denied(lambda: client(srv, "sts", app).get_caller_identity(), "ExpiredToken")
    # A forged token for a real session key is refused as invalid, not expired.
    forged = dict(app, SessionToken="AAAA" + app["SessionToken"][4:])
    denied(lambda: client(srv, "sts", forged).get_caller_identity(), "InvalidClientTokenId")


def test_lockout_safety_check(world: dict[str, Any]) -> None:
    kms = world["srv"].client("kms")
    lockout = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": world["app_role"]},
            "Action": "kms:Encrypt",
            "Resource": "*",
        }
    )
    err = denied(lambda: kms.create_key(Policy=lockout), "MalformedPolicyDocumentException")
    assert "will not allow you to update the key policy" in err.response["Error"]["Message"]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    denied(
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=lockout),
        "MalformedPolicyDocumentException",
    )
    kms.put_key_policy(
        KeyId=key_id, PolicyName="default", Policy=lockout, BypassPolicyLockoutSafetyCheck=True
    )
    # Now even the account root is locked out, as AWS warns.
    denied(lambda: kms.describe_key(KeyId=key_id))
