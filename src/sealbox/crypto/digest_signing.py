"""CloudTrail digest signing keys: RSA 2048, SHA256withRSA (PKCS #1 v1.5).

CloudTrail signs each digest file with a per-region key and publishes the public half
through ListPublicKeys as a DER PKCS #1 ``RSAPublicKey`` (not X.509 SubjectPublicKeyInfo:
the reference validator loads it with ``rsa.PublicKey.load_pkcs1(..., format="DER")``).
The fingerprint that digest files name (``digestPublicKeyFingerprint``) is the hex MD5 of
that DER, 32 hex digits as in AWS's samples; it only identifies the key and carries no
security weight. Private keys are handed out as DER PKCS #8 for the keystore to wrap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "SHA256withRSA"
KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class SigningKeyPair:
    private_der: bytes  # PKCS #8, unencrypted: wrap it before storing
    public_der: bytes  # PKCS #1 RSAPublicKey
    fingerprint: str


def fingerprint(public_der: bytes) -> str:
    """The key's fingerprint as digest files and ListPublicKeys show it."""
    return hashlib.md5(public_der, usedforsecurity=False).hexdigest()


def new_key_pair() -> SigningKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    return SigningKeyPair(private_der, public_der, fingerprint(public_der))


def sign(private_der: bytes, message: bytes) -> bytes:
    """SHA256withRSA over message (deterministic: the same input signs the same)."""
    key = serialization.load_der_private_key(private_der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def verify(public_der: bytes, message: bytes, signature: bytes) -> bool:
    """Whether signature is a SHA256withRSA signature of message under the key."""
    try:
        key = serialization.load_der_public_key(public_der)  # takes PKCS #1 too
    except ValueError:
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
