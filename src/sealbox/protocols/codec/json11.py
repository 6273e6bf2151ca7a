"""The AWS JSON 1.1 protocol (KMS, CloudTrail), driven by botocore's shape models.

For each operation, the input and output shapes are compiled once (on first use) into
closures: a decoder that type-checks the request body, converts blobs and timestamps and
collects every constraint violation, and an encoder for the response. Messages follow
AWS's (Coral's) wording and never contain blob values or values of sensitive shapes.

Member paths in validation messages use lowerCamelCase member names; a list element is
``<list>.<n>.member`` (1-based), as AWS reports them. Constraint failures of scalar list
elements, map keys and map values are reported once for the whole list or map, in Coral's
"Member must satisfy constraint: [...]" form, and the value of a list or map is never shown.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from sealbox.errors import AwsError, SerializationError, ValidationError
from sealbox.protocols.codec.compile_cache import compile_once
from sealbox.protocols.codec.models import OperationModel, ServiceModel

__all__ = ["CONTENT_TYPE", "parse_request", "render_error", "serialize_response"]

_log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/x-amz-json-1.1"
_CONTENT_TYPE_HEADER: Final = (b"content-type", CONTENT_TYPE.encode("ascii"))

# A path is a chain of (parent, segment) pairs from the root, (); it is built without
# string work on the hot path and rendered only for an error message. A str segment is a
# lowerCamelCase member name or a map key; an int segment is a 1-based list index.
Path = tuple[Any, ...]
Errors = list[str]
# decoder(value, parent_path, segment, errors) -> decoded value
Decoder = Callable[[Any, Path, str | int, Errors], Any]
# conv(json_value) -> python value; raises _Mismatch on a type mismatch
Conv = Callable[[Any], Any]
# bad(python_value) -> failing-constraint phrases, or None/[] when the value is valid
Bad = Callable[[Any], list[str] | None]
Encoder = Callable[[Any], Any]

_ROOT: Final[Path] = ()
_INT_RANGES: Final = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
_NO_MAX: Final = 2**63


class _Mismatch(Exception):
    """A JSON value of the wrong type; the container adds the path."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
# A \uD800-\uDFFF escape may leave a lone surrogate, which is not text (cannot be UTF-8).
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


# ---------------------------------------------------------------------------- messages


def _render(path: Path, seg: str | int | None = None) -> str:
    parts: list[str] = []
    if seg is not None:
        parts.append(f"{seg}.member" if isinstance(seg, int) else seg)
    while path:
        path, s = path
        parts.append(f"{s}.member" if isinstance(s, int) else s)
    return ".".join(reversed(parts))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a non-integer number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _mismatch(path: Path, seg: str | int | None, expected: str, value: Any) -> SerializationError:
    where = _render(path, seg)
    return SerializationError(f"Value at '{where}' must be {expected}, not {_json_type(value)}")


def _violations(
    errs: Errors, shown: str, path: Path, seg: str | int | None, phrases: list[str]
) -> None:
    where = _render(path, seg)
    errs.extend(f"{shown}at '{where}' failed to satisfy constraint: {p}" for p in phrases)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check_map(
    out: dict[Any, Any],
    lo: int,
    hi: int,
    key_bad: Bad | None,
    value_bad: Bad | None,
    errs: Errors,
    path: Path,
    seg: str | int | None,
) -> None:
    """Record a map's size and key/value constraint violations, in AWS's wording."""
    phrases = [] if lo <= len(out) <= hi else _length_phrases(len(out), lo, hi)
    if key_bad is not None:
        failing = _collect(out, key_bad)
        if failing:
            phrases.append(f"Map keys must satisfy constraint: [{', '.join(failing)}]")
    if value_bad is not None:
        failing = _collect(out.values(), value_bad)
        if failing:
            phrases.append(f"Map value must satisfy constraint: [{', '.join(failing)}]")
    if phrases:
        _violations(errs, "Value ", path, seg, phrases)


def _length_phrases(n: int, lo: int, hi: int) -> list[str]:
    if n < lo:
        return [f"Member must have length greater than or equal to {lo}"]
    if n > hi:
        return [f"Member must have length less than or equal to {hi}"]
    return []


# ---------------------------------------------------------------------------- patterns

# Model patterns are Java regexes over UTF-16: a code point above U+FFFF is written as a
# surrogate pair of \u escapes (CloudTrail's PartitionKeyName has "\uD800\uDC00-\uDBFF\uDFFF"),
# which Python's re rejects; and \w, \d, \s are ASCII-only in Java.
_SURROGATE_PAIR: Final = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def _join_pair(m: re.Match[str]) -> str:
    hi, lo = int(m.group(1), 16), int(m.group(2), 16)
    return f"\\U{0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00):08X}"


