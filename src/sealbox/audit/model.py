"""The audit record: CloudTrail's event record shape, built from a Call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sealbox.call import Call
from sealbox.crypto import unique_id

EVENT_VERSION = "1.11"

_RESOURCE_TYPES = {
    "kms": "AWS::KMS::Key",
    "s3": "AWS::S3::Object",
    "ec2": "AWS::EC2::Volume",
    "cloudtrail": "AWS::CloudTrail::Trail",
}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A finished record plus the columns it is indexed by."""

    event_id: str
    event_time: datetime
    account_id: str
    region: str
    event_source: str
    event_name: str
    access_key_id: str | None
    principal_arn: str
    resource_arn: str | None
    error_code: str | None
    read_only: bool
    record: dict[str, Any]
    username: str | None = None  # LookupEvents' Username: user, session or "root"


def _resource(arn: str, owner: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) > 2 else ""
    account = parts[4] if len(parts) > 4 else ""
    kind = _RESOURCE_TYPES.get(service, service)
    if service == "s3":
        # S3 ARNs carry no account; a bucket ARN has no "/" after the name.
        account = owner
        kind = "AWS::S3::Object" if "/" in parts[5] else "AWS::S3::Bucket"
    return {"accountId": account, "type": kind, "ARN": arn}


_last_time: tuple[int, str] = (0, "")


def _event_time(when: datetime) -> str:
    """CloudTrail's second-resolution time; formatted once per second (hot path)."""
    global _last_time
    second = int(when.timestamp())
    if _last_time[0] != second:
        _last_time = (second, when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last_time[1]


def build_event(
    call: Call, when: datetime, error_code: str | None = None, error_message: str | None = None
) -> AuditEvent:
    p = call.principal
    identity: dict[str, Any] = {
        "type": p.principal_type,
        "principalId": p.principal_id,
        "arn": p.arn,
        "accountId": p.account_id,
    }
    if p.access_key_id:
        identity["accessKeyId"] = p.access_key_id
    if p.user_name and p.principal_type == "IAMUser":
        identity["userName"] = p.user_name
    if call.invoked_by:
        identity["invokedBy"] = call.invoked_by
    event_id = unique_id()
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": _event_time(when),
        "eventSource": call.event_source,
        "eventName": call.event_name,
        "awsRegion": call.region,
        "sourceIPAddress": call.invoked_by or call.source_ip,
        "userAgent": call.invoked_by or call.user_agent,
        "requestParameters": call.request_parameters,
        "responseElements": call.response_elements if error_code is None else None,
        "requestID": call.request_id,
        "eventID": event_id,
        "readOnly": call.read_only,
        "resources": [_resource(a, p.account_id) for a in call.resources],
        "eventType": "AwsApiCall",
        "managementEvent": not call.data_event,
        "recipientAccountId": p.account_id,
        "eventCategory": "Data" if call.data_event else "Management",
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or ""
    return AuditEvent(
        event_id=event_id,
        event_time=when,
        account_id=p.account_id,
        region=call.region,
        event_source=call.event_source,
        event_name=call.event_name,
        access_key_id=p.access_key_id,
        principal_arn=p.arn,
        resource_arn=call.resources[0] if call.resources else None,
        error_code=error_code,
        read_only=call.read_only,
        record=record,
        username=_username(p.principal_type, p.user_name, p.arn),
    )


def _username(principal_type: str, user_name: str | None, arn: str) -> str | None:
    if principal_type == "Root":
        return "root"
    if principal_type == "IAMUser":
        return user_name
    if principal_type == "AssumedRole":
        return arn.rsplit("/", 1)[-1]  # the session name
    return None
