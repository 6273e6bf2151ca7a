"""S3 buckets, object versions, uploads and parts ⇄ rows.

Keys are compared in byte order on every backend (S3 lists in UTF-8 binary order):
SQLite's default collation already is; PostgreSQL is asked for COLLATE "C".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Row, and_, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from sealbox.s3.model import (
    Bucket,
    Checksum,
    EncryptionRule,
    Extent,
    Keying,
    ObjectVersion,
    Part,
    Upload,
)
from sealbox.storage.db import Database, FastConnection
from sealbox.storage.tables import s3_buckets, s3_objects, s3_parts, s3_service_keys, s3_uploads

# The highest code point: prefix + this sorts after every key starting with prefix.
_TOP = "\U0010ffff"


def _dump(value: Any) -> str | None:
    return None if value is None or value == {} else orjson.dumps(value).decode()


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _key(conn: Connection, column: Any) -> Any:
    return column.collate("C") if conn.dialect.name == "postgresql" else column


# -- buckets ------------------------------------------------------------------------------


def _rule_to_json(rule: EncryptionRule | None) -> str | None:
    if rule is None:
        return None
    return _dump(
        {
            "algorithm": rule.algorithm,
            "kms_key_id": rule.kms_key_id,
            "bucket_key": rule.bucket_key_enabled,
            "blocked": list(rule.blocked_types),
        }
    )


def _bucket(row: Row[Any]) -> Bucket:
    enc = _load(row.encryption)
    return Bucket(
        name=row.name,
        account_id=row.account_id,
        region=row.region,
        created_at=row.created_at,
        versioning=row.versioning,
        policy=row.policy,
        encryption=None
        if enc is None
        else EncryptionRule(
            enc["algorithm"], enc.get("kms_key_id"), enc["bucket_key"], tuple(enc["blocked"])
        ),
        public_access_block=_load(row.public_access_block),
        tags=_load(row.tags) or {},
        config_version=row.config_version,
    )


def insert_bucket(conn: Connection, bucket: Bucket) -> None:
    conn.execute(
        s3_buckets.insert().values(
            name=bucket.name,
            account_id=bucket.account_id,
            region=bucket.region,
            created_at=bucket.created_at,
            versioning=bucket.versioning,
            policy=bucket.policy,
            encryption=_rule_to_json(bucket.encryption),
            public_access_block=_dump(bucket.public_access_block),
            tags=_dump(bucket.tags),
            config_version=1,
        )
    )


def get_bucket(conn: Connection, name: str) -> Bucket | None:
    row = conn.execute(select(s3_buckets).where(s3_buckets.c.name == name)).first()
    return None if row is None else _bucket(row)


def list_buckets(conn: Connection, account_id: str) -> list[Bucket]:
    rows = conn.execute(
        select(s3_buckets)
        .where(s3_buckets.c.account_id == account_id)
        .order_by(_key(conn, s3_buckets.c.name))
    )
    return [_bucket(r) for r in rows]


def delete_bucket(conn: Connection, name: str) -> None:
    conn.execute(delete(s3_buckets).where(s3_buckets.c.name == name))


_UNSET: Any = object()


def update_bucket(
    conn: Connection,
    name: str,
    *,
    versioning: str | None = _UNSET,
    policy: str | None = _UNSET,
    encryption: EncryptionRule | None = _UNSET,
    public_access_block: dict[str, bool] | None = _UNSET,
    tags: dict[str, str] | None = _UNSET,
) -> None:
    values: dict[str, Any] = {"config_version": s3_buckets.c.config_version + 1}
    if versioning is not _UNSET:
        values["versioning"] = versioning
    if policy is not _UNSET:
        values["policy"] = policy
    if encryption is not _UNSET:
        values["encryption"] = _rule_to_json(encryption)
    if public_access_block is not _UNSET:
        values["public_access_block"] = _dump(public_access_block)
    if tags is not _UNSET:
        values["tags"] = _dump(tags)
    conn.execute(update(s3_buckets).where(s3_buckets.c.name == name).values(**values))


def lock_bucket(conn: Connection, name: str, *, exclusive: bool) -> bool:
    """Lock the bucket row for this transaction; False if the bucket is gone.

    Object writes take it shared and DeleteBucket exclusive, so on PostgreSQL (READ
    COMMITTED) no object can be committed into a bucket being deleted. SQLite already
    serializes writers; the lookup still answers whether the bucket exists.
    """
    query = select(s3_buckets.c.name).where(s3_buckets.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=not exclusive)
    return conn.execute(query).first() is not None


def bucket_has_content(conn: Connection, name: str) -> bool:
    obj = conn.execute(select(s3_objects.c.id).where(s3_objects.c.bucket == name).limit(1))
    if obj.first() is not None:
        return True
    up = conn.execute(select(s3_uploads.c.upload_id).where(s3_uploads.c.bucket == name).limit(1))
    return up.first() is not None


# -- objects --------------------------------------------------------------------------------


def _keying_values(keying: Keying | None) -> dict[str, Any]:
    if keying is None:
        return {"sse": "", "wrapped_dek": b"", "bucket_key": False}
    return {
        "sse": keying.sse,
        "kms_key_arn": keying.kms_key_arn,
        "bucket_key": keying.bucket_key,
        "sse_context": _dump(keying.context),
        "wrapped_dek": keying.wrapped_dek,
        "bucket_key_blob": keying.bucket_key_blob,
        "ssec_salt": keying.ssec_salt,
        "ssec_hmac": keying.ssec_hmac,
    }


def _keying(row: Row[Any]) -> Keying | None:
    if not row.sse:
        return None
    return Keying(
        sse=row.sse,
        wrapped_dek=bytes(row.wrapped_dek),
        kms_key_arn=row.kms_key_arn,
        bucket_key=bool(row.bucket_key),
        context=_load(row.sse_context),
        bucket_key_blob=None if row.bucket_key_blob is None else bytes(row.bucket_key_blob),
        ssec_salt=None if row.ssec_salt is None else bytes(row.ssec_salt),
        ssec_hmac=None if row.ssec_hmac is None else bytes(row.ssec_hmac),
    )


def _version(row: Any) -> ObjectVersion:
    checksum = _load(row.checksum)
    return ObjectVersion(
        bucket=row.bucket,
        key=row.object_key,
        version_id=row.version_id,
        is_latest=bool(row.is_latest),
        delete_marker=bool(row.delete_marker),
        size=row.size,
        etag=row.etag,
        last_modified=row.last_modified,
        owner_account=row.owner_account,
        keying=_keying(row),
        headers=_load(row.headers) or {},
        metadata=_load(row.metadata) or {},
        tags=_load(row.tags) or {},
        checksum=None if checksum is None else Checksum(**checksum),
        extents=tuple(Extent.from_json(e) for e in _load(row.parts) or ()),
        row_id=row.id,
    )


def _version_values(obj: ObjectVersion) -> dict[str, Any]:
    checksum = obj.checksum
    return {
        "bucket": obj.bucket,
        "object_key": obj.key,
        "version_id": obj.version_id,
        "is_latest": True,
        "delete_marker": obj.delete_marker,
        "size": obj.size,
        "etag": obj.etag,
        "last_modified": obj.last_modified,
        "owner_account": obj.owner_account,
        "headers": _dump(obj.headers),
        "metadata": _dump(obj.metadata),
        "tags": _dump(obj.tags),
        "checksum": None
        if checksum is None
        else _dump(
            {"algorithm": checksum.algorithm, "value": checksum.value, "type": checksum.type}
        ),
        "parts": _dump([e.to_json() for e in obj.extents]) if obj.extents else None,
        **_keying_values(obj.keying),
    }


def get_version(
    conn: Connection, bucket: str, key: str, version_id: str | None = None
) -> ObjectVersion | None:
    where = and_(s3_objects.c.bucket == bucket, s3_objects.c.object_key == key)
    if version_id is None:
        where = and_(where, s3_objects.c.is_latest.is_(True))
    else:
        where = and_(where, s3_objects.c.version_id == version_id)
    row = conn.execute(select(s3_objects).where(where)).first()
    return None if row is None else _version(row)


def put_version(conn: Connection, obj: ObjectVersion) -> list[Extent]:
    """Make obj the latest version of its key; return the extents of a replaced
    version with the same version id (the "null" version), whose blobs can go."""
    replaced: list[Extent] = []
    old = get_version(conn, obj.bucket, obj.key, obj.version_id)
    if old is not None:
        replaced = list(old.extents)
        conn.execute(delete(s3_objects).where(s3_objects.c.id == old.row_id))
    conn.execute(
        update(s3_objects)
        .where(
            s3_objects.c.bucket == obj.bucket,
            s3_objects.c.object_key == obj.key,
            s3_objects.c.is_latest.is_(True),
        )
        .values(is_latest=False)
    )
    conn.execute(s3_objects.insert().values(**_version_values(obj)))
    return replaced


# -- objects, hot path: plain driver SQL (no SQLAlchemy execution machinery) ------------
#
# GET/HEAD look a version up and PUT commits one on every request; through SQLAlchemy
# Core each statement costs more CPU than the whole SQL work. These twins run the same
# statements on the driver connection (Database.fast_row / fast_transaction) and
# convert values exactly as the column types do (UtcDateTime, Boolean on SQLite).


class _ObjectRow(NamedTuple):
    id: int
    bucket: str
    object_key: str
    version_id: str
    is_latest: Any
    delete_marker: Any
    size: int
    etag: str
    last_modified: datetime
    owner_account: str
    headers: str | None
    metadata: str | None
    tags: str | None
    checksum: str | None
    parts: str | None
    sse: str
    kms_key_arn: str | None
    bucket_key: Any
    sse_context: str | None
    wrapped_dek: bytes
    bucket_key_blob: bytes | None
    ssec_salt: bytes | None
    ssec_hmac: bytes | None


_OBJECT_COLUMNS = _ObjectRow._fields
_INSERT_COLUMNS = _OBJECT_COLUMNS[1:]
# Built from the constant column lists only (no caller input reaches the SQL text).
_SELECT_OBJECT = "SELECT {} FROM s3_objects WHERE bucket = ? AND object_key = ? AND ".format(  # noqa: S608
    ", ".join(_OBJECT_COLUMNS)
)
_SELECT_LATEST = _SELECT_OBJECT + "is_latest = ?"
_SELECT_VERSION = _SELECT_OBJECT + "version_id = ?"
_INSERT_OBJECT = "INSERT INTO s3_objects ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(_INSERT_COLUMNS), ", ".join("?" * len(_INSERT_COLUMNS))
)
_DELETE_OBJECT = "DELETE FROM s3_objects WHERE id = ?"
_UNSET_LATEST = (
    "UPDATE s3_objects SET is_latest = ? WHERE bucket = ? AND object_key = ? AND is_latest = ?"
)
_LOCK_BUCKET_SQLITE = "SELECT name FROM s3_buckets WHERE name = ?"
_LOCK_BUCKET_SHARED = _LOCK_BUCKET_SQLITE + " FOR SHARE"
# SQLAlchemy's storage format for DateTime on SQLite.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _time_in(value: datetime, sqlite: bool) -> Any:
    """A datetime as UtcDateTime binds it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database")
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None).strftime(_SQLITE_TIME) if sqlite else value


