"""The digests S3 speaks: Content-MD5 and ETags, and the flexible checksums.

Digests are raw bytes, as clients base64-encode them on the wire (botocore's
httpchecksum): MD5, SHA1 and SHA256 are the hash outputs; CRC32 and CRC32C are the
32-bit value as 4 big-endian bytes, CRC64NVME the 64-bit value as 8 big-endian bytes.

Multipart objects carry one of two checksum types:

* COMPOSITE: the checksum of the concatenated part checksums, shown as
  base64 + "-" + part count (composite()).
* FULL_OBJECT: the CRC of the whole object, combined from the parts' CRCs and
  lengths without rereading the data (combine_crc()).

The multipart ETag is the MD5 of the concatenated part MD5s, hex + "-" + part count.
CRC32C and CRC64NVME (and CRC combination) come from awscrt, which botocore uses too.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol

import awscrt.checksums as _crt  # type: ignore[import-untyped, unused-ignore]

ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME")
CRC_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME")


class Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


_Update = Callable[[bytes | memoryview, int], int]
_Combine = Callable[[int, int, int], int]


def _crc32(data: bytes | memoryview, crc: int) -> int:
    return zlib.crc32(data, crc)


def _crc32c(data: bytes | memoryview, crc: int) -> int:
    return int(_crt.crc32c(data, crc))


def _crc64nvme(data: bytes | memoryview, crc: int) -> int:
    return int(_crt.crc64nvme(data, crc))


def _combine32(crc1: int, crc2: int, length2: int) -> int:
    return int(_crt.combine_crc32(crc1, crc2, length2))


def _combine32c(crc1: int, crc2: int, length2: int) -> int:
    return int(_crt.combine_crc32c(crc1, crc2, length2))


def _combine64nvme(crc1: int, crc2: int, length2: int) -> int:
    return int(_crt.combine_crc64nvme(crc1, crc2, length2))


# algorithm -> (running update, combine, digest width in bytes)
_CRCS: dict[str, tuple[_Update, _Combine, int]] = {
    "CRC32": (_crc32, _combine32, 4),
    "CRC32C": (_crc32c, _combine32c, 4),
    "CRC64NVME": (_crc64nvme, _combine64nvme, 8),
}
_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


class _Crc:
    __slots__ = ("_crc", "_update", "_width")

    def __init__(self, update: _Update, width: int) -> None:
        self._update = update
        self._width = width
        self._crc = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._crc = self._update(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(self._width, "big")


def new(algorithm: str) -> Digest:
    """A fresh digest for "MD5" or one of ALGORITHMS; ValueError for anything else."""
    crc = _CRCS.get(algorithm)
    if crc is not None:
        return _Crc(crc[0], crc[2])
    name = _HASHES.get(algorithm)
    if name is None:
        raise ValueError(f"unsupported checksum algorithm: {algorithm!r}")
    # MD5 and SHA1 serve S3's wire formats (ETag, Content-MD5, x-amz-checksum-sha1),
    # never security decisions.
    return hashlib.new(name, usedforsecurity=name == "sha256")


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite(algorithm: str, part_digests: Sequence[bytes]) -> str:
    """The multipart COMPOSITE checksum: base64(digest(concatenated part digests))-n."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported checksum algorithm: {algorithm!r}")
    if not part_digests:
        raise ValueError("a multipart checksum needs at least one part")
    d = new(algorithm)
    d.update(b"".join(part_digests))
    return f"{b64(d.digest())}-{len(part_digests)}"


def combine_crc(algorithm: str, parts: Sequence[tuple[bytes, int]]) -> bytes:
    """The FULL_OBJECT CRC of a multipart object from (part CRC digest, part length) pairs."""
    crc = _CRCS.get(algorithm)
    if crc is None:
        raise ValueError(f"not a combinable CRC algorithm: {algorithm!r}")
    if not parts:
        raise ValueError("a multipart checksum needs at least one part")
    _, combine, width = crc
    total = 0
    for i, (digest, length) in enumerate(parts):
        if len(digest) != width or length < 0:
            raise ValueError(f"{algorithm} part digests are {width} bytes with a length >= 0")
        value = int.from_bytes(digest, "big")
        total = value if i == 0 else combine(total, value, length)
    return total.to_bytes(width, "big")


def etag(md5: bytes) -> str:
    """The quoted ETag of a single-part object: '"<hex md5>"'."""
    return f'"{md5.hex()}"'


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """The quoted multipart ETag: '"<hex md5(concatenated part md5s)>-<n>"'."""
    if not part_md5s:
        raise ValueError("a multipart ETag needs at least one part")
    whole = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f'"{whole}-{len(part_md5s)}"'
