"""CloudTrail trails, their delivery state, delivered files and digest signing keys ⇄ rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update

from sealbox.audit.trail_model import DeliveryState, Digest, LogFile, SigningKey, Trail
from sealbox.storage.tables import (
    audit_chain,
    audit_events,
    cloudtrail_digests,
    cloudtrail_log_files,
    cloudtrail_signing_keys,
    cloudtrail_trails,
)

T = cloudtrail_trails.c
F = cloudtrail_log_files.c
D = cloudtrail_digests.c
K = cloudtrail_signing_keys.c

CONFIG_COLUMNS = frozenset(
    {
        "s3_bucket", "s3_prefix", "include_global", "multi_region", "log_validation",
        "kms_key_id", "event_selectors", "advanced_selectors", "tags", "is_logging",
        "start_logging_time", "stop_logging_time",
    }
)  # fmt: skip
_JSON_COLUMNS = frozenset({"event_selectors", "advanced_selectors", "tags", "skipped", "pending"})


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _dump(v) if k in _JSON_COLUMNS else v for k, v in values.items()}


# -- trails ---------------------------------------------------------------------------------


def _trail(row: Row[Any]) -> Trail:
    return Trail(
        trail_id=row.trail_id,
        account_id=row.account_id,
        region=row.region,
        name=row.name,
        s3_bucket=row.s3_bucket,
        s3_prefix=row.s3_prefix,
        include_global=bool(row.include_global),
        multi_region=bool(row.multi_region),
        log_validation=bool(row.log_validation),
        kms_key_id=row.kms_key_id,
        event_selectors=_load(row.event_selectors),
        advanced_selectors=_load(row.advanced_selectors),
        tags=_load(row.tags) or {},
        created_at=row.created_at,
        is_logging=bool(row.is_logging),
        start_logging_time=row.start_logging_time,
        stop_logging_time=row.stop_logging_time,
    )


def _state(row: Row[Any]) -> DeliveryState:
    return DeliveryState(
        trail_id=row.trail_id,
        delivered_seq=int(row.delivered_seq),
        stop_seq=None if row.stop_seq is None else int(row.stop_seq),
        skipped=[(int(a), int(b)) for a, b in (_load(row.skipped) or [])],
        next_delivery_at=row.next_delivery_at,
        latest_delivery_time=row.latest_delivery_time,
        latest_delivery_attempt=row.latest_delivery_attempt,
        latest_delivery_error=row.latest_delivery_error,
        digest_epoch=int(row.digest_epoch),
        digest_start=row.digest_start,
        next_digest_at=row.next_digest_at,
        latest_digest_time=row.latest_digest_time,
        latest_digest_error=row.latest_digest_error,
        pending=_load(row.pending),
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
    )


def insert_trail(conn: Connection, trail: Trail, delivered_seq: int) -> None:
    conn.execute(
        insert(cloudtrail_trails).values(
            trail_id=trail.trail_id,
            account_id=trail.account_id,
            region=trail.region,
            name=trail.name,
            s3_bucket=trail.s3_bucket,
            s3_prefix=trail.s3_prefix,
            include_global=trail.include_global,
            multi_region=trail.multi_region,
            log_validation=trail.log_validation,
            kms_key_id=trail.kms_key_id,
            event_selectors=_dump(trail.event_selectors),
            advanced_selectors=_dump(trail.advanced_selectors),
            tags=_dump(trail.tags),
            created_at=trail.created_at,
            is_logging=trail.is_logging,
            delivered_seq=delivered_seq,
            digest_epoch=0,
        )
    )


def get_trail(conn: Connection, account_id: str, region: str, name: str) -> Trail | None:
    row = conn.execute(
        select(cloudtrail_trails).where(
            (T.account_id == account_id) & (T.region == region) & (T.name == name)
        )
    ).first()
    return None if row is None else _trail(row)


def get_trail_by_id(conn: Connection, trail_id: str) -> Trail | None:
    row = conn.execute(select(cloudtrail_trails).where(T.trail_id == trail_id)).first()
    return None if row is None else _trail(row)


def find_trails(conn: Connection, account_id: str, name: str) -> list[Trail]:
    """Every trail of the account with this name, in any region."""
    rows = conn.execute(
        select(cloudtrail_trails)
        .where((T.account_id == account_id) & (T.name == name))
        .order_by(T.region)
    )
    return [_trail(r) for r in rows]


def list_trails(conn: Connection, account_id: str) -> list[Trail]:
    rows = conn.execute(
        select(cloudtrail_trails).where(T.account_id == account_id).order_by(T.region, T.name)
    )
    return [_trail(r) for r in rows]


def count_trails(conn: Connection, account_id: str, region: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(cloudtrail_trails)
            .where((T.account_id == account_id) & (T.region == region))
        ).scalar_one()
    )


def update_trail(conn: Connection, trail_id: str, **values: Any) -> None:
    """Change configuration and/or delivery state columns of a trail (API transactions)."""
    conn.execute(update(cloudtrail_trails).where(T.trail_id == trail_id).values(**_values(values)))


def delete_trail(conn: Connection, trail_id: str) -> None:
    conn.execute(delete(cloudtrail_trails).where(T.trail_id == trail_id))


def get_state(conn: Connection, trail_id: str) -> DeliveryState | None:
    row = conn.execute(select(cloudtrail_trails).where(T.trail_id == trail_id)).first()
    return None if row is None else _state(row)


# -- delivery: who works on a trail -------------------------------------------------------


def due_trail_ids(conn: Connection, now: datetime) -> list[str]:
    """Trails with delivery or digest work due (or unfinished), whose lease is free."""
    rows = conn.execute(
        select(T.trail_id)
        .where(
            or_(
                T.pending.is_not(None),
                T.next_delivery_at <= now,
                and_(T.log_validation.is_(True), T.next_digest_at <= now),
            )
            & or_(T.lease_until.is_(None), T.lease_until < now)
        )
        .order_by(T.trail_id)
    )
    return [r.trail_id for r in rows]


def claim(conn: Connection, trail_id: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take the trail's lease if it is free: one atomic UPDATE, so one process wins."""
    result = conn.execute(
        update(cloudtrail_trails)
        .where((T.trail_id == trail_id) & or_(T.lease_until.is_(None), T.lease_until < now))
        .values(lease_owner=owner, lease_until=until)
    )
    return result.rowcount == 1


