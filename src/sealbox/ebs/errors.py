"""EBS errors with the codes EC2 answers (the EBS direct APIs translate them).

EC2's codes are dotted (InvalidVolume.NotFound) and its client errors are HTTP 400, except
UnauthorizedOperation (403) and DryRunOperation (412). The EBS direct APIs have their own
few errors (ValidationException with a Reason, ResourceNotFoundException, ...): they are
defined here too, and the direct-API adapter maps the EC2 ones onto them.
"""

from __future__ import annotations

from sealbox.errors import AwsError, ClientError


class Ec2Error(ClientError):
    """An EC2 client error (HTTP 400 unless the subclass says otherwise)."""


def _ec2(code: str, status: int = 400) -> type[Ec2Error]:
    return type(code.replace(".", ""), (Ec2Error,), {"code": code, "http_status": status})


InvalidVolumeNotFound = _ec2("InvalidVolume.NotFound")
InvalidVolumeIdMalformed = _ec2("InvalidVolumeID.Malformed")
InvalidSnapshotNotFound = _ec2("InvalidSnapshot.NotFound")
InvalidSnapshotIdMalformed = _ec2("InvalidSnapshotID.Malformed")
InvalidInstanceIdMalformed = _ec2("InvalidInstanceID.Malformed")
InvalidAttachmentNotFound = _ec2("InvalidAttachment.NotFound")
InvalidZoneNotFound = _ec2("InvalidZone.NotFound")
InvalidId = _ec2("InvalidID")
InvalidParameterValue = _ec2("InvalidParameterValue")
InvalidParameterCombination = _ec2("InvalidParameterCombination")
InvalidParameterDependency = _ec2("InvalidParameterDependency")
InvalidParameter = _ec2("InvalidParameter")
MissingParameter = _ec2("MissingParameter")
IncorrectState = _ec2("IncorrectState")
VolumeInUse = _ec2("VolumeInUse")
TagLimitExceeded = _ec2("TagLimitExceeded")
UnauthorizedOperation = _ec2("UnauthorizedOperation", 403)
DryRunOperation = _ec2("DryRunOperation", 412)
InvalidKmsKeyInvalidState = _ec2("InvalidKMSKey.InvalidState")
InvalidKmsKeyNotFound = _ec2("InvalidKMSKey.NotFound")


class Ec2InternalError(AwsError):
    code = "InternalError"
    http_status = 500


class StoredDataCorrupt(AwsError):
    """A snapshot block failed authentication: never served."""

    code = "InternalError"
    http_status = 500


class KmsFailure(Ec2Error):
    """A KMS error met while EC2 used a key on the caller's behalf.

    Carries the KMS code (``kms_code``) for the direct APIs; EC2 reports it as
    InvalidKMSKey.InvalidState (disabled, pending deletion, undecryptable),
    InvalidKMSKey.NotFound (no such key, or shredded) or UnauthorizedOperation.
    """

    def __init__(self, kms_error: AwsError) -> None:
        self.kms_code = kms_error.code
        if kms_error.code == "NotFoundException":
            code, status = "InvalidKMSKey.NotFound", 400
            message = f"The KMS key provided does not exist: {kms_error.message}"
        elif kms_error.code.startswith("AccessDenied"):
            code, status = "UnauthorizedOperation", 403
            message = kms_error.message
        elif kms_error.code in ("InvalidKeyUsageException", "IncorrectKeyException"):
            code, status = "InvalidParameterValue", 400
            message = f"The KMS key provided cannot encrypt EBS data: {kms_error.message}"
        else:
            code, status = "InvalidKMSKey.InvalidState", 400
            message = f"The KMS key provided is in an incorrect state: {kms_error.message}"
        super().__init__(message)
        self.code = code
        self.http_status = status


# -- the EBS direct APIs' own errors -------------------------------------------------------


class EbsApiError(ClientError):
    """A direct-API error; ``reason`` is the Reason member AWS sends with some of them."""

    def __init__(self, message: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class EbsValidation(EbsApiError):
    code = "ValidationException"
    http_status = 400


class EbsNotFound(EbsApiError):
    code = "ResourceNotFoundException"
    http_status = 404


class EbsAccessDenied(EbsApiError):
    code = "AccessDeniedException"
    http_status = 403


class EbsConflict(EbsApiError):
    code = "ConflictException"
    http_status = 409


class EbsInternal(AwsError):
    code = "InternalServerException"
    http_status = 500
