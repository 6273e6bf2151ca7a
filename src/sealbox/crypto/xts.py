"""AES-256-XTS for live block volumes: one 4 KiB data unit per tweak, as disk encryption does.

A volume is a sequence of 4 KiB data units; unit ``n`` (byte offset ``n * 4096``) is
encrypted with AES-256-XTS under the volume's 64-byte XTS key with tweak = ``n`` as a
16-byte little-endian integer (dm-crypt's "plain64" convention). Ciphertext is exactly
as long as plaintext, so a unit lives at the same offset in the volume file.

XTS is *not* authenticated: it hides data, it does not detect tampering. A flipped
ciphertext bit decrypts its whole 16-byte block (and that block only, within the unit)
to unpredictable plaintext; nothing raises. That is the standard trade-off of
length-preserving disk encryption. Snapshots, which leave the live volume, are sealed
with an AEAD instead (see sealbox.ebs.blocks).

Unwritten units: an all-zero *ciphertext* unit is read back as an all-zero *plaintext*
unit (``zero_is_unwritten``). The volume store relies on this so a sparse volume file
(holes, or ranges trimmed by writing zeros) reads as zeros without a bitmap. The
probability that a real encryption is all zeros is 2**-32768. The leakage: which 4 KiB
units were never written (or were trimmed) is visible to someone holding the file, as
with dm-crypt when discards are passed down. Contents are not.

Keys: ``derive_key`` stretches a 32-byte data key (what KMS's GenerateDataKey gives) into
the 64-byte XTS key with HKDF-SHA256, bound to an identity (the volume id), so two
volumes that share a data key (a volume and its snapshots' lineage) never share an XTS
key.

Speed: XTS needs a new cipher context per unit (the tweak is part of the context). The
public ``Cipher`` wrapper costs ~11 µs per context; the Rust constructor that ``Cipher``
itself calls costs ~5 µs. The fast path uses the latter, but only after a self-test at
import shows it produces exactly what the public API produces; otherwise it falls back.

``null_cipher=True`` copies bytes through unencrypted: BENCHMARK ONLY, to measure what
encryption costs on the same code path. Never use it for stored data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

UNIT_SIZE = 4096
KEY_BYTES = 64
_ZERO_UNIT = bytes(UNIT_SIZE)
_INFO = b"sealbox/ebs/xts/v1|"
_TWEAKS = [n.to_bytes(16, "little") for n in range(4096)]  # the common small unit numbers

log = logging.getLogger(__name__)

_ContextFactory = Callable[[algorithms.AES, modes.XTS], CipherContext]


def _public_encryptor(algorithm: algorithms.AES, mode: modes.XTS) -> CipherContext:
    return Cipher(algorithm, mode).encryptor()


def _public_decryptor(algorithm: algorithms.AES, mode: modes.XTS) -> CipherContext:
    return Cipher(algorithm, mode).decryptor()


def _fast_factories() -> tuple[_ContextFactory, _ContextFactory]:
    """The Rust context constructors, if they behave exactly as the public API."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        enc: _ContextFactory = rust_openssl.ciphers.create_encryption_ctx
        dec: _ContextFactory = rust_openssl.ciphers.create_decryption_ctx
        key = bytes(range(32)) + bytes(range(100, 132))
        algorithm = algorithms.AES(key)
        sample = bytes((i * 7 + 3) & 0xFF for i in range(UNIT_SIZE))
        for unit in (0, 1, 2**40 + 5):
            tweak = unit.to_bytes(16, "little")
            want = _public_encryptor(algorithm, modes.XTS(tweak)).update(sample)
            got = enc(algorithm, modes.XTS(tweak)).update(sample)
            back = dec(algorithm, modes.XTS(tweak)).update(got)
            if got != want or back != sample:
                raise ValueError("fast XTS path disagrees with the public API")
        return enc, dec
    except Exception:  # any surprise: the public API is always right
        log.info("XTS fast path unavailable; using the public cipher API")
        return _public_encryptor, _public_decryptor


_ENCRYPTOR, _DECRYPTOR = _fast_factories()


def derive_key(data_key: bytes, identity: bytes) -> bytes:
    """The 64-byte XTS key of one volume from its data key (HKDF-SHA256)."""
    if len(data_key) < 32:
        raise ValueError("an XTS data key needs at least 32 bytes")
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_INFO + identity
    ).derive(data_key)


def _tweak(unit: int) -> bytes:
    return _TWEAKS[unit] if unit < 4096 else unit.to_bytes(16, "little")


class XtsCipher:
    """Encrypts and decrypts whole 4 KiB units of one volume. Thread-safe (stateless)."""

    __slots__ = ("_algorithm", "null_cipher")

    def __init__(self, key: bytes, *, null_cipher: bool = False) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256-XTS needs a 64-byte key")
        if key[:32] == key[32:]:
            raise ValueError("the two halves of an XTS key must differ")
        self._algorithm = algorithms.AES(key)
        self.null_cipher = null_cipher

    @staticmethod
    def _check(data: bytes | bytearray | memoryview, first_unit: int) -> None:
        if len(data) % UNIT_SIZE:
            raise ValueError("XTS data must be whole 4 KiB units")
        if first_unit < 0 or first_unit + len(data) // UNIT_SIZE > 2**64:
            raise ValueError("unit number out of range")

    def encrypt(self, first_unit: int, plaintext: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext of consecutive units starting at unit number first_unit."""
        self._check(plaintext, first_unit)
        if self.null_cipher:
            return bytes(plaintext)
        return self._run(_ENCRYPTOR, first_unit, memoryview(plaintext), skip_zero=False)

    def decrypt(
        self,
        first_unit: int,
        ciphertext: bytes | bytearray | memoryview,
        *,
        zero_is_unwritten: bool = True,
    ) -> bytes:
        """Plaintext of consecutive units; an all-zero ciphertext unit reads as zeros."""
        self._check(ciphertext, first_unit)
        if self.null_cipher:
            return bytes(ciphertext)
        return self._run(_DECRYPTOR, first_unit, memoryview(ciphertext), zero_is_unwritten)

    def _run(
        self, make: _ContextFactory, first_unit: int, data: memoryview, skip_zero: bool
    ) -> bytes:
        # Each unit is processed straight into one preallocated buffer (update_into needs
        # 15 bytes of slack after the unit: the next unit overwrites them, and the buffer
        # has 15 spare bytes at the end). Unwritten units are left as the buffer's zeros.
        n = len(data)
        out = bytearray(n + 15)
        view = memoryview(out)
        algorithm, xts, zero = self._algorithm, modes.XTS, _ZERO_UNIT
        try:
            for i, pos in enumerate(range(0, n, UNIT_SIZE)):
                unit = data[pos : pos + UNIT_SIZE]
                # Cheap test first: real ciphertext almost never starts and ends with 0.
                if skip_zero and unit[0] == 0 and unit[UNIT_SIZE - 1] == 0 and bytes(unit) == zero:
                    continue
                make(algorithm, xts(_tweak(first_unit + i))).update_into(
                    unit, view[pos : pos + UNIT_SIZE + 15]
                )
        finally:
            view.release()
        del out[n:]
        return bytes(out)


def fast_path_active() -> bool:
    """Whether the self-tested fast context constructor is in use (for diagnostics)."""
    return _ENCRYPTOR is not _public_encryptor