def _time_out(value: Any) -> datetime:
    """A stored datetime as UtcDateTime returns it (SQLite keeps text, zone dropped)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fast_version(row: tuple[Any, ...]) -> ObjectVersion:
    values = list(row)
    values[8] = _time_out(values[8])  # last_modified
    return _version(_ObjectRow._make(values))


def _fast_query(version_id: str | None) -> tuple[str, Any]:
    return (_SELECT_LATEST, True) if version_id is None else (_SELECT_VERSION, version_id)


def fast_get_version(
    db: Database, bucket: str, key: str, version_id: str | None = None
) -> ObjectVersion | None:
    """get_version (outside a transaction) on the driver connection: the GET path."""
    sql, last = _fast_query(version_id)
    row = db.fast_row(sql, (bucket, key, last))
    return None if row is None else _fast_version(row)


def fast_get_version_in(
    fast: FastConnection, bucket: str, key: str, version_id: str | None = None
) -> ObjectVersion | None:
    """get_version inside a fast_transaction."""
    sql, last = _fast_query(version_id)
    row = fast.fetchone(sql, (bucket, key, last))
    return None if row is None else _fast_version(row)


def fast_lock_bucket(fast: FastConnection, name: str) -> bool:
    """lock_bucket(exclusive=False) inside a fast_transaction."""
    sql = _LOCK_BUCKET_SQLITE if fast.is_sqlite else _LOCK_BUCKET_SHARED
    return fast.fetchone(sql, (name,)) is not None


def _insert_values(obj: ObjectVersion, sqlite: bool) -> tuple[Any, ...]:
    values = _version_values(obj)
    values["last_modified"] = _time_in(obj.last_modified, sqlite)
    return tuple(values.get(column) for column in _INSERT_COLUMNS)


def fast_put_version(fast: FastConnection, obj: ObjectVersion) -> list[Extent]:
    """put_version inside a fast_transaction (the same statements, in the same order)."""
    replaced: list[Extent] = []
    old = fast_get_version_in(fast, obj.bucket, obj.key, obj.version_id)
    if old is not None:
        replaced = list(old.extents)
        fast.execute(_DELETE_OBJECT, (old.row_id,))
    fast.execute(_UNSET_LATEST, (False, obj.bucket, obj.key, True))
    fast.execute(_INSERT_OBJECT, _insert_values(obj, fast.is_sqlite))
    return replaced


def replace_in_place(conn: Connection, obj: ObjectVersion) -> bool:
    """Rewrite a version's metadata (tags, keying) without changing its place."""
    values = _version_values(obj)
    del values["is_latest"]
    result = conn.execute(update(s3_objects).where(s3_objects.c.id == obj.row_id).values(**values))
    return result.rowcount == 1


