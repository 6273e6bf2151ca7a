"""The ASGI application: one endpoint for every service.

Routing: `/_sealbox/*` is Sealbox's own (health, metrics; unsigned). Everything else
must be SigV4-signed, and the service named in the credential scope picks the
protocol adapter. The app is pure ASGI (no framework) because it sits on the hot path
of every KMS call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sealbox.auth import sigv4
from sealbox.auth.errors import MissingAuthenticationToken
from sealbox.auth.sigv4 import SignedRequest
from sealbox.crypto import unique_id
from sealbox.errors import AwsError, ClientError, InternalFailure
from sealbox.server.cloudtrail_endpoint import CloudTrailEndpoint
from sealbox.server.ebs_endpoint import EbsEndpoint
from sealbox.server.ec2_endpoint import Ec2Endpoint
from sealbox.server.endpoint import ApiRequest, Endpoint, Response
from sealbox.server.http import (
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    send_response,
)
from sealbox.server.kms_endpoint import KmsEndpoint
from sealbox.server.metrics import REQUESTS, render
from sealbox.server.query_endpoint import QueryEndpoints
from sealbox.server.runtime import Runtime, settings_from_env
from sealbox.server.s3_endpoint import S3Endpoint

log = logging.getLogger("sealbox")

BODY_LIMIT = 1024 * 1024  # JSON and Query APIs; S3 and EBS stream their bodies
# How often each process moves journalled audit events into the database.
AUDIT_INDEX_INTERVAL_SECONDS = 1.0


class UnsupportedService(ClientError):
    code = "UnrecognizedClientException"


def _unsupported(service: str) -> Endpoint:
    raise UnsupportedService(f"Service {service} is not supported by this server.")


class SealboxApp:
    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime
        self._owns_runtime = runtime is None
        self._endpoints: dict[str, Endpoint] = {}
        self._s3: S3Endpoint | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "lifespan startup has not run"
        return self._runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- life cycle ----------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def startup(self) -> None:
        if self._runtime is None:
            self._runtime = Runtime.build(settings_from_env())
        query = QueryEndpoints(self._runtime)
        self._endpoints = {
            "kms": KmsEndpoint(self._runtime),
            "iam": query.iam,
            "sts": query.sts,
            "cloudtrail": CloudTrailEndpoint(self._runtime),
            "ec2": Ec2Endpoint(self._runtime),
            "ebs": EbsEndpoint(self._runtime),
        }
        self._s3 = S3Endpoint(self._runtime, self._runtime.s3)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._schedule()),
            loop.create_task(self._index_audit_journal()),
        ]

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._runtime is not None and self._owns_runtime:
            self._runtime.close()

    async def _schedule(self) -> None:
        """Deletion windows and automatic rotation; the first pass runs at start."""
        interval = self.runtime.settings.scheduler_interval_seconds
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.runtime.run_scheduled_work)
            except Exception:
                log.exception("scheduled work failed; retrying next interval")
            await asyncio.sleep(interval)

    async def _index_audit_journal(self) -> None:
        """Move journalled audit events into the database in the background."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(AUDIT_INDEX_INTERVAL_SECONDS)
            try:
                await loop.run_in_executor(None, self.runtime.audit.catch_up)
            except Exception:
                log.exception("indexing the audit journal failed; retrying")

    # -- requests ----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith("/_sealbox/"):
            await self._internal(path, send)
            return
        request_id = unique_id()
        headers = header_map(scope)
        if _looks_like_s3(scope, headers):
            await self._s3_request(scope, receive, send, headers, request_id)
            return
        # Until the signature names the service, answer in the protocol the request
        # looks like (JSON services send X-Amz-Target; Query services a form).
        endpoint = self._endpoints["kms" if "x-amz-target" in headers else "sts"]
        try:
            signed = self._parse_signature(scope, headers)
            endpoint = self._endpoints.get(signed.service) or _unsupported(signed.service)
            status, response_headers, body = await self._api(
                scope, receive, request_id, headers, signed, endpoint
            )
        except AwsError as err:
            REQUESTS.labels("unknown", "unknown", err.code).inc()
            status, response_headers, body = endpoint.render_error(err, request_id)
        except Exception:
            # Last-resort guard: never a stack trace on the wire.
            log.exception("request %s failed", request_id)
            status, response_headers, body = endpoint.render_error(
                InternalFailure("An internal error occurred; see the server log."), request_id
            )
        await send_response(
            send, status, [*response_headers, (b"x-amzn-requestid", request_id.encode())], body
        )

    async def _s3_request(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str
    ) -> None:
        """S3, or a signed request of another service that does not look like its own."""
        assert self._s3 is not None
        try:
            signed = self._parse_optional_signature(scope, headers)
        except AwsError as err:
            await self._s3.serve(scope, receive, send, headers, None, request_id, err)
            return
        if signed is None or signed.service == "s3":
            await self._s3.serve(scope, receive, send, headers, signed, request_id)
            return
        endpoint = self._endpoints["sts"]
        try:
            endpoint = self._endpoints.get(signed.service) or _unsupported(signed.service)
            status, response_headers, body = await self._api(
                scope, receive, request_id, headers, signed, endpoint
            )
        except AwsError as err:
            status, response_headers, body = endpoint.render_error(err, request_id)
        await send_response(
            send, status, [*response_headers, (b"x-amzn-requestid", request_id.encode())], body
        )

    @staticmethod
    def _parse_optional_signature(scope: Scope, headers: dict[str, str]) -> SignedRequest | None:
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        return sigv4.parse(scope["method"], raw_path, query, headers)

    @staticmethod
    def _parse_signature(scope: Scope, headers: dict[str, str]) -> SignedRequest:
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        signed = sigv4.parse(scope["method"], raw_path, query, headers)
        if signed is None:
            raise MissingAuthenticationToken("Missing Authentication Token")
        return signed

    async def _api(
        self,
        scope: Scope,
        receive: Receive,
        request_id: str,
        headers: dict[str, str],
        signed: SignedRequest,
        endpoint: Endpoint,
    ) -> Response:
        method: str = scope["method"]
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        body = await read_body(receive, BODY_LIMIT)
        endpoint.check_signed(signed, headers)
        principal, secret = self.runtime.credentials.lookup(
            signed.access_key_id, signed.security_token
        )
        # EBS PutSnapshotBlock may be signed with UNSIGNED-PAYLOAD (its signed
        # x-amz-Checksum covers the block instead): then the literal value is signed.
        unsigned = signed.service == "ebs" and signed.payload_hash == "UNSIGNED-PAYLOAD"
        self.runtime.verifier.verify(
            signed, secret, method, raw_path, query, headers, None if unsigned else body
        )
        client = scope.get("client")
        return await endpoint.handle(
            ApiRequest(
                method=method,
                query=query,
                headers=headers,
                body=body,
                signed=signed,
                principal=principal,
                request_id=request_id,
                source_ip=client[0] if client else "",
                user_agent=headers.get("user-agent", ""),
                secure=scope.get("scheme") == "https",
                path=scope["path"],
            )
        )

    async def _internal(self, path: str, send: Send) -> None:
        if path == "/_sealbox/health":
            await send_response(
                send, 200, [(b"content-type", b"application/json")], b'{"status":"ok"}'
            )
        elif path == "/_sealbox/metrics":
            body, content_type = render()
            await send_response(send, 200, [(b"content-type", content_type.encode())], body)
        else:
            await send_response(send, 404, [(b"content-type", b"text/plain")], b"not found\n")


def _looks_like_s3(scope: Scope, headers: dict[str, str]) -> bool:
    """JSON services send X-Amz-Target and Query services a POSTed form; the rest is S3
    (whose signature's scope then confirms it)."""
    if "x-amz-target" in headers:
        return False
    content_type = headers.get("content-type", "")
    return not (
        scope["method"] == "POST" and content_type.startswith("application/x-www-form-urlencoded")
    )


def create_app() -> SealboxApp:
    """Factory used by uvicorn in each worker process."""
    return SealboxApp()
