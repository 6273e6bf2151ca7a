"""The CloudTrail endpoint: JSON 1.1 request → LookupService call → JSON 1.1 response.

LookupEvents only reads, but a page can read up to 50 records, so it runs in a worker
thread rather than on the event loop; its own audit record is group-committed.
"""

from __future__ import annotations

from sealbox.audit.lookup import LookupService
from sealbox.errors import InternalFailure
from sealbox.protocols import cloudtrail as cloudtrail_protocol
from sealbox.server.json_endpoint import JsonEndpoint
from sealbox.server.runtime import Runtime


class CloudTrailEndpoint(JsonEndpoint[LookupService]):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            runtime,
            "cloudtrail",
            runtime.lookup,
            cloudtrail_protocol.OPERATIONS,
            cloudtrail_protocol.READ_ONLY,
            cloudtrail_protocol.EVENT_SOURCE,
            InternalFailure,
            inline=frozenset(),
            title="CloudTrail",
            parse=cloudtrail_protocol.parse_request,
        )
