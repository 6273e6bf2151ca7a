"""S3's errors: each carries S3's code and HTTP status, and extra fields S3 returns."""

from __future__ import annotations

from sealbox.errors import AwsError, ClientError


class S3Error(ClientError):
    """A client error S3 renders with optional extra XML fields (BucketName, Key...)."""

    def __init__(self, message: str = "", **extra: str) -> None:
        super().__init__(message)
        self.extra = extra
        # Response headers S3 sends with this error (x-amz-delete-marker, ...).
        self.headers: dict[str, str] = {}


class NoSuchBucket(S3Error):
    code = "NoSuchBucket"
    http_status = 404


class NoSuchKey(S3Error):
    code = "NoSuchKey"
    http_status = 404


class NoSuchVersion(S3Error):
    code = "NoSuchVersion"
    http_status = 404


class NoSuchUpload(S3Error):
    code = "NoSuchUpload"
    http_status = 404


class NoSuchTagSet(S3Error):
    code = "NoSuchTagSet"
    http_status = 404


class NoSuchBucketPolicy(S3Error):
    code = "NoSuchBucketPolicy"
    http_status = 404


class NoSuchPublicAccessBlockConfiguration(S3Error):
    code = "NoSuchPublicAccessBlockConfiguration"
    http_status = 404


class ServerSideEncryptionConfigurationNotFound(S3Error):
    code = "ServerSideEncryptionConfigurationNotFoundError"
    http_status = 404


class BucketAlreadyOwnedByYou(S3Error):
    code = "BucketAlreadyOwnedByYou"
    http_status = 409


class BucketAlreadyExists(S3Error):
    code = "BucketAlreadyExists"
    http_status = 409


class BucketNotEmpty(S3Error):
    code = "BucketNotEmpty"
    http_status = 409


class InvalidBucketName(S3Error):
    code = "InvalidBucketName"


class InvalidArgument(S3Error):
    code = "InvalidArgument"


class InvalidRequest(S3Error):
    code = "InvalidRequest"


class InvalidRange(S3Error):
    code = "InvalidRange"
    http_status = 416


class PreconditionFailed(S3Error):
    code = "PreconditionFailed"
    http_status = 412


class NotModified(S3Error):
    code = "NotModified"
    http_status = 304


class InvalidDigest(S3Error):
    code = "InvalidDigest"


class BadDigest(S3Error):
    code = "BadDigest"


class ContentSha256Mismatch(S3Error):
    code = "XAmzContentSHA256Mismatch"


class EntityTooSmall(S3Error):
    code = "EntityTooSmall"


class EntityTooLarge(S3Error):
    code = "EntityTooLarge"


class InvalidPart(S3Error):
    code = "InvalidPart"


class InvalidPartOrder(S3Error):
    code = "InvalidPartOrder"


class MalformedPolicy(S3Error):
    code = "MalformedPolicy"


class MalformedXML(S3Error):
    code = "MalformedXML"


class KeyTooLong(S3Error):
    code = "KeyTooLongError"


class InvalidTag(S3Error):
    code = "InvalidTag"


class MethodNotAllowed(S3Error):
    code = "MethodNotAllowed"
    http_status = 405


class InvalidObjectState(S3Error):
    code = "InvalidObjectState"
    http_status = 403


class S3AccessDenied(S3Error):
    code = "AccessDenied"
    http_status = 403


class KmsThroughS3(S3Error):
    """A KMS error surfaced through S3, as S3 names it: KMS.DisabledException, ..."""

    def __init__(self, kms_error: AwsError) -> None:
        super().__init__(kms_error.message)
        self.code = f"KMS.{kms_error.code}"
        self.http_status = 400 if kms_error.http_status < 500 else kms_error.http_status


class StoredDataCorrupt(AwsError):
    """Stored ciphertext failed authentication: never served."""

    code = "InternalError"
    http_status = 500
