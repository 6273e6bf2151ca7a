"""The CloudTrail endpoint: JSON 1.1 request → LookupService / TrailService call → JSON 1.1
response.

Every operation runs in a worker thread rather than on the event loop (a LookupEvents page
reads up to 50 records; trail changes write). Reads are group-committed to the audit
chain; trail changes append their record in their own transaction.
"""

from __future__ import annotations

from sealbox.errors import InternalFailure
from sealbox.protocols import cloudtrail as cloudtrail_protocol
from sealbox.protocols.cloudtrail import CloudTrailServices
from sealbox.server.json_endpoint import JsonEndpoint
from sealbox.server.runtime import Runtime


class CloudTrailEndpoint(JsonEndpoint[CloudTrailServices]):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            runtime,
            "cloudtrail",
            CloudTrailServices(runtime.lookup, runtime.trails),
            cloudtrail_protocol.OPERATIONS,
            cloudtrail_protocol.READ_ONLY,
            cloudtrail_protocol.EVENT_SOURCE,
            InternalFailure,
            inline=frozenset(),
            title="CloudTrail",
            parse=cloudtrail_protocol.parse_request,
        )
