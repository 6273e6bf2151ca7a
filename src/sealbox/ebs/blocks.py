"""Snapshot blocks: 512 KiB, each sealed with AES-256-GCM, shared between snapshots.

A stored block is one file of the block store (data_dir/ebs-blocks, written like the S3
blob store: temp file, fsync, rename, directory fsync), holding
``crypto.seal(block_key, plaintext, aad)`` where

* ``block_key`` = HMAC-SHA256(data key, "sealbox/ebs/snapshot-block/v1|" + context id):
  every snapshot sharing a data key (one lineage: a volume, its snapshots, their
  direct-API children and same-key copies) shares the block key, which is what lets a
  child snapshot name its parent's unchanged blocks instead of storing them again;
* ``aad`` binds the lineage (context id) and the block index, so a block moved to another
  index or into another lineage fails to open.

Which stored block each snapshot index names is metadata (ebs_snapshot_blocks); a block
is deleted when no snapshot names it any more (reference counting by those rows).

Change detection without leaking plaintext hashes: each stored block carries
``mac`` = HMAC-SHA256(mac key, SHA-256(plaintext)), the mac key derived like the block
key. Only
someone holding the lineage's data key can compute or test it; it tells the service
that a block of a new snapshot equals its parent's block at the same index.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sealbox import crypto
from sealbox.crypto import unique_id
from sealbox.crypto.aead import OVERHEAD as AEAD_OVERHEAD
from sealbox.crypto.kdf import constant_time_equal, fingerprint
from sealbox.ebs.errors import StoredDataCorrupt
from sealbox.ebs.model import BLOCK_SIZE
from sealbox.storage.blobstore import BlobMissing, BlobStore, fsync_dir

T = TypeVar("T")
R = TypeVar("R")

# Blocks are written on a few threads at once: each is fsynced before it is named, and
# concurrent fsyncs share the filesystem's journal commits (one at a time costs ~5-10 ms).
_IO_THREADS = 4
_WINDOW = 8  # blocks in flight (memory: _WINDOW x 512 KiB)

#: Bytes of a stored (sealed) 512 KiB block: the AEAD's salt, nonce and tag added.
SEALED_BLOCK_SIZE = BLOCK_SIZE + AEAD_OVERHEAD

_BLOCK_LABEL = b"sealbox/ebs/snapshot-block/v1|"
_MAC_LABEL = b"sealbox/ebs/block-mac/v1|"
_CHECKSUM_LABEL = b"sealbox/ebs/checksum/v1|"


class BlockKeys:
    """The keys of one lineage, derived from its data key."""

    __slots__ = ("_mac_key", "_seal_key", "context_id")

    def __init__(self, data_key: bytes, context_id: str) -> None:
        ident = context_id.encode()
        self._seal_key = fingerprint(data_key, _BLOCK_LABEL + ident)
        self._mac_key = fingerprint(data_key, _MAC_LABEL + ident)
        self.context_id = context_id

    def _aad(self, block_index: int) -> bytes:
        return b"sealbox/ebs/block/v1|%s|%d" % (self.context_id.encode(), block_index)

    def seal(self, block_index: int, plaintext: bytes) -> bytes:
        return crypto.seal(self._seal_key, plaintext, self._aad(block_index))

    def open(self, block_index: int, sealed: bytes) -> bytes:
        return crypto.open_(self._seal_key, sealed, self._aad(block_index))

    def mac(self, plaintext: bytes) -> bytes:
        return self.mac_of_digest(hashlib.sha256(plaintext).digest())

    def mac_of_digest(self, sha256_digest: bytes) -> bytes:
        """The MAC of a block whose SHA-256 is already known (PutSnapshotBlock's)."""
        return fingerprint(self._mac_key, sha256_digest)

    def same(self, mac: bytes | None, plaintext_mac: bytes) -> bool:
        return mac is not None and constant_time_equal(mac, plaintext_mac)

    def seal_checksum(self, snapshot_id: str, block_index: int, digest: bytes) -> bytes:
        aad = _CHECKSUM_LABEL + b"%s|%d" % (snapshot_id.encode(), block_index)
        return crypto.seal(self._seal_key, digest, aad)

    def open_checksum(self, snapshot_id: str, block_index: int, sealed: bytes) -> bytes:
        aad = _CHECKSUM_LABEL + b"%s|%d" % (snapshot_id.encode(), block_index)
        return crypto.open_(self._seal_key, sealed, aad)


class BlockStore:
    def __init__(self, root: Path) -> None:
        self._blobs = BlobStore(root)

    def put(self, keys: BlockKeys, block_index: int, plaintext: bytes) -> str:
        """Seal and durably store one block; returns its id (name it in a commit after)."""
        writer = self._blobs.create()
        try:
            writer.write(keys.seal(block_index, plaintext))
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def put_deferred(self, keys: BlockKeys, block_index: int, plaintext: bytes) -> str:
        """Seal and store one block *without* making it durable (PutSnapshotBlock): the
        file is written and named, but neither it nor its directory is fsynced until
        :meth:`make_durable` (CompleteSnapshot). Until then an operating-system crash may
        lose or truncate it; a process crash does not (the data is in the page cache)."""
        sealed = keys.seal(block_index, plaintext)
        block_id = unique_id().replace("-", "")
        tmp = self._blobs.tmp_dir / f"{block_id}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(sealed)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        final = self._blobs.path(block_id)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return block_id

    def make_durable(self, block_ids: Sequence[str], sealed_size: int) -> list[str]:
        """fsync the given blocks' files and their directories (a few threads at once).

        Returns the ids whose file is missing or not ``sealed_size`` bytes long: blocks
        stored by :meth:`put_deferred` and lost in an operating-system crash since.
        """

        def sync(block_id: str) -> bool:
            try:
                fd = os.open(self._blobs.path(block_id), os.O_RDONLY)
            except FileNotFoundError:
                return False
            try:
                if os.fstat(fd).st_size != sealed_size:
                    return False
                os.fsync(fd)
                return True
            finally:
                os.close(fd)

        lost = [b for b, ok in zip(block_ids, ordered_map(sync, block_ids), strict=True) if not ok]
        dirs = sorted({self._blobs.path(b).parent for b in block_ids})
        for _ in ordered_map(_fsync_existing_dir, dirs):
            pass
        return lost

    def get(self, keys: BlockKeys, block_id: str, block_index: int) -> bytes:
        """The plaintext of a stored block; StoredDataCorrupt if it fails to authenticate."""
        try:
            with self._blobs.open(block_id) as reader:
                sealed = reader.read_at(0, 1 << 21)
        except BlobMissing:
            raise StoredDataCorrupt("A snapshot block is missing from the block store.") from None
        try:
            return keys.open(block_index, sealed)
        except crypto.InvalidCiphertext:
            raise StoredDataCorrupt("A snapshot block failed authentication.") from None

    def delete(self, block_ids: list[str]) -> None:
        for block_id in block_ids:
            self._blobs.delete(block_id)

    def clear_tmp(self) -> int:
        return self._blobs.clear_tmp()

    def block_ids(self) -> set[str]:
        return set(self._blobs.blob_ids())


def ordered_map(work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """work(item) for each item on a few threads, yielded in order, a bounded number in
    flight. An exception stops the map (after waiting for what is running)."""
    with ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="ebs-blocks") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= _WINDOW:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class BatchWriter:
    """Stores many blocks (a snapshot, a copy) on a few threads; ``block_ids`` are the
    ids in submission order once ``finish`` returns; ``abort`` deletes what was stored."""

    def __init__(self, store: BlockStore) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="ebs-blocks")
        self._futures: list[Future[str]] = []

    def put(self, keys: BlockKeys, block_index: int, plaintext: bytes) -> None:
        in_flight = [f for f in self._futures[-_WINDOW:] if not f.done()]
        if len(in_flight) >= _WINDOW:
            in_flight[0].result()
        self._futures.append(self._pool.submit(self._store.put, keys, block_index, plaintext))

    def finish(self) -> list[str]:
        try:
            return [f.result() for f in self._futures]
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        done = [
            f.result()
            for f in self._futures
            if f.done() and not f.cancelled() and f.exception() is None
        ]
        self._store.delete(done)


def _fsync_existing_dir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fsync_dir(path)
