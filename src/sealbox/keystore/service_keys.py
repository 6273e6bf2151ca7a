"""Service-owned keys, one per account (SSE-S3, unencrypted-by-name EBS volumes).

Made on first use, stored only wrapped by the root key (the label binds service and
account), and kept unwrapped in memory once opened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from sealbox import crypto
from sealbox.clock import Clock
from sealbox.keystore.base import KeyStore
from sealbox.storage.db import Database

Load = Callable[[Connection, str], bytes | None]  # (conn, account) → wrapped key
Store = Callable[[Connection, str, bytes, datetime], None]  # (conn, account, wrapped, now)


class ServiceKeys:
    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        clock: Clock,
        label_prefix: str,
        load: Load,
        store: Store,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._label_prefix = label_prefix
        self._load = load
        self._store = store
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def key(self, account_id: str) -> bytes:
        key = self._keys.get(account_id)
        if key is not None:
            return key
        label = f"{self._label_prefix}/{account_id}"

        def work(conn: Connection) -> bytes:
            wrapped = self._load(conn, account_id)
            if wrapped is None:
                wrapped = self._keystore.wrap(crypto.new_key_material(), label)
                self._store(conn, account_id, wrapped, self._clock.now())
            return wrapped

        key = self._keystore.unwrap(self._db.write(work), label)
        with self._lock:
            self._keys[account_id] = key
        return key
