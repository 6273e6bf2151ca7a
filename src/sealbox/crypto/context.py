"""Canonical encoding of an encryption context, used as authenticated data.

Layout (big-endian): count(u16), then for each pair sorted by the UTF-8 bytes of its
key: len(key)(u16) key len(value)(u16) value. Length prefixes make {"ab": "c"} and
{"a": "bc"} different, and sorting makes the encoding independent of JSON order.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_U16 = struct.Struct(">H")


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    if not context:
        return _U16.pack(0)
    items = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items())
    if len(items) > 0xFFFF:
        raise ValueError("encryption context has too many pairs")
    out = [_U16.pack(len(items))]
    for key, value in items:
        if len(key) > 0xFFFF or len(value) > 0xFFFF:
            raise ValueError("encryption context entry is too long")
        out += [_U16.pack(len(key)), key, _U16.pack(len(value)), value]
    return b"".join(out)
