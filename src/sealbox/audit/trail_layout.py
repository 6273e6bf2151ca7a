"""Where CloudTrail puts its files, and how it writes them.

Log files::

    [prefix/]AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/
        ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHmmZ_UNIQUE.json.gz

Digest files (the date is the digest's end time, to the second)::

    [prefix/]AWSLogs/ACCOUNT/CloudTrail-Digest/REGION/YYYY/MM/DD/
        ACCOUNT_CloudTrail-Digest_REGION_TRAILNAME_HOMEREGION_YYYYMMDDTHHmmssZ.json.gz

A log file is ``{"Records":[...]}`` with each record exactly as the audit table stores
it; both kinds are gzipped. Hashes (in digests) are of the uncompressed bytes.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from sealbox.crypto import random_token

_UNIQUE_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UNIQUE_LENGTH: Final = 16


def cloudtrail_time(when: datetime) -> str:
    """CloudTrail's timestamp: UTC, to the second, with a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_cloudtrail_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _base(prefix: str | None) -> str:
    return f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"


def log_prefix(prefix: str | None, account_id: str) -> str:
    """What the bucket policy must let cloudtrail.amazonaws.com write under."""
    return f"{_base(prefix)}{account_id}/"


def new_unique() -> str:
    return random_token(_UNIQUE_ALPHABET, UNIQUE_LENGTH)


def log_file_key(
    prefix: str | None, account_id: str, region: str, when: datetime, unique: str
) -> str:
    utc = when.astimezone(UTC)
    return (
        f"{_base(prefix)}{account_id}/CloudTrail/{region}/{utc:%Y/%m/%d}/"
        f"{account_id}_CloudTrail_{region}_{utc:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


def digest_key(
    prefix: str | None,
    account_id: str,
    region: str,
    trail_name: str,
    home_region: str,
    end: datetime,
) -> str:
    utc = end.astimezone(UTC)
    return (
        f"{_base(prefix)}{account_id}/CloudTrail-Digest/{region}/{utc:%Y/%m/%d}/"
        f"{account_id}_CloudTrail-Digest_{region}_{trail_name}_{home_region}_"
        f"{utc:%Y%m%dT%H%M%SZ}.json.gz"
    )


def log_file_body(records: Sequence[str]) -> bytes:
    """The uncompressed log file: the stored records, in order, unchanged."""
    return b'{"Records":[' + ",".join(records).encode() + b"]}"


def compress(body: bytes) -> bytes:
    """gzip with a fixed header (no name, mtime 0): the same body compresses the same."""
    return gzip.compress(body, compresslevel=6, mtime=0)


def decompress(data: bytes) -> bytes:
    return gzip.decompress(data)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
