"""The KMS endpoint: JSON 1.1 request → KmsService call → JSON 1.1 response.

Order per request: pick the operation, authenticate (SigV4), parse and validate the
body, call the service, record the audit event, answer. Every authenticated call is
audited, success or failure.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sealbox.auth.errors import IncompleteSignature
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.errors import AwsError, ClientError, UnknownOperationError
from sealbox.kms.errors import KmsInternalError
from sealbox.protocols import kms as kms_protocol
from sealbox.protocols.codec import json11, models
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.endpoint import ApiRequest, Response, audit_error_code
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.kms")

_JSON_HEADERS = [(b"content-type", b"application/x-amz-json-1.1")]


class KmsEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._model = models.load_service("kms")

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        if "x-amz-target" in headers and "x-amz-target" not in signed.signed_headers:
            # Otherwise a captured request could be replayed as another operation.
            raise IncompleteSignature("The X-Amz-Target header must be signed.")

    def render_error(self, err: AwsError, request_id: str) -> Response:
        return json11.render_error(err, request_id)

    async def handle(self, request: ApiRequest) -> Response:
        started = time.perf_counter()
        if request.method != "POST":
            raise UnknownOperationError("KMS operations are POST requests.")
        operation = models.operation_for_target(
            self._model, request.headers.get("x-amz-target", "")
        )
        name: str = operation.name
        # Built before the body is parsed, so a malformed call is audited too.
        call = Call(
            principal=request.principal,
            region=request.signed.region,
            event_source=kms_protocol.EVENT_SOURCE,
            event_name=name,
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.user_agent,
            read_only=name in kms_protocol.READ_ONLY,
            secure_transport=request.secure,
        )
        outcome = "ok"
        try:
            params = json11.parse_request(operation, request.body)
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
            response: Response = (
                200,
                _JSON_HEADERS,
                json11.serialize_response(operation, result),
            )
        except AwsError as err:
            outcome = err.code
            await self._audit_failure(call, err)
            response = json11.render_error(err, request.request_id)
        except Exception:
            log.exception("request %s (%s) failed", request.request_id, name)
            outcome = "KMSInternalException"
            internal = KmsInternalError("An internal error occurred; see the server log.")
            await self._audit_failure(call, internal)
            response = json11.render_error(internal, request.request_id)
        observe_request("kms", name, outcome, time.perf_counter() - started)
        return response

    async def _audit_failure(self, call: Call, err: AwsError) -> None:
        try:
            await self._rt.audit.submit(call, audit_error_code(err), err.message)
        except Exception:
            log.exception("could not record the failure of request %s", call.request_id)


class _NotImplemented(ClientError):
    code = "UnsupportedOperationException"
