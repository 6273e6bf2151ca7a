"""EC2's Describe* filters and pagination tokens, for volumes, snapshots and tags.

A filter ``{"Name": n, "Values": [...]}`` matches a resource when any of its values
matches the resource's value(s) for n; every filter must match. Values may use EC2's
wildcards: ``*`` (any run of characters) and ``?`` (one character), ``\\`` escaping them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sealbox.ebs.errors import InvalidParameterValue

Extract = Callable[[Any], Iterable[str]]


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern[str]:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    if escaped:
        out.append(re.escape("\\"))
    return re.compile("".join(out), re.DOTALL)


def value_matches(wanted: Sequence[str], actual: Iterable[str]) -> bool:
    have = list(actual)
    return any(_pattern(w).fullmatch(a) is not None for w in wanted for a in have)


def compile_filters(
    filters: Sequence[Mapping[str, Any]] | None, known: Mapping[str, Extract]
) -> Callable[[Any], bool]:
    """A predicate for a resource; InvalidParameterValue for an unknown filter name."""
    checks: list[tuple[Extract, list[str]]] = []
    for f in filters or []:
        name = f.get("Name")
        values = [str(v) for v in f.get("Values") or []]
        if not name:
            raise InvalidParameterValue("The filter name must not be empty.")
        if name.startswith("tag:"):
            tag_key = name[4:]

            def by_tag(resource: Any, key: str = tag_key) -> Iterable[str]:
                tags: Mapping[str, str] = resource.tags
                return [tags[key]] if key in tags else []

            checks.append((by_tag, values))
            continue
        extract = known.get(name)
        if extract is None:
            raise InvalidParameterValue(f"The filter '{name}' is invalid")
        checks.append((extract, values))

    def matches(resource: Any) -> bool:
        return all(value_matches(values, extract(resource)) for extract, values in checks)

    return matches


def bool_text(value: bool) -> str:
    return "true" if value else "false"


# -- pagination -------------------------------------------------------------------------------


def encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_token(token: str | None) -> str | None:
    if token is None or token == "":
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidParameterValue(f"The token '{token[:64]}' is invalid.") from None
    return text


def page(
    items: list[Any],
    key: Callable[[Any], str],
    max_results: int | None,
    next_token: str | None,
    limits: tuple[int, int],
    what: str,
) -> tuple[list[Any], str | None]:
    """One page of items sorted by key (a stable id), after the token's position."""
    after = decode_token(next_token)
    if max_results is not None:
        lo, hi = limits
        if not lo <= max_results <= hi:
            raise InvalidParameterValue(
                f"Value ( {max_results} ) for parameter maxResults is invalid. "
                f"Expecting a value between {lo} and {hi} for {what}."
            )
    if after is not None:
        items = [i for i in items if key(i) > after]
    if max_results is None or len(items) <= max_results:
        return items, None
    shown = items[:max_results]
    return shown, encode_token(key(shown[-1]))
