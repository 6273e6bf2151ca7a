"""What every service endpoint gets from the app, and what it must provide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sealbox.auth.sigv4 import SignedRequest
from sealbox.errors import AwsError
from sealbox.iam.model import Principal
from sealbox.server.http import Headers

Response = tuple[int, Headers, bytes]


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """An authenticated request, as an endpoint sees it."""

    method: str
    query: str
    headers: dict[str, str]
    body: bytes
    signed: SignedRequest
    principal: Principal
    request_id: str
    source_ip: str
    user_agent: str
    secure: bool
    path: str = ""  # the decoded URL path (REST protocols route on it)


class Endpoint(Protocol):
    def check_signed(self, signed: SignedRequest, headers: dict[str, str]) -> None:
        """Refuse a signature that leaves out what this protocol needs signed."""
        ...

    async def handle(self, request: ApiRequest) -> Response:
        """Answer an authenticated request; errors are rendered, never raised."""
        ...

    def render_error(self, err: AwsError, request_id: str) -> Response:
        """err in this protocol's error format (also for authentication failures)."""
        ...


def audit_error_code(err: AwsError) -> str:
    """The errorCode an audit record carries: every denial is "AccessDenied", as
    CloudTrail writes it, whatever the protocol calls it on the wire."""
    return "AccessDenied" if err.code.startswith("AccessDenied") else err.code
