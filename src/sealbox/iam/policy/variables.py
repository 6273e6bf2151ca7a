"""Request-context lookup, policy variables and wildcard patterns for policy evaluation.

Policy variables (``${aws:username}``, ``${aws:PrincipalTag/team}``, ``${kms:CallerAccount}``,
``${aws:PrincipalTag/team, 'default'}``) may appear in ``Resource``/``NotResource`` values and
in condition values of policies whose ``Version`` is ``2012-10-17``; in ``2008-10-17``
documents they are literal text.  ``${*}``, ``${?}`` and ``${$}`` stand for the literal
characters ``*``, ``?`` and ``$`` (so they are never wildcards).  A variable is replaced by
the value of the single-valued context key of that name (key names are case-insensitive); a
key that is absent or multi-valued leaves the variable without a value unless the variable
has a default, and the caller then treats the element as not matching.  Substituted values are
always literal: a ``*`` inside a user name is not a wildcard.

The module is pure and has no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

__all__ = [
    "Chunk",
    "ContextLookup",
    "MappingContext",
    "Part",
    "Text",
    "VarRef",
    "Verbatim",
    "has_variables",
    "join_chunks",
    "normalize_context_value",
    "parse_template",
    "resolve",
    "static_chunks",
    "wildcard_regex",
]

#: A piece of a resolved pattern: its text and whether ``*``/``?`` in it are wildcards.
Chunk: TypeAlias = tuple[str, bool]


class ContextLookup(Protocol):
    """Read access to a request context.  ``key`` is always given in lower case."""

    def values(self, key: str) -> tuple[str, ...] | None:
        """All values of a context key, or ``None`` if the key is absent (or has no values)."""
        ...

    def single(self, key: str) -> str | None:
        """The value of a single-valued key (``None`` if absent or multi-valued)."""
        ...


def normalize_context_value(value: object) -> tuple[str, ...] | None:
    """A context value as a tuple of strings; ``None`` for an absent key or an empty set.

    Strings are single values; any other sequence is a multi-valued key.  Booleans become
    ``"true"``/``"false"`` and numbers their ``str``, so a carelessly built context never makes
    evaluation raise.
    """
    if isinstance(value, str):
        return (value,)
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return (_scalar_text(value),)
    if isinstance(value, Sequence | frozenset | set):
        items = tuple(
            item if isinstance(item, str) else _scalar_text(item)
            for item in value
            if item is not None
        )
        return items or None
    return (str(value),)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class MappingContext:
    """A :class:`ContextLookup` over a plain mapping of condition keys (any case) to values."""

    __slots__ = ("_lowered", "_source")

    def __init__(self, context: Mapping[str, object]) -> None:
        self._source = context
        self._lowered: dict[str, object] | None = None

    def _request(self) -> dict[str, object]:
        lowered = self._lowered
        if lowered is None:
            lowered = {k.lower(): v for k, v in self._source.items() if isinstance(k, str)}
            self._lowered = lowered
        return lowered

    def values(self, key: str) -> tuple[str, ...] | None:
        return normalize_context_value(self._request().get(key))

    def single(self, key: str) -> str | None:
        raw = self._request().get(key)
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool | int | float):
            return _scalar_text(raw)
        return None


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True, slots=True)
class Text:
    """Policy text; ``*`` and ``?`` in it are wildcards where the element supports them."""

    text: str


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A ``${*}``/``${?}``/``${$}`` escape: a literal character, never a wildcard."""

    text: str


@dataclass(frozen=True, slots=True)
class VarRef:
    """``${key}`` or ``${key, 'default'}``; ``key`` is lower-cased."""

    key: str
    default: str | None = None


Part: TypeAlias = Text | Verbatim | VarRef

_VAR_RE: Final = re.compile(r"\$\{([^}]*)\}")
_VAR_BODY_RE: Final = re.compile(r"\s*([^\s,'{}$]+)\s*(?:,\s*'([^']*)'\s*)?")
_ESCAPES: Final = frozenset({"*", "?", "$"})


def parse_template(text: str) -> tuple[Part, ...]:
    """Split policy text into literal parts, escapes and variable references.

    Text that looks like ``${...}`` but is not a valid variable stays literal.
    """
    parts: list[Part] = []
    pos = 0
    for match in _VAR_RE.finditer(text):
        body = match.group(1)
        if body in _ESCAPES:
            part: Part = Verbatim(body)
        else:
            body_match = _VAR_BODY_RE.fullmatch(body)
            if body_match is None:
                continue  # not a variable: kept as literal text below
            part = VarRef(body_match.group(1).lower(), body_match.group(2))
        if match.start() > pos:
            parts.append(Text(text[pos : match.start()]))
        parts.append(part)
        pos = match.end()
    if pos < len(text) or not parts:
        parts.append(Text(text[pos:]))
    return tuple(parts)


def has_variables(parts: Iterable[Part]) -> bool:
    """Whether resolving ``parts`` needs a request context."""
    return any(isinstance(part, VarRef) for part in parts)


def static_chunks(parts: Iterable[Part]) -> tuple[Chunk, ...]:
    """The chunks of a template without variables (``VarRef`` parts are not allowed)."""
    chunks: list[Chunk] = []
    for part in parts:
        if isinstance(part, VarRef):
            raise ValueError("template has variables")
        chunks.append((part.text, isinstance(part, Text)))
    return tuple(chunks)


def resolve(parts: Iterable[Part], context: ContextLookup) -> tuple[Chunk, ...] | None:
    """Substitute variables; ``None`` if a variable has no value and no default."""
    chunks: list[Chunk] = []
    for part in parts:
        if isinstance(part, Text):
            chunks.append((part.text, True))
        elif isinstance(part, Verbatim):
            chunks.append((part.text, False))
        else:
            value = context.single(part.key)
            if value is None:
                value = part.default
                if value is None:
                    return None
            chunks.append((value, False))
    return tuple(chunks)


def join_chunks(chunks: Iterable[Chunk]) -> str:
    """The plain text of resolved chunks (for operators without wildcards)."""
    return "".join(text for text, _ in chunks)


def wildcard_regex(chunks: Iterable[Chunk], *, arn: bool = False) -> str | None:
    """A regular expression (for ``re.fullmatch`` with ``re.DOTALL``) for a wildcard pattern.

    ``*`` matches any run of characters and ``?`` one character, in chunks where wildcards
    are active.  With ``arn=True`` the pattern is matched per ARN segment as ``ArnLike``
    does: it must have the six colon-separated segments ``arn:partition:service:region:
    account:resource`` (``None`` otherwise) and a wildcard in the first five segments does not
    cross a colon; the resource segment may contain colons.
    """
    out: list[str] = []
    segment = 0
    for text, active in chunks:
        for char in text:
            bounded = arn and segment < 5
            if char == ":" and bounded:
                segment += 1
                out.append(":")
            elif active and char == "*":
                out.append("[^:]*" if bounded else ".*")
            elif active and char == "?":
                out.append("[^:]" if bounded else ".")
            else:
                out.append(re.escape(char))
    if arn and segment < 5:
        return None
    return "".join(out)
