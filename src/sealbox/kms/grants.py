"""KMS grants: who may use a key for which operations, under which context constraints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

# Operations a grant may allow (AWS's GrantOperation enum).
GRANT_OPERATIONS = frozenset(
    {
        "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom", "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant",
        "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
        "DeriveSharedSecret",
    }
)  # fmt: skip

# Operations that take an encryption context: the only ones a constrained grant may hold.
CONTEXT_OPERATIONS = frozenset(
    {
        "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "CreateGrant", "RetireGrant",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    key_id: str
    name: str | None
    grantee: str
    retiring: str | None
    issuing_account: str
    operations: tuple[str, ...]
    context_equals: Mapping[str, str] | None
    context_subset: Mapping[str, str] | None
    created_at: datetime
    token_digest: bytes = field(repr=False)

    def constraint_type(self) -> str | None:
        if self.context_equals is not None:
            return "EncryptionContextEquals"
        if self.context_subset is not None:
            return "EncryptionContextSubset"
        return None

    def permits(
        self,
        principal_arns: Sequence[str],
        operation: str,
        context: Mapping[str, str] | None,
    ) -> bool:
        """Whether this grant lets one of principal_arns perform operation with context."""
        if self.grantee not in principal_arns or operation not in self.operations:
            return False
        ctx = context or {}
        if self.context_equals is not None and dict(ctx) != dict(self.context_equals):
            return False
        subset = self.context_subset or {}
        return all(ctx.get(k) == v for k, v in subset.items())


def grants_permit(
    grants: Sequence[Grant],
    principal_arns: Sequence[str],
    operation: str,
    context: Mapping[str, str] | None,
) -> bool:
    return any(g.permits(principal_arns, operation, context) for g in grants)
