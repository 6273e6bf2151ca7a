"""The audit hash chain.

Every record is chained to the one before it, in sequence order, across all accounts:

    chain_hash(n) = SHA-256(chain_hash(n-1) || record_bytes(n))

where record_bytes is the record exactly as stored (UTF-8 JSON) and chain_hash(0) is
GENESIS. The head (last sequence number and hash) lives in its own row, updated in the
same transaction as the inserts, so a truncated tail is detected too. When old records
leave the hot table (retention) the hash just before the oldest kept record becomes the
anchor verification starts from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

GENESIS = bytes(32)


def link(previous: bytes, record: bytes) -> bytes:
    return hashlib.sha256(previous + record).digest()


def extend(previous: bytes, records: Iterable[bytes]) -> list[bytes]:
    """The chain hashes of records appended after a record whose hash is previous."""
    out: list[bytes] = []
    for record in records:
        previous = link(previous, record)
        out.append(previous)
    return out
