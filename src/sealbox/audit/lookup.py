"""CloudTrail LookupEvents: the caller's account's audit events, newest first.

AWS semantics: at most one lookup attribute; StartTime and EndTime bound the event
time (both inclusive, at CloudTrail's one-second resolution); MaxResults 1..50
(default 50); NextToken continues the same query and is refused for any other.
Events are never shown across accounts. The caller needs cloudtrail:LookupEvents on
"*" (identity policies; the account root may).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox.audit.errors import (
    InvalidLookupAttributesError,
    InvalidMaxResultsError,
    InvalidNextTokenError,
    InvalidTimeRangeError,
)
from sealbox.audit.model import _RESOURCE_TYPES as RESOURCE_TYPES
from sealbox.call import Call
from sealbox.errors import AccessDeniedError
from sealbox.iam.authz import Authorizer
from sealbox.storage import audit_lookup_repo as repo
from sealbox.storage.audit_lookup_repo import Criteria, FilterColumn, LookupRow
from sealbox.storage.db import Database

DEFAULT_MAX_RESULTS: Final = 50
_PAGE_FORMAT: Final = "1"  # the version of the NextToken layout
_TOKEN_LIMIT: Final = 256
_SECOND: Final = timedelta(seconds=1)

# LookupAttribute keys that map to one indexed column, compared for equality.
_COLUMNS: Final[dict[str, FilterColumn]] = {
    "EventId": "event_id",
    "EventName": "event_name",
    "Username": "username",
    "EventSource": "event_source",
    "AccessKeyId": "access_key_id",
}
ATTRIBUTE_KEYS: Final = frozenset({*_COLUMNS, "ReadOnly", "ResourceType", "ResourceName"})


@dataclass(frozen=True, slots=True)
class LookedUpEvent:
    event_id: str
    event_name: str
    read_only: bool
    access_key_id: str | None
    event_time: datetime  # to the second, as CloudTrail reports it
    event_source: str
    username: str | None
    resources: list[tuple[str, str]]  # (resource type, resource name)
    record: str  # the CloudTrail event record (JSON text)


@dataclass(frozen=True, slots=True)
class LookupResult:
    events: list[LookedUpEvent]
    next_token: str | None


class LookupService:
    def __init__(
        self, db: Database, authorizer: Authorizer, catch_up: Callable[[], object] = lambda: None
    ) -> None:
        self._db = db
        self._authz = authorizer
        self._catch_up = catch_up  # moves journalled events into the table first

    def lookup_events(
        self,
        call: Call,
        attributes: Sequence[tuple[str, str]] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        *,
        event_category: str | None = None,
    ) -> LookupResult:
        account = call.principal.account_id
        self._authz.check(call, "cloudtrail:LookupEvents", "*", account, AccessDeniedError)
        limit = DEFAULT_MAX_RESULTS if max_results is None else max_results
        if not 1 <= limit <= DEFAULT_MAX_RESULTS:
            raise InvalidMaxResultsError(
                f"MaxResults must be between 1 and {DEFAULT_MAX_RESULTS}; got {limit}."
            )
        if len(attributes) > 1:
            raise InvalidLookupAttributesError("You can only specify one lookup attribute.")
        start, end = _aware(start), _aware(end)
        if start is not None and end is not None and start > end:
            raise InvalidTimeRangeError("The start time must not be later than the end time.")
        window_start = None if start is None else _to_second(start)
        window_end = None if end is None else _to_second(end) + _SECOND
        fingerprint = _fingerprint(account, attributes, window_start, window_end)
        before = None if next_token is None else _read_token(next_token, fingerprint)
        self._catch_up()
        with self._db.read() as conn:
            criteria = self._criteria(conn, call, attributes, window_start, window_end)
            if event_category is not None or criteria is None:
                return LookupResult([], None)  # no Insights events; nothing can match
            rows = repo.lookup(conn, criteria, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        token = _make_token(rows[-1].seq, fingerprint) if more else None
        return LookupResult([_event(r) for r in rows], token)

    def _criteria(
        self,
        conn: Connection,
        call: Call,
        attributes: Sequence[tuple[str, str]],
        start: datetime | None,
        end: datetime | None,
    ) -> Criteria | None:
        """The query, or None when the attribute can match no event."""
        account = call.principal.account_id
        if not attributes:
            return Criteria(account, start=start, end=end)
        key, value = attributes[0]
        if key not in ATTRIBUTE_KEYS:
            raise InvalidLookupAttributesError(
                f"Lookup attribute key {key!r} is not valid; use one of "
                f"{', '.join(sorted(ATTRIBUTE_KEYS))}."
            )
        if not value:
            raise InvalidLookupAttributesError("The lookup attribute value must not be empty.")
        column = _COLUMNS.get(key)
        if column is not None:
            return Criteria(account, column, (value,), start=start, end=end)
        if key == "ReadOnly":
            flag = value.lower()
            if flag not in ("true", "false"):
                raise InvalidLookupAttributesError("ReadOnly must be 'true' or 'false'.")
            return Criteria(account, "read_only", (flag == "true",), start=start, end=end)
        if key == "ResourceType":
            service = _service_of_type(value)
            if service is None:
                return None
            prefix = f"arn:{arns.PARTITION}:{service}:"
            return Criteria(account, arn_prefix=prefix, start=start, end=end)
        # ResourceName: the resource's ARN, or a KMS key's id (its ARN in each region
        # where the account has or had the key, and in the caller's region).
        names = [value]
        if arns.is_key_id(value):
            regions = {call.region, *repo.kms_key_regions(conn, account, value)}
            names = [arns.key_arn(region, account, value) for region in sorted(regions)]
        return Criteria(account, "resource_arn", tuple(names), start=start, end=end)


def _service_of_type(resource_type: str) -> str | None:
    """The ARN service of a ResourceType, as audit/model.py derives types from ARNs."""
    for service, mapped in RESOURCE_TYPES.items():
        if mapped == resource_type:
            return service
    if resource_type in RESOURCE_TYPES or ":" in resource_type:
        return None  # a service whose resources carry another type name
    return resource_type  # types of unmapped services are the service name


def _aware(when: datetime | None) -> datetime | None:
    """when, a naive value read as UTC."""
    return when if when is None or when.tzinfo is not None else when.replace(tzinfo=UTC)


def _to_second(when: datetime) -> datetime:
    """when in UTC, to CloudTrail's whole second."""
    aware = _aware(when)
    assert aware is not None
    return aware.astimezone(UTC).replace(microsecond=0)


