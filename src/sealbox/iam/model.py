"""Identities: who is calling."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: str
    arn: str
    principal_type: str  # CloudTrail userIdentity.type: Root, IAMUser, AssumedRole, AWSService
    principal_id: str
    user_name: str | None = None
    access_key_id: str | None = None
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class NewCredentials:
    """Credentials shown to a person exactly once."""

    account_id: str
    access_key_id: str
    secret_access_key: str


Tags = tuple[tuple[str, str], ...]  # (key, value) pairs, sorted by key


@dataclass(frozen=True, slots=True)
class User:
    account_id: str
    user_name: str
    user_id: str
    arn: str
    path: str
    created_at: datetime
    is_root: bool = False
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class Role:
    account_id: str
    role_name: str
    role_id: str
    arn: str
    path: str
    trust_policy: str
    description: str
    max_session_duration: int
    created_at: datetime
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class Group:
    account_id: str
    group_name: str
    group_id: str
    arn: str
    path: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ManagedPolicy:
    """A customer managed policy. Sealbox keeps one version of each: "v1"."""

    account_id: str
    policy_name: str
    policy_id: str
    arn: str
    path: str
    description: str
    document: str
    created_at: datetime
    updated_at: datetime
    attachment_count: int = 0
    tags: Tags = ()
    default_version_id: str = "v1"


@dataclass(frozen=True, slots=True)
class AccessKeyInfo:
    """An access key's metadata; never its secret."""

    user_name: str
    access_key_id: str
    status: str  # Active | Inactive
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    """A freshly created access key: the only time its secret is shown."""

    info: AccessKeyInfo
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AttachedPolicy:
    policy_name: str
    policy_arn: str


@dataclass(frozen=True, slots=True)
class InlinePolicy:
    entity_name: str
    policy_name: str
    document: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; marker is set when more items follow (IsTruncated)."""

    items: list[T]
    marker: str | None = None

    @property
    def is_truncated(self) -> bool:
        return self.marker is not None


@dataclass(frozen=True, slots=True)
class GroupWithUsers:
    group: Group
    users: Page[User]


EntityKind = Literal["user", "group", "role"]
TagKind = Literal["user", "role", "policy"]
