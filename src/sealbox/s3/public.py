"""S3 Block Public Access: the four settings, and whether a bucket policy or ACL is "public".

A pure module.  :func:`is_public_policy` follows "The meaning of public" in the S3 User Guide:
S3 starts from the assumption that a bucket policy is public and calls it non-public only if
every ``Allow`` statement grants access to fixed values (values without a wildcard or a policy
variable) of

* an AWS principal, user, role, account or service principal (anything but ``*``), or
* one of the restricting condition keys: a set of CIDR blocks in ``aws:SourceIp`` (not broader
  than ``/8`` for IPv4 or ``/32`` for IPv6), ``aws:SourceArn``, ``aws:SourceVpc``,
  ``aws:SourceVpce``, ``aws:SourceOwner``, ``aws:SourceAccount``, ``aws:SourceOrgID``,
  ``aws:PrincipalOrgID``, ``aws:PrincipalAccount``, ``aws:PrincipalArn``, ``aws:userid``,
  ``s3:DataAccessPointArn`` (the access point name may be a wildcard if the account is fixed)
  or ``s3:DataAccessPointAccount``.

A condition restricts only when the key must be present and equal to one of the listed values:
``StringEquals``/``StringEqualsIgnoreCase``/``StringLike``/``ArnEquals``/``ArnLike`` (and
``IpAddress`` for ``aws:SourceIp``), optionally ``ForAnyValue:``, never ``...IfExists``,
``ForAllValues:`` or a negated operator (those pass when the key is absent or different).
``Deny`` statements never make a policy public.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from sealbox.iam.policy.document import (
    Condition,
    PolicyDocument,
    Statement,
    parse_policy,
)

__all__ = [
    "ALL_OFF",
    "ALL_ON",
    "PUBLIC_CANNED_ACLS",
    "PublicAccessBlock",
    "is_public_canned_acl",
    "is_public_document",
    "is_public_policy",
]


# S3's element names and the attributes they map to.
_ELEMENTS: Final = (
    ("BlockPublicAcls", "block_public_acls"),
    ("IgnorePublicAcls", "ignore_public_acls"),
    ("BlockPublicPolicy", "block_public_policy"),
    ("RestrictPublicBuckets", "restrict_public_buckets"),
)


@dataclass(frozen=True, slots=True)
class PublicAccessBlock:
    """A PublicAccessBlockConfiguration (bucket or account level).

    ``PublicAccessBlock.ALL_ON`` / ``ALL_OFF`` are the module's :data:`ALL_ON` / :data:`ALL_OFF`.
    """

    ALL_ON: ClassVar[PublicAccessBlock]
    ALL_OFF: ClassVar[PublicAccessBlock]

    block_public_acls: bool
    ignore_public_acls: bool
    block_public_policy: bool
    restrict_public_buckets: bool

    @classmethod
    def from_config(cls, config: Mapping[str, bool] | None) -> PublicAccessBlock:
        """From S3's element names (``BlockPublicAcls``, ...); missing settings are off, and
        no configuration at all is :data:`ALL_OFF`."""
        if not config:
            return ALL_OFF
        return cls(*(bool(config.get(element, False)) for element, _ in _ELEMENTS))

    def to_config(self) -> dict[str, bool]:
        """S3's element names to values, as GetPublicAccessBlock returns them."""
        return {element: bool(getattr(self, attr)) for element, attr in _ELEMENTS}

    def combine(self, other: PublicAccessBlock | None) -> PublicAccessBlock:
        """The most restrictive combination (bucket and account settings, as S3 applies)."""
        if other is None:
            return self
        return PublicAccessBlock(
            self.block_public_acls or other.block_public_acls,
            self.ignore_public_acls or other.ignore_public_acls,
            self.block_public_policy or other.block_public_policy,
            self.restrict_public_buckets or other.restrict_public_buckets,
        )


ALL_ON: Final = PublicAccessBlock(True, True, True, True)
ALL_OFF: Final = PublicAccessBlock(False, False, False, False)
PublicAccessBlock.ALL_ON = ALL_ON
PublicAccessBlock.ALL_OFF = ALL_OFF

#: Canned ACLs that grant to the AllUsers or AuthenticatedUsers groups.
PUBLIC_CANNED_ACLS: Final = frozenset({"public-read", "public-read-write", "authenticated-read"})


def is_public_canned_acl(acl: str | None) -> bool:
    """Whether an ``x-amz-acl`` value grants access to everyone or every AWS user."""
    return acl is not None and acl.strip().lower() in PUBLIC_CANNED_ACLS


# --------------------------------------------------------------------------------------------
# Bucket policies

# Lower-cased condition keys that restrict a statement to fixed callers or sources.
_FIXED_VALUE_KEYS: Final = frozenset(
    {
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:sourceorgid",
        "aws:principalorgid",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:userid",
        "s3:dataaccesspointaccount",
    }
)
_SOURCE_IP: Final = "aws:sourceip"
_ACCESS_POINT_ARN: Final = "s3:dataaccesspointarn"
_RESTRICTING_OPERATORS: Final = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"}
)
# Broader networks than these count as public (AWS: "for example, 0.0.0.0/1").
_MIN_PREFIX_V4: Final = 8
_MIN_PREFIX_V6: Final = 32


def is_public_policy(text: str) -> bool:
    """Whether a bucket policy grants public access (see the module documentation).

    Raises :class:`~sealbox.iam.policy.document.PolicyDocumentError` for an invalid document.
    """
    return is_public_document(parse_policy(text, kind="resource"))


def is_public_document(document: PolicyDocument) -> bool:
    """:func:`is_public_policy` for an already parsed policy."""
    return any(_public_statement(statement) for statement in document.statements)


def _public_statement(statement: Statement) -> bool:
    if statement.effect != "Allow":
        return False
    principals = statement.principal
    if principals is None:  # NotPrincipal: only valid with Deny
        return False
    if not (principals.wildcard or "*" in principals.values("AWS")):
        return False  # granted to fixed principals only
    return not any(_restricts(condition) for condition in statement.conditions)


def _restricts(condition: Condition) -> bool:
    """Whether a condition limits the statement to fixed values of a restricting key."""
    if condition.if_exists or condition.set_qualifier == "ForAllValues":
        return False
    key = condition.key.lower()
    operator = condition.base_operator
    if key == _SOURCE_IP:
        return operator == "IpAddress" and all(_narrow_network(v) for v in condition.values)
    if operator not in _RESTRICTING_OPERATORS:
        return False
    if key == _ACCESS_POINT_ARN:
        return all(_fixed_access_point(v) for v in condition.values)
    if key in _FIXED_VALUE_KEYS:
        return all(_fixed(v) for v in condition.values)
    return False


def _fixed(value: str) -> bool:
    return bool(value) and not any(c in value for c in "*?") and "${" not in value


def _narrow_network(value: str) -> bool:
    if "${" in value:
        return False
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    minimum = _MIN_PREFIX_V4 if network.version == 4 else _MIN_PREFIX_V6
    return network.prefixlen >= minimum


def _fixed_access_point(value: str) -> bool:
    """``arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME``: the name may be a wildcard as long as
    everything up to it is fixed."""
    if "${" in value:
        return False
    head, sep, _name = value.partition(":accesspoint/")
    if not sep:
        return _fixed(value)
    return _fixed(head) and head.count(":") == 4 and head.split(":")[4] != ""