def _event(row: LookupRow) -> LookedUpEvent:
    record: dict[str, Any] = orjson.loads(row.record)
    resources = [
        (str(r.get("type", "")), str(r.get("ARN", "")))
        for r in record.get("resources") or ()
        if isinstance(r, dict)
    ]
    return LookedUpEvent(
        event_id=row.event_id,
        event_name=row.event_name,
        read_only=row.read_only,
        access_key_id=row.access_key_id,
        event_time=_to_second(row.event_time),
        event_source=row.event_source,
        username=row.username,
        resources=resources,
        record=row.record,
    )


# -- NextToken: the last seq returned, bound to the query it continues -------------------


def _fingerprint(
    account: str,
    attributes: Sequence[tuple[str, str]],
    start: datetime | None,
    end: datetime | None,
) -> str:
    shape = [
        account,
        [list(a) for a in attributes],
        None if start is None else start.isoformat(),
        None if end is None else end.isoformat(),
    ]
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()[:16]


def _make_token(seq: int, fingerprint: str) -> str:
    text = f"{_PAGE_FORMAT}:{seq}:{fingerprint}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> int:
    invalid = InvalidNextTokenError("The NextToken is not valid for this request.")
    if not token or len(token) > _TOKEN_LIMIT:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != _PAGE_FORMAT or not parts[1].isdigit():
        raise invalid
    if parts[2] != fingerprint:
        raise invalid
    seq = int(parts[1])
    if seq < 1:
        raise invalid
    return seq
