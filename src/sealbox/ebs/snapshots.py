"""Snapshots through EC2: create from a volume (incremental), describe, delete, copy.

A snapshot of a volume shares the volume's data key (as in AWS, whose snapshots'
aws:ebs:id context names the originating volume), so it can share the blocks of the
previous snapshot of that volume: each 512 KiB block the volume file holds data for is
decrypted, its lineage MAC compared with the MAC of the base snapshot's block at the same
index, and stored again only when it differs. Blocks of zeros are not stored at all
(they read as zeros, as unwritten blocks do). Deleting a snapshot deletes only the blocks
no other snapshot names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.ebs.base import EbsBase, log, snapshot_arn, tags_from_specifications, volume_arn
from sealbox.ebs.blocks import BatchWriter, BlockKeys, ordered_map
from sealbox.ebs.errors import (
    IncorrectState,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidSnapshotNotFound,
)
from sealbox.ebs.filters import bool_text, compile_filters, page
from sealbox.ebs.model import (
    BLOCK_SIZE,
    DIRECT_VOLUME_ID,
    BlockRef,
    Snapshot,
    StoredBlock,
    Volume,
    new_id,
)
from sealbox.storage import ebs_repo

_ZERO_BLOCK = bytes(BLOCK_SIZE)

_SNAPSHOT_FILTERS: dict[str, Any] = {
    "description": lambda s: [s.description or ""],
    "encrypted": lambda s: [bool_text(s.keying.encrypted)],
    "kms-key-id": lambda s: [s.keying.kms_key_arn] if s.keying.kms_key_arn else [],
    "owner-alias": lambda s: [],
    "owner-id": lambda s: [s.account_id],
    "progress": lambda s: ["100%" if s.state == "completed" else "0%"],
    "snapshot-id": lambda s: [s.snapshot_id],
    "start-time": lambda s: [s.start_time.strftime("%Y-%m-%dT%H:%M:%S.000Z")],
    "status": lambda s: [s.state],
    "storage-tier": lambda s: ["standard"],
    "tag-key": lambda s: list(s.tags),
    "volume-id": lambda s: [s.volume_id],
    "volume-size": lambda s: [str(s.volume_size_gib)],
}


class _BaseGone(Exception):
    """A block the new snapshot meant to share was deleted meanwhile: store it again."""


class SnapshotOps(EbsBase):
    # -- create from a volume -----------------------------------------------------------------

    def create_snapshot(
        self,
        call: Call,
        volume_id: str,
        description: str | None = None,
        tag_specifications: Sequence[Mapping[str, Any]] | None = None,
        dry_run: bool | None = None,
    ) -> Snapshot:
        volume = self._volume(call, volume_id)
        region, account = volume.region, volume.account_id
        self._authorize(call, "ec2:CreateSnapshot", volume_arn(region, account, volume_id))
        self._gate(call, "ec2:CreateSnapshot", snapshot_arn(region, "*"), dry_run)
        if description is not None and len(description) > 255:
            raise InvalidParameterValue("The description must be at most 255 characters.")
        if volume.state not in ("available", "in-use"):
            raise IncorrectState(f"The volume '{volume_id}' is '{volume.state}'.")
        tags = tags_from_specifications(tag_specifications, "snapshot")
        data_key = self.keys.open(call, volume.keying, region, account)
        snapshot_id = new_id("snap")
        call.resources.append(snapshot_arn(region, snapshot_id))
        now = self._clock.now()
        base = self._base_of(volume)
        snapshot = Snapshot(
            snapshot_id=snapshot_id,
            account_id=account,
            region=region,
            volume_id=volume_id,
            volume_size_gib=volume.size_gib,
            description=description or "",
            state="pending",
            start_time=now,
            completion_time=None,
            origin="volume",
            keying=volume.keying,
            parent_snapshot_id=base.snapshot_id if base else None,
            source_snapshot_id=None,
            client_token=None,
            request_fingerprint=None,
            timeout_minutes=None,
            last_activity=now,
            stored_bytes=0,
            tags=tags,
        )

        def insert(conn: Connection) -> None:
            ebs_repo.insert_snapshot(conn, snapshot)
            ebs_repo.set_tags(conn, account, region, "snapshot", snapshot_id, tags)

        self._db.write(insert)
        try:
            try:
                self._capture(volume, data_key, snapshot, base)
            except _BaseGone:
                self._capture(volume, data_key, replace(snapshot, parent_snapshot_id=None), None)
        except BaseException:
            self._discard(snapshot_id)
            raise
        return snapshot

    def _base_of(self, volume: Volume) -> Snapshot | None:
        """The snapshot a new snapshot of volume is incremental to: the last one taken
        (or the one it was restored from) while it still exists under the same key."""
        if volume.base_snapshot_id is None:
            return None
        with self._db.read() as conn:
            base = ebs_repo.snapshot_by_id(conn, volume.base_snapshot_id)
        if (
            base is None
            or base.state != "completed"
            or base.keying.context_id != volume.keying.context_id
            or base.volume_size_gib > volume.size_gib
        ):
            return None
        return base

    def _capture(
        self, volume: Volume, data_key: bytes, snapshot: Snapshot, base: Snapshot | None
    ) -> None:
        keys = BlockKeys(data_key, volume.keying.context_id)
        with self._db.read() as conn:
            base_blocks = ebs_repo.block_macs(conn, base.snapshot_id) if base else {}
        device = self.volume_store.open(
            volume.volume_id,
            volume.size_bytes,
            data_key,
            read_only=True,
            null_cipher=self._null_cipher,
        )
        refs: list[BlockRef] = []
        shared: set[str] = set()
        to_store: list[tuple[int, bytes]] = []  # (index, MAC), in the writer's order
        writer = BatchWriter(self.block_store)
        try:
            indexes: set[int] = set()
            for start, end in device.allocated(0, volume.size_bytes):
                indexes.update(range(start // BLOCK_SIZE, -(-end // BLOCK_SIZE)))
            for index in sorted(indexes):
                data = device.read(index * BLOCK_SIZE, BLOCK_SIZE)
                if data == _ZERO_BLOCK:
                    continue
                mac = keys.mac(data)
                previous = base_blocks.get(index)
                if previous is not None and keys.same(previous[1], mac):
                    refs.append(BlockRef(index, previous[0], False))
                    shared.add(previous[0])
                    continue
                writer.put(keys, index, data)
                to_store.append((index, mac))
            block_ids = writer.finish()
        except BaseException:
            writer.abort()
            raise
        finally:
            device.close()
        context = volume.keying.context_id
        new_blocks = [
            StoredBlock(block_id, context, index, mac)
            for block_id, (index, mac) in zip(block_ids, to_store, strict=True)
        ]
        refs.extend(BlockRef(b.block_index, b.block_id, True) for b in new_blocks)
        refs.sort(key=lambda r: r.block_index)
        self._commit_blocks(snapshot, refs, new_blocks, shared, volume_id=volume.volume_id)

    def _commit_blocks(
        self,
        snapshot: Snapshot,
        refs: list[BlockRef],
        new_blocks: list[StoredBlock],
        shared: set[str],
        *,
        volume_id: str | None = None,
    ) -> None:
        """Name the blocks and complete the snapshot in one transaction; shared blocks
        must still exist (a concurrent delete of the base would have freed them)."""
        now = self._clock.now()
        stored = len(new_blocks) * BLOCK_SIZE

        def work(conn: Connection) -> None:
            if shared:
                existing = {b for b in shared if ebs_repo.get_block(conn, b) is not None}
                if existing != shared:
                    raise _BaseGone()
            ebs_repo.insert_blocks(conn, new_blocks, now)
            ebs_repo.insert_snapshot_blocks(conn, snapshot.snapshot_id, refs)
            if not ebs_repo.update_snapshot(
                conn,
                snapshot.snapshot_id,
                expect_state="pending",
                state="completed",
                completion_time=now,
                stored_bytes=stored,
                parent_snapshot_id=snapshot.parent_snapshot_id,
                last_activity=now,
            ):
                raise IncorrectState(f"Snapshot {snapshot.snapshot_id} was deleted.")
            if volume_id is not None:
                current = ebs_repo.volume_by_id(conn, volume_id)
                if current is not None and current.keying.context_id == snapshot.keying.context_id:
                    ebs_repo.update_volume(conn, current, base_snapshot_id=snapshot.snapshot_id)

        try:
            self._db.write(work)
        except BaseException:
            self.block_store.delete([b.block_id for b in new_blocks])
            raise

    def _discard(self, snapshot_id: str) -> None:
        """Remove a snapshot that failed to be made (and any blocks only it named)."""

        def work(conn: Connection) -> list[str]:
            ids = ebs_repo.delete_snapshot_blocks(conn, snapshot_id)
            ebs_repo.delete_snapshot(conn, snapshot_id)
            return ebs_repo.release_blocks(conn, ids)

        try:
            freed: list[str] = self._db.write(work)
            self.block_store.delete(freed)
        except Exception:
            log.exception("could not discard the failed snapshot %s", snapshot_id)

    # -- describe / delete ----------------------------------------------------------------------

    def describe_snapshots(
        self,
        call: Call,
        *,
        snapshot_ids: Sequence[str] | None = None,
        owner_ids: Sequence[str] | None = None,
        restorable_by: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        dry_run: bool | None = None,
    ) -> tuple[list[Snapshot], str | None]:
        self._gate(call, "ec2:DescribeSnapshots", "*", dry_run)
        if snapshot_ids and max_results is not None:
            raise InvalidParameterCombination(
                "The parameter snapshotSet cannot be used with the parameter maxResults"
            )
        for snapshot_id in snapshot_ids or []:
            self._check_snapshot_id(snapshot_id)
        account = call.principal.account_id
        matches = compile_filters(filters, _SNAPSHOT_FILTERS)
        with self._db.read() as conn:
            snapshots = ebs_repo.list_snapshots(conn, account, call.region, snapshot_ids or None)
        if snapshot_ids:
            missing = sorted(set(snapshot_ids) - {s.snapshot_id for s in snapshots})
            if missing:
                raise InvalidSnapshotNotFound(f"The snapshot '{','.join(missing)}' does not exist.")
        if owner_ids and not ({"self", account} & set(owner_ids)):
            snapshots = []  # no public, Amazon or shared snapshots here
        snapshots = [self._expire_if_due(s) for s in snapshots]
        selected = [s for s in snapshots if matches(s)]
        return page(
            selected, lambda s: s.snapshot_id, max_results, next_token, (5, 1000), "snapshots"
        )

    def delete_snapshot(self, call: Call, snapshot_id: str, dry_run: bool | None = None) -> None:
        snapshot = self._snapshot(call, snapshot_id)
        self._gate(call, "ec2:DeleteSnapshot", snapshot_arn(snapshot.region, snapshot_id), dry_run)

        def work(conn: Connection) -> list[str]:
            if (
                ebs_repo.get_snapshot(conn, snapshot.account_id, snapshot.region, snapshot_id)
                is None
            ):
                raise InvalidSnapshotNotFound(f"The snapshot '{snapshot_id}' does not exist.")
            ids = ebs_repo.delete_snapshot_blocks(conn, snapshot_id)
            ebs_repo.delete_snapshot(conn, snapshot_id)
            return ebs_repo.release_blocks(conn, ids)

        freed: list[str] = self._db.write(work)
        self.block_store.delete(freed)

    # -- copy --------------------------------------------------------------------------------

    def copy_snapshot(
        self,
        call: Call,
        *,
        source_region: str,
        source_snapshot_id: str,
        encrypted: bool | None = None,
        kms_key_id: str | None = None,
        description: str | None = None,
        tag_specifications: Sequence[Mapping[str, Any]] | None = None,
        dry_run: bool | None = None,
    ) -> Snapshot:
        region, account = call.region, call.principal.account_id
        source = self._snapshot(call, source_snapshot_id, region=source_region)
        self._authorize(call, "ec2:CopySnapshot", snapshot_arn(source.region, source.snapshot_id))
        self._gate(call, "ec2:CopySnapshot", snapshot_arn(region, "*"), dry_run)
        if source.state != "completed":
            raise IncorrectState(f"Snapshot is in invalid state - {source.state}")
        if description is not None and len(description) > 255:
            raise InvalidParameterValue("The description must be at most 255 characters.")
        tags = tags_from_specifications(tag_specifications, "snapshot")
        # KMS keys are regional: a copy into another region cannot keep the source's key.
        rules_source = (
            source.keying if source.region == region else replace(source.keying, kms_key_arn=None)
        )
        key = self._target_key(call, region, encrypted, kms_key_id, rules_source)
        snapshot_id = new_id("snap")
        call.resources.append(snapshot_arn(region, snapshot_id))
        same_key = source.region == region and self._same_key(call, region, key, source)
        source_key = self.keys.open(call, source.keying, source.region, source.account_id)
        keying = source.keying if same_key else self.keys.new_keying(call, region, snapshot_id, key)
        now = self._clock.now()
        snapshot = Snapshot(
            snapshot_id=snapshot_id,
            account_id=account,
            region=region,
            volume_id=DIRECT_VOLUME_ID,
            volume_size_gib=source.volume_size_gib,
            description=description
            if description is not None
            else f"[Copied {source.snapshot_id} from {source.region}]",
            state="pending",
            start_time=now,
            completion_time=None,
            origin="copy",
            keying=keying,
            parent_snapshot_id=source.snapshot_id if same_key else None,
            source_snapshot_id=source.snapshot_id,
            client_token=None,
            request_fingerprint=None,
            timeout_minutes=None,
            last_activity=now,
            stored_bytes=0,
            tags=tags,
        )

        def insert(conn: Connection) -> None:
            ebs_repo.insert_snapshot(conn, snapshot)
            ebs_repo.set_tags(conn, account, region, "snapshot", snapshot_id, tags)

        self._db.write(insert)
        try:
            if same_key:
                try:
                    self._copy_shared(source, snapshot)
                except _BaseGone:
                    raise InvalidSnapshotNotFound(
                        f"The snapshot '{source.snapshot_id}' does not exist."
                    ) from None
            else:
                target_key = self.keys.open(call, keying, region, account)
                self._copy_reencrypted(source, source_key, snapshot, target_key)
        except BaseException:
            self._discard(snapshot_id)
            raise
        return snapshot

    def _same_key(self, call: Call, region: str, key: str | None, source: Snapshot) -> bool:
        if key is None or not source.keying.encrypted:
            return key is None and not source.keying.encrypted
        return self._resolve_arn(call, region, key) == source.keying.kms_key_arn

    def _copy_shared(self, source: Snapshot, snapshot: Snapshot) -> None:
        """Same key: the copy names the source's blocks (nothing is stored again)."""
        with self._db.read() as conn:
            refs = [
                BlockRef(r.block_index, r.block_id, False)
                for r in ebs_repo.snapshot_blocks(conn, source.snapshot_id)
            ]
        self._commit_blocks(snapshot, refs, [], {r.block_id for r in refs})

    def _copy_reencrypted(
        self, source: Snapshot, source_key: bytes, snapshot: Snapshot, target_key: bytes
    ) -> None:
        """Another key (or plaintext → encrypted): every block is opened and sealed anew."""
        source_keys = BlockKeys(source_key, source.keying.context_id)
        target_keys = BlockKeys(target_key, snapshot.keying.context_id)
        with self._db.read() as conn:
            source_refs = ebs_repo.snapshot_blocks(conn, source.snapshot_id)
        macs: list[bytes] = []
        writer = BatchWriter(self.block_store)

        def load(ref: BlockRef) -> bytes:
            return self.block_store.get(source_keys, ref.block_id, ref.block_index)

        try:
            for ref, data in zip(source_refs, ordered_map(load, source_refs), strict=True):
                writer.put(target_keys, ref.block_index, data)
                macs.append(target_keys.mac(data))
            block_ids = writer.finish()
        except BaseException:
            writer.abort()
            raise
        context = snapshot.keying.context_id
        new_blocks = [
            StoredBlock(block_id, context, ref.block_index, mac)
            for block_id, ref, mac in zip(block_ids, source_refs, macs, strict=True)
        ]
        refs = [BlockRef(b.block_index, b.block_id, True) for b in new_blocks]
        self._commit_blocks(snapshot, refs, new_blocks, set())
