"""Fresh key material for a key spec (what KMS generates for AWS_KMS-origin keys)."""

from __future__ import annotations

from sealbox import crypto
from sealbox.crypto import asymmetric, mac
from sealbox.kms.keyspec import KeySpecInfo


def generate(spec: KeySpecInfo) -> bytes:
    """Symmetric: 32 random bytes; HMAC: a key of the spec's size; asymmetric: the
    private key as DER PKCS#8. Stored only wrapped by the root of trust."""
    if spec.kind == "symmetric":
        return crypto.new_key_material()
    if spec.kind == "hmac":
        return mac.new_hmac_key(spec.name)
    return asymmetric.generate_private_key(spec.name)
