"""AES-256-XTS per 4 KiB data unit (sealbox.crypto.xts): round trips, tweaks, the
unwritten-unit convention, the unauthenticated nature of XTS, and the null cipher."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sealbox.crypto import xts
from sealbox.crypto.xts import UNIT_SIZE, XtsCipher, derive_key

KEY = derive_key(bytes(range(32)), b"vol-0123456789abcdef0")


def test_round_trip_of_many_units() -> None:
    cipher = XtsCipher(KEY)
    data = os.urandom(UNIT_SIZE * 9)
    sealed = cipher.encrypt(1000, data)
    assert len(sealed) == len(data)
    assert sealed != data
    assert cipher.decrypt(1000, sealed) == data


def test_each_unit_is_xts_with_its_number_as_little_endian_tweak() -> None:
    """Byte-for-byte what the public cryptography API gives for unit n with tweak n."""
    cipher = XtsCipher(KEY)
    data = os.urandom(UNIT_SIZE * 3)
    first = 2**33 + 17
    sealed = cipher.encrypt(first, data)
    for i in range(3):
        tweak = (first + i).to_bytes(16, "little")
        want = (
            Cipher(algorithms.AES(KEY), modes.XTS(tweak))
            .encryptor()
            .update(data[i * UNIT_SIZE : (i + 1) * UNIT_SIZE])
        )
        assert sealed[i * UNIT_SIZE : (i + 1) * UNIT_SIZE] == want


def test_fast_path_is_in_use() -> None:
    assert xts.fast_path_active()


def test_same_plaintext_in_different_units_differs() -> None:
    cipher = XtsCipher(KEY)
    unit = os.urandom(UNIT_SIZE)
    sealed = cipher.encrypt(0, unit + unit)
    assert sealed[:UNIT_SIZE] != sealed[UNIT_SIZE:]


def test_unit_numbers_matter_when_decrypting() -> None:
    cipher = XtsCipher(KEY)
    data = os.urandom(UNIT_SIZE)
    assert cipher.decrypt(6, cipher.encrypt(5, data)) != data


def test_all_zero_ciphertext_reads_as_unwritten_zeros() -> None:
    cipher = XtsCipher(KEY)
    data = os.urandom(UNIT_SIZE)
    sealed = bytes(UNIT_SIZE) + cipher.encrypt(1, data)
    assert cipher.decrypt(0, sealed) == bytes(UNIT_SIZE) + data
    # Without the convention the zero unit is decrypted like any other.
    assert cipher.decrypt(0, bytes(UNIT_SIZE), zero_is_unwritten=False) != bytes(UNIT_SIZE)


def test_zero_plaintext_is_not_stored_as_zeros() -> None:
    cipher = XtsCipher(KEY)
    assert cipher.encrypt(3, bytes(UNIT_SIZE)) != bytes(UNIT_SIZE)


def test_tampering_is_not_detected_but_garbles_only_its_16_byte_block() -> None:
    """XTS is not authenticated: a flipped bit gives different plaintext, no error."""
    cipher = XtsCipher(KEY)
    data = os.urandom(UNIT_SIZE)
    sealed = bytearray(cipher.encrypt(0, data))
    sealed[100] ^= 0x01
    opened = cipher.decrypt(0, bytes(sealed))
    assert opened != data
    block = 100 // 16
    assert opened[: block * 16] == data[: block * 16]
    assert opened[(block + 1) * 16 :] == data[(block + 1) * 16 :]
    assert opened[block * 16 : (block + 1) * 16] != data[block * 16 : (block + 1) * 16]


def test_another_key_does_not_decrypt() -> None:
    data = os.urandom(UNIT_SIZE)
    sealed = XtsCipher(KEY).encrypt(0, data)
    other = derive_key(bytes(range(32)), b"vol-ffffffffffffffff0")
    assert XtsCipher(other).decrypt(0, sealed) != data


def test_null_cipher_copies_bytes_through() -> None:
    cipher = XtsCipher(KEY, null_cipher=True)
    data = os.urandom(UNIT_SIZE * 2)
    assert cipher.encrypt(0, data) == data
    assert cipher.decrypt(0, data) == data


def test_derived_keys_depend_on_data_key_and_identity() -> None:
    a = derive_key(b"a" * 32, b"vol-1")
    assert len(a) == 64
    assert a != derive_key(b"a" * 32, b"vol-2")
    assert a != derive_key(b"b" * 32, b"vol-1")
    assert a == derive_key(b"a" * 32, b"vol-1")
    with pytest.raises(ValueError):
        derive_key(b"short", b"vol-1")


@pytest.mark.parametrize("bad", [b"", bytes(32), bytes(63), b"k" * 64])
def test_bad_keys_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        XtsCipher(bad)  # wrong length, or two equal halves


def test_partial_units_and_negative_units_are_refused() -> None:
    cipher = XtsCipher(KEY)
    with pytest.raises(ValueError):
        cipher.encrypt(0, bytes(100))
    with pytest.raises(ValueError):
        cipher.decrypt(-1, bytes(UNIT_SIZE))