def delete_version(conn: Connection, obj: ObjectVersion) -> None:
    """Remove one version; if it was the latest, the one before becomes latest."""
    conn.execute(delete(s3_objects).where(s3_objects.c.id == obj.row_id))
    if obj.is_latest:
        previous = conn.execute(
            select(s3_objects.c.id)
            .where(s3_objects.c.bucket == obj.bucket, s3_objects.c.object_key == obj.key)
            .order_by(s3_objects.c.id.desc())
            .limit(1)
        ).first()
        if previous is not None:
            conn.execute(
                update(s3_objects).where(s3_objects.c.id == previous.id).values(is_latest=True)
            )


def scan_latest(
    conn: Connection, bucket: str, prefix: str, after: str | None, limit: int
) -> list[ObjectVersion]:
    """Latest, non-deleted versions in key order: key > after, starting with prefix."""
    key = _key(conn, s3_objects.c.object_key)
    where: list[ColumnElement[bool]] = [
        s3_objects.c.bucket == bucket,
        s3_objects.c.is_latest.is_(True),
        s3_objects.c.delete_marker.is_(False),
    ]
    where += _key_range(key, prefix, after)
    rows = conn.execute(select(s3_objects).where(*where).order_by(key).limit(limit))
    return [_version(r) for r in rows]


