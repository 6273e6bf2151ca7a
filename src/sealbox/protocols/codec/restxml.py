"""The REST-XML protocol (S3), driven by botocore's shape models.

A request's members come from the URI path, the query string, headers (one member each,
or a prefix map such as ``x-amz-meta-*``) and the body, which holds the input shape's
"payload" member: bytes the endpoint streams itself, a string (a bucket policy) or an XML
document. Responses mirror this. Everything shape-dependent is compiled once per operation
and cached, since every S3 request passes through here. XML from clients is parsed with
defusedxml (no DTDs, entities or external references).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException  # type: ignore[import-untyped,unused-ignore]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped,unused-ignore]

from sealbox.protocols.codec.compile_cache import compile_once
from sealbox.protocols.codec.json11 import _INT_RANGES, _shape_key
from sealbox.protocols.codec.models import OperationModel, ServiceModel
from sealbox.protocols.s3_errors import InvalidArgument, MalformedXML, MissingRequestBodyError

__all__ = ["S3_NAMESPACE", "parse_input", "serialize_error", "serialize_output"]

S3_NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_XML_TYPE: Final = (b"content-type", b"application/xml")

# S3's root element for outputs whose body members are not wrapped in a payload member;
# botocore does not model it (its parser ignores the root's name). Otherwise: NameResult.
_ROOTS: Final[dict[str, str]] = {
    "ListBuckets": "ListAllMyBucketsResult",
    "ListDirectoryBuckets": "ListAllMyDirectoryBucketsResult",
    "ListObjects": "ListBucketResult",
    "ListObjectsV2": "ListBucketResult",
    "ListObjectVersions": "ListVersionsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
    "ListParts": "ListPartsResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "DeleteObjects": "DeleteResult",
    "GetBucketTagging": "Tagging",
    "GetObjectTagging": "Tagging",
    "GetBucketVersioning": "VersioningConfiguration",
    "GetBucketAcl": "AccessControlPolicy",
    "GetObjectAcl": "AccessControlPolicy",
    "GetObjectAttributes": "GetObjectAttributesResponse",
    "GetBucketCors": "CORSConfiguration",
    "GetBucketLifecycle": "LifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "LifecycleConfiguration",
    "GetBucketLogging": "BucketLoggingStatus",
    "GetBucketNotification": "NotificationConfiguration",
    "GetBucketNotificationConfiguration": "NotificationConfiguration",
    "GetBucketRequestPayment": "RequestPaymentConfiguration",
    "GetBucketWebsite": "WebsiteConfiguration",
    "GetBucketAccelerateConfiguration": "AccelerateConfiguration",
    "ListBucketAnalyticsConfigurations": "ListBucketAnalyticsConfigurationResult",
    "ListBucketInventoryConfigurations": "ListInventoryConfigurationsResult",
    "ListBucketMetricsConfigurations": "ListMetricsConfigurationsResult",
}
# Outputs whose one body member is the root element's text. botocore cannot model
# GetBucketLocation; its handler parse_get_bucket_location reads the root's text.
_TEXT_ROOTS: Final[dict[str, str]] = {"GetBucketLocation": "LocationConstraint"}

# Conditional-request dates a server must ignore when invalid (RFC 9110 13.1.3/13.1.4).
_LENIENT_HEADERS: Final = frozenset({"if-modified-since", "if-unmodified-since"})

# ---------------------------------------------------------------------------- text → value


class _Bad(Exception):
    """Text that is not a value of its shape's type; ``expected`` says what would be."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


TextConv = Callable[[str], Any]
_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _int_conv(type_name: str) -> TextConv:
    lo, hi = _INT_RANGES[type_name]

    def conv(v: str) -> Any:
        t = v.strip()
        if _INTEGER.fullmatch(t) is None or not lo <= int(t) <= hi:
            raise _Bad("an integer or within integer range")
        return int(t)

    return conv


def _float_conv(v: str) -> Any:
    t = v.strip()
    if _FLOAT.fullmatch(t) is None:
        raise _Bad("a number")
    return float(t)


def _bool_conv(v: str) -> Any:
    t = v.strip().lower()
    if t == "true":
        return True
    if t == "false":
        return False
    raise _Bad("a boolean (true or false)")


