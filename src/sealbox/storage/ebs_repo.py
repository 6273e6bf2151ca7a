"""EBS settings, service keys, volumes, snapshots, their blocks and tags ⇄ rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, select, update

from sealbox.ebs.model import (
    Attachment,
    BlockRef,
    EbsSettings,
    Keying,
    Snapshot,
    StoredBlock,
    Volume,
)
from sealbox.storage.db import FastConnection
from sealbox.storage.tables import (
    ebs_blocks,
    ebs_service_keys,
    ebs_settings,
    ebs_snapshot_blocks,
    ebs_snapshots,
    ebs_tags,
    ebs_volumes,
)

# -- account settings -----------------------------------------------------------------------


def get_settings(conn: Connection, account_id: str, region: str) -> EbsSettings:
    row = conn.execute(
        select(ebs_settings).where(
            and_(ebs_settings.c.account_id == account_id, ebs_settings.c.region == region)
        )
    ).first()
    if row is None:
        return EbsSettings(False, None)
    return EbsSettings(bool(row.encryption_by_default), row.default_kms_key_id)


def put_settings(
    conn: Connection, account_id: str, region: str, settings: EbsSettings, now: datetime
) -> None:
    where = and_(ebs_settings.c.account_id == account_id, ebs_settings.c.region == region)
    values = {
        "encryption_by_default": settings.encryption_by_default,
        "default_kms_key_id": settings.default_kms_key_id,
        "updated_at": now,
    }
    if conn.execute(update(ebs_settings).where(where).values(**values)).rowcount == 0:
        conn.execute(ebs_settings.insert().values(account_id=account_id, region=region, **values))


def get_service_key(conn: Connection, account_id: str) -> bytes | None:
    row = conn.execute(
        select(ebs_service_keys.c.wrapped_key).where(ebs_service_keys.c.account_id == account_id)
    ).first()
    return None if row is None else bytes(row.wrapped_key)


def insert_service_key(conn: Connection, account_id: str, wrapped: bytes, now: datetime) -> None:
    conn.execute(
        ebs_service_keys.insert().values(account_id=account_id, wrapped_key=wrapped, created_at=now)
    )


# -- tags -----------------------------------------------------------------------------------


def tags_of(conn: Connection, resource_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {rid: {} for rid in resource_ids}
    for start in range(0, len(resource_ids), 500):
        chunk = list(resource_ids[start : start + 500])
        rows = conn.execute(
            select(ebs_tags.c.resource_id, ebs_tags.c.tag_key, ebs_tags.c.tag_value)
            .where(ebs_tags.c.resource_id.in_(chunk))
            .order_by(ebs_tags.c.resource_id, ebs_tags.c.tag_key)
        )
        for row in rows:
            out[row.resource_id][row.tag_key] = row.tag_value
    return out


def set_tags(
    conn: Connection,
    account_id: str,
    region: str,
    resource_type: str,
    resource_id: str,
    tags: dict[str, str],
) -> None:
    for key, value in tags.items():
        where = and_(ebs_tags.c.resource_id == resource_id, ebs_tags.c.tag_key == key)
        if conn.execute(update(ebs_tags).where(where).values(tag_value=value)).rowcount == 0:
            conn.execute(
                ebs_tags.insert().values(
                    resource_id=resource_id,
                    tag_key=key,
                    tag_value=value,
                    account_id=account_id,
                    region=region,
                    resource_type=resource_type,
                )
            )


def count_tags(conn: Connection, resource_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(ebs_tags).where(ebs_tags.c.resource_id == resource_id)
        ).scalar_one()
    )


def delete_tag(conn: Connection, resource_id: str, key: str, value: str | None) -> None:
    cond = and_(ebs_tags.c.resource_id == resource_id, ebs_tags.c.tag_key == key)
    if value is not None:
        cond = and_(cond, ebs_tags.c.tag_value == value)
    conn.execute(delete(ebs_tags).where(cond))


def delete_all_tags(conn: Connection, resource_id: str) -> None:
    conn.execute(delete(ebs_tags).where(ebs_tags.c.resource_id == resource_id))


def list_tags(conn: Connection, account_id: str, region: str) -> list[tuple[str, str, str, str]]:
    """(resource id, resource type, key, value) of every tag, ordered."""
    rows = conn.execute(
        select(
            ebs_tags.c.resource_id,
            ebs_tags.c.resource_type,
            ebs_tags.c.tag_key,
            ebs_tags.c.tag_value,
        )
        .where(and_(ebs_tags.c.account_id == account_id, ebs_tags.c.region == region))
        .order_by(ebs_tags.c.resource_id, ebs_tags.c.tag_key)
    )
    return [(r.resource_id, r.resource_type, r.tag_key, r.tag_value) for r in rows]


# -- volumes --------------------------------------------------------------------------------


def _keying(row: Row[Any]) -> Keying:
    return Keying(
        encrypted=bool(row.encrypted),
        kms_key_arn=row.kms_key_arn,
        wrapped_key=bytes(row.wrapped_key),
        context_id=row.key_context_id,
    )


def _keying_values(keying: Keying) -> dict[str, Any]:
    return {
        "encrypted": keying.encrypted,
        "kms_key_arn": keying.kms_key_arn,
        "wrapped_key": keying.wrapped_key,
        "key_context_id": keying.context_id,
    }


def _volume(row: Row[Any], tags: dict[str, str]) -> Volume:
    attachment = None
    if row.instance_id is not None:
        attachment = Attachment(row.instance_id, row.device, row.attach_time)
    return Volume(
        volume_id=row.volume_id,
        account_id=row.account_id,
        region=row.region,
        availability_zone=row.availability_zone,
        size_gib=row.size_gib,
        volume_type=row.volume_type,
        iops=row.iops,
        throughput=row.throughput,
        state=row.state,
        created_at=row.created_at,
        snapshot_id=row.snapshot_id,
        keying=_keying(row),
        base_snapshot_id=row.base_snapshot_id,
        attachment=attachment,
        attached_key=None if row.attached_key is None else bytes(row.attached_key),
        row_version=row.row_version,
        tags=tags,
    )


def insert_volume(conn: Connection, v: Volume) -> None:
    conn.execute(
        ebs_volumes.insert().values(
            volume_id=v.volume_id,
            account_id=v.account_id,
            region=v.region,
            availability_zone=v.availability_zone,
            size_gib=v.size_gib,
            volume_type=v.volume_type,
            iops=v.iops,
            throughput=v.throughput,
            state=v.state,
            created_at=v.created_at,
            snapshot_id=v.snapshot_id,
            base_snapshot_id=v.base_snapshot_id,
            row_version=v.row_version,
            **_keying_values(v.keying),
        )
    )


def get_volume(conn: Connection, account_id: str, region: str, volume_id: str) -> Volume | None:
    row = conn.execute(
        select(ebs_volumes).where(
            and_(
                ebs_volumes.c.volume_id == volume_id,
                ebs_volumes.c.account_id == account_id,
                ebs_volumes.c.region == region,
            )
        )
    ).first()
    if row is None:
        return None
    return _volume(row, tags_of(conn, [volume_id])[volume_id])


def volume_by_id(conn: Connection, volume_id: str) -> Volume | None:
    """A volume by id alone (volume ids are unique): for the block server."""
    row = conn.execute(select(ebs_volumes).where(ebs_volumes.c.volume_id == volume_id)).first()
    return None if row is None else _volume(row, {})


def list_volumes(
    conn: Connection, account_id: str, region: str, ids: Sequence[str] | None = None
) -> list[Volume]:
    query = select(ebs_volumes).where(
        and_(ebs_volumes.c.account_id == account_id, ebs_volumes.c.region == region)
    )
    if ids is not None:
        query = query.where(ebs_volumes.c.volume_id.in_(list(ids)))
    rows = list(conn.execute(query.order_by(ebs_volumes.c.volume_id)))
    tags = tags_of(conn, [r.volume_id for r in rows])
    return [_volume(r, tags[r.volume_id]) for r in rows]


def attached_volume_ids(conn: Connection) -> list[str]:
    rows = conn.execute(
        select(ebs_volumes.c.volume_id)
        .where(ebs_volumes.c.attached_key.is_not(None))
        .order_by(ebs_volumes.c.volume_id)
    )
    return [r.volume_id for r in rows]


def update_volume(conn: Connection, volume: Volume, **values: Any) -> bool:
    """Change a volume if it is still as it was read (row_version); False if not."""
    result = conn.execute(
        update(ebs_volumes)
        .where(
            and_(
                ebs_volumes.c.volume_id == volume.volume_id,
                ebs_volumes.c.row_version == volume.row_version,
            )
        )
        .values(row_version=volume.row_version + 1, **values)
    )
    return bool(result.rowcount == 1)


def delete_volume(conn: Connection, volume_id: str) -> None:
    conn.execute(delete(ebs_volumes).where(ebs_volumes.c.volume_id == volume_id))
    delete_all_tags(conn, volume_id)


def volumes_using_context(conn: Connection, context_ids: Iterable[str]) -> set[str]:
    ids = list(context_ids)
    if not ids:
        return set()
    rows = conn.execute(
        select(ebs_volumes.c.key_context_id).where(ebs_volumes.c.key_context_id.in_(ids))
    )
    return {r.key_context_id for r in rows}


# -- snapshots -----------------------------------------------------------------------------


def _snapshot(row: Row[Any], tags: dict[str, str]) -> Snapshot:
    return Snapshot(
        snapshot_id=row.snapshot_id,
        account_id=row.account_id,
        region=row.region,
        volume_id=row.volume_id,
        volume_size_gib=row.volume_size_gib,
        description=row.description,
        state=row.state,
        start_time=row.start_time,
        completion_time=row.completion_time,
        origin=row.origin,
        keying=_keying(row),
        parent_snapshot_id=row.parent_snapshot_id,
        source_snapshot_id=row.source_snapshot_id,
        client_token=row.client_token,
        request_fingerprint=row.request_fingerprint,
        timeout_minutes=row.timeout_minutes,
        last_activity=row.last_activity,
        stored_bytes=row.stored_bytes,
        tags=tags,
    )


def insert_snapshot(conn: Connection, s: Snapshot) -> None:
    conn.execute(
        ebs_snapshots.insert().values(
            snapshot_id=s.snapshot_id,
            account_id=s.account_id,
            region=s.region,
            volume_id=s.volume_id,
            volume_size_gib=s.volume_size_gib,
            description=s.description,
            state=s.state,
            start_time=s.start_time,
            completion_time=s.completion_time,
            origin=s.origin,
            parent_snapshot_id=s.parent_snapshot_id,
            source_snapshot_id=s.source_snapshot_id,
            client_token=s.client_token,
            request_fingerprint=s.request_fingerprint,
            timeout_minutes=s.timeout_minutes,
            last_activity=s.last_activity,
            stored_bytes=s.stored_bytes,
            **_keying_values(s.keying),
        )
    )


def get_snapshot(
    conn: Connection, account_id: str, region: str, snapshot_id: str, *, with_tags: bool = True
) -> Snapshot | None:
    row = conn.execute(
        select(ebs_snapshots).where(
            and_(
                ebs_snapshots.c.snapshot_id == snapshot_id,
                ebs_snapshots.c.account_id == account_id,
                ebs_snapshots.c.region == region,
            )
        )
    ).first()
    if row is None:
        return None
    return _snapshot(row, tags_of(conn, [snapshot_id])[snapshot_id] if with_tags else {})


def snapshot_by_id(conn: Connection, snapshot_id: str) -> Snapshot | None:
    row = conn.execute(
        select(ebs_snapshots).where(ebs_snapshots.c.snapshot_id == snapshot_id)
    ).first()
    return None if row is None else _snapshot(row, {})


def snapshot_by_token(
    conn: Connection, account_id: str, region: str, client_token: str
) -> Snapshot | None:
    row = conn.execute(
        select(ebs_snapshots).where(
            and_(
                ebs_snapshots.c.account_id == account_id,
                ebs_snapshots.c.region == region,
                ebs_snapshots.c.client_token == client_token,
            )
        )
    ).first()
    return None if row is None else _snapshot(row, {})


def list_snapshots(
    conn: Connection, account_id: str, region: str, ids: Sequence[str] | None = None
) -> list[Snapshot]:
    query = select(ebs_snapshots).where(
        and_(ebs_snapshots.c.account_id == account_id, ebs_snapshots.c.region == region)
    )
    if ids is not None:
        query = query.where(ebs_snapshots.c.snapshot_id.in_(list(ids)))
    rows = list(conn.execute(query.order_by(ebs_snapshots.c.snapshot_id)))
    tags = tags_of(conn, [r.snapshot_id for r in rows])
    return [_snapshot(r, tags[r.snapshot_id]) for r in rows]


def pending_snapshots(conn: Connection) -> list[Snapshot]:
    rows = conn.execute(select(ebs_snapshots).where(ebs_snapshots.c.state == "pending"))
    return [_snapshot(r, {}) for r in rows]


def update_snapshot(
    conn: Connection, snapshot_id: str, *, expect_state: str | None = None, **values: Any
) -> bool:
    """Change a snapshot; with `expect_state`, only while it is still in that state."""
    query = update(ebs_snapshots).where(ebs_snapshots.c.snapshot_id == snapshot_id)
    if expect_state is not None:
        query = query.where(ebs_snapshots.c.state == expect_state)
    return bool(conn.execute(query.values(**values)).rowcount == 1)


def delete_snapshot(conn: Connection, snapshot_id: str) -> None:
    conn.execute(delete(ebs_snapshots).where(ebs_snapshots.c.snapshot_id == snapshot_id))
    delete_all_tags(conn, snapshot_id)


# -- blocks ---------------------------------------------------------------------------------


def insert_blocks(conn: Connection, blocks: Sequence[StoredBlock], now: datetime) -> None:
    if blocks:
        conn.execute(
            ebs_blocks.insert(),
            [
                {
                    "block_id": b.block_id,
                    "key_context_id": b.context_id,
                    "block_index": b.block_index,
                    "mac": b.mac,
                    "created_at": now,
                }
                for b in blocks
            ],
        )


def get_block(conn: Connection, block_id: str) -> StoredBlock | None:
    row = conn.execute(select(ebs_blocks).where(ebs_blocks.c.block_id == block_id)).first()
    if row is None:
        return None
    mac = None if row.mac is None else bytes(row.mac)
    return StoredBlock(row.block_id, row.key_context_id, row.block_index, mac)


def insert_snapshot_blocks(conn: Connection, snapshot_id: str, refs: Sequence[BlockRef]) -> None:
    if refs:
        conn.execute(
            ebs_snapshot_blocks.insert(),
            [
                {
                    "snapshot_id": snapshot_id,
                    "block_index": r.block_index,
                    "block_id": r.block_id,
                    "written": r.written,
                    "sealed_checksum": r.sealed_checksum,
                }
                for r in refs
            ],
        )


def replace_snapshot_block(conn: Connection, snapshot_id: str, ref: BlockRef) -> str | None:
    """Point (snapshot, index) at a new block; returns the block id it named before."""
    where = and_(
        ebs_snapshot_blocks.c.snapshot_id == snapshot_id,
        ebs_snapshot_blocks.c.block_index == ref.block_index,
    )
    old = conn.execute(select(ebs_snapshot_blocks.c.block_id).where(where)).first()
    if old is None:
        insert_snapshot_blocks(conn, snapshot_id, [ref])
        return None
    conn.execute(
        update(ebs_snapshot_blocks)
        .where(where)
        .values(block_id=ref.block_id, written=ref.written, sealed_checksum=ref.sealed_checksum)
    )
    return str(old.block_id)


def copy_snapshot_blocks(conn: Connection, source_id: str, target_id: str) -> None:
    """The target names every block the source names (inherited: not written)."""
    rows = conn.execute(
        select(ebs_snapshot_blocks.c.block_index, ebs_snapshot_blocks.c.block_id).where(
            ebs_snapshot_blocks.c.snapshot_id == source_id
        )
    )
    insert_snapshot_blocks(
        conn, target_id, [BlockRef(r.block_index, r.block_id, False, None) for r in rows]
    )


def snapshot_blocks(
    conn: Connection,
    snapshot_id: str,
    start_index: int = 0,
    limit: int | None = None,
    *,
    written_only: bool = False,
) -> list[BlockRef]:
    query = select(ebs_snapshot_blocks).where(
        and_(
            ebs_snapshot_blocks.c.snapshot_id == snapshot_id,
            ebs_snapshot_blocks.c.block_index >= start_index,
        )
    )
    if written_only:
        query = query.where(ebs_snapshot_blocks.c.written.is_(True))
    query = query.order_by(ebs_snapshot_blocks.c.block_index)
    if limit is not None:
        query = query.limit(limit)
    return [
        BlockRef(
            r.block_index,
            r.block_id,
            bool(r.written),
            None if r.sealed_checksum is None else bytes(r.sealed_checksum),
        )
        for r in conn.execute(query)
    ]


def snapshot_block(conn: Connection, snapshot_id: str, block_index: int) -> BlockRef | None:
    row = conn.execute(
        select(ebs_snapshot_blocks).where(
            and_(
                ebs_snapshot_blocks.c.snapshot_id == snapshot_id,
                ebs_snapshot_blocks.c.block_index == block_index,
            )
        )
    ).first()
    if row is None:
        return None
    return BlockRef(row.block_index, row.block_id, bool(row.written), None)


def block_macs(conn: Connection, snapshot_id: str) -> dict[int, tuple[str, bytes | None]]:
    """block index → (block id, MAC) of a snapshot: what an incremental child compares."""
    rows = conn.execute(
        select(ebs_snapshot_blocks.c.block_index, ebs_snapshot_blocks.c.block_id, ebs_blocks.c.mac)
        .join(ebs_blocks, ebs_blocks.c.block_id == ebs_snapshot_blocks.c.block_id)
        .where(ebs_snapshot_blocks.c.snapshot_id == snapshot_id)
    )
    return {r.block_index: (r.block_id, None if r.mac is None else bytes(r.mac)) for r in rows}


def count_written(conn: Connection, snapshot_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(ebs_snapshot_blocks)
            .where(
                and_(
                    ebs_snapshot_blocks.c.snapshot_id == snapshot_id,
                    ebs_snapshot_blocks.c.written.is_(True),
                )
            )
        ).scalar_one()
    )


def clear_checksums(conn: Connection, snapshot_id: str) -> None:
    conn.execute(
        update(ebs_snapshot_blocks)
        .where(ebs_snapshot_blocks.c.snapshot_id == snapshot_id)
        .values(sealed_checksum=None)
    )


def delete_snapshot_blocks(conn: Connection, snapshot_id: str) -> list[str]:
    """Remove a snapshot's block rows; returns the block ids they named."""
    ids = [
        r.block_id
        for r in conn.execute(
            select(ebs_snapshot_blocks.c.block_id)
            .where(ebs_snapshot_blocks.c.snapshot_id == snapshot_id)
            .distinct()
        )
    ]
    conn.execute(
        delete(ebs_snapshot_blocks).where(ebs_snapshot_blocks.c.snapshot_id == snapshot_id)
    )
    return ids


