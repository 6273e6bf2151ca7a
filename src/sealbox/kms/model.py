"""KMS domain types: keys, key versions (key material generations) and aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from sealbox import arn


class KeyState(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    UNAVAILABLE = "Unavailable"


class KeyManager(StrEnum):
    CUSTOMER = "CUSTOMER"
    AWS = "AWS"


@dataclass(slots=True)
class Key:
    account_id: str
    region: str
    key_id: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: KeyManager
    key_state: KeyState
    creation_date: datetime
    policy: str
    current_version: int
    row_version: int = 1
    deletion_date: datetime | None = None
    pending_window_days: int | None = None
    multi_region: bool = False
    rotation_enabled: bool = False
    rotation_period_days: int | None = None
    next_rotation_date: datetime | None = None
    on_demand_rotation_started: datetime | None = None
    valid_to: datetime | None = None
    expiration_model: str | None = None
    primary_region: str | None = None  # multi-Region keys only

    @property
    def arn(self) -> str:
        return arn.key_arn(self.region, self.account_id, self.key_id)

    @property
    def enabled(self) -> bool:
        return self.key_state is KeyState.ENABLED


@dataclass(frozen=True, slots=True)
class KeyVersion:
    version: int
    material_id: str
    created_at: datetime
    rotation_type: str | None  # None for the key's first material
    wrapped_material: bytes = field(repr=False)
    fingerprint: str | None = None  # imported material only


@dataclass(frozen=True, slots=True)
class Alias:
    account_id: str
    region: str
    alias_name: str
    target_key_id: str
    creation_date: datetime
    last_updated_date: datetime

    @property
    def arn(self) -> str:
        return arn.alias_arn(self.region, self.account_id, self.alias_name)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_marker: str | None
