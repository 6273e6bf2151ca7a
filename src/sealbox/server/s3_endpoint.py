"""The S3 endpoint: REST-XML, streamed bodies, anonymous and presigned requests.

Unlike the JSON and Query services, S3 bodies are never read whole. A PUT streams:
the signature is checked over the headers first, the operation authorized and its
data key fetched, then the body (plain or aws-chunked, its chunk signatures verified)
is fed a batch at a time to a PendingWrite in a worker thread, and only a commit after
every digest matched makes the object visible. A GET decrypts and sends one batch at a
time, and the first batch is authenticated before any header is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sealbox.auth import chunked, sigv2
from sealbox.auth import errors as auth_errors
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.config import DEFAULT_REGION
from sealbox.errors import AwsError, ClientError
from sealbox.iam.model import Principal
from sealbox.protocols import s3_routing
from sealbox.protocols.codec import restxml
from sealbox.protocols.codec.models import load_service
from sealbox.s3.access import ANONYMOUS
from sealbox.s3.errors import ContentSha256Mismatch, S3Error, StoredDataCorrupt
from sealbox.s3.integrity import PendingWrite
from sealbox.s3.objects import ObjectRead
from sealbox.s3.service import S3Service
from sealbox.server.endpoint import audit_error_code
from sealbox.server.http import Headers, Receive, Scope, Send, read_body
from sealbox.server.metrics import observe_request
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.s3")
T = TypeVar("T")

EVENT_SOURCE = "s3.amazonaws.com"
XML_BODY_LIMIT = 4 * 1024 * 1024
BATCH_BYTES = 1 << 20
# GETs of at most this many bytes read and decrypt their data on the event loop.
INLINE_READ_BYTES = 64 * 1024
_STREAMED_PUTS = frozenset({"PutObject", "UploadPart"})
_READ_ONLY_PREFIXES = ("Get", "Head", "List")

# Authentication failures, as S3 names them.
_AUTH_CODES: dict[type[AwsError], tuple[str, int]] = {
    auth_errors.MissingContentSha256: ("InvalidRequest", 400),  # before its base class
    auth_errors.UnknownAccessKey: ("InvalidAccessKeyId", 403),
    auth_errors.SignatureMismatch: ("SignatureDoesNotMatch", 403),
    auth_errors.CredentialDateMismatch: ("SignatureDoesNotMatch", 403),
    auth_errors.IncompleteSignature: ("AuthorizationHeaderMalformed", 400),
    auth_errors.PresignedUrlExpired: ("AccessDenied", 403),
    auth_errors.SignatureExpired: ("RequestTimeTooSkewed", 403),
    auth_errors.SessionExpired: ("ExpiredToken", 400),
    auth_errors.MissingAuthenticationToken: ("AccessDenied", 403),
}


class _TrackedReceive:
    """An ASGI receive that remembers whether the request body has ended."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False

    async def __call__(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.done = True
        return message


class _ClientGone(Exception):
    """The client disconnected before the request body ended."""


class S3Endpoint:
    def __init__(self, runtime: Runtime, service: S3Service) -> None:
        self._rt = runtime
        self._s3 = service
        self._model = load_service("s3")

    # -- the life cycle of one request ---------------------------------------------------

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        signed: SignedRequest | None,
        request_id: str,
        auth_error: AwsError | None = None,
    ) -> None:
        started = time.perf_counter()
        receive = _TrackedReceive(receive)
        method: str = scope["method"]
        head = method == "HEAD"
        operation = "Unknown"
        call: Call | None = None
        outcome = "ok"
        try:
            if auth_error is not None:
                raise auth_error
            bucket, key = s3_routing.split_target(headers.get("host", ""), scope["path"])
            query_string = scope.get("query_string", b"").decode("latin-1")
            pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
            operation = s3_routing.identify(method, bucket, key, dict(pairs), headers)
            principal, secret = self._authenticate(scope, headers, signed, query_string)
            call = self._call(scope, headers, principal, signed, operation, bucket, key)
            call.request_id = request_id
            op_model = self._model.operation_model(operation)
            streamed = operation in _STREAMED_PUTS
            body = None if streamed else await self._small_body(receive, signed)
            params = restxml.parse_input(
                op_model,
                uri_params={"Bucket": bucket or "", "Key": key or ""},
                query=pairs,
                headers=headers,
                body=body,
            )
            if streamed:
                output = await self._put(call, operation, params, headers, signed, secret, receive)
                await self._finish_audit(call)
                status, out_headers, out_body = restxml.serialize_output(op_model, output)
                await _send(send, status, out_headers, out_body, request_id)
            elif operation in ("GetObject", "HeadObject"):
                await self._get(call, op_model, params, head, send, request_id)
            else:
                handler = self._s3.operations.get(operation)
                if handler is None:
                    raise s3_routing.S3NotImplemented(
                        f"{operation} is not implemented by this server."
                    )
                output = await _run(handler, call, params)
                await self._finish_audit(call)
                status, out_headers, out_body = restxml.serialize_output(op_model, output)
                if operation == "HeadBucket":
                    out_body = b""
                await _send(send, status, out_headers, out_body, request_id)
        except _ClientGone:
            outcome = "ClientGone"
            if call is not None:
                await self._audit_failure(call, "ClientGone", "The client disconnected.")
        except AwsError as err:
            err = _as_s3(err)
            outcome = err.code
            if call is not None:
                await self._audit_failure(call, audit_error_code(err), err.message)
            await self._send_error(
                send, err, request_id, head, bucket_of(scope, headers), receive.done
            )
        except Exception:
            log.exception("request %s (%s) failed", request_id, operation)
            internal = StoredDataCorrupt("We encountered an internal error. Please try again.")
            outcome = internal.code
            if call is not None:
                await self._audit_failure(call, internal.code, internal.message)
            await self._send_error(send, internal, request_id, head, None, receive.done)
        observe_request("s3", operation, outcome, time.perf_counter() - started)

    # -- authentication --------------------------------------------------------------------

    def _authenticate(
        self,
        scope: Scope,
        headers: Mapping[str, str],
        signed: SignedRequest | None,
        query_string: str,
    ) -> tuple[Principal, str | None]:
        if signed is None:
            presigned = sigv2.parse(query_string)
            if presigned is None:
                return ANONYMOUS, None
            principal, secret = self._rt.credentials.lookup(
                presigned.access_key_id, presigned.security_token
            )
            raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
            bucket, _ = s3_routing.split_target(headers.get("host", ""), "/")
            resource = raw_path if bucket is None else f"/{bucket}{raw_path}"
            sigv2.verify(
                presigned,
                secret,
                scope["method"],
                resource,
                query_string,
                headers,
                datetime.now(UTC),
            )
            return principal, None
        principal, secret = self._rt.credentials.lookup(signed.access_key_id, signed.security_token)
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        self._rt.verifier.verify(
            signed, secret, scope["method"], raw_path, query_string, headers, None
        )
        return principal, secret

    def _call(
        self,
        scope: Scope,
        headers: Mapping[str, str],
        principal: Principal,
        signed: SignedRequest | None,
        operation: str,
        bucket: str | None,
        key: str | None,
    ) -> Call:
        client = scope.get("client")
        parameters: dict[str, Any] = {"Host": headers.get("host", "")}
        if bucket is not None:
            parameters["bucketName"] = bucket
        if key is not None:
            parameters["key"] = key
        return Call(
            principal=principal,
            region=signed.region if signed is not None else DEFAULT_REGION,
            event_source=EVENT_SOURCE,
            event_name=operation,
            request_id="",
            source_ip=client[0] if client else "",
            user_agent=headers.get("user-agent", ""),
            request_parameters=parameters,
            read_only=operation.startswith(_READ_ONLY_PREFIXES),
            secure_transport=scope.get("scheme") == "https",
        )

    @staticmethod
    async def _small_body(receive: Receive, signed: SignedRequest | None) -> bytes:
        body = await read_body(receive, XML_BODY_LIMIT)
        sent = signed.payload_hash if signed is not None else None
        if sent is not None and len(sent) == 64 and sent != hashlib.sha256(body).hexdigest():
            raise ContentSha256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        return body

    # -- streamed PUT ----------------------------------------------------------------------

    async def _put(
        self,
        call: Call,
        operation: str,
        params: dict[str, Any],
        headers: Mapping[str, str],
        signed: SignedRequest | None,
        secret: str | None,
        receive: Receive,
    ) -> dict[str, Any]:
        mode = signed.payload_hash if signed is not None else None
        trailer_names = tuple(
            n.strip().lower() for n in headers.get("x-amz-trailer", "").split(",") if n.strip()
        )
        decoder: chunked.ChunkedDecoder | None = None
        if chunked.is_chunked(mode):
            assert mode is not None
            signing = None
            if signed is not None and secret is not None and "UNSIGNED" not in mode:
                key = self._rt.verifier.signing_key(signed, secret)
                signing = chunked.ChunkSigning.for_request(signed, key)
            decoded = headers.get("x-amz-decoded-content-length")
            decoder = chunked.ChunkedDecoder(
                mode,
                decoded_length=int(decoded) if decoded and decoded.isdigit() else None,
                trailer_names=trailer_names,
                signing=signing,
            )
        start = (
            self._s3.objects.start_put
            if operation == "PutObject"
            else self._s3.multipart.start_upload_part
        )
        small = _small_body_length(headers)
        if small and "100-continue" not in headers.get("expect", "").lower():
            # At most one batch, and no client waiting to hear it may send it: read it,
            # then start, write and commit in one worker hop instead of three (a hop
            # costs more CPU than sealing 4 KiB).
            body = await _whole_body(receive)
            return await _run(_put_whole, start, call, params, mode, trailer_names, decoder, body)
        # 100 Continue (sent on the first receive) still waits until the request is
        # authorized and its data key fetched.
        pending: PendingWrite = await _run(start, call, params, mode, trailer_names)
        if small:
            try:
                body = await _whole_body(receive)
            except BaseException:
                await _run(pending.abort)
                raise
            return await _run(_finish_whole, pending, decoder, body)
        try:
            async for batch in _batches(receive):
                await _run(_feed, pending, decoder, batch)
            trailers = decoder.finish() if decoder is not None else {}
            return await _run(pending.commit, trailers)
        except BaseException:
            await _run(pending.abort)
            raise

    # -- streamed GET ----------------------------------------------------------------------

    async def _get(
        self,
        call: Call,
        op_model: Any,
        params: dict[str, Any],
        head: bool,
        send: Send,
        request_id: str,
    ) -> None:
        # Looking the object up and unwrapping its key are reads and local crypto, as
        # cheap as the KMS calls that run on the loop; a hop to a worker thread and
        # back cost more than a small object's whole GET. Reading the data waits in a
        # worker thread unless it is small.
        read = self._s3.objects.get_object(call, params, head=head)
        if head:
            first, chunks = b"", None
        elif read.output.get("ContentLength", 0) <= INLINE_READ_BYTES:
            first, chunks = _first_batch(read)
        else:
            first, chunks = await _run(_first_batch, read)
        await self._finish_audit(call)
        status, out_headers, _ = restxml.serialize_output(op_model, read.output)
        if read.partial:
            status = 206
        # The codec sends ContentLength as content-length.
        start_headers = [*out_headers, (b"x-amz-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": start_headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        if chunks is None:
            await send({"type": "http.response.body", "body": first})
            return
        await _stream(send, first, chunks, request_id)

    # -- audit -------------------------------------------------------------------------------

    async def _finish_audit(self, call: Call) -> None:
        """Record the KMS calls made on the caller's behalf, then the call itself."""
        audit = self._rt.audit
        for related, code, message in call.related:
            await audit.submit(related, code, message)
        call.related.clear()
        await audit.submit(call)

    async def _audit_failure(self, call: Call, code: str, message: str) -> None:
        try:
            for related, r_code, r_message in call.related:
                await self._rt.audit.submit(related, r_code, r_message)
            await self._rt.audit.submit(call, code, message)
        except Exception:
            log.exception("could not record the failure of an S3 request")

    async def _send_error(
        self,
        send: Send,
        err: AwsError,
        request_id: str,
        head: bool,
        bucket: str | None,
        body_read: bool,
    ) -> None:
        extra: dict[str, str] = {}
        headers: Headers = [(b"content-type", b"application/xml")]
        if not body_read:
            # The unread rest of the body would be taken for the next request.
            headers.append((b"connection", b"close"))
        if isinstance(err, S3Error):
            extra.update(err.extra)
            headers += [(k.encode(), v.encode()) for k, v in err.headers.items()]
        if bucket is not None and err.code == "NoSuchBucket":
            extra.setdefault("BucketName", bucket)
        body = b"" if head else restxml.serialize_error(err.code, err.message, request_id, extra)
        status = err.http_status
        if status == 304:
            body = b""
        await _send(send, status, headers, body, request_id)


def bucket_of(scope: Scope, headers: Mapping[str, str]) -> str | None:
    try:
        return s3_routing.split_target(headers.get("host", ""), scope["path"])[0]
    except Exception:
        return None


def _as_s3(err: AwsError) -> AwsError:
    """Authentication errors in S3's own codes."""
    for kind, (code, status) in _AUTH_CODES.items():
        if isinstance(err, kind):
            mapped = S3Error(err.message or code)
            mapped.code = code
            mapped.http_status = status
            return mapped
    if isinstance(err, ClientError) and err.code in ("ValidationException",):
        mapped = S3Error(err.message)
        mapped.code = "InvalidArgument"
        return mapped
    return err


def _first_batch(read: ObjectRead) -> tuple[bytes, Iterator[bytes] | None]:
    """The first batch of plaintext, authenticated before any header is sent.

    When it already holds the whole response (a small object), the stream is run to
    its end here too, so no further hop is needed: chunks comes back None.
    """
    chunks = read.chunks()
    first = next(chunks, b"")
    if len(first) < read.output.get("ContentLength", 0):
        return first, chunks
    rest = next(chunks, b"")  # normally b"": the generator ends and closes its blob
    if rest:
        return first, itertools.chain((rest,), chunks)
    return first, None


def _small_body_length(headers: Mapping[str, str]) -> bool:
    """Whether the declared body is at most one batch."""
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) <= BATCH_BYTES


async def _whole_body(receive: Receive) -> bytes:
    """A small request body, whole (framing bounds it by its Content-Length)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _put_whole(
    start: Callable[..., PendingWrite],
    call: Call,
    params: dict[str, Any],
    mode: str | None,
    trailer_names: tuple[str, ...],
    decoder: chunked.ChunkedDecoder | None,
    body: bytes,
) -> dict[str, Any]:
    """start + write + commit of a body already read whole (see S3Endpoint._put)."""
    return _finish_whole(start(call, params, mode, trailer_names), decoder, body)


def _finish_whole(
    pending: PendingWrite, decoder: chunked.ChunkedDecoder | None, body: bytes
) -> dict[str, Any]:
    """write + commit of a whole (small) body; the write is aborted on any failure."""
    try:
        if body:
            _feed(pending, decoder, body)
        trailers = decoder.finish() if decoder is not None else {}
        return pending.commit(trailers)
    except BaseException:
        pending.abort()
        raise


def _feed(pending: PendingWrite, decoder: chunked.ChunkedDecoder | None, batch: bytes) -> None:
    if decoder is None:
        pending.write(batch)
        return
    for piece in decoder.feed(batch):
        pending.write(piece)


async def _batches(receive: Receive) -> Any:
    """The request body in batches of about BATCH_BYTES (fewer thread hand-offs)."""
    buffer: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            buffer.append(chunk)
            size += len(chunk)
        more = message.get("more_body", False)
        if size >= BATCH_BYTES or (not more and buffer):
            yield b"".join(buffer) if len(buffer) > 1 else buffer[0]
            buffer, size = [], 0
        if not more:
            return


async def _stream(send: Send, first: bytes, chunks: Iterator[bytes], request_id: str) -> None:
    piece = first
    while piece:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        try:
            piece = await _run(next, chunks, b"")
        except Exception:
            # The headers are sent: the only honest signal left is to end the response
            # short, so the client sees a broken transfer, never unauthenticated bytes.
            log.exception("request %s: object data failed mid-stream; response cut", request_id)
            return
    await send({"type": "http.response.body", "body": b""})


async def _send(send: Send, status: int, headers: Headers, body: bytes, request_id: str) -> None:
    all_headers = [
        *headers,
        (b"x-amz-request-id", request_id.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    if kwargs:
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))
    return await loop.run_in_executor(None, fn, *args)
