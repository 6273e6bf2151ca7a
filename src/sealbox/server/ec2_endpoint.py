"""The EC2 endpoint (volumes, snapshots, tags, encryption by default): EC2 Query request
→ EbsService call → EC2 XML response.

EC2's wire rules (``VolumeId.1``, ``Filter.1.Name``, responses without a result wrapper,
lists as ``<item>``, ``<Response><Errors><Error>`` documents) are the Query codec's EC2
protocol. What this adds: EC2's error codes for malformed input (MissingParameter,
InvalidParameterValue rather than the Query services' ValidationError), and auditing of
the KMS calls EC2 makes on the caller's behalf (``call.related``) with the call itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sealbox.auth import errors as auth_errors
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.ebs.errors import Ec2InternalError, InvalidParameterValue, MissingParameter
from sealbox.ebs.service import EbsService
from sealbox.errors import AwsError, ClientError
from sealbox.protocols import ec2 as ec2_protocol
from sealbox.protocols.codec import models, query
from sealbox.protocols.codec.redact import audit_parameters
from sealbox.server.endpoint import ApiRequest, Response, audit_error_code
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.ec2")

Params = dict[str, Any]
R = TypeVar("R")
_XML_HEADERS = [(b"content-type", b"text/xml;charset=UTF-8")]


def _ec2_error(code: str, status: int) -> type[ClientError]:
    return type(code, (ClientError,), {"code": code, "http_status": status})


# EC2 names authentication failures as the Query services do, except an unknown key.
_AUTH_ERRORS: dict[type[AwsError], type[ClientError]] = {
    auth_errors.UnknownAccessKey: _ec2_error("AuthFailure", 401),
    auth_errors.SignatureMismatch: _ec2_error("SignatureDoesNotMatch", 403),
    auth_errors.SignatureExpired: _ec2_error("RequestExpired", 400),
    auth_errors.CredentialDateMismatch: _ec2_error("SignatureDoesNotMatch", 403),
    auth_errors.IncompleteSignature: _ec2_error("IncompleteSignature", 400),
    auth_errors.MissingAuthenticationToken: _ec2_error("MissingAuthenticationToken", 401),
    auth_errors.SessionExpired: _ec2_error("RequestExpired", 400),
}

_NULL_MEMBER = re.compile(r"Value null at '([^']+)' failed to satisfy constraint")
_VALUE_AT = re.compile(r"at '([^']+)'")


class UnsupportedOperation(ClientError):
    code = "UnsupportedOperation"


def ec2_input_error(err: AwsError) -> AwsError:
    """The Query codec's input errors as EC2 words them."""
    if isinstance(err, query.QueryValidationError):
        missing = _NULL_MEMBER.search(err.message)
        if missing is not None:
            name = missing.group(1).split(".")[-1]
            return MissingParameter(f"The request must contain the parameter {name}")
        return InvalidParameterValue(err.message)
    if isinstance(err, query.MalformedInputError):
        where = _VALUE_AT.search(err.message)
        name = where.group(1) if where else "input"
        return InvalidParameterValue(f"Invalid value for parameter {name}: {err.message}")
    return err


async def execute_with_related(
    rt: Runtime,
    *,
    service_name: str,
    target: Any,
    handler: Callable[[Any, Call, Params], R] | None,
    call: Call,
    parse: Callable[[], Params],
    redact: Callable[[Params], Params | None],
    serialize: Callable[[R], Response],
    render_error: Callable[[AwsError], Response],
    internal_error: Callable[[str], AwsError],
) -> Response:
    """Parse, run the handler in a worker thread, audit the KMS calls made on the
    caller's behalf and then the call itself (success or failure), answer."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        params = parse()
        call.request_parameters = redact(params)
        if handler is None:
            raise UnsupportedOperation(
                f"The operation {call.event_name} is not supported by this server."
            )
        result = await asyncio.get_running_loop().run_in_executor(
            None, handler, target, call, params
        )
        await _audit(rt, call, None, None)
        response = serialize(result)
    except AwsError as err:
        outcome = err.code
        await _audit_failure(rt, call, err)
        response = render_error(err)
    except Exception:
        log.exception("request %s (%s) failed", call.request_id, call.event_name)
        internal = internal_error("An internal error has occurred; see the server log.")
        outcome = internal.code
        await _audit_failure(rt, call, internal)
        response = render_error(internal)
    observe_request(service_name, call.event_name, outcome, time.perf_counter() - started)
    return response


async def _audit(rt: Runtime, call: Call, code: str | None, message: str | None) -> None:
    for related, r_code, r_message in call.related:
        await rt.audit.submit(related, r_code, r_message)
    call.related.clear()
    await rt.audit.submit(call, code, message)


async def _audit_failure(rt: Runtime, call: Call, err: AwsError) -> None:
    try:
        await _audit(rt, call, audit_error_code(err), err.message)
    except Exception:
        log.exception("could not record the failure of request %s", call.request_id)


class Ec2Endpoint:
    def __init__(self, runtime: Runtime, service: EbsService | None = None) -> None:
        self._rt = runtime
        self._svc = service or runtime.ebs
        self._model = models.load_service("ec2")

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        """EC2 requests carry the operation in the signed body: nothing more to check."""

    def render_error(self, err: AwsError, request_id: str) -> Response:
        mapped = _AUTH_ERRORS.get(type(err))
        if mapped is not None:
            err = mapped(err.message)
        return query.render_error(err, request_id, self._model)

    async def handle(self, request: ApiRequest) -> Response:
        form = query.parse_form(request.body, request.query)
        operation = query.operation_for_action(self._model, form)
        name = operation.name
        call = Call(
            principal=request.principal,
            region=request.signed.region,
            event_source=ec2_protocol.EVENT_SOURCE,
            event_name=name,
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.user_agent,
            read_only=name in ec2_protocol.READ_ONLY,
            secure_transport=request.secure,
        )

        def parse() -> Params:
            try:
                return query.parse_request(operation, form)
            except (query.QueryValidationError, query.MalformedInputError) as err:
                raise ec2_input_error(err) from None

        return await execute_with_related(
            self._rt,
            service_name="ec2",
            target=self._svc,
            handler=ec2_protocol.OPERATIONS.get(name),
            call=call,
            parse=parse,
            redact=lambda params: audit_parameters(operation, params),
            serialize=lambda result: (
                200,
                _XML_HEADERS,
                query.serialize_response(operation, result, request.request_id),
            ),
            render_error=lambda err: self.render_error(err, request.request_id),
            internal_error=Ec2InternalError,
        )
