"""Access key → (Principal, secret), with a short-lived per-process cache.

The cache is bounded in time (a key deactivated in another process stops working
within CACHE_SECONDS, like IAM's own propagation delay) and in size.
"""

from __future__ import annotations

import threading
import time

from sealbox import arn as arns
from sealbox.auth.errors import UnknownAccessKey
from sealbox.iam.model import Principal
from sealbox.keystore.base import KeyStore
from sealbox.storage import iam_repo
from sealbox.storage.db import Database

CACHE_SECONDS = 2.0
_CACHE_LIMIT = 10_000


def secret_label(access_key_id: str) -> str:
    return f"iam-secret/v1/{access_key_id}"


class CredentialStore:
    def __init__(self, db: Database, keystore: KeyStore) -> None:
        self._db = db
        self._keystore = keystore
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, access_key_id: str) -> tuple[Principal, str]:
        """The principal and secret for an active access key, or UnknownAccessKey."""
        now = time.monotonic()
        hit = self._cache.get(access_key_id)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
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
            self._cache[access_key_id] = (now + CACHE_SECONDS, principal, secret)
        return principal, secret