def _blob_conv(v: str) -> Any:
    try:
        return base64.b64decode(v.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("base64-encoded") from None


def _time_conv(v: str) -> Any:
    """ISO 8601 (bodies, queries) or RFC 1123 (headers), whatever the shape's format."""
    t = v.strip()
    try:
        d = datetime.fromisoformat(t) if t[:1].isdigit() else email.utils.parsedate_to_datetime(t)
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _Bad("a valid date") from None


def _json_conv(v: str) -> Any:
    try:
        return json.loads(base64.b64decode(v.strip(), validate=True))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are too
        raise _Bad("base64-encoded JSON") from None


def _header_items(v: str) -> list[str]:
    """A comma-separated header list; items may be "quoted", with \\" inside."""
    items: list[str] = []
    if not v.strip():
        return items
    i, n = 0, len(v)
    while i <= n:
        while i < n and v[i] in " \t":
            i += 1
        if i < n and v[i] == '"':
            buf: list[str] = []
            i += 1
            while i < n and v[i] != '"':
                if v[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(v[i])
                i += 1
            items.append("".join(buf))
            end = v.find(",", i)
        else:
            end = v.find(",", i)
            items.append(v[i : n if end < 0 else end].strip())
        if end < 0:
            break
        i = end + 1
    return items


def _text_conv(shape: Any, in_header: bool = False) -> TextConv | None:
    """Text → value for a scalar (or, in a header, a list) shape; None: the text is it."""
    t: str = shape.type_name
    if t in _INT_RANGES:
        return _int_conv(t)
    if t in ("double", "float"):
        return _float_conv
    if t == "boolean":
        return _bool_conv
    if t == "timestamp":
        return _time_conv
    if t == "blob":
        return _blob_conv
    if t == "string" and in_header and shape.serialization.get("jsonvalue"):
        return _json_conv
    if t == "list" and in_header:
        item = _text_conv(shape.member)

        def items(v: str) -> Any:
            raw = _header_items(v)
            return raw if item is None else [item(x) for x in raw]

        return items
    return None


# ---------------------------------------------------------------------------- value → text

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
TextOut = Callable[[Any], str]


def _str_text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"cannot serialize {type(v).__name__} as a string")
    return v


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
    return ("Infinity" if f > 0 else "-Infinity") if math.isinf(f) else repr(f)


def _bool_text(v: Any) -> str:
    if not isinstance(v, bool):
        raise TypeError(f"cannot serialize {type(v).__name__} as a boolean")
    return "true" if v else "false"


def _blob_text(v: Any) -> str:
    return base64.b64encode(v).decode("ascii")


def _utc(v: Any) -> datetime:
    if not isinstance(v, datetime):
        raise TypeError(f"cannot serialize {type(v).__name__} as a timestamp")
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _iso_text(v: Any) -> str:
    d = _utc(v)  # S3's form: always milliseconds; strftime does not pad years < 1000
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond // 1000:03d}Z"
    )


def _rfc1123_text(v: Any) -> str:
    return email.utils.format_datetime(_utc(v), usegmt=True)


def _epoch_text(v: Any) -> str:
    ts = _utc(v).timestamp()
    return str(int(ts)) if ts.is_integer() else repr(ts)


def _json_text(v: Any) -> str:
    return base64.b64encode(json.dumps(v, separators=(",", ":")).encode()).decode("ascii")


def _quoted(v: str) -> str:
    return '"' + v.replace('"', '\\"') + '"' if '"' in v or "," in v else v


def _out_text(shape: Any, in_header: bool = False) -> TextOut:
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
        default = "rfc822" if in_header else "iso8601"
        fmt = shape.serialization.get("timestampFormat", default).lower()
        return {"rfc822": _rfc1123_text, "unixtimestamp": _epoch_text}.get(fmt, _iso_text)
    if t == "string" and in_header and shape.serialization.get("jsonvalue"):
        return _json_text
    if t == "list" and in_header:
        item = _out_text(shape.member, in_header=True)
        quote = shape.member.type_name == "string"
        return lambda v: ",".join(_quoted(item(x)) if quote else item(x) for x in v)
    return _str_text


