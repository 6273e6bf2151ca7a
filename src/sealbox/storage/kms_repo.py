"""KMS keys, key versions, aliases and tags ⇄ rows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, select, update

from sealbox.kms.grants import Grant
from sealbox.kms.model import Alias, Key, KeyManager, KeyState, KeyVersion
from sealbox.storage.db import ConcurrentUpdate, Database
from sealbox.storage.tables import (
    kms_aliases,
    kms_deleted_keys,
    kms_grants,
    kms_import_params,
    kms_key_versions,
    kms_keys,
    kms_tags,
)

_KEY_FIELDS = (
    "description", "key_usage", "key_spec", "origin", "key_manager", "key_state",
    "creation_date", "deletion_date", "pending_window_days", "policy", "multi_region",
    "rotation_enabled", "rotation_period_days", "next_rotation_date",
    "on_demand_rotation_started", "current_version", "valid_to", "expiration_model",
    "primary_region",
)  # fmt: skip


def _key_where(account_id: str, region: str, key_id: str) -> Any:
    return and_(
        kms_keys.c.account_id == account_id,
        kms_keys.c.region == region,
        kms_keys.c.key_id == key_id,
    )


def _key_from_row(row: Row[Any]) -> Key:
    return Key(
        account_id=row.account_id,
        region=row.region,
        key_id=row.key_id,
        description=row.description,
        key_usage=row.key_usage,
        key_spec=row.key_spec,
        origin=row.origin,
        key_manager=KeyManager(row.key_manager),
        key_state=KeyState(row.key_state),
        creation_date=row.creation_date,
        policy=row.policy,
        current_version=row.current_version,
        row_version=row.row_version,
        deletion_date=row.deletion_date,
        pending_window_days=row.pending_window_days,
        multi_region=bool(row.multi_region),
        rotation_enabled=bool(row.rotation_enabled),
        rotation_period_days=row.rotation_period_days,
        next_rotation_date=row.next_rotation_date,
        on_demand_rotation_started=row.on_demand_rotation_started,
        valid_to=row.valid_to,
        expiration_model=row.expiration_model,
        primary_region=row.primary_region,
    )


def _key_values(key: Key) -> dict[str, Any]:
    values = {name: getattr(key, name) for name in _KEY_FIELDS}
    values["key_manager"] = key.key_manager.value
    values["key_state"] = key.key_state.value
    return values


def insert_key(conn: Connection, key: Key) -> None:
    conn.execute(
        kms_keys.insert().values(
            account_id=key.account_id,
            region=key.region,
            key_id=key.key_id,
            row_version=key.row_version,
            **_key_values(key),
        )
    )


def key_row_version(db: Database, account_id: str, region: str, key_id: str) -> int | None:
    """The key's row_version (hot path: validates a cached Key), or None if absent."""
    row = db.fast_row(
        "SELECT row_version FROM kms_keys WHERE account_id = ? AND region = ? AND key_id = ?",
        (account_id, region, key_id),
    )
    return None if row is None else int(row[0])


def alias_target(db: Database, account_id: str, region: str, alias_name: str) -> str | None:
    """The key id an alias points at (hot path), or None."""
    row = db.fast_row(
        "SELECT target_key_id FROM kms_aliases "
        "WHERE account_id = ? AND region = ? AND alias_name = ?",
        (account_id, region, alias_name),
    )
    return None if row is None else str(row[0])


def get_key(conn: Connection, account_id: str, region: str, key_id: str) -> Key | None:
    row = conn.execute(select(kms_keys).where(_key_where(account_id, region, key_id))).first()
    return None if row is None else _key_from_row(row)


