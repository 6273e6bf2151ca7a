"""Trail delivery in process, on a real database, blob store, KMS and S3, with a
ManualClock: exactly-once delivery (across a crash and between competing processes),
logging windows, digests and their chain, retention, SSE-KMS trails and what
`verify_deliveries` finds."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sealbox.audit.delivery import TrailDelivery
from sealbox.audit.trail_errors import (
    InsufficientEncryptionPolicyError,
    InsufficientS3BucketPolicyError,
    InvalidTrailNameError,
    MaximumNumberOfTrailsExceededError,
    TrailAlreadyExistsError,
)
from sealbox.audit.trail_layout import decompress
from sealbox.audit.trail_s3 import TrailS3
from sealbox.audit.trail_verify import verify_deliveries
from sealbox.audit.trails import TrailChanges
from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.server.runtime import Runtime
from sealbox.storage import audit_repo, s3_repo, trail_repo
from sealbox.storage.tables import audit_events
from tests.conftest import PG_BASE, postgres_available
from tests.support.runtime import ACCOUNT, build_runtime, root_call

BUCKET = "trail-logs"
NAME = "main"
ARN = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{NAME}"
DELIVERY = timedelta(seconds=301)
DIGEST = timedelta(seconds=3601)


def bucket_policy(bucket: str = BUCKET) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/*",
                    "Condition": {
                        "StringEquals": {
                            "s3:x-amz-acl": "bucket-owner-full-control",
                            "aws:SourceAccount": ACCOUNT,
                        },
                        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"},
                    },
                }
            ],
        }
    )


def call(source: str, name: str) -> Call:
    c = root_call(name)
    c.event_source = source
    return c


def ct(name: str) -> Call:
    return call("cloudtrail.amazonaws.com", name)


def s3c(name: str) -> Call:
    return call("s3.amazonaws.com", name)


@dataclass
class Env:
    rt: Runtime
    clock: ManualClock
    s3: TrailS3

    def use_key(self, count: int = 1, name: str = "Encrypt") -> list[str]:
        """Record KMS uses (as the KMS endpoint would); returns their event ids."""
        ids = []
        for _ in range(count):
            event = self.rt.audit.event_for(root_call(name))
            audit_repo.commit_events(self.rt.db, [event])
            ids.append(event.event_id)
        return ids

    def run(self, advance: timedelta = DELIVERY) -> Any:
        self.clock.advance(advance)
        return self.rt.trail_delivery.run_due()

    def files(self) -> list[Any]:
        with self.rt.db.read() as conn:
            trail = trail_repo.get_trail(conn, ACCOUNT, "us-east-1", NAME)
            assert trail is not None
            rows = conn.execute(
                trail_repo.cloudtrail_log_files.select()
                .where(trail_repo.F.trail_id == trail.trail_id)
                .order_by(trail_repo.F.id)
            ).all()
        return list(rows)

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for row in self.files():
            stored = self.s3.read(row.bucket, row.object_key)
            assert stored is not None
            out += json.loads(decompress(stored.data))["Records"]
        return out

    def digest(self, d: Any) -> dict[str, Any]:
        stored = self.s3.read(d.bucket, d.key)
        assert stored is not None
        assert stored.metadata["signature"] == d.signature
        assert stored.metadata["signature-algorithm"] == "SHA256withRSA"
        document: dict[str, Any] = json.loads(decompress(stored.data))
        return document

    def put(self, key: str, body: bytes) -> None:
        pending = self.rt.s3.objects.start_put(
            s3c("PutObject"), {"Bucket": BUCKET, "Key": key}, None
        )
        pending.write(body)
        pending.commit({})

    def new_trail(self, validation: bool = True, **kwargs: Any) -> None:
        self.rt.trails.create_trail(
            ct("CreateTrail"), NAME, BUCKET, log_validation=validation, **kwargs
        )
        self.rt.trails.start_logging(ct("StartLogging"), NAME)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """SQLite in the data dir, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        yield None
        return
    if not postgres_available():
        if os.environ.get("SEALBOX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_BASE}")
        pytest.skip("no PostgreSQL reachable")
    schema = f"sbx_trail_{uuid.uuid4().hex[:12]}"
    plain = PG_BASE.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def env(tmp_path: Path, database_url: str | None) -> Iterator[Env]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    rt = build_runtime(tmp_path / "data", clock, database_url)
    rt.s3.buckets.create_bucket(s3c("CreateBucket"), {"Bucket": BUCKET})
    rt.s3.buckets.put_bucket_policy(
        s3c("PutBucketPolicy"), {"Bucket": BUCKET, "Policy": bucket_policy()}
    )
    yield Env(rt, clock, TrailS3(rt.db, clock, rt.s3, rt.audit))
    rt.close()


