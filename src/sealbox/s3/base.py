"""What every S3 operation shares: finding a bucket (cached while unchanged) and
deciding whether the caller may act on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.s3.access import BucketAccess, S3RequestFacts
from sealbox.s3.errors import NoSuchBucket
from sealbox.s3.model import Bucket
from sealbox.s3.public import PublicAccessBlock
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database, FastConnection

T = TypeVar("T")
_CACHE_LIMIT = 10_000
S3_SOURCE = "s3.amazonaws.com"


def block_of(bucket: Bucket) -> PublicAccessBlock:
    return PublicAccessBlock.from_config(bucket.public_access_block)


class S3Base:
    def __init__(self, db: Database, clock: Clock, access: BucketAccess, blobs: BlobStore) -> None:
        self.db = db
        self.clock = clock
        self.access = access
        self.blobs = blobs
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    # -- buckets ------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        """The bucket, from cache while its config_version is unchanged."""
        row = self.db.fast_row("SELECT config_version FROM s3_buckets WHERE name = ?", (name,))
        if row is None:
            raise NoSuchBucket("The specified bucket does not exist", BucketName=name)
        cached = self._buckets.get(name)
        if cached is not None and cached.config_version == row[0]:
            return cached
        with self.db.read() as conn:
            bucket = s3_repo.get_bucket(conn, name)
        if bucket is None:
            raise NoSuchBucket("The specified bucket does not exist", BucketName=name)
        with self._lock:
            if len(self._buckets) >= _CACHE_LIMIT:
                self._buckets.clear()
            self._buckets[name] = bucket
        return bucket

    def authorize(
        self,
        call: Call,
        action: str,
        bucket: Bucket,
        key: str | None = None,
        facts: S3RequestFacts | None = None,
    ) -> None:
        """Raise AccessDenied unless identity policies / the bucket policy allow it."""
        self.access.check(
            call,
            action,
            bucket=bucket.name,
            key=key,
            owner_account=bucket.account_id,
            policy=bucket.policy,
            block=block_of(bucket),
            facts=facts or S3RequestFacts(),
        )

    def write(self, work: Callable[[Connection], T]) -> T:
        return self.db.write(work)

    def fast_write(self, work: Callable[[FastConnection], T], attempts: int = 5) -> T:
        """`write` for hot-path statements on the driver connection (fast_transaction),
        retrying serialization failures and deadlocks as `Database.write` does."""
        for attempt in range(attempts):
            try:
                return self.db.fast_transaction(work)
            except Exception as exc:
                if attempt + 1 == attempts or not _retryable(exc):
                    raise
                time.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def resources(call: Call, bucket: Bucket, key: str | None = None) -> None:
        call.resources = [bucket.arn] if key is None else [f"{bucket.arn}/{key}", bucket.arn]


def _retryable(exc: Exception) -> bool:
    """A serialization failure, deadlock or SQLite lock timeout: worth another try."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    return "database is locked" in str(orig)