def _key_range(key: Any, prefix: str, after: str | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if prefix:
        out += [key >= prefix, key < prefix + _TOP]
    if after is not None:
        out.append(key > after)
    return out


def scan_versions(
    conn: Connection,
    bucket: str,
    prefix: str,
    key_marker: str | None,
    after_row_id: int | None,
    limit: int,
) -> list[ObjectVersion]:
    """Every version in (key ascending, newest first) order, after a marker."""
    key = _key(conn, s3_objects.c.object_key)
    where: list[ColumnElement[bool]] = [s3_objects.c.bucket == bucket]
    where += _key_range(key, prefix, None)
    if key_marker is not None:
        if after_row_id is None:
            where.append(key > key_marker)
        else:
            where.append(
                (key > key_marker) | ((key == key_marker) & (s3_objects.c.id < after_row_id))
            )
    rows = conn.execute(
        select(s3_objects).where(*where).order_by(key, s3_objects.c.id.desc()).limit(limit)
    )
    return [_version(r) for r in rows]


def blobs_of_bucket(conn: Connection, bucket: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(s3_objects).where(s3_objects.c.bucket == bucket)
        ).scalar_one()
    )


# -- multipart uploads -------------------------------------------------------------------


def _upload(row: Row[Any]) -> Upload:
    keying = _keying(row)
    assert keying is not None
    return Upload(
        upload_id=row.upload_id,
        bucket=row.bucket,
        key=row.object_key,
        initiated=row.initiated,
        owner_account=row.owner_account,
        initiator_arn=row.initiator_arn,
        keying=keying,
        headers=_load(row.headers) or {},
        metadata=_load(row.metadata) or {},
        tags=_load(row.tags) or {},
        checksum_algorithm=row.checksum_algorithm,
        checksum_type=row.checksum_type,
    )


def insert_upload(conn: Connection, upload: Upload) -> None:
    conn.execute(
        s3_uploads.insert().values(
            upload_id=upload.upload_id,
            bucket=upload.bucket,
            object_key=upload.key,
            initiated=upload.initiated,
            owner_account=upload.owner_account,
            initiator_arn=upload.initiator_arn,
            headers=_dump(upload.headers),
            metadata=_dump(upload.metadata),
            tags=_dump(upload.tags),
            checksum_algorithm=upload.checksum_algorithm,
            checksum_type=upload.checksum_type,
            **_keying_values(upload.keying),
        )
    )