def _escape(s: str) -> str:
    if _NOT_XML.search(s) is not None:
        s = _NOT_XML.sub("\ufffd", s)
    # A raw CR would be read back as LF, so it becomes a reference too.
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attr(s: str) -> str:
    return _escape(s).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_value(text: str) -> bytes:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("a header value cannot contain CR, LF or NUL")
    try:  # request headers are read as latin-1, so values round-trip byte for byte
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# ---------------------------------------------------------------------------- shapes

XmlDec = Callable[[Element], Any]
# enc(out, tag, value) appends the element(s) of value, as text, to out
XmlEnc = Callable[[list[str], str, Any], None]
Fill = Callable[[list[str], Mapping[str, Any]], None]
Attrs = Callable[[Mapping[str, Any]], str]
_ShapeKey = tuple[str, str, str]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _tag(name: str, member: Any) -> str:
    """The element name of a structure member (botocore's _member_key_name)."""
    if member.type_name == "list" and member.serialization.get("flattened"):
        renamed: str | None = member.member.serialization.get("name")
        if renamed:
            return renamed
    tag: str = member.serialization.get("name", name)
    return tag


def _flat(member: Any) -> bool:
    return member.type_name in ("list", "map") and bool(member.serialization.get("flattened"))


def _ns_decl(shape: Any) -> str:
    ns = shape.serialization.get("xmlNamespace")
    if not isinstance(ns, Mapping) or not ns.get("uri") or ns.get("uri") == S3_NAMESPACE:
        return ""
    prefix = ns.get("prefix")
    name = f"xmlns:{prefix}" if prefix else "xmlns"
    return f' {name}="{_escape_attr(ns["uri"])}"'


def _body_members(shape: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in shape.members.items() if "location" not in m.serialization]


