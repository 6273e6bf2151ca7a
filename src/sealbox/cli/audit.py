"""`sealbox audit verify|tail`: check the audit hash chain and delivered trail files,
watch the newest events.

Both read the database directly (offline or beside a running server). Checking delivered
files also opens the root of trust (SEALBOX_MASTER_PASSPHRASE) to read them; the only
thing either writes is the audit record of a KMS call that reading an SSE-KMS trail file
needs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Row, select
from sqlalchemy.exc import DBAPIError

from sealbox.audit.journal_index import JournalIndexer
from sealbox.audit.trail_verify import DeliveredFilesReport, has_deliveries, verify_deliveries
from sealbox.audit.verify import VerifyReport, verify_chain
from sealbox.cli.output import OUTPUT_OPTION
from sealbox.config import Settings
from sealbox.storage import audit_repo
from sealbox.storage.db import Database
from sealbox.storage.tables import audit_events

DATA_DIR_OPTION = click.option(
    "--data-dir",
    envvar="SEALBOX_DATA_DIR",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("./sealbox-data"),
    show_default=True,
)
DATABASE_OPTION = click.option("--database", envvar="SEALBOX_DATABASE", default=None)

FOLLOW_INTERVAL_SECONDS = 0.5
FOLLOW_BATCH = 1000  # rows per poll, at most: memory stays bounded however far behind

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601 (a time without a zone is UTC) or an age such as 90m, 12h, 7d."""
    if value is None:
        return None
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = relative.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an ISO 8601 time nor an age like 7d", ctx, param
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@contextmanager
def _database(data_dir: Path, database: str | None) -> Iterator[tuple[Database, JournalIndexer]]:
    """The server's database as it is (no migrations, nothing created), and its audit
    journal: events a running server made durable but has not yet moved into it."""
    settings = Settings(data_dir=data_dir, database_url=database)
    if database is None and not (data_dir / "sealbox.db").exists():
        raise click.ClickException(f"no Sealbox database in {data_dir}")
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        try:
            with db.read() as conn:
                audit_repo.chain_state(conn)
        except DBAPIError as exc:
            raise click.ClickException(
                f"this database has no audit chain yet (start `sealbox serve` once to "
                f"migrate it): {exc.orig}"
            ) from None
        yield db, JournalIndexer(db, settings.audit_journal_dir)
    finally:
        db.dispose()


@click.group()
def audit() -> None:
    """Inspect the audit trail."""


# -- verify ------------------------------------------------------------------------------


