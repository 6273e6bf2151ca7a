"""Finding keys: identifiers → keys, and the per-process cache of what a request needs.

A request names a key by id, key ARN, alias name or alias ARN. The KeyRing resolves it
and hands back a KeyView — the key row, its tags and grants — plus its unwrapped
material. Views are cached per process and used only while the key row's
`row_version` still matches the database, checked with one driver-level lookup per
request; every change to a key, its tags, grants or aliases bumps `row_version`, so a
change committed by any worker is seen on the next request.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.call import Call
from sealbox.keystore.base import KeyStore
from sealbox.kms.errors import InvalidArnError, NotFoundError
from sealbox.kms.grants import Grant
from sealbox.kms.model import Key
from sealbox.storage import kms_repo
from sealbox.storage.db import Database

_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Material:
    secret: bytes = field(repr=False)
    material_id: str


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as one request sees it (never mutated; reload to change)."""

    key: Key
    tags: Mapping[str, str]
    grants: tuple[Grant, ...]
    aliases: tuple[str, ...]
    materials: Mapping[int, Material] = field(repr=False)


def material_label(key: Key, version: int) -> str:
    """The keystore label binding wrapped material to its key and version."""
    return f"kms-key-material/v1/{key.account_id}/{key.key_id}/{version}"


class KeyRing:
    def __init__(self, db: Database, keystore: KeyStore) -> None:
        self._db = db
        self._keystore = keystore
        self._views: dict[tuple[str, str, str], KeyView] = {}
        self._lock = threading.Lock()

    # -- identifiers -----------------------------------------------------------------

    def resolve(
        self, conn: Connection | None, call: Call, key_id: str, allow_alias: bool
    ) -> tuple[str, str, str]:
        """(account, region, key id) for an identifier; aliases only in the caller's account.

        A key ARN may name another account (cross-account use); whether the caller may
        use that key is for authorization to decide.
        """
        account, region = call.principal.account_id, call.region
        if key_id.startswith("arn:"):
            parsed = arns.parse_arn(key_id)
            if parsed is None or parsed.service != "kms":
                raise InvalidArnError(f"ARN {key_id} is not a valid KMS ARN.")
            if parsed.region != region:
                raise NotFoundError(f"Key '{key_id}' does not exist")
            if parsed.resource.startswith("key/"):
                return parsed.account, region, parsed.resource[4:]
            if parsed.resource.startswith("alias/") and allow_alias and parsed.account == account:
                return account, region, self._alias_target(conn, account, region, parsed.resource)
            raise NotFoundError(f"Invalid keyId '{key_id}'")
        if key_id.startswith("alias/"):
            if not allow_alias:
                raise NotFoundError(f"Invalid keyId '{key_id}'")
            return account, region, self._alias_target(conn, account, region, key_id)
        return account, region, key_id

    def _alias_target(self, conn: Connection | None, account: str, region: str, name: str) -> str:
        if conn is None:
            target = kms_repo.alias_target(self._db, account, region, name)
        else:
            alias = kms_repo.get_alias(conn, account, region, name)
            target = None if alias is None else alias.target_key_id
        if target is None:
            raise NotFoundError(f"Alias '{arns.alias_arn(region, account, name)}' is not found.")
        return target

    def load(self, conn: Connection, call: Call, key_id: str, allow_alias: bool = False) -> Key:
        """The key row, read in conn's transaction (for changes)."""
        account, region, resolved = self.resolve(conn, call, key_id, allow_alias)
        key = (
            kms_repo.get_key(conn, account, region, resolved) if arns.is_key_id(resolved) else None
        )
        if key is None:
            if not arns.is_key_id(resolved):
                raise NotFoundError(f"Invalid keyId '{key_id}'")
            raise NotFoundError(f"Key '{arns.key_arn(region, account, resolved)}' does not exist")
        if key.arn not in call.resources:
            call.resources.append(key.arn)
        return key

    def load_view(self, conn: Connection, key: Key) -> KeyView:
        """Tags, grants and material of a key read in conn's transaction."""
        versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
        return KeyView(
            key=key,
            tags=kms_repo.get_tags(conn, key.account_id, key.region, key.key_id),
            grants=tuple(kms_repo.grants_for_key(conn, key.account_id, key.region, key.key_id)),
            aliases=tuple(
                a.alias_name
                for a in kms_repo.list_aliases(
                    conn, key.account_id, key.region, key.key_id, None, 10_000
                )
            ),
            materials={
                v.version: Material(
                    self._keystore.unwrap(v.wrapped_material, material_label(key, v.version)),
                    v.material_id,
                )
                for v in versions
                if v.wrapped_material  # empty: imported material deleted or expired
            },
        )

    # -- the hot path ------------------------------------------------------------------

    def view(self, call: Call, key_id: str) -> KeyView:
        """The current view of the key a request names, from cache when still valid."""
        account, region, resolved = self.resolve(None, call, key_id, allow_alias=True)
        return self.view_by_id(call, account, region, resolved, key_id)

    def view_by_id(
        self, call: Call, account: str, region: str, key_id: str, named_as: str | None = None
    ) -> KeyView:
        if arns.is_key_id(key_id):
            cached = self._views.get((account, region, key_id))
            if cached is not None and kms_repo.key_row_version(
                self._db, account, region, key_id
            ) == (cached.key.row_version):
                if cached.key.arn not in call.resources:
                    call.resources.append(cached.key.arn)
                return cached
        with self._db.read() as conn:
            key = (
                kms_repo.get_key(conn, account, region, key_id) if arns.is_key_id(key_id) else None
            )
            if key is None:
                if not arns.is_key_id(key_id):
                    raise NotFoundError(f"Invalid keyId '{named_as or key_id}'")
                raise NotFoundError(f"Key '{arns.key_arn(region, account, key_id)}' does not exist")
            view = self.load_view(conn, key)
        if key.arn not in call.resources:
            call.resources.append(key.arn)
        with self._lock:
            if len(self._views) >= _CACHE_LIMIT:
                self._views.clear()
            self._views[(account, region, key_id)] = view
        return view

    def forget(self, key: Key) -> None:
        with self._lock:
            self._views.pop((key.account_id, key.region, key.key_id), None)

    def seal(
        self, view: KeyView, plaintext: bytes, context: Mapping[str, str] | None
    ) -> tuple[bytes, str]:
        """Seal under the key's current material; returns the blob and the material id."""
        key = view.key
        material = view.materials[key.current_version]
        header = crypto.BlobHeader(key.key_id, key.current_version)
        return crypto.seal_blob(material.secret, header, plaintext, context), material.material_id
