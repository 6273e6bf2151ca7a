"""Segmented AEAD stream for S3 object data (and each part of a multipart upload).

Byte layout, version 1::

    header   24 bytes
        magic         3 bytes  b"SBS"
        version       1 byte   0x01
        segment_size  4 bytes  big-endian plaintext bytes per segment
        salt         16 bytes  random, fresh for every stream
    segment 0 | segment 1 | ... | segment n-1
        each      ciphertext | tag(16), AES-256-GCM

Every stream has at least one segment: all segments hold exactly segment_size
plaintext bytes except the last, which holds 0..segment_size bytes (an empty stream is
one empty last segment; a stream whose size is a multiple of segment_size ends with a
full last segment).

Keys and nonces:

* segment key = HKDF-SHA256(data_key, salt=salt,
  info=b"sealbox/object-stream/v1" + identity), so one data key can seal many streams
  (multipart parts re-uploaded under one upload's key) without a nonce ever repeating
  under one segment key.
* nonce = last flag (4 bytes big-endian, 1 for the last segment, else 0) | segment
  index (8 bytes big-endian).
* associated data = header | identity.

The identity (for instance bucket, key, version id and part number, encoded
unambiguously by the caller) and the salt select the key, and the header and identity
are authenticated in every segment; the index and last flag are in the nonce. So a
flipped byte, reordered or swapped segments, a segment or a whole stream from another
identity, a tampered header and truncation (whole segments or partial, including a
stream cut at a segment boundary) all fail authentication. Every such failure raises
StreamCorrupt, a subclass of InvalidCiphertext with the same message.

The plaintext size is not in the stream: the reader takes it from the object's
metadata, which tells it where the last segment is. A ranged read decrypts only the
segments the range touches (span() maps a plaintext range to them).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealbox.crypto.errors import InvalidCiphertext
from sealbox.crypto.random import random_bytes

MAGIC = b"SBS"
VERSION = 1
KEY_SIZE = 32
SALT_SIZE = 16
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024

_HEADER = struct.Struct(">3sBI16s")
HEADER_SIZE = _HEADER.size  # 24
_NONCE = struct.Struct(">IQ")
_INFO = b"sealbox/object-stream/v1"


class StreamCorrupt(InvalidCiphertext):
    """A stream, its header or a piece of it failed to authenticate or parse."""


def segment_count(plaintext_size: int, segment_size: int) -> int:
    """Number of segments in a stream of plaintext_size bytes (at least one)."""
    _check_sizes(plaintext_size, segment_size)
    if plaintext_size == 0:
        return 1
    return -(-plaintext_size // segment_size)


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    """Total stored bytes of a stream, header included."""
    return HEADER_SIZE + plaintext_size + TAG_SIZE * segment_count(plaintext_size, segment_size)


@dataclass(frozen=True, slots=True)
class SegmentSpan:
    """The segments holding a plaintext byte range, and where they sit in the stream.

    first, last: segment indexes (inclusive). file_offset, file_length: the byte range
    of those whole segments in the stored stream (header included in the offset).
    skip: plaintext bytes to drop from the start of the first decrypted segment.
    """

    first: int
    last: int
    file_offset: int
    file_length: int
    skip: int


def span(plaintext_size: int, segment_size: int, start: int, end_inclusive: int) -> SegmentSpan:
    """The segments a plaintext range [start, end_inclusive] touches."""
    count = segment_count(plaintext_size, segment_size)
    if not 0 <= start <= end_inclusive < plaintext_size:
        raise ValueError("range must satisfy 0 <= start <= end < plaintext_size")
    first = start // segment_size
    last = end_inclusive // segment_size
    offset = HEADER_SIZE + first * (segment_size + TAG_SIZE)
    length = _segments_length(plaintext_size, segment_size, count, first, last)
    return SegmentSpan(first, last, offset, length, start - first * segment_size)


class StreamSealer:
    """Encrypts one stream incrementally: write header, then update()s, then finish()."""

    def __init__(
        self, data_key: bytes, identity: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> None:
        if len(data_key) != KEY_SIZE:
            raise ValueError("stream data key must be 32 bytes")
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes")
        self.header: bytes = _HEADER.pack(MAGIC, VERSION, segment_size, random_bytes(SALT_SIZE))
        self._segment_size = segment_size
        self._aead = AESGCM(_segment_key(data_key, self.header, identity))
        self._aad = self.header + bytes(identity)
        # Holds at most one segment: a full segment is only sealed once more data
        # shows it is not the last one.
        self._pending = bytearray()
        self._index = 0
        self._size = 0
        self._finished = False

    @property
    def segment_size(self) -> int:
        return self._segment_size

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes accepted so far."""
        return self._size

    def update(self, data: bytes | memoryview) -> bytes:
        """Accept more plaintext; returns the ciphertext of every segment now complete."""
        if self._finished:
            raise ValueError("stream already finished")
        view = memoryview(data).cast("B")
        n = len(view)
        if n == 0:
            return b""
        self._size += n
        seg = self._segment_size
        pending = self._pending
        if len(pending) + n <= seg:
            pending += view
            return b""
        out: list[bytes] = []
        pos = 0
        if pending:
            pos = seg - len(pending)
            pending += view[:pos]
            out.append(self._seal(pending, last=False))
            pending.clear()
        # More than one segment remains: seal straight from the caller's buffer.
        while n - pos > seg:
            out.append(self._seal(view[pos : pos + seg], last=False))
            pos += seg
        pending += view[pos:]
        return b"".join(out)

    def finish(self) -> bytes:
        """The last segment (flagged last); the stream is complete after this."""
        if self._finished:
            raise ValueError("stream already finished")
        self._finished = True
        out = self._seal(self._pending, last=True)
        self._pending = bytearray()
        return out

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        nonce = _NONCE.pack(1 if last else 0, self._index)
        self._index += 1
        return self._aead.encrypt(nonce, plaintext, self._aad)


