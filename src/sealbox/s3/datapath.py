"""Object bytes in and out: digest, seal and store a stream; find, open and check one.

A write feeds plaintext through the digests the request asked for (MD5 for the ETag,
SHA-256 when the payload was signed, the flexible checksum) and the segment sealer
into a new blob; nothing is visible until the caller commits the blob and names it in
a metadata row. A read maps a plaintext byte range onto the extents (one per part)
and their segments, and decrypts only those; any failed segment stops the read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sealbox.crypto import checksums, stream
from sealbox.s3.errors import StoredDataCorrupt
from sealbox.s3.model import Extent
from sealbox.storage.blobstore import BlobMissing, BlobStore, BlobWriter

READ_BATCH = 1 << 20


def identity(blob_id: str) -> bytes:
    """What a segment stream's AAD binds: its blob, so streams cannot be swapped."""
    return f"sealbox/s3/blob/{blob_id}".encode()


@dataclass(frozen=True, slots=True)
class Written:
    """A finished (not yet committed) stream: its size and digests."""

    size: int
    md5: bytes
    sha256_hex: str | None
    checksums: dict[str, bytes]  # algorithm → raw digest


class StreamWriter:
    """Digest + seal + store one plaintext stream into a new blob."""

    def __init__(
        self,
        blobs: BlobStore,
        dek: bytes,
        algorithms: Iterable[str] = (),
        *,
        want_sha256: bool = False,
        segment_size: int = stream.DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self._blob: BlobWriter = blobs.create()
        self.blob_id = self._blob.blob_id
        self.segment_size = segment_size
        self._sealer = stream.StreamSealer(dek, identity(self.blob_id), segment_size)
        self._md5 = checksums.new("MD5")
        self._sha256 = checksums.new("SHA256") if want_sha256 else None
        self._digests = {a: checksums.new(a) for a in algorithms if a != "MD5"}
        if self._sha256 is not None and "SHA256" in self._digests:
            self._sha256 = self._digests["SHA256"]
        self._blob.write(self._sealer.header)
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        self._md5.update(data)
        if self._sha256 is not None and "SHA256" not in self._digests:
            self._sha256.update(data)
        for digest in self._digests.values():
            digest.update(data)
        sealed = self._sealer.update(data)
        if sealed:
            self._blob.write(sealed)

    def finish(self) -> Written:
        """Seal the last segment and compute digests (the blob is still uncommitted)."""
        self._blob.write(self._sealer.finish())
        self._done = True
        return Written(
            size=self._sealer.plaintext_size,
            md5=self._md5.digest(),
            sha256_hex=None if self._sha256 is None else self._sha256.digest().hex(),
            checksums={a: d.digest() for a, d in self._digests.items()},
        )

    def commit(self) -> str:
        """fsync and name the blob; only then may a metadata row point at it."""
        return self._blob.commit()

    def abort(self) -> None:
        self._blob.abort()


def read_plaintext(
    blobs: BlobStore,
    dek: bytes,
    extents: tuple[Extent, ...],
    start: int,
    end_inclusive: int,
    batch_bytes: int = READ_BATCH,
) -> Iterator[bytes]:
    """The plaintext of [start, end] across extents, decrypted segment by segment.

    Raises StoredDataCorrupt the moment a segment fails authentication, a blob is
    missing or truncated; nothing unauthenticated is ever yielded.
    """
    offset = 0
    for extent in extents:
        ext_start, ext_end = offset, offset + extent.size - 1
        offset += extent.size
        if extent.size == 0 or ext_end < start or ext_start > end_inclusive:
            continue
        lo = max(start, ext_start) - ext_start
        hi = min(end_inclusive, ext_end) - ext_start
        yield from _read_extent(blobs, dek, extent, lo, hi, batch_bytes)


def _read_extent(
    blobs: BlobStore, dek: bytes, extent: Extent, lo: int, hi: int, batch_bytes: int
) -> Iterator[bytes]:
    try:
        reader = blobs.open(extent.blob)
    except BlobMissing:
        raise StoredDataCorrupt(f"Object data is missing (blob {extent.blob}).") from None
    with reader:
        header = reader.read_at(0, stream.HEADER_SIZE)
        try:
            opener = stream.StreamOpener(dek, identity(extent.blob), header, extent.size)
            yield from opener.plaintext(reader.read_at, lo, hi, batch_bytes)
        except stream.StreamCorrupt:
            raise StoredDataCorrupt(
                f"Object data failed authentication (blob {extent.blob}); not served."
            ) from None


def check_whole(blobs: BlobStore, dek: bytes, extents: tuple[Extent, ...]) -> None:
    """Authenticate every segment of an object (used by verification tools)."""
    total = sum(e.size for e in extents)
    for _ in read_plaintext(blobs, dek, extents, 0, max(total - 1, 0)):
        pass
