"""Multi-Region keys: related keys with one key id (`mrk-…`) and the same material in
several regions, so a ciphertext made in one region decrypts in another.

Every related key records the primary's region. Rotation happens on the primary and
reaches every replica in the same transaction; a primary with replicas waits in
PendingReplicaDeletion until they are gone, then starts its own waiting period.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.kms.errors import AlreadyExistsError, NotFoundError, UnsupportedOperationError
from sealbox.kms.model import Key, KeyState, KeyVersion
from sealbox.kms.policy import default_key_policy, validate_key_policy
from sealbox.kms.results import KeyDescription
from sealbox.kms.service import KmsService
from sealbox.storage import kms_repo
from sealbox.storage.db import Database


@dataclass(frozen=True, slots=True)
class Replica:
    description: KeyDescription
    policy: str
    tags: dict[str, str]


def is_primary(key: Key) -> bool:
    return key.multi_region and key.primary_region == key.region


class MultiRegionService:
    def __init__(self, kms: KmsService, db: Database, clock: Clock) -> None:
        self._kms = kms
        self._db = db
        self._clock = clock

    def replicate_key(
        self,
        call: Call,
        key_id: str,
        replica_region: str,
        policy: str | None = None,
        description: str = "",
        tags: list[tuple[str, str]] | None = None,
    ) -> Replica:
        tag_map = self._kms._validate_tags(tags or [])
        if policy is not None:
            validate_key_policy(policy)

        def work(conn: Connection) -> Replica:
            primary = self._kms.keyring.load(conn, call, key_id)
            self._kms.access.check(
                call,
                "ReplicateKey",
                self._kms.keyring.load_view(conn, primary),
                context={"kms:ReplicaRegion": replica_region},
            )
            if not primary.multi_region:
                raise UnsupportedOperationError(f"{primary.arn} is not a multi-Region key.")
            if not is_primary(primary):
                raise UnsupportedOperationError(
                    f"{primary.arn} is a replica; replicate the primary key in "
                    f"{primary.primary_region}."
                )
            if replica_region == primary.region:
                raise UnsupportedOperationError("The replica must be in another region.")
            if kms_repo.get_key(conn, primary.account_id, replica_region, primary.key_id):
                raise AlreadyExistsError(
                    f"A replica of {primary.key_id} already exists in {replica_region}."
                )
            replica = Key(
                account_id=primary.account_id,
                region=replica_region,
                key_id=primary.key_id,
                description=description,
                key_usage=primary.key_usage,
                key_spec=primary.key_spec,
                origin=primary.origin,
                key_manager=primary.key_manager,
                key_state=(
                    KeyState.PENDING_IMPORT if primary.origin == "EXTERNAL" else KeyState.ENABLED
                ),
                creation_date=self._clock.now(),
                policy=policy if policy is not None else default_key_policy(primary.account_id),
                current_version=primary.current_version if primary.origin != "EXTERNAL" else 0,
                multi_region=True,
                primary_region=primary.primary_region,
                rotation_enabled=primary.rotation_enabled,
                rotation_period_days=primary.rotation_period_days,
                next_rotation_date=primary.next_rotation_date,
            )
            kms_repo.insert_key(conn, replica)
            versions = kms_repo.get_versions(
                conn, primary.account_id, primary.region, primary.key_id
            )
            if primary.origin != "EXTERNAL":
                # The wrapping label names account, key id and version, not the region,
                # so the wrapped material is the same bytes in every region.
                for version in versions:
                    kms_repo.insert_version(conn, replica, version)
            kms_repo.put_tags(conn, replica, tag_map)
            kms_repo.update_key(conn, primary)  # its MultiRegionConfiguration changed
            call.resources.append(replica.arn)
            self._kms.record(conn, call)
            material = next((v for v in versions if v.version == replica.current_version), None)
            return Replica(
                KeyDescription(replica, material.material_id if material else None, tag_map),
                replica.policy,
                tag_map,
            )

        return self._db.write(work)

    def update_primary_region(self, call: Call, key_id: str, primary_region: str) -> None:
        def work(conn: Connection) -> None:
            key = self._kms.keyring.load(conn, call, key_id)
            self._kms.access.check(
                call,
                "UpdatePrimaryRegion",
                self._kms.keyring.load_view(conn, key),
                context={"kms:PrimaryRegion": primary_region},
            )
            if not key.multi_region:
                raise UnsupportedOperationError(f"{key.arn} is not a multi-Region key.")
            related = kms_repo.related_keys(conn, key.account_id, key.key_id)
            if primary_region not in {k.region for k in related}:
                raise NotFoundError(f"There is no replica of {key.key_id} in {primary_region}.")
            for k in related:
                k.primary_region = primary_region
                kms_repo.update_key(conn, k)
                self._kms.keyring.forget(k)
            self._kms.record(conn, call)

        self._db.write(work)

    def configuration(self, key: Key) -> dict[str, object] | None:
        """DescribeKey's MultiRegionConfiguration (wire shape)."""
        if not key.multi_region:
            return None
        with self._db.read() as conn:
            related = kms_repo.related_keys(conn, key.account_id, key.key_id)
        primary = next((k for k in related if k.region == key.primary_region), key)
        return {
            "MultiRegionKeyType": "PRIMARY" if is_primary(key) else "REPLICA",
            "PrimaryKey": {"Arn": primary.arn, "Region": primary.region},
            "ReplicaKeys": [
                {"Arn": k.arn, "Region": k.region}
                for k in related
                if k.region != key.primary_region
            ],
        }


def rotate_related(conn: Connection, key: Key, version: KeyVersion) -> None:
    """Give every replica of a multi-Region primary the version the primary just got."""
    for other in kms_repo.related_keys(conn, key.account_id, key.key_id):
        if other.region == key.region:
            continue
        kms_repo.insert_version(conn, other, version)
        other.current_version = version.version
        kms_repo.update_key(conn, other)


def has_replicas(conn: Connection, key: Key) -> bool:
    return any(
        k.region != key.region for k in kms_repo.related_keys(conn, key.account_id, key.key_id)
    )
