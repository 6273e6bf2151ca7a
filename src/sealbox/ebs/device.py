"""What a block-device server (NBD) needs from an attached volume.

The NBD server (sealbox.nbd) speaks the protocol; the EBS domain (sealbox.ebs) owns
the data, its encryption and durability. This Protocol is the seam between them.
"""

from __future__ import annotations

from typing import Protocol


class DeviceError(Exception):
    """An I/O request the device cannot serve (out of range, key unusable, ...).

    ``errno_name`` is the NBD error to answer with: "EIO", "EINVAL", "ENOSPC", "EPERM".
    """

    def __init__(self, message: str, errno_name: str = "EIO") -> None:
        super().__init__(message)
        self.errno_name = errno_name


class VolumeDevice(Protocol):
    """An attached volume as a block device. All offsets and lengths are in bytes.

    Methods are blocking (file I/O, encryption): the NBD server calls them from worker
    threads. They must be safe to call concurrently from several threads for
    non-overlapping ranges.
    """

    @property
    def size(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes, *, fua: bool = False) -> None:
        """Write data; with fua=True it is durable when this returns."""
        ...

    def flush(self) -> None:
        """Make every completed write durable."""
        ...

    def trim(self, offset: int, length: int) -> None:
        """The range's contents may be discarded (reads then return zeros)."""
        ...

    def write_zeroes(self, offset: int, length: int, *, fua: bool = False) -> None: ...

    def close(self) -> None:
        """Flush and release (detach)."""
        ...


class ExportResolver(Protocol):
    """Finds the device for an NBD export name (the volume id); None: no such export
    (not attached, or unknown)."""

    def __call__(self, export_name: str) -> VolumeDevice | None: ...
