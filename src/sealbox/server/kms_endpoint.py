"""The KMS endpoint: JSON 1.1 request → KmsService call → JSON 1.1 response.

Order per request: pick the operation, authenticate (SigV4), parse and validate the
body, call the service, record the audit event, answer. Every authenticated call is
audited, success or failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.errors import AwsError, ClientError
from sealbox.iam.model import Principal
from sealbox.kms.errors import KmsInternalError
from sealbox.protocols import kms as kms_protocol
from sealbox.protocols.codec import json11, models
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.http import Headers
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.kms")

_JSON_HEADERS: Headers = [(b"content-type", b"application/x-amz-json-1.1")]


class KmsEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._model = models.load_service("kms")

    def operation_for(self, target: str | None) -> Any:
        return models.operation_for_target(self._model, target or "")

    async def handle(
        self,
        operation: Any,
        principal: Principal,
        signed: SignedRequest,
        body: bytes,
        request_id: str,
        source_ip: str,
        user_agent: str,
    ) -> tuple[int, Headers, bytes]:
        started = time.perf_counter()
        name: str = operation.name
        # Built before the body is parsed, so a malformed call is audited too.
        call = Call(
            principal=principal,
            region=signed.region,
            event_source=kms_protocol.EVENT_SOURCE,
            event_name=name,
            request_id=request_id,
            source_ip=source_ip,
            user_agent=user_agent,
            read_only=name in kms_protocol.READ_ONLY,
        )
        outcome = "ok"
        try:
            params = json11.parse_request(operation, body)
            call.request_parameters = audit_parameters(operation, params)
            handler = kms_protocol.OPERATIONS.get(name)
            if handler is None:
                raise _NotImplemented(f"{name} is not supported by this server yet.")
            if call.read_only:
                result = handler(self._rt.kms, call, params)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, handler, self._rt.kms, call, params
                )
            if not call.audited:
                await self._rt.audit.submit(call)
            status, headers, payload = (
                200,
                _JSON_HEADERS,
                json11.serialize_response(operation, result),
            )
        except AwsError as err:
            outcome = err.code
            await self._audit_failure(call, err.code, err.message)
            status, headers, payload = json11.render_error(err, request_id)
        except Exception:
            log.exception("request %s (%s) failed", request_id, name)
            outcome = "KMSInternalException"
            internal = KmsInternalError("An internal error occurred; see the server log.")
            await self._audit_failure(call, internal.code, internal.message)
            status, headers, payload = json11.render_error(internal, request_id)
        observe_request("kms", name, outcome, time.perf_counter() - started)
        return status, headers, payload

    async def _audit_failure(self, call: Call, code: str, message: str) -> None:
        try:
            await self._rt.audit.submit(call, code, message)
        except Exception:
            log.exception("could not record the failure of request %s", call.request_id)


class _NotImplemented(ClientError):
    code = "UnsupportedOperationException"
