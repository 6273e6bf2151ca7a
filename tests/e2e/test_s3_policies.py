"""S3 bucket configuration, bucket policies, Block Public Access, anonymous and
presigned access, SSE-C over HTTPS, Bucket Keys and the audit trail — through boto3
against a real server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess


def _name(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


# The AWS documentation's example bucket policy ("Requiring server-side encryption with
# AWS KMS keys"), with only the bucket name filled in.
def _require_kms_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "PutObjectPolicy",
            "Statement": [
                {
                    "Sid": "DenyObjectsThatAreNotSSEKMS",
                    "Principal": "*",
                    "Effect": "Deny",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                    "Condition": {
                        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"}
                    },
                }
            ],
        }
    )


def _tls_only_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowSSLRequestsOnly",
                    "Action": "s3:*",
                    "Effect": "Deny",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    "Principal": "*",
                }
            ],
        }
    )


def test_new_bucket_defaults_and_configuration(s3: Any) -> None:
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") is None
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "a"}]
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert _code(exc) == "InvalidBucketName"


def test_bucket_default_kms_with_bucket_key_costs_few_kms_calls(
    s3: Any, server: ServerProcess
) -> None:
    kms = server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    before = _internal_kms_ops(server)
    for i in range(40):
        put = s3.put_object(Bucket=bucket, Key=f"o{i}", Body=b"x" * 100)
        assert put["ServerSideEncryption"] == "aws:kms"
        assert put["BucketKeyEnabled"] is True
    # Two worker processes: each asks KMS for the bucket key at most once.
    assert _internal_kms_ops(server) - before <= 2
    assert s3.get_object(Bucket=bucket, Key="o7")["Body"].read() == b"x" * 100
    # Without a bucket key every PUT is one GenerateDataKey.
    before = _internal_kms_ops(server)
    for i in range(10):
        s3.put_object(
            Bucket=bucket, Key=f"n{i}", Body=b"y", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn, BucketKeyEnabled=False,
        )  # fmt: skip
    assert _internal_kms_ops(server) - before == 10


def _internal_kms_ops(server: ServerProcess) -> float:
    with urllib.request.urlopen(f"{server.url}/_sealbox/metrics") as r:  # noqa: S310
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("sealbox_kms_internal_operations_total{")
            and 'caller_service="s3"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_documented_require_kms_policy(s3: Any) -> None:
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=_require_kms_policy(bucket))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="plain", Body=b"1")
    assert _code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="s3", Body=b"1", ServerSideEncryption="AES256")
    assert _code(exc) == "AccessDenied"
    ok = s3.put_object(
        Bucket=bucket, Key="kms", Body=b"1", ServerSideEncryption="aws:kms",
        SSEKMSKeyId="alias/aws/s3",
    )  # fmt: skip
    assert ok["ServerSideEncryption"] == "aws:kms"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Id"] == "PutObjectPolicy"
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"1")


def test_documented_tls_only_policy_denies_plain_http(s3: Any) -> None:
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    s3.put_bucket_policy(Bucket=bucket, Policy=_tls_only_policy(bucket))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert _code(exc) == "AccessDenied"
    # The bucket owner's root can still remove the policy (the lockout escape hatch).
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


def _public_read_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


def test_block_public_access_and_anonymous_reads(s3: Any, server: ServerProcess) -> None:
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"hello")
    url = f"{server.url}/{bucket}/pub.txt"
    assert requests.get(url, timeout=10).status_code == 403
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=_public_read_policy(bucket))
    assert _code(exc) == "AccessDenied"
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=_public_read_policy(bucket))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"hello"
    # Anonymous writes are still refused: the policy allows only GetObject.
    assert requests.put(f"{server.url}/{bucket}/x", data=b"1", timeout=10).status_code == 403
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    assert requests.get(url, timeout=10).status_code == 403


@pytest.mark.parametrize("signature_version", ["s3v4", None])  # None: boto3's default (SigV2)
def test_presigned_get_and_put(server: ServerProcess, signature_version: str | None) -> None:
    config = {"signature_version": signature_version} if signature_version else {}
    s3 = server.client("s3", **config)
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    assert requests.put(put_url, data=b"presigned body", timeout=10).status_code == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    response = requests.get(get_url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"presigned body"
    tampered = get_url.replace("Key=p", "Key=q").replace(f"/{bucket}/p", f"/{bucket}/q")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_iam_user_needs_kms_permissions_for_sse_kms(s3: Any, server: ServerProcess) -> None:
    iam = server.client("iam")
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    user = _name("u")
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="s3-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    creds = iam.create_access_key(UserName=user)["AccessKey"]
    user_s3 = server.client(
        "s3",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
    )
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    user_s3.put_object(Bucket=bucket, Key="s3", Body=b"ok")  # SSE-S3 needs no KMS rights
    with pytest.raises(ClientError) as exc:
        user_s3.put_object(
            Bucket=bucket, Key="kms", Body=b"no", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_id,
        )  # fmt: skip
    assert _code(exc) == "AccessDenied"
    s3.put_object(
        Bucket=bucket, Key="kms", Body=b"root", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id
    )
    with pytest.raises(ClientError) as exc:
        user_s3.get_object(Bucket=bucket, Key="kms")
    assert _code(exc) == "AccessDenied"


def test_sse_kms_put_is_audited_with_the_kms_call_it_caused(s3: Any, server: ServerProcess) -> None:
    kms = server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key="audited", Body=b"secret-body", ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_arn,
    )  # fmt: skip
    trail = server.client("cloudtrail")
    events = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key_arn}]
    )["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    generated = [r for r in records if r["eventName"] == "GenerateDataKey"]
    assert generated, records
    record = generated[0]
    assert record["userIdentity"]["invokedBy"] == "s3.amazonaws.com"
    assert record["userIdentity"]["arn"].endswith(":root")
    assert record["requestParameters"]["encryptionContext"]["aws:s3:arn"] == (
        f"arn:aws:s3:::{bucket}/audited"
    )
    puts = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PutObject"}]
    )["Events"]
    assert any(bucket in e["CloudTrailEvent"] for e in puts)
    assert all("secret-body" not in e["CloudTrailEvent"] for e in events + puts)


def test_sse_c_requires_https_and_the_same_key(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(args=["--tls-self-signed"])
    s3 = server.client("s3")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    key = os.urandom(32)
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", **sse_c)
    assert _code(exc) == "AccessDenied"  # new buckets block SSE-C uploads
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
                }
            ]
        },
    )
    canary = b"SSEC-CANARY-" + uuid.uuid4().hex.encode()
    put = s3.put_object(Bucket=bucket, Key="c", Body=canary * 10, **sse_c)
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert (
        put["SSECustomerKeyMD5"]
        == base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode()
    )
    assert s3.get_object(Bucket=bucket, Key="c", **sse_c)["Body"].read() == canary * 10
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c")
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.get_object(
            Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=os.urandom(32)
        )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Re-key on copy: SSE-C → SSE-S3.
    s3.copy_object(
        Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "c"},
        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key,
        ServerSideEncryption="AES256",
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == canary * 10
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert canary not in data
            assert key not in data


def test_sse_c_over_plain_http_is_refused(s3: Any) -> None:
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="c", Body=b"x", SSECustomerAlgorithm="AES256",
            SSECustomerKey=os.urandom(32),
        )  # fmt: skip
    assert _code(exc) == "InvalidRequest"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