def event_ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["eventID"] for r in records]


def test_each_event_is_delivered_once_and_digests_chain_and_verify(env: Env) -> None:
    with pytest.raises(InsufficientS3BucketPolicyError):
        env.rt.trails.create_trail(ct("CreateTrail"), NAME, BUCKET, s3_prefix="elsewhere")
    env.new_trail()
    first = env.use_key(3)
    assert env.run().log_files == 1
    second = env.use_key(2, "Decrypt")
    assert env.run().log_files == 1
    assert env.run().log_files == 0  # nothing new: no empty log file
    records = env.records()
    ids = event_ids(records)
    assert len(ids) == len(set(ids))
    assert set(first + second) <= set(ids)
    assert records[0]["eventName"] == "StartLogging"
    # CloudTrail's own writes are audited but never delivered (no feedback loop).
    with env.rt.db.read() as conn:
        own = conn.execute(
            audit_events.select().where(audit_events.c.principal_arn == "cloudtrail.amazonaws.com")
        ).all()
    assert {r.event_name for r in own} == {"PutObject"} and len(own) == 2
    assert not set(ids) & {r.event_id for r in own}

    report = env.run(DIGEST)
    assert report.digests == 1 and report.log_files == 0
    report = env.run(DIGEST)  # an hour without log files: a digest all the same
    assert report.digests == 1
    with env.rt.db.read() as conn:
        digests = trail_repo.digests_after(conn, 0, 10)
    assert [len(env.digest(d)["logFiles"]) for d in digests] == [2, 0]
    second_digest = env.digest(digests[1])
    assert second_digest["previousDigestS3Object"] == digests[0].key
    assert second_digest["previousDigestSignature"] == digests[0].signature
    checked = verify_deliveries(env.rt.db, env.s3.read)
    assert checked.ok and checked.digests_checked == 2 and checked.log_files_checked == 2
    _, state = env.rt.trails.get_trail_status(ct("GetTrailStatus"), NAME)
    assert state.latest_delivery_error is None and state.latest_digest_time is not None


def test_a_crash_after_writing_redoes_the_same_file_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.new_trail(validation=False)
    ids = env.use_key(4)
    real_put = TrailS3.put
    written: list[str] = []

    def put_then_die(self: TrailS3, bucket: str, key: str, body: bytes, **kw: Any) -> None:
        real_put(self, bucket, key, body, **kw)
        written.append(key)
        raise RuntimeError("process killed after the write")

    monkeypatch.setattr(TrailS3, "put", put_then_die)
    report = env.run()
    assert report.log_files == 0 and report.errors
    with env.rt.db.read() as conn:
        trail = trail_repo.get_trail(conn, ACCOUNT, "us-east-1", NAME)
        assert trail is not None
        state = trail_repo.get_state(conn, trail.trail_id)
    assert state is not None and state.pending is not None
    assert state.latest_delivery_error is not None
    monkeypatch.setattr(TrailS3, "put", real_put)
    assert env.run().log_files == 1
    files = env.files()
    assert [f.object_key for f in files] == written  # the same object, written again
    delivered = event_ids(env.records())
    assert sorted(delivered) == sorted(set(delivered)) and set(ids) <= set(delivered)


