"""aws-chunked request bodies: what botocore itself sends, the signed examples of the
AWS documentation, and a reference encoder written from that documentation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.auth.chunked import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    ChunkedBodyError,
    ChunkedDecoder,
    ChunkSignatureMismatch,
    ChunkSigning,
    IncompleteBody,
    MalformedChunkedBody,
    MalformedTrailer,
    UnsupportedPayloadMode,
    is_chunked,
)
from sealbox.auth.sigv4 import Verifier, parse
from sealbox.clock import ManualClock
from sealbox.errors import ClientError

# The AWS documentation's examples ("Transferring Payload in Multiple Chunks" and
# "... Including Trailing Headers"): 66560 bytes of "a" in a 64 KiB and a 1 KiB chunk.
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_PATH = "/examplebucket/chunkObject.txt"
DOC_DATA = b"a" * 66560
DOC_CHUNKS = (b"a" * 65536, b"a" * 1024)
DOC_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
}
DOC_CREDENTIAL = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
DOC_SIGNED = {  # x-amz-content-sha256 -> (more headers, SignedHeaders, seed, chunk signatures)
    STREAMING_SIGNED: (
        {"content-length": "66824"},
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        (
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ),
    ),
    STREAMING_SIGNED_TRAILER: (
        {"x-amz-trailer": "x-amz-checksum-crc32c"},
        "content-encoding;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        (
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ),
    ),
}
DOC_TRAILER = ("x-amz-checksum-crc32c", "sOO8/Q==")
DOC_TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"

SIGNING = ChunkSigning(
    signing_key=hashlib.sha256(b"a test signing key").digest(),
    amz_date="20261125T101500Z",
    scope="20261125/us-east-1/s3/aws4_request",
    seed_signature="98f8b4de58b6e4fc0e7c1c1b3e9af4a24b5c47d7a7b0a4c0b38f1bd3b61e1bcb",
)
CRC32 = "x-amz-checksum-crc32"


# ------------------------------------------------------------------------ helpers


def doc_signing(mode: str) -> ChunkSigning:
    """The documentation's request, its seed signature checked by the Verifier."""
    extra, signed_headers, seed, _ = DOC_SIGNED[mode]
    headers = {
        **DOC_HEADERS,
        **extra,
        "x-amz-content-sha256": mode,
        "authorization": (
            f"AWS4-HMAC-SHA256 {DOC_CREDENTIAL},SignedHeaders={signed_headers},Signature={seed}"
        ),
    }
    verifier = Verifier(ManualClock(datetime(2013, 5, 24, tzinfo=UTC)))
    req = parse("PUT", DOC_PATH, "", headers)
    assert req is not None
    verifier.verify(req, DOC_SECRET, "PUT", DOC_PATH, "", headers, None)
    return ChunkSigning.for_request(req, verifier.signing_key(req, DOC_SECRET))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def encode_signed(
    chunks: Sequence[bytes],
    signing: ChunkSigning,
    trailers: Sequence[tuple[str, str]] | None = None,
) -> tuple[bytes, list[str]]:
    """A reference encoder, written from the AWS documentation: the body and the
    signatures in it (one per chunk, the final empty one too, then the trailer's)."""
    previous = signing.seed_signature
    signatures: list[str] = []
    body = bytearray()
    for data in [*chunks, b""]:
        previous = hmac_hex(
            signing.signing_key,
            f"AWS4-HMAC-SHA256-PAYLOAD\n{signing.amz_date}\n{signing.scope}\n{previous}\n"
            f"{sha256_hex(b'')}\n{sha256_hex(data)}",
        )
        signatures.append(previous)
        body += f"{len(data):x};chunk-signature={previous}\r\n".encode()
        if data or trailers is None:
            body += data + b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
        signature = hmac_hex(
            signing.signing_key,
            f"AWS4-HMAC-SHA256-TRAILER\n{signing.amz_date}\n{signing.scope}\n{previous}\n"
            f"{sha256_hex(canonical.encode())}",
        )
        signatures.append(signature)
        body += canonical.replace("\n", "\r\n").encode()
        body += f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return bytes(body), signatures


