"""S3 digests: known vectors, agreement with botocore, multipart forms, CRC combination."""

from __future__ import annotations

import base64
import hashlib
import itertools
import zlib

import pytest
from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.crypto import checksums

CHECK = b"123456789"

# CRC check values ("check" in the CRC catalogue: the CRC of b"123456789").
# CRC64NVME is CRC-64/NVME (NVMe Base Specification; Rocksoft), the value AWS documents.
CHECK_VALUES = {
    "CRC32": (0xCBF43926, 4),
    "CRC32C": (0xE3069283, 4),
    "CRC64NVME": (0xAE8B14860A799888, 8),
}


def digest_of(algorithm: str, data: bytes) -> bytes:
    d = checksums.new(algorithm)
    d.update(data)
    return d.digest()


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_crc_check_values(algorithm: str) -> None:
    value, width = CHECK_VALUES[algorithm]
    assert digest_of(algorithm, CHECK) == value.to_bytes(width, "big")
    assert digest_of(algorithm, b"") == bytes(width)


def test_hash_vectors() -> None:
    assert digest_of("MD5", b"").hex() == "d41d8cd98f00b204e9800998ecf8427e"
    assert digest_of("SHA1", b"abc").hex() == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert digest_of("SHA256", b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_b64_and_the_content_md5_of_empty() -> None:
    assert checksums.b64(digest_of("MD5", b"")) == "1B2M2Y8AsgTpgAmY7PhCfg=="
    assert checksums.b64(digest_of("CRC32", b"")) == "AAAAAA=="


BOTOCORE = {
    "CRC32": httpchecksum.Crc32Checksum,
    "CRC32C": httpchecksum.CrtCrc32cChecksum,
    "CRC64NVME": httpchecksum.CrtCrc64NvmeChecksum,
    "SHA1": httpchecksum.Sha1Checksum,
    "SHA256": httpchecksum.Sha256Checksum,
}


def test_every_algorithm_has_a_botocore_counterpart() -> None:
    assert set(BOTOCORE) == set(checksums.ALGORITHMS)


@settings(max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(checksums.ALGORITHMS),
    chunks=st.lists(st.binary(max_size=300), max_size=5),
)
def test_base64_matches_what_botocore_sends(algorithm: str, chunks: list[bytes]) -> None:
    ours = checksums.new(algorithm)
    theirs = BOTOCORE[algorithm]()
    for i, chunk in enumerate(chunks):
        ours.update(memoryview(chunk) if i % 2 else chunk)
        theirs.update(chunk)
    assert checksums.b64(ours.digest()) == theirs.b64digest()


@pytest.mark.parametrize("algorithm", ["md5", "CRC64", "SHA512", "XXHASH64", ""])
def test_unknown_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(ValueError):
        checksums.new(algorithm)


def test_etags() -> None:
    md5 = hashlib.md5(b"hello", usedforsecurity=False).digest()
    assert checksums.etag(md5) == '"5d41402abc4b2a76b9719d911017c592"'
    parts = [hashlib.md5(p, usedforsecurity=False).digest() for p in (b"a", b"b")]
    whole = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
    assert checksums.multipart_etag(parts) == f'"{whole}-2"'
    with pytest.raises(ValueError):
        checksums.multipart_etag([])


@pytest.mark.parametrize("algorithm", checksums.ALGORITHMS)
def test_composite_format(algorithm: str) -> None:
    parts = [digest_of(algorithm, p) for p in (b"part one", b"part two", b"3")]
    expected = base64.b64encode(digest_of(algorithm, b"".join(parts))).decode()
    assert checksums.composite(algorithm, parts) == f"{expected}-3"


def test_composite_known_crc32() -> None:
    # Two parts: the CRC32 of their concatenated 4-byte CRC32s, then "-2".
    parts = [zlib.crc32(b"a").to_bytes(4, "big"), zlib.crc32(b"b").to_bytes(4, "big")]
    value = zlib.crc32(b"".join(parts)).to_bytes(4, "big")
    assert checksums.composite("CRC32", parts) == base64.b64encode(value).decode() + "-2"
    with pytest.raises(ValueError):
        checksums.composite("MD5", parts)
    with pytest.raises(ValueError):
        checksums.composite("CRC32", [])


@settings(max_examples=100, deadline=None)
@given(
    algorithm=st.sampled_from(checksums.CRC_ALGORITHMS),
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
)
def test_combine_crc_equals_crc_of_concatenation(
    algorithm: str, data: bytes, cuts: list[int]
) -> None:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    parts = [(digest_of(algorithm, p), len(p)) for p in pieces]
    assert checksums.combine_crc(algorithm, parts) == digest_of(algorithm, data)


def test_combine_crc_large_parts() -> None:
    parts_data = [bytes(range(256)) * 20_000, b"tail", b"x" * 5_000_000]
    for algorithm in checksums.CRC_ALGORITHMS:
        parts = [(digest_of(algorithm, p), len(p)) for p in parts_data]
        assert checksums.combine_crc(algorithm, parts) == digest_of(algorithm, b"".join(parts_data))


def test_combine_crc_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        checksums.combine_crc("SHA256", [(bytes(32), 1)])
    with pytest.raises(ValueError):
        checksums.combine_crc("CRC32", [])
    with pytest.raises(ValueError):
        checksums.combine_crc("CRC64NVME", [(bytes(4), 1)])
    with pytest.raises(ValueError):
        checksums.combine_crc("CRC32", [(bytes(4), -1)])