class _Compiler:
    """Compiles the XML decoders and encoders of one service's shapes, memoized."""

    def __init__(self) -> None:
        self.decoders: dict[_ShapeKey, list[XmlDec | None]] = {}
        self.encoders: dict[_ShapeKey, list[XmlEnc | None]] = {}
        self.fills: dict[_ShapeKey, tuple[Fill, Attrs]] = {}

    # -- decoding (request bodies)

    def decoder(self, shape: Any) -> XmlDec:
        def late(cell: list[XmlDec | None]) -> XmlDec:
            def call(el: Element) -> Any:
                real = cell[0]
                assert real is not None
                return real(el)

            return call

        return compile_once(self.decoders, _shape_key(shape), lambda: self._decoder(shape), late)

    def _decoder(self, shape: Any) -> XmlDec:
        t: str = shape.type_name
        if t == "structure":
            return self._struct_decoder(shape)
        if t == "list":
            item_tag: str = shape.member.serialization.get("name", "member")
            item = self.decoder(shape.member)
            return lambda el: [item(c) for c in el if _local(c.tag) == item_tag]
        if t == "map":
            entry = self._entry_decoder(shape)
            if shape.serialization.get("flattened"):
                return lambda el: dict([entry(el)])
            return lambda el: dict(entry(c) for c in el if _local(c.tag) == "entry")
        conv = _text_conv(shape)

        def scalar(el: Element) -> Any:
            if len(el):
                raise MalformedXML()
            text = el.text or ""
            if conv is None:
                return text
            try:
                return conv(text)
            except _Bad:
                raise MalformedXML() from None

        return scalar

    def _entry_decoder(self, shape: Any) -> Callable[[Element], tuple[Any, Any]]:
        key_tag: str = shape.key.serialization.get("name", "key")
        value_tag: str = shape.value.serialization.get("name", "value")
        key, value = self.decoder(shape.key), self.decoder(shape.value)

        def entry(el: Element) -> tuple[Any, Any]:
            found = {_local(c.tag): c for c in el}
            k, v = found.get(key_tag), found.get(value_tag)
            if k is None or v is None:
                raise MalformedXML()
            return key(k), value(v)

        return entry

    def _struct_decoder(self, shape: Any) -> XmlDec:
        elements: list[tuple[str, str, XmlDec, str | None]] = []
        attrs: list[tuple[str, str]] = []
        for name, member in _body_members(shape):
            if member.serialization.get("xmlAttribute"):
                attrs.append((name, member.serialization["name"].rpartition(":")[2]))
                continue
            kind = member.type_name if _flat(member) else None
            dec = self.decoder(member.member) if kind == "list" else self.decoder(member)
            elements.append((name, _tag(name, member), dec, kind))
        names = {e[0] for e in elements}
        required = [n for n in shape.required_members if n in names]

        def struct(el: Element) -> Any:
            groups: dict[str, list[Element]] = {}
            for child in el:
                groups.setdefault(_local(child.tag), []).append(child)
            out: dict[str, Any] = {}
            for name, tag, dec, kind in elements:
                found = groups.get(tag)
                if not found:
                    continue
                if kind == "list":
                    out[name] = [dec(x) for x in found]
                elif kind == "map":
                    out[name] = {k: v for x in found for k, v in dec(x).items()}
                else:
                    out[name] = dec(found[0])
            for name, local in attrs:
                for attr, value in el.attrib.items():
                    if _local(attr) == local:
                        out[name] = value
            for name in required:
                if name not in out:
                    raise MalformedXML()
            return out

        return struct

    # -- encoding (response bodies)

    def encoder(self, shape: Any) -> XmlEnc:
        def late(cell: list[XmlEnc | None]) -> XmlEnc:
            def call(out: list[str], tag: str, v: Any) -> None:
                real = cell[0]
                assert real is not None
                real(out, tag, v)

            return call

        return compile_once(self.encoders, _shape_key(shape), lambda: self._encoder(shape), late)

    def _encoder(self, shape: Any) -> XmlEnc:
        t: str = shape.type_name
        if t == "structure":
            fill, attrs = self.struct_filler(shape)

            def struct(out: list[str], tag: str, v: Any) -> None:
                out.append(f"<{tag}{attrs(v)}>")
                fill(out, v)
                out.append(f"</{tag}>")

            return struct
        if t == "list":
            return self._list_encoder(shape)
        if t == "map":
            return self._map_encoder(shape)
        text = _out_text(shape)

        def scalar(out: list[str], tag: str, v: Any) -> None:
            out.append(f"<{tag}>{_escape(text(v))}</{tag}>")

        return scalar

    def _list_encoder(self, shape: Any) -> XmlEnc:
        item = self.encoder(shape.member)
        if shape.serialization.get("flattened"):

            def flat(out: list[str], tag: str, v: Any) -> None:
                for x in v:
                    item(out, tag, x)

            return flat
        item_tag: str = shape.member.serialization.get("name", "member")

        def wrapped(out: list[str], tag: str, v: Any) -> None:
            out.append(f"<{tag}>")
            for x in v:
                item(out, item_tag, x)
            out.append(f"</{tag}>")

        return wrapped

    def _map_encoder(self, shape: Any) -> XmlEnc:
        key, value = self.encoder(shape.key), self.encoder(shape.value)
        key_tag: str = shape.key.serialization.get("name", "key")
        value_tag: str = shape.value.serialization.get("name", "value")
        flat = bool(shape.serialization.get("flattened"))

        def enc(out: list[str], tag: str, v: Any) -> None:
            entry = tag if flat else "entry"
            if not flat:
                out.append(f"<{tag}>")
            for k, x in v.items():
                out.append(f"<{entry}>")
                key(out, key_tag, k)
                value(out, value_tag, x)
                out.append(f"</{entry}>")
            if not flat:
                out.append(f"</{tag}>")

        return enc

    def struct_filler(self, shape: Any) -> tuple[Fill, Attrs]:
        """Writers of a structure's child elements and of its opening tag's attributes."""
        key = _shape_key(shape)
        cached = self.fills.get(key)
        if cached is not None:
            return cached
        elements: list[tuple[str, str, XmlEnc]] = []
        attributes: list[tuple[str, str, TextOut]] = []

        def fill(out: list[str], v: Mapping[str, Any]) -> None:
            get = v.get
            for name, tag, enc in elements:
                x = get(name)
                if x is not None:
                    enc(out, tag, x)

        decl = _ns_decl(shape)

        def attrs(v: Mapping[str, Any]) -> str:
            if not attributes:
                return decl
            parts = [decl]
            for name, attr, text in attributes:
                x = v.get(name)
                if x is not None:
                    parts.append(f' {attr}="{_escape_attr(text(x))}"')
            return "".join(parts)

        self.fills[key] = (fill, attrs)  # before the members: a shape may contain itself
        for name, member in _body_members(shape):
            if member.serialization.get("xmlAttribute"):
                attributes.append((name, member.serialization["name"], _out_text(member)))
            else:
                elements.append((name, _tag(name, member), self.encoder(member)))
        return fill, attrs


