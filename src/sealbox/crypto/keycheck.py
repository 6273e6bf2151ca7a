"""Recognising a secret without keeping it: a salted HMAC (SSE-C customer keys).

S3 never stores an SSE-C key; it stores HMAC-SHA256(salt, key) so the next request's
key can be checked (and a wrong key refused) in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

from sealbox.crypto.random import random_bytes

_LABEL = b"sealbox/ssec/v1/key-check"


def new_check(secret: bytes) -> tuple[bytes, bytes]:
    """(salt, check) for secret."""
    salt = random_bytes(16)
    return salt, hmac.new(salt, _LABEL + secret, hashlib.sha256).digest()


def matches(secret: bytes, salt: bytes, check: bytes) -> bool:
    return hmac.compare_digest(hmac.new(salt, _LABEL + secret, hashlib.sha256).digest(), check)


def md5(data: bytes) -> bytes:
    """MD5 as S3 uses it for integrity headers (Content-MD5, SSE-C key MD5); not for security."""
    return hashlib.md5(data, usedforsecurity=False).digest()
