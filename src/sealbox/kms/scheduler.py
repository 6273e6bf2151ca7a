"""Time-driven key work: destroying keys whose deletion window ended, and automatic
rotation. Idempotent and safe to run from several processes at once: each key is
re-checked inside its own write transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.kms.model import Key, KeyState
from sealbox.kms.multi_region import has_replicas
from sealbox.kms.service import KmsService
from sealbox.storage import kms_repo
from sealbox.storage.db import Database

SystemCall = Callable[[str, str, str], Call]  # (account, region, event name) → Call
KeyIds = tuple[str, str, str]


class KeyScheduler:
    def __init__(self, kms: KmsService, db: Database, clock: Clock) -> None:
        self._kms = kms
        self._db = db
        self._clock = clock

    def run_due_work(self, system_call: SystemCall) -> tuple[int, int]:
        """Returns (keys deleted, keys rotated)."""
        now = self._clock.now()
        with self._db.read() as conn:
            due_delete = kms_repo.keys_due_for_deletion(conn, now)
            due_rotate = kms_repo.keys_due_for_rotation(conn, now)
        deleted = sum(self._destroy_if_due(ids, now, system_call) for ids in due_delete)
        rotated = sum(self._rotate_if_due(ids, now, system_call) for ids in due_rotate)
        self._kms.importing.expire_due(system_call)
        self._start_primary_windows(now)
        return deleted, rotated

    def _start_primary_windows(self, now: datetime) -> None:
        """A primary waiting in PendingReplicaDeletion starts its window once its
        replicas are gone."""
        with self._db.read() as conn:
            waiting = kms_repo.keys_pending_replica_deletion(conn)
        for key in waiting:

            def work(conn: Connection, key: Key = key) -> None:
                current = kms_repo.get_key(conn, key.account_id, key.region, key.key_id)
                if current is None or current.key_state is not KeyState.PENDING_REPLICA_DELETION:
                    return
                if has_replicas(conn, current):
                    return
                current.key_state = KeyState.PENDING_DELETION
                current.deletion_date = now + timedelta(days=current.pending_window_days or 30)
                kms_repo.update_key(conn, current)

            self._db.write(work)

    def _destroy_if_due(self, ids: KeyIds, now: datetime, system_call: SystemCall) -> bool:
        account, region, key_id = ids

        def work(conn: Connection) -> bool:
            key = kms_repo.get_key(conn, account, region, key_id)
            if (
                key is None
                or key.key_state is not KeyState.PENDING_DELETION
                or key.deletion_date is None
                or key.deletion_date > now
            ):
                return False
            kms_repo.delete_key(conn, account, region, key_id, now)
            call = system_call(account, region, "DeleteKey")
            call.resources.append(key.arn)
            self._kms.record(conn, call)
            self._kms.keyring.forget(key)
            return True

        return self._db.write(work)

    def _rotate_if_due(self, ids: KeyIds, now: datetime, system_call: SystemCall) -> bool:
        account, region, key_id = ids

        def work(conn: Connection) -> bool:
            key = kms_repo.get_key(conn, account, region, key_id)
            if (
                key is None
                or not key.rotation_enabled
                or key.key_state is not KeyState.ENABLED
                or key.next_rotation_date is None
                or key.next_rotation_date > now
                or key.rotation_period_days is None
                or (key.multi_region and key.primary_region != key.region)  # primary rotates
            ):
                return False
            self._kms.add_version(conn, key, "AUTOMATIC")
            key.next_rotation_date = now + timedelta(days=key.rotation_period_days)
            kms_repo.update_key(conn, key)
            self._kms._sync_rotation(conn, key)
            call = system_call(account, region, "RotateKey")
            call.resources.append(key.arn)
            self._kms.record(conn, call)
            return True

        return self._db.write(work)
