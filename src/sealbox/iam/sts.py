"""STS: GetCallerIdentity and AssumeRole (temporary credentials)."""

from __future__ import annotations

import base64
import hashlib
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.audit.recorder import AuditRecorder
from sealbox.auth.principal import secret_label
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.errors import ClientError
from sealbox.iam.authz import Authorizer
from sealbox.iam.bootstrap import new_secret_access_key
from sealbox.keystore.base import KeyStore
from sealbox.storage import sts_repo
from sealbox.storage.db import Database

DEFAULT_DURATION = 3600
MIN_DURATION = 900
_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})")
_KEY_ALPHABET = string.ascii_uppercase + string.digits


class StsAccessDenied(ClientError):
    code = "AccessDenied"
    http_status = 403


class StsValidationError(ClientError):
    code = "ValidationError"


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    user_id: str
    account: str
    arn: str


@dataclass(frozen=True, slots=True)
class AssumedRole:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    assumed_role_id: str
    arn: str


def token_digest(token: str) -> bytes:
    """What is stored of a session token: its SHA-256, compared in constant time."""
    return hashlib.sha256(token.encode()).digest()


class StsService:
    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        clock: Clock,
        audit: AuditRecorder,
        authorizer: Authorizer,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._audit = audit
        self._authz = authorizer

    def get_caller_identity(self, call: Call) -> CallerIdentity:
        p = call.principal
        return CallerIdentity(p.principal_id, p.account_id, p.arn)

    def assume_role(
        self,
        call: Call,
        role_arn: str,
        session_name: str,
        duration_seconds: int | None = None,
    ) -> AssumedRole:
        if call.principal.principal_type == "Root":
            raise StsAccessDenied("Roles may not be assumed by root accounts.")
        match = _ROLE_ARN.fullmatch(role_arn)
        denied = StsAccessDenied(
            f"User: {call.principal.arn} is not authorized to perform: sts:AssumeRole "
            f"on resource: {role_arn}"
        )
        if match is None:
            raise StsValidationError(f"{role_arn} is invalid")
        account, role_name = match.group(1), match.group(2)
        with self._db.read() as conn:
            role = sts_repo.get_role(conn, account, role_name)
        if role is None or role.arn != role_arn:
            raise denied
        self._authz.check(
            call,
            "sts:AssumeRole",
            role.arn,
            role.account_id,
            StsAccessDenied,
            resource_policy=role.trust_policy,
            resource_policy_kind="trust",
        )
        duration = DEFAULT_DURATION if duration_seconds is None else duration_seconds
        if duration < MIN_DURATION:
            raise StsValidationError(
                "1 validation error detected: Value at 'durationSeconds' failed to satisfy "
                f"constraint: Member must have value greater than or equal to {MIN_DURATION}"
            )
        if duration > role.max_session_duration:
            raise StsValidationError(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            )
        now = self._clock.now()
        access_key_id = "ASIA" + crypto.random_token(_KEY_ALPHABET, 16)
        secret = new_secret_access_key()
        token = base64.b64encode(crypto.random_bytes(96)).decode()
        expires = (now + timedelta(seconds=duration)).replace(microsecond=0)
        session = sts_repo.SessionRow(
            access_key_id=access_key_id,
            account_id=role.account_id,
            role_name=role.role_name,
            role_id=role.role_id,
            session_name=session_name,
            wrapped_secret=self._keystore.wrap(secret.encode(), secret_label(access_key_id)),
            token_digest=token_digest(token),
            expires_at=expires,
            source_arn=call.principal.arn,
        )
        session_arn = arns.sts_session_arn(role.account_id, role.role_name, session_name)

        def work(conn: Connection) -> None:
            sts_repo.insert_session(conn, session, now)
            call.resources.append(role.arn)
            call.response_elements = {
                "credentials": {"accessKeyId": access_key_id, "expiration": expires.isoformat()},
                "assumedRoleUser": {"arn": session_arn},
            }
            self._audit.append(conn, call)
            call.audited = True

        self._db.write(work)
        return AssumedRole(
            access_key_id=access_key_id,
            secret_access_key=secret,
            session_token=token,
            expiration=expires,
            assumed_role_id=f"{role.role_id}:{session_name}",
            arn=session_arn,
        )
