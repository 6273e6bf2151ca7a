"""What each key spec and key usage may do: one table instead of scattered checks."""

from __future__ import annotations

from dataclasses import dataclass

from sealbox.errors import ValidationError
from sealbox.kms.errors import UnsupportedOperationError


@dataclass(frozen=True, slots=True)
class KeySpecInfo:
    name: str
    usages: tuple[str, ...]
    encryption_algorithms: tuple[str, ...] = ()

    @property
    def symmetric_encryption(self) -> bool:
        return self.name == "SYMMETRIC_DEFAULT"


SPECS: dict[str, KeySpecInfo] = {
    "SYMMETRIC_DEFAULT": KeySpecInfo(
        "SYMMETRIC_DEFAULT", ("ENCRYPT_DECRYPT",), ("SYMMETRIC_DEFAULT",)
    ),
}

# Valid in AWS's API but not built in Sealbox yet: refused with a clear error.
NOT_YET_SUPPORTED = {
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
    "ECC_SECG_P256K1", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2",
    "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519",
}  # fmt: skip


def resolve(key_spec: str | None, key_usage: str | None) -> KeySpecInfo:
    spec_name = key_spec or "SYMMETRIC_DEFAULT"
    if spec_name in NOT_YET_SUPPORTED:
        raise UnsupportedOperationError(f"KeySpec {spec_name} is not supported by this server yet.")
    info = SPECS.get(spec_name)
    if info is None:
        raise ValidationError(f"KeySpec {spec_name} is not valid.")
    usage = key_usage or info.usages[0]
    if usage not in info.usages:
        raise ValidationError(f"KeyUsage {usage} is not compatible with KeySpec {spec_name}")
    return info
