"""The one randomness source. Everything random in Sealbox comes from here (the OS CSPRNG)."""

from __future__ import annotations

import secrets


def random_bytes(n: int) -> bytes:
    """n bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(n)


def random_token(alphabet: str, length: int) -> str:
    """A uniformly random string over alphabet (access key ids, secrets)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_digits(length: int) -> str:
    return random_token("0123456789", length)