def update_key(conn: Connection, key: Key) -> None:
    """Persist every mutable field and bump row_version (invalidates node caches).

    Optimistic: the write succeeds only if the row still has the row_version it was
    read with; otherwise another transaction changed it meanwhile and the whole
    transaction is retried (ConcurrentUpdate).
    """
    result = conn.execute(
        update(kms_keys)
        .where(_key_where(key.account_id, key.region, key.key_id))
        .where(kms_keys.c.row_version == key.row_version)
        .values(row_version=key.row_version + 1, **_key_values(key))
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(f"key {key.key_id} changed while being updated")
    key.row_version += 1


def was_deleted(conn: Connection, account_id: str, region: str, key_id: str) -> bool:
    row = conn.execute(
        select(kms_deleted_keys.c.key_id).where(
            (kms_deleted_keys.c.account_id == account_id)
            & (kms_deleted_keys.c.region == region)
            & (kms_deleted_keys.c.key_id == key_id)
        )
    ).first()
    return row is not None


def delete_key(conn: Connection, account_id: str, region: str, key_id: str, now: datetime) -> None:
    """Remove a key with its material, tags and aliases (secure_delete overwrites pages)."""
    conn.execute(
        kms_deleted_keys.insert().values(
            account_id=account_id, region=region, key_id=key_id, deleted_at=now
        )
    )
    conn.execute(
        delete(kms_key_versions).where(
            (kms_key_versions.c.account_id == account_id)
            & (kms_key_versions.c.region == region)
            & (kms_key_versions.c.key_id == key_id)
        )
    )
    conn.execute(
        delete(kms_tags).where(
            (kms_tags.c.account_id == account_id)
            & (kms_tags.c.region == region)
            & (kms_tags.c.key_id == key_id)
        )
    )
    conn.execute(
        delete(kms_grants).where(
            (kms_grants.c.account_id == account_id)
            & (kms_grants.c.region == region)
            & (kms_grants.c.key_id == key_id)
        )
    )
    conn.execute(
        delete(kms_aliases).where(
            (kms_aliases.c.account_id == account_id)
            & (kms_aliases.c.region == region)
            & (kms_aliases.c.target_key_id == key_id)
        )
    )
    conn.execute(delete(kms_keys).where(_key_where(account_id, region, key_id)))


def list_keys(
    conn: Connection, account_id: str, region: str, after: str | None, limit: int
) -> list[Key]:
    query = select(kms_keys).where(
        (kms_keys.c.account_id == account_id) & (kms_keys.c.region == region)
    )
    if after is not None:
        query = query.where(kms_keys.c.key_id > after)
    rows = conn.execute(query.order_by(kms_keys.c.key_id).limit(limit))
    return [_key_from_row(r) for r in rows]


def insert_version(conn: Connection, key: Key, version: KeyVersion) -> None:
    conn.execute(
        kms_key_versions.insert().values(
            account_id=key.account_id,
            region=key.region,
            key_id=key.key_id,
            version=version.version,
            material_id=version.material_id,
            wrapped_material=version.wrapped_material,
            created_at=version.created_at,
            rotation_type=version.rotation_type,
            material_fingerprint=version.fingerprint,
        )
    )


def get_versions(conn: Connection, account_id: str, region: str, key_id: str) -> list[KeyVersion]:
    rows = conn.execute(
        select(kms_key_versions)
        .where(
            (kms_key_versions.c.account_id == account_id)
            & (kms_key_versions.c.region == region)
            & (kms_key_versions.c.key_id == key_id)
        )
        .order_by(kms_key_versions.c.version)
    )
    return [
        KeyVersion(
            version=r.version,
            material_id=r.material_id,
            created_at=r.created_at,
            rotation_type=r.rotation_type,
            wrapped_material=bytes(r.wrapped_material),
            fingerprint=r.material_fingerprint,
        )
        for r in rows
    ]


def keys_due_for_deletion(conn: Connection, now: datetime) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        select(kms_keys.c.account_id, kms_keys.c.region, kms_keys.c.key_id).where(
            (kms_keys.c.key_state == KeyState.PENDING_DELETION.value)
            & (kms_keys.c.deletion_date <= now)
        )
    )
    return [(r.account_id, r.region, r.key_id) for r in rows]


def keys_due_for_rotation(conn: Connection, now: datetime) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        select(kms_keys.c.account_id, kms_keys.c.region, kms_keys.c.key_id).where(
            (kms_keys.c.rotation_enabled.is_(True)) & (kms_keys.c.next_rotation_date <= now)
        )
    )
    return [(r.account_id, r.region, r.key_id) for r in rows]


# -- aliases ---------------------------------------------------------------


def _alias_from_row(row: Row[Any]) -> Alias:
    return Alias(
        account_id=row.account_id,
        region=row.region,
        alias_name=row.alias_name,
        target_key_id=row.target_key_id,
        creation_date=row.creation_date,
        last_updated_date=row.last_updated_date,
    )


def _alias_where(account_id: str, region: str, alias_name: str) -> Any:
    return (
        (kms_aliases.c.account_id == account_id)
        & (kms_aliases.c.region == region)
        & (kms_aliases.c.alias_name == alias_name)
    )


def get_alias(conn: Connection, account_id: str, region: str, alias_name: str) -> Alias | None:
    row = conn.execute(select(kms_aliases).where(_alias_where(account_id, region, alias_name)))
    first = row.first()
    return None if first is None else _alias_from_row(first)