def test_only_one_process_works_on_a_trail_at_a_time(env: Env) -> None:
    env.new_trail(validation=False)
    with env.rt.db.read() as conn:
        trail = trail_repo.get_trail(conn, ACCOUNT, "us-east-1", NAME)
    assert trail is not None
    now = env.clock.now() + DELIVERY
    assert env.rt.db.write(
        lambda conn: trail_repo.claim(
            conn, trail.trail_id, "another-process", now, now + timedelta(minutes=5)
        )
    )
    env.use_key(2)
    assert env.run().log_files == 0  # the lease is taken
    assert env.run(timedelta(minutes=6)).log_files == 1  # ...until it expires

    # Several "processes" at once: every event still exactly once.
    others = [
        TrailDelivery(
            env.rt.db,
            env.clock,
            env.s3,
            env.rt.trail_delivery._signer,
            env.rt.trail_delivery._settings,
        )
        for _ in range(4)
    ]
    used: list[str] = []
    for _ in range(3):
        used += env.use_key(5)
        env.clock.advance(DELIVERY)
        threads = [threading.Thread(target=o.run_due) for o in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ids = event_ids(env.records())
    assert len(ids) == len(set(ids)) and set(used) <= set(ids)


def test_records_made_while_stopped_are_never_delivered(env: Env) -> None:
    env.new_trail(validation=False)
    before = env.use_key(1)
    env.rt.trails.stop_logging(ct("StopLogging"), NAME)
    stopped = env.use_key(1)
    env.run()  # catches up to StopLogging, then stops delivering
    after_catch_up = env.use_key(1)
    env.rt.trails.start_logging(ct("StartLogging"), NAME)
    again = env.use_key(1)
    env.rt.trails.stop_logging(ct("StopLogging"), NAME)
    stopped_again = env.use_key(1)
    env.rt.trails.start_logging(ct("StartLogging"), NAME)  # before delivery caught up
    last = env.use_key(1)
    env.run()
    env.run()
    ids = event_ids(env.records())
    assert len(ids) == len(set(ids))
    assert set(before + again + last) <= set(ids)
    assert not set(stopped + after_catch_up + stopped_again) & set(ids)
    names = [r["eventName"] for r in env.records()]
    assert names.count("StopLogging") == 2 and names.count("StartLogging") == 3


def test_retention_waits_for_delivery(env: Env) -> None:
    env.rt.settings = dataclasses.replace(env.rt.settings, audit_retention_days=1)
    env.new_trail(validation=False)
    ids = env.use_key(3)
    env.rt.s3.buckets.delete_bucket_policy(s3c("DeleteBucketPolicy"), {"Bucket": BUCKET})
    env.clock.advance(timedelta(days=3))
    env.rt.run_scheduled_work()  # delivery is denied: nothing may be pruned
    _, state = env.rt.trails.get_trail_status(ct("GetTrailStatus"), NAME)
    assert state.latest_delivery_error is not None and "AccessDenied" in state.latest_delivery_error

    def kept() -> set[str]:
        with env.rt.db.read() as conn:
            return {r.event_id for r in conn.execute(audit_events.select()).all()}

    assert set(ids) <= kept()
    env.rt.s3.buckets.put_bucket_policy(
        s3c("PutBucketPolicy"), {"Bucket": BUCKET, "Policy": bucket_policy()}
    )
    env.clock.advance(DELIVERY)
    env.rt.run_scheduled_work()  # delivered, then pruned
    assert set(ids) <= set(event_ids(env.records()))
    assert not set(ids) & kept()


def test_sse_kms_trail_needs_a_key_policy_for_cloudtrail(env: Env) -> None:
    key = env.rt.kms.create_key(root_call("CreateKey")).key
    with pytest.raises(InsufficientEncryptionPolicyError):
        env.rt.trails.create_trail(ct("CreateTrail"), NAME, BUCKET, kms_key_id=key.key_id)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "kms:GenerateDataKey*", "Resource": "*"},
        ],
    }  # fmt: skip
    env.rt.kms.put_key_policy(root_call("PutKeyPolicy"), key.key_id, json.dumps(policy), "default")
    trail = env.rt.trails.create_trail(ct("CreateTrail"), NAME, BUCKET, kms_key_id=key.key_id)
    assert trail.kms_key_id == key.arn
    env.rt.trails.start_logging(ct("StartLogging"), NAME)
    env.use_key(1)
    assert env.run().log_files == 1
    row = env.files()[0]
    with env.rt.db.read() as conn:
        stored = s3_repo.get_version(conn, BUCKET, row.object_key)
    assert stored is not None and stored.keying is not None
    assert (stored.keying.sse, stored.keying.kms_key_arn) == ("aws:kms", key.arn)
    with env.rt.db.read() as conn:
        made_for_cloudtrail = conn.execute(
            audit_events.select().where(
                (audit_events.c.principal_arn == "cloudtrail.amazonaws.com")
                & (audit_events.c.event_name == "GenerateDataKey")
            )
        ).all()
    assert len(made_for_cloudtrail) == 1
    assert (
        json.loads(made_for_cloudtrail[0].record)["userIdentity"]["invokedBy"] == "s3.amazonaws.com"
    )