# ---------------------------------------------------------------------------- operations

Body = Callable[[Mapping[str, Any]], bytes]
ParseBody = Callable[[bytes | None, dict[str, Any]], None]
_Uri = tuple[str, str, TextConv | None]
_Query = tuple[str, TextConv | None, bool]  # member, conv, is a list
_Header = tuple[str, str, TextConv | None, bool]  # member, header, conv, ignore if invalid


def _convert(conv: TextConv | None, text: str, wire: str) -> Any:
    if conv is None:
        return text
    try:
        return conv(text)
    except _Bad as e:
        shown = text if len(text) <= 256 else text[:256] + "..."
        raise InvalidArgument(f"Provided {wire} not {e.expected}", wire, shown) from None


def _parse_xml(body: bytes, root: str) -> Element:
    try:
        el: Element = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, LookupError):
        raise MalformedXML() from None
    if _local(el.tag) != root:
        raise MalformedXML()
    return el


class _Input:
    """The compiled reader of one operation's requests."""

    def __init__(self, shape: Any, compiler: _Compiler) -> None:
        self.uri: list[_Uri] = []
        self.query: dict[str, _Query] = {}
        self.query_map: tuple[str, bool] | None = None  # member, values are lists
        self.headers: list[_Header] = []
        self.prefix_maps: list[tuple[str, str]] = []
        self.required: list[tuple[str, str]] = []  # member, wire name
        self.body: ParseBody | None = None
        if shape is None:
            return
        required = set(shape.required_members)
        for name, member in shape.members.items():
            loc = member.serialization.get("location")
            wire: str = member.serialization.get("name", name)
            if loc == "uri":
                self.uri.append((name, wire, _text_conv(member)))
            elif loc == "querystring" and member.type_name == "map":
                self.query_map = (name, member.value.type_name == "list")
            elif loc == "querystring":
                many = member.type_name == "list"
                self.query[wire] = (name, _text_conv(member.member if many else member), many)
            elif loc == "header":
                low = wire.lower()
                conv = _text_conv(member, in_header=True)
                self.headers.append((name, low, conv, low in _LENIENT_HEADERS))
            elif loc == "headers":
                self.prefix_maps.append((name, wire.lower()))
            if loc in ("uri", "querystring", "header") and name in required:
                self.required.append((name, wire))
        self.body = _body_reader(shape, compiler)

    def parse(
        self,
        uri_params: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, wire, conv in self.uri:
            text = uri_params.get(wire)
            if text is not None:
                out[name] = _convert(conv, text, wire)
        if self.query or self.query_map:
            self._parse_query(query, out)
        for name, low, conv, lenient in self.headers:
            text = headers.get(low)
            if text is None:
                continue
            try:
                out[name] = _convert(conv, text, low)
            except InvalidArgument:
                if not lenient:
                    raise
        for name, prefix in self.prefix_maps:
            found = {
                k[len(prefix) :].lower(): v
                for k, v in headers.items()
                if k.startswith(prefix) and len(k) > len(prefix)
            }
            if found:
                out[name] = found
        for name, wire in self.required:
            if name not in out:
                raise InvalidArgument(f"Missing required parameter {wire}", wire)
        if self.body is not None:
            self.body(body, out)
        return out

    def _parse_query(self, query: Sequence[tuple[str, str]], out: dict[str, Any]) -> None:
        members, rest = self.query, self.query_map
        extra: dict[str, Any] = {}
        for wire, text in query:
            entry = members.get(wire)
            if entry is None:
                if rest is not None:
                    if rest[1]:
                        extra.setdefault(wire, []).append(text)
                    else:
                        extra.setdefault(wire, text)
                continue
            name, conv, many = entry
            if many:
                out.setdefault(name, []).append(_convert(conv, text, wire))
            elif name not in out:  # a repeated single value: the first one counts
                out[name] = _convert(conv, text, wire)
        if rest is not None and extra:
            out[rest[0]] = extra


def _body_reader(shape: Any, compiler: _Compiler) -> ParseBody | None:
    """The reader of a request body into the parameters, None if nothing is read."""
    payload: str | None = shape.serialization.get("payload")
    if payload is None:
        if not _body_members(shape):
            return None
        root: str = shape.serialization.get("name", shape.name)
        whole = compiler.decoder(shape)

        def members(body: bytes | None, out: dict[str, Any]) -> None:
            if body and body.strip():
                out.update(whole(_parse_xml(body, root)))

        return members
    member = shape.members[payload]
    required = payload in shape.required_members
    if member.type_name == "string":

        def text(body: bytes | None, out: dict[str, Any]) -> None:
            if not body:
                if required:
                    raise MissingRequestBodyError()
                return
            try:
                out[payload] = body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument("The request body is not UTF-8 text.") from None

        return text
    if member.type_name != "structure":
        return None  # a blob or stream: the endpoint reads the body itself
    tag: str = member.serialization.get("name", payload)
    dec = compiler.decoder(member)

    def document(body: bytes | None, out: dict[str, Any]) -> None:
        if not body or not body.strip():
            if required:
                raise MalformedXML()
            return
        out[payload] = dec(_parse_xml(body, tag))

    return document


class _Output:
    """The compiled writer of one operation's responses."""

    def __init__(self, op: OperationModel, compiler: _Compiler) -> None:
        self.status = int(op.http.get("responseCode", 200))
        self.headers: list[tuple[str, bytes, TextOut]] = []
        self.prefix_maps: list[tuple[str, str]] = []
        self.body: Body | None = None
        self.xml = False
        shape = op.output_shape
        if shape is None:
            return
        for name, member in shape.members.items():
            loc = member.serialization.get("location")
            wire: str = member.serialization.get("name", name)
            if loc == "header":
                text = _out_text(member, in_header=True)
                self.headers.append((name, wire.lower().encode("ascii"), text))
            elif loc == "headers":
                self.prefix_maps.append((name, wire.lower()))
        self._compile_body(op, shape, compiler)

    def _compile_body(self, op: OperationModel, shape: Any, compiler: _Compiler) -> None:
        payload: str | None = shape.serialization.get("payload")
        text_root = _TEXT_ROOTS.get(op.name)
        if text_root is not None:
            self.body, self.xml = _text_root_writer(text_root, _body_members(shape)), True
        elif payload is None:
            if _body_members(shape):
                root = _ROOTS.get(op.name, f"{op.name}Result")
                fill, attrs = compiler.struct_filler(shape)
                self.body, self.xml = _document_writer(root, fill, attrs, None), True
        else:
            member = shape.members[payload]
            if member.type_name == "structure":
                root = member.serialization.get("name", payload)
                fill, attrs = compiler.struct_filler(member)
                self.body, self.xml = _document_writer(root, fill, attrs, payload), True
            elif member.type_name == "string":
                self.body = lambda result: _str_text(result.get(payload) or "").encode("utf-8")
            # a blob or stream payload (GetObject's Body): the endpoint streams it

    def serialize(self, result: Mapping[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers: list[tuple[bytes, bytes]] = []
        for name, header, text in self.headers:
            v = result.get(name)
            if v is not None and v != []:
                headers.append((header, _header_value(text(v))))
        for name, prefix in self.prefix_maps:
            for k, v in (result.get(name) or {}).items():
                if not _TOKEN.fullmatch(k):
                    raise ValueError(f"{k!r} cannot be part of a header name")
                headers.append(((prefix + k).lower().encode("ascii"), _header_value(_str_text(v))))
        body = b"" if self.body is None else self.body(result)
        if body and self.xml and all(h[0] != b"content-type" for h in headers):
            headers.append(_XML_TYPE)
        return self.status, headers, body


def _document_writer(root: str, fill: Fill, attrs: Attrs, member: str | None) -> Body:
    """The XML body of a result, or of its member ``member`` (b"" when that is None)."""
    head = f"{_DECLARATION}<{root}"
    tail = f' xmlns="{S3_NAMESPACE}">'

    def write(result: Mapping[str, Any]) -> bytes:
        v = result if member is None else result.get(member)
        if v is None:
            return b""
        out = [head, attrs(v), tail]
        fill(out, v)
        out.append(f"</{root}>")
        return "".join(out).encode("utf-8")

    return write


def _text_root_writer(root: str, members: list[tuple[str, Any]]) -> Body:
    """``<root xmlns="...">text</root>``, or an empty root for None or ""."""
    name = members[0][0]
    text = _out_text(members[0][1])
    head = f'{_DECLARATION}<{root} xmlns="{S3_NAMESPACE}"'

    def write(result: Mapping[str, Any]) -> bytes:
        v = result.get(name)
        if v is None or v == "":
            return f"{head}/>".encode()
        return f"{head}>{_escape(text(v))}</{root}>".encode()

    return write


class _Plan:
    __slots__ = ("input", "op", "output")

    def __init__(self, op: OperationModel, compiler: _Compiler) -> None:
        self.op = op
        self.input = _Input(op.input_shape, compiler)
        self.output = _Output(op, compiler)


# Keyed by (service, operation) name; the model is kept in the plan, so another model of
# the same names is compiled anew. Compilers are keyed by id(), the model kept likewise.
_PLANS: dict[tuple[str, str], _Plan] = {}
_COMPILERS: dict[int, tuple[ServiceModel, _Compiler]] = {}
_LOCK = threading.Lock()


def _plan(op: OperationModel) -> _Plan:
    service = op.service_model
    key = (service.service_name, op.name)
    plan = _PLANS.get(key)
    if plan is not None and plan.op is op:
        return plan
    with _LOCK:
        entry = _COMPILERS.get(id(service))
        if entry is None or entry[0] is not service:
            entry = _COMPILERS[id(service)] = (service, _Compiler())
        plan = _PLANS[key] = _Plan(op, entry[1])
        return plan


# ---------------------------------------------------------------------------- public API


def parse_input(
    operation: OperationModel,
    *,
    uri_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes | None,
) -> dict[str, Any]:
    """The parameters of a request, by boto3 member name.

    ``uri_params`` maps the request URI's labels ("Bucket", "Key") to their decoded text;
    ``headers`` is keyed by lower-case name. Header and query values become their
    shape's type (a bad one raises InvalidArgument, except an invalid If-Modified-Since
    or If-Unmodified-Since, which is ignored as HTTP says); ``x-amz-meta-*`` becomes
    Metadata with lower-case keys. A blob payload (PutObject's Body) is left to the
    caller; a string payload is the body as UTF-8; an XML payload becomes nested dicts
    and lists, and raises MalformedXML when it is not the expected document. An empty
    body leaves an optional payload out.
    """
    return _plan(operation).input.parse(uri_params, query, headers, body)


def serialize_output(
    operation: OperationModel, result: Mapping[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of a response carrying ``result`` (by member name).

    Header members become headers (``x-amz-meta-KEY`` for Metadata); the others form the
    XML body in S3's namespace, under S3's root element. None values and unknown names
    are left out. A blob payload (GetObject's Body) is not serialized: the body is b""
    and the caller streams the object. An XML body comes with ``content-type:
    application/xml``. A value of the wrong type raises TypeError; a header value with
    CR, LF or NUL raises ValueError (both are bugs in the caller).
    """
    return _plan(operation).output.serialize(result)


_ELEMENT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def serialize_error(
    code: str, message: str, request_id: str, extra: Mapping[str, str] | None = None
) -> bytes:
    """S3's error document: ``<Error>`` with Code, Message, ``extra`` and RequestId.

    It has no namespace, as S3 sends it. ``extra`` adds elements such as BucketName,
    Key or Resource; a name that is not a plain XML name raises ValueError.
    """
    out = [
        _DECLARATION,
        f"<Error><Code>{_escape(code)}</Code><Message>{_escape(message)}</Message>",
    ]
    for name, value in (extra or {}).items():
        if not _ELEMENT_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an element name")
        out.append(f"<{name}>{_escape(value)}</{name}>")
    out.append(f"<RequestId>{_escape(request_id)}</RequestId></Error>")
    return "".join(out).encode("utf-8")
