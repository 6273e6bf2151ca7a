"""Condition operators of AWS policies, compiled once and evaluated against a request context.

Semantics (IAM "Condition operators" and "multivalued context keys"):

* condition key names are case-insensitive; several values for one key are OR-ed (for a
  negated operator: NOR); several keys or operators in a block are AND-ed by the caller;
* a key absent from the request context makes a condition false, except that negated
  operators (``StringNotEquals``, ``StringNotLike``, ``NumericNotEquals``, ``DateNotEquals``,
  ``NotIpAddress``, ``ArnNotEquals``, ``ArnNotLike``, ``StringNotEqualsIgnoreCase``) are then
  true, ``...IfExists`` operators are true, ``ForAllValues:`` is true (vacuously) and
  ``ForAnyValue:`` is false; an empty multi-valued key counts as absent;
* ``ForAnyValue:`` is true if some request value satisfies the operator, ``ForAllValues:`` if
  every request value does; without a qualifier a multi-valued key behaves like
  ``ForAnyValue:`` for positive operators and is true for a negated operator only if no request
  value matches any policy value (the exact complement of the positive operator);
* ``Null`` is true for ``"true"`` when the key is absent and for ``"false"`` when present;
* a malformed value (a policy value that is not a number for ``Numeric*``, a request value
  that is not an IP address for ``IpAddress``, ...) never raises: it matches nothing, and a
  malformed policy value or an unresolved policy variable makes the whole condition false
  (checked after the absent-key rules above); a malformed request value never satisfies a
  negated operator either.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from sealbox.iam.policy.document import BASE_CONDITION_OPERATORS, Condition
from sealbox.iam.policy.variables import (
    Chunk,
    ContextLookup,
    Part,
    Text,
    has_variables,
    join_chunks,
    parse_template,
    resolve,
    static_chunks,
    wildcard_regex,
)

__all__ = [
    "NEGATED_OPERATORS",
    "CompiledCondition",
    "compile_condition",
    "parse_date",
    "parse_number",
]

#: A test of one request value against a condition's policy values: ``True`` (matches some
#: policy value), ``False`` (matches none) or ``None`` (the request value is malformed).
Matcher = Callable[[str], bool | None]
_Resolved = tuple[tuple[Chunk, ...], ...]
_Factory = Callable[[_Resolved], Matcher | None]

#: Negated operators and the positive operator they are the complement of.
NEGATED_OPERATORS: Final[dict[str, str]] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}

# --------------------------------------------------------------------------------------------
# Value parsing

_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})")
_EPOCH_RE: Final = re.compile(r"[+-]?[0-9]{1,15}(?:\.[0-9]{1,9})?")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# Request values repeat across statements and requests (aws:SourceIp, aws:CurrentTime, ...);
# parsing them is the costly part of a condition, so the parsers are memoised (bounded).
_VALUE_CACHE_SIZE: Final = 4096


def parse_number(text: str) -> Decimal | None:
    """An integer or decimal number (``"42"``, ``"-1.5"``); ``None`` if malformed."""
    if _NUMBER_RE.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - excluded by the regex
        return None


def parse_date(text: str) -> Decimal | None:
    """Microseconds since the epoch of an ISO 8601 date/time or of epoch seconds.

    A date/time without a UTC offset is taken as UTC.  ``None`` if malformed.
    """
    if _EPOCH_RE.fullmatch(text) is not None:
        return Decimal(text).scaleb(6).to_integral_value()
    if len(text) < 8 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Decimal((moment - _EPOCH) // _MICROSECOND)


# --------------------------------------------------------------------------------------------
# Matcher factories: policy values (already resolved) -> test of one request value


_cached_number: Final = functools.lru_cache(maxsize=_VALUE_CACHE_SIZE)(parse_number)
_cached_date: Final = functools.lru_cache(maxsize=_VALUE_CACHE_SIZE)(parse_date)


def _texts(values: _Resolved) -> list[str]:
    return [join_chunks(value) for value in values]


def _string_equals(values: _Resolved) -> Matcher | None:
    accepted = frozenset(_texts(values))
    return accepted.__contains__


def _string_equals_ignore_case(values: _Resolved) -> Matcher | None:
    accepted = frozenset(text.lower() for text in _texts(values))

    def match(value: str) -> bool:
        return value.lower() in accepted

    return match


def _alternation(patterns: Sequence[str | None]) -> Matcher | None:
    if any(pattern is None for pattern in patterns):
        return None
    regex = re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.DOTALL)

    def match(value: str) -> bool:
        return regex.fullmatch(value) is not None

    return match


def _string_like(values: _Resolved) -> Matcher | None:
    return _alternation([wildcard_regex(value) for value in values])


def _arn_like(values: _Resolved) -> Matcher | None:
    match = _alternation([wildcard_regex(value, arn=True) for value in values])
    if match is None:
        return None

    def arn_match(value: str) -> bool | None:
        # A request value without the six ARN segments is malformed, not "different".
        if not value.startswith("arn:") or value.count(":") < 5:
            return None
        return match(value)

    return arn_match


def _ordered(
    parse: Callable[[str], Decimal | None], comparison: str
) -> Callable[[_Resolved], Matcher | None]:
    def factory(values: _Resolved) -> Matcher | None:
        parsed = [parse(text) for text in _texts(values)]
        numbers = [number for number in parsed if number is not None]
        if len(numbers) != len(parsed):
            return None
        if comparison == "Equals":
            accepted = frozenset(numbers)

            def equals(value: str) -> bool | None:
                number = parse(value)
                return None if number is None else number in accepted

            return equals
        # "any policy value v: request <op> v" reduces to a comparison with the extreme value.
        high, low = max(numbers), min(numbers)
        compare: Callable[[Decimal], bool]
        if comparison == "LessThan":
            compare = high.__gt__
        elif comparison == "LessThanEquals":
            compare = high.__ge__
        elif comparison == "GreaterThan":
            compare = low.__lt__
        else:
            compare = low.__le__

        def ordered(value: str) -> bool | None:
            number = parse(value)
            return None if number is None else compare(number)

        return ordered

    return factory


def _bool(values: _Resolved) -> Matcher | None:
    accepted = frozenset(text.lower() for text in _texts(values))
    if not accepted <= {"true", "false"}:
        return None

    def match(value: str) -> bool | None:
        lowered = value.lower()
        if lowered != "true" and lowered != "false":
            return None
        return lowered in accepted

    return match


@functools.lru_cache(maxsize=_VALUE_CACHE_SIZE)
def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


def _binary_equals(values: _Resolved) -> Matcher | None:
    decoded: list[bytes] = []
    for text in _texts(values):
        data = _decode_base64(text)
        if data is None:
            return None
        decoded.append(data)
    accepted = frozenset(decoded)

    def match(value: str) -> bool | None:
        data = _decode_base64(value)
        return None if data is None else data in accepted

    return match


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=_VALUE_CACHE_SIZE)
def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _ip_address(values: _Resolved) -> Matcher | None:
    networks: list[_Network] = []
    for text in _texts(values):
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            return None
    frozen = tuple(networks)

    def match(value: str) -> bool | None:
        address = _parse_address(value)
        if address is None:
            return None
        return any(address in network for network in frozen)

    return match


_FACTORIES: Final[dict[str, _Factory]] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "NumericEquals": _ordered(_cached_number, "Equals"),
    "NumericLessThan": _ordered(_cached_number, "LessThan"),
    "NumericLessThanEquals": _ordered(_cached_number, "LessThanEquals"),
    "NumericGreaterThan": _ordered(_cached_number, "GreaterThan"),
    "NumericGreaterThanEquals": _ordered(_cached_number, "GreaterThanEquals"),
    "DateEquals": _ordered(_cached_date, "Equals"),
    "DateLessThan": _ordered(_cached_date, "LessThan"),
    "DateLessThanEquals": _ordered(_cached_date, "LessThanEquals"),
    "DateGreaterThan": _ordered(_cached_date, "GreaterThan"),
    "DateGreaterThanEquals": _ordered(_cached_date, "GreaterThanEquals"),
    "Bool": _bool,
    "BinaryEquals": _binary_equals,
    "IpAddress": _ip_address,
    # IAM documents ArnEquals and ArnLike identically: per-segment, with wildcards.
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
}

assert set(_FACTORIES) | set(NEGATED_OPERATORS) | {"Null"} == BASE_CONDITION_OPERATORS


@functools.lru_cache(maxsize=4096)
def _build(positive: str, resolved: _Resolved) -> Matcher | None:
    """Matchers for values that came from policy variables, cached by resolved value."""
    return _FACTORIES[positive](resolved)


# --------------------------------------------------------------------------------------------
# Compiled conditions

# Evaluation modes, chosen at compile time.
_ANY: Final = 0  # positive operator, no qualifier or ForAnyValue
_ALL: Final = 1  # positive operator with ForAllValues
_NONE_MATCH: Final = 2  # negated operator, no qualifier or ForAllValues: every value "not"
_SOME_NOT: Final = 3  # negated operator with ForAnyValue: some value "not"


class CompiledCondition:
    """One ``{operator: {key: values}}`` test, ready to evaluate.  Call it with a context."""

    __slots__ = (
        "_absent",
        "_key",
        "_matcher",
        "_mode",
        "_null",
        "_positive",
        "_templates",
        "condition",
    )

    def __init__(self, condition: Condition, *, variables: bool) -> None:
        self.condition = condition
        self._key = condition.key.lower()
        base = condition.base_operator
        self._null: tuple[bool, ...] | None = None
        self._matcher: Matcher | None = None
        self._templates: tuple[tuple[Part, ...], ...] | None = None
        negated = base in NEGATED_OPERATORS
        self._positive = NEGATED_OPERATORS.get(base, base)
        qualifier = condition.set_qualifier

        # Result when the key is absent from the request context.
        if condition.if_exists or qualifier == "ForAllValues":
            self._absent = True
        elif qualifier == "ForAnyValue":
            self._absent = False
        else:
            self._absent = negated

        if negated:
            self._mode = _SOME_NOT if qualifier == "ForAnyValue" else _NONE_MATCH
        else:
            self._mode = _ALL if qualifier == "ForAllValues" else _ANY

        if base == "Null":
            # "true": the key must be absent; "false": present.  Other values never match.
            self._null = tuple(
                value.lower() == "true"
                for value in condition.values
                if value.lower() in ("true", "false")
            )
            return
        if not condition.values:
            return  # malformed: always false once the key is present
        templates = tuple(
            parse_template(value) if variables else (Text(value),) for value in condition.values
        )
        if any(has_variables(template) for template in templates):
            self._templates = templates
        else:
            resolved = tuple(static_chunks(template) for template in templates)
            self._matcher = _FACTORIES[self._positive](resolved)

    def __call__(self, context: ContextLookup) -> bool:
        values = context.values(self._key)
        null = self._null
        if null is not None:
            absent = values is None
            return any(want_absent == absent for want_absent in null)
        if values is None:
            return self._absent
        matcher = self._matcher
        if matcher is None:
            templates = self._templates
            if templates is None:
                return False  # malformed policy value
            resolved: list[tuple[Chunk, ...]] = []
            for template in templates:
                chunks = resolve(template, context)
                if chunks is None:
                    return False  # a policy variable without a value
                resolved.append(chunks)
            matcher = _build(self._positive, tuple(resolved))
            if matcher is None:
                return False
        mode = self._mode
        if len(values) == 1:
            result = matcher(values[0])
            return result is True if mode <= _ALL else result is False
        if mode == _ANY:
            return any(matcher(value) is True for value in values)
        if mode == _ALL:
            return all(matcher(value) is True for value in values)
        if mode == _NONE_MATCH:
            return all(matcher(value) is False for value in values)
        return any(matcher(value) is False for value in values)

    def __repr__(self) -> str:
        return f"CompiledCondition({self.condition.operator!r}, {self.condition.key!r})"


def compile_condition(condition: Condition, *, variables: bool = True) -> CompiledCondition:
    """Compile a parsed condition.  ``variables`` enables policy variables in its values
    (policies with ``Version`` ``2012-10-17``)."""
    return CompiledCondition(condition, variables=variables)
