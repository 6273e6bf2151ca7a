"""What every part of the EBS service shares: stores, keys, authorization, lookups, rules."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.ebs.blocks import BlockStore
from sealbox.ebs.errors import (
    DryRunOperation,
    InvalidParameterDependency,
    InvalidParameterValue,
    InvalidSnapshotIdMalformed,
    InvalidSnapshotNotFound,
    InvalidVolumeIdMalformed,
    InvalidVolumeNotFound,
    TagLimitExceeded,
    UnauthorizedOperation,
)
from sealbox.ebs.exports import Exports
from sealbox.ebs.keys import DataKeys
from sealbox.ebs.model import SNAPSHOT_ID, VOLUME_ID, EbsSettings, Keying, Snapshot, Volume
from sealbox.ebs.volume_store import VolumeStore
from sealbox.errors import AwsError
from sealbox.iam.authz import Authorizer
from sealbox.storage import ebs_repo
from sealbox.storage.db import Database

log = logging.getLogger("sealbox.ebs")

MAX_TAGS = 50
DRY_RUN_MESSAGE = "Request would have succeeded, but DryRun flag is set."


def volume_arn(region: str, account_id: str, volume_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account_id}:volume/{volume_id}"


def snapshot_arn(region: str, snapshot_id: str) -> str:
    return f"arn:aws:ec2:{region}::snapshot/{snapshot_id}"


def check_tags(tags: Mapping[str, str], resource_id: str | None = None) -> None:
    for key, value in tags.items():
        if not key or len(key) > 128:
            raise InvalidParameterValue(
                "Tag keys must be between 1 and 128 Unicode characters in length."
            )
        if key.lower().startswith("aws:"):
            raise InvalidParameterValue(
                "Tag keys starting with 'aws:' are reserved for internal use"
            )
        if len(value) > 256:
            raise InvalidParameterValue(
                "Tag values must be no more than 256 Unicode characters in length."
            )
    if len(tags) > MAX_TAGS:
        where = f" for resource {resource_id}" if resource_id else ""
        raise TagLimitExceeded(f"The maximum number of tags{where} is {MAX_TAGS}.")


def tags_from_specifications(
    specs: Sequence[Mapping[str, Any]] | None, resource_type: str
) -> dict[str, str]:
    """The tags TagSpecifications give a new resource of resource_type."""
    tags: dict[str, str] = {}
    for spec in specs or []:
        kind = spec.get("ResourceType")
        if kind != resource_type:
            raise InvalidParameterValue(
                f"'{kind}' is not a valid taggable resource type for this operation."
            )
        for tag in spec.get("Tags") or []:
            tags[str(tag.get("Key", ""))] = str(tag.get("Value", ""))
    check_tags(tags)
    return tags


class EbsBase:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        keys: DataKeys,
        authorizer: Authorizer,
        volumes: VolumeStore,
        blocks: BlockStore,
        exports: Exports,
        *,
        null_cipher: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self.keys = keys
        self._authz = authorizer
        self.volume_store = volumes
        self.block_store = blocks
        self.exports = exports
        self._null_cipher = null_cipher

    # -- authorization ------------------------------------------------------------------------

    def _authorize(
        self,
        call: Call,
        action: str,
        resource: str,
        denied: type[AwsError] = UnauthorizedOperation,
    ) -> None:
        if resource != "*" and not resource.endswith("/*") and resource not in call.resources:
            call.resources.append(resource)
        self._authz.check(call, action, resource, call.principal.account_id, denied)

    def _gate(self, call: Call, action: str, resource: str, dry_run: bool | None) -> None:
        """Authorize; with DryRun, stop there (DryRunOperation when allowed)."""
        self._authorize(call, action, resource)
        if dry_run:
            raise DryRunOperation(DRY_RUN_MESSAGE)

    # -- lookups ------------------------------------------------------------------------------

    @staticmethod
    def _check_volume_id(volume_id: str) -> None:
        if VOLUME_ID.fullmatch(volume_id) is None:
            raise InvalidVolumeIdMalformed(f'Invalid id: "{volume_id[:64]}" (expecting "vol-...")')

    @staticmethod
    def _check_snapshot_id(snapshot_id: str) -> None:
        if SNAPSHOT_ID.fullmatch(snapshot_id) is None:
            raise InvalidSnapshotIdMalformed(
                f'Invalid id: "{snapshot_id[:64]}" (expecting "snap-...")'
            )

    def _volume(self, call: Call, volume_id: str, region: str | None = None) -> Volume:
        self._check_volume_id(volume_id)
        with self._db.read() as conn:
            volume = ebs_repo.get_volume(
                conn, call.principal.account_id, region or call.region, volume_id
            )
        if volume is None:
            raise InvalidVolumeNotFound(f"The volume '{volume_id}' does not exist.")
        return volume

    def _snapshot(
        self, call: Call, snapshot_id: str, region: str | None = None, *, with_tags: bool = True
    ) -> Snapshot:
        self._check_snapshot_id(snapshot_id)
        with self._db.read() as conn:
            snapshot = ebs_repo.get_snapshot(
                conn,
                call.principal.account_id,
                region or call.region,
                snapshot_id,
                with_tags=with_tags,
            )
        if snapshot is None:
            raise InvalidSnapshotNotFound(f"The snapshot '{snapshot_id}' does not exist.")
        return self._expire_if_due(snapshot)

    def _expire_if_due(self, snapshot: Snapshot) -> Snapshot:
        """Hook for pending direct-API snapshots past their timeout (see direct.py)."""
        return snapshot

    def settings(self, account_id: str, region: str) -> EbsSettings:
        with self._db.read() as conn:
            return ebs_repo.get_settings(conn, account_id, region)

    # -- encryption rules ---------------------------------------------------------------------

    def _target_key(
        self,
        call: Call,
        region: str,
        encrypted: bool | None,
        kms_key_id: str | None,
        source: Keying | None,
    ) -> str | None:
        """The KMS key a new volume or snapshot copy is encrypted under (None: unencrypted),
        as AWS decides: a key only with Encrypted=true; encrypted whenever asked, whenever
        encryption by default is on, and whenever the source is encrypted (whatever
        Encrypted says: nothing turns encrypted data back into plaintext); the source's key
        unless another is named; otherwise the account's default EBS key."""
        if kms_key_id is not None and encrypted is not True:
            raise InvalidParameterDependency(
                "The parameter KmsKeyId requires the parameter Encrypted to be set."
            )
        if kms_key_id is not None and not kms_key_id.strip():
            raise InvalidParameterValue("Value () for parameter kmsKeyId is invalid.")
        settings = self.settings(call.principal.account_id, region)
        source_encrypted = source is not None and source.encrypted
        if not (encrypted or settings.encryption_by_default or source_encrypted):
            return None
        if kms_key_id is not None:
            return kms_key_id
        if source is not None and source.encrypted and source.kms_key_arn is not None:
            return source.kms_key_arn
        return settings.default_kms_key_id or self.keys.managed_key_arn(
            call.principal.account_id, region
        )

    def _resolve_arn(self, call: Call, region: str, key_id: str) -> str:
        if key_id.startswith("arn:") and ":key/" in key_id:
            return key_id
        return self.keys.key_arn(call, region, key_id)
