"""The AWS Query protocol (IAM, STS) and its EC2 variant, driven by botocore's shape models.

A request is a flat set of form parameters (``Tags.member.1.Key=env``) taken from an
``application/x-www-form-urlencoded`` body and/or the URL query. They are split on "." into
a tree once per request, and a decoder compiled once per input shape walks that tree: it
converts the text of every scalar to its shape's type, then checks the shape's constraints
and collects every violation into one ValidationError worded like AWS's (Coral's), with
the member paths of the JSON codec (``tags.1.member.key``). Parameters the shape does not
name are ignored. Responses are XML built with ElementTree by encoders compiled once per
output shape; blob values and sensitive strings never appear in error messages.

The wire rules in which Query and EC2 differ (parameter names, list syntax, the response
envelope, the error document) live in a protocol object: QueryProtocol, or its subclass
Ec2Protocol. An operation's protocol comes from its service model's ``protocol``, so the
module-level functions serve both.
"""

from __future__ import annotations

import binascii
import email.utils
import functools
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, SubElement, tostring

from sealbox.errors import (
    AwsError,
    ClientError,
    SerializationError,
    UnknownOperationError,
    ValidationError,
)
from sealbox.protocols.codec.compile_cache import compile_once
from sealbox.protocols.codec.json11 import (
    _INT_RANGES,
    _NO_MAX,
    _camel,
    _check_map,
    _collect,
    _compile_pattern,
    _length_phrases,
    _number_bad,
    _render,
    _shape_key,
    _violations,
)
from sealbox.protocols.codec.models import OperationModel, ServiceModel

__all__ = [
    "AWS_FAULT_NAMESPACE",
    "CONTENT_TYPE",
    "EC2",
    "QUERY",
    "Ec2Protocol",
    "InvalidActionError",
    "InvalidQueryParameterError",
    "MalformedInputError",
    "MissingActionError",
    "QueryProtocol",
    "QueryValidationError",
    "operation_for_action",
    "parse_form",
    "parse_request",
    "protocol_of",
    "render_error",
    "serialize_response",
]

CONTENT_TYPE: Final = "text/xml"
# The namespace of AWS's query front end, for errors raised before a service is known.
AWS_FAULT_NAMESPACE: Final = "http://webservices.amazon.com/AWSFault/2005-15-09"
_NO_VERSION: Final = "NO_VERSION_SPECIFIED"
_PROTOCOL_PARAMS: Final = frozenset({"Action", "Version"})

Path = tuple[Any, ...]  # as in json11: a chain of (parent, segment) pairs from the root ()
Errors = list[str]
_ROOT: Final[Path] = ()


# ---------------------------------------------------------------------------- errors


class MissingActionError(UnknownOperationError):
    """The request has no Action parameter."""

    code = "MissingAction"


class InvalidActionError(UnknownOperationError):
    """No operation has this Action at this Version (a wrong Version is this error too)."""

    code = "InvalidAction"


class InvalidQueryParameterError(ClientError):
    """The form itself is malformed: a repeated parameter, or text that is not UTF-8."""

    code = "InvalidQueryParameter"


class MalformedInputError(SerializationError):
    """A parameter's text is not a value of its shape's type (the Query SerializationError)."""

    code = "MalformedInput"


class QueryValidationError(ValidationError):
    """Constraint violations; Query services say ValidationError, not ValidationException."""

    code = "ValidationError"


def _malformed(path: Path, seg: str | int | None, expected: str) -> MalformedInputError:
    return MalformedInputError(f"Value at '{_render(path, seg)}' must be {expected}")


def _validation_error(errs: Errors) -> QueryValidationError:
    n = len(errs)
    noun = "validation error" if n == 1 else "validation errors"
    return QueryValidationError(f"{n} {noun} detected: {'; '.join(errs)}")


def _shown(text: str, limit: int = 128) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------- forms


def _pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidQueryParameterError(
            f"The {where} contains percent-encoded bytes that are not UTF-8."
        ) from None


def parse_form(body: bytes, query_string: str) -> dict[str, str]:
    """The parameters of a Query request: its URL query and its form-encoded body, merged.

    Both parts are ``application/x-www-form-urlencoded`` ("+" is a space) and must be
    UTF-8. A parameter given twice (in one part or across both) raises
    InvalidQueryParameterError rather than guessing which value the caller meant.
    """
    form: dict[str, str] = {}
    parts: list[tuple[str, str]] = []
    if query_string:
        parts.append((query_string, "query string"))
    if body:
        try:
            parts.append((body.decode("utf-8"), "request body"))
        except UnicodeDecodeError:
            raise InvalidQueryParameterError("The request body is not UTF-8 text.") from None
    for text, where in parts:
        for key, value in _pairs(text, where):
            if key in form:
                raise InvalidQueryParameterError(
                    f"The parameter {_shown(key)!r} occurs more than once in the request."
                )
            form[key] = value
    return form