def release_blocks(conn: Connection, block_ids: Iterable[str]) -> list[str]:
    """Delete the stored-block rows no snapshot names any more; returns their ids (the
    caller deletes their files after the commit)."""
    candidates = sorted(set(block_ids))
    freed: list[str] = []
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        referenced = exists().where(ebs_snapshot_blocks.c.block_id == ebs_blocks.c.block_id)
        rows = conn.execute(
            select(ebs_blocks.c.block_id).where(and_(ebs_blocks.c.block_id.in_(chunk), ~referenced))
        )
        gone = [r.block_id for r in rows]
        if gone:
            conn.execute(delete(ebs_blocks).where(ebs_blocks.c.block_id.in_(gone)))
            freed.extend(gone)
    return freed


def all_block_ids(conn: Connection) -> set[str]:
    return {r.block_id for r in conn.execute(select(ebs_blocks.c.block_id))}


# -- PutSnapshotBlock's hot path ---------------------------------------------------------------

# SQLAlchemy's storage format for DateTime on SQLite (as in audit_repo).
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


_PENDING_SQLITE = "SELECT state FROM ebs_snapshots WHERE snapshot_id = ?"  # BEGIN IMMEDIATE
_PENDING_LOCKED = _PENDING_SQLITE + " FOR UPDATE"


