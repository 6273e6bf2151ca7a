"""Volumes: create (empty or from a snapshot), describe, delete, attach, detach; the
account's encryption-by-default settings; tags on volumes and snapshots."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.ebs.base import (
    DRY_RUN_MESSAGE,
    EbsBase,
    check_tags,
    log,
    snapshot_arn,
    tags_from_specifications,
    volume_arn,
)
from sealbox.ebs.blocks import BlockKeys, ordered_map
from sealbox.ebs.errors import (
    DryRunOperation,
    IncorrectState,
    InvalidAttachmentNotFound,
    InvalidId,
    InvalidInstanceIdMalformed,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidSnapshotNotFound,
    InvalidVolumeNotFound,
    InvalidZoneNotFound,
    MissingParameter,
    TagLimitExceeded,
    VolumeInUse,
)
from sealbox.ebs.filters import bool_text, compile_filters, page
from sealbox.ebs.keys import MANAGED_ALIAS
from sealbox.ebs.model import (
    BLOCK_SIZE,
    INSTANCE_ID,
    SNAPSHOT_ID,
    VOLUME_ID,
    VOLUME_TYPES,
    BlockRef,
    EbsSettings,
    Keying,
    Snapshot,
    Volume,
    new_id,
)
from sealbox.storage import ebs_repo
from sealbox.storage.db import ConcurrentUpdate

_DEVICE = re.compile(r"(/dev/)?(sd|xvd|hd|vd|nvme)[a-z0-9]{1,8}")


def _iso(value: datetime | None) -> list[str]:
    return [] if value is None else [value.strftime("%Y-%m-%dT%H:%M:%S.000Z")]


_VOLUME_FILTERS: dict[str, Any] = {
    "attachment.attach-time": lambda v: _iso(v.attachment.attach_time) if v.attachment else [],
    "attachment.delete-on-termination": lambda v: ["false"] if v.attachment else [],
    "attachment.device": lambda v: [v.attachment.device] if v.attachment else [],
    "attachment.instance-id": lambda v: [v.attachment.instance_id] if v.attachment else [],
    "attachment.status": lambda v: ["attached"] if v.attachment else [],
    "availability-zone": lambda v: [v.availability_zone],
    "create-time": lambda v: _iso(v.created_at),
    "encrypted": lambda v: [bool_text(v.keying.encrypted)],
    "fast-restored": lambda v: ["false"],
    "kms-key-id": lambda v: [v.keying.kms_key_arn] if v.keying.kms_key_arn else [],
    "multi-attach-enabled": lambda v: ["false"],
    "size": lambda v: [str(v.size_gib)],
    "snapshot-id": lambda v: [v.snapshot_id or ""],
    "status": lambda v: [v.state],
    "tag-key": lambda v: list(v.tags),
    "volume-id": lambda v: [v.volume_id],
    "volume-type": lambda v: [v.volume_type],
}


def default_iops(volume_type: str, size_gib: int) -> int | None:
    if volume_type == "gp2":
        return max(100, min(16000, 3 * size_gib))
    if volume_type == "gp3":
        return 3000
    return None


class VolumeOps(EbsBase):
    # -- encryption by default --------------------------------------------------------------

    def get_encryption_by_default(self, call: Call, dry_run: bool | None = None) -> bool:
        self._gate(call, "ec2:GetEbsEncryptionByDefault", "*", dry_run)
        return self.settings(call.principal.account_id, call.region).encryption_by_default

    def set_encryption_by_default(
        self, call: Call, enabled: bool, dry_run: bool | None = None
    ) -> bool:
        action = "Enable" if enabled else "Disable"
        self._gate(call, f"ec2:{action}EbsEncryptionByDefault", "*", dry_run)
        self._update_settings(call, encryption_by_default=enabled)
        return enabled

    def _managed_alias_arn(self, call: Call) -> str:
        return f"arn:aws:kms:{call.region}:{call.principal.account_id}:{MANAGED_ALIAS}"

    def get_default_kms_key_id(self, call: Call, dry_run: bool | None = None) -> str:
        self._gate(call, "ec2:GetEbsDefaultKmsKeyId", "*", dry_run)
        configured = self.settings(call.principal.account_id, call.region).default_kms_key_id
        return configured or self._managed_alias_arn(call)

    def modify_default_kms_key_id(
        self, call: Call, key_id: str, dry_run: bool | None = None
    ) -> str:
        self._gate(call, "ec2:ModifyEbsDefaultKmsKeyId", "*", dry_run)
        if not key_id:
            raise MissingParameter("The request must contain the parameter KmsKeyId")
        arn = self.keys.key_arn(call, call.region, key_id)
        self._update_settings(call, default_kms_key_id=arn)
        return arn

    def reset_default_kms_key_id(self, call: Call, dry_run: bool | None = None) -> str:
        self._gate(call, "ec2:ResetEbsDefaultKmsKeyId", "*", dry_run)
        self._update_settings(call, default_kms_key_id=None)
        return self._managed_alias_arn(call)

    _UNSET: Any = object()

    def _update_settings(
        self, call: Call, *, encryption_by_default: Any = _UNSET, default_kms_key_id: Any = _UNSET
    ) -> None:
        account, region = call.principal.account_id, call.region

        def work(conn: Connection) -> None:
            now = ebs_repo.get_settings(conn, account, region)
            new = EbsSettings(
                now.encryption_by_default
                if encryption_by_default is self._UNSET
                else bool(encryption_by_default),
                now.default_kms_key_id if default_kms_key_id is self._UNSET else default_kms_key_id,
            )
            ebs_repo.put_settings(conn, account, region, new, self._clock.now())

        self._db.write(work)

    # -- create -------------------------------------------------------------------------------

    def create_volume(
        self,
        call: Call,
        *,
        size: int | None = None,
        snapshot_id: str | None = None,
        encrypted: bool | None = None,
        kms_key_id: str | None = None,
        availability_zone: str | None = None,
        volume_type: str | None = None,
        iops: int | None = None,
        throughput: int | None = None,
        tag_specifications: Sequence[Mapping[str, Any]] | None = None,
        dry_run: bool | None = None,
    ) -> Volume:
        account, region = call.principal.account_id, call.region
        self._gate(call, "ec2:CreateVolume", volume_arn(region, account, "*"), dry_run)
        if not availability_zone:
            raise MissingParameter("The request must contain the parameter AvailabilityZone")
        if re.fullmatch(re.escape(region) + r"[a-z]", availability_zone) is None:
            raise InvalidZoneNotFound(f"The zone '{availability_zone[:64]}' does not exist.")
        volume_type = volume_type or "gp2"
        limits = VOLUME_TYPES.get(volume_type)
        if limits is None:
            raise InvalidParameterValue(
                f"Value ({volume_type[:32]}) for parameter volumeType is invalid. "
                f"Valid volume types are: {', '.join(VOLUME_TYPES)}."
            )
        snapshot: Snapshot | None = None
        if snapshot_id is not None:
            snapshot = self._snapshot(call, snapshot_id)
            if snapshot.state != "completed":
                raise IncorrectState(f"Snapshot is in invalid state - {snapshot.state}")
            if size is None:
                size = snapshot.volume_size_gib
            elif size < snapshot.volume_size_gib:
                raise InvalidParameterValue(
                    f"Volume of size {size}GiB is smaller than snapshot '{snapshot_id}', "
                    f"expect size >= {snapshot.volume_size_gib}GiB"
                )
        if size is None:
            raise MissingParameter("The request must contain the parameter size or snapshotId")
        lo, hi, takes_iops = limits
        if size < lo:
            raise InvalidParameterValue(
                f"Volume of {size}GiB is too small; minimum is {lo}GiB ({volume_type})."
            )
        if size > hi:
            raise InvalidParameterValue(
                f"Volume of {size}GiB is too large for volume type {volume_type}; "
                f"maximum is {hi}GiB."
            )
        if iops is not None and not takes_iops:
            raise InvalidParameterCombination(
                f"The parameter iops is not supported for {volume_type} volumes."
            )
        if iops is None and volume_type in ("io1", "io2"):
            raise MissingParameter("The request must contain the parameter iops")
        if throughput is not None and volume_type != "gp3":
            raise InvalidParameterCombination(
                f"The parameter throughput is not supported for {volume_type} volumes."
            )
        tags = tags_from_specifications(tag_specifications, "volume")
        key = self._target_key(
            call, region, encrypted, kms_key_id, snapshot.keying if snapshot else None
        )
        volume_id = new_id("vol")
        shared = snapshot is not None and self._same_encryption(call, region, key, snapshot.keying)
        if shared:
            assert snapshot is not None
            keying = snapshot.keying
        else:
            keying = self.keys.new_keying(call, region, volume_id, key)
        now = self._clock.now()
        volume = Volume(
            volume_id=volume_id,
            account_id=account,
            region=region,
            availability_zone=availability_zone,
            size_gib=size,
            volume_type=volume_type,
            iops=iops if iops is not None else default_iops(volume_type, size),
            throughput=throughput
            if throughput is not None
            else (125 if volume_type == "gp3" else None),
            state="creating",
            created_at=now,
            snapshot_id=snapshot_id,
            keying=keying,
            base_snapshot_id=snapshot.snapshot_id if (shared and snapshot) else None,
            attachment=None,
            attached_key=None,
            row_version=1,
            tags=tags,
        )
        call.resources.append(volume_arn(region, account, volume_id))
        self.volume_store.create(volume_id, volume.size_bytes)
        try:

            def insert(conn: Connection) -> None:
                ebs_repo.insert_volume(conn, volume)
                ebs_repo.set_tags(conn, account, region, "volume", volume_id, tags)

            self._db.write(insert)
            if snapshot is not None:
                self._restore(call, volume, snapshot)

            def ready(conn: Connection) -> None:
                current = ebs_repo.get_volume(conn, account, region, volume_id)
                if current is None or not ebs_repo.update_volume(conn, current, state="available"):
                    raise ConcurrentUpdate()

            self._db.write(ready)
        except BaseException:
            self._db.write(lambda conn: ebs_repo.delete_volume(conn, volume_id))
            self.volume_store.delete(volume_id)
            raise
        return volume

    def _same_encryption(self, call: Call, region: str, key: str | None, source: Keying) -> bool:
        """Whether a new resource under `key` may share the source's data key."""
        if key is None or not source.encrypted:
            return key is None and not source.encrypted
        return self._resolve_arn(call, region, key) == source.kms_key_arn

    def _restore(self, call: Call, volume: Volume, snapshot: Snapshot) -> None:
        """Write a snapshot's blocks into a new volume's file (re-encrypted under XTS)."""
        volume_key = self.keys.open(call, volume.keying, volume.region, volume.account_id)
        if snapshot.keying.wrapped_key == volume.keying.wrapped_key:
            snapshot_key = volume_key
        else:
            snapshot_key = self.keys.open(
                call, snapshot.keying, snapshot.region, snapshot.account_id
            )
        block_keys = BlockKeys(snapshot_key, snapshot.keying.context_id)
        device = self.volume_store.open(
            volume.volume_id, volume.size_bytes, volume_key, null_cipher=self._null_cipher
        )

        def load(ref: BlockRef) -> bytes:
            return self.block_store.get(block_keys, ref.block_id, ref.block_index)

        try:
            with self._db.read() as conn:
                refs = ebs_repo.snapshot_blocks(conn, snapshot.snapshot_id)
            for ref, data in zip(refs, ordered_map(load, refs), strict=True):
                device.write(ref.block_index * BLOCK_SIZE, data)
            device.flush()
        finally:
            device.close()

    # -- describe / delete ----------------------------------------------------------------------

    def describe_volumes(
        self,
        call: Call,
        *,
        volume_ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        dry_run: bool | None = None,
    ) -> tuple[list[Volume], str | None]:
        self._gate(call, "ec2:DescribeVolumes", "*", dry_run)
        if volume_ids and max_results is not None:
            raise InvalidParameterCombination(
                "The parameter volumeIdSet cannot be used with the parameter maxResults"
            )
        for volume_id in volume_ids or []:
            self._check_volume_id(volume_id)
        matches = compile_filters(filters, _VOLUME_FILTERS)
        with self._db.read() as conn:
            volumes = ebs_repo.list_volumes(
                conn, call.principal.account_id, call.region, volume_ids or None
            )
        if volume_ids:
            missing = sorted(set(volume_ids) - {v.volume_id for v in volumes})
            if missing:
                raise InvalidVolumeNotFound(f"The volume '{','.join(missing)}' does not exist.")
        selected = [v for v in volumes if matches(v)]
        return page(selected, lambda v: v.volume_id, max_results, next_token, (5, 500), "volumes")

    def delete_volume(self, call: Call, volume_id: str, dry_run: bool | None = None) -> None:
        volume = self._volume(call, volume_id)
        self._gate(
            call,
            "ec2:DeleteVolume",
            volume_arn(volume.region, volume.account_id, volume_id),
            dry_run,
        )

        def work(conn: Connection) -> None:
            current = ebs_repo.get_volume(conn, volume.account_id, volume.region, volume_id)
            if current is None:
                raise InvalidVolumeNotFound(f"The volume '{volume_id}' does not exist.")
            if current.attachment is not None:
                raise VolumeInUse(
                    f"Volume {volume_id} is currently attached to {current.attachment.instance_id}"
                )
            if current.state not in ("available", "error"):
                raise IncorrectState(f"The volume '{volume_id}' is '{current.state}'.")
            ebs_repo.delete_volume(conn, volume_id)

        self._db.write(work)
        self.volume_store.delete(volume_id)

    # -- attach / detach ----------------------------------------------------------------------

    def attach_volume(
        self,
        call: Call,
        volume_id: str,
        instance_id: str,
        device: str,
        dry_run: bool | None = None,
    ) -> Volume:
        volume = self._volume(call, volume_id)
        self._gate(
            call,
            "ec2:AttachVolume",
            volume_arn(volume.region, volume.account_id, volume_id),
            dry_run,
        )
        if INSTANCE_ID.fullmatch(instance_id) is None:
            raise InvalidInstanceIdMalformed(
                f'Invalid id: "{instance_id[:64]}" (expecting "i-...")'
            )
        if _DEVICE.fullmatch(device) is None:
            raise InvalidParameterValue(
                f"Value ({device[:64]}) for parameter device is invalid. "
                f"{device[:64]} is not a valid EBS device name."
            )
        if volume.attachment is not None:
            raise VolumeInUse(f"{volume_id} is already attached to an instance")
        if volume.state != "available":
            raise IncorrectState(f"{volume_id} is not 'available'.")
        # KMS first: a disabled or deleted key (or a caller who may not use it) fails
        # the attach with EC2's error, and nothing changes.
        data_key = self.keys.open(call, volume.keying, volume.region, volume.account_id)
        sealed = self.keys.seal_attached(volume.account_id, volume_id, data_key)
        now = self._clock.now()

        def work(conn: Connection) -> Volume:
            current = ebs_repo.get_volume(conn, volume.account_id, volume.region, volume_id)
            if current is None:
                raise InvalidVolumeNotFound(f"The volume '{volume_id}' does not exist.")
            if current.attachment is not None:
                raise VolumeInUse(f"{volume_id} is already attached to an instance")
            if current.state != "available":
                raise IncorrectState(f"{volume_id} is not 'available'.")
            for other in ebs_repo.list_volumes(conn, volume.account_id, volume.region):
                a = other.attachment
                if a is not None and a.instance_id == instance_id and a.device == device:
                    raise InvalidParameterValue(f"Attachment point {device} is already in use")
            if not ebs_repo.update_volume(
                conn,
                current,
                state="in-use",
                instance_id=instance_id,
                device=device,
                attach_time=now,
                attached_key=sealed,
            ):
                raise ConcurrentUpdate()
            updated = ebs_repo.get_volume(conn, volume.account_id, volume.region, volume_id)
            assert updated is not None
            return updated

        attached: Volume = self._db.write(work)
        return attached

    def detach_volume(
        self,
        call: Call,
        volume_id: str,
        instance_id: str | None = None,
        device: str | None = None,
        force: bool | None = None,
        dry_run: bool | None = None,
    ) -> Volume:
        """Detach; returns the volume as it was attached. The export ends (flushed)."""
        volume = self._volume(call, volume_id)
        self._gate(
            call,
            "ec2:DetachVolume",
            volume_arn(volume.region, volume.account_id, volume_id),
            dry_run,
        )

        def work(conn: Connection) -> Volume:
            current = ebs_repo.get_volume(conn, volume.account_id, volume.region, volume_id)
            if current is None:
                raise InvalidVolumeNotFound(f"The volume '{volume_id}' does not exist.")
            a = current.attachment
            if a is None:
                raise IncorrectState(f"Volume '{volume_id}' is in the '{current.state}' state.")
            if (instance_id is not None and instance_id != a.instance_id) or (
                device is not None and device != a.device
            ):
                raise InvalidAttachmentNotFound(
                    f"Volume {volume_id} can not be detached from "
                    f"{instance_id or a.instance_id} because it is not attached"
                )
            if not ebs_repo.update_volume(
                conn,
                current,
                state="available",
                instance_id=None,
                device=None,
                attach_time=None,
                attached_key=None,
            ):
                raise ConcurrentUpdate()
            return current

        detached: Volume = self._db.write(work)
        # This process's export (if it serves one) ends now, flushed; a block server in
        # another process ends its own at its next reconcile().
        try:
            self.exports.end(volume_id)
        except Exception:
            log.exception("ending the export of %s failed", volume_id)
        return detached

    # -- tags ---------------------------------------------------------------------------------

    def _taggable(self, call: Call, resource_id: str) -> tuple[str, str]:
        """(resource type, ARN) of a volume or snapshot of the caller's."""
        account, region = call.principal.account_id, call.region
        if VOLUME_ID.fullmatch(resource_id):
            with self._db.read() as conn:
                found = ebs_repo.get_volume(conn, account, region, resource_id)
            if found is None:
                raise InvalidVolumeNotFound(f"The volume '{resource_id}' does not exist.")
            return "volume", volume_arn(region, account, resource_id)
        if SNAPSHOT_ID.fullmatch(resource_id):
            with self._db.read() as conn:
                snap = ebs_repo.get_snapshot(conn, account, region, resource_id)
            if snap is None:
                raise InvalidSnapshotNotFound(f"The snapshot '{resource_id}' does not exist.")
            return "snapshot", snapshot_arn(region, resource_id)
        raise InvalidId(f"The ID '{resource_id[:64]}' is not valid")

    def create_tags(
        self,
        call: Call,
        resources: Sequence[str],
        tags: Sequence[Mapping[str, Any]],
        dry_run: bool | None = None,
    ) -> None:
        if not resources:
            raise MissingParameter("The request must contain the parameter resourceIdSet")
        wanted = {str(t.get("Key", "")): str(t.get("Value", "")) for t in tags}
        check_tags(wanted)
        targets = []
        for resource_id in resources:
            kind, arn = self._taggable(call, resource_id)
            self._authorize(call, "ec2:CreateTags", arn)
            targets.append((kind, resource_id))
        if dry_run:
            raise DryRunOperation(DRY_RUN_MESSAGE)
        account, region = call.principal.account_id, call.region

        def work(conn: Connection) -> None:
            for kind, resource_id in targets:
                existing = ebs_repo.tags_of(conn, [resource_id])[resource_id]
                if len({**existing, **wanted}) > 50:
                    raise TagLimitExceeded(
                        f"The maximum number of tags for resource {resource_id} is 50."
                    )
                ebs_repo.set_tags(conn, account, region, kind, resource_id, wanted)

        self._db.write(work)

    def delete_tags(
        self,
        call: Call,
        resources: Sequence[str],
        tags: Sequence[Mapping[str, Any]] | None,
        dry_run: bool | None = None,
    ) -> None:
        if not resources:
            raise MissingParameter("The request must contain the parameter resourceIdSet")
        for resource_id in resources:
            _, arn = self._taggable(call, resource_id)
            self._authorize(call, "ec2:DeleteTags", arn)
        if dry_run:
            raise DryRunOperation(DRY_RUN_MESSAGE)

        def work(conn: Connection) -> None:
            for resource_id in resources:
                if tags is None:
                    ebs_repo.delete_all_tags(conn, resource_id)
                    continue
                for tag in tags:
                    value = tag.get("Value")
                    ebs_repo.delete_tag(
                        conn,
                        resource_id,
                        str(tag.get("Key", "")),
                        None if value is None else str(value),
                    )

        self._db.write(work)

    def describe_tags(
        self,
        call: Call,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        dry_run: bool | None = None,
    ) -> tuple[list[dict[str, str]], str | None]:
        self._gate(call, "ec2:DescribeTags", "*", dry_run)
        with self._db.read() as conn:
            rows = ebs_repo.list_tags(conn, call.principal.account_id, call.region)
        by_resource: dict[str, dict[str, str]] = {}
        for resource_id, _, key, value in rows:
            by_resource.setdefault(resource_id, {})[key] = value

        class _Tag:
            __slots__ = ("key", "resource_id", "resource_type", "tags", "value")

            def __init__(self, rid: str, kind: str, key: str, value: str) -> None:
                self.resource_id, self.resource_type, self.key, self.value = rid, kind, key, value
                self.tags = by_resource[rid]

        known: dict[str, Any] = {
            "key": lambda t: [t.key],
            "value": lambda t: [t.value],
            "resource-id": lambda t: [t.resource_id],
            "resource-type": lambda t: [t.resource_type],
        }
        matches = compile_filters(filters, known)
        items = [_Tag(*row) for row in rows]
        selected = [t for t in items if matches(t)]
        shown, token = page(
            selected,
            lambda t: f"{t.resource_id}\x00{t.key}",
            max_results,
            next_token,
            (5, 1000),
            "tags",
        )
        return [
            {
                "Key": t.key,
                "Value": t.value,
                "ResourceId": t.resource_id,
                "ResourceType": t.resource_type,
            }
            for t in shown
        ], token
