"""EBS resources as the domain sees them (plain data, no HTTP, no rows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sealbox.crypto import random_bytes

GIB = 1024**3
BLOCK_SIZE = 524_288  # snapshot block (the EBS direct APIs' unit)
BLOCKS_PER_GIB = GIB // BLOCK_SIZE
DIRECT_VOLUME_ID = "vol-ffffffff"  # the VolumeId AWS shows for snapshots not from a volume

VOLUME_ID = re.compile(r"vol-[0-9a-f]{8}(?:[0-9a-f]{9})?")
SNAPSHOT_ID = re.compile(r"snap-[0-9a-f]{8}(?:[0-9a-f]{9})?")
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")

# Volume types with their size limits in GiB (AWS's), and whether Iops may be given.
VOLUME_TYPES: dict[str, tuple[int, int, bool]] = {
    "standard": (1, 1024, False),
    "gp2": (1, 16384, False),
    "gp3": (1, 16384, True),
    "io1": (4, 16384, True),
    "io2": (4, 65536, True),
    "st1": (125, 16384, False),
    "sc1": (125, 16384, False),
}


def new_id(prefix: str) -> str:
    """An EC2 resource id: prefix + "-" + 17 hex digits."""
    return f"{prefix}-{random_bytes(9).hex()[:17]}"


@dataclass(frozen=True, slots=True)
class Keying:
    """How a data key is kept: a KMS blob, or sealed by the service-owned key.

    ``context_id`` is the aws:ebs:id the key was made for. Every volume and snapshot
    with the same context id shares the data key (a volume, its snapshots, volumes
    restored from them under the same key): that is what lets snapshots share blocks.
    """

    encrypted: bool
    kms_key_arn: str | None
    wrapped_key: bytes = field(repr=False)
    context_id: str


@dataclass(frozen=True, slots=True)
class Attachment:
    instance_id: str
    device: str
    attach_time: datetime


@dataclass(frozen=True, slots=True)
class Volume:
    volume_id: str
    account_id: str
    region: str
    availability_zone: str
    size_gib: int
    volume_type: str
    iops: int | None
    throughput: int | None
    state: str
    created_at: datetime
    snapshot_id: str | None
    keying: Keying
    base_snapshot_id: str | None
    attachment: Attachment | None
    attached_key: bytes | None = field(repr=False)
    row_version: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return self.size_gib * GIB


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_id: str
    account_id: str
    region: str
    volume_id: str
    volume_size_gib: int
    description: str | None
    state: str
    start_time: datetime
    completion_time: datetime | None
    origin: str  # volume | direct | copy
    keying: Keying
    parent_snapshot_id: str | None
    source_snapshot_id: str | None
    client_token: str | None
    request_fingerprint: str | None
    timeout_minutes: int | None
    last_activity: datetime | None
    stored_bytes: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def block_count(self) -> int:
        return self.volume_size_gib * BLOCKS_PER_GIB


@dataclass(frozen=True, slots=True)
class BlockRef:
    """One block of a snapshot: which stored block holds it."""

    block_index: int
    block_id: str
    written: bool = False
    sealed_checksum: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class StoredBlock:
    block_id: str
    context_id: str
    block_index: int
    mac: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class EbsSettings:
    encryption_by_default: bool
    default_kms_key_id: str | None  # None: alias/aws/ebs
