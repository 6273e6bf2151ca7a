"""A JSON 1.1 endpoint (KMS, CloudTrail): request → service call → JSON 1.1 response.

Order per request: pick the operation, authenticate (SigV4), parse and validate the
body, call the service, record the audit event, answer. Every authenticated call is
audited, success or failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from sealbox.auth.errors import IncompleteSignature
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.errors import AwsError, ClientError, UnknownOperationError
from sealbox.protocols.codec import json11, models
from sealbox.protocols.codec.models import OperationModel
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.endpoint import ApiRequest, Response, audit_error_code
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

S = TypeVar("S")
Params = dict[str, Any]
Parser = Callable[[OperationModel, bytes], Params]

_JSON_HEADERS = [(b"content-type", b"application/x-amz-json-1.1")]


class JsonEndpoint(Generic[S]):
    """One JSON 1.1 service.

    `operations` maps operation names to handlers `(service_obj, call, params) ->
    result`. Operations in `read_only` change no state and are audited by group commit;
    those in `inline` (by default the read-only ones) run on the event loop, the rest in
    a worker thread, where they may append their own audit record (`call.audited`).
    """

    def __init__(
        self,
        runtime: Runtime,
        service_name: str,
        service_obj: S,
        operations: Mapping[str, Callable[[S, Call, Params], Params]],
        read_only: frozenset[str],
        event_source: str,
        internal_error_class: type[AwsError],
        *,
        inline: frozenset[str] | None = None,
        title: str | None = None,
        parse: Parser = json11.parse_request,
    ) -> None:
        self._rt = runtime
        self._service_name = service_name
        self._service = service_obj
        self._operations = operations
        self._read_only = read_only
        self._inline = read_only if inline is None else inline
        self._event_source = event_source
        self._internal_error = internal_error_class
        self._title = title or service_name
        self._parse = parse
        self._model = models.load_service(service_name)
        self._log = logging.getLogger(f"sealbox.{service_name}")

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        if "x-amz-target" in headers and "x-amz-target" not in signed.signed_headers:
            # Otherwise a captured request could be replayed as another operation.
            raise IncompleteSignature("The X-Amz-Target header must be signed.")

    def render_error(self, err: AwsError, request_id: str) -> Response:
        return json11.render_error(err, request_id)

    async def handle(self, request: ApiRequest) -> Response:
        started = time.perf_counter()
        if request.method != "POST":
            raise UnknownOperationError(f"{self._title} operations are POST requests.")
        operation = models.operation_for_target(
            self._model, request.headers.get("x-amz-target", "")
        )
        name: str = operation.name
        # Built before the body is parsed, so a malformed call is audited too.
        call = Call(
            principal=request.principal,
            region=request.signed.region,
            event_source=self._event_source,
            event_name=name,
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.user_agent,
            read_only=name in self._read_only,
            secure_transport=request.secure,
        )
        outcome = "ok"
        try:
            params = self._parse(operation, request.body)
            call.request_parameters = audit_parameters(operation, params)
            handler = self._operations.get(name)
            if handler is None:
                raise _NotImplemented(f"{name} is not supported by this server yet.")
            if name in self._inline:
                result = handler(self._service, call, params)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, handler, self._service, call, params
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
            self._log.exception("request %s (%s) failed", request.request_id, name)
            internal = self._internal_error("An internal error occurred; see the server log.")
            outcome = internal.code
            await self._audit_failure(call, internal)
            response = json11.render_error(internal, request.request_id)
        observe_request(self._service_name, name, outcome, time.perf_counter() - started)
        return response

    async def _audit_failure(self, call: Call, err: AwsError) -> None:
        try:
            await self._rt.audit.submit(call, audit_error_code(err), err.message)
        except Exception:
            self._log.exception("could not record the failure of request %s", call.request_id)


class _NotImplemented(ClientError):
    code = "UnsupportedOperationException"
