"""EbsService: volumes, snapshots, encryption by default, the EBS direct APIs, and the
attached volumes a block server exports.

The parts live in volumes.py (volumes, settings, tags, attach/detach), snapshots.py
(CreateSnapshot, CopySnapshot, ...), direct.py (the EBS direct APIs) and exports.py
(attached volumes as block devices); base.py holds what they share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sealbox import arn as arns
from sealbox.clock import Clock
from sealbox.ebs.base import EbsBase
from sealbox.ebs.blocks import BlockStore
from sealbox.ebs.device import VolumeDevice
from sealbox.ebs.direct import DirectOps
from sealbox.ebs.exports import Exports
from sealbox.ebs.keys import DataKeys
from sealbox.ebs.model import Volume
from sealbox.ebs.snapshots import SnapshotOps
from sealbox.ebs.volume_store import VolumeStore
from sealbox.ebs.volumes import VolumeOps
from sealbox.iam.authz import Authorizer
from sealbox.keystore.base import KeyStore
from sealbox.kms.service import KmsService
from sealbox.storage import ebs_repo, kms_repo
from sealbox.storage.db import Database

log = logging.getLogger("sealbox.ebs")


class EbsService(VolumeOps, SnapshotOps, DirectOps):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        keystore: KeyStore,
        kms: KmsService,
        authorizer: Authorizer,
        data_dir: Path,
        *,
        null_cipher: bool = False,
        count_kms: Callable[[str], None] | None = None,
    ) -> None:
        if null_cipher:
            log.warning("BENCHMARK MODE: EBS volumes are stored WITHOUT encryption (null cipher)")
        keys = DataKeys(db, keystore, kms, clock, count_kms)
        volumes = VolumeStore(data_dir / "volumes")
        exports = Exports(db, volumes, self._attached_key, self._key_alive, null_cipher=null_cipher)
        EbsBase.__init__(
            self,
            db,
            clock,
            keys,
            authorizer,
            volumes,
            BlockStore(data_dir / "ebs-blocks"),
            exports,
            null_cipher=null_cipher,
        )

    # -- for the block server (NBD) ------------------------------------------------------------

    def export(self, export_name: str) -> VolumeDevice | None:
        """A new device for an attached volume (the NBD export named by its id), owned by
        the caller, who closes it (which flushes it); None when the volume is not attached.
        This is the NBD server's ExportResolver (export name = volume id)."""
        return self.exports.export(export_name)

    def export_names(self) -> list[str]:
        """Every attached volume's id (what NBD_OPT_LIST lists)."""
        return self.exports.names()

    def on_detach(self, callback: Callable[[str], None]) -> None:
        """callback(volume_id) when a volume this process exports is detached: end the
        export (disconnect its clients, closing their devices); devices still open after
        it returns are flushed and closed."""
        self.exports.on_detach(callback)

    def reconcile_exports(self) -> list[str]:
        """End this process's exports of volumes detached elsewhere; returns their ids."""
        return self.exports.reconcile()

    def _attached_key(self, volume: Volume) -> bytes:
        assert volume.attached_key is not None
        return self.keys.open_attached(volume.account_id, volume.volume_id, volume.attached_key)

    def _key_alive(self, volume: Volume) -> bool:
        """False once the volume's KMS key is gone (deleted: its material is shredded)."""
        if not volume.keying.encrypted or volume.keying.kms_key_arn is None:
            return True
        parsed = arns.parse_arn(volume.keying.kms_key_arn)
        if parsed is None or not parsed.resource.startswith("key/"):
            return False
        key_id = parsed.resource[4:]
        return kms_repo.key_row_version(self._db, parsed.account, parsed.region, key_id) is not None

    # -- housekeeping --------------------------------------------------------------------------

    def run_scheduled_work(self) -> int:
        """Expire direct-API snapshots past their timeout; returns how many."""
        return self.expire_pending()

    def clear_tmp(self) -> int:
        return self.block_store.clear_tmp()

    def orphan_blocks(self) -> set[str]:
        """Stored blocks no metadata names (left by a crash between write and commit)."""
        with self._db.read() as conn:
            known = ebs_repo.all_block_ids(conn)
        return self.block_store.block_ids() - known

    def close(self) -> None:
        self.exports.close_all()
