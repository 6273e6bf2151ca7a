"""CloudTrail trail errors, with the codes AWS CloudTrail returns (all HTTP 400)."""

from __future__ import annotations

from sealbox.errors import ClientError


class TrailAlreadyExistsError(ClientError):
    code = "TrailAlreadyExistsException"


class TrailNotFoundError(ClientError):
    code = "TrailNotFoundException"


class InvalidTrailNameError(ClientError):
    code = "InvalidTrailNameException"


class TrailNotProvidedError(ClientError):
    code = "TrailNotProvidedException"


class CloudTrailArnInvalidError(ClientError):
    code = "CloudTrailARNInvalidException"


class InvalidHomeRegionError(ClientError):
    code = "InvalidHomeRegionException"


class MaximumNumberOfTrailsExceededError(ClientError):
    code = "MaximumNumberOfTrailsExceededException"


class S3BucketDoesNotExistError(ClientError):
    code = "S3BucketDoesNotExistException"


class InvalidS3BucketNameError(ClientError):
    code = "InvalidS3BucketNameException"


class InvalidS3PrefixError(ClientError):
    code = "InvalidS3PrefixException"


class InsufficientS3BucketPolicyError(ClientError):
    code = "InsufficientS3BucketPolicyException"


class InvalidKmsKeyIdError(ClientError):
    code = "InvalidKmsKeyIdException"


class KmsKeyNotFoundError(ClientError):
    code = "KmsKeyNotFoundException"


class KmsKeyDisabledError(ClientError):
    code = "KmsKeyDisabledException"


class InsufficientEncryptionPolicyError(ClientError):
    code = "InsufficientEncryptionPolicyException"


class KmsError(ClientError):
    code = "KmsException"


class InvalidEventSelectorsError(ClientError):
    code = "InvalidEventSelectorsException"


class InvalidParameterCombinationError(ClientError):
    code = "InvalidParameterCombinationException"


class ResourceNotFoundError(ClientError):
    code = "ResourceNotFoundException"


class TagsLimitExceededError(ClientError):
    code = "TagsLimitExceededException"


class InvalidTagParameterError(ClientError):
    code = "InvalidTagParameterException"


class InvalidTokenError(ClientError):
    code = "InvalidTokenException"


class UnsupportedOperationError(ClientError):
    code = "UnsupportedOperationException"
