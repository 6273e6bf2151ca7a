"""The audit journal's on-disk format: one event per line, each hash-chained.

A journal segment is a file of lines

    COLUMNS <TAB> RECORD <TAB> HEX(chain_hash) <LF>

where COLUMNS is a JSON array of the values the event is indexed by (see `COLUMNS`),
RECORD is the CloudTrail-shaped JSON record exactly as it will be stored, and

    chain_hash(n) = SHA-256(chain_hash(n-1) || COLUMNS <TAB> RECORD)
    chain_hash(0) = SHA-256(GENESIS || segment name)

JSON never contains a raw TAB, LF or NUL byte, so the separators are unambiguous.
Segments are preallocated with zero bytes: the readable content ends at the first NUL
(or at the end of the file), and a last line without its LF was torn by a crash
before it was acknowledged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from sealbox.audit import chain
from sealbox.audit.model import AuditEvent

SEGMENT_SUFFIX: Final = ".journal"
# <start time ns>-<pid>-<random hex>.journal: unique, and sorts by start time.
SEGMENT_NAME: Final = re.compile(r"^\d{20}-\d{1,10}-[0-9a-f]{8}\.journal$")

# The indexed columns, in the order they are written.
COLUMNS: Final = (
    "event_id", "event_time_us", "account_id", "region", "event_source", "event_name",
    "access_key_id", "principal_arn", "resource_arn", "error_code", "read_only", "username",
)  # fmt: skip
_TIME_INDEX: Final = COLUMNS.index("event_time_us")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_HASH_HEX_LEN: Final = 64


class JournalCorrupt(Exception):
    """A journal line does not chain to the one before it (edited, or damaged)."""

    def __init__(self, segment: str, offset: int, reason: str) -> None:
        super().__init__(f"audit journal {segment}: {reason} at byte {offset}")
        self.segment = segment
        self.offset = offset


@dataclass(frozen=True, slots=True)
class JournalEntry:
    columns: list[Any]  # as COLUMNS names them
    record: str  # the record JSON, stored as is

    @property
    def time_us(self) -> int:
        return int(self.columns[_TIME_INDEX])


def genesis(segment: str) -> bytes:
    return chain.link(chain.GENESIS, segment.encode())


def to_micros(when: datetime) -> int:
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def encode_body(event: AuditEvent) -> bytes:
    """The hashed part of an event's line (built on the request's thread)."""
    columns = orjson.dumps(
        [
            event.event_id,
            to_micros(event.event_time),
            event.account_id,
            event.region,
            event.event_source,
            event.event_name,
            event.access_key_id,
            event.principal_arn,
            event.resource_arn,
            event.error_code,
            event.read_only,
            event.username,
        ]
    )
    return columns + b"\t" + orjson.dumps(event.record)


def seal_lines(previous: bytes, bodies: list[bytes]) -> tuple[bytes, bytes]:
    """Chain bodies after previous: (the bytes to append, the new chain head)."""
    out = bytearray()
    for body in bodies:
        previous = chain.link(previous, body)
        out += body
        out += b"\t"
        out += previous.hex().encode()
        out += b"\n"
    return bytes(out), previous


@dataclass(slots=True)
class ParsedLines:
    entries: list[JournalEntry]
    consumed: int  # bytes of complete, verified lines
    head: bytes  # the chain hash of the last verified line
    torn: bool  # a complete-looking line failed its check, with nothing after it


def content_end(data: bytes) -> int:
    """Where the written part of data ends (the zero-filled rest was preallocated)."""
    nul = data.find(b"\0")
    return len(data) if nul < 0 else nul


def parse(segment: str, data: bytes, start: int, previous: bytes) -> ParsedLines:
    """The complete lines of data (read from offset start), checked against the chain.

    A line that fails its check is corruption, unless it is the last line read: a
    writer may still be copying it, so the caller decides (see `torn`).
    """
    entries: list[JournalEntry] = []
    end = content_end(data)
    pos = 0
    for line_end in _line_ends(data, end):
        line = data[pos:line_end]
        body, sep, digest = line.rpartition(b"\t")
        ok = bool(sep) and len(digest) == _HASH_HEX_LEN
        expected = chain.link(previous, body) if ok else b""
        if not ok or expected.hex().encode() != digest:
            if data.find(b"\n", line_end + 1, end) < 0:
                return ParsedLines(entries, pos, previous, torn=True)
            raise JournalCorrupt(segment, start + pos, "a line does not match its chain hash")
        columns_json, tab, record = body.partition(b"\t")
        try:
            columns = orjson.loads(columns_json)
        except orjson.JSONDecodeError as exc:
            raise JournalCorrupt(segment, start + pos, "unreadable columns") from exc
        if not tab or not isinstance(columns, list) or len(columns) != len(COLUMNS):
            raise JournalCorrupt(segment, start + pos, "a line has the wrong shape")
        entries.append(JournalEntry(columns, record.decode()))
        previous = expected
        pos = line_end + 1
    return ParsedLines(entries, pos, previous, torn=False)


def _line_ends(data: bytes, end: int) -> Iterator[int]:
    pos = 0
    while True:
        nl = data.find(b"\n", pos, end)
        if nl < 0:
            return
        yield nl
        pos = nl + 1
