"""The EBS direct APIs endpoint (REST-JSON; boto3 ``ebs``), reached by requests signed
for the service "ebs". Blocks are at most 512 KiB, so the app's bounded body read serves
PutSnapshotBlock; the block's own SHA-256 (x-amz-Checksum, a signed header) is what
authenticates its content when the client sends UNSIGNED-PAYLOAD."""

from __future__ import annotations

import re

from sealbox.auth.errors import IncompleteSignature
from sealbox.auth.sigv4 import SignedRequest
from sealbox.call import Call
from sealbox.ebs.errors import EbsInternal
from sealbox.ebs.service import EbsService
from sealbox.errors import AwsError
from sealbox.protocols import ebs as ebs_protocol
from sealbox.server.ec2_endpoint import execute_with_related
from sealbox.server.endpoint import ApiRequest, Response
from sealbox.server.runtime import Runtime

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def verified_body_sha256(signed: SignedRequest) -> bytes | None:
    """The body's SHA-256 the signature check already computed and compared, if any.

    The app verifies every signed non-S3 request against its body: unless the payload
    hash sent is UNSIGNED-PAYLOAD, the SHA-256 of the body is computed and must equal
    the hex value sent (x-amz-content-sha256, or the presigned query's), else the
    request fails before it gets here. So a 64-hex value here *is* the body's SHA-256,
    and PutSnapshotBlock need not hash 512 KiB a second time to check x-amz-Checksum.
    """
    sent = signed.payload_hash
    if signed.service != "ebs" or sent is None or _HEX_SHA256.fullmatch(sent) is None:
        return None
    return bytes.fromhex(sent)


class EbsEndpoint:
    def __init__(self, runtime: Runtime, service: EbsService | None = None) -> None:
        self._rt = runtime
        self._svc = service or runtime.ebs

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        if "x-amz-checksum" in headers and "x-amz-checksum" not in signed.signed_headers:
            raise IncompleteSignature("The x-amz-Checksum header must be signed.")

    def render_error(self, err: AwsError, request_id: str) -> Response:
        return ebs_protocol.render_error(err, request_id)

    @staticmethod
    def _parse(name: str, path_params: dict[str, str], request: ApiRequest) -> ebs_protocol.Params:
        params = ebs_protocol.parse(name, path_params, request.query, request.headers, request.body)
        if name == "PutSnapshotBlock":
            params["VerifiedSha256"] = verified_body_sha256(request.signed)
        return params

    async def handle(self, request: ApiRequest) -> Response:
        name, path_params = ebs_protocol.route(request.method, request.path)
        call = Call(
            principal=request.principal,
            region=request.signed.region,
            event_source=ebs_protocol.EVENT_SOURCE,
            event_name=name,
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.user_agent,
            read_only=name in ebs_protocol.READ_ONLY,
            secure_transport=request.secure,
            data_event=name in ebs_protocol.DATA_EVENTS,
        )

        def serialize(result: ebs_protocol.Output) -> Response:
            return result.status, result.headers, result.body

        return await execute_with_related(
            self._rt,
            service_name="ebs",
            target=self._svc,
            handler=ebs_protocol.OPERATIONS.get(name),
            call=call,
            parse=lambda: self._parse(name, path_params, request),
            redact=lambda params: ebs_protocol.audit_parameters(name, params),
            serialize=serialize,
            render_error=lambda err: self.render_error(err, request.request_id),
            internal_error=EbsInternal,
        )
