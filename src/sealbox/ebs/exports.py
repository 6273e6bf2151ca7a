"""Attached volumes as block devices, for the NBD server (sealbox.nbd).

An attached volume's row holds its data key sealed by the service key (see keys.py), so
any process can open it without a KMS call. The NBD server asks for a device per
connection and closes it (flushing it) when the connection ends:

* ``export(volume_id)`` — a new device for the volume, or None when it is not attached
  (or its KMS key has been deleted: after the key is shredded nothing of it is served).
  Devices of one volume share their unit locks, so requests from several connections
  that touch different bytes of one 4 KiB unit never lose each other's writes;
* ``names()`` — the ids of every attached volume (NBD_OPT_LIST);
* ``on_detach(callback)`` — called with the volume id when a volume this process has
  handed devices out for is detached: the server ends those connections (their devices
  are flushed and closed); any device still open afterwards is flushed and closed here;
* ``reconcile()`` — for a block server in another process than the one that ran
  DetachVolume: ends the exports of volumes no longer attached as they were (detached,
  re-attached, or whose key is gone). Call it every second or so.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime

from sealbox.ebs.model import Volume
from sealbox.ebs.volume_store import EncryptedVolume, UnitLocks, VolumeStore
from sealbox.storage import ebs_repo
from sealbox.storage.db import Database

log = logging.getLogger("sealbox.ebs")

KeyOpener = Callable[[Volume], bytes]
KeyAlive = Callable[[Volume], bool]
_Identity = tuple[str, datetime]  # the attachment devices were handed out under


class Exports:
    def __init__(
        self,
        db: Database,
        store: VolumeStore,
        open_key: KeyOpener,
        key_alive: KeyAlive,
        *,
        null_cipher: bool = False,
    ) -> None:
        self._db = db
        self._store = store
        self._open_key = open_key
        self._key_alive = key_alive
        self._null_cipher = null_cipher
        self._devices: dict[str, weakref.WeakSet[EncryptedVolume]] = {}
        self._identity: dict[str, _Identity] = {}
        self._locks: weakref.WeakValueDictionary[str, UnitLocks] = weakref.WeakValueDictionary()
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    def on_detach(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def names(self) -> list[str]:
        with self._db.read() as conn:
            return ebs_repo.attached_volume_ids(conn)

    def _volume(self, volume_id: str) -> Volume | None:
        with self._db.read() as conn:
            return ebs_repo.volume_by_id(conn, volume_id)

    @staticmethod
    def _identity_of(volume: Volume | None) -> _Identity | None:
        if volume is None or volume.attachment is None or volume.attached_key is None:
            return None
        return volume.attachment.instance_id, volume.attachment.attach_time

    def export(self, volume_id: str) -> EncryptedVolume | None:
        volume = self._volume(volume_id)
        identity = self._identity_of(volume)
        with self._lock:
            known = self._identity.get(volume_id)
        if known is not None and known != identity:
            self.end(volume_id)  # detached (or re-attached) since those were handed out
        if volume is None or identity is None:
            return None
        if not self._key_alive(volume):
            log.warning("not exporting %s: its KMS key no longer exists", volume_id)
            return None
        data_key = self._open_key(volume)
        with self._lock:
            locks = self._locks.get(volume_id)
            if locks is None:
                locks = UnitLocks()
                self._locks[volume_id] = locks
        device = self._store.open(
            volume_id,
            volume.size_bytes,
            data_key,
            null_cipher=self._null_cipher,
            locks=locks,
        )
        with self._lock:
            self._devices.setdefault(volume_id, weakref.WeakSet()).add(device)
            self._identity[volume_id] = identity
        return device

    def end(self, volume_id: str) -> bool:
        """End this process's export of a volume: callbacks, then flush and close."""
        with self._lock:
            devices = list(self._devices.pop(volume_id, ()))
            had = self._identity.pop(volume_id, None) is not None
            callbacks = list(self._callbacks)
        if not had:
            return False
        for callback in callbacks:
            try:
                callback(volume_id)
            except Exception:
                log.exception("detach callback for %s failed", volume_id)
        for device in devices:
            try:
                device.close()  # flushes; nothing if the server closed it already
            except Exception:
                log.exception("closing a device of %s failed", volume_id)
        return True

    def reconcile(self) -> list[str]:
        """End exports whose volume is no longer attached as it was; returns their ids."""
        with self._lock:
            handed = dict(self._identity)
        ended: list[str] = []
        for volume_id, identity in handed.items():
            volume = self._volume(volume_id)
            stale = self._identity_of(volume) != identity or (
                volume is not None and not self._key_alive(volume)
            )
            if stale and self.end(volume_id):
                ended.append(volume_id)
        return ended

    def close_all(self) -> None:
        with self._lock:
            ids = list(self._identity)
        for volume_id in ids:
            self.end(volume_id)

    def exporting(self) -> list[str]:
        """The volumes this process has handed devices out for (and not ended)."""
        with self._lock:
            return sorted(self._identity)
