"""The sealed-file root of trust."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sealbox import crypto
from sealbox.crypto import kdf
from sealbox.keystore.base import KeyStoreError
from sealbox.keystore.sealed_file import FILE_NAME, SealedFileKeyStore


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kdf, "SCRYPT_N", 2**10)


def test_unprotected_root_key_is_private_and_reopens(tmp_path: Path) -> None:
    ks = SealedFileKeyStore.open_or_create(tmp_path, None)
    wrapped = ks.wrap(b"material", "label")
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SealedFileKeyStore.open_or_create(tmp_path, None)
    assert again.unwrap(wrapped, "label") == b"material"
    with pytest.raises(crypto.InvalidCiphertext):
        again.unwrap(wrapped, "other label")


def test_passphrase_seals_the_root_key(tmp_path: Path) -> None:
    ks = SealedFileKeyStore.open_or_create(tmp_path, "correct horse")
    wrapped = ks.wrap(b"material", "label")
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert doc["protection"] == "scrypt" and "key" not in doc
    assert SealedFileKeyStore.open_or_create(tmp_path, "correct horse").unwrap(
        wrapped, "label"
    ) == (b"material")
    with pytest.raises(KeyStoreError, match="wrong SEALBOX_MASTER_PASSPHRASE"):
        SealedFileKeyStore.open_or_create(tmp_path, "wrong")
    with pytest.raises(KeyStoreError, match="set SEALBOX_MASTER_PASSPHRASE"):
        SealedFileKeyStore.open_or_create(tmp_path, None)


def test_damaged_file_is_reported_not_crashed(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"format": "sealbox-root-key", "version": 1}')
    with pytest.raises(KeyStoreError, match="damaged"):
        SealedFileKeyStore.open_or_create(tmp_path, None)
    (tmp_path / FILE_NAME).write_text("not json")
    with pytest.raises(KeyStoreError):
        SealedFileKeyStore.open_or_create(tmp_path, None)
