"""KMS calls a service makes on a caller's behalf (S3 and EBS asking for data keys).

Each one is a Call of its own: the caller's principal, invoked by the service, so the
key policy sees kms:ViaService and the audit trail shows who caused it. It is collected
on the caller's Call (``related``) and audited with it, success or failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sealbox.call import Call
from sealbox.errors import AwsError

T = TypeVar("T")


def kms_call(call: Call, region: str, event_name: str, service: str) -> Call:
    """The Call of a KMS operation ``service`` ("s3.amazonaws.com") makes for call."""
    return Call(
        principal=call.principal,
        region=region,
        event_source="kms.amazonaws.com",
        event_name=event_name,
        request_id=call.request_id,
        source_ip=service,
        user_agent=service,
        secure_transport=call.secure_transport,
        invoked_by=service,
    )


def run(call: Call, sub: Call, work: Callable[[], T], count: Callable[[str], None]) -> T:
    """Run work (the KMS operation of sub), count it and record it on call; KMS's error
    is re-raised unchanged for the service to surface in its own terms."""
    count(sub.event_name)
    try:
        result = work()
    except AwsError as err:
        call.related.append((sub, err.code, err.message))
        raise
    call.related.append((sub, None, None))
    return result
