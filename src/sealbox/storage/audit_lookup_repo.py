"""LookupEvents' query over audit_events: newest first, one page at a time.

Every query is confined to one account and walks one index in seq order, descending,
stopping after `limit` matches, so a page costs about `limit` index steps and row reads
whatever the table's size. The filter picks the index:

    no attribute                     ix_audit_account_seq
    EventId                          the unique index on event_id
    EventName / Username             ix_audit_account_name / ix_audit_account_user
    EventSource / ReadOnly           ix_audit_account_seq (few values: matches come soon)
    AccessKeyId                      ix_audit_account_key
    ResourceName                     ix_audit_resource, once per candidate ARN
    ResourceType                     ix_audit_account_seq, the ARN prefix checked per row

A time range cannot bound a walk in seq order (seq order is not time order across
workers or clock changes), so it is checked per row, unless the window is small: two
probes of ix_audit_time estimate how many events it holds, and at most
TIME_INDEX_ROWS of them are read through ix_audit_time, filtered and sorted instead.
What remains slow: a wide window far in the past of a busy filter (the walk passes the
filter's newer events first), and a ResourceType that few of the account's events have
(a type no event of any account has is answered by one probe of ix_audit_resource).

SQLite, which has no statistics unless ANALYZE ran, is told which index to take with
likely(): a term wrapped in it still filters but looks unselective to the planner.
PostgreSQL's planner decides from its own statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, Select, func, select, true, union, union_all

from sealbox.storage.tables import audit_events, kms_deleted_keys, kms_keys

FilterColumn = Literal[
    "event_id",
    "event_name",
    "read_only",
    "username",
    "resource_arn",
    "event_source",
    "access_key_id",
]

_t = audit_events.c
_COLUMNS: Final = (
    _t.seq,
    _t.event_id,
    _t.event_time,
    _t.event_source,
    _t.event_name,
    _t.access_key_id,
    _t.username,
    _t.read_only,
    _t.record,
)


@dataclass(frozen=True, slots=True)
class Criteria:
    """What to look up. `values` are alternatives for `column` (a resource can have
    several ARNs); `start` is inclusive and `end` exclusive."""

    account_id: str
    column: FilterColumn | None = None
    values: tuple[Any, ...] = ()
    arn_prefix: str | None = None  # ResourceType: resource ARNs that start with this
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class LookupRow:
    seq: int
    event_id: str
    event_time: datetime
    event_source: str
    event_name: str
    access_key_id: str | None
    username: str | None
    read_only: bool
    record: str  # the CloudTrail-shaped JSON record, as stored


# A time window holding at most this many events (estimated) is read through ix_audit_time.
TIME_INDEX_ROWS: Final = 20_000


def _window_rows(conn: Connection, criteria: Criteria, before_seq: int | None) -> int | None:
    """About how many events (of any account) lie in criteria's time window: the seq
    distance between its first and last event of the account. None without a window."""
    if criteria.start is None and criteria.end is None:
        return None

    def first_seq(where: ColumnElement[bool], order: Any) -> int | None:
        query = select(_t.seq).where(_t.account_id == criteria.account_id, where)
        seq = conn.execute(query.order_by(order).limit(1)).scalar()
        return None if seq is None else int(seq)

    if criteria.start is None:
        low = first_seq(true(), _t.seq.asc())
    else:
        low = first_seq(_t.event_time >= criteria.start, _t.event_time.asc())
    if criteria.end is None:
        high = first_seq(true(), _t.seq.desc())
    else:
        high = first_seq(_t.event_time < criteria.end, _t.event_time.desc())
    if low is None or high is None:
        return 0
    if before_seq is not None:
        high = min(high, before_seq - 1)
    return max(0, high - low + 1)


def _any_arn_with_prefix(conn: Connection, prefix: str) -> bool:
    """Does any event (of any account) name a resource whose ARN starts with prefix?"""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    query = select(_t.seq).where(_t.resource_arn >= prefix, _t.resource_arn < upper).limit(1)
    return conn.execute(query).first() is not None


def lookup_query(
    criteria: Criteria,
    before_seq: int | None,
    limit: int,
    *,
    by_time: bool = False,
    sqlite: bool = False,
) -> Select[Any] | None:
    """The statement `lookup` runs (None: nothing can match). by_time: read the window
    through ix_audit_time; sqlite: add the planner hints SQLite needs."""

    def hint(term: ColumnElement[bool]) -> ColumnElement[bool]:
        return func.likely(term, type_=term.type) if sqlite else term

    by_time = by_time and (criteria.start is not None or criteria.end is not None)
    column = None if criteria.column is None else _t[criteria.column]
    account = _t.account_id == criteria.account_id
    if column is _t.resource_arn and not by_time:
        account = hint(account)  # else ix_audit_account_seq looks as good as ix_audit_resource
    base = select(*_COLUMNS).where(account)
    time_terms = []
    if criteria.start is not None:
        time_terms.append(_t.event_time >= criteria.start)
    if criteria.end is not None:
        time_terms.append(_t.event_time < criteria.end)
    for term in time_terms:
        base = base.where(term if by_time else hint(term))
    if before_seq is not None:
        after = _t.seq < before_seq
        base = base.where(hint(after) if by_time else after)
    if criteria.arn_prefix is not None:
        base = base.where(_t.resource_arn.startswith(criteria.arn_prefix, autoescape=True))
    if column is None:
        return base.order_by(_t.seq.desc()).limit(limit)
    if not criteria.values:
        return None
    pages = [
        base.where(hint(column == value) if by_time else column == value)
        .order_by(_t.seq.desc())
        .limit(limit)
        for value in dict.fromkeys(criteria.values)
    ]
    if len(pages) == 1:
        return pages[0]
    # One index walk per alternative, each stopped after `limit` rows, then merged.
    merged = union_all(*(select(page.subquery()) for page in pages)).subquery()
    return select(merged).order_by(merged.c.seq.desc()).limit(limit)


def lookup(
    conn: Connection, criteria: Criteria, before_seq: int | None, limit: int
) -> list[LookupRow]:
    """Up to `limit` events matching criteria with seq < before_seq, newest first."""
    if criteria.arn_prefix is not None and not _any_arn_with_prefix(conn, criteria.arn_prefix):
        return []  # a type no event has: answered by one probe, not a walk of the account
    window = None if criteria.column == "event_id" else _window_rows(conn, criteria, before_seq)
    query = lookup_query(
        criteria,
        before_seq,
        limit,
        by_time=window is not None and window <= TIME_INDEX_ROWS,
        sqlite=conn.dialect.name == "sqlite",
    )
    if query is None:
        return []
    return [
        LookupRow(
            seq=int(r.seq),
            event_id=r.event_id,
            event_time=r.event_time,
            event_source=r.event_source,
            event_name=r.event_name,
            access_key_id=r.access_key_id,
            username=r.username,
            read_only=bool(r.read_only),
            record=r.record,
        )
        for r in conn.execute(query)
    ]


def kms_key_regions(conn: Connection, account_id: str, key_id: str) -> list[str]:
    """The regions where the account has, or had, a KMS key with this id (a multi-Region
    key has the same id in every region of its set)."""
    rows = conn.execute(
        union(
            select(kms_keys.c.region).where(
                (kms_keys.c.account_id == account_id) & (kms_keys.c.key_id == key_id)
            ),
            select(kms_deleted_keys.c.region).where(
                (kms_deleted_keys.c.account_id == account_id)
                & (kms_deleted_keys.c.key_id == key_id)
            ),
        )
    )
    return sorted(str(r[0]) for r in rows)
