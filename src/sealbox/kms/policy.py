"""Key policy documents: AWS's default policy and validation of supplied ones."""

from __future__ import annotations

import json

from sealbox import arn
from sealbox.iam.policy.document import PolicyDocumentError, parse_policy
from sealbox.kms.errors import MalformedPolicyDocumentError

MAX_POLICY_LENGTH = 32768
DEFAULT_POLICY_NAME = "default"


def default_key_policy(account_id: str) -> str:
    """The policy AWS gives a key created through the API without one."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": arn.account_root_arn(account_id)},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=2,
    )


# The service that calls KMS for an alias/aws/SERVICE key, when it is not SERVICE itself:
# EBS volumes and snapshots are encrypted by EC2 (AWS's aws/ebs policy names ec2.*).
_VIA = {"ebs": "ec2"}


def aws_managed_key_policy(account_id: str, region: str, service: str) -> str:
    """The policy of an AWS managed key (alias/aws/SERVICE): usable only through SERVICE."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": f"auto-{service}",
            "Statement": [
                {
                    "Sid": f"Allow access through {service} for all principals in the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:CallerAccount": account_id,
                            "kms:ViaService": f"{_VIA.get(service, service)}.{region}"
                            ".amazonaws.com",
                        }
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": arn.account_root_arn(account_id)},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


def validate_key_policy(text: str) -> None:
    """Raise MalformedPolicyDocumentException unless text is a valid key policy."""
    if len(text) > MAX_POLICY_LENGTH:
        raise MalformedPolicyDocumentError(
            f"Key policy exceeds the maximum length of {MAX_POLICY_LENGTH} characters."
        )
    try:
        parse_policy(text, kind="resource", max_size=MAX_POLICY_LENGTH)
    except PolicyDocumentError as exc:
        raise MalformedPolicyDocumentError(f"The new key policy is invalid: {exc}") from None
