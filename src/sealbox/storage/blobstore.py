"""The blob store: encrypted object data as files under the data directory.

A blob is written to a temporary file, fsynced, then renamed into place and its
directory fsynced, so a blob that has a name is complete and durable. Metadata rows
name blobs only after that, which is what makes an object visible only once fully
written. Blobs are never modified; an overwritten object's blobs are deleted after
the database commit that replaced them (a crash in between leaves unreferenced blobs,
which `orphans()` can list).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from sealbox.crypto import unique_id


class BlobMissing(Exception):
    pass


class BlobWriter:
    """One new blob being written; `commit` makes it durable and gives its id."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.blob_id = unique_id().replace("-", "")
        self._tmp = store.tmp_dir / f"{self.blob_id}.part"
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self.size += written

    def commit(self) -> str:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        final = self._store.path(self.blob_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._tmp, final)
        _fsync_dir(final.parent)
        return self.blob_id

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)


class BlobReader:
    """Positional reads of one blob (an open file descriptor, safe across threads)."""

    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlobMissing(path.name) from None

    def read_at(self, offset: int, length: int) -> bytes:
        # A short read (a truncated blob) is reported by the stream layer.
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, blob_id: str) -> Path:
        # Two levels of fan-out keep directories small.
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def create(self) -> BlobWriter:
        return BlobWriter(self)

    def open(self, blob_id: str) -> BlobReader:
        return BlobReader(self.path(blob_id))

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)

    def blob_ids(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            yield path.name

    def clear_tmp(self) -> int:
        """Remove half-written blobs of a previous run (none is referenced)."""
        removed = 0
        for path in self.tmp_dir.glob("*.part"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