def encode_unsigned(chunks: Sequence[bytes], trailers: Sequence[tuple[str, str]]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(data), data) for data in chunks if data)
    return body + b"0\r\n" + b"".join(f"{n}:{v}\r\n".encode() for n, v in trailers) + b"\r\n"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def split(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({cut for cut in cuts if 0 < cut < len(body)})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def every(body: bytes, size: int) -> list[bytes]:
    return split(body, range(size, len(body), size))


def run(
    decoder: ChunkedDecoder, pieces: Iterable[bytes], *, views: bool = False
) -> tuple[bytes, dict[str, str]]:
    out = bytearray()
    for piece in pieces:
        for part in decoder.feed(memoryview(bytearray(piece)) if views else piece):
            out += part
    return bytes(out), decoder.finish()


def signed(
    mode: str = STREAMING_SIGNED,
    *,
    decoded_length: int | None = None,
    trailer_names: Sequence[str] = (),
    signing: ChunkSigning = SIGNING,
) -> ChunkedDecoder:
    return ChunkedDecoder(
        mode, decoded_length=decoded_length, trailer_names=trailer_names, signing=signing
    )


def unsigned(
    *, decoded_length: int | None = None, trailer_names: Sequence[str] = (CRC32,), **kw: Any
) -> ChunkedDecoder:
    return ChunkedDecoder(
        STREAMING_UNSIGNED_TRAILER,
        decoded_length=decoded_length,
        trailer_names=trailer_names,
        **kw,
    )


def fails(decoder: ChunkedDecoder, body: bytes, pieces: int = 1) -> ChunkedBodyError:
    """Feed ``body`` (in ``pieces`` parts) and finish; return the error raised."""
    with pytest.raises(ChunkedBodyError) as caught:
        run(decoder, every(body, max(1, -(-len(body) // pieces))))
    return caught.value


# ------------------------------------------------------------ botocore's own bodies


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    chunk_size=st.integers(1, 700),
    views=st.booleans(),
    data=st.data(),
)
def test_botocore_chunked_body_with_random_splits(
    payload: bytes, chunk_size: int, views: bool, data: st.DataObject
) -> None:
    body = AwsChunkedWrapper(
        io.BytesIO(payload), checksum_cls=Crc32Checksum, checksum_name=CRC32, chunk_size=chunk_size
    ).read()
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    decoded, trailers = run(unsigned(decoded_length=len(payload)), split(body, cuts), views=views)
    assert decoded == payload
    assert trailers == {CRC32: crc32_b64(payload)}


@pytest.mark.parametrize("payload", [b"", b"x", b"0123456789" * 500])
def test_botocore_chunked_body_without_checksum(payload: bytes) -> None:
    body = AwsChunkedWrapper(io.BytesIO(payload), chunk_size=1024).read()
    decoder = unsigned(decoded_length=len(payload), trailer_names=())
    assert run(decoder, every(body, 3)) == (payload, {})


def test_botocore_put_object_as_sent() -> None:
    """The body and headers of a real botocore PutObject (stopped before the network)."""
    client = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url="https://s3.example.test",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    sent: dict[str, Any] = {}

    class NoBody:
        def stream(self) -> Iterator[bytes]:
            return iter([b""])

    def before_send(request: Any, **_: Any) -> AWSResponse:
        sent["headers"] = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        sent["body"] = request.body.read()
        return AWSResponse(request.url, 200, {}, NoBody())

    client.meta.events.register("before-send.s3.PutObject", before_send)
    payload = bytes(range(256)) * 9000  # 2.3 MB: several of botocore's 1 MiB chunks
    client.put_object(Bucket="bucket", Key="key", Body=io.BytesIO(payload))
    headers = sent["headers"]
    mode = headers["x-amz-content-sha256"]
    assert is_chunked(mode) and "aws-chunked" in headers["content-encoding"]
    decoder = ChunkedDecoder(
        mode,
        decoded_length=int(headers["x-amz-decoded-content-length"]),
        trailer_names=[headers["x-amz-trailer"]],
    )
    decoded, trailers = run(decoder, every(sent["body"], 65536))
    assert decoded == payload
    assert trailers == {CRC32: crc32_b64(payload)}


# ------------------------------------------------------- the AWS documentation's vectors


def test_reference_encoder_reproduces_the_documented_chunk_signatures() -> None:
    for mode, (_, _, _, documented) in DOC_SIGNED.items():
        trailers = [DOC_TRAILER] if mode == STREAMING_SIGNED_TRAILER else None
        _, signatures = encode_signed(DOC_CHUNKS, doc_signing(mode), trailers)
        assert tuple(signatures[:3]) == documented
    _, signatures = encode_signed(DOC_CHUNKS, doc_signing(STREAMING_SIGNED_TRAILER), [DOC_TRAILER])
    assert signatures[3] == DOC_TRAILER_SIGNATURE


def test_chunk_signing_for_request() -> None:
    signing = doc_signing(STREAMING_SIGNED)
    assert signing.amz_date == "20130524T000000Z"
    assert signing.scope == "20130524/us-east-1/s3/aws4_request"
    assert signing.seed_signature == DOC_SIGNED[STREAMING_SIGNED][2]


def documented_body(mode: str) -> bytes:
    """The documentation's wire body, from its published values only."""
    signatures = DOC_SIGNED[mode][3]
    body = b"10000;chunk-signature=%s\r\n%s\r\n" % (signatures[0].encode(), DOC_CHUNKS[0])
    body += b"400;chunk-signature=%s\r\n%s\r\n" % (signatures[1].encode(), DOC_CHUNKS[1])
    body += b"0;chunk-signature=%s\r\n" % signatures[2].encode()
    if mode == STREAMING_SIGNED:
        return body + b"\r\n"
    return body + (
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:" + DOC_TRAILER_SIGNATURE.encode() + b"\r\n\r\n"
    )


@pytest.mark.parametrize("mode", [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER])
@pytest.mark.parametrize("size", [1, 7, 4096, 65536 + 90, 1 << 20])
def test_documented_bodies_decode(mode: str, size: int) -> None:
    body = documented_body(mode)
    trailers = [DOC_TRAILER] if mode == STREAMING_SIGNED_TRAILER else None
    assert encode_signed(DOC_CHUNKS, doc_signing(mode), trailers)[0] == body
    names = [DOC_TRAILER[0]] if trailers else []
    decoder = signed(mode, decoded_length=66560, trailer_names=names, signing=doc_signing(mode))
    decoded, got = run(decoder, every(body, size), views=size == 4096)
    assert decoded == DOC_DATA
    assert got == dict(trailers or [])


def test_documented_trailer_value_and_signature_are_bound() -> None:
    body = documented_body(STREAMING_SIGNED_TRAILER)
    for old, new in [(b"sOO8/Q==", b"sOO8/A=="), (b"d81f82fc", b"d81f82fd")]:
        decoder = signed(
            STREAMING_SIGNED_TRAILER,
            decoded_length=66560,
            trailer_names=[DOC_TRAILER[0]],
            signing=doc_signing(STREAMING_SIGNED_TRAILER),
        )
        assert isinstance(fails(decoder, body.replace(old, new)), ChunkSignatureMismatch)


def test_several_trailers_are_signed_in_order() -> None:
    """aws-crt's vector: the documented chunks, then trailers first, second, third."""
    signing = doc_signing(STREAMING_SIGNED)
    chunk_signatures = DOC_SIGNED[STREAMING_SIGNED][3]
    body = documented_body(STREAMING_SIGNED)[: -len("\r\n")]  # the final chunk's header
    body += b"first:1st\r\nsecond:2nd\r\nthird:3rd\r\n"
    body += (
        b"x-amz-trailer-signature:df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"
    )
    body += b"\r\n\r\n"
    assert chunk_signatures[2].encode() in body
    decoder = signed(
        STREAMING_SIGNED_TRAILER, trailer_names=["first, second,third"], signing=signing
    )
    assert run(decoder, every(body, 1000)) == (
        DOC_DATA,
        {"first": "1st", "second": "2nd", "third": "3rd"},
    )
    swapped = body.replace(b"first:1st\r\nsecond:2nd", b"second:2nd\r\nfirst:1st")
    decoder = signed(
        STREAMING_SIGNED_TRAILER, trailer_names=["first,second,third"], signing=signing
    )
    assert isinstance(fails(decoder, swapped), ChunkSignatureMismatch)


# ------------------------------------------------------------------ signed round trips


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    trailer=st.booleans(),
    views=st.booleans(),
    data=st.data(),
)
def test_signed_bodies_with_random_splits(
    chunks: list[bytes], trailer: bool, views: bool, data: st.DataObject
) -> None:
    payload = b"".join(chunks)
    trailers = [(CRC32, crc32_b64(payload))] if trailer else None
    body, _ = encode_signed(chunks, SIGNING, trailers)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    mode = STREAMING_SIGNED_TRAILER if trailer else STREAMING_SIGNED
    decoder = signed(mode, decoded_length=len(payload), trailer_names=[CRC32] if trailer else [])
    assert run(decoder, split(body, cuts), views=views) == (payload, dict(trailers or []))


CHUNKS = [b"x" * 100, b"y" * 100, b"z" * 37]


@pytest.mark.parametrize("trailer", [False, True])
def test_a_flipped_byte_anywhere_in_the_data_is_refused(trailer: bool) -> None:
    mode = STREAMING_SIGNED_TRAILER if trailer else STREAMING_SIGNED
    body, _ = encode_signed(CHUNKS, SIGNING, [(CRC32, "AAAAAA==")] if trailer else None)
    for data in CHUNKS:
        at = body.index(data) + len(data) // 2
        tampered = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
        decoder = signed(mode, trailer_names=[CRC32] if trailer else [])
        assert isinstance(fails(decoder, tampered, pieces=3), ChunkSignatureMismatch)


def test_a_wrong_chunk_signature_is_refused() -> None:
    body, signatures = encode_signed(CHUNKS, SIGNING)
    for signature in signatures:  # the final, empty chunk's too
        wrong = format(int(signature, 16) ^ 1, "064x")
        error = fails(signed(), body.replace(signature.encode(), wrong.encode()))
        assert isinstance(error, ChunkSignatureMismatch)
        assert (error.code, error.http_status) == ("SignatureDoesNotMatch", 403)


def test_chunks_reordered_dropped_or_replayed_are_refused() -> None:
    body, signatures = encode_signed(CHUNKS, SIGNING)
    sizes = [*map(len, CHUNKS), 0]
    starts = [
        body.index(f"{size:x};chunk-signature={signature}".encode())
        for size, signature in zip(sizes, signatures, strict=True)
    ]
    first, second, third, final = (
        body[a:b] for a, b in zip(starts, [*starts[1:], len(body)], strict=True)
    )
    assert first + second + third + final == body
    for variant in (second + first + third, first + third, first + first + second + third):
        assert isinstance(fails(signed(), variant + final), ChunkSignatureMismatch)
    # The same chunks under another seed (another request) do not verify either.
    other = ChunkSigning(SIGNING.signing_key, SIGNING.amz_date, SIGNING.scope, "0" * 64)
    assert isinstance(fails(signed(signing=other), body), ChunkSignatureMismatch)


def test_signed_data_is_released_only_once_verified() -> None:
    body, _ = encode_signed([b"hello world"], SIGNING)
    decoder = signed()
    end = body.index(b"hello world") + len(b"hello world")
    assert decoder.feed(body[: end + 1]) == []  # the data, and CR of its CRLF
    assert [bytes(p) for p in decoder.feed(body[end + 1 :])] == [b"hello world"]
    assert decoder.finish() == {}
    # A tampered chunk never comes out, even in pieces.
    decoder = signed()
    assert decoder.feed(body.replace(b"hello", b"jello")[: end + 1]) == []
    with pytest.raises(ChunkSignatureMismatch):
        decoder.feed(body[end + 1 :])


@pytest.mark.parametrize("as_view", [True, False])
def test_signed_chunk_split_over_a_reused_buffer(as_view: bool) -> None:
    """Data held across feeds is copied out of a buffer the caller reuses."""
    body, _ = encode_signed([bytes(range(200))], SIGNING)
    decoder = signed()
    buffer = bytearray()
    out = bytearray()
    for piece in every(body, 64):
        buffer[:] = piece
        # (b"".join: no piece outlives this line, or buffer could not be resized)
        out += b"".join(decoder.feed(memoryview(buffer) if as_view else buffer))  # type: ignore[arg-type]
        buffer[:] = b"\xff" * len(buffer)
    assert bytes(out) == bytes(range(200))
    assert decoder.finish() == {}


def test_unsigned_data_streams_out_zero_copy() -> None:
    body = encode_unsigned([b"0123456789"], [(CRC32, crc32_b64(b"0123456789"))])
    decoder = unsigned()
    first = body[:8]  # "a\r\n" and 5 bytes of data
    pieces = decoder.feed(first)
    assert [bytes(p) for p in pieces] == [b"01234"]
    assert isinstance(pieces[0], memoryview) and pieces[0].obj is first
    assert [bytes(p) for p in decoder.feed(body[8:])] == [b"56789"]
    assert decoder.finish() == {CRC32: crc32_b64(b"0123456789")}


# ------------------------------------------------------------ truncation and lengths


@pytest.mark.parametrize("trailer", [False, True])
def test_every_truncation_is_refused(trailer: bool) -> None:
    mode = STREAMING_SIGNED_TRAILER if trailer else STREAMING_SIGNED
    body, _ = encode_signed(CHUNKS, SIGNING, [(CRC32, "AAAAAA==")] if trailer else None)
    # Leaving out the final empty line (the last 2 bytes) is tolerated.
    for cut in range(len(body) - 2):
        decoder = signed(mode, trailer_names=[CRC32] if trailer else [])
        error = fails(decoder, body[:cut])
        final_header_end = body.rindex(b"0;chunk-signature=") + 84
        if cut < final_header_end:
            assert isinstance(error, IncompleteBody), cut
            assert error.code == "IncompleteBody"
        else:
            assert isinstance(error, IncompleteBody | MalformedTrailer), cut


def test_unsigned_truncation_is_refused() -> None:
    payload = b"q" * 50
    body = encode_unsigned([payload[:20], payload[20:]], [(CRC32, crc32_b64(payload))])
    trailers_start = body.index(b"0\r\n") + 3
    for cut in range(len(body) - 2):
        error = fails(unsigned(decoded_length=50), body[:cut])
        # Cut right after the final chunk: a complete body without its trailer.
        assert isinstance(error, MalformedTrailer if cut == trailers_start else IncompleteBody)


def test_decoded_length_is_checked() -> None:
    body, _ = encode_signed(CHUNKS, SIGNING)
    total = sum(map(len, CHUNKS))
    assert run(signed(decoded_length=total), [body])[0] == b"".join(CHUNKS)
    short = signed(decoded_length=total + 1)
    with pytest.raises(IncompleteBody):  # raised at the final chunk, before the end
        short.feed(body)
    long = signed(decoded_length=total - 1)
    out: list[bytes | memoryview] = []
    with pytest.raises(MalformedChunkedBody):
        for piece in every(body, 50):
            out += long.feed(piece)
    assert b"".join(out) == b"".join(CHUNKS[:2])  # the excess chunk was never released


# -------------------------------------------------------------------- malformed framing


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nab\r\n0\r\n\r\n",  # not hex
        b"0x2\r\nab\r\n0\r\n\r\n",
        b" 2\r\nab\r\n0\r\n\r\n",
        b"+2\r\nab\r\n0\r\n\r\n",
        b"\r\n",  # empty header line
        b"2\nab\r\n0\r\n\r\n",  # header line without CR
        b"2 \nab\r\n0\r\n\r\n",
        b"2\r\nabc\r\n0\r\n\r\n",  # more data than the size
        b"2\r\nab\n0\r\n\r\n",
        b"2\r\nab0\r\n\r\n",
        b"12345678901234567\r\n",  # 17 hex digits
        b"9" * 5000,  # a header line that never ends
    ],
)
def test_malformed_framing(body: bytes) -> None:
    error = fails(unsigned(trailer_names=()), body, pieces=3)
    assert isinstance(error, MalformedChunkedBody)
    assert (error.code, error.http_status) == ("InvalidRequest", 400)


@pytest.mark.parametrize(
    "header",
    [
        b"5\r\n",  # no signature
        b"5;chunk-signature=abc\r\n",
        b"5;chunk-signature=" + b"g" * 64 + b"\r\n",
        b"5;chunk-signature=" + b"a" * 64 + b";x=y\r\n",
        b"5;signature=" + b"a" * 64 + b"\r\n",
    ],
)
def test_malformed_signed_chunk_header(header: bytes) -> None:
    assert isinstance(fails(signed(), header + b"hello\r\n"), MalformedChunkedBody)


def test_chunk_larger_than_the_limit() -> None:
    decoder = ChunkedDecoder(
        STREAMING_UNSIGNED_TRAILER, decoded_length=None, trailer_names=(), max_chunk_size=4
    )
    assert [bytes(p) for p in decoder.feed(b"4\r\nabcd\r\n")] == [b"abcd"]
    with pytest.raises(MalformedChunkedBody, match="larger"):
        decoder.feed(b"5\r\n")


def test_end_of_a_signed_body() -> None:
    body, _ = encode_signed(CHUNKS, SIGNING)
    assert body.endswith(b"\r\n\r\n")
    assert run(signed(), [body[:-2]])[0] == b"".join(CHUNKS)  # final CRLF left out
    assert isinstance(fails(signed(), body[:-1]), IncompleteBody)


def test_data_after_the_final_signed_chunk() -> None:
    body, _ = encode_signed(CHUNKS, SIGNING)
    for extra in (b"x", b"\r\nx", b"0\r\n", b"\n"):
        assert isinstance(fails(signed(), body + extra), MalformedChunkedBody)
    for end in (b"ab", b"\n\r", b"x"):  # instead of the final CRLF
        assert isinstance(fails(signed(), body[:-2] + end), MalformedChunkedBody)


def test_unsigned_trailer_variants_are_accepted() -> None:
    crc = crc32_b64(b"abc")
    for tail in (
        f"{CRC32}:{crc}\r\n\r\n",
        f"{CRC32}:{crc}\r\n",  # final empty line left out
        f"{CRC32}:{crc}\n\n",  # bare LF
        f"\r\n{CRC32}:{crc}\r\n\r\n",  # empty line before the trailers
        f"{CRC32}: {crc} \r\n\r\n",  # spaces around the value
        f"X-Amz-Checksum-CRC32:{crc}\r\n\r\n",  # name case
    ):
        body = b"3\r\nabc\r\n0\r\n" + tail.encode()
        assert run(unsigned(), every(body, 2)) == (b"abc", {CRC32: crc}), tail


def test_signed_trailer_variants_are_accepted() -> None:
    body = documented_body(STREAMING_SIGNED_TRAILER)
    trailer_line = b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    for variant in (
        body[:-2],  # final empty line left out
        body.replace(trailer_line, b"\r\n" + trailer_line),  # empty line after the 0 chunk
        body.replace(trailer_line, trailer_line[:-2] + b"\n\r\n"),  # LF line, then CRLF
    ):
        decoder = signed(
            STREAMING_SIGNED_TRAILER,
            trailer_names=["x-amz-checksum-crc32c"],
            signing=doc_signing(STREAMING_SIGNED_TRAILER),
        )
        assert run(decoder, every(variant, 999)) == (
            DOC_DATA,
            {"x-amz-checksum-crc32c": "sOO8/Q=="},
        )


# ------------------------------------------------------------------------- trailers


@pytest.mark.parametrize(
    ("tail", "names"),
    [
        (b"\r\n", [CRC32]),  # announced, not sent
        (b"x-amz-checksum-sha256:AAAA\r\n\r\n", [CRC32]),  # another one sent
        (b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n", []),  # not announced
        (b"x-amz-checksum-crc32:AAAAAA==\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", [CRC32]),
        (b"x-amz-checksum-crc32 AAAAAA==\r\n\r\n", [CRC32]),  # no colon
        (b":AAAAAA==\r\n\r\n", [CRC32]),  # no name
        (
            b"x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:" + b"a" * 64 + b"\r\n",
            [CRC32],
        ),
        (b"x-amz-checksum-crc32:AAAAAA==\r\n" + b"x" * 20000, [CRC32]),  # far too long
    ],
)
def test_malformed_unsigned_trailers(tail: bytes, names: list[str]) -> None:
    error = fails(unsigned(trailer_names=names), b"3\r\nabc\r\n0\r\n" + tail, pieces=4)
    assert isinstance(error, MalformedTrailer)
    assert (error.code, error.http_status) == ("MalformedTrailerError", 400)


def test_signed_trailer_signature_missing_misplaced_or_wrong() -> None:
    payload = b"".join(CHUNKS)
    trailers = [(CRC32, crc32_b64(payload))]
    body, signatures = encode_signed(CHUNKS, SIGNING, trailers)
    trailer_line = f"{CRC32}:{crc32_b64(payload)}\r\n".encode()
    signature_line = f"x-amz-trailer-signature:{signatures[-1]}\r\n".encode()
    assert trailer_line + signature_line in body
    cases: list[tuple[bytes, type[ChunkedBodyError]]] = [
        (body.replace(signature_line, b""), MalformedTrailer),
        (
            body.replace(trailer_line + signature_line, signature_line + trailer_line),
            MalformedTrailer,
        ),
        (body.replace(signatures[-1].encode(), signatures[-2].encode()), ChunkSignatureMismatch),
        (
            body.replace(trailer_line, trailer_line.replace(b"crc32:", b"crc32:A")),
            ChunkSignatureMismatch,
        ),
        (body.replace(signature_line, signature_line[:40] + b"\r\n"), ChunkSignatureMismatch),
    ]
    for variant, error in cases:
        decoder = signed(STREAMING_SIGNED_TRAILER, trailer_names=[CRC32])
        assert isinstance(fails(decoder, variant, pieces=2), error)


def test_trailer_names_are_normalized() -> None:
    crc = crc32_b64(b"abc")
    body = b"3\r\nabc\r\n0\r\n" + f"{CRC32}:{crc}\r\n\r\n".encode()
    for names in (CRC32, [" X-Amz-Checksum-CRC32 "], [f"{CRC32},"], [CRC32, CRC32]):
        assert run(unsigned(trailer_names=names), [body]) == (b"abc", {CRC32: crc})


def test_x_amz_trailer_needs_a_trailer_mode() -> None:
    with pytest.raises(MalformedTrailer):
        signed(STREAMING_SIGNED, trailer_names=[CRC32])


# --------------------------------------------------------------------- modes and API


@pytest.mark.parametrize(
    "mode",
    [
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD",
        "UNSIGNED-PAYLOAD",
        sha256_hex(b""),
        "streaming-aws4-hmac-sha256-payload",
    ],
)
def test_unsupported_modes(mode: str) -> None:
    with pytest.raises(UnsupportedPayloadMode) as caught:
        ChunkedDecoder(mode, decoded_length=None, trailer_names=(), signing=SIGNING)
    assert (caught.value.code, caught.value.http_status) == ("InvalidArgument", 400)


def test_is_chunked() -> None:
    for value in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
        assert is_chunked(value)
    assert is_chunked("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")  # refused by the decoder
    for other in (None, "", "UNSIGNED-PAYLOAD", sha256_hex(b"")):
        assert not is_chunked(other)


def test_signed_modes_need_signing() -> None:
    for mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        with pytest.raises(ValueError, match="signing"):
            ChunkedDecoder(mode, decoded_length=None, trailer_names=())


def test_errors_are_client_errors_and_sticky() -> None:
    decoder = unsigned()
    with pytest.raises(MalformedChunkedBody) as caught:
        decoder.feed(b"zz\r\n")
    assert isinstance(caught.value, ClientError)
    with pytest.raises(MalformedChunkedBody):
        decoder.feed(b"3\r\nabc\r\n")
    with pytest.raises(MalformedChunkedBody):
        decoder.finish()


def test_use_after_finish() -> None:
    decoder = unsigned(trailer_names=())
    assert run(decoder, [b"0\r\n\r\n"]) == (b"", {})
    with pytest.raises(RuntimeError):
        decoder.feed(b"")
    with pytest.raises(RuntimeError):
        decoder.finish()


def test_empty_feeds_are_harmless() -> None:
    body, _ = encode_signed(CHUNKS, SIGNING)
    decoder = signed()
    out = bytearray()
    for piece in every(body, 33):
        for data in (b"", piece, memoryview(b"")):
            for part in decoder.feed(data):
                out += part
    assert bytes(out) == b"".join(CHUNKS) and decoder.finish() == {}
