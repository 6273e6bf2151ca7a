"""CloudTrail LookupEvents over a big audit table: first-page latency per filter.

Builds a throw-away data directory (migrations applied), bulk-inserts `--events`
(default 1,000,000) synthetic KMS audit events — ~1,000 keys with a skewed load, a
handful of users, roles and the root, 90 days of history, plus a small second account
— straight into audit_events with executemany, then times `LookupService.lookup_events`
(one page of 50, as the API serves it) per filter. Target: every lookup < 200 ms; the
PASS/FAIL lines are for ResourceName (median of 20 different keys), Username and
EventName. On SQLite it also prints the query plan of each filter. Run from the
repository root:

    python bench/audit_lookup.py [--events 1000000] [--keys 1000] [--postgres URL]

Everything it creates (the temporary directory; with --postgres, a schema of its own)
is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sealbox import arn as arns
from sealbox.audit.lookup import LookupResult
from sealbox.call import Call
from sealbox.clock import SystemClock
from sealbox.config import Settings
from sealbox.iam.model import Principal
from sealbox.server.runtime import Runtime
from sealbox.storage.audit_lookup_repo import Criteria
from sealbox.storage.db import Database

TARGET_MS = 200.0
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "us-east-1"
BATCH = 50_000

# (event name, read only, weight): a KMS-heavy workload.
OPERATIONS = [
    ("Decrypt", True, 40),
    ("GenerateDataKey", True, 30),
    ("Encrypt", True, 18),
    ("DescribeKey", True, 6),
    ("ReEncrypt", True, 2),
    ("GetKeyPolicy", True, 1),
    ("ListAliases", True, 1),
    ("EnableKeyRotation", False, 1),
    ("PutKeyPolicy", False, 0.5),
    ("CreateKey", False, 0.3),
    ("ScheduleKeyDeletion", False, 0.05),
]
USERS = ["alice", "bob", "carol", "deploy-bot", "backup-svc", "analytics"]
ROLES = [("app", "i-0a1b2c3d"), ("reader", "etl-run"), ("s3-writer", "batch-7")]
COLUMNS = (
    "event_id", "event_time", "account_id", "region", "event_source", "event_name",
    "access_key_id", "principal_arn", "resource_arn", "error_code", "read_only", "record",
    "username", "chain_hash",
)  # fmt: skip


@dataclass(frozen=True)
class Actor:
    kind: str  # Root | IAMUser | AssumedRole
    arn: str
    principal_id: str
    access_key_id: str
    username: str


def actors(account: str, rng: random.Random) -> list[Actor]:
    def key_id() -> str:
        return "AKIA" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))

    out = [Actor("Root", arns.account_root_arn(account), account, key_id(), "root")]
    for name in USERS:
        uid = "AIDA" + uuid.UUID(int=rng.getrandbits(128)).hex[:17].upper()
        out.append(Actor("IAMUser", arns.iam_arn(account, f"user/{name}"), uid, key_id(), name))
    for role, session in ROLES:
        rid = "AROA" + uuid.UUID(int=rng.getrandbits(128)).hex[:17].upper()
        out.append(
            Actor(
                "AssumedRole",
                arns.sts_session_arn(account, role, session),
                f"{rid}:{session}",
                "ASIA" + key_id()[4:],
                session,
            )
        )
    return out


def resource_type(resource_arn: str) -> str:
    return "AWS::S3::Object" if resource_arn.startswith("arn:aws:s3:") else "AWS::KMS::Key"


def record(
    actor: Actor, account: str, name: str, read_only: bool, key_arn: str | None, when: datetime,
    event_id: str, error: str | None, rng: random.Random,
) -> dict[str, Any]:  # fmt: skip
    """A record shaped as sealbox.audit.model.build_event writes it."""
    identity: dict[str, Any] = {
        "type": actor.kind,
        "principalId": actor.principal_id,
        "arn": actor.arn,
        "accountId": account,
        "accessKeyId": actor.access_key_id,
    }
    if actor.kind == "IAMUser":
        identity["userName"] = actor.username
    params: dict[str, Any] | None = None
    if key_arn is not None:
        params = {"keyId": key_arn}
        if name in ("Decrypt", "Encrypt", "GenerateDataKey", "ReEncrypt"):
            params["encryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
            params["encryptionContext"] = {"tenant": f"t{rng.randrange(50)}"}
        if name == "GenerateDataKey":
            params["keySpec"] = "AES_256"
    rec: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": identity,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1 lang/python#3.11.9",
        "requestParameters": params,
        "responseElements": None,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": event_id,
        "readOnly": read_only,
        "resources": [] if key_arn is None else [
            {"accountId": account, "type": resource_type(key_arn), "ARN": key_arn}
        ],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }  # fmt: skip
    if error is not None:
        rec["errorCode"] = error
        rec["errorMessage"] = f"User: {actor.arn} is not authorized to perform: kms:{name}"
    return rec


def key_arns(n_keys: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [arns.key_arn(REGION, ACCOUNT, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            for _ in range(n_keys)]  # fmt: skip


def synthetic_rows(
    n: int, keys: Sequence[str], other: int, seed: int, sqlite: bool
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of rows (column order COLUMNS), oldest first, chain-hashed."""
    rng = random.Random(seed + 1)
    n_keys = len(keys)
    other_keys = [
        arns.key_arn(REGION, OTHER_ACCOUNT, str(uuid.UUID(int=rng.getrandbits(128))))
        for _ in range(10)
    ]
    key_weights = [1.0 / (i + 1) ** 0.8 for i in range(n_keys)]  # a few hot keys, a long tail
    main_actors, other_actors = actors(ACCOUNT, rng), actors(OTHER_ACCOUNT, rng)
    actor_weights = [2] + [10] * len(USERS) + [25] * len(ROLES)
    names = [o[0] for o in OPERATIONS]
    read_only = {o[0]: o[1] for o in OPERATIONS}
    op_weights = [o[2] for o in OPERATIONS]
    total = n + other
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    step = timedelta(days=90) / total
    when = end - timedelta(days=90)
    previous = bytes(32)
    batch: list[tuple[Any, ...]] = []
    for i in range(total):
        in_other = rng.random() < other / total
        account = OTHER_ACCOUNT if in_other else ACCOUNT
        actor = rng.choices(other_actors if in_other else main_actors, actor_weights)[0]
        name = rng.choices(names, op_weights)[0]
        if name in ("ListAliases",):
            key = None
        elif in_other and rng.random() < 0.1:  # S3 objects: only this account has them
            key = f"arn:aws:s3:::reports-{OTHER_ACCOUNT}/2024/{rng.randrange(10**6)}.csv"
        elif in_other:
            key = rng.choice(other_keys)
        else:
            key = rng.choices(keys, key_weights)[0]
        error = "AccessDenied" if rng.random() < 0.01 else None
        when = when + step
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        text = orjson.dumps(
            record(actor, account, name, read_only[name], key, when, event_id, error, rng)
        ).decode()
        previous = hashlib.sha256(previous + text.encode()).digest()
        naive = when.replace(tzinfo=None)
        batch.append(
            (
                event_id,
                naive.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when,
                account, REGION, "kms.amazonaws.com", name, actor.access_key_id, actor.arn,
                key, error, int(read_only[name]) if sqlite else read_only[name], text,
                actor.username, previous,
            )
        )  # fmt: skip
        if len(batch) == BATCH or i == total - 1:
            yield batch
            batch = []


