"""The live-volume store: one XTS-encrypted file per volume, served as a block device.

Layout: ``data_dir/volumes/<volume id>.vol`` is a sparse file exactly as long as the
volume. Byte ``b`` of the volume lives at byte ``b`` of the file, in 4 KiB data units
encrypted with AES-256-XTS (sealbox.crypto.xts), tweak = unit number, under a per-volume
XTS key derived from the volume's data key. Nothing is ever written in plaintext.

Unwritten units: a unit whose ciphertext is all zeros (a hole of the sparse file, or a
trimmed range) reads as zeros. No bitmap is kept, so nothing else must be made durable;
the cost is that which 4 KiB units hold data is visible in the file (as it is with
dm-crypt and discards). See sealbox.crypto.xts.

Writes that cover whole units are encrypted and written with one pwrite. A write that
starts or ends inside a unit reads, decrypts, patches and re-encrypts that unit under a
lock for it (striped locks), so concurrent requests that touch different bytes of one
unit never lose each other's data; reads of part of a unit take the same lock so they
never decrypt a half-written unit. Requests that overlap in bytes are, as for any block
device, the client's to order.

Durability: FLUSH is fdatasync of the file (which includes the block allocation a
write into a hole needs); FUA writes are fdatasynced before they return. A unit is 4 KiB,
the page size: on a crash a unit being written is either old or new in practice, but a
torn 4 KiB write on a device with 512-byte atomicity would decrypt to garbage for that
unit (as with any XTS disk encryption whose sector is larger than the device's).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sealbox.crypto.xts import UNIT_SIZE, XtsCipher, derive_key
from sealbox.ebs.device import DeviceError
from sealbox.storage.blobstore import fsync_dir

_STRIPES = 1024
_ZERO_CHUNK = bytes(1024 * 1024)
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _load_fallocate() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return func


_FALLOCATE = _load_fallocate()


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate a range (it then reads as zeros); False where the system can't."""
    if _FALLOCATE is None or length <= 0:
        return False
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    return bool(_FALLOCATE(fd, mode, offset, length) == 0)


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:  # past the end of a (damaged) file: unwritten
            parts.append(bytes(length - got))
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class UnitLocks:
    """Striped locks over a volume's 4 KiB units: a read-modify-write of a partial unit
    and a partial read of it hold the unit's lock. Devices of one volume may share one."""

    __slots__ = ("__weakref__", "_locks")

    def __init__(self, stripes: int = _STRIPES) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    @contextlib.contextmanager
    def hold(self, units: list[int]) -> Iterator[None]:
        count = len(self._locks)
        held: list[threading.Lock] = []
        try:
            for stripe in sorted({u % count for u in units}):  # one order: no deadlock
                lock = self._locks[stripe]
                lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()