def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """A model's (Java) pattern as a Python regex, or None if it cannot be translated."""
    try:
        return re.compile(_SURROGATE_PAIR.sub(_join_pair, pattern), re.ASCII)
    except re.error:
        _log.warning("Cannot compile model pattern %r; it will not be checked", pattern)
        return None


# ---------------------------------------------------------------------------- scalars


class _Scalar:
    """A compiled scalar shape: conversion, constraint check, and whether to echo values."""

    __slots__ = ("bad", "conv", "echo")

    def __init__(self, conv: Conv, bad: Bad | None, echo: bool) -> None:
        self.conv = conv
        self.bad = bad
        self.echo = echo


def _limits(meta: Mapping[str, Any]) -> tuple[Any, Any]:
    return meta.get("min"), meta.get("max")


def _string_scalar(meta: Mapping[str, Any]) -> _Scalar:
    lo_raw, hi_raw = _limits(meta)
    lo = int(lo_raw or 0)
    hi = _NO_MAX if hi_raw is None else int(hi_raw)
    enum_list: list[str] | None = meta.get("enum")
    enum = frozenset(enum_list) if enum_list else None
    pattern: str | None = meta.get("pattern")
    rx = _compile_pattern(pattern) if pattern else None
    if rx is None:
        pattern = None

    def conv(v: Any) -> Any:
        if type(v) is str:
            return v
        raise _Mismatch("a string")

    def bad(v: str) -> list[str] | None:
        n = len(v)
        if (
            lo <= n <= hi
            and (enum is None or v in enum)
            and (rx is None or rx.fullmatch(v) is not None)
        ):
            return None
        phrases = _length_phrases(n, lo, hi)
        if enum is not None and v not in enum:
            phrases.append(f"Member must satisfy enum value set: [{', '.join(enum_list or ())}]")
        if rx is not None and rx.fullmatch(v) is None:
            phrases.append(f"Member must satisfy regular expression pattern: {pattern}")
        return phrases

    constrained = lo > 0 or hi != _NO_MAX or enum is not None or rx is not None
    return _Scalar(conv, bad if constrained else None, not meta.get("sensitive", False))