class _Node:
    """One "."-separated segment of the parameter names: its own value and its children."""

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


def _tree(form: Mapping[str, str], roots: frozenset[str]) -> _Node:
    """The parameters as a tree, keeping only names whose first segment is in roots."""
    root = _Node()
    for key, value in form.items():
        parts = key.split(".")
        if parts[0] not in roots:
            continue
        node = root
        for part in parts:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        node.value = value
    return root


def _indexed(node: _Node) -> list[_Node]:
    """The children of node named 1, 2, ... (gaps allowed), in index order."""
    found = [
        (int(k), child)
        for k, child in node.children.items()
        if k.isdigit() and k.isascii() and k[0] != "0" and len(k) < 10
    ]
    found.sort(key=lambda pair: pair[0])
    return [child for _, child in found]


# ---------------------------------------------------------------------------- patterns

# Java's \p{X} / \p{Xy} (Unicode general categories), which Python's re does not know.
_CATEGORY: Final = re.compile(r"\\p\{([A-Z][a-z]?)\}")


@functools.cache
def _category_ranges() -> dict[str, str]:
    """For each general category ("Lu") and group ("L"), its code points as class ranges."""
    spans: dict[str, list[tuple[int, int]]] = {}
    category = unicodedata.category
    current, start = "", 0
    for cp in range(0x110001):
        cat = category(chr(cp)) if cp <= 0x10FFFF else ""
        if cat != current:
            if current:
                spans.setdefault(current, []).append((start, cp - 1))
            current, start = cat, cp
    out: dict[str, str] = {}
    for cat, ranges in spans.items():
        text = "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in ranges)
        out[cat] = text
        out[cat[0]] = out.get(cat[0], "") + text
    return out


def _translate_categories(pattern: str) -> str | None:
    """pattern with each \\p{X} spelled as explicit ranges, or None if one is unknown."""
    table = _category_ranges()
    out: list[str] = []
    pos, depth = 0, 0
    for m in _CATEGORY.finditer(pattern):
        before = pattern[pos : m.start()]
        depth = _class_depth(before, depth)
        ranges = table.get(m.group(1))
        if ranges is None:
            return None
        out.append(before)
        out.append(ranges if depth else f"[{ranges}]")
        pos = m.end()
    out.append(pattern[pos:])
    return "".join(out)


def _class_depth(text: str, depth: int) -> int:
    """The character-class nesting depth after text, starting at depth."""
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    return depth


def _pattern(pattern: str) -> re.Pattern[str] | None:
    """A model's (Java) pattern as a Python regex, or None if it cannot be translated."""
    if "\\p{" in pattern:
        translated = _translate_categories(pattern)
        if translated is not None:
            return _compile_pattern(translated)
    return _compile_pattern(pattern)


# ---------------------------------------------------------------------------- scalars


