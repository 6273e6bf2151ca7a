"""Sealbox's only door to cryptographic primitives.

Callers ask for recipes — seal these bytes for this context, open this blob — and get
opaque, versioned, self-describing bytes back. Every decryption failure is
InvalidCiphertext. Nothing outside this package imports ``cryptography``.
"""

from sealbox.crypto.aead import KEY_BYTES, open_, seal
from sealbox.crypto.blob import BlobHeader, open_blob, read_header, seal_blob
from sealbox.crypto.context import canonical_context
from sealbox.crypto.errors import InvalidCiphertext
from sealbox.crypto.random import random_bytes, random_digits, random_token, unique_id


def new_key_material() -> bytes:
    """Fresh 256-bit symmetric key material."""
    return random_bytes(KEY_BYTES)


__all__ = [
    "KEY_BYTES",
    "BlobHeader",
    "InvalidCiphertext",
    "canonical_context",
    "new_key_material",
    "open_",
    "open_blob",
    "random_bytes",
    "random_digits",
    "random_token",
    "read_header",
    "seal",
    "seal_blob",
    "unique_id",
]
