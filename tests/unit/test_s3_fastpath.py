"""The S3 hot paths: driver-level object rows and blobs written beside their place."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealbox.s3.model import Bucket, Checksum, Extent, Keying, ObjectVersion
from sealbox.s3.versions import store_version, store_version_fast
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database

WHEN = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    database = Database(url)
    database.migrate()
    database.write(
        lambda conn: s3_repo.insert_bucket(
            conn, Bucket(name="b", account_id="111122223333", region="us-east-1", created_at=WHEN)
        )
    )
    yield database
    database.dispose()


def version(key: str, version_id: str, blob: str, **more: object) -> ObjectVersion:
    values: dict[str, object] = {
        "bucket": "b",
        "key": key,
        "version_id": version_id,
        "is_latest": True,
        "delete_marker": False,
        "size": 5,
        "etag": '"abc"',
        "last_modified": WHEN,
        "owner_account": "111122223333",
        "keying": Keying(
            "aws:kms",
            b"\x00wrapped\xff",
            kms_key_arn="arn:aws:kms:us-east-1:111122223333:key/k",
            bucket_key=True,
            context={"aws:s3:arn": "arn:aws:s3:::b/k"},
            bucket_key_blob=b"\x01bk",
        ),
        "headers": {"ContentType": "text/plain"},
        "metadata": {"m": "v"},
        "tags": {"t": "1"},
        "checksum": Checksum("CRC32", "AAAAAA==", "FULL_OBJECT"),
        "extents": (Extent(blob, 5, 65536),),
    }
    values.update(more)
    return ObjectVersion(**values)  # type: ignore[arg-type]


def read_slow(db: Database, key: str, version_id: str | None = None) -> ObjectVersion | None:
    with db.read() as conn:
        return s3_repo.get_version(conn, "b", key, version_id)


def test_fast_rows_match_sqlalchemy_rows(db: Database) -> None:
    first = version("k", "null", "blob1")
    assert db.fast_transaction(lambda fast: store_version_fast(fast, first)) == []
    slow = read_slow(db, "k")
    fast = s3_repo.fast_get_version(db, "b", "k")
    assert slow is not None and fast == slow
    assert fast.last_modified == WHEN and fast.keying == first.keying
    assert fast == first.__class__(**{**_fields(first), "row_id": slow.row_id})
    # Written by SQLAlchemy, read by the driver: the same object.
    other = version("k2", "null", "blob2", keying=Keying("AES256", b"w"), checksum=None)
    db.write(lambda conn: store_version(conn, other))
    assert s3_repo.fast_get_version(db, "b", "k2") == read_slow(db, "k2")


def test_fast_put_replaces_the_null_version_and_moves_latest(db: Database) -> None:
    db.fast_transaction(lambda fast: store_version_fast(fast, version("k", "v1", "blob1")))
    db.fast_transaction(lambda fast: store_version_fast(fast, version("k", "null", "blob2")))
    replaced = db.fast_transaction(
        lambda fast: store_version_fast(fast, version("k", "null", "blob3"))
    )
    assert [e.blob for e in replaced] == ["blob2"]
    latest = s3_repo.fast_get_version(db, "b", "k")
    assert latest is not None and latest.extents[0].blob == "blob3"
    old = s3_repo.fast_get_version(db, "b", "k", "v1")
    assert old is not None and not old.is_latest
    assert s3_repo.fast_get_version(db, "b", "missing") is None


def _fields(obj: ObjectVersion) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def test_blobs_are_written_beside_their_place(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    writer = store.create()
    writer.write(b"sealed")
    partial = list(store.partial_files())
    assert [p.parent for p in partial] == [store.path(writer.blob_id).parent]
    assert list(store.blob_ids()) == []  # a half-written blob is not a blob
    blob_id = writer.commit()
    assert list(store.blob_ids()) == [blob_id]
    assert list(store.partial_files()) == []
    with store.open(blob_id) as reader:
        assert reader.read_at(0, 6) == b"sealed"
    # What a crash leaves (in the old shared directory too) is cleared at start.
    store.create().write(b"half")
    (store.tmp_dir / "old.part").write_bytes(b"half")
    assert store.clear_tmp() == 2
    assert list(store.partial_files()) == []
    assert list(store.blob_ids()) == [blob_id]
    store.delete(blob_id)
    store.delete(blob_id)  # already gone: fine
    assert list(store.blob_ids()) == []
