"""Incremental decoder of S3 ``aws-chunked`` request bodies, with chunk signatures.

A streaming upload says how its body is framed in ``x-amz-content-sha256``:

* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (boto3 and the aws CLI by default):
  ``hex-size CRLF data CRLF`` chunks, ``0 CRLF``, trailer lines ``name:value CRLF``
  (the ones ``x-amz-trailer`` announced) and an empty line.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: every chunk, the final empty one too, is
  ``hex-size;chunk-signature=SIG CRLF data CRLF``. A chunk's signature is
  HMAC(signing key, ``AWS4-HMAC-SHA256-PAYLOAD\\n`` amz-date ``\\n`` scope ``\\n``
  previous signature ``\\n`` sha256("") ``\\n`` sha256(data)), hex; the first
  "previous signature" is the seed, the Signature of the Authorization header.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: signed chunks, then the trailer
  lines, then ``x-amz-trailer-signature:SIG CRLF`` and an empty line, where SIG is
  HMAC(signing key, ``AWS4-HMAC-SHA256-TRAILER\\n`` amz-date ``\\n`` scope ``\\n``
  final chunk's signature ``\\n`` sha256 of the trailers as ``name:value\\n`` each).

The seed signature itself (over the request headers) is checked by
``Verifier.verify`` first; ``UNSIGNED-PAYLOAD`` and plain sha256 bodies are not
chunked and not handled here. The decoder checks framing, chunk and trailer
signatures, ``x-amz-decoded-content-length`` and that the announced trailers came;
comparing a checksum trailer with the payload is the caller's job (the trailers are
what ``finish`` returns). Nothing is trusted before ``finish`` returns: a body may
still fail at its end.

Data of a signed chunk is released only once the chunk's signature has been checked,
so at most one chunk (<= ``max_chunk_size``) is held; unsigned data is released as it
arrives. Pieces are zero-copy views of the input where possible: consume them before
reusing a buffer passed to ``feed``.

Tolerated, as other S3 servers do for real clients: trailer lines ending in a bare
LF, blank lines inside the trailer section (``0;chunk-signature=...`` followed by an
empty line before the trailers), and a body that stops right after its last complete
line without the final empty line. Not enforced: S3's 8 KiB minimum size of signed
chunks other than the last.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sealbox.errors import ClientError

if TYPE_CHECKING:
    from sealbox.auth.sigv4 import SignedRequest

__all__ = [
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "ChunkSignatureMismatch",
    "ChunkSigning",
    "ChunkedBodyError",
    "ChunkedDecoder",
    "IncompleteBody",
    "MalformedChunkedBody",
    "MalformedTrailer",
    "UnsupportedPayloadMode",
    "is_chunked",
]

STREAMING_SIGNED: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
# mode -> (chunks signed, trailer section)
_MODES: Final = {
    STREAMING_SIGNED: (True, False),
    STREAMING_SIGNED_TRAILER: (True, True),
    STREAMING_UNSIGNED_TRAILER: (False, True),
}

_MAX_LINE = 4096  # one chunk header line, CRLF included
_MAX_TRAILER_SECTION = 16 * 1024
_CRLF = b"\r\n"
_EMPTY_SHA256_HEX = hashlib.sha256(b"").hexdigest().encode("ascii")
_SIGNED_HEADER = re.compile(rb"([0-9A-Fa-f]{1,16});chunk-signature=([0-9A-Fa-f]{64})")
_UNSIGNED_HEADER = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\r\n]*)?")  # extensions ignored
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP field name
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_ESC = "surrogateescape"

# Decoder states.
_HEADER = 0  # reading a chunk header line
_DATA = 1  # reading a chunk's data
_DATA_END = 2  # reading the CRLF after a chunk's data
_TAIL = 3  # after the final chunk's header line: trailers / final CRLF
_DONE = 4
_FAILED = 5


# ------------------------------------------------------------------------- errors


class ChunkedBodyError(ClientError):
    """Base of the errors of an aws-chunked body (each with S3's code)."""

    code = "InvalidRequest"


class MalformedChunkedBody(ChunkedBodyError):
    """Framing that is not aws-chunked: a bad chunk header, no CRLF after a chunk's
    data, a chunk above the size limit, more data than x-amz-decoded-content-length,
    data after the final chunk."""

    code = "InvalidRequest"


class IncompleteBody(ChunkedBodyError):
    """The body ended early, or its chunks carry less than x-amz-decoded-content-length."""

    code = "IncompleteBody"

    def __init__(
        self,
        message: str = (
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
    ) -> None:
        super().__init__(message)


class ChunkSignatureMismatch(ChunkedBodyError):
    """A chunk signature or the trailer signature is not the one computed."""

    code = "SignatureDoesNotMatch"
    http_status = 403

    def __init__(
        self,
        message: str = (
            "The request signature we calculated does not match the signature you "
            "provided. Check your key and signing method."
        ),
    ) -> None:
        super().__init__(message)


class MalformedTrailer(ChunkedBodyError):
    """The trailer section is not well formed, lacks an announced trailer or carries
    one that x-amz-trailer did not announce."""

    code = "MalformedTrailerError"

    def __init__(
        self,
        message: str = (
            "The request contained trailing data that was not well-formed or did not "
            "conform to our published schema."
        ),
    ) -> None:
        super().__init__(message)


class UnsupportedPayloadMode(ChunkedBodyError):
    """An x-amz-content-sha256 streaming value this server does not decode."""

    code = "InvalidArgument"


# ------------------------------------------------------------------------ signing


@dataclass(frozen=True, slots=True)
class ChunkSigning:
    """What chunk signatures are checked with: the request's derived signing key,
    its X-Amz-Date (``20261125T101500Z``), its credential scope
    (``20261125/us-east-1/s3/aws4_request``) and its (verified) seed signature."""

    signing_key: bytes
    amz_date: str
    scope: str
    seed_signature: str

    @classmethod
    def for_request(cls, req: SignedRequest, signing_key: bytes) -> ChunkSigning:
        """For a request that ``Verifier.verify`` accepted, with the key from
        ``Verifier.signing_key(req, secret)``."""
        return cls(
            signing_key=signing_key,
            amz_date=req.amz_date.strftime("%Y%m%dT%H%M%SZ"),
            scope=f"{req.scope_date}/{req.region}/{req.service}/aws4_request",
            seed_signature=req.signature,
        )


def is_chunked(payload_hash: str | None) -> bool:
    """Whether an x-amz-content-sha256 value announces an aws-chunked body.

    True for every ``STREAMING-*`` value, the ones ChunkedDecoder refuses
    (UnsupportedPayloadMode) included, so that none is mistaken for a plain body.
    """
    return payload_hash is not None and payload_hash.startswith("STREAMING-")


# ------------------------------------------------------------------------ decoder


class ChunkedDecoder:
    """Decodes one aws-chunked body fed in pieces of any size.

    ``mode`` is the x-amz-content-sha256 value; ``decoded_length`` the
    x-amz-decoded-content-length (None: not checked); ``trailer_names`` the names in
    x-amz-trailer (comma-separated values are split); ``signing`` is required for the
    signed modes. ``feed`` returns the payload pieces available so far and ``finish``,
    once the body has ended, the trailers. Every failure is a ChunkedBodyError; after
    one, the decoder raises it again on any call.
    """

    def __init__(
        self,
        mode: str,
        *,
        decoded_length: int | None,
        trailer_names: Sequence[str],
        signing: ChunkSigning | None = None,
        max_chunk_size: int = 16 * 1024 * 1024,
    ) -> None:
        kind = _MODES.get(mode)
        if kind is None:
            raise UnsupportedPayloadMode(
                f"x-amz-content-sha256 must be {STREAMING_UNSIGNED_TRAILER}, "
                f"{STREAMING_SIGNED}, {STREAMING_SIGNED_TRAILER}, UNSIGNED-PAYLOAD or a "
                f"sha256 value for this request; got '{mode[:64]}'."
            )
        if decoded_length is not None and decoded_length < 0:
            raise ValueError("decoded_length must not be negative")
        if max_chunk_size < 1:
            raise ValueError("max_chunk_size must be positive")
        self._signed, self._trailer = kind
        if isinstance(trailer_names, str):
            trailer_names = (trailer_names,)
        names: list[str] = []
        for item in trailer_names:
            for part in item.split(","):
                name = part.strip().lower()
                if name and name not in names:
                    names.append(name)
        if names and not self._trailer:
            raise MalformedTrailer(
                f"x-amz-trailer is only allowed with x-amz-content-sha256 "
                f"{STREAMING_UNSIGNED_TRAILER} or {STREAMING_SIGNED_TRAILER}."
            )
        self._trailer_names = tuple(names)
        self._decoded_length = decoded_length
        self._max_chunk_size = max_chunk_size

        self._key = b""
        self._chunk_prefix = b""
        self._trailer_prefix = b""
        self._previous = b""  # the last verified signature, hex
        if self._signed:
            if signing is None:
                raise ValueError(f"signing is required for {mode}")
            context = f"\n{signing.amz_date}\n{signing.scope}\n".encode("utf-8", _ESC)
            self._key = signing.signing_key
            self._chunk_prefix = b"AWS4-HMAC-SHA256-PAYLOAD" + context
            self._trailer_prefix = b"AWS4-HMAC-SHA256-TRAILER" + context
            self._previous = signing.seed_signature.encode("utf-8", _ESC)

        self._state = _HEADER
        self._error: ChunkedBodyError | None = None
        self._decoded = 0  # payload bytes announced by the chunk headers so far
        self._line = bytearray()  # a chunk header line split across feeds
        self._remaining = 0  # data bytes still to come in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data seen so far
        self._chunk_signature = b""
        self._hasher: hashlib._Hash | None = None  # the current signed chunk's sha256
        self._held: list[bytes | memoryview] = []  # the current signed chunk's data
        self._tail = bytearray()  # what follows the final chunk's header line

    # ------------------------------------------------------------------ public

    def feed(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        """Take the next bytes of the body; return the payload pieces now released."""
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            raise RuntimeError("feed() after finish()")
        try:
            return self._feed(data)
        except ChunkedBodyError as exc:
            self._fail(exc)
            raise

    def finish(self) -> dict[str, str]:
        """The body has ended: check it is complete; return its trailers, by lowercase
        name (x-amz-trailer-signature left out)."""
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            raise RuntimeError("finish() called twice")
        try:
            trailers = self._finish()
        except ChunkedBodyError as exc:
            self._fail(exc)
            raise
        self._state = _DONE
        return trailers

    # ----------------------------------------------------------------- framing

    def _fail(self, exc: ChunkedBodyError) -> None:
        self._error = exc
        self._state = _FAILED
        self._held = []
        self._line.clear()
        self._tail.clear()

    def _feed(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        raw: bytes | None
        if isinstance(data, memoryview):
            view = data if data.ndim == 1 and data.format == "B" else data.cast("B")
            raw = None
            stable = False  # the buffer behind a view may be reused by the caller
        else:
            view = memoryview(data)
            raw = data
            stable = isinstance(data, bytes)
        out: list[bytes | memoryview] = []
        held_from = len(self._held)  # first held piece taken from this input
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                pos += take
                self._remaining -= take
                if self._hasher is None:
                    out.append(piece)
                else:
                    self._hasher.update(piece)
                    self._held.append(piece)
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _HEADER:
                pos = self._read_header(view, raw, pos, end)
            elif state == _DATA_END:
                while self._crlf < 2 and pos < end:
                    if view[pos] != _CRLF[self._crlf]:
                        raise MalformedChunkedBody(
                            "A chunk's data is not followed by CRLF: its size is wrong."
                        )
                    pos += 1
                    self._crlf += 1
                if self._crlf == 2:
                    self._crlf = 0
                    self._state = _HEADER
                    if self._hasher is not None:
                        self._verify_chunk(self._hasher.hexdigest().encode("ascii"))
                        self._hasher = None
                        out.extend(self._held)
                        self._held = []
                        held_from = 0
            else:  # _TAIL
                self._take_tail(view[pos:end])
                pos = end
        if not stable and len(self._held) > held_from:
            # Kept past this call: copied out of the caller's buffer.
            self._held[held_from:] = [bytes(piece) for piece in self._held[held_from:]]
        return out

    def _read_header(self, view: memoryview, raw: bytes | None, pos: int, end: int) -> int:
        """Consume up to the end of a chunk header line; return the new position."""
        room = _MAX_LINE - len(self._line)
        stop = min(end, pos + room)
        if raw is not None:
            lf = raw.find(b"\n", pos, stop)
        else:
            lf = bytes(view[pos:stop]).find(b"\n")
            if lf >= 0:
                lf += pos
        if lf < 0:
            if stop - pos >= room:
                raise MalformedChunkedBody(f"A chunk header line is longer than {_MAX_LINE} bytes.")
            self._line += view[pos:stop]
            return stop
        if self._line:
            self._line += view[pos : lf + 1]
            line = bytes(self._line)
            self._line.clear()
        else:
            line = bytes(view[pos : lf + 1])
        self._on_header(line)
        return lf + 1

    def _on_header(self, line: bytes) -> None:
        if not line.endswith(_CRLF):
            raise MalformedChunkedBody("A chunk header line does not end with CRLF.")
        content = line[:-2]
        match = (_SIGNED_HEADER if self._signed else _UNSIGNED_HEADER).fullmatch(content)
        if match is None:
            shown = content[:32].decode("ascii", "backslashreplace")
            expected = "hex-size;chunk-signature=signature" if self._signed else "hex-size"
            raise MalformedChunkedBody(
                f"Invalid chunk header '{shown}': expected {expected} and CRLF."
            )
        size = int(match[1], 16)
        if size > self._max_chunk_size:
            raise MalformedChunkedBody(
                f"A chunk of {size} bytes is larger than the {self._max_chunk_size} bytes allowed."
            )
        decoded = self._decoded + size
        if self._decoded_length is not None and decoded > self._decoded_length:
            raise MalformedChunkedBody(
                "The chunks carry more data than x-amz-decoded-content-length "
                f"({self._decoded_length} bytes)."
            )
        self._decoded = decoded
        if self._signed:
            self._chunk_signature = match[2]
        if size:
            self._remaining = size
            self._state = _DATA
            if self._signed:
                self._hasher = hashlib.sha256()
            return
        # The final, empty chunk: what follows is trailers or the final CRLF.
        if self._decoded_length is not None and decoded < self._decoded_length:
            raise IncompleteBody(
                f"The chunks carry {decoded} bytes, less than the "
                f"x-amz-decoded-content-length of {self._decoded_length}."
            )
        if self._signed:
            self._verify_chunk(_EMPTY_SHA256_HEX)
        self._state = _TAIL

    def _take_tail(self, piece: memoryview) -> None:
        if len(self._tail) + len(piece) > (_MAX_TRAILER_SECTION if self._trailer else 2):
            if self._trailer:
                raise MalformedTrailer(
                    f"The trailer section is longer than {_MAX_TRAILER_SECTION} bytes."
                )
            raise MalformedChunkedBody("Unexpected data after the final chunk.")
        self._tail += piece
        if not self._trailer and not _CRLF.startswith(self._tail):
            raise MalformedChunkedBody("Unexpected data after the final chunk.")

    def _finish(self) -> dict[str, str]:
        if self._state != _TAIL:
            raise IncompleteBody(
                "The body ended before its final (zero-size) chunk, after "
                f"{self._decoded - self._remaining} bytes of data."
            )
        if not self._trailer:
            if self._tail not in (b"", _CRLF):  # b"": the final CRLF left out
                raise IncompleteBody("The body ended inside its final CRLF.")
            return {}
        return self._parse_trailers(bytes(self._tail))

    # ---------------------------------------------------------------- trailers

    def _parse_trailers(self, section: bytes) -> dict[str, str]:
        *lines, rest = section.split(b"\n")
        if rest:
            raise IncompleteBody("The body ended inside its trailer section.")
        trailers: dict[str, str] = {}
        canonical = bytearray()  # the trailers as signed: "name:value\n" each
        signature: bytes | None = None
        for raw_line in lines:
            line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
            if not line:
                continue  # blank lines around the trailers are tolerated
            if signature is not None:
                raise MalformedTrailer(
                    f"Trailing data after {_TRAILER_SIGNATURE}, which must come last."
                )
            raw_name, colon, raw_value = line.partition(b":")
            raw_name = raw_name.strip(b" \t").lower()
            raw_value = raw_value.strip(b" \t")
            if not colon or not _TOKEN.fullmatch(raw_name):
                raise MalformedTrailer()
            name = raw_name.decode("ascii")
            if name == _TRAILER_SIGNATURE:
                if not self._signed:
                    raise MalformedTrailer(
                        f"{_TRAILER_SIGNATURE} is not allowed with x-amz-content-sha256 "
                        f"{STREAMING_UNSIGNED_TRAILER}."
                    )
                signature = raw_value
                continue
            if name in trailers:
                raise MalformedTrailer(f"The trailer {name} is repeated.")
            trailers[name] = raw_value.decode("utf-8", _ESC)
            canonical += raw_name + b":" + raw_value + b"\n"
        if self._signed:
            if signature is None:
                raise MalformedTrailer(f"The trailer section lacks {_TRAILER_SIGNATURE}.")
            self._verify_trailer(bytes(canonical), signature)
        for name in trailers:
            if name not in self._trailer_names:
                raise MalformedTrailer(f"The trailer {name} was not announced in x-amz-trailer.")
        for name in self._trailer_names:
            if name not in trailers:
                raise MalformedTrailer(
                    f"The trailer {name} announced in x-amz-trailer was not sent."
                )
        return trailers

    # -------------------------------------------------------------- signatures

    def _verify_chunk(self, data_sha256_hex: bytes) -> None:
        string_to_sign = b"".join(
            (self._chunk_prefix, self._previous, b"\n", _EMPTY_SHA256_HEX, b"\n", data_sha256_hex)
        )
        expected = hmac.digest(self._key, string_to_sign, "sha256").hex().encode("ascii")
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise ChunkSignatureMismatch()
        self._previous = expected

    def _verify_trailer(self, canonical: bytes, signature: bytes) -> None:
        string_to_sign = b"".join(
            (
                self._trailer_prefix,
                self._previous,
                b"\n",
                hashlib.sha256(canonical).hexdigest().encode("ascii"),
            )
        )
        expected = hmac.digest(self._key, string_to_sign, "sha256").hex().encode("ascii")
        if not hmac.compare_digest(expected, signature):
            raise ChunkSignatureMismatch()
