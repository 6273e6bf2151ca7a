"""KMS errors with the codes and HTTP statuses AWS KMS returns."""

from __future__ import annotations

from sealbox.errors import AwsError, ClientError


class NotFoundError(ClientError):
    code = "NotFoundException"


class DisabledError(ClientError):
    code = "DisabledException"


class InvalidStateError(ClientError):
    code = "KMSInvalidStateException"


class InvalidCiphertextError(ClientError):
    code = "InvalidCiphertextException"


class IncorrectKeyError(ClientError):
    code = "IncorrectKeyException"


class InvalidKeyUsageError(ClientError):
    code = "InvalidKeyUsageException"


class AlreadyExistsError(ClientError):
    code = "AlreadyExistsException"


class MalformedPolicyDocumentError(ClientError):
    code = "MalformedPolicyDocumentException"


class InvalidAliasNameError(ClientError):
    code = "InvalidAliasNameException"


class InvalidArnError(ClientError):
    code = "InvalidArnException"


class InvalidMarkerError(ClientError):
    code = "InvalidMarkerException"


class LimitExceededError(ClientError):
    code = "LimitExceededException"


class TagError(ClientError):
    code = "TagException"


class UnsupportedOperationError(ClientError):
    code = "UnsupportedOperationException"


class NotAuthorizedError(ClientError):
    code = "NotAuthorizedException"


class DryRunOperationError(ClientError):
    """Raised when DryRun=true and the call would have succeeded (HTTP 412, as AWS)."""

    code = "DryRunOperationException"
    http_status = 412


class KmsInternalError(AwsError):
    code = "KMSInternalException"
    http_status = 500


class AccessDeniedError(ClientError):
    code = "AccessDeniedException"


class InvalidGrantTokenError(ClientError):
    code = "InvalidGrantTokenException"


class InvalidGrantIdError(ClientError):
    code = "InvalidGrantIdException"


class InvalidSignatureError(ClientError):
    code = "KMSInvalidSignatureException"


class InvalidMacError(ClientError):
    code = "KMSInvalidMacException"


class InvalidImportTokenError(ClientError):
    code = "InvalidImportTokenException"


class ExpiredImportTokenError(ClientError):
    code = "ExpiredImportTokenException"


class IncorrectKeyMaterialError(ClientError):
    code = "IncorrectKeyMaterialException"
