"""The audit journal: its line format, the in-process writer, and the indexer that moves
lines into audit_events exactly once. Real files, real SQLite (and PostgreSQL)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from sealbox.audit import journal_format as fmt
from sealbox.audit.journal import JournalUnavailable, JournalWriter, SegmentWriter
from sealbox.audit.journal_index import JournalIndexer
from sealbox.audit.model import AuditEvent
from sealbox.audit.verify import verify_chain
from sealbox.cli.main import main as cli
from sealbox.clock import ManualClock
from sealbox.server.runtime import Runtime
from tests.support.runtime import build_runtime, root_call


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", clock)
    yield runtime
    runtime.close()


def events(rt: Runtime, clock: ManualClock, count: int, name: str = "Encrypt") -> list[AuditEvent]:
    out = []
    for _ in range(count):
        clock.advance(timedelta(milliseconds=1))
        out.append(rt.audit.event_for(root_call(name)))
    return out


def bodies(evs: list[AuditEvent]) -> list[bytes]:
    return [fmt.encode_body(e) for e in evs]


def journal_dir(rt: Runtime) -> Path:
    return rt.settings.audit_journal_dir


def table(rt: Runtime) -> list[tuple[str, str]]:
    with rt.db.engine.begin() as conn:
        rows = conn.execute(text("SELECT event_id, event_name FROM audit_events ORDER BY seq"))
        return [(str(r[0]), str(r[1])) for r in rows]


def segment_files(rt: Runtime) -> list[Path]:
    return sorted(journal_dir(rt).glob("*.journal"))


# -- the line format ---------------------------------------------------------------------


def test_lines_round_trip_and_chain_from_the_segment_name(rt: Runtime, clock: ManualClock) -> None:
    evs = events(rt, clock, 3)
    name = "00000000000000000001-42-0badcafe.journal"
    data, head = fmt.seal_lines(fmt.genesis(name), bodies(evs))
    parsed = fmt.parse(name, data + bytes(100), 0, fmt.genesis(name))
    assert parsed.consumed == len(data) and parsed.head == head and not parsed.torn
    assert [e.columns[0] for e in parsed.entries] == [e.event_id for e in evs]
    assert [orjson.loads(e.record) for e in parsed.entries] == [e.record for e in evs]
    assert parsed.entries[0].time_us == fmt.to_micros(evs[0].event_time)
    # The same bytes under another segment's name do not verify: lines can't be moved.
    other = "00000000000000000002-42-0badcafe.journal"
    with pytest.raises(fmt.JournalCorrupt):
        fmt.parse(other, data, 0, fmt.genesis(other))


def test_an_edited_line_is_corruption_but_an_unfinished_last_line_is_not(
    rt: Runtime, clock: ManualClock
) -> None:
    name = "00000000000000000001-42-0badcafe.journal"
    start = fmt.genesis(name)
    data, _ = fmt.seal_lines(start, bodies(events(rt, clock, 3)))
    first_end = data.index(b"\n") + 1
    edited = data.replace(b'"Encrypt"', b'"Decrypt"', 1)
    with pytest.raises(fmt.JournalCorrupt) as err:
        fmt.parse(name, edited, 1000, start)
    assert err.value.offset == 1000  # the first line's offset in the file
    # A last line still being copied (or torn by a crash): stop before it, no error.
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    torn = data[:last_start] + data[last_start:-10] + bytes(10)
    parsed = fmt.parse(name, torn, 0, start)
    assert len(parsed.entries) == 2 and parsed.consumed == last_start
    half = data[: first_end + 5]
    parsed = fmt.parse(name, half, 0, start)
    assert len(parsed.entries) == 1 and parsed.consumed == first_end and not parsed.torn


# -- the in-process writer ---------------------------------------------------------------


def test_the_writer_answers_only_once_the_line_is_on_disk(rt: Runtime, clock: ManualClock) -> None:
    directory = journal_dir(rt)
    writer = JournalWriter(directory)
    evs = events(rt, clock, 5)

    async def submit_all() -> None:
        await asyncio.gather(*(writer.submit(e) for e in evs))

    asyncio.run(submit_all())
    [segment] = segment_files(rt)
    assert oct(segment.stat().st_mode & 0o777) == "0o600"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    content = segment.read_bytes()
    parsed = fmt.parse(segment.name, content, 0, fmt.genesis(segment.name))
    assert [e.columns[0] for e in parsed.entries] == [e.event_id for e in evs]
    # While the writer holds the segment, nobody else may lock it.
    with open(segment, "rb") as f, pytest.raises(BlockingIOError):
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    writer.close()


def test_after_a_failed_sync_every_request_fails(rt: Runtime, clock: ManualClock) -> None:
    writer = JournalWriter(journal_dir(rt))
    first, second = events(rt, clock, 2)

    async def run() -> tuple[BaseException | None, BaseException | None]:
        await writer.submit(first)
        os.close(writer._segments._segment.fd)  # type: ignore[union-attr]  # the disk "fails"
        results: list[BaseException | None] = []
        for event in (second, first):
            try:
                await writer.submit(event)
                results.append(None)
            except JournalUnavailable as exc:
                results.append(exc)
        return results[0], results[1]

    failed, refused = asyncio.run(run())
    assert isinstance(failed, JournalUnavailable) and isinstance(refused, JournalUnavailable)


def test_a_segment_removed_while_in_use_fails_its_batch_and_a_new_one_starts(
    rt: Runtime, clock: ManualClock
) -> None:
    writer = JournalWriter(journal_dir(rt))
    first, lost, after = events(rt, clock, 3)

    async def run() -> list[str]:
        outcomes = []
        for event in (first, lost, after):
            try:
                await writer.submit(event)
                outcomes.append("durable")
            except JournalUnavailable:
                outcomes.append("failed")
            if event is first:
                [segment] = segment_files(rt)
                segment.unlink()  # someone deletes the live segment
        return outcomes

    assert asyncio.run(run()) == ["durable", "failed", "durable"]
    [segment] = segment_files(rt)  # the new one, holding what came after
    parsed = fmt.parse(segment.name, segment.read_bytes(), 0, fmt.genesis(segment.name))
    assert [e.columns[0] for e in parsed.entries] == [after.event_id]
    writer.close()


# -- the indexer -------------------------------------------------------------------------


def test_lines_are_indexed_exactly_once_and_in_time_order(rt: Runtime, clock: ManualClock) -> None:
    a, b = SegmentWriter(journal_dir(rt)), SegmentWriter(journal_dir(rt))
    evs = events(rt, clock, 6)
    a.append(bodies(evs[0::2]))  # two writers, interleaved in time
    b.append(bodies(evs[1::2]))
    assert rt.audit.catch_up() == 6
    assert [eid for eid, _ in table(rt)] == [e.event_id for e in evs]
    assert rt.audit.catch_up() == 0
    # A second indexer (another process, or this one after a restart) repeats nothing.
    assert JournalIndexer(rt.db, journal_dir(rt)).catch_up() == 0
    later = events(rt, clock, 2)
    a.append(bodies(later))
    assert JournalIndexer(rt.db, journal_dir(rt)).catch_up() == 2
    assert [eid for eid, _ in table(rt)] == [e.event_id for e in evs + later]
    assert verify_chain(rt.db).ok
    a.close()
    b.close()


def test_a_finished_segment_is_removed_and_a_live_one_kept(rt: Runtime, clock: ManualClock) -> None:
    live, done = SegmentWriter(journal_dir(rt)), SegmentWriter(journal_dir(rt))
    live.append(bodies(events(rt, clock, 1)))
    done.append(bodies(events(rt, clock, 2)))
    done_name = done._segment.name  # type: ignore[union-attr]
    done.close()  # its writer is gone: the segment is final
    assert rt.audit.catch_up() == 3
    assert [p.name for p in segment_files(rt)] == [live._segment.name]  # type: ignore[union-attr]
    with rt.db.engine.begin() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM audit_journal_segments"))}
    assert done_name not in names
    live.close()
    rt.audit.catch_up()
    assert segment_files(rt) == []
    assert len(table(rt)) == 3


def test_state_changes_are_chained_after_the_journal_events_before_them(
    rt: Runtime, clock: ManualClock
) -> None:
    writer = SegmentWriter(journal_dir(rt))
    earlier = events(rt, clock, 2, "Decrypt")
    writer.append(bodies(earlier))
    clock.advance(timedelta(seconds=1))
    rt.kms.create_key(root_call("CreateKey"))  # appends inside its own transaction
    names = [name for _, name in table(rt)]
    assert names == ["Decrypt", "Decrypt", "CreateKey"]
    writer.close()


def test_an_edited_journal_line_is_not_indexed_and_verify_names_it(
    rt: Runtime, clock: ManualClock, tmp_path: Path
) -> None:
    good, bad = SegmentWriter(journal_dir(rt)), SegmentWriter(journal_dir(rt))
    good.append(bodies(events(rt, clock, 2)))
    bad.append(bodies(events(rt, clock, 3)))
    bad_segment = bad._segment
    assert bad_segment is not None
    bad.close()
    path = journal_dir(rt) / bad_segment.name
    content = path.read_bytes()
    path.write_bytes(content.replace(b'"Encrypt"', b'"Decrypt"', 1))
    assert rt.audit.catch_up() == 2  # the good segment only
    assert path.exists()  # kept as evidence
    result = CliRunner().invoke(
        cli, ["audit", "verify", "--data-dir", str(rt.settings.data_dir), "--output", "json"]
    )
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.output)
    assert report["ok"] is False
    assert [bad_segment.name in p for p in report["journal_problems"]] == [True]
    good.close()


def test_the_indexer_works_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    clock = ManualClock()
    runtime = build_runtime(tmp_path / "pg", clock, postgres_url)
    try:
        writer = SegmentWriter(runtime.settings.audit_journal_dir)
        evs = events(runtime, clock, 4)
        writer.append(bodies(evs))
        assert runtime.audit.catch_up() == 4
        assert [eid for eid, _ in table(runtime)] == [e.event_id for e in evs]
        assert runtime.audit.catch_up() == 0
        assert verify_chain(runtime.db).ok
        writer.close()
    finally:
        runtime.close()
