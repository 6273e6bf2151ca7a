"""The EBS direct APIs: write a snapshot block by block, read one, list and compare.

StartSnapshot makes a pending snapshot; with a parent it shares the parent's data key and
starts out naming every block the parent names (so only changed blocks need writing, and
ListChangedBlocks between them lists exactly those). PutSnapshotBlock verifies the block's
SHA-256 against x-amz-Checksum, seals it (blocks.py) and names it in place of whatever the
snapshot named at that index; CompleteSnapshot checks the count of written blocks and the
LINEAR aggregate checksum (SHA-256 over the written blocks' SHA-256s in block-index order)
and completes it. A pending snapshot not completed within its Timeout (minutes since the
last write) goes to the error state.

Durability: AWS guarantees a snapshot only once CompleteSnapshot has succeeded, so a
block acknowledged by PutSnapshotBlock is written (sealed) and named in the database, but
its file is not fsynced then; CompleteSnapshot fsyncs every written block and its
directory before the snapshot is marked completed, and refuses to complete (the snapshot
stays pending, the client writes the block again) if a block file was lost or cut short
by an operating-system crash in between. Completed snapshots are therefore as durable as
before; a pending one may lose blocks to a power failure, which AWS's contract allows.
Integrity is unchanged: every block's SHA-256 is checked against x-amz-Checksum (using
the SigV4 layer's hash of the same body when it computed one), and blocks are AEAD-sealed.

Block tokens are the ids of stored blocks: two snapshots' tokens at an index are equal
exactly when they share the block.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.ebs.base import EbsBase, check_tags, snapshot_arn
from sealbox.ebs.blocks import SEALED_BLOCK_SIZE, BlockKeys
from sealbox.ebs.errors import (
    EbsAccessDenied,
    EbsConflict,
    EbsValidation,
    Ec2Error,
)
from sealbox.ebs.model import (
    BLOCK_SIZE,
    DIRECT_VOLUME_ID,
    BlockRef,
    Snapshot,
    StoredBlock,
    new_id,
)
from sealbox.storage import ebs_repo

MAX_VOLUME_GIB = 65536
TOKEN_LIFETIME = timedelta(days=7)
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z\-]*:kms:.*:[0-9]{12}:key/.*")


class EbsUnauthorized(EbsAccessDenied):
    def __init__(self, message: str = "") -> None:
        super().__init__(message, "UNAUTHORIZED_ACCOUNT")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _encode_page(snapshot_id: str, index: int) -> str:
    return base64.b64encode(f"{snapshot_id}:{index}".encode()).decode("ascii")


def _decode_page(snapshot_id: str, token: str) -> int:
    try:
        owner, _, index = base64.b64decode(token, validate=True).decode().partition(":")
        if owner != snapshot_id:
            raise ValueError
        return int(index)
    except (binascii.Error, UnicodeError, ValueError):
        raise EbsValidation("The pagination token is not valid.", "INVALID_PAGE_TOKEN") from None


def _start(snapshot_id: str, next_token: str | None, starting_block_index: int | None) -> int:
    """Where a listing page starts: the token's position, else StartingBlockIndex."""
    if next_token:
        return _decode_page(snapshot_id, next_token)
    return starting_block_index or 0