def bulk_load(db: Database, args: argparse.Namespace) -> tuple[list[str], float]:
    """Load the events; returns the main account's key ARNs and the seconds it took."""
    insert = "INSERT INTO audit_events ({}) VALUES ({})".format(  # noqa: S608 - constants
        ", ".join(COLUMNS), ", ".join(["?" if db.is_sqlite else "%s"] * len(COLUMNS))
    )
    started = time.perf_counter()
    keys = key_arns(args.keys, args.seed)
    loaded = 0
    raw = db.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if db.is_sqlite:
            driver.execute("PRAGMA synchronous=OFF")  # a throw-away database
        for rows in synthetic_rows(args.events, keys, args.other, args.seed, db.is_sqlite):
            cur = driver.cursor()
            if db.is_sqlite:
                driver.execute("BEGIN")
            cur.executemany(insert, rows)
            driver.commit()
            cur.close()
            loaded += len(rows)
            print(f"\r  loaded {loaded:,} events", end="", file=sys.stderr, flush=True)
        if not db.is_sqlite or args.analyze:
            # PostgreSQL's autovacuum gathers statistics by itself; Sealbox never runs
            # ANALYZE on SQLite, so by default the plans here are the ones it gets.
            cur = driver.cursor()
            cur.execute("ANALYZE" if db.is_sqlite else "ANALYZE audit_events")
            driver.commit()
            cur.close()
    finally:
        raw.close()
    print(file=sys.stderr)
    return keys, time.perf_counter() - started