def _blob_scalar(meta: Mapping[str, Any]) -> _Scalar:
    lo_raw, hi_raw = _limits(meta)
    lo = int(lo_raw or 0)
    hi = _NO_MAX if hi_raw is None else int(hi_raw)
    a2b = binascii.a2b_base64

    def conv(v: Any) -> Any:
        if type(v) is not str or len(v) & 3:  # padded base64 only, as AWS's SDKs send it
            raise _Mismatch("a base64-encoded string")
        try:
            return a2b(v, strict_mode=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise _Mismatch("a base64-encoded string") from None

    def bad(v: bytes) -> list[str] | None:
        n = len(v)
        return None if lo <= n <= hi else _length_phrases(n, lo, hi)

    constrained = lo > 0 or hi != _NO_MAX
    return _Scalar(conv, bad if constrained else None, False)  # blobs are never shown


def _number_bad(meta: Mapping[str, Any]) -> Bad | None:
    lo, hi = _limits(meta)
    if lo is None and hi is None:
        return None

    def bad(v: int | float) -> list[str] | None:
        if lo is not None and v < lo:
            return [f"Member must have value greater than or equal to {lo}"]
        if hi is not None and v > hi:
            return [f"Member must have value less than or equal to {hi}"]
        return None

    return bad


def _int_scalar(type_name: str, meta: Mapping[str, Any]) -> _Scalar:
    lo, hi = _INT_RANGES[type_name]

    def conv(v: Any) -> Any:
        if type(v) is int:
            if lo <= v <= hi:
                return v
            raise _Mismatch(f"an integer from {lo} to {hi}")
        raise _Mismatch("an integer")

    return _Scalar(conv, _number_bad(meta), not meta.get("sensitive", False))


def _float_scalar(meta: Mapping[str, Any]) -> _Scalar:
    def conv(v: Any) -> Any:
        t = type(v)
        if t is float:
            return v
        if t is int:
            return float(v)
        raise _Mismatch("a number")

    return _Scalar(conv, _number_bad(meta), not meta.get("sensitive", False))


def _bool_conv(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise _Mismatch("a boolean")


def _epoch_conv(v: Any) -> Any:
    t = type(v)
    if t is int or t is float:
        try:
            return datetime.fromtimestamp(v, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Mismatch("a timestamp within range") from None
    raise _Mismatch("a timestamp in epoch seconds")


def _iso_conv(v: Any) -> Any:
    if type(v) is str:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise _Mismatch("an ISO 8601 timestamp") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _Mismatch("an ISO 8601 timestamp")


def _passthrough(v: Any) -> Any:
    return v


def _scalar(shape: Any) -> _Scalar:
    t: str = shape.type_name
    meta: Mapping[str, Any] = shape.metadata
    if t == "string":
        return _string_scalar(meta)
    if t == "blob":
        return _blob_scalar(meta)
    if t in _INT_RANGES:
        return _int_scalar(t, meta)
    if t in ("double", "float"):
        return _float_scalar(meta)
    if t == "boolean":
        return _Scalar(_bool_conv, None, True)
    if t == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixTimestamp").lower()
        return _Scalar(_iso_conv if fmt == "iso8601" else _epoch_conv, None, False)
    return _Scalar(_passthrough, None, False)  # e.g. a "character" shape: take as sent


def _scalar_decoder(sc: _Scalar) -> Decoder:
    conv, bad, echo = sc.conv, sc.bad, sc.echo
    if bad is None:

        def plain(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
            try:
                return conv(v)
            except _Mismatch as e:
                raise _mismatch(path, seg, e.expected, v) from None

        return plain

    def checked(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
        try:
            x = conv(v)
        except _Mismatch as e:
            raise _mismatch(path, seg, e.expected, v) from None
        phrases = bad(x)
        if phrases:
            _violations(errs, f"Value '{x}' " if echo else "Value ", path, seg, phrases)
        return x

    return checked


def _collect(values: Any, bad: Bad) -> list[str]:
    """Distinct failing-constraint phrases over values, in first-seen order."""
    seen: dict[str, None] = {}
    for v in values:
        for p in bad(v) or ():
            seen[p] = None
    return list(seen)


# ---------------------------------------------------------------------------- compiler


def _shape_key(shape: Any) -> tuple[str, str, str]:
    # Member references may merge traits over the named shape, so the name alone is not a key.
    return (shape.name, repr(shape.serialization), repr(shape.metadata))


class _Compiler:
    """Compiles the shapes of one service; memoized by shape, recursion-safe."""

    def __init__(self) -> None:
        self.decoders: dict[tuple[str, str, str], list[Decoder | None]] = {}
        self.encoders: dict[tuple[str, str, str], list[Encoder | None]] = {}
        self.pending_enc: set[tuple[str, str, str]] = set()

    # -- decoding (requests)

    def decoder(self, shape: Any) -> Decoder:
        def late(pending: list[Decoder | None]) -> Decoder:
            def call(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
                real = pending[0]
                assert real is not None
                return real(v, path, seg, errs)

            return call

        return compile_once(
            self.decoders,
            _shape_key(shape),
            lambda: self._build_decoder(shape),
            late,
        )

    def _build_decoder(self, shape: Any) -> Decoder:
        t: str = shape.type_name
        if t == "structure":
            if shape.metadata.get("document"):
                return _document_decoder
            body = self.struct_body(shape)

            def struct(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
                return body(v, (path, seg), errs)

            return struct
        if t == "list":
            return self._list_decoder(shape)
        if t == "map":
            return self._map_decoder(shape)
        return _scalar_decoder(_scalar(shape))

    def struct_body(self, shape: Any) -> Callable[[Any, Path, Errors], dict[str, Any]]:
        # wire name -> (member name, camelCase segment, decoder)
        table: dict[str, tuple[str, str, Decoder]] = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            table[wire] = (name, _camel(name), self.decoder(member))
        required = tuple(
            (shape.members[n].serialization.get("name", n), _camel(n))
            for n in shape.required_members
        )

        def body(v: Any, path: Path, errs: Errors) -> dict[str, Any]:
            if type(v) is not dict:
                raise _mismatch(path, None, "an object", v)
            out: dict[str, Any] = {}
            for wire, x in v.items():
                m = table.get(wire)
                if m is None or x is None:  # unknown members are ignored; null means absent
                    continue
                out[m[0]] = m[2](x, path, m[1], errs)
            for wire, camel in required:
                if v.get(wire) is None:
                    _violations(errs, "Value null ", path, camel, ["Member must not be null"])
            return out

        return body

    def _list_decoder(self, shape: Any) -> Decoder:
        lo_raw, hi_raw = _limits(shape.metadata)
        lo = int(lo_raw or 0)
        hi = _NO_MAX if hi_raw is None else int(hi_raw)
        member = shape.member
        if member.type_name in ("structure", "list", "map"):
            elem = self.decoder(member)

            def nested(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
                if type(v) is not list:
                    raise _mismatch(path, seg, "an array", v)
                here = (path, seg)
                out = [elem(x, here, i, errs) for i, x in enumerate(v, 1)]
                if not lo <= len(out) <= hi:
                    _violations(errs, "Value ", path, seg, _length_phrases(len(out), lo, hi))
                return out

            return nested

        sc = _scalar(member)
        conv, bad = sc.conv, sc.bad

        def scalars(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
            if type(v) is not list:
                raise _mismatch(path, seg, "an array", v)
            out: list[Any] = []
            append = out.append
            try:
                for x in v:
                    append(conv(x))
            except _Mismatch as e:
                raise _mismatch((path, seg), len(out) + 1, e.expected, v[len(out)]) from None
            phrases = [] if lo <= len(out) <= hi else _length_phrases(len(out), lo, hi)
            if bad is not None:
                failing = _collect(out, bad)
                if failing:
                    phrases.append(f"Member must satisfy constraint: [{', '.join(failing)}]")
            if phrases:
                _violations(errs, "Value ", path, seg, phrases)
            return out

        return scalars

    def _map_decoder(self, shape: Any) -> Decoder:
        lo_raw, hi_raw = _limits(shape.metadata)
        lo = int(lo_raw or 0)
        hi = _NO_MAX if hi_raw is None else int(hi_raw)
        key_sc = _scalar(shape.key)
        kconv, kbad = key_sc.conv, key_sc.bad
        value = shape.value
        nested = value.type_name in ("structure", "list", "map")
        vdec = self.decoder(value) if nested else None
        val_sc = None if nested else _scalar(value)

        def mapping(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
            if type(v) is not dict:
                raise _mismatch(path, seg, "an object", v)
            here = (path, seg)
            out: dict[Any, Any] = {}
            if vdec is not None:
                for k, x in v.items():
                    try:
                        k = kconv(k)
                    except _Mismatch as e:
                        raise _mismatch(path, seg, f"an object with {e.expected} keys", v) from None
                    out[k] = vdec(x, here, k, errs)
            else:
                assert val_sc is not None
                vconv = val_sc.conv
                for k, x in v.items():
                    try:
                        k = kconv(k)
                    except _Mismatch as e:
                        raise _mismatch(path, seg, f"an object with {e.expected} keys", v) from None
                    try:
                        out[k] = vconv(x)
                    except _Mismatch as e:
                        raise _mismatch(here, k, e.expected, x) from None
            _check_map(out, lo, hi, kbad, val_sc.bad if val_sc else None, errs, path, seg)
            return out

        return mapping

    # -- encoding (responses)

    def encoder(self, shape: Any) -> Encoder | None:
        """The encoder of a shape, or None when values go to JSON as they are."""
        key = _shape_key(shape)
        if key in self.encoders:
            pending = self.encoders[key]
            if key not in self.pending_enc:
                return pending[0]

            def late(v: Any) -> Any:  # a recursive reference: bind late
                real = pending[0]
                return v if real is None else real(v)

            return late
        cell: list[Encoder | None] = [None]
        self.encoders[key] = cell
        self.pending_enc.add(key)
        fn = self._build_encoder(shape)
        cell[0] = fn
        self.pending_enc.discard(key)
        return fn

    def _build_encoder(self, shape: Any) -> Encoder | None:
        t: str = shape.type_name
        if t == "structure":
            if shape.metadata.get("document"):
                return None
            return self.struct_encoder(shape)
        if t == "list":
            elem = self.encoder(shape.member)
            if elem is None:
                return None

            def enc_list(v: Any) -> Any:
                return [elem(x) for x in v]

            return enc_list
        if t == "map":
            val = self.encoder(shape.value)
            if val is None:
                return None

            def enc_map(v: Any) -> Any:
                return {k: val(x) for k, x in v.items()}

            return enc_map
        if t == "blob":
            return _encode_blob
        if t == "timestamp":
            fmt = shape.serialization.get("timestampFormat", "unixTimestamp").lower()
            return _encode_iso if fmt == "iso8601" else _encode_epoch
        return None

    def struct_encoder(self, shape: Any) -> Callable[[Any], dict[str, Any]]:
        table: dict[str, tuple[str, Encoder | None]] = {}
        for name, member in shape.members.items():
            table[name] = (member.serialization.get("name", name), self.encoder(member))

        def enc_struct(v: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, x in v.items():
                if x is None:
                    continue
                m = table.get(name)
                if m is None:  # not in the output shape: never sent
                    continue
                f = m[1]
                out[m[0]] = x if f is None else f(x)
            return out

        return enc_struct


def _document_decoder(v: Any, path: Path, seg: str | int, errs: Errors) -> Any:
    return v


def _encode_blob(v: Any) -> Any:
    return binascii.b2a_base64(v, newline=False).decode("ascii")


def _as_utc(v: datetime) -> datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


def _encode_epoch(v: Any) -> Any:
    if isinstance(v, datetime):
        return _as_utc(v).timestamp()
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise TypeError(f"cannot serialize {type(v).__name__} as a timestamp")


def _encode_iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return _as_utc(v).astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot serialize {type(v).__name__} as a timestamp")


# ---------------------------------------------------------------------------- per operation


class _OpCodec:
    __slots__ = ("decode", "encode", "op")

    def __init__(
        self,
        op: OperationModel,
        decode: Callable[[Any, Path, Errors], dict[str, Any]] | None,
        encode: Callable[[Any], dict[str, Any]] | None,
    ) -> None:
        self.op = op
        self.decode = decode
        self.encode = encode


# Keyed by id(); the model object is kept in the value, so an id cannot be reused.
_CODECS: dict[int, _OpCodec] = {}
_COMPILERS: dict[int, tuple[ServiceModel, _Compiler]] = {}
_COMPILE_LOCK = threading.Lock()


def _codec(op: OperationModel) -> _OpCodec:
    codec = _CODECS.get(id(op))
    if codec is not None and codec.op is op:
        return codec
    with _COMPILE_LOCK:
        service = op.service_model
        entry = _COMPILERS.get(id(service))
        if entry is None or entry[0] is not service:
            entry = (service, _Compiler())
            _COMPILERS[id(service)] = entry
        compiler = entry[1]
        ins, outs = op.input_shape, op.output_shape
        codec = _OpCodec(
            op,
            None if ins is None else compiler.struct_body(ins),
            None if outs is None else compiler.struct_encoder(outs),
        )
        _CODECS[id(op)] = codec
        return codec


def _validation_error(errs: Errors) -> ValidationError:
    n = len(errs)
    noun = "validation error" if n == 1 else "validation errors"
    return ValidationError(f"{n} {noun} detected: {'; '.join(errs)}")


def parse_request(op: OperationModel, body: bytes) -> dict[str, Any]:
    """Decode and validate a JSON 1.1 request body against ``op``'s input shape.

    Returns the parameters keyed by member name, with blobs as bytes and timestamps as
    aware UTC datetimes. Raises SerializationError for a body that is not a JSON object or
    has a member of the wrong type, and ValidationError (all violations in one message)
    for constraint failures. An empty body is an empty object (still checked for
    required members).
    """
    codec = _codec(op)
    if not body or body == b"{}":
        obj: Any = {}
    else:
        try:
            text = body.decode("utf-8")
            obj = _DECODER.decode(text)
        except (ValueError, RecursionError):  # includes UnicodeDecodeError, JSONDecodeError
            raise SerializationError("The request body is not valid JSON.") from None
        if type(obj) is not dict:
            raise SerializationError("The request body must be a JSON object.")
        if _SURROGATE_ESCAPE.search(text) is not None:
            try:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise SerializationError("The request body contains invalid Unicode.") from None
    if codec.decode is None:
        return {}
    errs: Errors = []
    params = codec.decode(obj, _ROOT, errs)
    if errs:
        raise _validation_error(errs)
    return params


def serialize_response(op: OperationModel, result: Mapping[str, Any]) -> bytes:
    """Encode ``result`` (keyed by member name) as ``op``'s JSON 1.1 response body.

    bytes become base64 text, datetimes epoch seconds (a float; naive means UTC); None
    values and members the output shape does not have are dropped.
    """
    encode = _codec(op).encode
    if encode is None:
        return b"{}"
    return _ENCODER.encode(encode(result)).encode("ascii")


def render_error(err: AwsError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of an error in the shape KMS sends it.

    The body is ``{"__type": code, "message": text}``; botocore reads the code from
    ``__type`` (after any "#" or ":") and the text from ``message`` or ``Message``.
    """
    body = _ENCODER.encode({"__type": err.code, "message": err.message}).encode("ascii")
    headers = [_CONTENT_TYPE_HEADER, (b"x-amzn-requestid", request_id.encode("ascii"))]
    return err.http_status, headers, body
