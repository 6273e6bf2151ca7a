"""Access key → (Principal, secret), with a per-process cache.

A cached long-term key is used only while its account's `iam_version` is unchanged
(every IAM change bumps it): one cheap lookup per request, so a key deactivated or
deleted through any worker stops working on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from sealbox import arn as arns
from sealbox.auth.errors import SessionExpired, UnknownAccessKey
from sealbox.clock import Clock
from sealbox.iam.model import Principal
from sealbox.keystore.base import KeyStore
from sealbox.storage import iam_repo, sts_repo
from sealbox.storage.db import Database

# Principal.session_token only says "this is a session": the token is never kept.
_SESSION_MARKER = "sts-session"
_CACHE_LIMIT = 10_000


def secret_label(access_key_id: str) -> str:
    return f"iam-secret/v1/{access_key_id}"


class CredentialStore:
    def __init__(self, db: Database, keystore: KeyStore, clock: Clock) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._cache: dict[str, tuple[int, Principal, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, access_key_id: str, security_token: str | None) -> tuple[Principal, str]:
        """The principal and secret for active credentials.

        Long-term keys must come without a session token, STS session keys with theirs;
        anything else is UnknownAccessKey, and a session past its expiry (by the
        service clock) is SessionExpired.
        """
        if access_key_id.startswith("ASIA"):
            return self._session(access_key_id, security_token)
        if security_token is not None:
            raise UnknownAccessKey("The security token included in the request is invalid.")
        return self._long_term(access_key_id)

    def _session(self, access_key_id: str, token: str | None) -> tuple[Principal, str]:
        with self._db.read() as conn:
            row = sts_repo.get_session(conn, access_key_id)
        if (
            row is None
            or token is None
            or not hmac.compare_digest(row.token_digest, hashlib.sha256(token.encode()).digest())
        ):
            raise UnknownAccessKey("The security token included in the request is invalid.")
        if self._clock.now() >= row.expires_at:
            raise SessionExpired()
        secret = self._keystore.unwrap(row.wrapped_secret, secret_label(access_key_id)).decode()
        principal = Principal(
            account_id=row.account_id,
            arn=arns.sts_session_arn(row.account_id, row.role_name, row.session_name),
            principal_type="AssumedRole",
            principal_id=f"{row.role_id}:{row.session_name}",
            access_key_id=access_key_id,
            session_token=_SESSION_MARKER,
        )
        return principal, secret

    def _iam_version(self, account_id: str) -> int:
        row = self._db.fast_row(
            "SELECT iam_version FROM accounts WHERE account_id = ?", (account_id,)
        )
        return -1 if row is None else int(row[0])

    def _long_term(self, access_key_id: str) -> tuple[Principal, str]:
        hit = self._cache.get(access_key_id)
        if hit is not None and self._iam_version(hit[1].account_id) == hit[0]:
            return hit[1], hit[2]
        with self._db.read() as conn:
            row = iam_repo.get_access_key(conn, access_key_id)
        if row is not None:
            # Read the version before the row we cache, so a change committed in
            # between leaves the entry stale-marked rather than stale-and-trusted.
            version = self._iam_version(row.account_id)
            with self._db.read() as conn:
                row = iam_repo.get_access_key(conn, access_key_id)
        if row is None or row.status != "Active":
            raise UnknownAccessKey("The security token included in the request is invalid.")
        secret = self._keystore.unwrap(row.wrapped_secret, secret_label(access_key_id)).decode()
        if row.is_root:
            principal = Principal(
                account_id=row.account_id,
                arn=arns.account_root_arn(row.account_id),
                principal_type="Root",
                principal_id=row.account_id,
                access_key_id=access_key_id,
            )
        else:
            principal = Principal(
                account_id=row.account_id,
                arn=row.user_arn,
                principal_type="IAMUser",
                principal_id=row.user_id,
                user_name=row.user_name,
                access_key_id=access_key_id,
            )
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[access_key_id] = (version, principal, secret)
        return principal, secret
