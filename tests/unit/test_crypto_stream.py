"""The segmented AEAD stream for object data: round trips, ranges and tamper detection."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.crypto import InvalidCiphertext
from sealbox.crypto.stream import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    SegmentSpan,
    StreamCorrupt,
    StreamOpener,
    StreamSealer,
    ciphertext_size,
    segment_count,
    span,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
IDENTITY = b"bucket\x00key\x00v1"
SEG = 16


def plaintext_of(n: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(n))


def seal(
    data: bytes, seg: int = SEG, identity: bytes = IDENTITY, chunk: int | None = None
) -> bytes:
    sealer = StreamSealer(KEY, identity, seg)
    parts = [sealer.header]
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        parts.append(sealer.update(data[i : i + step]))
    parts.append(sealer.finish())
    assert sealer.plaintext_size == len(data)
    return b"".join(parts)


def open_all(stream: bytes, size: int, identity: bytes = IDENTITY, key: bytes = KEY) -> bytes:
    opener = StreamOpener(key, identity, stream[:HEADER_SIZE], size)
    return opener.open_segments(0, stream[HEADER_SIZE:])


def segments(stream: bytes, seg: int = SEG) -> list[bytes]:
    body = stream[HEADER_SIZE:]
    full = seg + TAG_SIZE
    return [body[i : i + full] for i in range(0, len(body), full)]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 5 * SEG + 3, 7 * SEG])
def test_round_trip_sizes(size: int) -> None:
    data = plaintext_of(size)
    stream = seal(data)
    assert len(stream) == ciphertext_size(size, SEG)
    assert len(segments(stream)) == segment_count(size, SEG)
    assert open_all(stream, size) == data


def test_empty_stream_is_one_empty_final_segment() -> None:
    stream = seal(b"")
    assert segment_count(0, SEG) == 1
    assert len(stream) == HEADER_SIZE + TAG_SIZE == ciphertext_size(0, SEG)
    assert open_all(stream, 0) == b""


def test_header_layout_and_fresh_salt() -> None:
    a = StreamSealer(KEY, IDENTITY)
    b = StreamSealer(KEY, IDENTITY)
    assert len(a.header) == HEADER_SIZE == 24
    assert a.header[:4] == b"SBS\x01"
    assert int.from_bytes(a.header[4:8], "big") == DEFAULT_SEGMENT_SIZE == a.segment_size
    assert a.header[8:] != b.header[8:]
    assert a.update(b"same") + a.finish() != b.update(b"same") + b.finish()


@pytest.mark.parametrize("chunk", [1, 3, SEG - 1, SEG, SEG + 1, 3 * SEG + 5])
def test_chunking_does_not_change_the_segments(chunk: int) -> None:
    data = plaintext_of(9 * SEG + 4)
    stream = seal(data, chunk=chunk)
    assert len(stream) == ciphertext_size(len(data), SEG)
    assert open_all(stream, len(data)) == data


def test_update_returns_only_completed_segments_and_holds_back_a_full_last_one() -> None:
    sealer = StreamSealer(KEY, IDENTITY, SEG)
    assert sealer.update(plaintext_of(SEG)) == b""  # might be the last segment
    assert len(sealer.update(b"x")) == SEG + TAG_SIZE
    assert len(sealer.update(memoryview(plaintext_of(2 * SEG)))) == 2 * (SEG + TAG_SIZE)
    assert len(sealer.finish()) == 1 + TAG_SIZE
    assert sealer.plaintext_size == 3 * SEG + 1
    with pytest.raises(ValueError):
        sealer.update(b"more")
    with pytest.raises(ValueError):
        sealer.finish()


def test_sealer_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        StreamSealer(KEY[:16], IDENTITY)
    with pytest.raises(ValueError):
        StreamSealer(KEY, IDENTITY, 0)
    with pytest.raises(ValueError):
        StreamSealer(KEY, IDENTITY, 1 << 30)


def test_span_arithmetic() -> None:
    # 5 full segments and a 3-byte last one.
    size = 5 * SEG + 3
    full = SEG + TAG_SIZE
    assert span(size, SEG, 0, 0) == SegmentSpan(0, 0, HEADER_SIZE, full, 0)
    assert span(size, SEG, SEG + 2, 3 * SEG) == SegmentSpan(1, 3, HEADER_SIZE + full, 3 * full, 2)
    assert span(size, SEG, size - 1, size - 1) == SegmentSpan(
        5, 5, HEADER_SIZE + 5 * full, 3 + TAG_SIZE, 2
    )
    whole = span(size, SEG, 0, size - 1)
    assert whole.file_offset + whole.file_length == ciphertext_size(size, SEG)
    for start, end in [(-1, 0), (3, 2), (0, size)]:
        with pytest.raises(ValueError):
            span(size, SEG, start, end)


def range_read(stream: bytes, size: int, start: int, end: int, batch: int) -> tuple[bytes, int]:
    opener = StreamOpener(KEY, IDENTITY, stream[:HEADER_SIZE], size)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return stream[offset : offset + length]

    out = b"".join(opener.plaintext(read_at, start, end, batch_bytes=batch))
    s = span(size, SEG, start, end)
    assert reads[0][0] == s.file_offset
    assert sum(n for _, n in reads) == s.file_length  # only the touched segments
    return out, len(reads)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 12 * SEG),
    chunk=st.integers(1, 4 * SEG),
    batch=st.integers(1, 5 * SEG),
    data=st.data(),
)
def test_range_reads_equal_slices(size: int, chunk: int, batch: int, data: st.DataObject) -> None:
    plain = plaintext_of(size)
    stream = seal(plain, chunk=chunk)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    out, _ = range_read(stream, size, start, end, batch)
    assert out == plain[start : end + 1]


def test_range_read_batches() -> None:
    size = 20 * SEG
    stream = seal(plaintext_of(size))
    out, calls = range_read(stream, size, 0, size - 1, batch=4 * SEG)
    assert out == plaintext_of(size)
    assert calls == 5


def test_open_segments_in_the_middle() -> None:
    size = 6 * SEG + 5
    plain = plaintext_of(size)
    stream = seal(plain)
    opener = StreamOpener(KEY, IDENTITY, stream[:HEADER_SIZE], size)
    segs = segments(stream)
    assert opener.segment_size == SEG
    assert opener.open_segments(2, b"".join(segs[2:4])) == plain[2 * SEG : 4 * SEG]
    assert opener.open_segments(5, memoryview(b"".join(segs[5:]))) == plain[5 * SEG :]


# --- detection: every failure is the one error -----------------------------------------


def assert_corrupt(fn: Callable[[], object]) -> None:
    with pytest.raises(StreamCorrupt) as info:
        fn()
    assert isinstance(info.value, InvalidCiphertext)
    assert str(info.value) == "ciphertext could not be authenticated"


SIZE = 4 * SEG + 5  # segments: 4 full + one 5-byte last
STREAM = seal(plaintext_of(SIZE))


@pytest.mark.parametrize("position", range(HEADER_SIZE, len(STREAM), 7))
def test_flipped_byte_in_any_segment(position: int) -> None:
    bad = bytearray(STREAM)
    bad[position] ^= 0x01
    assert_corrupt(lambda: open_all(bytes(bad), SIZE))


@pytest.mark.parametrize("position", range(HEADER_SIZE))
def test_header_tampering(position: int) -> None:
    bad = bytearray(STREAM)
    bad[position] ^= 0x01
    assert_corrupt(lambda: open_all(bytes(bad), SIZE))


# Ids, not the random bytes, name the cases: xdist workers must collect the same tests.
@pytest.mark.parametrize("make", [lambda: b"", lambda: STREAM[: HEADER_SIZE - 1],
                                  lambda: STREAM[:HEADER_SIZE] + b"x"],
                         ids=["empty", "short", "long"])  # fmt: skip
def test_malformed_header(make: Callable[[], bytes]) -> None:
    header = make()
    assert_corrupt(lambda: StreamOpener(KEY, IDENTITY, header, SIZE))


@pytest.mark.parametrize("segment_size", [0, 15, (16 << 20) + 1, 0xFFFFFFFF])
def test_insane_segment_size(segment_size: int) -> None:
    header = STREAM[:4] + segment_size.to_bytes(4, "big") + STREAM[8:HEADER_SIZE]
    assert_corrupt(lambda: StreamOpener(KEY, IDENTITY, header, SIZE))


@pytest.mark.parametrize("cut", [1, TAG_SIZE, 5 + TAG_SIZE, 5 + TAG_SIZE + 1, 3 * (SEG + TAG_SIZE)])
def test_truncation_with_the_true_size(cut: int) -> None:
    truncated = STREAM[:-cut]
    opener = StreamOpener(KEY, IDENTITY, truncated[:HEADER_SIZE], SIZE)
    # The read path: read_at comes back short.
    assert_corrupt(lambda: list(opener.plaintext(lambda o, n: truncated[o : o + n], 0, SIZE - 1)))
    body = len(truncated) - HEADER_SIZE
    if body % (SEG + TAG_SIZE):
        # Cut mid-segment: the piece no longer ends on a segment boundary.
        assert_corrupt(lambda: open_all(truncated, SIZE))
    else:
        # Cut at a boundary, open_segments sees a valid run of leading segments (what
        # a ranged read asks for); completeness is checked by the read path above.
        kept = body // (SEG + TAG_SIZE)
        assert open_all(truncated, SIZE) == plaintext_of(SIZE)[: kept * SEG]


@pytest.mark.parametrize("kept", [1, 2, 3, 4])
def test_dropped_final_segments_with_a_matching_size(kept: int) -> None:
    # The stream now ends at a full segment that was sealed as not-last, and the
    # claimed size agrees with its length: the last flag catches it.
    truncated = STREAM[: HEADER_SIZE + kept * (SEG + TAG_SIZE)]
    assert_corrupt(lambda: open_all(truncated, kept * SEG))


def test_partial_truncation_with_a_matching_size() -> None:
    assert_corrupt(lambda: open_all(STREAM[:-2], SIZE - 2))
    assert_corrupt(lambda: open_all(STREAM[: HEADER_SIZE + SEG + 3 + TAG_SIZE], SEG + 3))


def test_extension_and_overlong_pieces() -> None:
    assert_corrupt(lambda: open_all(STREAM + b"\x00" * TAG_SIZE, SIZE))
    opener = StreamOpener(KEY, IDENTITY, STREAM[:HEADER_SIZE], SIZE)
    segs = segments(STREAM)
    assert_corrupt(lambda: opener.open_segments(0, b""))
    assert_corrupt(lambda: opener.open_segments(5, segs[4]))
    assert_corrupt(lambda: opener.open_segments(-1, segs[0]))
    assert_corrupt(lambda: opener.open_segments(0, segs[0] + segs[1][:-1]))
    assert_corrupt(lambda: opener.open_segments(4, segs[4] + b"x"))


def test_short_read_in_range_read() -> None:
    opener = StreamOpener(KEY, IDENTITY, STREAM[:HEADER_SIZE], SIZE)
    assert_corrupt(lambda: list(opener.plaintext(lambda o, n: STREAM[o : o + n - 1], 0, SIZE - 1)))


def test_reordered_segments() -> None:
    segs = segments(STREAM)
    swapped = STREAM[:HEADER_SIZE] + segs[1] + segs[0] + b"".join(segs[2:])
    assert_corrupt(lambda: open_all(swapped, SIZE))
    opener = StreamOpener(KEY, IDENTITY, STREAM[:HEADER_SIZE], SIZE)
    assert_corrupt(lambda: opener.open_segments(1, segs[2]))


def test_segment_from_another_stream_same_key() -> None:
    plain = plaintext_of(SIZE)
    for other in [seal(plain, identity=b"bucket\x00other\x00v1"), seal(plain)]:
        # Other identity, or same identity but another salt: neither mixes in.
        mixed = segments(STREAM)
        mixed[1] = segments(other)[1]
        assert_corrupt(partial(open_all, STREAM[:HEADER_SIZE] + b"".join(mixed), SIZE))
        # Its header with our segments.
        assert_corrupt(partial(open_all, other[:HEADER_SIZE] + STREAM[HEADER_SIZE:], SIZE))
    # A whole stream presented under another identity.
    assert_corrupt(lambda: open_all(STREAM, SIZE, identity=b"bucket\x00moved\x00v1"))


def test_wrong_identity_or_key() -> None:
    assert_corrupt(lambda: open_all(STREAM, SIZE, identity=IDENTITY + b"x"))
    assert_corrupt(lambda: open_all(STREAM, SIZE, key=OTHER_KEY))
    assert_corrupt(lambda: open_all(STREAM, SIZE, key=KEY[:16]))


def test_default_segment_size_round_trip() -> None:
    data = plaintext_of(3 * DEFAULT_SEGMENT_SIZE + 1)
    stream = seal(data, seg=DEFAULT_SEGMENT_SIZE, chunk=100_000)
    opener = StreamOpener(KEY, IDENTITY, stream[:HEADER_SIZE], len(data))
    got = b"".join(
        opener.plaintext(lambda o, n: stream[o : o + n], 70_000, len(data) - 2, batch_bytes=1)
    )
    assert got == data[70_000 : len(data) - 1]
