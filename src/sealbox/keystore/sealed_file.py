"""Default root of trust: a 256-bit root key in `<data-dir>/root-key.json`.

With a passphrase (SEALBOX_MASTER_PASSPHRASE) the file holds the root key sealed
under scrypt(passphrase); without one it holds the key itself, mode 0600, and the
server warns at start. File format (JSON)::

    {"format": "sealbox-root-key", "version": 1, "protection": "scrypt" | "none",
     "kdf": {"salt": b64, "n": int, "r": int, "p": int},   # scrypt only
     "sealed": b64,                                       # scrypt only
     "key": b64}                                          # none only
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

from sealbox import crypto
from sealbox.crypto import kdf
from sealbox.keystore.base import KeyStoreError

log = logging.getLogger(__name__)

FILE_NAME = "root-key.json"
_FORMAT = "sealbox-root-key"
_ROOT_AAD = b"sealbox/root-key/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SealedFileKeyStore:
    def __init__(self, root_key: bytes, protected: bool) -> None:
        self._root_key = root_key
        self.protected = protected

    def __repr__(self) -> str:
        return f"SealedFileKeyStore(protected={self.protected})"

    @classmethod
    def open_or_create(cls, data_dir: Path, passphrase: str | None) -> SealedFileKeyStore:
        path = data_dir / FILE_NAME
        if not path.exists():
            return cls._create(path, passphrase)
        return cls._open(path, passphrase)

    @classmethod
    def _create(cls, path: Path, passphrase: str | None) -> SealedFileKeyStore:
        root_key = crypto.new_key_material()
        doc: dict[str, Any] = {"format": _FORMAT, "version": 1}
        if passphrase:
            salt = crypto.random_bytes(16)
            n, r, p = kdf.SCRYPT_N, kdf.SCRYPT_R, kdf.SCRYPT_P
            wrapping = kdf.derive_from_passphrase(passphrase, salt, n, r, p)
            doc["protection"] = "scrypt"
            doc["kdf"] = {"salt": _b64(salt), "n": n, "r": r, "p": p}
            doc["sealed"] = _b64(crypto.seal(wrapping, root_key, _ROOT_AAD))
        else:
            doc["protection"] = "none"
            doc["key"] = _b64(root_key)
        _write_private(path, json.dumps(doc, indent=2) + "\n")
        return cls(root_key, protected=bool(passphrase))

    @classmethod
    def _open(cls, path: Path, passphrase: str | None) -> SealedFileKeyStore:
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != _FORMAT or doc.get("version") != 1:
                raise KeyStoreError(f"{path} is not a Sealbox root key file")
            if doc["protection"] == "none":
                if passphrase:
                    raise KeyStoreError(
                        f"{path} is not passphrase-protected but SEALBOX_MASTER_PASSPHRASE is "
                        "set; run `sealbox keystore protect` to seal it"
                    )
                return cls(base64.b64decode(doc["key"]), protected=False)
            if not passphrase:
                raise KeyStoreError(
                    f"{path} is sealed with a passphrase: set SEALBOX_MASTER_PASSPHRASE"
                )
            params = doc["kdf"]
            wrapping = kdf.derive_from_passphrase(
                passphrase, base64.b64decode(params["salt"]), params["n"], params["r"], params["p"]
            )
            try:
                root_key = crypto.open_(wrapping, base64.b64decode(doc["sealed"]), _ROOT_AAD)
            except crypto.InvalidCiphertext:
                raise KeyStoreError("wrong SEALBOX_MASTER_PASSPHRASE for the root key") from None
            return cls(root_key, protected=True)
        except (KeyError, ValueError, TypeError) as exc:
            raise KeyStoreError(f"{path} is damaged: {exc.__class__.__name__}") from None

    def wrap(self, secret: bytes, label: str) -> bytes:
        return crypto.seal(self._root_key, secret, label.encode("utf-8"))

    def unwrap(self, wrapped: bytes, label: str) -> bytes:
        return crypto.open_(self._root_key, wrapped, label.encode("utf-8"))

    def describe(self) -> str:
        return "sealed file (passphrase)" if self.protected else "sealed file (UNPROTECTED)"