class _Mismatch(Exception):
    """Text that is not a value of the shape's type; the caller adds the path."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


Conv = Callable[[str], Any]
Bad = Callable[[Any], list[str] | None]


class _Scalar:
    """A compiled scalar shape: text conversion, constraint check, and whether to echo."""

    __slots__ = ("bad", "conv", "echo", "expected")

    def __init__(self, conv: Conv | None, bad: Bad | None, echo: bool, expected: str) -> None:
        self.conv = conv  # None: the text is the value
        self.bad = bad
        self.echo = echo
        self.expected = expected


def _length_limits(meta: Mapping[str, Any]) -> tuple[int, int]:
    lo, hi = meta.get("min"), meta.get("max")
    return int(lo or 0), _NO_MAX if hi is None else int(hi)


def _string_bad(meta: Mapping[str, Any]) -> Bad | None:
    lo, hi = _length_limits(meta)
    enum_list: list[str] | None = meta.get("enum")
    enum = frozenset(enum_list) if enum_list else None
    pattern: str | None = meta.get("pattern")
    rx = _pattern(pattern) if pattern else None
    if lo == 0 and hi == _NO_MAX and enum is None and rx is None:
        return None

    def bad(v: str) -> list[str] | None:
        n = len(v)
        enum_ok = enum is None or v in enum
        rx_ok = rx is None or rx.fullmatch(v) is not None
        if lo <= n <= hi and enum_ok and rx_ok:
            return None
        phrases = _length_phrases(n, lo, hi)
        if not enum_ok:
            phrases.append(f"Member must satisfy enum value set: [{', '.join(enum_list or ())}]")
        if not rx_ok:
            phrases.append(f"Member must satisfy regular expression pattern: {pattern}")
        return phrases

    return bad


def _blob_bad(meta: Mapping[str, Any]) -> Bad | None:
    lo, hi = _length_limits(meta)
    if lo == 0 and hi == _NO_MAX:
        return None

    def bad(v: bytes) -> list[str] | None:
        n = len(v)
        return None if lo <= n <= hi else _length_phrases(n, lo, hi)

    return bad


_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_FLOAT_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _int_conv(type_name: str) -> Conv:
    lo, hi = _INT_RANGES[type_name]

    def conv(v: str) -> Any:
        if _INTEGER.fullmatch(v) is None:
            raise _Mismatch("an integer")
        n = int(v)
        if lo <= n <= hi:
            return n
        raise _Mismatch(f"an integer from {lo} to {hi}")

    return conv


def _float_conv(v: str) -> Any:
    if _FLOAT.fullmatch(v) is not None:
        return float(v)
    word = _FLOAT_WORDS.get(v)
    if word is None:
        raise _Mismatch("a number")
    return word


def _bool_conv(v: str) -> Any:
    if v == "true":
        return True
    if v == "false":
        return False
    raise _Mismatch("a boolean (true or false)")


def _blob_conv(v: str) -> Any:
    if len(v) & 3:  # padded base64 only, as AWS's SDKs send it
        raise _Mismatch("a base64-encoded string")
    try:
        return binascii.a2b_base64(v, strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise _Mismatch("a base64-encoded string") from None


def _as_utc(parsed: datetime, expected: str) -> datetime:
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise _Mismatch(expected) from None


def _iso_conv(v: str) -> Any:
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        raise _Mismatch("an ISO 8601 timestamp") from None
    return _as_utc(parsed, "an ISO 8601 timestamp")


def _epoch_conv(v: str) -> Any:
    if _FLOAT.fullmatch(v) is None:
        raise _Mismatch("a timestamp in epoch seconds")
    try:
        return datetime.fromtimestamp(float(v), UTC)
    except (OverflowError, OSError, ValueError):
        raise _Mismatch("a timestamp within range") from None


def _rfc822_conv(v: str) -> Any:
    try:
        parsed = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _Mismatch("an RFC 822 timestamp") from None
    return _as_utc(parsed, "an RFC 822 timestamp")


_TIMESTAMP_CONVS: Final[dict[str, tuple[Conv, str]]] = {
    "iso8601": (_iso_conv, "an ISO 8601 timestamp"),
    "unixtimestamp": (_epoch_conv, "a timestamp in epoch seconds"),
    "rfc822": (_rfc822_conv, "an RFC 822 timestamp"),
}


def _scalar(shape: Any) -> _Scalar:
    t: str = shape.type_name
    meta: Mapping[str, Any] = shape.metadata
    echo = not meta.get("sensitive", False)
    if t == "string":
        return _Scalar(None, _string_bad(meta), echo, "a string")
    if t == "blob":
        return _Scalar(_blob_conv, _blob_bad(meta), False, "a base64-encoded string")
    if t in _INT_RANGES:
        return _Scalar(_int_conv(t), _number_bad(meta), echo, "an integer")
    if t in ("double", "float"):
        return _Scalar(_float_conv, _number_bad(meta), echo, "a number")
    if t == "boolean":
        return _Scalar(_bool_conv, None, True, "a boolean")
    if t == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "iso8601").lower()
        conv, expected = _TIMESTAMP_CONVS.get(fmt, _TIMESTAMP_CONVS["iso8601"])
        return _Scalar(conv, None, False, expected)
    return _Scalar(None, None, False, "a string")  # e.g. a "character" shape: take as sent


def _text_of(sc: _Scalar, node: _Node, path: Path, seg: str | int) -> Any:
    """The converted value of a scalar node; raises MalformedInputError."""
    v = node.value
    if v is None or node.children:
        raise _malformed(path, seg, f"{sc.expected}, not a list or structure")
    conv = sc.conv
    if conv is None:
        return v
    try:
        return conv(v)
    except _Mismatch as e:
        raise _malformed(path, seg, e.expected) from None


# ---------------------------------------------------------------------------- responses

# Characters XML 1.0 cannot carry at all, even as references.
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"cannot serialize {type(v).__name__} as a string")
    if _NOT_XML.search(v) is not None:
        return _NOT_XML.sub("\ufffd", v)
    return v


def _to_bytes(root: Element) -> bytes:
    # ElementTree leaves "\r" in text as it is, and an XML parser reads it back as "\n";
    # every raw CR in the output is text (no markup has one), so make it a reference.
    data: bytes = tostring(root, encoding="utf-8")
    return data.replace(b"\r", b"&#13;")


def _bool_text(v: Any) -> str:
    return "true" if v else "false"


def _int_text(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"cannot serialize {type(v).__name__} as an integer")
    return str(v)


def _float_text(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"cannot serialize {type(v).__name__} as a number")
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def _blob_text(v: Any) -> str:
    return binascii.b2a_base64(v, newline=False).decode("ascii")


def _utc(v: Any) -> datetime:
    if not isinstance(v, datetime):
        raise TypeError(f"cannot serialize {type(v).__name__} as a timestamp")
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _iso_text(v: Any) -> str:
    d = _utc(v)
    text = d.replace(tzinfo=None, microsecond=0).isoformat()  # strftime's %Y is not padded
    us = d.microsecond
    if us:
        text += f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return text + "Z"


def _epoch_text(v: Any) -> str:
    ts = _utc(v).timestamp()
    return str(int(ts)) if ts.is_integer() else repr(ts)


def _rfc822_text(v: Any) -> str:
    return email.utils.format_datetime(_utc(v), usegmt=True)


_TIMESTAMP_TEXTS: Final[dict[str, Callable[[Any], str]]] = {
    "iso8601": _iso_text,
    "unixtimestamp": _epoch_text,
    "rfc822": _rfc822_text,
}


def _text_encoder(shape: Any) -> Callable[[Any], str]:
    t: str = shape.type_name
    if t in _INT_RANGES:
        return _int_text
    if t in ("double", "float"):
        return _float_text
    if t == "boolean":
        return _bool_text
    if t == "blob":
        return _blob_text
    if t == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "iso8601").lower()
        return _TIMESTAMP_TEXTS.get(fmt, _iso_text)
    return _xml_text


# ---------------------------------------------------------------------------- protocols


class QueryProtocol:
    """The awsQuery wire rules. A variant overrides the methods in which it differs."""

    name: ClassVar[str] = "query"
    # Codes the query front end reports in place of the JSON protocols' ones.
    code_aliases: ClassVar[Mapping[str, str]] = {"ValidationException": "ValidationError"}

    # -- requests (consulted once per shape, when it is compiled)

    def wire_name(self, shape: Any, default: str) -> str:
        """The parameter name segment of a member, map key or map value."""
        name: str = shape.serialization.get("name", default)
        return name

    def member_key(self, name: str, member: Any) -> str:
        """The segment that names structure member ``name`` in parameters."""
        if member.type_name == "list" and member.serialization.get("flattened"):
            renamed: str | None = member.member.serialization.get("name")
            if renamed:  # botocore names a flattened list after its member
                return renamed
        return self.wire_name(member, name)

    def list_items_key(self, shape: Any) -> str | None:
        """The segment between a list's name and the element index (None: none)."""
        if shape.serialization.get("flattened"):
            return None
        key: str = shape.member.serialization.get("name", "member")
        return key

    def map_entries_key(self, shape: Any) -> str | None:
        """The segment between a map's name and the entry index (None: none)."""
        return None if shape.serialization.get("flattened") else "entry"

    # -- responses

    def envelope(
        self,
        op: OperationModel,
        namespace: str | None,
        result_wrapper: str | None,
        fill: Callable[[Element], None] | None,
        request_id: str,
    ) -> Element:
        """``<OpResponse><OpResult>...</OpResult><ResponseMetadata>...`` around a result."""
        root = _root(f"{op.name}Response", namespace)
        if fill is not None:
            fill(root if result_wrapper is None else SubElement(root, result_wrapper))
        meta = SubElement(root, "ResponseMetadata")
        SubElement(meta, "RequestId").text = _xml_text(request_id)
        return root

    def error_document(self, err: AwsError, request_id: str, namespace: str | None) -> Element:
        """``<ErrorResponse><Error><Type><Code><Message></Error><RequestId>``."""
        root = _root("ErrorResponse", namespace or AWS_FAULT_NAMESPACE)
        error = SubElement(root, "Error")
        SubElement(error, "Type").text = "Sender" if err.sender_fault else "Receiver"
        SubElement(error, "Code").text = _xml_text(self.code_aliases.get(err.code, err.code))
        SubElement(error, "Message").text = _xml_text(err.message)
        SubElement(root, "RequestId").text = _xml_text(request_id)
        return root

    def render_error(
        self, err: AwsError, request_id: str, namespace: str | None = None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """(status, headers, body) of err in this protocol's error document."""
        body = _to_bytes(self.error_document(err, request_id, namespace))
        headers = [
            (b"content-type", CONTENT_TYPE.encode("ascii")),
            (b"x-amzn-requestid", request_id.encode("ascii", "replace")),
        ]
        return err.http_status, headers, body


class Ec2Protocol(QueryProtocol):
    """EC2's variant of the Query rules.

    Parameters are named by queryName, else the capitalized locationName; lists are
    ``Name.N`` (SDKs send nothing for an empty one). Responses have ``<requestId>`` and the
    members directly under the root, with no result wrapper or ResponseMetadata; errors are
    ``<Response><Errors><Error>`` with ``<RequestID>``. Constraint and error codes are still
    the Query ones: EC2's own (InvalidParameterValue, MissingParameter...) are not mapped yet.
    """

    name: ClassVar[str] = "ec2"
    code_aliases: ClassVar[Mapping[str, str]] = {}

    def wire_name(self, shape: Any, default: str) -> str:
        serialization = shape.serialization
        query_name: str | None = serialization.get("queryName")
        if query_name:
            return query_name
        name: str | None = serialization.get("name")
        return name[:1].upper() + name[1:] if name else default

    def member_key(self, name: str, member: Any) -> str:
        return self.wire_name(member, name)

    def list_items_key(self, shape: Any) -> str | None:
        return None

    def envelope(
        self,
        op: OperationModel,
        namespace: str | None,
        result_wrapper: str | None,
        fill: Callable[[Element], None] | None,
        request_id: str,
    ) -> Element:
        root = _root(f"{op.name}Response", namespace)
        SubElement(root, "requestId").text = _xml_text(request_id)
        if fill is not None:
            fill(root)
        return root

    def error_document(self, err: AwsError, request_id: str, namespace: str | None) -> Element:
        root = Element("Response")
        error = SubElement(SubElement(root, "Errors"), "Error")
        SubElement(error, "Code").text = _xml_text(self.code_aliases.get(err.code, err.code))
        SubElement(error, "Message").text = _xml_text(err.message)
        SubElement(root, "RequestID").text = _xml_text(request_id)
        return root


QUERY: Final = QueryProtocol()
EC2: Final = Ec2Protocol()
_PROTOCOLS: Final[dict[str, QueryProtocol]] = {"query": QUERY, "ec2": EC2}


def _root(tag: str, namespace: str | None) -> Element:
    return Element(tag, {"xmlns": namespace}) if namespace else Element(tag)


def protocol_of(service: ServiceModel) -> QueryProtocol:
    """The wire rules of a Query-family service; ValueError for any other protocol."""
    name = service.metadata.get("protocol")
    proto = _PROTOCOLS.get(name) if isinstance(name, str) else None
    if proto is None:
        raise ValueError(f"service {service.service_name!r} does not speak a query protocol")
    return proto


def _namespace(service: ServiceModel) -> str | None:
    ns = service.metadata.get("xmlNamespace")
    if isinstance(ns, Mapping):  # {"uri": ...} in some models
        ns = ns.get("uri")
    return ns if isinstance(ns, str) and ns else None


# ---------------------------------------------------------------------------- compiler

_ABSENT: Final = object()  # a container that holds nothing the shape knows: not sent
Decoder = Callable[[_Node, Path, str | int, Errors], Any]
StructBody = Callable[[_Node, Path, Errors], Any]
# encoder(parent, tag, value) appends the element(s) of value to parent
Encoder = Callable[[Element, str, Any], None]
Filler = Callable[[Element, Any], None]
_ShapeKey = tuple[str, str, str]


class _Compiler:
    """Compiles the shapes of one service for one protocol; memoized, recursion-safe."""

    def __init__(self, proto: QueryProtocol) -> None:
        self.proto = proto
        self.decoders: dict[_ShapeKey, list[Decoder | None]] = {}
        self.encoders: dict[_ShapeKey, list[Encoder | None]] = {}

    # -- decoding (requests)

    def decoder(self, shape: Any) -> Decoder:
        def late(pending: list[Decoder | None]) -> Decoder:
            def call(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
                real = pending[0]
                assert real is not None
                return real(node, path, seg, errs)

            return call

        return compile_once(
            self.decoders, _shape_key(shape), lambda: self._build_decoder(shape), late
        )

    def _build_decoder(self, shape: Any) -> Decoder:
        t: str = shape.type_name
        if t == "structure":
            body, _ = self.struct_body(shape)

            def struct(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
                if node.value:
                    raise _malformed(path, seg, "a structure, not a single value")
                return body(node, (path, seg), errs)

            return struct
        if t == "list":
            return self._list_decoder(shape)
        if t == "map":
            return self._map_decoder(shape)
        return _scalar_decoder(_scalar(shape))

    def struct_body(self, shape: Any) -> tuple[StructBody, frozenset[str]]:
        """The decoder of a structure's members, and the parameter segments it reads."""
        members: list[tuple[str, str, str, Decoder]] = []
        for name, member in shape.members.items():
            key, camel = self.proto.member_key(name, member), _camel(name)
            members.append((key, name, camel, self.decoder(member)))
            own = self.proto.wire_name(member, name)
            if member.type_name == "list" and own != key:
                # botocore sends an empty flattened list as "Name=" under the member's own
                # name, though its elements go under the list member's name.
                members.append((own, name, camel, _empty_list))
        required = tuple((n, _camel(n)) for n in shape.required_members)

        def body(node: _Node, path: Path, errs: Errors) -> Any:
            children = node.children
            out: dict[str, Any] = {}
            for wire, name, camel, dec in members:
                child = children.get(wire)
                if child is not None and name not in out:
                    v = dec(child, path, camel, errs)
                    if v is not _ABSENT:
                        out[name] = v
            if not out and node.value is None and path:
                return _ABSENT
            for name, camel in required:
                if name not in out:
                    _violations(errs, "Value null ", path, camel, ["Member must not be null"])
            return out

        return body, frozenset(m[0] for m in members)

    def _list_decoder(self, shape: Any) -> Decoder:
        lo, hi = _length_limits(shape.metadata)
        items_key = self.proto.list_items_key(shape)
        member = shape.member
        nested = member.type_name in ("structure", "list", "map")
        elem = self.decoder(member) if nested else None
        sc = None if nested else _scalar(member)

        def decode(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
            if node.value:
                raise _malformed(path, seg, "a list, not a single value")
            holder = node if items_key is None else node.children.get(items_key)
            items = _indexed(holder) if holder is not None else []
            here = (path, seg)
            out: list[Any] = []
            if elem is not None:
                for child in items:
                    v = elem(child, here, len(out) + 1, errs)
                    if v is not _ABSENT:
                        out.append(v)
            else:
                assert sc is not None
                for child in items:
                    out.append(_text_of(sc, child, here, len(out) + 1))
            if not out and node.value is None:
                return _ABSENT  # "Name=" (an empty value) is the empty list
            phrases = [] if lo <= len(out) <= hi else _length_phrases(len(out), lo, hi)
            if sc is not None and sc.bad is not None:
                failing = _collect(out, sc.bad)
                if failing:
                    phrases.append(f"Member must satisfy constraint: [{', '.join(failing)}]")
            if phrases:
                _violations(errs, "Value ", path, seg, phrases)
            return out

        return decode

    def _map_decoder(self, shape: Any) -> Decoder:
        lo, hi = _length_limits(shape.metadata)
        entries_key = self.proto.map_entries_key(shape)
        key_name = self.proto.wire_name(shape.key, "key")
        value_name = self.proto.wire_name(shape.value, "value")
        key_sc = _scalar(shape.key)
        value = shape.value
        nested = value.type_name in ("structure", "list", "map")
        vdec = self.decoder(value) if nested else None
        val_sc = None if nested else _scalar(value)

        def decode(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
            if node.value:
                raise _malformed(path, seg, "a map, not a single value")
            holder = node if entries_key is None else node.children.get(entries_key)
            entries = _indexed(holder) if holder is not None else []
            here = (path, seg)
            out: dict[Any, Any] = {}
            for i, entry in enumerate(entries, 1):
                knode = entry.children.get(key_name)
                vnode = entry.children.get(value_name)
                if knode is None or vnode is None:
                    expected = f"an entry with a {key_name} and a {value_name}"
                    raise _malformed(here, str(i), expected)
                k = _text_of(key_sc, knode, here, str(i))
                if vdec is not None:
                    v = vdec(vnode, here, k, errs)
                    if v is _ABSENT:
                        raise _malformed(here, k, "a value")
                    out[k] = v
                else:
                    assert val_sc is not None
                    out[k] = _text_of(val_sc, vnode, here, k)
            if not out and node.value is None:
                return _ABSENT
            _check_map(out, lo, hi, key_sc.bad, val_sc.bad if val_sc else None, errs, path, seg)
            return out

        return decode

    # -- encoding (responses)

    def encoder(self, shape: Any) -> Encoder:
        def late(pending: list[Encoder | None]) -> Encoder:
            def call(parent: Element, tag: str, v: Any) -> None:
                real = pending[0]
                assert real is not None
                real(parent, tag, v)

            return call

        return compile_once(
            self.encoders, _shape_key(shape), lambda: self._build_encoder(shape), late
        )

    def _build_encoder(self, shape: Any) -> Encoder:
        t: str = shape.type_name
        if t == "structure":
            fill = self.struct_filler(shape)

            def enc_struct(parent: Element, tag: str, v: Any) -> None:
                fill(SubElement(parent, tag), v)

            return enc_struct
        if t == "list":
            return self._list_encoder(shape)
        if t == "map":
            return self._map_encoder(shape)
        text = _text_encoder(shape)

        def enc_scalar(parent: Element, tag: str, v: Any) -> None:
            SubElement(parent, tag).text = text(v)

        return enc_scalar

    def struct_filler(self, shape: Any) -> Filler:
        members: list[tuple[str, str, Encoder]] = []
        for name, member in shape.members.items():
            members.append((name, _response_tag(name, member), self.encoder(member)))

        def fill(element: Element, v: Any) -> None:
            get = v.get
            for name, tag, enc in members:
                x = get(name)
                if x is not None:  # None, and names the shape lacks, are not sent
                    enc(element, tag, x)

        return fill

    def _list_encoder(self, shape: Any) -> Encoder:
        elem = self.encoder(shape.member)
        if shape.serialization.get("flattened"):

            def enc_flat(parent: Element, tag: str, v: Any) -> None:
                for x in v:
                    elem(parent, tag, x)

            return enc_flat
        item: str = shape.member.serialization.get("name", "member")

        def enc_list(parent: Element, tag: str, v: Any) -> None:
            wrapper = SubElement(parent, tag)
            for x in v:
                elem(wrapper, item, x)

        return enc_list

    def _map_encoder(self, shape: Any) -> Encoder:
        key_enc = self.encoder(shape.key)
        val_enc = self.encoder(shape.value)
        key_tag: str = shape.key.serialization.get("name", "key")
        val_tag: str = shape.value.serialization.get("name", "value")

        def entries(parent: Element, tag: str, v: Any, entry_tag: str | None) -> None:
            for k, x in v.items():
                entry = SubElement(parent, entry_tag or tag)
                key_enc(entry, key_tag, k)
                val_enc(entry, val_tag, x)

        if shape.serialization.get("flattened"):

            def enc_flat(parent: Element, tag: str, v: Any) -> None:
                entries(parent, tag, v, None)

            return enc_flat

        def enc_map(parent: Element, tag: str, v: Any) -> None:
            entries(SubElement(parent, tag), tag, v, "entry")

        return enc_map


def _empty_list(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
    return [] if node.value == "" and not node.children else _ABSENT


def _scalar_decoder(sc: _Scalar) -> Decoder:
    bad, echo = sc.bad, sc.echo
    if bad is None:

        def plain(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
            return _text_of(sc, node, path, seg)

        return plain

    def checked(node: _Node, path: Path, seg: str | int, errs: Errors) -> Any:
        x = _text_of(sc, node, path, seg)
        phrases = bad(x)
        if phrases:
            _violations(errs, f"Value '{x}' " if echo else "Value ", path, seg, phrases)
        return x

    return checked


def _response_tag(name: str, member: Any) -> str:
    """The element name of a structure member (botocore's _member_key_name)."""
    if member.type_name == "list" and member.serialization.get("flattened"):
        renamed: str | None = member.member.serialization.get("name")
        if renamed:
            return renamed
    tag: str = member.serialization.get("name", name)
    return tag


# ---------------------------------------------------------------------------- per operation


class _OpCodec:
    __slots__ = ("decode", "fill", "namespace", "op", "proto", "roots", "version", "wrapper")

    def __init__(
        self,
        op: OperationModel,
        proto: QueryProtocol,
        decode: StructBody | None,
        roots: frozenset[str],
        fill: Filler | None,
        wrapper: str | None,
    ) -> None:
        self.op = op
        self.proto = proto
        self.decode = decode
        self.roots = roots - _PROTOCOL_PARAMS  # Action and Version are never members
        self.fill = fill
        self.wrapper = wrapper
        service = op.service_model
        self.namespace = _namespace(service)
        self.version: str = service.api_version


# Keyed by id(); the model object is kept in the value, so an id cannot be reused.
_CODECS: dict[int, _OpCodec] = {}
_COMPILERS: dict[int, tuple[ServiceModel, _Compiler]] = {}
_ACTIONS: dict[int, tuple[ServiceModel, dict[str, OperationModel]]] = {}
_LOCK = threading.Lock()


def _codec(op: OperationModel) -> _OpCodec:
    codec = _CODECS.get(id(op))
    if codec is not None and codec.op is op:
        return codec
    with _LOCK:
        service = op.service_model
        entry = _COMPILERS.get(id(service))
        if entry is None or entry[0] is not service:
            entry = (service, _Compiler(protocol_of(service)))
            _COMPILERS[id(service)] = entry
        compiler = entry[1]
        ins, outs = op.input_shape, op.output_shape
        decode, roots = (None, frozenset[str]()) if ins is None else compiler.struct_body(ins)
        fill = None if outs is None else compiler.struct_filler(outs)
        wrapper = None if outs is None else outs.serialization.get("resultWrapper")
        codec = _OpCodec(op, compiler.proto, decode, roots, fill, wrapper)
        _CODECS[id(op)] = codec
        return codec


def _action_table(service: ServiceModel) -> dict[str, OperationModel]:
    entry = _ACTIONS.get(id(service))
    if entry is not None and entry[0] is service:
        return entry[1]
    protocol_of(service)
    table = {name: service.operation_model(name) for name in service.operation_names}
    with _LOCK:
        _ACTIONS[id(service)] = (service, table)
    return table


def _invalid_action(action: str, version: str | None) -> InvalidActionError:
    shown = _NO_VERSION if version is None else _shown(version)
    return InvalidActionError(f"Could not find operation {_shown(action)} for version {shown}")


# ---------------------------------------------------------------------------- public API


def operation_for_action(service: ServiceModel, form: Mapping[str, str]) -> OperationModel:
    """The operation a request's ``Action`` names, at the ``Version`` it names.

    No Action raises MissingActionError; an unknown (or empty) Action, or a Version other
    than the service's API version (missing: "NO_VERSION_SPECIFIED"), raises
    InvalidActionError "Could not find operation X for version Y", as AWS does.
    """
    action = form.get("Action")
    if action is None:
        raise MissingActionError("The request must contain the parameter Action.")
    version = form.get("Version")
    op = _action_table(service).get(action)
    if op is None or version != service.api_version:
        raise _invalid_action(action, version)
    return op


def parse_request(op: OperationModel, form: Mapping[str, str]) -> dict[str, Any]:
    """Decode and validate the parameters of a Query request against ``op``'s input shape.

    Returns the parameters keyed by member name: integers as int, booleans as bool,
    timestamps as aware UTC datetimes, blobs as bytes, lists and maps as list and dict.
    A wrong Version raises InvalidActionError; text that is not a value of its member's
    type raises MalformedInputError; constraint failures raise QueryValidationError with
    every violation in one message. Parameters the shape does not name are ignored.
    """
    codec = _codec(op)
    version = form.get("Version")
    if version != codec.version:
        raise _invalid_action(op.name, version)
    decode = codec.decode
    if decode is None:
        return {}
    errs: Errors = []
    params: dict[str, Any] = decode(_tree(form, codec.roots), _ROOT, errs)
    if errs:
        raise _validation_error(errs)
    return params


def serialize_response(op: OperationModel, result: Mapping[str, Any], request_id: str) -> bytes:
    """The XML document of ``op``'s response carrying ``result`` (keyed by member name).

    bytes become base64 text, datetimes ISO 8601 in UTC with "Z" (naive means UTC),
    booleans "true"/"false"; None values and members the output shape lacks are dropped.
    Characters XML cannot carry are replaced by U+FFFD. Raises TypeError for a value of
    the wrong type (a bug in the caller).
    """
    codec = _codec(op)
    fill = codec.fill
    filler: Callable[[Element], None] | None = None
    if fill is not None:

        def filler(element: Element) -> None:
            fill(element, result)

    root = codec.proto.envelope(op, codec.namespace, codec.wrapper, filler, request_id)
    return _to_bytes(root)


def render_error(
    err: AwsError, request_id: str, service: ServiceModel | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of an error as a Query service sends it.

    With ``service``, the error document is that service's protocol's (``ErrorResponse``
    in its namespace, or EC2's ``Response``); without, the Query one in AWS's fault
    namespace. Query services report ValidationException as ValidationError.
    """
    if service is None:
        return QUERY.render_error(err, request_id)
    return protocol_of(service).render_error(err, request_id, _namespace(service))