def insert_alias(conn: Connection, alias: Alias) -> None:
    conn.execute(
        kms_aliases.insert().values(
            account_id=alias.account_id,
            region=alias.region,
            alias_name=alias.alias_name,
            target_key_id=alias.target_key_id,
            creation_date=alias.creation_date,
            last_updated_date=alias.last_updated_date,
        )
    )


def retarget_alias(
    conn: Connection, account_id: str, region: str, alias_name: str, key_id: str, now: datetime
) -> None:
    conn.execute(
        update(kms_aliases)
        .where(_alias_where(account_id, region, alias_name))
        .values(target_key_id=key_id, last_updated_date=now)
    )


def delete_alias(conn: Connection, account_id: str, region: str, alias_name: str) -> None:
    conn.execute(delete(kms_aliases).where(_alias_where(account_id, region, alias_name)))


def list_aliases(
    conn: Connection,
    account_id: str,
    region: str,
    key_id: str | None,
    after: str | None,
    limit: int,
) -> list[Alias]:
    query = select(kms_aliases).where(
        (kms_aliases.c.account_id == account_id) & (kms_aliases.c.region == region)
    )
    if key_id is not None:
        query = query.where(kms_aliases.c.target_key_id == key_id)
    if after is not None:
        query = query.where(kms_aliases.c.alias_name > after)
    rows = conn.execute(query.order_by(kms_aliases.c.alias_name).limit(limit))
    return [_alias_from_row(r) for r in rows]


# -- tags ------------------------------------------------------------------


def get_tags(conn: Connection, account_id: str, region: str, key_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(kms_tags.c.tag_key, kms_tags.c.tag_value)
        .where(
            (kms_tags.c.account_id == account_id)
            & (kms_tags.c.region == region)
            & (kms_tags.c.key_id == key_id)
        )
        .order_by(kms_tags.c.tag_key)
    )
    return {r.tag_key: r.tag_value for r in rows}


def put_tags(conn: Connection, key: Key, tags: dict[str, str]) -> None:
    delete_tags(conn, key, list(tags))
    if tags:
        conn.execute(
            kms_tags.insert(),
            [
                {
                    "account_id": key.account_id,
                    "region": key.region,
                    "key_id": key.key_id,
                    "tag_key": k,
                    "tag_value": v,
                }
                for k, v in tags.items()
            ],
        )


def delete_tags(conn: Connection, key: Key, tag_keys: list[str]) -> None:
    if tag_keys:
        conn.execute(
            delete(kms_tags).where(
                (kms_tags.c.account_id == key.account_id)
                & (kms_tags.c.region == key.region)
                & (kms_tags.c.key_id == key.key_id)
                & (kms_tags.c.tag_key.in_(tag_keys))
            )
        )


# -- grants ----------------------------------------------------------------


def _grant_from_row(row: Row[Any]) -> Grant:
    constraints = json.loads(row.constraints) if row.constraints else {}
    return Grant(
        grant_id=row.grant_id,
        key_id=row.key_id,
        name=row.name,
        grantee=row.grantee_principal,
        retiring=row.retiring_principal,
        issuing_account=row.issuing_account,
        operations=tuple(json.loads(row.operations)),
        context_equals=constraints.get("EncryptionContextEquals"),
        context_subset=constraints.get("EncryptionContextSubset"),
        created_at=row.created_at,
        token_digest=bytes(row.token_digest),
    )


def insert_grant(conn: Connection, account_id: str, region: str, grant: Grant) -> None:
    constraints: dict[str, Any] = {}
    if grant.context_equals is not None:
        constraints["EncryptionContextEquals"] = dict(grant.context_equals)
    if grant.context_subset is not None:
        constraints["EncryptionContextSubset"] = dict(grant.context_subset)
    conn.execute(
        kms_grants.insert().values(
            account_id=account_id,
            region=region,
            key_id=grant.key_id,
            grant_id=grant.grant_id,
            name=grant.name,
            grantee_principal=grant.grantee,
            retiring_principal=grant.retiring,
            issuing_account=grant.issuing_account,
            operations=json.dumps(list(grant.operations)),
            constraints=json.dumps(constraints) if constraints else None,
            token_digest=grant.token_digest,
            created_at=grant.created_at,
        )
    )


def grants_for_key(conn: Connection, account_id: str, region: str, key_id: str) -> list[Grant]:
    rows = conn.execute(
        select(kms_grants)
        .where(
            (kms_grants.c.account_id == account_id)
            & (kms_grants.c.region == region)
            & (kms_grants.c.key_id == key_id)
        )
        .order_by(kms_grants.c.created_at, kms_grants.c.grant_id)
    )
    return [_grant_from_row(r) for r in rows]


