"""AES-256-GCM with nonces that callers never choose.

Each seal draws 28 random bytes: 16 derive a one-time key from the long-lived key by
HMAC-SHA256, 12 are the GCM nonce. A long-lived key can therefore seal far more than
GCM's 2**32 random-nonce message limit without risking a nonce collision under one
key. Output layout: salt(16) | nonce(12) | ciphertext | tag(16).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto.errors import InvalidCiphertext
from sealbox.crypto.random import random_bytes

KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = SALT_BYTES + NONCE_BYTES + TAG_BYTES
_LABEL = b"sealbox/aead/v1/one-time-key"


def _one_time_key(key: bytes, salt: bytes) -> bytes:
    return hmac.new(key, _LABEL + salt, hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate plaintext, binding aad; returns salt|nonce|ct|tag."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    fresh = random_bytes(SALT_BYTES + NONCE_BYTES)
    salt, nonce = fresh[:SALT_BYTES], fresh[SALT_BYTES:]
    return fresh + AESGCM(_one_time_key(key, salt)).encrypt(nonce, plaintext, aad)


def open_(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt what seal returned; any failure is InvalidCiphertext."""
    if len(key) != KEY_BYTES or len(sealed) < OVERHEAD:
        raise InvalidCiphertext()
    salt = sealed[:SALT_BYTES]
    nonce = sealed[SALT_BYTES : SALT_BYTES + NONCE_BYTES]
    try:
        return AESGCM(_one_time_key(key, salt)).decrypt(
            nonce, sealed[SALT_BYTES + NONCE_BYTES :], aad
        )
    except InvalidTag:
        raise InvalidCiphertext() from None
