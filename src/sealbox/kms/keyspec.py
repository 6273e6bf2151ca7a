"""What each key spec and key usage may do: one table instead of scattered checks.

Follows AWS KMS's key spec reference: which usages a spec supports, and which
encryption, signing, MAC and key agreement algorithms each (spec, usage) allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sealbox.crypto import asymmetric
from sealbox.errors import ValidationError
from sealbox.kms.errors import UnsupportedOperationError

Kind = Literal["symmetric", "rsa", "ecc", "hmac", "mldsa"]

_RSA_SIGNING = (
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
)  # fmt: skip
_RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


@dataclass(frozen=True, slots=True)
class KeySpecInfo:
    name: str
    kind: Kind
    usages: tuple[str, ...]
    encryption_algorithms: tuple[str, ...] = ()
    signing_algorithms: tuple[str, ...] = ()
    mac_algorithms: tuple[str, ...] = ()
    key_agreement_algorithms: tuple[str, ...] = ()

    @property
    def symmetric_encryption(self) -> bool:
        return self.kind == "symmetric"

    @property
    def asymmetric(self) -> bool:
        return self.kind in ("rsa", "ecc", "mldsa")

    def algorithms_for(self, usage: str) -> dict[str, list[str]]:
        """The algorithm lists DescribeKey and GetPublicKey show for a key of this usage."""
        if usage == "ENCRYPT_DECRYPT":
            return {"EncryptionAlgorithms": list(self.encryption_algorithms)}
        if usage == "SIGN_VERIFY":
            return {"SigningAlgorithms": list(self.signing_algorithms)}
        if usage == "GENERATE_VERIFY_MAC":
            return {"MacAlgorithms": list(self.mac_algorithms)}
        if usage == "KEY_AGREEMENT":
            return {"KeyAgreementAlgorithms": list(self.key_agreement_algorithms)}
        return {}


def _ecc(name: str, hash_alg: str, agreement: bool) -> KeySpecInfo:
    usages = ("SIGN_VERIFY", "KEY_AGREEMENT") if agreement else ("SIGN_VERIFY",)
    return KeySpecInfo(
        name,
        "ecc",
        usages,
        signing_algorithms=(f"ECDSA_{hash_alg}",),
        key_agreement_algorithms=("ECDH",) if agreement else (),
    )


SPECS: dict[str, KeySpecInfo] = {
    "SYMMETRIC_DEFAULT": KeySpecInfo(
        "SYMMETRIC_DEFAULT", "symmetric", ("ENCRYPT_DECRYPT",), ("SYMMETRIC_DEFAULT",)
    ),
    **{
        name: KeySpecInfo(
            name,
            "rsa",
            ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
            encryption_algorithms=_RSA_ENCRYPTION,
            signing_algorithms=_RSA_SIGNING,
        )
        for name in ("RSA_2048", "RSA_3072", "RSA_4096")
    },
    "ECC_NIST_P256": _ecc("ECC_NIST_P256", "SHA_256", agreement=True),
    "ECC_NIST_P384": _ecc("ECC_NIST_P384", "SHA_384", agreement=True),
    "ECC_NIST_P521": _ecc("ECC_NIST_P521", "SHA_512", agreement=True),
    "ECC_SECG_P256K1": _ecc("ECC_SECG_P256K1", "SHA_256", agreement=False),
    **{
        f"HMAC_{bits}": KeySpecInfo(
            f"HMAC_{bits}",
            "hmac",
            ("GENERATE_VERIFY_MAC",),
            mac_algorithms=(f"HMAC_SHA_{bits}",),
        )
        for bits in (224, 256, 384, 512)
    },
    **{
        name: KeySpecInfo(name, "mldsa", ("SIGN_VERIFY",), signing_algorithms=("ML_DSA_SHAKE_256",))
        for name in ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
        if name in asymmetric.supported_specs()
    },
}

# Valid in AWS's API but not offered here (China-region SM2, Ed25519 for now).
NOT_SUPPORTED = {"SM2", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"} - set(SPECS)

DATA_KEY_PAIR_SPECS = frozenset(
    {"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
     "ECC_SECG_P256K1"}
)  # fmt: skip


def info(key_spec: str) -> KeySpecInfo:
    return SPECS[key_spec]


def resolve(key_spec: str | None, key_usage: str | None) -> tuple[KeySpecInfo, str]:
    """The spec and usage a CreateKey asks for, checked as AWS does."""
    spec_name = key_spec or "SYMMETRIC_DEFAULT"
    if spec_name in NOT_SUPPORTED:
        raise UnsupportedOperationError(f"KeySpec {spec_name} is not supported by this server.")
    spec = SPECS.get(spec_name)
    if spec is None:
        raise ValidationError(f"KeySpec {spec_name} is not valid.")
    if key_usage is None:
        if spec.kind != "symmetric":
            raise ValidationError(
                f"You must specify a KeyUsage value for an asymmetric or HMAC KMS key "
                f"({spec_name})."
            )
        key_usage = spec.usages[0]
    if key_usage not in spec.usages:
        raise ValidationError(f"KeyUsage {key_usage} is not compatible with KeySpec {spec_name}.")
    return spec, key_usage