def root_call(account: str = ACCOUNT) -> Call:
    return Call(
        principal=Principal(
            account_id=account,
            arn=arns.account_root_arn(account),
            principal_type="Root",
            principal_id=account,
        ),
        region=REGION,
        event_source="cloudtrail.amazonaws.com",
        event_name="LookupEvents",
        request_id="bench",
        read_only=True,
    )


def timed(fn: Callable[[], LookupResult]) -> tuple[float, LookupResult]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def query_plan(rt: Runtime, criteria: Criteria, by_time: bool) -> str:
    from sqlalchemy.dialects import sqlite

    from sealbox.storage.audit_lookup_repo import lookup_query

    query = lookup_query(criteria, None, 51, by_time=by_time, sqlite=True)
    assert query is not None
    compiled = query.compile(dialect=sqlite.dialect())
    binds = []
    for name in compiled.positiontup or ():
        value = compiled.params[name]
        if isinstance(value, datetime):  # as UtcDateTime stores it on SQLite
            value = value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        binds.append(int(value) if isinstance(value, bool) else value)
    raw = rt.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("EXPLAIN QUERY PLAN " + str(compiled), binds)
        plan = cur.fetchall()
        cur.close()
    finally:
        raw.close()
    return "; ".join(str(row[3]) for row in plan)


