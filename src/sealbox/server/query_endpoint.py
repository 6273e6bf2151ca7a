"""The Query-protocol endpoints (IAM, STS): form request → service call → XML response.

Authentication failures are answered with the Query services' own codes
(InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken, ...), not KMS's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sealbox.auth import errors as auth_errors
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.errors import AwsError, ClientError, InternalFailure
from sealbox.iam.errors import IamAccessDenied
from sealbox.iam.service import IamService
from sealbox.protocols import iam as iam_protocol
from sealbox.protocols import sts as sts_protocol
from sealbox.protocols.codec import models, query
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.dispatch import Service, execute
from sealbox.server.endpoint import ApiRequest, Response
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.query")

_XML_HEADERS = [(b"content-type", b"text/xml")]


def _query_error(code: str, status: int) -> type[ClientError]:
    return type(code, (ClientError,), {"code": code, "http_status": status})


# Query services name authentication failures differently from JSON services.
_AUTH_ERRORS: dict[type[AwsError], type[ClientError]] = {
    auth_errors.UnknownAccessKey: _query_error("InvalidClientTokenId", 403),
    auth_errors.SignatureMismatch: _query_error("SignatureDoesNotMatch", 403),
    auth_errors.SignatureExpired: _query_error("SignatureDoesNotMatch", 403),
    auth_errors.CredentialDateMismatch: _query_error("SignatureDoesNotMatch", 403),
    auth_errors.IncompleteSignature: _query_error("IncompleteSignature", 400),
    auth_errors.MissingAuthenticationToken: _query_error("MissingAuthenticationToken", 403),
    auth_errors.SessionExpired: _query_error("ExpiredToken", 400),
}


class QueryEndpoint:
    def __init__(
        self,
        runtime: Runtime,
        service_name: str,
        service: Any,
        operations: Mapping[str, Callable[[Any, Call, dict[str, Any]], dict[str, Any]]],
        read_only: frozenset[str],
        event_source: str,
    ) -> None:
        self._rt = runtime
        self._model = models.load_service(service_name)
        self._dispatch = Service(
            name=service_name,
            event_source=event_source,
            target=service,
            operations=operations,
            read_only=read_only,
            inline=frozenset(),  # IAM and STS calls read the database: worker threads
            not_implemented=_NotImplemented,
            internal_error=InternalFailure,
        )

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        """Query requests carry the operation in the signed body: nothing more to check."""

    def render_error(self, err: AwsError, request_id: str) -> Response:
        mapped = _AUTH_ERRORS.get(type(err))
        if mapped is not None:
            err = mapped(err.message)
        return query.render_error(err, request_id, self._model)

    async def handle(self, request: ApiRequest) -> Response:
        form = query.parse_form(request.body, request.query)
        operation = query.operation_for_action(self._model, form)
        return await execute(
            self._rt,
            self._dispatch,
            request,
            operation.name,
            parse=lambda: query.parse_request(operation, form),
            redact=lambda params: audit_parameters(operation, params),
            serialize=lambda result: (
                200,
                _XML_HEADERS,
                query.serialize_response(operation, result, request.request_id),
            ),
            render_error=lambda err: self.render_error(err, request.request_id),
        )


class _NotImplemented(ClientError):
    code = "NotImplemented"


class QueryEndpoints:
    """The IAM and STS endpoints of one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        authz = runtime.authorizer

        def authorize(call: Call, action: str, resource: str) -> None:
            authz.check(call, action, resource, call.principal.account_id, IamAccessDenied)

        iam = IamService(runtime.db, runtime.keystore, runtime.clock, runtime.audit, authorize)
        self.iam = QueryEndpoint(
            runtime,
            "iam",
            iam,
            iam_protocol.OPERATIONS,
            iam_protocol.READ_ONLY,
            iam_protocol.EVENT_SOURCE,
        )
        self.sts = QueryEndpoint(
            runtime,
            "sts",
            runtime.sts,
            sts_protocol.OPERATIONS,
            sts_protocol.READ_ONLY,
            sts_protocol.EVENT_SOURCE,
        )
