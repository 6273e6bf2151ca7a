"""CloudTrail LookupEvents end to end: boto3's `cloudtrail` client against a real server.

A user with kms:* and cloudtrail:LookupEvents uses a key, and is denied by the policy of
another; LookupEvents must show exactly those calls, by resource, user and operation,
with the caller's identity, the denial's errorCode, and no secret; pages must cover every
event once; the time window and the one-attribute rule must hold; and nothing of another
account may ever show. Each test starts its own server, so counts are exact.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.server import ACCESS_KEY_ID, REGION, ServerProcess

ACCOUNT = "111111111111"
PLAINTEXT = b"LOOKUP-CANARY plaintext \x00\x01\xfe"

ServerFactory = Callable[..., ServerProcess]
Event = dict[str, Any]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def client(srv: ServerProcess, service: str, creds: dict[str, str]) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=srv.url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
    )


def new_user(iam: Any, name: str, *statements: dict[str, Any]) -> dict[str, str]:
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def lookup(trail: Any, **params: Any) -> list[Event]:
    """Every event of a lookup, following NextToken."""
    events: list[Event] = []
    while True:
        page = trail.lookup_events(**params)
        events += page["Events"]
        if not page.get("NextToken"):
            return events
        params["NextToken"] = page["NextToken"]


def by(key: str, value: str) -> list[dict[str, str]]:
    return [{"AttributeKey": key, "AttributeValue": value}]


def error_code(fn: Callable[..., Any], **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        fn(**params)
    code: str = info.value.response["Error"]["Code"]
    return code


def names(events: list[Event]) -> list[str]:
    return [e["EventName"] for e in events]


def record(event: Event) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(event["CloudTrailEvent"])
    return parsed


def test_lookup_by_resource_user_and_event_name(make_server: ServerFactory) -> None:
    srv = make_server(env={"SEALBOX_ACCOUNT_ID": ACCOUNT})
    root_kms, iam, root_trail = srv.client("kms"), srv.client("iam"), srv.client("cloudtrail")
    alice_arn = f"arn:aws:iam::{ACCOUNT}:user/alice"
    alice = new_user(
        iam,
        "alice",
        {"Effect": "Allow", "Action": ["kms:*", "cloudtrail:LookupEvents"], "Resource": "*"},
    )
    nosy = new_user(iam, "nosy", {"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
    # A key whose policy shuts alice out, whatever her IAM policy says.
    closed = root_kms.create_key(
        Policy=policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": alice_arn},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            },
        )
    )["KeyMetadata"]

    kms = client(srv, "kms", alice)
    key = kms.create_key(Description="alice's")["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT, EncryptionContext={"a": "1"})
    opened = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"a": "1"})
    assert opened["Plaintext"] == PLAINTEXT
    data_key = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")["Plaintext"]
    with pytest.raises(ClientError) as denied:
        kms.encrypt(KeyId=closed["Arn"], Plaintext=PLAINTEXT)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"

    # By resource (the key's ARN, or its id): exactly alice's calls on it, newest first.
    on_key = lookup(root_trail, LookupAttributes=by("ResourceName", key["Arn"]))
    assert names(on_key) == ["GenerateDataKey", "Decrypt", "Encrypt", "CreateKey"]
    assert lookup(root_trail, LookupAttributes=by("ResourceName", key["KeyId"])) == on_key
    for event in on_key:
        rec = record(event)
        assert rec["userIdentity"]["arn"] == alice_arn
        assert rec["userIdentity"]["type"] == "IAMUser"
        assert rec["eventID"] == event["EventId"]
        assert "errorCode" not in rec
        assert event["Username"] == "alice"
        assert event["AccessKeyId"] == alice["AccessKeyId"]
        assert event["EventSource"] == "kms.amazonaws.com"
        assert event["Resources"] == [{"ResourceType": "AWS::KMS::Key", "ResourceName": key["Arn"]}]
        assert event["ReadOnly"] == ("false" if event["EventName"] == "CreateKey" else "true")
        assert isinstance(event["EventTime"], datetime)

    on_closed = lookup(root_trail, LookupAttributes=by("ResourceName", closed["Arn"]))
    assert names(on_closed) == ["Encrypt", "CreateKey"]
    refused = record(on_closed[0])
    assert refused["userIdentity"]["arn"] == alice_arn
    assert refused["errorCode"] == "AccessDenied"
    assert record(on_closed[1])["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert on_closed[1]["Username"] == "root"

    # By user and by operation.
    alices = lookup(root_trail, LookupAttributes=by("Username", "alice"))
    assert names(alices) == ["Encrypt", "GenerateDataKey", "Decrypt", "Encrypt", "CreateKey"]
    assert {record(e)["userIdentity"]["arn"] for e in alices} == {alice_arn}
    assert [e["EventId"] for e in alices[1:]] == [e["EventId"] for e in on_key]
    decrypts = lookup(root_trail, LookupAttributes=by("EventName", "Decrypt"))
    assert [e["EventId"] for e in decrypts] == [on_key[1]["EventId"]]
    encrypts = lookup(root_trail, LookupAttributes=by("EventName", "Encrypt"))
    assert [e["EventId"] for e in encrypts] == [on_closed[0]["EventId"], on_key[2]["EventId"]]
    assert [record(e).get("errorCode") for e in encrypts] == ["AccessDenied", None]
    by_key_id = lookup(root_trail, LookupAttributes=by("AccessKeyId", alice["AccessKeyId"]))
    assert [e["EventId"] for e in by_key_id] == [e["EventId"] for e in alices]
    one = lookup(root_trail, LookupAttributes=by("EventId", on_key[0]["EventId"]))
    assert one == [on_key[0]]

    # No secret in any event: not the plaintext, not the data key, raw or base64.
    everything = lookup(root_trail)
    assert len(everything) > len(alices)
    text = json.dumps(everything, default=str).encode()
    for secret in (PLAINTEXT, data_key):
        for form in (secret, base64.b64encode(secret), secret.decode("latin-1").encode()):
            assert form not in text
    assert PLAINTEXT.decode("latin-1") not in json.dumps(everything, default=str)

    # The user may look up herself; a user without cloudtrail:LookupEvents may not, and
    # both attempts are in the trail.
    own = client(srv, "cloudtrail", alice).lookup_events(LookupAttributes=by("Username", "alice"))
    assert names(own["Events"])[:1] == ["Encrypt"]
    code = error_code(client(srv, "cloudtrail", nosy).lookup_events)
    assert code == "AccessDeniedException"
    lookups = lookup(root_trail, LookupAttributes=by("EventName", "LookupEvents"))
    assert [(e["Username"], record(e).get("errorCode")) for e in lookups[:2]] == [
        ("nosy", "AccessDenied"),
        ("alice", None),
    ]
    assert lookups[0]["EventSource"] == "cloudtrail.amazonaws.com"
    assert lookups[0]["ReadOnly"] == "true"


def test_pages_time_window_and_bad_requests(make_server: ServerFactory) -> None:
    srv = make_server(env={"SEALBOX_ACCOUNT_ID": ACCOUNT})
    kms, trail = srv.client("kms"), srv.client("cloudtrail")
    key = kms.create_key()["KeyMetadata"]
    for _ in range(7):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"early")
    # Cross a second boundary: CloudTrail times are whole seconds.
    time.sleep(1.1 - (time.time() % 1))
    middle = datetime.now(UTC).replace(microsecond=0)
    for _ in range(16):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"late")

    # Pages of 5 walk every event exactly once, newest first.
    encrypts = by("EventName", "Encrypt")
    pages = []
    params: dict[str, Any] = {"LookupAttributes": encrypts, "MaxResults": 5}
    while True:
        page = trail.lookup_events(**params)
        pages.append(page["Events"])
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    walked = [e for p in pages for e in p]
    ids = [e["EventId"] for e in walked]
    assert len(set(ids)) == 23
    times = [e["EventTime"] for e in walked]
    assert times == sorted(times, reverse=True)
    assert ids == [e["EventId"] for e in lookup(trail, LookupAttributes=encrypts)]
    # boto3's paginator (NextToken) agrees; so does the unfiltered walk.
    paginator = trail.get_paginator("lookup_events")
    paged = [
        e["EventId"]
        for p in paginator.paginate(LookupAttributes=encrypts, PaginationConfig={"PageSize": 4})
        for e in p["Events"]
    ]
    assert paged == ids
    everything = lookup(trail, MaxResults=3)
    assert [e["EventId"] for e in everything if e["EventName"] == "Encrypt"] == ids
    assert len({e["EventId"] for e in everything}) == len(everything)

    # The time window, at one-second resolution, both ends inclusive.
    late = lookup(trail, LookupAttributes=encrypts, StartTime=middle)
    early = lookup(trail, LookupAttributes=encrypts, EndTime=middle - timedelta(seconds=1))
    assert (len(late), len(early)) == (16, 7)
    assert [e["EventId"] for e in late + early] == ids
    assert all(e["EventTime"] >= middle for e in late)
    assert lookup(trail, StartTime=middle + timedelta(days=1)) == []
    window = lookup(trail, LookupAttributes=encrypts, StartTime=middle, EndTime=middle)
    assert {e["EventId"] for e in window} <= {e["EventId"] for e in late}

    # Other attributes.
    assert names(lookup(trail, LookupAttributes=by("ReadOnly", "false"))) == ["CreateKey"]
    assert len(lookup(trail, LookupAttributes=by("AccessKeyId", ACCESS_KEY_ID))) >= 24
    kms_events = lookup(trail, LookupAttributes=by("EventSource", "kms.amazonaws.com"))
    assert len(kms_events) == 24
    typed = lookup(trail, LookupAttributes=by("ResourceType", "AWS::KMS::Key"))
    assert [e["EventId"] for e in typed] == [e["EventId"] for e in kms_events]
    assert lookup(trail, LookupAttributes=by("ResourceType", "AWS::S3::Object")) == []
    assert lookup(trail, LookupAttributes=by("Username", "nobody")) == []

    # Bad requests get CloudTrail's error codes.
    def fails(**params: Any) -> str:
        return error_code(trail.lookup_events, **params)

    two = [*by("EventName", "Encrypt"), *by("Username", "root")]
    assert fails(LookupAttributes=two) == "InvalidLookupAttributesException"
    assert fails(LookupAttributes=by("ReadOnly", "maybe")) == "InvalidLookupAttributesException"
    assert fails(MaxResults=51) == "InvalidMaxResultsException"
    backwards = {"StartTime": middle, "EndTime": middle - timedelta(seconds=1)}
    assert fails(**backwards) == "InvalidTimeRangeException"
    assert fails(NextToken="not-a-token") == "InvalidNextTokenException"
    token = trail.lookup_events(LookupAttributes=encrypts, MaxResults=1)["NextToken"]
    # A token continues only the query it came from.
    decrypts = by("EventName", "Decrypt")
    assert fails(LookupAttributes=decrypts, NextToken=token) == "InvalidNextTokenException"
    second = trail.lookup_events(LookupAttributes=encrypts, NextToken=token, MaxResults=1)
    assert [e["EventId"] for e in second["Events"]] == ids[1:2]
    refused = lookup(trail, LookupAttributes=by("EventName", "LookupEvents"))
    assert "InvalidNextTokenException" in {record(e).get("errorCode") for e in refused}


def test_another_accounts_events_are_never_returned(make_server: ServerFactory) -> None:
    srv = make_server(env={"SEALBOX_ACCOUNT_ID": ACCOUNT})
    made = subprocess.run(
        [sys.executable, "-m", "sealbox", "account", "create", "tenant-b",
         "--data-dir", str(srv.data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    b_root = json.loads(made.stdout)
    account_b = b_root["AccountId"]
    a_kms, a_trail = srv.client("kms"), srv.client("cloudtrail")
    b_kms, b_trail = client(srv, "kms", b_root), client(srv, "cloudtrail", b_root)

    a_key = a_kms.create_key()["KeyMetadata"]
    a_kms.encrypt(KeyId=a_key["KeyId"], Plaintext=b"a")
    b_key = b_kms.create_key()["KeyMetadata"]
    b_kms.encrypt(KeyId=b_key["KeyId"], Plaintext=b"b")
    b_kms.decrypt(
        CiphertextBlob=b_kms.encrypt(KeyId=b_key["Arn"], Plaintext=b"b")["CiphertextBlob"]
    )

    a_events, b_events = lookup(a_trail), lookup(b_trail)
    assert names(a_events) == ["Encrypt", "CreateKey"]
    assert names(b_events) == ["Decrypt", "Encrypt", "Encrypt", "CreateKey"]
    assert {record(e)["userIdentity"]["accountId"] for e in a_events} == {ACCOUNT}
    assert {record(e)["recipientAccountId"] for e in b_events} == {account_b}
    # Not by B's key, its id, B's events' ids, the shared user name, or any other filter.
    assert lookup(a_trail, LookupAttributes=by("ResourceName", b_key["Arn"])) == []
    assert lookup(a_trail, LookupAttributes=by("ResourceName", b_key["KeyId"])) == []
    assert lookup(a_trail, LookupAttributes=by("EventId", b_events[0]["EventId"])) == []
    assert names(lookup(a_trail, LookupAttributes=by("EventName", "Decrypt"))) == []
    assert names(lookup(a_trail, LookupAttributes=by("Username", "root"))) == [
        "LookupEvents",
        "LookupEvents",
        "LookupEvents",
        "LookupEvents",
        "LookupEvents",
        "Encrypt",
        "CreateKey",
    ]
    assert lookup(a_trail, LookupAttributes=by("AccessKeyId", b_root["AccessKeyId"])) == []
    b_names = names(lookup(b_trail, LookupAttributes=by("ReadOnly", "true")))
    assert b_names == ["LookupEvents", "Decrypt", "Encrypt", "Encrypt"]