def run(rt: Runtime, keys: Sequence[str], samples: int) -> bool:
    svc = rt.lookup
    call = root_call()
    step = max(1, len(keys) // samples)
    sample_keys = keys[::step][:samples]
    ok = True

    def report(label: str, times: list[float], gate: bool, events: int) -> None:
        nonlocal ok
        median = statistics.median(times)
        verdict = ""
        if gate:
            passed = median < TARGET_MS
            ok = ok and passed
            verdict = "PASS" if passed else "FAIL"
        print(
            f"  {label:<44} median {median:7.2f} ms  max {max(times):7.2f} ms"
            f"  ({len(times)} queries, {events} events on the last page)  {verdict}"
        )

    def measure(label: str, makers: Sequence[Callable[[], LookupResult]], gate: bool) -> None:
        times, last = [], None
        for make in makers:
            ms, last = timed(make)
            times.append(ms)
        assert last is not None
        report(label, times, gate, len(last.events))

    def attr(key: str, value: str, **kw: Any) -> Callable[[], LookupResult]:
        return lambda: svc.lookup_events(call, [(key, value)], **kw)

    print(f"first page (MaxResults 50) per filter; target < {TARGET_MS:.0f} ms")
    measure("ResourceName = key ARN (20 keys)", [attr("ResourceName", k) for k in sample_keys],
            True)  # fmt: skip
    measure(
        "ResourceName = key id (20 keys)",
        [attr("ResourceName", k.rsplit("/", 1)[1]) for k in sample_keys],
        False,
    )
    measure("Username (each user, root, session)",
            [attr("Username", u) for u in [*USERS, "root", "etl-run"] * 3], True)  # fmt: skip
    measure("EventName (each operation)",
            [attr("EventName", o[0]) for o in OPERATIONS] * 2, True)  # fmt: skip
    others = [
        ("EventId", lambda: svc.lookup_events(call, [("EventId", rng_event_id(rt))])),
        ("ReadOnly = false", attr("ReadOnly", "false")),
        ("ReadOnly = true", attr("ReadOnly", "true")),
        ("EventSource = kms.amazonaws.com", attr("EventSource", "kms.amazonaws.com")),
        ("AccessKeyId (a user's)", attr("AccessKeyId", access_key_of(rt, "alice"))),
        ("ResourceType = AWS::KMS::Key", attr("ResourceType", "AWS::KMS::Key")),
        ("no attribute", lambda: svc.lookup_events(call)),
        ("no attribute, other (small) account",
         lambda: svc.lookup_events(root_call(OTHER_ACCOUNT))),
    ]  # fmt: skip
    for label, make in others:
        measure(label, [make] * 10, False)
    day = datetime.now(UTC) - timedelta(days=30)
    measure(
        "ResourceName + a one-day window 30 days ago",
        [attr("ResourceName", k, start=day, end=day + timedelta(days=1)) for k in sample_keys],
        False,
    )
    measure(
        "Username + the last hour",
        [attr("Username", u, start=datetime.now(UTC) - timedelta(hours=1)) for u in USERS],
        False,
    )
    month_ago = datetime.now(UTC) - timedelta(days=30)
    print("known slow shapes (see storage/audit_lookup_repo.py):")
    measure(
        "EventName + a 7-day window 30 days ago",
        [
            attr("EventName", o[0], start=month_ago, end=month_ago + timedelta(days=7))
            for o in OPERATIONS[:3]
        ],
        False,
    )
    measure("ResourceType no event has", [attr("ResourceType", "AWS::EC2::Volume")] * 3, False)
    measure(
        "ResourceType only the other account has",
        [attr("ResourceType", "AWS::S3::Object")] * 3,
        False,
    )
    hot = keys[0]
    first = svc.lookup_events(call, [("ResourceName", hot)], max_results=50)
    measure(
        "ResourceName, page 2 via NextToken (hot key)",
        [lambda: svc.lookup_events(call, [("ResourceName", hot)], next_token=first.next_token)]
        * 10,
        False,
    )
    return ok


def rng_event_id(rt: Runtime) -> str:
    row = rt.db.fast_row("SELECT event_id FROM audit_events WHERE seq = ?", (12345,))
    assert row is not None
    return str(row[0])


def access_key_of(rt: Runtime, user: str) -> str:
    row = rt.db.fast_row(
        "SELECT access_key_id FROM audit_events WHERE account_id = ? AND username = ? LIMIT 1",
        (ACCOUNT, user),
    )
    assert row is not None
    return str(row[0])


def print_plans(rt: Runtime, keys: Sequence[str]) -> None:
    day = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    cases = {
        "ResourceName": Criteria(ACCOUNT, "resource_arn", (keys[0],)),
        "ResourceName (2 ARNs)": Criteria(
            ACCOUNT, "resource_arn", (keys[0], keys[0].replace(REGION, "eu-west-1"))
        ),
        "Username": Criteria(ACCOUNT, "username", ("alice",)),
        "EventName": Criteria(ACCOUNT, "event_name", ("Decrypt",)),
        "EventId": Criteria(ACCOUNT, "event_id", ("x",)),
        "ReadOnly": Criteria(ACCOUNT, "read_only", (False,)),
        "EventSource": Criteria(ACCOUNT, "event_source", ("kms.amazonaws.com",)),
        "AccessKeyId": Criteria(ACCOUNT, "access_key_id", ("AKIA",)),
        "ResourceType": Criteria(ACCOUNT, arn_prefix="arn:aws:kms:"),
        "none": Criteria(ACCOUNT),
        "time range": Criteria(ACCOUNT, start=day[0], end=day[1]),
        "Username + time range": Criteria(
            ACCOUNT, "username", ("alice",), start=day[0], end=day[1]
        ),
        "ResourceName + time": Criteria(
            ACCOUNT, "resource_arn", (keys[0],), start=day[0], end=day[1]
        ),
    }
    print("query plans (SQLite; with a time range: wide window / narrow window):")
    for label, criteria in cases.items():
        print(f"  {label:<22} {query_plan(rt, criteria, False)}")
        if criteria.start is not None:
            print(f"  {'':<22} {query_plan(rt, criteria, True)}")


@contextlib.contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    import psycopg

    schema = f"sbx_bench_{uuid.uuid4().hex[:10]}"
    plain = base_url.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in base_url else "?"
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--other", type=int, default=10_000, help="events of a second account")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--analyze", action="store_true", help="SQLite: ANALYZE after loading")
    p.add_argument("--postgres", metavar="URL", help="e.g. postgresql+psycopg://u@host/db")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sealbox-lookup-")))
        url = stack.enter_context(postgres_schema(args.postgres)) if args.postgres else None
        settings = Settings(data_dir=tmp, database_url=url)
        migrator = Database.for_migrations(settings.resolved_database_url)
        migrator.migrate()
        migrator.dispose()
        rt = Runtime.build(settings, clock=SystemClock())
        stack.callback(rt.close)
        backend = "PostgreSQL" if url else "SQLite"
        print(f"loading {args.events:,} events ({args.keys:,} keys) + {args.other:,} of "
              f"another account into {backend}...")  # fmt: skip
        keys, seconds = bulk_load(rt.db, args)
        total = args.events + args.other
        print(f"  {total:,} events in {seconds:.1f} s ({total / seconds:,.0f} events/s)")
        if rt.db.is_sqlite:
            size = sum(f.stat().st_size for f in tmp.glob("*.db*"))
            print(f"  database size {size / 2**20:,.0f} MiB")
            print_plans(rt, keys)
        ok = run(rt, keys, args.samples)
    print("PASS" if ok else "FAIL", f"(ResourceName, Username, EventName < {TARGET_MS:.0f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
