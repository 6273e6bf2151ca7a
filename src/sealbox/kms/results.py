"""What KMS operations return: plain dataclasses, turned into wire shapes by the adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sealbox.kms.model import Alias, Key


@dataclass(frozen=True, slots=True)
class KeyDescription:
    key: Key
    current_material_id: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EncryptResult:
    ciphertext: bytes = field(repr=False)
    key_arn: str
    algorithm: str


@dataclass(frozen=True, slots=True)
class DecryptResult:
    plaintext: bytes = field(repr=False)
    key_arn: str
    algorithm: str
    material_id: str


@dataclass(frozen=True, slots=True)
class ReEncryptResult:
    ciphertext: bytes = field(repr=False)
    source_key_arn: str
    key_arn: str
    source_algorithm: str
    destination_algorithm: str
    source_material_id: str
    destination_material_id: str


@dataclass(frozen=True, slots=True)
class DataKeyResult:
    ciphertext: bytes = field(repr=False)
    plaintext: bytes | None = field(repr=False)
    key_arn: str
    material_id: str


@dataclass(frozen=True, slots=True)
class KeyListing:
    keys: list[Key]
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class AliasListing:
    aliases: list[Alias]
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class TagListing:
    tags: list[tuple[str, str]]
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class RotationStatus:
    key_arn: str
    enabled: bool
    period_days: int | None
    next_rotation_date: datetime | None
    on_demand_started: datetime | None


@dataclass(frozen=True, slots=True)
class RotationEntry:
    key_arn: str
    material_id: str
    rotation_date: datetime | None
    rotation_type: str | None
    current: bool


@dataclass(frozen=True, slots=True)
class RotationListing:
    rotations: list[RotationEntry]
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class DeletionScheduled:
    key_arn: str
    deletion_date: datetime | None  # None while a primary waits for its replicas
    key_state: str
    pending_window_days: int
