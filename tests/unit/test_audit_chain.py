"""The audit hash chain: verification finds the first broken record; retention keeps
the rest verifiable; concurrent writers still make one chain. Real databases only."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sealbox.audit import chain
from sealbox.audit.retention import prune
from sealbox.audit.verify import (
    CHAIN_HASH_CHANGED,
    CHAIN_TRUNCATED,
    HEAD_MISMATCH,
    RECORD_CHANGED,
    RECORD_MISSING,
    verify_chain,
)
from sealbox.clock import ManualClock
from sealbox.server.runtime import Runtime
from sealbox.storage import audit_repo
from tests.support.runtime import build_runtime, root_call


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", clock)
    yield runtime
    runtime.close()


def make_events(rt: Runtime, count: int, clock: ManualClock | None = None) -> None:
    """count events through every append path: in a KMS transaction, in a transaction
    of their own, and by group commit."""
    for i in range(count):
        if clock is not None:
            clock.advance(timedelta(hours=1))
        if i % 3 == 0:
            rt.kms.create_key(root_call("CreateKey"))
        elif i % 3 == 1:
            rt.audit.record_now(root_call("ListKeys"))
        else:
            audit_repo.commit_events(rt.db, [rt.audit.event_for(root_call("ListAliases"))])


def sql(rt: Runtime, statement: str, **params: Any) -> list[Any]:
    with rt.db.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def tamper_record(rt: Runtime, seq: int) -> None:
    sql(
        rt,
        "UPDATE audit_events SET record = replace(record, :old, :new) WHERE seq = :s",
        old='"requestID":"test"',
        new='"requestID":"tampered"',
        s=seq,
    )


def seqs(rt: Runtime) -> list[int]:
    return [int(r[0]) for r in sql(rt, "SELECT seq FROM audit_events ORDER BY seq")]


def event_id(rt: Runtime, seq: int) -> str:
    return str(sql(rt, "SELECT event_id FROM audit_events WHERE seq = :s", s=seq)[0][0])


def test_an_intact_chain_verifies(rt: Runtime) -> None:
    make_events(rt, 12)
    report = verify_chain(rt.db)
    assert report.ok, report
    assert report.first_break is None
    assert report.records_checked == report.records_walked == 12
    assert report.anchor_seq == 0
    assert report.head_seq == seqs(rt)[-1]
    assert report.elapsed_seconds >= 0


def test_an_empty_chain_verifies(rt: Runtime) -> None:
    report = verify_chain(rt.db)
    assert report.ok
    assert report.records_walked == 0


@pytest.mark.parametrize("batch_size", [4, 5000])
def test_an_edited_record_is_named(rt: Runtime, batch_size: int) -> None:
    make_events(rt, 12)
    target = seqs(rt)[5]
    tamper_record(rt, target)
    report = verify_chain(rt.db, batch_size=batch_size)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.kind == RECORD_CHANGED
    assert report.first_break.seq == target
    assert report.first_break.event_id == event_id(rt, target)
    assert report.first_break.event_time is not None
    assert "record changed" in report.first_break.message


@pytest.mark.parametrize("position", [0, 5, 10])
def test_a_deleted_record_is_named(rt: Runtime, position: int) -> None:
    make_events(rt, 12)
    all_seqs = seqs(rt)
    sql(rt, "DELETE FROM audit_events WHERE seq = :s", s=all_seqs[position])
    report = verify_chain(rt.db, batch_size=4)
    assert report.first_break is not None
    assert report.first_break.kind == RECORD_MISSING
    following = all_seqs[position + 1]
    assert report.first_break.seq == following
    assert report.first_break.event_id == event_id(rt, following)
    assert f"record missing before seq {following}" in report.first_break.message


def test_deleting_the_newest_records_is_detected_by_the_head(rt: Runtime) -> None:
    make_events(rt, 12)
    all_seqs = seqs(rt)
    sql(rt, "DELETE FROM audit_events WHERE seq > :s", s=all_seqs[8])
    report = verify_chain(rt.db)
    assert report.first_break is not None
    assert report.first_break.kind == CHAIN_TRUNCATED
    assert report.first_break.seq == all_seqs[8]
    assert f"chain truncated after seq {all_seqs[8]}" in report.first_break.message


def test_deleting_every_record_is_detected(rt: Runtime) -> None:
    make_events(rt, 3)
    sql(rt, "DELETE FROM audit_events")
    report = verify_chain(rt.db)
    assert report.first_break is not None
    assert report.first_break.kind == CHAIN_TRUNCATED
    assert "chain truncated after seq 0" in report.first_break.message


@pytest.mark.parametrize(("position", "batch_size"), [(3, 4), (4, 4), (7, 5000), (11, 4)])
def test_an_edited_chain_hash_is_named(rt: Runtime, position: int, batch_size: int) -> None:
    make_events(rt, 12)
    target = seqs(rt)[position]
    sql(rt, "UPDATE audit_events SET chain_hash = :h WHERE seq = :s", h=bytes(32), s=target)
    report = verify_chain(rt.db, batch_size=batch_size)
    assert report.first_break is not None
    assert report.first_break.kind == CHAIN_HASH_CHANGED
    assert report.first_break.seq == target
    assert report.first_break.event_id == event_id(rt, target)


def test_a_rewritten_and_rehashed_newest_record_is_caught_by_the_head(rt: Runtime) -> None:
    make_events(rt, 6)
    *_, before, last = seqs(rt)
    prev = sql(rt, "SELECT chain_hash FROM audit_events WHERE seq = :s", s=before)[0][0]
    record = sql(rt, "SELECT record FROM audit_events WHERE seq = :s", s=last)[0][0]
    forged = record.replace("ListAliases", "ListAliasez")
    sql(
        rt,
        "UPDATE audit_events SET record = :r, chain_hash = :h WHERE seq = :s",
        r=forged,
        h=chain.link(bytes(prev), forged.encode()),
        s=last,
    )
    report = verify_chain(rt.db)
    assert report.first_break is not None
    assert report.first_break.kind == HEAD_MISMATCH
    assert "head does not match" in report.first_break.message


def test_an_edited_head_is_detected(rt: Runtime) -> None:
    make_events(rt, 4)
    sql(rt, "UPDATE audit_chain SET last_hash = :h", h=bytes(32))
    report = verify_chain(rt.db)
    assert report.first_break is not None
    assert report.first_break.kind == HEAD_MISMATCH


def test_from_and_to_limit_what_is_reported(rt: Runtime, clock: ManualClock) -> None:
    start = clock.now()
    make_events(rt, 12, clock)  # one an hour
    all_seqs = seqs(rt)
    tamper_record(rt, all_seqs[1])  # two hours in
    later = verify_chain(rt.db, from_time=start + timedelta(hours=5))
    assert later.ok, later
    assert later.breaks_outside_range == 1
    assert later.records_checked == 8  # hours 5..12
    assert later.records_walked == 12  # still walked from the anchor

    earlier = verify_chain(rt.db, to_time=start + timedelta(hours=3))
    assert earlier.first_break is not None
    assert earlier.first_break.seq == all_seqs[1]
    with pytest.raises(ValueError, match="timezone"):
        verify_chain(rt.db, from_time=start.replace(tzinfo=None))


def test_a_break_after_the_range_is_not_reported_but_one_inside_is(
    rt: Runtime, clock: ManualClock
) -> None:
    start = clock.now()
    make_events(rt, 12, clock)
    all_seqs = seqs(rt)
    sql(rt, "DELETE FROM audit_events WHERE seq > :s", s=all_seqs[8])  # truncated after 9h
    assert verify_chain(rt.db, to_time=start + timedelta(hours=6)).ok
    assert not verify_chain(rt.db, to_time=start + timedelta(hours=20)).ok


def test_prune_moves_the_anchor_and_keeps_the_chain_verifiable(
    rt: Runtime, clock: ManualClock
) -> None:
    make_events(rt, 30, clock)  # one an hour
    all_seqs = seqs(rt)
    cutoff = clock.now() - timedelta(hours=10) + timedelta(minutes=1)
    removed = prune(rt.db, cutoff, batch_size=7)  # several batches
    assert removed == 20
    assert seqs(rt) == all_seqs[20:]
    with rt.db.read() as conn:
        _, _, anchor_seq, anchor_hash = audit_repo.chain_state(conn)
    assert anchor_seq == all_seqs[19]
    report = verify_chain(rt.db)
    assert report.ok, report
    assert report.anchor_seq == all_seqs[19]
    assert report.records_walked == 10

    assert prune(rt.db, cutoff) == 0  # idempotent
    make_events(rt, 3, clock)  # appends go on after a prune
    assert verify_chain(rt.db).ok
    # A record removed below the new anchor is no longer the chain's business; one
    # removed above it still is.
    sql(rt, "DELETE FROM audit_events WHERE seq = :s", s=all_seqs[21])
    assert not verify_chain(rt.db).ok
    assert anchor_hash != bytes(32)


def test_prune_always_keeps_the_newest_record(rt: Runtime, clock: ManualClock) -> None:
    make_events(rt, 5, clock)
    newest = seqs(rt)[-1]
    assert prune(rt.db, clock.now() + timedelta(days=1)) == 4
    assert seqs(rt) == [newest]
    make_events(rt, 2, clock)  # SQLite numbers new rows after the kept one
    assert seqs(rt)[0] == newest and len(seqs(rt)) == 3
    assert verify_chain(rt.db).ok


def test_retention_runs_with_the_scheduled_work(rt: Runtime, clock: ManualClock) -> None:
    make_events(rt, 4, clock)
    clock.advance(timedelta(days=31))
    make_events(rt, 2, clock)
    rt.run_scheduled_work()  # retention off by default
    assert len(seqs(rt)) == 6
    rt.settings = dataclasses.replace(rt.settings, audit_retention_days=30)
    rt.run_scheduled_work()
    assert len(seqs(rt)) == 2
    assert verify_chain(rt.db).ok


def test_verification_restarts_when_retention_overtakes_it(rt: Runtime, clock: ManualClock) -> None:
    make_events(rt, 20, clock)
    all_seqs = seqs(rt)
    pruned = False

    def prune_once(walked: int, expected: int) -> None:
        nonlocal pruned
        if not pruned:  # after the first batch of 3, remove 10 records it has not reached
            pruned = True
            prune(rt.db, clock.now() - timedelta(hours=10) + timedelta(minutes=1))

    report = verify_chain(rt.db, batch_size=3, progress=prune_once)
    assert pruned
    assert report.ok, report
    assert seqs(rt) == all_seqs[10:]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("path", ["group-commit", "in-transaction"])
def test_concurrent_writers_make_one_chain(
    tmp_path: Path, database_url: str | None, path: str
) -> None:
    # Two runtimes on one database stand in for two worker processes; group commit
    # appends in a transaction of its own, record_now inside a write transaction (as
    # every state-changing call does).
    clock = ManualClock()
    runtimes = [build_runtime(tmp_path / "data", clock, database_url) for _ in range(2)]
    per_thread = 30
    errors: list[BaseException] = []
    region = f"eu-west-{id(runtimes[0]) % 1000}"  # unique on a shared PostgreSQL schema

    def write(rt: Runtime) -> None:
        try:
            for _ in range(per_thread):
                call = root_call("ListKeys", region)
                if path == "in-transaction":
                    rt.audit.record_now(call)
                else:
                    events = [rt.audit.event_for(call), rt.audit.event_for(call)]
                    audit_repo.commit_events(rt.db, events)
        except BaseException as exc:
            errors.append(exc)

    expected = 2 * per_thread * (1 if path == "in-transaction" else 2)
    try:
        threads = [threading.Thread(target=write, args=(rt,)) for rt in runtimes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        rows = sql(runtimes[0], "SELECT count(*) FROM audit_events WHERE region = :r", r=region)
        assert rows[0][0] == expected
        report = verify_chain(runtimes[0].db)
        assert report.ok, report
        assert report.records_walked >= expected
    finally:
        for rt in runtimes:
            rt.close()