def update_leased(conn: Connection, trail_id: str, owner: str, **values: Any) -> bool:
    """Change delivery state only while owner still holds the lease."""
    result = conn.execute(
        update(cloudtrail_trails)
        .where((T.trail_id == trail_id) & (T.lease_owner == owner))
        .values(**_values(values))
    )
    return result.rowcount == 1


def release(conn: Connection, trail_id: str, owner: str) -> None:
    conn.execute(
        update(cloudtrail_trails)
        .where((T.trail_id == trail_id) & (T.lease_owner == owner))
        .values(lease_owner=None, lease_until=None)
    )


# -- delivery: the audit records to deliver ------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    region: str
    event_source: str
    principal_arn: str | None
    event_time: datetime
    record: str


def head_seq(conn: Connection, *, lock: bool = False) -> int:
    """The audit chain's last seq: every record up to it is committed."""
    query = select(audit_chain.c.last_seq).where(audit_chain.c.id == 1)
    if lock:
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one())


def events(conn: Connection, account_id: str, after: int, upto: int, limit: int) -> list[EventRow]:
    c = audit_events.c
    rows = conn.execute(
        select(c.seq, c.region, c.event_source, c.principal_arn, c.event_time, c.record)
        .where((c.account_id == account_id) & (c.seq > after) & (c.seq <= upto))
        .order_by(c.seq)
        .limit(limit)
    )
    return [
        EventRow(int(r.seq), r.region, r.event_source, r.principal_arn, r.event_time, r.record)
        for r in rows
    ]


def oldest_undelivered_time(conn: Connection) -> datetime | None:
    """The event time of the first record some trail still has to deliver, if any."""
    behind = conn.execute(
        select(func.min(T.delivered_seq)).where(
            or_(
                T.is_logging.is_(True),
                and_(T.stop_seq.is_not(None), T.delivered_seq < T.stop_seq),
            )
        )
    ).scalar()
    if behind is None:
        return None
    c = audit_events.c
    first: datetime | None = conn.execute(
        select(c.event_time).where(c.seq > int(behind)).order_by(c.seq).limit(1)
    ).scalar()
    return first


# -- delivered files ----------------------------------------------------------------------


def _log_file(row: Row[Any]) -> LogFile:
    return LogFile(
        id=int(row.id),
        trail_id=row.trail_id,
        region=row.region,
        bucket=row.bucket,
        key=row.object_key,
        sha256=row.sha256,
        oldest_event_time=row.oldest_event_time,
        newest_event_time=row.newest_event_time,
        delivered_at=row.delivered_at,
        digest_id=None if row.digest_id is None else int(row.digest_id),
    )


def insert_log_file(
    conn: Connection,
    trail_id: str,
    region: str,
    bucket: str,
    key: str,
    sha256: str,
    oldest: datetime | None,
    newest: datetime | None,
    delivered_at: datetime,
    digest_id: int | None,
) -> None:
    conn.execute(
        insert(cloudtrail_log_files).values(
            trail_id=trail_id,
            region=region,
            bucket=bucket,
            object_key=key,
            sha256=sha256,
            oldest_event_time=oldest,
            newest_event_time=newest,
            delivered_at=delivered_at,
            digest_id=digest_id,
        )
    )


def undigested_files(conn: Connection, trail_id: str, region: str) -> list[LogFile]:
    rows = conn.execute(
        select(cloudtrail_log_files)
        .where((F.trail_id == trail_id) & (F.region == region) & F.digest_id.is_(None))
        .order_by(F.id)
    )
    return [_log_file(r) for r in rows]


def has_undigested_files(conn: Connection, trail_id: str) -> bool:
    return (
        conn.execute(
            select(F.id).where((F.trail_id == trail_id) & F.digest_id.is_(None)).limit(1)
        ).first()
        is not None
    )


