"""Key derivation: scrypt for passphrases, HMAC for fingerprints."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# OWASP's scrypt recommendation (N=2**17, r=8, p=1): ~128 MiB and a fraction of a
# second, paid once per process start.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1


def derive_from_passphrase(
    passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> bytes:
    """A 256-bit key from a passphrase (scrypt)."""
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def fingerprint(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256(key, data): a keyed fingerprint safe to store."""
    return hmac.new(key, data, hashlib.sha256).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