def get_upload(conn: Connection, upload_id: str) -> Upload | None:
    row = conn.execute(select(s3_uploads).where(s3_uploads.c.upload_id == upload_id)).first()
    return None if row is None else _upload(row)


def delete_upload(conn: Connection, upload_id: str) -> list[Part]:
    """Remove an upload and its parts; returns the parts (their blobs can go)."""
    parts = list_parts(conn, upload_id, 0, 100_000)
    conn.execute(delete(s3_parts).where(s3_parts.c.upload_id == upload_id))
    conn.execute(delete(s3_uploads).where(s3_uploads.c.upload_id == upload_id))
    return parts


def list_uploads(
    conn: Connection,
    bucket: str,
    prefix: str,
    key_marker: str | None,
    upload_id_marker: str | None,
    limit: int,
) -> list[Upload]:
    """Uploads by key, then in the order they were started (as S3 lists them)."""
    key = _key(conn, s3_uploads.c.object_key)
    where: list[ColumnElement[bool]] = [s3_uploads.c.bucket == bucket]
    where += _key_range(key, prefix, None)
    if key_marker is not None:
        marked = get_upload(conn, upload_id_marker) if upload_id_marker else None
        if marked is not None and marked.key == key_marker:
            started = s3_uploads.c.initiated
            later = (started > marked.initiated) | (
                (started == marked.initiated) & (s3_uploads.c.upload_id > marked.upload_id)
            )
            where.append((key > key_marker) | ((key == key_marker) & later))
        else:
            where.append(key > key_marker)
    rows = conn.execute(
        select(s3_uploads)
        .where(*where)
        .order_by(key, s3_uploads.c.initiated, s3_uploads.c.upload_id)
        .limit(limit)
    )
    return [_upload(r) for r in rows]


def uploads_older_than(conn: Connection, cutoff: datetime, limit: int) -> list[Upload]:
    rows = conn.execute(select(s3_uploads).where(s3_uploads.c.initiated < cutoff).limit(limit))
    return [_upload(r) for r in rows]


def _part(row: Row[Any]) -> Part:
    return Part(
        part_number=row.part_number,
        blob=row.blob,
        size=row.size,
        segment_size=row.segment_size,
        etag=row.etag,
        last_modified=row.last_modified,
        checksum=_load(row.checksum),
    )


def put_part(conn: Connection, upload_id: str, part: Part) -> Part | None:
    """Store a part; returns the part it replaced (same number), if any."""
    old_row = conn.execute(
        select(s3_parts).where(
            s3_parts.c.upload_id == upload_id, s3_parts.c.part_number == part.part_number
        )
    ).first()
    old = None if old_row is None else _part(old_row)
    if old is not None:
        conn.execute(
            delete(s3_parts).where(
                s3_parts.c.upload_id == upload_id, s3_parts.c.part_number == part.part_number
            )
        )
    conn.execute(
        s3_parts.insert().values(
            upload_id=upload_id,
            part_number=part.part_number,
            blob=part.blob,
            size=part.size,
            segment_size=part.segment_size,
            etag=part.etag,
            checksum=_dump(part.checksum),
            last_modified=part.last_modified,
        )
    )
    return old


def list_parts(conn: Connection, upload_id: str, after: int, limit: int) -> list[Part]:
    rows = conn.execute(
        select(s3_parts)
        .where(s3_parts.c.upload_id == upload_id, s3_parts.c.part_number > after)
        .order_by(s3_parts.c.part_number)
        .limit(limit)
    )
    return [_part(r) for r in rows]


def parts_by_number(conn: Connection, upload_id: str, numbers: Sequence[int]) -> dict[int, Part]:
    rows = conn.execute(
        select(s3_parts).where(
            s3_parts.c.upload_id == upload_id, s3_parts.c.part_number.in_(list(numbers))
        )
    )
    return {r.part_number: _part(r) for r in rows}


# -- SSE-S3 service keys --------------------------------------------------------------------


def get_service_key(conn: Connection, account_id: str) -> bytes | None:
    row = conn.execute(
        select(s3_service_keys.c.wrapped_key).where(s3_service_keys.c.account_id == account_id)
    ).first()
    return None if row is None else bytes(row.wrapped_key)


def insert_service_key(conn: Connection, account_id: str, wrapped: bytes, now: datetime) -> None:
    conn.execute(
        s3_service_keys.insert().values(account_id=account_id, wrapped_key=wrapped, created_at=now)
    )
