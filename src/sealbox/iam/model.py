"""Identities: who is calling."""

from __future__ import annotations

from dataclasses import dataclass


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
