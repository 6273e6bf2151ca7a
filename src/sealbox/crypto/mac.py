"""HMAC KMS keys with AWS KMS semantics: GenerateMac and VerifyMac.

Each key spec allows exactly one MAC algorithm (HMAC_224 -> HMAC_SHA_224, HMAC_256 ->
HMAC_SHA_256, HMAC_384 -> HMAC_SHA_384, HMAC_512 -> HMAC_SHA_512). Generated keys are as
long as the hash output (28/32/48/64 bytes). Imported material may be longer, as AWS
allows: 28-64 bytes for HMAC_224 and HMAC_256 (32-64), 48-128 for HMAC_384 and 64-128
for HMAC_512. The MAC is the full, untruncated RFC 2104 HMAC output.
"""

from __future__ import annotations

import hashlib
import hmac

from sealbox.crypto.random import random_bytes

# spec -> (algorithm, hashlib name, minimum key bytes, maximum key bytes)
_SPECS: dict[str, tuple[str, str, int, int]] = {
    "HMAC_224": ("HMAC_SHA_224", "sha224", 28, 64),
    "HMAC_256": ("HMAC_SHA_256", "sha256", 32, 64),
    "HMAC_384": ("HMAC_SHA_384", "sha384", 48, 128),
    "HMAC_512": ("HMAC_SHA_512", "sha512", 64, 128),
}
_ALGORITHMS = {alg: spec for spec, (alg, _, _, _) in _SPECS.items()}
HMAC_SPECS = frozenset(_SPECS)
MAC_ALGORITHMS = frozenset(_ALGORITHMS)


def mac_algorithm(spec: str) -> str:
    """The one MacAlgorithm AWS allows for an HMAC key spec (DescribeKey's MacAlgorithms)."""
    if spec not in _SPECS:
        raise ValueError("unsupported HMAC key spec")
    return _SPECS[spec][0]


def new_hmac_key(spec: str) -> bytes:
    """Fresh key material for an HMAC key spec (28, 32, 48 or 64 bytes)."""
    if spec not in _SPECS:
        raise ValueError("unsupported HMAC key spec")
    return random_bytes(hashlib.new(_SPECS[spec][1]).digest_size)


def check_hmac_key(spec: str, key: bytes) -> None:
    """ValueError unless key is a valid length for spec (generated or imported material)."""
    if spec not in _SPECS:
        raise ValueError("unsupported HMAC key spec")
    _, _, lo, hi = _SPECS[spec]
    if not lo <= len(key) <= hi:
        raise ValueError("HMAC key material has the wrong length for its key spec")


def generate_mac(
    key: bytes, algorithm: str, message: bytes, *, key_spec: str | None = None
) -> bytes:
    """HMAC(key, message) with algorithm's hash.

    ValueError if algorithm is unknown, doesn't fit key_spec (when given), or the key
    length is impossible for the algorithm's key spec.
    """
    return hmac.new(key, message, _hash_name(key, algorithm, key_spec)).digest()


def verify_mac(
    key: bytes, algorithm: str, message: bytes, mac: bytes, *, key_spec: str | None = None
) -> bool:
    """True iff mac is the HMAC of message (constant time; False for any mismatch or length)."""
    expected = hmac.new(key, message, _hash_name(key, algorithm, key_spec)).digest()
    return hmac.compare_digest(expected, mac)


def _hash_name(key: bytes, algorithm: str, key_spec: str | None) -> str:
    spec = _ALGORITHMS.get(algorithm)
    if spec is None:
        raise ValueError("unsupported MAC algorithm")
    if key_spec is not None and key_spec != spec:
        raise ValueError("MAC algorithm is not valid for this key spec")
    check_hmac_key(spec, key)
    return _SPECS[spec][1]
