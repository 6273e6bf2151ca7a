"""The crypto recipes and the KMS ciphertext blob format."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbox import crypto
from sealbox.crypto import aead, blob
from sealbox.crypto.context import canonical_context

KEY = bytes(range(32))


def test_seal_open_round_trip_and_fresh_randomness() -> None:
    a = crypto.seal(KEY, b"secret", b"aad")
    b = crypto.seal(KEY, b"secret", b"aad")
    assert a != b  # fresh salt and nonce each time
    assert len(a) == len(b"secret") + aead.OVERHEAD
    assert crypto.open_(KEY, a, b"aad") == b"secret"


@pytest.mark.parametrize("position", [0, 15, 16, 27, 28, -17, -1])
def test_any_flipped_byte_fails_as_invalid_ciphertext(position: int) -> None:
    sealed = bytearray(crypto.seal(KEY, b"secret message", b"aad"))
    sealed[position] ^= 0x01
    with pytest.raises(crypto.InvalidCiphertext):
        crypto.open_(KEY, bytes(sealed), b"aad")


def test_wrong_key_aad_or_truncation_fail_alike() -> None:
    sealed = crypto.seal(KEY, b"secret", b"aad")
    for key, data, aad in [
        (bytes(32), sealed, b"aad"),
        (KEY, sealed, b"other"),
        (KEY, sealed[:-1], b"aad"),
        (KEY, sealed[: aead.OVERHEAD - 1], b"aad"),
        (KEY[:16], sealed, b"aad"),
    ]:
        with pytest.raises(crypto.InvalidCiphertext) as info:
            crypto.open_(key, data, aad)
        assert str(info.value) == "ciphertext could not be authenticated"


def test_seal_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        crypto.seal(KEY[:16], b"x", b"")


def test_canonical_context_known_answer() -> None:
    # Sorted by key bytes, each item length-prefixed (u16 big-endian).
    assert canonical_context({"b": "2", "a": "1"}) == (
        b"\x00\x02" + b"\x00\x01a\x00\x011" + b"\x00\x01b\x00\x012"
    )
    assert canonical_context(None) == canonical_context({}) == b"\x00\x00"


def test_canonical_context_has_no_ambiguity() -> None:
    assert canonical_context({"ab": "c"}) != canonical_context({"a": "bc"})
    assert canonical_context({"a": ""}) != canonical_context({})


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5))
def test_canonical_context_is_independent_of_insertion_order(ctx: dict[str, str]) -> None:
    reversed_ctx = dict(reversed(list(ctx.items())))
    assert canonical_context(ctx) == canonical_context(reversed_ctx)


def test_blob_header_layout() -> None:
    header = blob.BlobHeader("1234abcd-12ab-34cd-56ef-1234567890ab", 7)
    encoded = header.encode()
    assert encoded[:3] == b"SB\x01"
    assert encoded[3] == 36
    assert encoded[4:40] == b"1234abcd-12ab-34cd-56ef-1234567890ab"
    assert encoded[40:44] == b"\x00\x00\x00\x07"


def test_blob_round_trip_names_key_and_version() -> None:
    header = blob.BlobHeader("mrk-" + "a" * 32, 3)
    sealed = blob.seal_blob(KEY, header, b"data key", {"purpose": "test"})
    parsed, offset = blob.read_header(sealed)
    assert parsed == header
    assert offset == len(header.encode())
    assert blob.open_blob(KEY, sealed, {"purpose": "test"}) == b"data key"


def test_blob_binds_context_key_id_and_version() -> None:
    header = blob.BlobHeader("k1", 1)
    sealed = blob.seal_blob(KEY, header, b"pt", {"a": "b"})
    with pytest.raises(crypto.InvalidCiphertext):
        blob.open_blob(KEY, sealed, {"a": "c"})
    with pytest.raises(crypto.InvalidCiphertext):
        blob.open_blob(KEY, sealed, None)
    # Re-labelling the blob as another key or version breaks authentication.
    relabelled = blob.BlobHeader("k2", 1).encode() + sealed[len(header.encode()) :]
    with pytest.raises(crypto.InvalidCiphertext):
        blob.open_blob(KEY, relabelled, {"a": "b"})
    bumped = blob.BlobHeader("k1", 2).encode() + sealed[len(header.encode()) :]
    with pytest.raises(crypto.InvalidCiphertext):
        blob.open_blob(KEY, bumped, {"a": "b"})


@pytest.mark.parametrize(
    "data", [b"", b"SB", b"XX\x01\x02k1", b"SB\x02\x02k1" + bytes(60), b"SB\x01\x00" + bytes(60)]
)
def test_malformed_blobs_are_invalid_ciphertext(data: bytes) -> None:
    with pytest.raises(crypto.InvalidCiphertext):
        blob.read_header(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_invalid_ciphertext(data: bytes) -> None:
    with contextlib.suppress(crypto.InvalidCiphertext):
        blob.open_blob(KEY, data, None)
