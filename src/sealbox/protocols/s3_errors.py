"""The S3 errors the REST-XML protocol layer raises itself, before any domain code runs.

Each carries S3's code and status; ``details()`` gives the extra elements S3 puts in its
``<Error>`` document (``serialize_error(..., extra=err.details())``).
"""

from __future__ import annotations

from sealbox.errors import ClientError

__all__ = ["InvalidArgument", "MalformedXML", "MissingRequestBodyError", "S3ProtocolError"]


class S3ProtocolError(ClientError):
    """Base of the protocol-level S3 errors."""

    def details(self) -> dict[str, str]:
        """Extra ``<Error>`` elements, by element name."""
        return {}


class MalformedXML(S3ProtocolError):
    """The body is not well-formed XML, or not a document of the expected shape."""

    code = "MalformedXML"
    MESSAGE = (
        "The XML you provided was not well-formed or did not validate against our published schema"
    )

    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)


class MissingRequestBodyError(S3ProtocolError):
    """A required body (a bucket policy) is empty."""

    code = "MissingRequestBodyError"

    def __init__(self, message: str = "Request Body is empty") -> None:
        super().__init__(message)


class InvalidArgument(S3ProtocolError):
    """A header or query value is not of its parameter's type (max-keys=abc)."""

    code = "InvalidArgument"

    def __init__(
        self, message: str, argument_name: str | None = None, argument_value: str | None = None
    ) -> None:
        super().__init__(message)
        self.argument_name = argument_name
        self.argument_value = argument_value

    def details(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.argument_name is not None:
            out["ArgumentName"] = self.argument_name
        if self.argument_value is not None:
            out["ArgumentValue"] = self.argument_value
        return out
