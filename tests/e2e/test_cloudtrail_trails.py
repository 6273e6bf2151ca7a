"""CloudTrail trails end to end: a real server with tiny delivery and digest intervals,
boto3's `cloudtrail` client, and `aws cloudtrail validate-logs` (the reference validator)
pointed at Sealbox.

A trail with log file validation must deliver gzipped log files and signed digests that
the validator reports valid; a log file rewritten through S3 by someone with write access
to the bucket, and one deleted, must be named INVALID by the validator and by `sealbox
audit verify`. Every wait is bounded.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.s3clients import AwsCli
from tests.support.server import REGION, ServerProcess

ServerFactory = Callable[..., ServerProcess]
FAST = [
    "--scheduler-interval", "0.3",
    "--trail-delivery-interval", "1",
    "--trail-digest-interval", "3",
]  # fmt: skip
WAIT_SECONDS = 45.0
PLAINTEXT = b"TRAIL-CANARY plaintext"


def error_code(fn: Callable[..., Any], **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        fn(**params)
    code: str = info.value.response["Error"]["Code"]
    return code


def cloudtrail_bucket_policy(bucket: str, account: str, trail_arn: str) -> str:
    """The bucket policy AWS documents for a trail ("Amazon S3 bucket policy for
    CloudTrail"), names filled in."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AWSCloudTrailAclCheck20150319",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "s3:GetBucketAcl",
                    "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
                },
                {
                    "Sid": "AWSCloudTrailWrite20150319",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{account}/*",
                    "Condition": {
                        "StringEquals": {
                            "s3:x-amz-acl": "bucket-owner-full-control",
                            "aws:SourceArn": trail_arn,
                        }
                    },
                },
            ],
        }
    )


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def read_gz(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def wait_for(what: str, probe: Callable[[], Any], srv: ServerProcess) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}\n--- server log\n{srv.log()}", pytrace=False)


def digested_logs(s3: Any, bucket: str, account: str) -> list[str]:
    """Every log file some delivered digest lists, oldest digest first."""
    listed: list[str] = []
    for key in sorted(keys_under(s3, bucket, f"AWSLogs/{account}/CloudTrail-Digest/")):
        listed += [f["s3Object"] for f in read_gz(s3, bucket, key)["logFiles"]]
    return listed


def sealbox_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "sealbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_validated_trail_delivers_what_validate_logs_accepts_and_tampering_is_named(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    started = time.monotonic()
    srv = make_server(args=FAST)
    s3, ct, kms = srv.client("s3"), srv.client("cloudtrail"), srv.client("kms")
    account = srv.client("sts").get_caller_identity()["Account"]
    bucket = f"trail-{uuid.uuid4().hex[:12]}"
    trail_arn = f"arn:aws:cloudtrail:{REGION}:{account}:trail/audit"
    s3.create_bucket(Bucket=bucket)

    # No bucket policy for CloudTrail yet: AWS's error, and nothing created.
    code = error_code(ct.create_trail, Name="audit", S3BucketName=bucket)
    assert code == "InsufficientS3BucketPolicyException"
    assert error_code(ct.create_trail, Name="audit", S3BucketName="no-such-bucket-x") == (
        "S3BucketDoesNotExistException"
    )
    assert ct.describe_trails()["trailList"] == []
    s3.put_bucket_policy(Bucket=bucket, Policy=cloudtrail_bucket_policy(bucket, account, trail_arn))

    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = ct.create_trail(Name="audit", S3BucketName=bucket, EnableLogFileValidation=True)
    assert created["TrailARN"] == trail_arn
    assert created["LogFileValidationEnabled"] is True
    assert error_code(ct.create_trail, Name="audit", S3BucketName=bucket) == (
        "TrailAlreadyExistsException"
    )
    assert ct.get_trail_status(Name="audit")["IsLogging"] is False
    ct.start_logging(Name=trail_arn)
    assert ct.get_trail_status(Name="audit")["IsLogging"] is True

    # Two rounds of key use, so that (at 1 s per delivery) at least two log files exist.
    key_id = kms.create_key(Description="trail test")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
    log_prefix = f"AWSLogs/{account}/CloudTrail/{REGION}/"
    wait_for("a first log file", lambda: keys_under(s3, bucket, log_prefix), srv)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == PLAINTEXT

    def two_digested_files_with_our_calls() -> list[str] | None:
        listed = digested_logs(s3, bucket, account)
        names = {r["eventName"] for key in listed for r in read_gz(s3, bucket, key)["Records"]}
        return listed if len(listed) >= 2 and {"Encrypt", "Decrypt"} <= names else None

    logs = wait_for("digests listing our calls", two_digested_files_with_our_calls, srv)

    # The log files: CloudTrail's layout and record format, our calls in them, no secret.
    for key in logs:
        assert key.startswith(log_prefix)
        name = key.rsplit("/", 1)[1]
        assert name.startswith(f"{account}_CloudTrail_{REGION}_") and name.endswith(".json.gz")
    records = [r for key in logs for r in read_gz(s3, bucket, key)["Records"]]
    encrypt = next(r for r in records if r["eventName"] == "Encrypt")
    assert encrypt["eventSource"] == "kms.amazonaws.com"
    assert encrypt["userIdentity"]["accountId"] == account
    assert PLAINTEXT.decode() not in json.dumps(records)
    assert not [
        r for r in records if r["userIdentity"].get("invokedBy") == "cloudtrail.amazonaws.com"
    ]
    status = ct.get_trail_status(Name="audit")
    assert status["LatestDeliveryTime"] and status["LatestDigestDeliveryTime"]
    keys = ct.list_public_keys()["PublicKeyList"]
    assert len(keys) == 1 and len(keys[0]["Fingerprint"]) == 32

    # The reference validator: every digest and log file valid.
    cli = AwsCli(srv, tmp_path / "home")
    cli.env["AWS_ENDPOINT_URL_S3"] = srv.url  # validate-logs makes its own S3 clients
    validate = ("cloudtrail", "validate-logs", "--trail-arn", trail_arn, "--start-time", since)
    ok = cli(*validate, "--verbose")
    assert "INVALID" not in ok.stdout + ok.stderr
    for key in logs:
        assert f"Log file\ts3://{bucket}/{key}\tvalid" in ok.stdout
    assert "digest files valid" in ok.stdout and "log files valid" in ok.stdout
    assert sealbox_cli("audit", "verify", "--data-dir", str(srv.data_dir)).returncode == 0

    # An attacker with write access to the bucket edits one byte of a delivered log
    # file, and deletes another.
    edited, deleted = logs[0], logs[1]
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=edited)["Body"].read())
    at = body.index(b'"eventName":"') + len(b'"eventName":"')
    changed = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
    s3.put_object(Bucket=bucket, Key=edited, Body=gzip.compress(changed))
    s3.delete_object(Bucket=bucket, Key=deleted)

    bad = cli(*validate, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"Log file\ts3://{bucket}/{edited}\tINVALID: hash value doesn't match" in bad.stderr
    assert f"Log file\ts3://{bucket}/{deleted}\tINVALID: not found" in bad.stderr
    assert "digest files valid" in bad.stdout  # the digests themselves are intact

    verify = sealbox_cli("audit", "verify", "--data-dir", str(srv.data_dir), "--output", "json")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] is False
    deliveries = report["deliveries"]
    problems = {p["file"]: p["kind"] for p in deliveries["problems"]}
    assert problems == {
        f"s3://{bucket}/{edited}": "log_changed",
        f"s3://{bucket}/{deleted}": "log_missing",
    }
    assert deliveries["first_problem"]["file"] == f"s3://{bucket}/{edited}"
    text = sealbox_cli("audit", "verify", "--data-dir", str(srv.data_dir))
    assert f"log file changed: s3://{bucket}/{edited}" in text.stdout
    print(f"validated-trail e2e: {time.monotonic() - started:.1f}s")


def test_trail_api_shapes_errors_selectors_tags_and_stop(make_server: ServerFactory) -> None:
    srv = make_server(args=FAST)
    s3, ct, kms = srv.client("s3"), srv.client("cloudtrail"), srv.client("kms")
    account = srv.client("sts").get_caller_identity()["Account"]
    bucket = f"trail-{uuid.uuid4().hex[:12]}"
    arn = f"arn:aws:cloudtrail:{REGION}:{account}:trail/ops"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=cloudtrail_bucket_policy(bucket, account, arn))

    assert error_code(ct.create_trail, Name="-bad-", S3BucketName=bucket) == (
        "InvalidTrailNameException"
    )
    assert error_code(ct.get_trail, Name="missing") == "TrailNotFoundException"
    assert error_code(ct.get_trail, Name="arn:aws:s3:::nope") == "CloudTrailARNInvalidException"
    ct.create_trail(
        Name="ops",
        S3BucketName=bucket,
        IsMultiRegionTrail=False,
        TagsList=[{"Key": "team", "Value": "sec"}],
    )
    trail = ct.get_trail(Name="ops")["Trail"]
    assert trail["TrailARN"] == arn and trail["HomeRegion"] == REGION
    assert trail["HasCustomEventSelectors"] is False
    assert ct.list_trails()["Trails"] == [{"TrailARN": arn, "Name": "ops", "HomeRegion": REGION}]
    assert [t["Name"] for t in ct.describe_trails(trailNameList=[arn])["trailList"]] == ["ops"]
    assert error_code(ct.update_trail, Name="ops", S3BucketName="no-such-bucket-x") == (
        "S3BucketDoesNotExistException"
    )
    other = srv.client("cloudtrail", region="eu-west-1")
    assert error_code(other.start_logging, Name=arn) == "InvalidHomeRegionException"

    # Tags.
    ct.add_tags(ResourceId=arn, TagsList=[{"Key": "env", "Value": "prod"}])
    ct.remove_tags(ResourceId=arn, TagsList=[{"Key": "team"}])
    tags = ct.list_tags(ResourceIdList=[arn])["ResourceTagList"]
    assert tags == [{"ResourceId": arn, "TagsList": [{"Key": "env", "Value": "prod"}]}]
    assert error_code(ct.list_tags, ResourceIdList=[arn + "x"]) == "ResourceNotFoundException"

    # Selectors: S3 data events of this bucket only, write-only; management events too.
    default = ct.get_event_selectors(TrailName="ops")["EventSelectors"]
    assert default == [
        {
            "ReadWriteType": "All",
            "IncludeManagementEvents": True,
            "DataResources": [],
            "ExcludeManagementEventSources": [],
        }
    ]
    assert (
        error_code(
            ct.put_event_selectors,
            TrailName="ops",
            EventSelectors=[{"DataResources": [{"Type": "AWS::S3::Object", "Values": ["x"]}]}],
        )
        == "InvalidEventSelectorsException"
    )
    put = ct.put_event_selectors(
        TrailName="ops",
        EventSelectors=[
            {
                "ReadWriteType": "WriteOnly",
                "IncludeManagementEvents": True,
                "DataResources": [
                    {"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{bucket}/data/"]}
                ],
            }
        ],
    )
    assert put["TrailARN"] == arn
    assert ct.get_trail(Name="ops")["Trail"]["HasCustomEventSelectors"] is True

    ct.start_logging(Name="ops")
    s3.put_object(Bucket=bucket, Key="data/selected.txt", Body=b"1")
    s3.put_object(Bucket=bucket, Key="other/ignored.txt", Body=b"2")
    s3.get_object(Bucket=bucket, Key="data/selected.txt")["Body"].read()  # a read: not selected
    kms.create_key(Description="management event")
    ct.stop_logging(Name="ops")
    kms.create_key(Description="after stop: never delivered")
    prefix = f"AWSLogs/{account}/CloudTrail/{REGION}/"

    def delivered() -> list[dict[str, Any]] | None:
        status = ct.get_trail_status(Name="ops")
        if status["IsLogging"] or not status.get("LatestDeliveryTime"):
            return None
        records = [
            r for k in keys_under(s3, bucket, prefix) for r in read_gz(s3, bucket, k)["Records"]
        ]
        names = [r["eventName"] for r in records]
        return records if "StopLogging" in names else None

    records = wait_for("delivery up to StopLogging", delivered, srv)
    time.sleep(2)  # several more delivery intervals: nothing after StopLogging may follow
    again = [r for k in keys_under(s3, bucket, prefix) for r in read_gz(s3, bucket, k)["Records"]]
    assert len(again) == len(records)
    data = [
        r for r in records if r["eventSource"] == "s3.amazonaws.com" and not r["managementEvent"]
    ]
    assert [(r["eventName"], r["requestParameters"]["key"]) for r in data] == [
        ("PutObject", "data/selected.txt")
    ]
    names = [r["eventName"] for r in records]
    assert names.count("CreateKey") == 1  # the one made after StopLogging is not delivered
    assert names[0] == "StartLogging" and names[-1] == "StopLogging"
    assert ct.get_trail_status(Name="ops")["IsLogging"] is False

    ct.delete_trail(Name="ops")
    assert error_code(ct.get_trail_status, Name="ops") == "TrailNotFoundException"
