"""One API call's life cycle, shared by every protocol endpoint.

The endpoint knows its codec; this knows the rest: build the Call (before parsing, so
a malformed call is audited too), run the handler (inline on the event loop when it
only reads, otherwise in a worker thread), record the audit event of a success or a
failure, count the request, and render every error in the endpoint's format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sealbox.call import Call
from sealbox.errors import AwsError
from sealbox.server.endpoint import ApiRequest, Response, audit_error_code
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

Params = dict[str, Any]
Handler = Callable[[Any, Call, Params], Params]


@dataclass(frozen=True)
class Service:
    """What an endpoint serves: names, handlers and the domain object they call."""

    name: str  # metrics label, e.g. "kms"
    event_source: str  # e.g. "kms.amazonaws.com"
    target: Any  # the domain service handlers receive
    operations: Mapping[str, Handler]
    read_only: frozenset[str]
    inline: frozenset[str]  # operations cheap enough to run on the event loop
    not_implemented: Callable[[str], AwsError]
    internal_error: Callable[[str], AwsError]


async def execute(
    rt: Runtime,
    service: Service,
    request: ApiRequest,
    operation_name: str,
    parse: Callable[[], Params],
    redact: Callable[[Params], Params | None],
    serialize: Callable[[Params], Response],
    render_error: Callable[[AwsError], Response],
) -> Response:
    started = time.perf_counter()
    call = Call(
        principal=request.principal,
        region=request.signed.region,
        event_source=service.event_source,
        event_name=operation_name,
        request_id=request.request_id,
        source_ip=request.source_ip,
        user_agent=request.user_agent,
        read_only=operation_name in service.read_only,
        secure_transport=request.secure,
    )
    outcome = "ok"
    try:
        params = parse()
        call.request_parameters = redact(params)
        handler = service.operations.get(operation_name)
        if handler is None:
            raise service.not_implemented(f"{operation_name} is not supported by this server yet.")
        if operation_name in service.inline:
            result = handler(service.target, call, params)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                None, handler, service.target, call, params
            )
        if not call.audited:
            await rt.audit.submit(call)
        response = serialize(result)
    except AwsError as err:
        outcome = err.code
        await _audit_failure(rt, service, call, err)
        response = render_error(err)
    except Exception:
        logging.getLogger(f"sealbox.{service.name}").exception(
            "request %s (%s) failed", request.request_id, operation_name
        )
        internal = service.internal_error("An internal error occurred; see the server log.")
        outcome = internal.code
        await _audit_failure(rt, service, call, internal)
        response = render_error(internal)
    observe_request(service.name, operation_name, outcome, time.perf_counter() - started)
    return response


async def _audit_failure(rt: Runtime, service: Service, call: Call, err: AwsError) -> None:
    try:
        await rt.audit.submit(call, audit_error_code(err), err.message)
    except Exception:
        logging.getLogger(f"sealbox.{service.name}").exception(
            "could not record the failure of request %s", call.request_id
        )
