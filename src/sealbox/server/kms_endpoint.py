"""The KMS endpoint: JSON 1.1 request → KmsService call → JSON 1.1 response.

See server/json_endpoint.py for the order of work per request: every authenticated call
is audited, success or failure.
"""

from __future__ import annotations

from sealbox.kms.errors import KmsInternalError
from sealbox.kms.service import KmsService
from sealbox.protocols import kms as kms_protocol
from sealbox.server.json_endpoint import JsonEndpoint
from sealbox.server.runtime import Runtime


class KmsEndpoint(JsonEndpoint[KmsService]):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            runtime,
            "kms",
            runtime.kms,
            kms_protocol.OPERATIONS,
            kms_protocol.READ_ONLY,
            kms_protocol.EVENT_SOURCE,
            KmsInternalError,
            title="KMS",
            # GetKeyLastUsage first moves journalled events into the table: a write.
            inline=kms_protocol.READ_ONLY - {"GetKeyLastUsage"},
        )