class _Progress:
    """A counter on stderr, once a run has taken more than a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, walked: int, expected: int) -> None:
        if time.monotonic() - self.started < 1.0:
            return
        self.shown = True
        click.echo(f"\rverified {walked:,} of at most {expected:,} records", err=True, nl=False)

    def done(self) -> None:
        if self.shown:
            click.echo(err=True)


@audit.command("verify")
@click.option(
    "--from", "from_time", metavar="T", callback=_time, help="Report on records from T on"
)
@click.option("--to", "to_time", metavar="T", callback=_time, help="Report on records up to T")
@DATA_DIR_OPTION
@DATABASE_OPTION
@OUTPUT_OPTION
def verify(
    from_time: datetime | None,
    to_time: datetime | None,
    data_dir: Path,
    database: str | None,
    output: str,
) -> None:
    """Check the audit hash chain from its anchor to its head, and the files trails
    delivered (digests and the log files they list, as `aws cloudtrail validate-logs`).

    Exits 0 when all is intact, 1 naming the first broken record and the first broken
    file. --from/--to (ISO 8601, or an age like 7d) limit which records and files are
    reported on; the chain is still walked from its anchor.
    """
    progress = _Progress() if sys.stderr.isatty() else None
    with _database(data_dir, database) as (db, journal):
        journal.catch_up()
        try:
            report = verify_chain(db, from_time, to_time, progress=progress)
        finally:
            if progress is not None:
                progress.done()
        delivered = has_deliveries(db)
    deliveries = _verify_deliveries(data_dir, database, from_time, to_time) if delivered else None
    broken_journals = sorted(str(exc) for exc in journal.corrupt.values())
    ok = report.ok and (deliveries is None or deliveries.ok) and not broken_journals
    if output == "json":
        out = report.to_dict()
        out["ok"] = ok
        out["deliveries"] = None if deliveries is None else deliveries.to_dict()
        out["journal_problems"] = broken_journals
        click.echo(json.dumps(out, indent=2))
    else:
        _print_report(report)
        if deliveries is not None:
            _print_deliveries(deliveries)
        for problem in broken_journals:
            click.echo(f"Audit journal BROKEN: {problem}")
    sys.exit(0 if ok else 1)


def _verify_deliveries(
    data_dir: Path, database: str | None, from_time: datetime | None, to_time: datetime | None
) -> DeliveredFilesReport:
    from sealbox.audit.trail_s3 import TrailS3
    from sealbox.keystore.base import KeyStoreError
    from sealbox.server.runtime import Runtime

    settings = Settings(
        data_dir=data_dir,
        database_url=database,
        master_passphrase=os.environ.get("SEALBOX_MASTER_PASSPHRASE") or None,
    )
    try:
        runtime = Runtime.build(settings)
    except KeyStoreError as exc:
        raise click.ClickException(
            f"cannot open the root of trust to read trail files: {exc}"
        ) from None
    try:
        reader = TrailS3(runtime.db, runtime.clock, runtime.s3, runtime.audit)
        return verify_deliveries(runtime.db, reader.read, from_time, to_time)
    finally:
        runtime.close()


def _print_deliveries(report: DeliveredFilesReport) -> None:
    first = report.first_problem
    if first is None:
        click.echo("Delivered trail files intact")
    else:
        click.echo(f"Delivered trail files BROKEN: {first.message}")
        if len(report.problems) > 1:
            click.echo(f"  OtherProblems     {len(report.problems) - 1}")
    click.echo(f"  DigestsChecked    {report.digests_checked}")
    click.echo(f"  LogFilesChecked   {report.log_files_checked}")


def _print_report(report: VerifyReport) -> None:
    brk = report.first_break
    click.echo("Audit chain intact" if brk is None else f"Audit chain BROKEN: {brk.message}")
    fields: list[tuple[str, object]] = []
    if brk is not None:
        when = None if brk.event_time is None else brk.event_time.isoformat()
        fields += [("Seq", brk.seq), ("EventId", brk.event_id), ("EventTime", when)]
    if report.from_time is not None or report.to_time is not None:
        start, end = (t.isoformat() if t else "…" for t in (report.from_time, report.to_time))
        fields.append(("Range", f"{start} to {end}"))
    fields += [
        ("RecordsChecked", report.records_checked),
        ("RecordsWalked", f"{report.records_walked} (from anchor seq {report.anchor_seq})"),
        ("HeadSeq", report.head_seq),
        ("Seconds", f"{report.elapsed_seconds:.3f}"),
    ]
    if report.breaks_outside_range:
        fields.append(("BreaksOutsideRange", report.breaks_outside_range))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is not None:
            click.echo(f"  {name.ljust(width)}  {value}")


# -- tail --------------------------------------------------------------------------------

_TAIL_COLUMNS = ("EventTime", "AccountId", "EventSource", "EventName", "PrincipalArn", "ErrorCode")


def _query(account_id: str | None) -> Any:
    c = audit_events.c
    query = select(
        c.seq,
        c.event_time,
        c.account_id,
        c.event_source,
        c.event_name,
        c.principal_arn,
        c.error_code,
        c.record,
    )
    return query if account_id is None else query.where(c.account_id == account_id)


def _newest(db: Database, account_id: str | None, count: int) -> list[Row[Any]]:
    with db.read() as conn:
        rows = conn.execute(_query(account_id).order_by(audit_events.c.seq.desc()).limit(count))
        return list(reversed(rows.all()))


def _after(db: Database, account_id: str | None, seq: int) -> list[Row[Any]]:
    c = audit_events.c
    with db.read() as conn:
        query = _query(account_id).where(c.seq > seq).order_by(c.seq).limit(FOLLOW_BATCH)
        return list(conn.execute(query).all())


class _Printer:
    """Table rows (column widths fixed by the first rows printed) or JSON lines."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.widths: dict[str, int] | None = None

    def print(self, rows: Sequence[Row[Any]]) -> None:
        if self.output == "json":
            for r in rows:
                click.echo(r.record)  # the record exactly as stored: one JSON object
            return
        cells = [
            {
                "EventTime": r.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "AccountId": r.account_id,
                "EventSource": r.event_source,
                "EventName": r.event_name,
                "PrincipalArn": r.principal_arn or "",
                "ErrorCode": r.error_code or "",
            }
            for r in rows
        ]
        if self.widths is None:
            self.widths = {c: max([len(c), *(len(row[c]) for row in cells)]) for c in _TAIL_COLUMNS}
            self._line({c: c for c in _TAIL_COLUMNS})
        for row in cells:
            self._line(row)

    def _line(self, row: dict[str, str]) -> None:
        assert self.widths is not None
        click.echo("  ".join(row[c].ljust(self.widths[c]) for c in _TAIL_COLUMNS).rstrip())


@audit.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they commit")
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(0, 100_000),
    default=20,
    show_default=True,
    help="How many of the newest events to print first",
)
@click.option("--account", "account_id", default=None, help="Only this account's events")
@DATA_DIR_OPTION
@DATABASE_OPTION
@OUTPUT_OPTION
def tail(
    follow: bool,
    count: int,
    account_id: str | None,
    data_dir: Path,
    database: str | None,
    output: str,
) -> None:
    """Print the newest audit events, oldest first; with --follow, then new ones.

    Table: time, account, event source, event name, principal ARN, error code. JSON:
    one record per line. --follow polls every half second for records past the last
    one printed (in seq order, which is commit order: appends take turns on the chain
    head); stop it with Ctrl-C.
    """
    printer = _Printer(output)
    with _database(data_dir, database) as (db, journal):
        journal.catch_up()
        try:
            rows = _newest(db, account_id, count) if count else []
            if rows or not follow:
                printer.print(rows)
            if not follow:
                return
            last_seq = rows[-1].seq if rows else _head_seq(db)
            while True:
                rows = _after(db, account_id, last_seq)
                if rows:
                    printer.print(rows)
                    last_seq = rows[-1].seq
                if len(rows) < FOLLOW_BATCH:
                    time.sleep(FOLLOW_INTERVAL_SECONDS)
        except KeyboardInterrupt:
            return
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python's own flush
            # of stdout at exit from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _head_seq(db: Database) -> int:
    with db.read() as conn:
        return audit_repo.chain_state(conn)[0]
