"""A JSON 1.1 endpoint (KMS, CloudTrail): request → service call → JSON 1.1 response.

Order per request: pick the operation, authenticate (SigV4), parse and validate the
body, call the service, record the audit event, answer. Every authenticated call is
audited, success or failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from sealbox.auth.errors import IncompleteSignature
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.errors import AwsError, ClientError, UnknownOperationError
from sealbox.protocols.codec import json11, models
from sealbox.protocols.codec.models import OperationModel
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.dispatch import Service, execute
from sealbox.server.endpoint import ApiRequest, Response
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
        self._internal_error = internal_error_class
        self._title = title or service_name
        self._parse = parse
        self._model = models.load_service(service_name)
        self._dispatch = Service(
            name=service_name,
            event_source=event_source,
            target=service_obj,
            operations=operations,
            read_only=read_only,
            inline=read_only if inline is None else inline,
            not_implemented=_NotImplemented,
            internal_error=internal_error_class,
        )

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        if "x-amz-target" in headers and "x-amz-target" not in signed.signed_headers:
            # Otherwise a captured request could be replayed as another operation.
            raise IncompleteSignature("The X-Amz-Target header must be signed.")

    def render_error(self, err: AwsError, request_id: str) -> Response:
        return json11.render_error(err, request_id)

    async def handle(self, request: ApiRequest) -> Response:
        if request.method != "POST":
            raise UnknownOperationError(f"{self._title} operations are POST requests.")
        operation = models.operation_for_target(
            self._model, request.headers.get("x-amz-target", "")
        )
        return await execute(
            self._rt,
            self._dispatch,
            request,
            operation.name,
            parse=lambda: self._parse(operation, request.body),
            redact=lambda params: audit_parameters(operation, params),
            serialize=lambda result: (
                200,
                _JSON_HEADERS,
                json11.serialize_response(operation, result),
            ),
            render_error=lambda err: json11.render_error(err, request.request_id),
        )


class _NotImplemented(ClientError):
    code = "UnsupportedOperationException"
