"""CloudTrail operation table: wire parameters ⇄ LookupService calls.

Each handler takes the parsed request (botocore member names) and returns the wire
result. AWS semantics live in the service; this only maps names and shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sealbox.audit.errors import InvalidLookupAttributesError, InvalidMaxResultsError
from sealbox.audit.lookup import ATTRIBUTE_KEYS, DEFAULT_MAX_RESULTS, LookedUpEvent, LookupService
from sealbox.call import Call
from sealbox.errors import ClientError, ValidationError
from sealbox.protocols.codec import json11
from sealbox.protocols.codec.models import OperationModel

Params = dict[str, Any]
Handler = Callable[[LookupService, Call, Params], Params]

EVENT_SOURCE = "cloudtrail.amazonaws.com"


def _event(e: LookedUpEvent) -> Params:
    return {
        "EventId": e.event_id,
        "EventName": e.event_name,
        "ReadOnly": "true" if e.read_only else "false",
        "AccessKeyId": e.access_key_id,
        "EventTime": e.event_time,
        "EventSource": e.event_source,
        "Username": e.username,
        "Resources": [{"ResourceType": t, "ResourceName": n} for t, n in e.resources],
        "CloudTrailEvent": e.record,
    }


def lookup_events(svc: LookupService, call: Call, p: Params) -> Params:
    attributes = [(a["AttributeKey"], a["AttributeValue"]) for a in p.get("LookupAttributes", [])]
    result = svc.lookup_events(
        call,
        attributes,
        p.get("StartTime"),
        p.get("EndTime"),
        p.get("MaxResults"),
        p.get("NextToken"),
        event_category=p.get("EventCategory"),
    )
    return {"Events": [_event(e) for e in result.events], "NextToken": result.next_token}


OPERATIONS: dict[str, Handler] = {
    "LookupEvents": lookup_events,
}

# Every operation here only reads; they are audited by group commit.
READ_ONLY = frozenset({"LookupEvents"})


def parse_request(operation: OperationModel, body: bytes) -> Params:
    """json11.parse_request, with CloudTrail's own codes for the checks it names:
    InvalidMaxResultsException and InvalidLookupAttributesException rather than a
    generic ValidationException."""
    try:
        return json11.parse_request(operation, body)
    except ValidationError as err:
        raise (_cloudtrail_error(body) or err) from None


def _cloudtrail_error(body: bytes) -> ClientError | None:
    """Only on the error path: look again at the members CloudTrail checks itself."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    limit = obj.get("MaxResults")
    if type(limit) is int and not 1 <= limit <= DEFAULT_MAX_RESULTS:
        return InvalidMaxResultsError(
            f"MaxResults must be between 1 and {DEFAULT_MAX_RESULTS}; got {limit}."
        )
    attributes = obj.get("LookupAttributes")
    if isinstance(attributes, list):
        for attribute in attributes:
            if not isinstance(attribute, dict):
                continue
            key, value = attribute.get("AttributeKey"), attribute.get("AttributeValue")
            if isinstance(key, str) and key not in ATTRIBUTE_KEYS:
                shown = key if len(key) <= 64 else key[:64] + "..."
                return InvalidLookupAttributesError(f"Lookup attribute key {shown!r} is not valid.")
            if isinstance(value, str) and not 1 <= len(value) <= 2000:
                return InvalidLookupAttributesError(
                    "A lookup attribute value must be 1 to 2000 characters long."
                )
    return None
