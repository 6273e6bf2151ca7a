"""Errors every service shares.

A domain error is an exception that carries its AWS error code and HTTP status as
class attributes. Adapters render it in their protocol's error format; nothing in
this module knows about HTTP requests or bodies. Messages must never contain
secrets (plaintexts, data keys, key material, secret access keys).
"""

from __future__ import annotations


class AwsError(Exception):
    """Base of every error a client may see. Subclasses set code and http_status."""

    code: str = "InternalFailure"
    http_status: int = 500
    sender_fault: bool = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class ClientError(AwsError):
    """An error caused by the request; never changes stored state."""

    http_status = 400
    sender_fault = True


class ValidationError(ClientError):
    code = "ValidationException"


class SerializationError(ClientError):
    """The body is not valid for the protocol (bad JSON, wrong member types)."""

    code = "SerializationException"


class UnknownOperationError(ClientError):
    code = "UnknownOperationException"


class AccessDeniedError(ClientError):
    code = "AccessDeniedException"


class InternalFailure(AwsError):
    """The last-resort error: logged with a request id, rendered without details."""

    code = "InternalFailure"
    http_status = 500


class ServiceUnavailable(AwsError):
    code = "ServiceUnavailable"
    http_status = 503
