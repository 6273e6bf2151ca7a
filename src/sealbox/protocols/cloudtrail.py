"""CloudTrail operation table: wire parameters ⇄ LookupService and TrailService calls.

Each handler takes the parsed request (botocore member names) and returns the wire
result. AWS semantics live in the services; this only maps names and shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sealbox.audit.errors import InvalidLookupAttributesError, InvalidMaxResultsError
from sealbox.audit.lookup import ATTRIBUTE_KEYS, DEFAULT_MAX_RESULTS, LookedUpEvent, LookupService
from sealbox.audit.selectors import DEFAULT_SELECTORS
from sealbox.audit.trail_layout import cloudtrail_time
from sealbox.audit.trail_model import Trail
from sealbox.audit.trails import TrailChanges, TrailService
from sealbox.call import Call
from sealbox.errors import ClientError, ValidationError
from sealbox.protocols.codec import json11
from sealbox.protocols.codec.models import OperationModel

Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloudTrailServices:
    lookup: LookupService
    trails: TrailService


Handler = Callable[[CloudTrailServices, Call, Params], Params]

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


def lookup_events(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    attributes = [(a["AttributeKey"], a["AttributeValue"]) for a in p.get("LookupAttributes", [])]
    result = svc.lookup.lookup_events(
        call,
        attributes,
        p.get("StartTime"),
        p.get("EndTime"),
        p.get("MaxResults"),
        p.get("NextToken"),
        event_category=p.get("EventCategory"),
    )
    return {"Events": [_event(e) for e in result.events], "NextToken": result.next_token}


# -- trails ----------------------------------------------------------------------------------


def trail_view(t: Trail) -> Params:
    return {
        "Name": t.name,
        "S3BucketName": t.s3_bucket,
        "S3KeyPrefix": t.s3_prefix,
        "IncludeGlobalServiceEvents": t.include_global,
        "IsMultiRegionTrail": t.multi_region,
        "HomeRegion": t.region,
        "TrailARN": t.arn,
        "LogFileValidationEnabled": t.log_validation,
        "KmsKeyId": t.kms_key_id,
        "HasCustomEventSelectors": t.has_custom_selectors,
        "HasInsightSelectors": False,
        "IsOrganizationTrail": False,
    }


def _unsupported(p: Params) -> list[str]:
    names = ["SnsTopicName", "CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn"]
    out = [n for n in names if p.get(n)]
    if p.get("IsOrganizationTrail"):
        out.append("IsOrganizationTrail")
    return out


def create_trail(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    trail = svc.trails.create_trail(
        call,
        p["Name"],
        p["S3BucketName"],
        s3_prefix=p.get("S3KeyPrefix"),
        include_global=p.get("IncludeGlobalServiceEvents", True),
        multi_region=p.get("IsMultiRegionTrail", False),
        log_validation=p.get("EnableLogFileValidation", False),
        kms_key_id=p.get("KmsKeyId"),
        tags=p.get("TagsList", []),
        unsupported=_unsupported(p),
    )
    return trail_view(trail)


def update_trail(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    changes = TrailChanges(
        s3_bucket=p.get("S3BucketName"),
        s3_prefix=p.get("S3KeyPrefix"),
        include_global=p.get("IncludeGlobalServiceEvents"),
        multi_region=p.get("IsMultiRegionTrail"),
        log_validation=p.get("EnableLogFileValidation"),
        kms_key_id=p.get("KmsKeyId"),
    )
    return trail_view(svc.trails.update_trail(call, p["Name"], changes, _unsupported(p)))


def get_trail(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    return {"Trail": trail_view(svc.trails.get_trail(call, p["Name"]))}


def describe_trails(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    trails = svc.trails.describe_trails(
        call, p.get("trailNameList"), p.get("includeShadowTrails", True)
    )
    return {"trailList": [trail_view(t) for t in trails]}


def list_trails(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    trails = svc.trails.list_trails(call)
    return {"Trails": [{"TrailARN": t.arn, "Name": t.name, "HomeRegion": t.region} for t in trails]}


def delete_trail(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    svc.trails.delete_trail(call, p["Name"])
    return {}


def start_logging(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    svc.trails.start_logging(call, p["Name"])
    return {}


def stop_logging(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    svc.trails.stop_logging(call, p["Name"])
    return {}


def _text(when: datetime | None) -> str:
    return "" if when is None else cloudtrail_time(when)


def get_trail_status(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    trail, state = svc.trails.get_trail_status(call, p["Name"])
    succeeded = state.latest_delivery_time if state.latest_delivery_error is None else None
    return {
        "IsLogging": trail.is_logging,
        "LatestDeliveryError": state.latest_delivery_error,
        "LatestDeliveryTime": state.latest_delivery_time,
        "StartLoggingTime": trail.start_logging_time,
        "StopLoggingTime": trail.stop_logging_time,
        "LatestDigestDeliveryTime": state.latest_digest_time,
        "LatestDigestDeliveryError": state.latest_digest_error,
        "LatestDeliveryAttemptTime": _text(state.latest_delivery_attempt),
        "LatestDeliveryAttemptSucceeded": _text(succeeded),
        "LatestNotificationAttemptTime": "",
        "LatestNotificationAttemptSucceeded": "",
        "TimeLoggingStarted": _text(trail.start_logging_time),
        "TimeLoggingStopped": _text(trail.stop_logging_time),
    }


def _selectors(trail: Trail) -> Params:
    if trail.advanced_selectors is not None:
        return {"TrailARN": trail.arn, "AdvancedEventSelectors": trail.advanced_selectors}
    selectors = trail.event_selectors
    return {
        "TrailARN": trail.arn,
        "EventSelectors": list(DEFAULT_SELECTORS) if selectors is None else selectors,
    }


def put_event_selectors(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    trail = svc.trails.put_event_selectors(
        call, p["TrailName"], p.get("EventSelectors"), p.get("AdvancedEventSelectors")
    )
    return _selectors(trail)


def get_event_selectors(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    return _selectors(svc.trails.get_event_selectors(call, p["TrailName"]))


def list_public_keys(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    keys = svc.trails.list_public_keys(call, p.get("StartTime"), p.get("EndTime"))
    return {
        "PublicKeyList": [
            {
                # DER PKCS #1; on the wire base64 (a blob). The aws CLI leaves blobs
                # undecoded, and validate-logs base64-decodes Value itself.
                "Value": k.public_key,
                "ValidityStartTime": k.valid_from,
                "ValidityEndTime": k.valid_to,
                "Fingerprint": k.fingerprint,
            }
            for k in keys
        ]
    }


def add_tags(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    svc.trails.add_tags(call, p["ResourceId"], p.get("TagsList", []))
    return {}


def remove_tags(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    svc.trails.remove_tags(call, p["ResourceId"], p.get("TagsList", []))
    return {}


def list_tags(svc: CloudTrailServices, call: Call, p: Params) -> Params:
    tagged = svc.trails.list_tags(call, p["ResourceIdList"])
    return {
        "ResourceTagList": [
            {"ResourceId": arn, "TagsList": [{"Key": k, "Value": v} for k, v in tags.items()]}
            for arn, tags in tagged
        ]
    }


OPERATIONS: dict[str, Handler] = {
    "LookupEvents": lookup_events,
    "CreateTrail": create_trail,
    "UpdateTrail": update_trail,
    "GetTrail": get_trail,
    "DescribeTrails": describe_trails,
    "ListTrails": list_trails,
    "DeleteTrail": delete_trail,
    "StartLogging": start_logging,
    "StopLogging": stop_logging,
    "GetTrailStatus": get_trail_status,
    "PutEventSelectors": put_event_selectors,
    "GetEventSelectors": get_event_selectors,
    "ListPublicKeys": list_public_keys,
    "AddTags": add_tags,
    "RemoveTags": remove_tags,
    "ListTags": list_tags,
}

# These only read and are audited by group commit; the others change a trail and append
# their audit record in the same transaction.
READ_ONLY = frozenset(
    {
        "LookupEvents",
        "GetTrail",
        "DescribeTrails",
        "ListTrails",
        "GetTrailStatus",
        "GetEventSelectors",
        "ListPublicKeys",
        "ListTags",
    }
)


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