class EncryptedVolume:
    """One volume file opened with its key: a sealbox.ebs.device.VolumeDevice."""

    def __init__(
        self,
        path: Path,
        size: int,
        xts_key: bytes,
        *,
        read_only: bool = False,
        null_cipher: bool = False,
        locks: UnitLocks | None = None,
    ) -> None:
        if size <= 0 or size % UNIT_SIZE:
            raise ValueError("a volume is a positive whole number of 4 KiB units")
        self._cipher = XtsCipher(xts_key, null_cipher=null_cipher)
        self._size = size
        self._read_only = read_only
        self._fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        self._locks = locks or UnitLocks()
        self._closed = False
        self._close_lock = threading.Lock()
        self.path = path

    # -- the VolumeDevice protocol -------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def null_cipher(self) -> bool:
        return self._cipher.null_cipher

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length, "EINVAL")
        if length == 0:
            return b""
        first = offset // UNIT_SIZE
        start = first * UNIT_SIZE
        end = -(-(offset + length) // UNIT_SIZE) * UNIT_SIZE
        partial = self._partial_units(offset, length)
        try:
            if partial:
                with self._locked(partial):
                    raw = _pread_all(self._fd, end - start, start)
            else:
                raw = _pread_all(self._fd, end - start, start)
        except OSError as exc:
            raise self._io_error(exc) from None
        plain = self._cipher.decrypt(first, raw)
        if start == offset and end - start == length:
            return plain
        return plain[offset - start : offset - start + length]

    def write(self, offset: int, data: bytes, *, fua: bool = False) -> None:
        self._check_writable()
        length = len(data)
        self._check_range(offset, length, "ENOSPC")
        if length:
            self._write(offset, data)
        if fua:
            self.flush()

    def flush(self) -> None:
        if self._read_only:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise self._io_error(exc) from None

    def trim(self, offset: int, length: int) -> None:
        self._check_writable()
        self._check_range(offset, length, "ENOSPC")
        if length:
            self._zero(offset, length)

    def write_zeroes(self, offset: int, length: int, *, fua: bool = False) -> None:
        self._check_writable()
        self._check_range(offset, length, "ENOSPC")
        if length:
            self._zero(offset, length)
        if fua:
            self.flush()

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            try:
                if not self._read_only:
                    os.fdatasync(self._fd)
            finally:
                self._closed = True
                os.close(self._fd)

    # -- for snapshots ------------------------------------------------------------------

    def allocated(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(offset, end) ranges of [start, end) that may hold data (not holes)."""
        pos = start
        while pos < end:
            try:
                data = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    return
                yield pos, end  # SEEK_DATA unsupported: assume everything is data
                return
            if data >= end:
                return
            try:
                hole = os.lseek(self._fd, data, os.SEEK_HOLE)
            except OSError:
                hole = end
            yield data, min(hole, end)
            pos = hole

    # -- internals ----------------------------------------------------------------------

    def _check_range(self, offset: int, length: int, errno_name: str) -> None:
        if self._closed:
            raise DeviceError("the volume is no longer attached", "EIO")
        if offset < 0 or length < 0 or offset + length > self._size:
            raise DeviceError(
                f"request [{offset}, {offset + length}) is outside the volume ({self._size} bytes)",
                errno_name,
            )

    def _check_writable(self) -> None:
        if self._read_only:
            raise DeviceError("the volume is read-only", "EPERM")

    @staticmethod
    def _io_error(exc: OSError) -> DeviceError:
        return DeviceError(f"volume I/O failed: {exc.strerror or exc}", "EIO")

    @staticmethod
    def _partial_units(offset: int, length: int) -> list[int]:
        """The units the range covers only in part (at most the first and the last)."""
        units: list[int] = []
        end = offset + length
        if offset % UNIT_SIZE:
            units.append(offset // UNIT_SIZE)
        if end % UNIT_SIZE:
            last = end // UNIT_SIZE
            if not units or units[0] != last:
                units.append(last)
        return units

    def _locked(self, units: list[int]) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold(units)

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        length = len(data)
        first = offset // UNIT_SIZE
        start = first * UNIT_SIZE
        end = -(-(offset + length) // UNIT_SIZE) * UNIT_SIZE
        partial = self._partial_units(offset, length)
        try:
            if not partial:
                _pwrite_all(self._fd, self._cipher.encrypt(first, data), start)
                return
            with self._locked(partial):
                buf = bytearray(end - start)
                for unit in partial:
                    at = (unit - first) * UNIT_SIZE
                    raw = _pread_all(self._fd, UNIT_SIZE, unit * UNIT_SIZE)
                    buf[at : at + UNIT_SIZE] = self._cipher.decrypt(unit, raw)
                buf[offset - start : offset - start + length] = data
                _pwrite_all(self._fd, self._cipher.encrypt(first, buf), start)
        except OSError as exc:
            raise self._io_error(exc) from None

    def _zero(self, offset: int, length: int) -> None:
        """Make [offset, offset + length) read as zeros."""
        end = offset + length
        inner_start = -(-offset // UNIT_SIZE) * UNIT_SIZE
        inner_end = (end // UNIT_SIZE) * UNIT_SIZE
        if inner_start >= inner_end:  # inside one unit, or two partial ones
            self._write(offset, bytes(length))
            return
        if offset < inner_start:
            self._write(offset, bytes(inner_start - offset))
        if inner_end < end:
            self._write(inner_end, bytes(end - inner_end))
        try:
            if not _punch_hole(self._fd, inner_start, inner_end - inner_start):
                pos = inner_start
                while pos < inner_end:
                    n = min(len(_ZERO_CHUNK), inner_end - pos)
                    _pwrite_all(self._fd, memoryview(_ZERO_CHUNK)[:n], pos)
                    pos += n
        except OSError as exc:
            raise self._io_error(exc) from None


class VolumeStore:
    """The volume files under one directory (data_dir/volumes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, volume_id: str) -> Path:
        return self.root / f"{volume_id}.vol"

    def create(self, volume_id: str, size: int) -> None:
        """A new all-unwritten volume file of size bytes, durable when this returns."""
        path = self.path(volume_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.root)

    def exists(self, volume_id: str) -> bool:
        return self.path(volume_id).exists()

    def delete(self, volume_id: str) -> None:
        self.path(volume_id).unlink(missing_ok=True)

    def open(
        self,
        volume_id: str,
        size: int,
        data_key: bytes,
        *,
        read_only: bool = False,
        null_cipher: bool = False,
        locks: UnitLocks | None = None,
    ) -> EncryptedVolume:
        return EncryptedVolume(
            self.path(volume_id),
            size,
            volume_xts_key(data_key, volume_id),
            read_only=read_only,
            null_cipher=null_cipher,
            locks=locks,
        )


def volume_xts_key(data_key: bytes, volume_id: str) -> bytes:
    """Each volume its own XTS key, even when volumes share a data key."""
    return derive_key(data_key, volume_id.encode())
