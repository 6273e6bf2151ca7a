"""Verify what trails delivered: digest files and the log files they list.

The check `aws cloudtrail validate-logs` makes, from Sealbox's own records of what it
delivered (so it needs no trail to still exist, and no S3 credentials):

- each digest file is still there, its uncompressed bytes still hash to what was
  delivered, its signature (object metadata) is the one delivered and verifies with the
  region's public key over CloudTrail's string to sign, chained to the digest before it;
- each log file a digest lists is still there and still hashes to the listed value;
- log files no digest covers (validation off, or not digested yet) still hash to what
  was delivered.

Problems are reported in delivery order; the first one names the first broken file.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import select

from sealbox.audit.digests import META_SIGNATURE, string_to_sign, verify_signature
from sealbox.audit.trail_layout import cloudtrail_time, decompress, sha256_hex
from sealbox.audit.trail_model import Digest, LogFile
from sealbox.audit.trail_s3 import StoredObject
from sealbox.errors import AwsError
from sealbox.storage import trail_repo
from sealbox.storage.db import Database
from sealbox.storage.tables import cloudtrail_log_files

DIGEST_MISSING: Final = "digest_missing"
DIGEST_CHANGED: Final = "digest_changed"
DIGEST_SIGNATURE: Final = "digest_signature_invalid"
LOG_MISSING: Final = "log_missing"
LOG_CHANGED: Final = "log_changed"
BATCH: Final = 500

Reader = Callable[[str, str], StoredObject | None]


@dataclass(frozen=True, slots=True)
class FileProblem:
    kind: str
    bucket: str
    key: str
    message: str
    delivered_at: datetime

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.location,
            "message": self.message,
            "delivered_at": self.delivered_at.isoformat(),
        }


@dataclass
class DeliveredFilesReport:
    problems: list[FileProblem] = field(default_factory=list)
    digests_checked: int = 0
    log_files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> FileProblem | None:
        return min(self.problems, key=lambda p: p.delivered_at) if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {
            "ok": self.ok,
            "first_problem": None if first is None else first.to_dict(),
            "problems": [p.to_dict() for p in sorted(self.problems, key=lambda p: p.delivered_at)],
            "digests_checked": self.digests_checked,
            "log_files_checked": self.log_files_checked,
        }


def has_deliveries(db: Database) -> bool:
    with db.read() as conn:
        return conn.execute(select(cloudtrail_log_files.c.id).limit(1)).first() is not None


def _digests(db: Database) -> Iterator[Digest]:
    after = 0
    while True:
        with db.read() as conn:
            batch = trail_repo.digests_after(conn, after, BATCH)
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].id


def _outside(db: Database, since: datetime | None, until: datetime | None) -> Iterator[LogFile]:
    after = 0
    while True:
        with db.read() as conn:
            batch = trail_repo.files_outside_digests(conn, after, BATCH, since, until)
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].id


def _inflate(data: bytes) -> bytes | None:
    try:
        return decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


class _Check:
    def __init__(self, db: Database, read: Reader) -> None:
        self.db = db
        self.read = read
        self.report = DeliveredFilesReport()
        self.public_keys: dict[str, bytes] = {}

    def problem(self, kind: str, bucket: str, key: str, message: str, when: datetime) -> None:
        self.report.problems.append(FileProblem(kind, bucket, key, message, when))

    def fetch(self, bucket: str, key: str) -> StoredObject | None:
        """The object, or None when it is gone; unreadable (corrupt) data reads as empty."""
        try:
            return self.read(bucket, key)
        except AwsError:
            return StoredObject(b"", {})

    def public_key(self, fingerprint: str) -> bytes | None:
        if fingerprint not in self.public_keys:
            with self.db.read() as conn:
                keys = trail_repo.keys_by_fingerprint(conn, [fingerprint])
            if fingerprint not in keys:
                return None
            self.public_keys[fingerprint] = keys[fingerprint].public_key
        return self.public_keys[fingerprint]

    def digest(self, d: Digest, previous: Digest | None) -> None:
        self.report.digests_checked += 1
        where = f"s3://{d.bucket}/{d.key}"
        stored = self.fetch(d.bucket, d.key)
        if stored is None:
            self.problem(
                DIGEST_MISSING, d.bucket, d.key, f"digest file missing: {where}", d.end_time
            )
            return
        body = _inflate(stored.data)
        if body is None or sha256_hex(body) != d.sha256:
            self.problem(
                DIGEST_CHANGED, d.bucket, d.key, f"digest file changed: {where}", d.end_time
            )
            return
        public = self.public_key(d.fingerprint)
        message = string_to_sign(
            cloudtrail_time(d.end_time),
            d.bucket,
            d.key,
            d.sha256,
            None if previous is None else previous.signature,
        )
        if (
            stored.metadata.get(META_SIGNATURE) != d.signature
            or public is None
            or not verify_signature(public, message, d.signature)
        ):
            self.problem(
                DIGEST_SIGNATURE, d.bucket, d.key, f"digest signature invalid: {where}", d.end_time
            )
            return
        document = orjson.loads(body)
        for entry in document.get("logFiles") or ():
            self.log_file(entry["s3Bucket"], entry["s3Object"], entry["hashValue"], d.end_time)

    def log_file(self, bucket: str, key: str, expected: str, when: datetime) -> None:
        self.report.log_files_checked += 1
        where = f"s3://{bucket}/{key}"
        stored = self.fetch(bucket, key)
        if stored is None:
            self.problem(LOG_MISSING, bucket, key, f"log file missing: {where}", when)
            return
        body = _inflate(stored.data)
        if body is None or sha256_hex(body) != expected:
            self.problem(LOG_CHANGED, bucket, key, f"log file changed: {where}", when)


def verify_deliveries(
    db: Database,
    read: Reader,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> DeliveredFilesReport:
    """Check every delivered digest and log file (those delivered within the range)."""
    check = _Check(db, read)
    previous: dict[tuple[str, str, int], Digest] = {}
    for d in _digests(db):
        chain = (d.trail_id, d.region, d.epoch)
        in_range = (from_time is None or d.end_time >= from_time) and (
            to_time is None or d.start_time <= to_time
        )
        if in_range:
            check.digest(d, previous.get(chain))
        previous[chain] = d
    for f in _outside(db, from_time, to_time):
        check.log_file(f.bucket, f.key, f.sha256, f.delivered_at)
    return check.report