def _fast_time(fast: FastConnection, when: datetime) -> Any:
    when = when.astimezone(UTC)
    return when.replace(tzinfo=None).strftime(_SQLITE_TIME) if fast.is_sqlite else when


def put_written_block(
    fast: FastConnection, snapshot_id: str, block: StoredBlock, ref: BlockRef, now: datetime
) -> list[str] | None:
    """PutSnapshotBlock's one write transaction on the driver connection (no SQLAlchemy
    per call): checks the snapshot is still pending and records its activity, stores the
    block row, points (snapshot, index) at it and releases the block it named before.

    Returns the freed block ids (delete their files after the commit), or None, having
    written nothing, when the snapshot is no longer pending. Values are converted as the
    column types would (UtcDateTime, Boolean) so SQLAlchemy reads them back unchanged.
    """
    row = fast.fetchone(_PENDING_SQLITE if fast.is_sqlite else _PENDING_LOCKED, (snapshot_id,))
    if row is None or row[0] != "pending":
        return None
    when = _fast_time(fast, now)
    written: Any = 1 if fast.is_sqlite else True
    fast.execute(
        "UPDATE ebs_snapshots SET last_activity = ? WHERE snapshot_id = ?", (when, snapshot_id)
    )
    fast.execute(
        "INSERT INTO ebs_blocks (block_id, key_context_id, block_index, mac, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (block.block_id, block.context_id, block.block_index, block.mac, when),
    )
    old = fast.fetchone(
        "SELECT block_id FROM ebs_snapshot_blocks WHERE snapshot_id = ? AND block_index = ?",
        (snapshot_id, ref.block_index),
    )
    if old is None:
        fast.execute(
            "INSERT INTO ebs_snapshot_blocks "
            "(snapshot_id, block_index, block_id, written, sealed_checksum) VALUES (?, ?, ?, ?, ?)",
            (snapshot_id, ref.block_index, ref.block_id, written, ref.sealed_checksum),
        )
        return []
    fast.execute(
        "UPDATE ebs_snapshot_blocks SET block_id = ?, written = ?, sealed_checksum = ? "
        "WHERE snapshot_id = ? AND block_index = ?",
        (ref.block_id, written, ref.sealed_checksum, snapshot_id, ref.block_index),
    )
    previous = str(old[0])
    if fast.fetchone("SELECT 1 FROM ebs_snapshot_blocks WHERE block_id = ? LIMIT 1", (previous,)):
        return []
    fast.execute("DELETE FROM ebs_blocks WHERE block_id = ?", (previous,))
    return [previous]