def grants_by_retiring_principal(conn: Connection, region: str, principal: str) -> list[Grant]:
    rows = conn.execute(
        select(kms_grants)
        .where((kms_grants.c.region == region) & (kms_grants.c.retiring_principal == principal))
        .order_by(kms_grants.c.created_at, kms_grants.c.grant_id)
    )
    return [_grant_from_row(r) for r in rows]


def grant_by_token(conn: Connection, token_digest: bytes) -> tuple[str, str, Grant] | None:
    row = conn.execute(select(kms_grants).where(kms_grants.c.token_digest == token_digest)).first()
    return None if row is None else (row.account_id, row.region, _grant_from_row(row))


def delete_grant(
    conn: Connection, account_id: str, region: str, key_id: str, grant_id: str
) -> None:
    conn.execute(
        delete(kms_grants).where(
            (kms_grants.c.account_id == account_id)
            & (kms_grants.c.region == region)
            & (kms_grants.c.key_id == key_id)
            & (kms_grants.c.grant_id == grant_id)
        )
    )


def key_account(db: Database, region: str, key_id: str) -> str | None:
    """The account holding a key id in a region (ids are unique): cross-account Decrypt."""
    row = db.fast_row(
        "SELECT account_id FROM kms_keys WHERE region = ? AND key_id = ?", (region, key_id)
    )
    return None if row is None else str(row[0])


# -- imported key material -------------------------------------------------


def insert_import_params(
    conn: Connection,
    token_digest: bytes,
    key: Key,
    wrapping_algorithm: str,
    wrapping_key_spec: str,
    wrapped_private_key: bytes,
    valid_to: datetime,
) -> None:
    conn.execute(
        kms_import_params.insert().values(
            token_digest=token_digest,
            account_id=key.account_id,
            region=key.region,
            key_id=key.key_id,
            wrapping_algorithm=wrapping_algorithm,
            wrapping_key_spec=wrapping_key_spec,
            wrapped_private_key=wrapped_private_key,
            valid_to=valid_to,
        )
    )


def get_import_params(conn: Connection, token_digest: bytes) -> Row[Any] | None:
    return conn.execute(
        select(kms_import_params).where(kms_import_params.c.token_digest == token_digest)
    ).first()


def delete_expired_import_params(conn: Connection, now: datetime) -> None:
    conn.execute(delete(kms_import_params).where(kms_import_params.c.valid_to < now))


def keys_with_expired_material(conn: Connection, now: datetime) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        select(kms_keys.c.account_id, kms_keys.c.region, kms_keys.c.key_id).where(
            (kms_keys.c.expiration_model == "KEY_MATERIAL_EXPIRES")
            & (kms_keys.c.valid_to <= now)
            & (kms_keys.c.key_state != "PendingImport")
        )
    )
    return [(r.account_id, r.region, r.key_id) for r in rows]


def forget_material(conn: Connection, key: Key) -> None:
    """Destroy a key's imported material, keeping each version's id and fingerprint so
    that only the same material can be imported again."""
    conn.execute(
        update(kms_key_versions)
        .where(
            (kms_key_versions.c.account_id == key.account_id)
            & (kms_key_versions.c.region == key.region)
            & (kms_key_versions.c.key_id == key.key_id)
        )
        .values(wrapped_material=b"")
    )


def restore_material(conn: Connection, key: Key, version: int, wrapped: bytes) -> None:
    conn.execute(
        update(kms_key_versions)
        .where(
            (kms_key_versions.c.account_id == key.account_id)
            & (kms_key_versions.c.region == key.region)
            & (kms_key_versions.c.key_id == key.key_id)
            & (kms_key_versions.c.version == version)
        )
        .values(wrapped_material=wrapped)
    )


def related_keys(conn: Connection, account_id: str, key_id: str) -> list[Key]:
    """All regions' keys sharing a multi-Region key id."""
    rows = conn.execute(
        select(kms_keys)
        .where((kms_keys.c.account_id == account_id) & (kms_keys.c.key_id == key_id))
        .order_by(kms_keys.c.region)
    )
    return [_key_from_row(r) for r in rows]


def keys_pending_replica_deletion(conn: Connection) -> list[Key]:
    rows = conn.execute(select(kms_keys).where(kms_keys.c.key_state == "PendingReplicaDeletion"))
    return [_key_from_row(r) for r in rows]
