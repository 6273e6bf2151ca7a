"""CloudTrail digest files: their content, their signature and the keys that sign them.

A digest lists the log files a trail delivered in one period (their SHA-256 of the
uncompressed file) and names the digest before it in the same chain, with that digest's
hash and signature. It is signed SHA256withRSA (crypto/digest_signing.py) over::

    digestEndTime \\n digestS3Bucket/digestS3Object \\n hex SHA-256 of the uncompressed
    digest \\n previousDigestSignature (or "null" for the first digest of a chain)

and the hex signature and "SHA256withRSA" travel as the object's user metadata
``signature`` and ``signature-algorithm`` (x-amz-meta-*), exactly where `aws cloudtrail
validate-logs` reads them. One signing key per region signs every trail's digests there;
its private half is stored sealed by the root key, and ListPublicKeys publishes the public
half with the hex MD5 fingerprint digests name.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy.exc import IntegrityError

from sealbox.audit.trail_layout import cloudtrail_time
from sealbox.audit.trail_model import Digest, LogFile, SigningKey
from sealbox.clock import Clock
from sealbox.crypto import digest_signing
from sealbox.keystore.base import KeyStore
from sealbox.storage import trail_repo
from sealbox.storage.db import Database

ALGORITHM: Final = digest_signing.ALGORITHM
HASH_ALGORITHM: Final = "SHA-256"
META_SIGNATURE: Final = "signature"
META_ALGORITHM: Final = "signature-algorithm"


@dataclass(frozen=True, slots=True)
class DigestContent:
    account_id: str
    bucket: str
    key: str
    start: datetime
    end: datetime
    fingerprint: str
    previous: Digest | None
    files: Sequence[LogFile]


def digest_body(content: DigestContent) -> bytes:
    """The uncompressed digest file, in CloudTrail's documented format."""
    prev = content.previous
    times = [f.newest_event_time for f in content.files if f.newest_event_time is not None]
    olds = [f.oldest_event_time for f in content.files if f.oldest_event_time is not None]
    doc: dict[str, Any] = {
        "awsAccountId": content.account_id,
        "digestStartTime": cloudtrail_time(content.start),
        "digestEndTime": cloudtrail_time(content.end),
        "digestS3Bucket": content.bucket,
        "digestS3Object": content.key,
        "digestPublicKeyFingerprint": content.fingerprint,
        "digestSignatureAlgorithm": ALGORITHM,
        "newestEventTime": cloudtrail_time(max(times)) if times else None,
        "oldestEventTime": cloudtrail_time(min(olds)) if olds else None,
        "previousDigestS3Bucket": None if prev is None else prev.bucket,
        "previousDigestS3Object": None if prev is None else prev.key,
        "previousDigestHashValue": None if prev is None else prev.sha256,
        "previousDigestHashAlgorithm": None if prev is None else HASH_ALGORITHM,
        "previousDigestSignature": None if prev is None else prev.signature,
        "logFiles": [
            {
                "s3Bucket": f.bucket,
                "s3Object": f.key,
                "hashValue": f.sha256,
                "hashAlgorithm": HASH_ALGORITHM,
                "newestEventTime": _time_or_none(f.newest_event_time),
                "oldestEventTime": _time_or_none(f.oldest_event_time),
            }
            for f in content.files
        ],
    }
    return orjson.dumps(doc)


def _time_or_none(when: datetime | None) -> str | None:
    return None if when is None else cloudtrail_time(when)


def string_to_sign(
    end_time: str, bucket: str, key: str, body_sha256: str, previous_signature: str | None
) -> bytes:
    previous = "null" if previous_signature is None else previous_signature
    return f"{end_time}\n{bucket}/{key}\n{body_sha256}\n{previous}".encode()


class DigestSigner:
    """The per-region signing keys: created on first use, sealed by the root key."""

    def __init__(self, db: Database, keystore: KeyStore, clock: Clock) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock

    @staticmethod
    def _label(region: str, generation: int) -> str:
        return f"sealbox/cloudtrail/digest-signing-key/{region}/{generation}"

    def current(self, region: str) -> SigningKey:
        with self._db.read() as conn:
            key = trail_repo.current_key(conn, region)
        if key is not None:
            return key
        pair = digest_signing.new_key_pair()
        new = SigningKey(
            region=region,
            generation=1,
            fingerprint=pair.fingerprint,
            public_key=pair.public_der,
            wrapped_private_key=self._keystore.wrap(pair.private_der, self._label(region, 1)),
            valid_from=self._clock.now().replace(microsecond=0),
        )

        def work(conn: Any) -> SigningKey:
            existing = trail_repo.current_key(conn, region)
            if existing is not None:
                return existing
            trail_repo.insert_key(conn, new)
            return new

        try:
            return self._db.write(work)
        except IntegrityError:  # another process made the region's key first
            with self._db.read() as conn:
                key = trail_repo.current_key(conn, region)
            if key is None:
                raise
            return key

    def sign(self, key: SigningKey, message: bytes) -> str:
        """The hex signature of message (as the digest object's metadata carries it)."""
        private = self._keystore.unwrap(
            key.wrapped_private_key, self._label(key.region, key.generation)
        )
        return digest_signing.sign(private, message).hex()

    def public_keys(
        self, region: str, start: datetime | None, end: datetime | None
    ) -> list[SigningKey]:
        with self._db.read() as conn:
            return trail_repo.keys_in_range(conn, region, start, end)


def verify_signature(public_der: bytes, message: bytes, signature_hex: str) -> bool:
    try:
        signature = binascii.unhexlify(signature_hex)
    except (binascii.Error, ValueError):
        return False
    return digest_signing.verify(public_der, message, signature)
