"""The KMS ciphertext blob for symmetric keys.

Byte layout, version 1::

    magic   2 bytes  b"SB"
    version 1 byte   0x01
    key_id  1 byte length n, then n ASCII bytes (a UUID or an "mrk-" id)
    key_ver 4 bytes  big-endian version number of the key material that sealed it
    body    aead.seal output: salt(16) | nonce(12) | ciphertext | tag(16)

The AEAD's associated data is the header (magic through key_ver) followed by the
canonical encryption context, so changing the named key, the version or the context
fails authentication. Decrypt needs no KeyId: the header names the key, and old key
versions keep decrypting after rotation.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from sealbox.crypto import aead
from sealbox.crypto.context import canonical_context
from sealbox.crypto.errors import InvalidCiphertext

MAGIC = b"SB"
VERSION = 1
_KEY_VERSION = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class BlobHeader:
    key_id: str
    key_version: int

    def encode(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        if not 0 < len(key_id) < 256:
            raise ValueError("key id must be 1-255 ASCII bytes")
        return MAGIC + bytes((VERSION, len(key_id))) + key_id + _KEY_VERSION.pack(self.key_version)


def read_header(blob: bytes) -> tuple[BlobHeader, int]:
    """Parse the header; returns it and the offset of the body. Malformed → InvalidCiphertext."""
    if len(blob) < 4 or blob[:2] != MAGIC or blob[2] != VERSION:
        raise InvalidCiphertext()
    n = blob[3]
    end = 4 + n + _KEY_VERSION.size
    if n == 0 or len(blob) < end + aead.OVERHEAD:
        raise InvalidCiphertext()
    try:
        key_id = blob[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCiphertext() from None
    (key_version,) = _KEY_VERSION.unpack_from(blob, 4 + n)
    return BlobHeader(key_id, key_version), end


def seal_blob(
    material: bytes, header: BlobHeader, plaintext: bytes, context: Mapping[str, str] | None
) -> bytes:
    encoded = header.encode()
    return encoded + aead.seal(material, plaintext, encoded + canonical_context(context))


def open_blob(material: bytes, blob: bytes, context: Mapping[str, str] | None) -> bytes:
    _, offset = read_header(blob)
    return aead.open_(material, blob[offset:], blob[:offset] + canonical_context(context))
