"""Authentication errors, with the codes AWS JSON services (KMS) return.

One class per failure kind, so the S3 adapter can map each class to S3's own codes
(SignatureDoesNotMatch, AuthorizationHeaderMalformed, RequestTimeTooSkewed,
AccessDenied, ...). Messages never contain the secret access key, a derived key or
the signature the server expected.
"""

from __future__ import annotations

from sealbox.errors import ClientError


class UnknownAccessKey(ClientError):
    """The access key id is not known (raised by the caller that looks keys up)."""

    code = "UnrecognizedClientException"

    def __init__(
        self, message: str = "The security token included in the request is invalid."
    ) -> None:
        super().__init__(message)


class SignatureMismatch(ClientError):
    """The signature does not match the one computed over the request."""

    code = "InvalidSignatureException"

    def __init__(
        self,
        message: str = (
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult the "
            "service documentation for details."
        ),
    ) -> None:
        super().__init__(message)


class CredentialDateMismatch(ClientError):
    """The date in the credential scope is not the date of X-Amz-Date.

    KMS answers InvalidSignatureException; S3 answers AuthorizationHeaderMalformed,
    hence its own class.
    """

    code = "InvalidSignatureException"


class IncompleteSignature(ClientError):
    """The signature is malformed or lacks a part (the message says which)."""

    code = "IncompleteSignatureException"


class MissingContentSha256(IncompleteSignature):
    """An S3 header-signed request without x-amz-content-sha256."""


class SignatureExpired(ClientError):
    """The request time is outside the allowed clock skew."""

    code = "InvalidSignatureException"


class PresignedUrlExpired(SignatureExpired):
    """A presigned request is used after X-Amz-Date + X-Amz-Expires (S3: AccessDenied)."""

    def __init__(self, message: str = "Request has expired") -> None:
        super().__init__(message)


class MissingAuthenticationToken(ClientError):
    """The request carries no authentication at all (non-S3 services)."""

    code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Request is missing Authentication Token") -> None:
        super().__init__(message)


class SessionExpired(ClientError):
    """Temporary credentials past their expiration (JSON services' code; Query: ExpiredToken)."""

    code = "ExpiredTokenException"

    def __init__(
        self, message: str = "The security token included in the request is expired"
    ) -> None:
        super().__init__(message)
