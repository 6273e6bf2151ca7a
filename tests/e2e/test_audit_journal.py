"""Audit events are durable before the response: a crash loses none, and without the
journal process no key is used unrecorded. Real server (2 workers), boto3."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerProcess

ServerFactory = Callable[..., ServerProcess]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(stat[1]), []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def journal_process(srv: ServerProcess) -> int:
    """The server's child that holds a journal segment open for writing."""
    assert srv.proc is not None
    for pid in descendants(srv.proc.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.endswith(".journal") and _opened_for_writing(pid, fd):
                return pid  # (workers' indexers only ever read segments)
    raise AssertionError("no process holds a journal segment")


def _opened_for_writing(pid: int, fd: str) -> bool:
    try:
        info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
    except OSError:
        return False
    flags = int(info.split("flags:")[1].split()[0], 8)
    return flags & os.O_ACCMODE == os.O_RDWR


def looked_up_request_ids(srv: ServerProcess, key_arn: str) -> dict[str, dict[str, Any]]:
    trail = srv.client("cloudtrail")
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": key_arn}]
    }
    while True:
        page = trail.lookup_events(**params)
        for event in page["Events"]:
            record = json.loads(event["CloudTrailEvent"])
            found[record["requestID"]] = record
        if "NextToken" not in page:
            return found
        params["NextToken"] = page["NextToken"]


def test_every_answered_request_survives_a_crash_of_the_whole_server(
    make_server: ServerFactory,
) -> None:
    srv = make_server()
    kms = srv.client()
    key = kms.create_key()["KeyMetadata"]
    answered = [
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["ResponseMetadata"]["RequestId"]
        for _ in range(40)
    ]
    assert srv.proc is not None
    everyone = [srv.proc.pid, *descendants(srv.proc.pid)]
    for pid in everyone:  # no graceful shutdown: nothing gets to index or flush
        os.kill(pid, signal.SIGKILL)
    srv.proc.wait(timeout=10)
    srv.proc = None

    srv.start()
    found = looked_up_request_ids(srv, key["Arn"])
    assert set(answered) <= set(found)
    assert {found[r]["eventName"] for r in answered} == {"Encrypt"}


def test_without_the_journal_process_requests_fail_then_recover_when_it_restarts(
    make_server: ServerFactory,
) -> None:
    srv = make_server()
    kms = boto3.client(
        "kms",
        endpoint_url=srv.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),  # no retry hides a failure
    )
    key = kms.create_key()["KeyMetadata"]
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"warm")
    os.kill(journal_process(srv), signal.SIGKILL)
    succeeded: list[str] = []
    failures: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not failures or len(succeeded) < 20):
        try:
            out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
            succeeded.append(out["ResponseMetadata"]["RequestId"])
        except ClientError as err:
            failures.append(err.response["Error"]["Code"])
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # The first requests after the kill can't be recorded, so they fail; the supervisor
    # restarts the journal process and requests succeed again.
    assert failures and set(failures) == {"KMSInternalException"}
    assert len(succeeded) >= 20
    found = looked_up_request_ids(srv, key["Arn"])
    assert set(succeeded) <= set(found)