def test_verify_deliveries_names_changed_missing_and_resigned_files(env: Env) -> None:
    env.new_trail()
    env.use_key(1)
    env.run()
    env.use_key(1)
    env.run()
    env.run(DIGEST)
    files = env.files()
    assert len(files) == 2
    env.put(files[0].object_key, b"\x1f\x8b not what was delivered")
    env.rt.s3.objects.delete_object(
        s3c("DeleteObject"), {"Bucket": BUCKET, "Key": files[1].object_key}
    )
    report = verify_deliveries(env.rt.db, env.s3.read)
    assert [(p.kind, p.key) for p in report.problems] == [
        ("log_changed", files[0].object_key),
        ("log_missing", files[1].object_key),
    ]
    assert report.first_problem is not None and report.first_problem.key == files[0].object_key

    with env.rt.db.read() as conn:
        digest = trail_repo.digests_after(conn, 0, 1)[0]
    stored = env.s3.read(digest.bucket, digest.key)
    assert stored is not None
    env.put(digest.key, stored.data)  # the same bytes, without the signature metadata
    report = verify_deliveries(env.rt.db, env.s3.read)
    # Its listing is no longer trusted, so the problems it lists are not reported.
    assert [(p.kind, p.key) for p in report.problems] == [("digest_signature_invalid", digest.key)]
    env.put(digest.key, b"")
    report = verify_deliveries(env.rt.db, env.s3.read)
    assert [p.kind for p in report.problems] == ["digest_changed"]


def test_log_files_outside_digests_are_checked_by_hash(env: Env) -> None:
    env.new_trail(validation=False)
    env.use_key(1)
    env.run()
    env.use_key(1)
    env.run()
    files = env.files()
    assert [f.digest_id for f in files] == [0, 0]
    assert verify_deliveries(env.rt.db, env.s3.read).ok
    env.put(files[1].object_key, b"changed")
    env.rt.s3.objects.delete_object(
        s3c("DeleteObject"), {"Bucket": BUCKET, "Key": files[0].object_key}
    )
    report = verify_deliveries(env.rt.db, env.s3.read)
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.key) == (
        "log_missing",
        files[0].object_key,
    )
    assert sorted(p.kind for p in report.problems) == ["log_changed", "log_missing"]


def test_trail_limits_names_and_updates(env: Env) -> None:
    for bad in ("ab", "-abc", "abc-", "a..b", "a_-b", "192.168.5.4", "x" * 129, "a b"):
        with pytest.raises(InvalidTrailNameError):
            env.rt.trails.create_trail(ct("CreateTrail"), bad, BUCKET)
    for n in range(5):
        env.rt.trails.create_trail(ct("CreateTrail"), f"t{n}.ok_name-{n}", BUCKET)
    with pytest.raises(TrailAlreadyExistsError):
        env.rt.trails.create_trail(ct("CreateTrail"), "t0.ok_name-0", BUCKET)
    with pytest.raises(MaximumNumberOfTrailsExceededError):
        env.rt.trails.create_trail(ct("CreateTrail"), "sixth", BUCKET)
    updated = env.rt.trails.update_trail(
        ct("UpdateTrail"), "t1.ok_name-1", TrailChanges(log_validation=True, multi_region=True)
    )
    assert updated.log_validation and updated.multi_region
    assert [t.name for t in env.rt.trails.describe_trails(ct("DescribeTrails"), None)][:2] == [
        "t0.ok_name-0",
        "t1.ok_name-1",
    ]