class DirectOps(EbsBase):
    def _direct_snapshot(self, call: Call, snapshot_id: str, action: str) -> Snapshot:
        snapshot = self._snapshot(call, snapshot_id, with_tags=False)
        self._authorize(call, action, snapshot_arn(snapshot.region, snapshot_id), EbsUnauthorized)
        return snapshot

    # -- timeouts -----------------------------------------------------------------------------

    def _expire_if_due(self, snapshot: Snapshot) -> Snapshot:
        if snapshot.state != "pending" or snapshot.origin != "direct":
            return snapshot
        if snapshot.last_activity is None or snapshot.timeout_minutes is None:
            return snapshot
        if self._clock.now() < snapshot.last_activity + timedelta(minutes=snapshot.timeout_minutes):
            return snapshot
        self._db.write(
            lambda conn: ebs_repo.update_snapshot(
                conn, snapshot.snapshot_id, expect_state="pending", state="error"
            )
        )
        return replace(snapshot, state="error")

    def expire_pending(self) -> int:
        """Move direct-API snapshots past their timeout to the error state."""
        with self._db.read() as conn:
            pending = ebs_repo.pending_snapshots(conn)
        return sum(1 for s in pending if self._expire_if_due(s).state == "error")

    # -- StartSnapshot ------------------------------------------------------------------------

    def start_snapshot(
        self,
        call: Call,
        *,
        volume_size: int,
        parent_snapshot_id: str | None = None,
        encrypted: bool | None = None,
        kms_key_arn: str | None = None,
        timeout: int | None = None,
        client_token: str | None = None,
        description: str | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
    ) -> Snapshot:
        region, account = call.region, call.principal.account_id
        self._authorize(call, "ebs:StartSnapshot", snapshot_arn(region, "*"), EbsUnauthorized)
        if not 1 <= volume_size <= MAX_VOLUME_GIB:
            raise EbsValidation(
                f"The volume size must be between 1 and {MAX_VOLUME_GIB} GiB.",
                "INVALID_VOLUME_SIZE",
            )
        timeout = 60 if timeout is None else timeout
        if not 10 <= timeout <= 4320:
            raise EbsValidation(
                "Timeout must be between 10 and 4320 minutes.", "INVALID_PARAMETER_VALUE"
            )
        if description is not None and len(description) > 255:
            raise EbsValidation(
                "The description must be at most 255 characters.", "INVALID_PARAMETER_VALUE"
            )
        tag_map = {str(t.get("Key", "")): str(t.get("Value", "")) for t in tags or []}
        try:
            check_tags(tag_map)
        except Ec2Error as err:
            raise EbsValidation(err.message, "INVALID_TAG") from None
        if kms_key_arn is not None and _KMS_KEY_ARN.fullmatch(kms_key_arn) is None:
            raise EbsValidation("KmsKeyArn must be a KMS key ARN.", "INVALID_PARAMETER_VALUE")
        if parent_snapshot_id is not None and encrypted is not None:
            raise EbsValidation(
                "You can't specify ParentSnapshotId and Encrypted in the same request.",
                "INVALID_PARAMETER_VALUE",
            )
        fingerprint = hashlib.sha256(
            orjson.dumps(
                [volume_size, parent_snapshot_id, encrypted, kms_key_arn, timeout, description,
                 sorted(tag_map.items())]
            )
        ).hexdigest()  # fmt: skip
        if client_token:
            with self._db.read() as conn:
                earlier = ebs_repo.snapshot_by_token(conn, account, region, client_token)
            if earlier is not None:
                if earlier.request_fingerprint != fingerprint:
                    raise EbsConflict(
                        "The request uses the same client token as a previous, but "
                        "non-identical request."
                    )
                with self._db.read() as conn:
                    found = ebs_repo.get_snapshot(conn, account, region, earlier.snapshot_id)
                if found is not None:
                    return found
        settings = self.settings(account, region)
        snapshot_id = new_id("snap")
        parent: Snapshot | None = None
        if parent_snapshot_id is not None:
            parent = self._direct_snapshot(call, parent_snapshot_id, "ebs:StartSnapshot")
            if parent.state != "completed":
                raise EbsValidation(
                    f"The parent snapshot {parent_snapshot_id} is not completed.",
                    "INVALID_SNAPSHOT_ID",
                )
            if volume_size < parent.volume_size_gib:
                raise EbsValidation(
                    "The volume size must not be smaller than the parent snapshot's.",
                    "INVALID_VOLUME_SIZE",
                )
            if not parent.keying.encrypted and (settings.encryption_by_default or kms_key_arn):
                raise EbsValidation(
                    "An unencrypted parent snapshot cannot have an encrypted child; "
                    "copy the parent with encryption first.",
                    "INVALID_PARAMETER_VALUE",
                )
            if parent.keying.encrypted and kms_key_arn not in (None, parent.keying.kms_key_arn):
                raise EbsValidation(
                    "The snapshot must be encrypted with the KMS key of its parent.",
                    "INVALID_PARAMETER_VALUE",
                )
            keying = parent.keying
            # The caller must be able to use the parent's key (and the key must be usable).
            self.keys.open_cached(call, keying, parent.region, parent.account_id)
        else:
            if kms_key_arn is not None and encrypted is not True:
                raise EbsValidation(
                    "KmsKeyArn requires Encrypted to be true.", "INVALID_PARAMETER_VALUE"
                )
            key: str | None = None
            if encrypted or settings.encryption_by_default:
                key = (
                    kms_key_arn
                    or settings.default_kms_key_id
                    or self.keys.managed_key_arn(account, region)
                )
            keying = self.keys.new_keying(call, region, snapshot_id, key)
        now = self._clock.now()
        snapshot = Snapshot(
            snapshot_id=snapshot_id,
            account_id=account,
            region=region,
            volume_id=DIRECT_VOLUME_ID,
            volume_size_gib=volume_size,
            description=description or "",
            state="pending",
            start_time=now,
            completion_time=None,
            origin="direct",
            keying=keying,
            parent_snapshot_id=parent_snapshot_id,
            source_snapshot_id=None,
            client_token=client_token or None,
            request_fingerprint=fingerprint,
            timeout_minutes=timeout,
            last_activity=now,
            stored_bytes=0,
            tags=tag_map,
        )
        call.resources.append(snapshot_arn(region, snapshot_id))

        def work(conn: Connection) -> None:
            ebs_repo.insert_snapshot(conn, snapshot)
            ebs_repo.set_tags(conn, account, region, "snapshot", snapshot_id, tag_map)
            if parent is not None:
                if ebs_repo.snapshot_by_id(conn, parent.snapshot_id) is None:
                    raise EbsValidation(
                        f"The parent snapshot {parent.snapshot_id} was deleted.",
                        "INVALID_SNAPSHOT_ID",
                    )
                ebs_repo.copy_snapshot_blocks(conn, parent.snapshot_id, snapshot_id)

        self._db.write(work)
        return snapshot

    # -- PutSnapshotBlock ----------------------------------------------------------------------

    def put_snapshot_block(
        self,
        call: Call,
        snapshot_id: str,
        block_index: int,
        data: bytes,
        *,
        data_length: int | None,
        checksum: str | None,
        checksum_algorithm: str | None,
        progress: int | None = None,
        verified_sha256: bytes | None = None,
    ) -> str:
        """Store one block; returns the base64 SHA-256 EBS computed.

        ``verified_sha256``: the block's SHA-256 when the caller has already computed it
        from these very bytes (the SigV4 layer hashes a signed body to check the
        signature), so it is not computed twice; the checksum is still compared with it.

        Durability: the block is written but not fsynced here; CompleteSnapshot makes
        every written block durable before the snapshot completes (AWS promises a
        snapshot only once it is completed). See DirectOps.complete_snapshot.
        """
        snapshot = self._direct_snapshot(call, snapshot_id, "ebs:PutSnapshotBlock")
        if snapshot.state != "pending":
            raise EbsValidation(
                f"The snapshot {snapshot_id} is {snapshot.state}: blocks can only be written "
                "to a pending snapshot.",
                "INVALID_SNAPSHOT_ID",
            )
        if not 0 <= block_index < snapshot.block_count:
            raise EbsValidation(
                f"The block index {block_index} is outside the volume "
                f"(0 to {snapshot.block_count - 1}).",
                "INVALID_BLOCK",
            )
        if checksum_algorithm != "SHA256":
            raise EbsValidation("The checksum algorithm must be SHA256.", "INVALID_PARAMETER_VALUE")
        if checksum is None:
            raise EbsValidation("The x-amz-Checksum header is required.", "INVALID_PARAMETER_VALUE")
        if data_length != BLOCK_SIZE or len(data) != BLOCK_SIZE:
            raise EbsValidation(
                f"The data length must be {BLOCK_SIZE} bytes.", "INVALID_PARAMETER_VALUE"
            )
        digest = verified_sha256 if verified_sha256 is not None else hashlib.sha256(data).digest()
        computed = _b64(digest)
        if computed != checksum:
            raise EbsValidation(
                "The checksum you specified does not match the block data.",
                "INVALID_PARAMETER_VALUE",
            )
        data_key = self.keys.open_cached(
            call, snapshot.keying, snapshot.region, snapshot.account_id
        )
        keys = BlockKeys(data_key, snapshot.keying.context_id)
        block_id = self.block_store.put_deferred(keys, block_index, data)
        block = StoredBlock(
            block_id, snapshot.keying.context_id, block_index, keys.mac_of_digest(digest)
        )
        ref = BlockRef(
            block_index, block_id, True, keys.seal_checksum(snapshot_id, block_index, digest)
        )
        now = self._clock.now()

        try:
            freed = self._db.fast_transaction(
                lambda fast: ebs_repo.put_written_block(fast, snapshot_id, block, ref, now)
            )
        except BaseException:
            self.block_store.delete([block_id])
            raise
        if freed is None:
            self.block_store.delete([block_id])
            raise EbsValidation(
                f"The snapshot {snapshot_id} is no longer pending.", "INVALID_SNAPSHOT_ID"
            )
        self.block_store.delete(freed)
        return computed

    # -- CompleteSnapshot ------------------------------------------------------------------------

    def complete_snapshot(
        self,
        call: Call,
        snapshot_id: str,
        changed_blocks_count: int,
        checksum: str | None = None,
        checksum_algorithm: str | None = None,
        aggregation_method: str | None = None,
    ) -> str:
        snapshot = self._direct_snapshot(call, snapshot_id, "ebs:CompleteSnapshot")
        if snapshot.state != "pending":
            raise EbsValidation(
                f"The snapshot {snapshot_id} is {snapshot.state}, not pending.",
                "INVALID_SNAPSHOT_ID",
            )
        if changed_blocks_count < 0:
            raise EbsValidation(
                "ChangedBlocksCount must not be negative.", "INVALID_PARAMETER_VALUE"
            )
        with self._db.read() as conn:
            written = ebs_repo.snapshot_blocks(conn, snapshot_id, written_only=True)
        if changed_blocks_count != len(written):
            raise EbsValidation(
                f"ChangedBlocksCount is {changed_blocks_count} but {len(written)} blocks "
                "were written to the snapshot.",
                "INVALID_PARAMETER_VALUE",
            )
        if checksum is not None or checksum_algorithm is not None:
            if checksum_algorithm != "SHA256" or checksum is None:
                raise EbsValidation(
                    "The checksum algorithm must be SHA256, with a checksum.",
                    "INVALID_PARAMETER_VALUE",
                )
            if aggregation_method not in (None, "LINEAR"):
                raise EbsValidation(
                    "The checksum aggregation method must be LINEAR.", "INVALID_PARAMETER_VALUE"
                )
            data_key = self.keys.open_cached(
                call, snapshot.keying, snapshot.region, snapshot.account_id
            )
            keys = BlockKeys(data_key, snapshot.keying.context_id)
            digests = []
            for ref in written:
                assert ref.sealed_checksum is not None
                digests.append(
                    keys.open_checksum(snapshot_id, ref.block_index, ref.sealed_checksum)
                )
            # LINEAR: SHA-256 over the blocks' checksums in block-index order. AWS's text
            # says "concatenate them to form a single string": accept the raw digests
            # concatenated and their base64 texts concatenated.
            raw = _b64(hashlib.sha256(b"".join(digests)).digest())
            texts = _b64(hashlib.sha256("".join(_b64(d) for d in digests).encode()).digest())
            if checksum not in (raw, texts):
                raise EbsValidation(
                    "The aggregated checksum does not match the blocks written.",
                    "INVALID_PARAMETER_VALUE",
                )
        # PutSnapshotBlock left its blocks unsynced: make them durable before the
        # snapshot completes. A block lost since (an operating-system crash) fails the
        # completion; the snapshot stays pending so the client can write it again.
        lost = self.block_store.make_durable([r.block_id for r in written], SEALED_BLOCK_SIZE)
        if lost:
            index_of = {r.block_id: r.block_index for r in written}
            indexes = sorted(index_of[b] for b in lost)
            raise EbsValidation(
                f"{len(indexes)} written block(s) were lost by a server crash before "
                f"CompleteSnapshot (block indexes {indexes[:10]}); write them again.",
                "INVALID_PARAMETER_VALUE",
            )
        now = self._clock.now()

        def work(conn: Connection) -> None:
            if not ebs_repo.update_snapshot(
                conn,
                snapshot_id,
                expect_state="pending",
                state="completed",
                completion_time=now,
                last_activity=now,
                stored_bytes=len(written) * BLOCK_SIZE,
            ):
                raise EbsValidation(
                    f"The snapshot {snapshot_id} is no longer pending.", "INVALID_SNAPSHOT_ID"
                )
            ebs_repo.clear_checksums(conn, snapshot_id)

        self._db.write(work)
        return "completed"

    # -- reading ------------------------------------------------------------------------------

    def _readable(self, snapshot: Snapshot) -> None:
        if snapshot.state != "completed":
            raise EbsValidation(
                f"The snapshot {snapshot.snapshot_id} is {snapshot.state}; only completed "
                "snapshots can be read.",
                "INVALID_SNAPSHOT_ID",
            )

    @staticmethod
    def _page_size(max_results: int | None) -> int:
        if max_results is None:
            return 10000
        if not 100 <= max_results <= 10000:
            raise EbsValidation(
                "MaxResults must be between 100 and 10000.", "INVALID_PARAMETER_VALUE"
            )
        return max_results

    def list_snapshot_blocks(
        self,
        call: Call,
        snapshot_id: str,
        *,
        max_results: int | None = None,
        next_token: str | None = None,
        starting_block_index: int | None = None,
    ) -> dict[str, Any]:
        snapshot = self._direct_snapshot(call, snapshot_id, "ebs:ListSnapshotBlocks")
        self._readable(snapshot)
        limit = self._page_size(max_results)
        start = _start(snapshot_id, next_token, starting_block_index)
        with self._db.read() as conn:
            refs = ebs_repo.snapshot_blocks(conn, snapshot_id, start, limit + 1)
        more = len(refs) > limit
        refs = refs[:limit]
        out: dict[str, Any] = {
            "Blocks": [{"BlockIndex": r.block_index, "BlockToken": r.block_id} for r in refs],
            "ExpiryTime": self._clock.now() + TOKEN_LIFETIME,
            "VolumeSize": snapshot.volume_size_gib,
            "BlockSize": BLOCK_SIZE,
        }
        if more:
            out["NextToken"] = _encode_page(snapshot_id, refs[-1].block_index + 1)
        return out

    def list_changed_blocks(
        self,
        call: Call,
        second_snapshot_id: str,
        *,
        first_snapshot_id: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        starting_block_index: int | None = None,
    ) -> dict[str, Any]:
        second = self._direct_snapshot(call, second_snapshot_id, "ebs:ListChangedBlocks")
        self._readable(second)
        first: Snapshot | None = None
        if first_snapshot_id is not None:
            first = self._direct_snapshot(call, first_snapshot_id, "ebs:ListChangedBlocks")
            self._readable(first)
            if first.keying.context_id != second.keying.context_id:
                raise EbsValidation(
                    "The snapshots are not from the same lineage.", "UNRELATED_SNAPSHOTS"
                )
        limit = self._page_size(max_results)
        start = _start(second_snapshot_id, next_token, starting_block_index)
        with self._db.read() as conn:
            second_map = {
                r.block_index: r.block_id
                for r in ebs_repo.snapshot_blocks(conn, second_snapshot_id, start)
            }
            first_map = (
                {
                    r.block_index: r.block_id
                    for r in ebs_repo.snapshot_blocks(conn, first.snapshot_id, start)
                }
                if first is not None
                else {}
            )
        changed = sorted(
            i for i in set(first_map) | set(second_map) if first_map.get(i) != second_map.get(i)
        )
        more = len(changed) > limit
        changed = changed[:limit]
        blocks = []
        for index in changed:
            entry: dict[str, Any] = {"BlockIndex": index}
            if index in first_map:
                entry["FirstBlockToken"] = first_map[index]
            if index in second_map:
                entry["SecondBlockToken"] = second_map[index]
            blocks.append(entry)
        out: dict[str, Any] = {
            "ChangedBlocks": blocks,
            "ExpiryTime": self._clock.now() + TOKEN_LIFETIME,
            "VolumeSize": second.volume_size_gib,
            "BlockSize": BLOCK_SIZE,
        }
        if more:
            out["NextToken"] = _encode_page(second_snapshot_id, changed[-1] + 1)
        return out

    def get_snapshot_block(
        self, call: Call, snapshot_id: str, block_index: int, block_token: str
    ) -> tuple[bytes, str]:
        """(block data, its base64 SHA-256)."""
        snapshot = self._direct_snapshot(call, snapshot_id, "ebs:GetSnapshotBlock")
        self._readable(snapshot)
        if not 0 <= block_index < snapshot.block_count:
            raise EbsValidation(
                f"The block index {block_index} is outside the volume.", "INVALID_BLOCK"
            )
        with self._db.read() as conn:
            ref = ebs_repo.snapshot_block(conn, snapshot_id, block_index)
        if ref is None or ref.block_id != block_token:
            raise EbsValidation(
                "The block token is not valid for this snapshot and block index.",
                "INVALID_BLOCK_TOKEN",
            )
        data_key = self.keys.open_cached(
            call, snapshot.keying, snapshot.region, snapshot.account_id
        )
        data = self.block_store.get(
            BlockKeys(data_key, snapshot.keying.context_id), ref.block_id, block_index
        )
        return data, _b64(hashlib.sha256(data).digest())
