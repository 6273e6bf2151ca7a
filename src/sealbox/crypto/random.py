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


class _Pool:
    """Random bytes drawn from the OS in 4 KiB refills, for ids drawn per request."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._buf, self._pos = secrets.token_bytes(4096), 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out


_POOL = _Pool()


def unique_id() -> str:
    """A random RFC 4122 version-4 UUID string, for request and event ids.

    Ids are unique, not secret: drawing them from a pooled buffer saves a syscall per
    id on the request path. (Keys and nonces never come from here.)
    """
    b = bytearray(_POOL.take(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
