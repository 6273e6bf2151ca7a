"""Grants through boto3: retiring, listing, idempotent names, and alias conditions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess


def code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_grant_life_cycle(server: ServerProcess, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    account = key["AWSAccountId"]
    grantee = f"arn:aws:iam::{account}:role/worker"
    retiree = f"arn:aws:iam::{account}:role/janitor"

    first = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=grantee,
        RetiringPrincipal=retiree,
        Operations=["Encrypt", "Decrypt"],
        Name="nightly",
    )
    again = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=grantee,
        RetiringPrincipal=retiree,
        Operations=["Decrypt", "Encrypt"],
        Name="nightly",
    )
    assert again["GrantId"] == first["GrantId"]  # a retry with the same name and params
    other = kms.create_grant(
        KeyId=key["Arn"],
        GranteePrincipal=grantee,
        Operations=["DescribeKey"],
    )
    grants = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert {g["GrantId"] for g in grants} == {first["GrantId"], other["GrantId"]}
    nightly = next(g for g in grants if g["GrantId"] == first["GrantId"])
    assert nightly["KeyId"] == key["Arn"]
    assert nightly["Name"] == "nightly"
    assert sorted(nightly["Operations"]) == ["Decrypt", "Encrypt"]
    assert nightly["IssuingAccount"] == f"arn:aws:iam::{account}:root"

    retirable = kms.list_retirable_grants(RetiringPrincipal=retiree)["Grants"]
    assert [g["GrantId"] for g in retirable] == [first["GrantId"]]

    with pytest.raises(ClientError) as err:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Encrypt"],
                         DryRun=True)  # fmt: skip
    assert code(err) == "DryRunOperationException"
    with pytest.raises(ClientError) as err:
        kms.create_grant(
            KeyId=key["KeyId"],
            GranteePrincipal=grantee,
            Operations=["DescribeKey"],
            Constraints={"EncryptionContextEquals": {"a": "b"}},
        )
    assert code(err) == "ValidationException"

    # The account root may retire any grant of its key, by token or by id.
    kms.retire_grant(GrantToken=first["GrantToken"])
    with pytest.raises(ClientError) as err:
        kms.retire_grant(GrantToken=first["GrantToken"])
    assert code(err) == "InvalidGrantTokenException"
    kms.retire_grant(KeyId=key["Arn"], GrantId=other["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with pytest.raises(ClientError) as err:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=other["GrantId"])
    assert code(err) == "NotFoundException"


def test_resource_alias_conditions_follow_alias_changes(server: ServerProcess, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    account = key["AWSAccountId"]
    root = f"arn:aws:iam::{account}:root"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Admin",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "NoCryptoUnlessProd",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {
                        "ForAllValues:StringNotLike": {"kms:ResourceAliases": "alias/prod-*"}
                    },
                },
            ],
        }
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy)
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert code(err) == "AccessDeniedException"
    kms.create_alias(AliasName="alias/prod-payments", TargetKeyId=key["KeyId"])
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")  # the alias change is seen at once
    kms.delete_alias(AliasName="alias/prod-payments")
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert code(err) == "AccessDeniedException"
