"""The EBS direct APIs endpoint (REST-JSON; boto3 ``ebs``), reached by requests signed
for the service "ebs". Blocks are at most 512 KiB, so the app's bounded body read serves
PutSnapshotBlock; the block's own SHA-256 (x-amz-Checksum, a signed header) is what
authenticates its content when the client sends UNSIGNED-PAYLOAD."""

from __future__ import annotations

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


class EbsEndpoint:
    def __init__(self, runtime: Runtime, service: EbsService | None = None) -> None:
        self._rt = runtime
        self._svc = service or runtime.ebs

    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        if "x-amz-checksum" in headers and "x-amz-checksum" not in signed.signed_headers:
            raise IncompleteSignature("The x-amz-Checksum header must be signed.")

    def render_error(self, err: AwsError, request_id: str) -> Response:
        return ebs_protocol.render_error(err, request_id)

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
            parse=lambda: ebs_protocol.parse(
                name, path_params, request.query, request.headers, request.body
            ),
            redact=lambda params: ebs_protocol.audit_parameters(name, params),
            serialize=serialize,
            render_error=lambda err: self.render_error(err, request.request_id),
            internal_error=EbsInternal,
        )
