"""IAM errors with the codes and HTTP statuses AWS IAM returns (Query protocol)."""

from __future__ import annotations

from sealbox.errors import AwsError, ClientError


class NoSuchEntityError(ClientError):
    code = "NoSuchEntity"
    http_status = 404


class EntityAlreadyExistsError(ClientError):
    code = "EntityAlreadyExists"
    http_status = 409


class DeleteConflictError(ClientError):
    code = "DeleteConflict"
    http_status = 409


class LimitExceededError(ClientError):
    code = "LimitExceeded"
    http_status = 409


class MalformedPolicyDocumentError(ClientError):
    code = "MalformedPolicyDocument"
    http_status = 400


class InvalidInputError(ClientError):
    code = "InvalidInput"
    http_status = 400


class IamValidationError(ClientError):
    """A parameter breaks its constraint (IAM says ValidationError, not ...Exception)."""

    code = "ValidationError"
    http_status = 400


class ServiceFailureError(AwsError):
    code = "ServiceFailure"
    http_status = 500


class IamAccessDenied(ClientError):
    """The authorizer said no (IAM and STS answer AccessDenied, HTTP 403)."""

    code = "AccessDenied"
    http_status = 403