class StreamOpener:
    """Decrypts whole segments, or plaintext ranges, of one stored stream."""

    def __init__(
        self, data_key: bytes, identity: bytes, header: bytes, plaintext_size: int
    ) -> None:
        header = bytes(header)
        if len(data_key) != KEY_SIZE or len(header) != HEADER_SIZE:
            raise StreamCorrupt()
        magic, version, segment_size, _salt = _HEADER.unpack(header)
        if (
            magic != MAGIC
            or version != VERSION
            or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE
        ):
            raise StreamCorrupt()
        if plaintext_size < 0:
            raise ValueError("plaintext size must not be negative")
        self._segment_size: int = segment_size
        self._plaintext_size = plaintext_size
        self._count = segment_count(plaintext_size, segment_size)
        self._last_length = plaintext_size - (self._count - 1) * segment_size + TAG_SIZE
        self._aead = AESGCM(_segment_key(data_key, header, identity))
        self._aad = header + bytes(identity)

    @property
    def segment_size(self) -> int:
        return self._segment_size

    @property
    def plaintext_size(self) -> int:
        return self._plaintext_size

    def open_segments(self, first_index: int, ciphertext: bytes | memoryview) -> bytes:
        """Decrypt consecutive whole segments starting at first_index.

        The stream's last segment is opened as the last one, every other as not; a
        piece that is empty, ends mid-segment or runs past the stream is StreamCorrupt.
        A piece may stop at any segment boundary before the end (that is what a range
        needs), so a reader of the whole stream must check it got every segment
        (plaintext() does: a short read_at is StreamCorrupt).
        """
        view = memoryview(ciphertext).cast("B")
        total = len(view)
        if total == 0 or not 0 <= first_index < self._count:
            raise StreamCorrupt()
        full = self._segment_size + TAG_SIZE
        last_index = self._count - 1
        aead, aad, pack = self._aead, self._aad, _NONCE.pack
        out: list[bytes] = []
        pos = 0
        index = first_index
        try:
            while pos < total:
                if index < last_index:
                    length, flag = full, 0
                elif index == last_index:
                    length, flag = self._last_length, 1
                else:
                    raise StreamCorrupt()
                end = pos + length
                if end > total:
                    raise StreamCorrupt()
                out.append(aead.decrypt(pack(flag, index), view[pos:end], aad))
                pos = end
                index += 1
        except InvalidTag:
            raise StreamCorrupt() from None
        return out[0] if len(out) == 1 else b"".join(out)

    def plaintext(
        self,
        read_at: Callable[[int, int], bytes],
        start: int,
        end_inclusive: int,
        batch_bytes: int = 1 << 20,
    ) -> Iterator[bytes]:
        """Yield plaintext[start:end_inclusive + 1], reading and decrypting in batches.

        read_at(offset, length) must return that many bytes of the stored stream
        (offsets count from the start of the header); a short read is StreamCorrupt.
        """
        seg = self._segment_size
        whole = span(self._plaintext_size, seg, start, end_inclusive)
        per_batch = max(1, batch_bytes // seg)
        index = whole.first
        while index <= whole.last:
            batch_last = min(whole.last, index + per_batch - 1)
            offset = HEADER_SIZE + index * (seg + TAG_SIZE)
            length = _segments_length(self._plaintext_size, seg, self._count, index, batch_last)
            piece = read_at(offset, length)
            if len(piece) != length:
                raise StreamCorrupt()
            plain = self.open_segments(index, piece)
            lo = start - index * seg if index == whole.first else 0
            hi = end_inclusive + 1 - index * seg if batch_last == whole.last else len(plain)
            yield plain if lo == 0 and hi == len(plain) else plain[lo:hi]
            index = batch_last + 1


def _check_sizes(plaintext_size: int, segment_size: int) -> None:
    if plaintext_size < 0:
        raise ValueError("plaintext size must not be negative")
    if segment_size <= 0:
        raise ValueError("segment size must be positive")


def _segments_length(
    plaintext_size: int, segment_size: int, count: int, first: int, last: int
) -> int:
    """Stored bytes of segments first..last (inclusive) of a stream with count segments."""
    full = segment_size + TAG_SIZE
    if last < count - 1:
        return (last - first + 1) * full
    last_plain = plaintext_size - (count - 1) * segment_size
    return (last - first) * full + last_plain + TAG_SIZE


def _segment_key(data_key: bytes, header: bytes, identity: bytes) -> bytes:
    salt = header[HEADER_SIZE - SALT_SIZE : HEADER_SIZE]
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_INFO + identity)
    return hkdf.derive(data_key)