def log_regions(conn: Connection, trail_id: str) -> set[str]:
    rows = conn.execute(select(F.region).where(F.trail_id == trail_id).distinct())
    return {r.region for r in rows}


def mark_files(conn: Connection, ids: Sequence[int], digest_id: int) -> None:
    if ids:
        conn.execute(
            update(cloudtrail_log_files)
            .where(F.id.in_(list(ids)) & F.digest_id.is_(None))
            .values(digest_id=digest_id)
        )


def never_digest(conn: Connection, trail_id: str) -> None:
    """Files delivered while validation was off are in no digest, now or later."""
    conn.execute(
        update(cloudtrail_log_files)
        .where((F.trail_id == trail_id) & F.digest_id.is_(None))
        .values(digest_id=0)
    )


def files_of_digest(conn: Connection, digest_id: int) -> list[LogFile]:
    rows = conn.execute(select(cloudtrail_log_files).where(F.digest_id == digest_id).order_by(F.id))
    return [_log_file(r) for r in rows]


def files_outside_digests(
    conn: Connection, after_id: int, limit: int, since: datetime | None, until: datetime | None
) -> list[LogFile]:
    """Delivered files no digest covers (yet, or ever), in delivery order."""
    query = select(cloudtrail_log_files).where(
        (F.id > after_id) & or_(F.digest_id.is_(None), F.digest_id == 0)
    )
    if since is not None:
        query = query.where(F.delivered_at >= since)
    if until is not None:
        query = query.where(F.delivered_at <= until)
    rows = conn.execute(query.order_by(F.id).limit(limit))
    return [_log_file(r) for r in rows]


def _digest(row: Row[Any]) -> Digest:
    return Digest(
        id=int(row.id),
        trail_id=row.trail_id,
        region=row.region,
        epoch=int(row.epoch),
        account_id=row.account_id,
        start_time=row.start_time,
        end_time=row.end_time,
        bucket=row.bucket,
        key=row.object_key,
        sha256=row.sha256,
        signature=row.signature,
        fingerprint=row.fingerprint,
    )


def insert_digest(conn: Connection, digest: Digest) -> int:
    result = conn.execute(
        insert(cloudtrail_digests).values(
            trail_id=digest.trail_id,
            region=digest.region,
            epoch=digest.epoch,
            account_id=digest.account_id,
            start_time=digest.start_time,
            end_time=digest.end_time,
            bucket=digest.bucket,
            object_key=digest.key,
            sha256=digest.sha256,
            signature=digest.signature,
            fingerprint=digest.fingerprint,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def last_digest(conn: Connection, trail_id: str, region: str, epoch: int) -> Digest | None:
    row = conn.execute(
        select(cloudtrail_digests)
        .where((D.trail_id == trail_id) & (D.region == region) & (D.epoch == epoch))
        .order_by(D.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _digest(row)


def digests_after(conn: Connection, after_id: int, limit: int) -> list[Digest]:
    """Every digest (of every trail, deleted ones too) in delivery order."""
    rows = conn.execute(
        select(cloudtrail_digests).where(D.id > after_id).order_by(D.id).limit(limit)
    )
    return [_digest(r) for r in rows]


# -- signing keys ---------------------------------------------------------------------------


def _key(row: Row[Any]) -> SigningKey:
    return SigningKey(
        region=row.region,
        generation=int(row.generation),
        fingerprint=row.fingerprint,
        public_key=bytes(row.public_key),
        wrapped_private_key=bytes(row.wrapped_private_key),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


def current_key(conn: Connection, region: str) -> SigningKey | None:
    row = conn.execute(
        select(cloudtrail_signing_keys)
        .where((K.region == region) & K.valid_to.is_(None))
        .order_by(K.generation.desc())
        .limit(1)
    ).first()
    return None if row is None else _key(row)


def insert_key(conn: Connection, key: SigningKey) -> None:
    conn.execute(
        insert(cloudtrail_signing_keys).values(
            region=key.region,
            generation=key.generation,
            fingerprint=key.fingerprint,
            public_key=key.public_key,
            wrapped_private_key=key.wrapped_private_key,
            valid_from=key.valid_from,
            valid_to=key.valid_to,
        )
    )


def keys_in_range(
    conn: Connection, region: str, start: datetime | None, end: datetime | None
) -> list[SigningKey]:
    """The region's keys valid at some time in [start, end] (either end open)."""
    query = select(cloudtrail_signing_keys).where(K.region == region)
    if end is not None:
        query = query.where(K.valid_from <= end)
    if start is not None:
        query = query.where(or_(K.valid_to.is_(None), K.valid_to >= start))
    return [_key(r) for r in conn.execute(query.order_by(K.generation))]


def keys_by_fingerprint(conn: Connection, fingerprints: Iterable[str]) -> dict[str, SigningKey]:
    wanted = sorted(set(fingerprints))
    if not wanted:
        return {}
    rows = conn.execute(select(cloudtrail_signing_keys).where(K.fingerprint.in_(wanted)))
    return {r.fingerprint: _key(r) for r in rows}
