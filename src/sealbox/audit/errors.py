"""CloudTrail errors with the codes and HTTP statuses AWS CloudTrail returns."""

from __future__ import annotations

from sealbox.errors import ClientError


class InvalidLookupAttributesError(ClientError):
    code = "InvalidLookupAttributesException"


class InvalidTimeRangeError(ClientError):
    code = "InvalidTimeRangeException"


class InvalidMaxResultsError(ClientError):
    code = "InvalidMaxResultsException"


class InvalidNextTokenError(ClientError):
    code = "InvalidNextTokenException"
