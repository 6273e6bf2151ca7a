"""Tests for policy condition operators and policy variables (sealbox.iam.policy.conditions,
sealbox.iam.policy.variables)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.iam.policy.conditions import (
    NEGATED_OPERATORS,
    compile_condition,
    parse_date,
    parse_number,
)
from sealbox.iam.policy.document import BASE_CONDITION_OPERATORS, Condition, parse_policy
from sealbox.iam.policy.variables import (
    MappingContext,
    Text,
    VarRef,
    Verbatim,
    normalize_context_value,
    parse_template,
    resolve,
    wildcard_regex,
)

MISSING = object()


def parse_condition(operator: str, key: str, values: Any) -> Condition:
    """A Condition exactly as the document parser produces it."""
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {operator: {key: values}},
            },
        }
    )
    (condition,) = parse_policy(text, kind="identity").statements[0].conditions
    return condition


def check(
    operator: str,
    values: Any,
    context_value: object = MISSING,
    *,
    key: str = "test:Key",
    context_key: str | None = None,
    extra: Mapping[str, object] | None = None,
    variables: bool = True,
) -> bool:
    context: dict[str, object] = dict(extra or {})
    if context_value is not MISSING:
        context[context_key or key] = context_value
    compiled = compile_condition(parse_condition(operator, key, values), variables=variables)
    result = compiled(MappingContext(context))
    assert isinstance(result, bool)
    return result


# --------------------------------------------------------------------------------------------
# Table of single-key cases: (operator, policy values, request value or MISSING, expected)

CASES: list[tuple[str, Any, object, bool]] = [
    # String, case-sensitive
    ("StringEquals", "alice", "alice", True),
    ("StringEquals", "alice", "Alice", False),
    ("StringEquals", "alice", "alice2", False),
    ("StringEquals", ["bob", "alice"], "alice", True),
    ("StringEquals", ["bob", "carol"], "alice", False),
    ("StringEquals", "alice", MISSING, False),
    ("StringEquals", "", "", True),
    ("StringEquals", "a*", "abc", False),  # no wildcards in StringEquals
    ("StringEquals", "a*", "a*", True),
    ("StringNotEquals", "alice", "bob", True),
    ("StringNotEquals", "alice", "alice", False),
    ("StringNotEquals", ["alice", "bob"], "bob", False),  # NOR over policy values
    ("StringNotEquals", ["alice", "bob"], "carol", True),
    ("StringNotEquals", "alice", MISSING, True),  # negated operator, absent key
    # String, ignoring case
    ("StringEqualsIgnoreCase", "Alice", "aLICE", True),
    ("StringEqualsIgnoreCase", "Alice", "alicia", False),
    ("StringEqualsIgnoreCase", "Alice", MISSING, False),
    ("StringNotEqualsIgnoreCase", "Alice", "ALICE", False),
    ("StringNotEqualsIgnoreCase", "Alice", "bob", True),
    ("StringNotEqualsIgnoreCase", "Alice", MISSING, True),
    # StringLike
    ("StringLike", "home/*", "home/alice/x", True),
    ("StringLike", "home/*", "Home/alice", False),  # case-sensitive
    ("StringLike", "home/*", "home/", True),
    ("StringLike", "home/*", "xhome/a", False),  # whole string
    ("StringLike", "home", "home/a", False),  # no implicit prefix match
    ("StringLike", "h?me", "home", True),
    ("StringLike", "h?me", "hoome", False),
    ("StringLike", "h?me", "hme", False),
    ("StringLike", "a*:b", "a:x:y:b", True),  # '*' crosses colons in StringLike
    ("StringLike", "a.c", "abc", False),  # regex metacharacters are literal
    ("StringLike", "a+", "aa", False),
    ("StringLike", "line*", "line1\nline2", True),
    ("StringLike", ["x*", "home/*"], "home/q", True),
    ("StringLike", "*", MISSING, False),
    ("StringNotLike", "home/*", "home/a", False),
    ("StringNotLike", "home/*", "work/a", True),
    ("StringNotLike", "home/*", MISSING, True),
    # Numeric
    ("NumericEquals", "10", "10", True),
    ("NumericEquals", "10", "10.0", True),
    ("NumericEquals", "10", "010", True),
    ("NumericEquals", "10", "11", False),
    ("NumericEquals", ["1", "10"], "10", True),
    ("NumericEquals", 10, "10", True),  # JSON number in the policy
    ("NumericEquals", "-1.5", "-1.50", True),
    ("NumericEquals", "9007199254740993", "9007199254740992", False),  # exact, not float
    ("NumericEquals", "10", "ten", False),
    ("NumericEquals", "ten", "10", False),  # malformed policy value
    ("NumericEquals", "10", MISSING, False),
    ("NumericNotEquals", "10", "11", True),
    ("NumericNotEquals", "10", "10", False),
    ("NumericNotEquals", "10", "ten", False),  # malformed request value never satisfies
    ("NumericNotEquals", "ten", "11", False),  # malformed policy value: false
    ("NumericNotEquals", "10", MISSING, True),
    ("NumericLessThan", "10", "9", True),
    ("NumericLessThan", "10", "10", False),
    ("NumericLessThan", "10", "11", False),
    ("NumericLessThan", ["5", "20"], "10", True),  # OR: 10 < 20
    ("NumericLessThan", "10", "-3", True),
    ("NumericLessThanEquals", "10", "10", True),
    ("NumericLessThanEquals", "10", "10.01", False),
    ("NumericGreaterThan", "10", "11", True),
    ("NumericGreaterThan", "10", "10", False),
    ("NumericGreaterThan", ["20", "5"], "10", True),  # OR: 10 > 5
    ("NumericGreaterThanEquals", "10", "10", True),
    ("NumericGreaterThanEquals", "10", "9.99", False),
    ("NumericGreaterThanEquals", "10", "", False),
    ("NumericGreaterThan", "1e3", "5000", False),  # exponents are not AWS numbers
    # Date
    ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),
    ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01", True),
    ("DateEquals", "2020-01-01T02:00:00+02:00", "2020-01-01T00:00:00Z", True),
    ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", False),
    ("DateEquals", "2020-01-01T00:00:00.5Z", "1577836800.5", True),
    ("DateEquals", "2020-01-01T00:00:00", "2020-01-01T00:00:00Z", True),  # no offset: UTC
    ("DateEquals", "2020-01-01T00:00:00Z", "yesterday", False),
    ("DateEquals", "not a date", "2020-01-01T00:00:00Z", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", True),
    ("DateNotEquals", "2020-01-01T00:00:00Z", "1577836800", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", "garbage", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", MISSING, True),
    ("DateLessThan", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", True),
    ("DateLessThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
    ("DateLessThan", "1577836800", "2019-06-01T00:00:00Z", True),
    ("DateLessThanEquals", "2020-01-01T00:00:00Z", "1577836800", True),
    ("DateLessThanEquals", "2020-01-01T00:00:00Z", "1577836801", False),
    ("DateGreaterThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000001Z", True),
    ("DateGreaterThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
    ("DateGreaterThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("DateGreaterThanEquals", "2020-01-01T00:00:00Z", "2019-01-01", False),
    ("DateLessThan", "2020-01-01T00:00:00Z", MISSING, False),
    # Bool
    ("Bool", "true", "true", True),
    ("Bool", "true", "TRUE", True),
    ("Bool", True, "true", True),  # JSON boolean in the policy
    ("Bool", "true", "false", False),
    ("Bool", "false", "false", True),
    ("Bool", "false", "true", False),
    ("Bool", "true", "1", False),
    ("Bool", "yes", "true", False),  # malformed policy value
    ("Bool", "true", MISSING, False),
    ("Bool", "false", MISSING, False),
    # BinaryEquals (base64)
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "QmluYXJ5VmFsdWU=", True),
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "T3RoZXI=", False),
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "not base64!", False),
    ("BinaryEquals", "not base64!", "not base64!", False),  # malformed policy value
    ("BinaryEquals", ["T3RoZXI=", "QQ=="], "QQ==", True),
    ("BinaryEquals", "QQ==", MISSING, False),
    # IP addresses
    ("IpAddress", "10.0.0.0/8", "10.1.2.3", True),
    ("IpAddress", "10.0.0.0/8", "11.1.2.3", False),
    ("IpAddress", "203.0.113.5", "203.0.113.5", True),  # single address = /32
    ("IpAddress", "203.0.113.5", "203.0.113.6", False),
    ("IpAddress", "203.0.113.7/24", "203.0.113.200", True),  # host bits ignored
    ("IpAddress", ["192.0.2.0/24", "10.0.0.0/8"], "10.9.9.9", True),
    ("IpAddress", "2001:db8::/32", "2001:db8:1::5", True),
    ("IpAddress", "2001:db8::/32", "2001:db9::5", False),
    ("IpAddress", "0.0.0.0/0", "2001:db8::1", False),  # IPv6 request, IPv4 network
    ("IpAddress", "::/0", "10.0.0.1", False),
    ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
    ("IpAddress", "10.0.0.0/33", "10.0.0.1", False),  # malformed policy value
    ("IpAddress", "10.0.0.0/8", MISSING, False),
    ("NotIpAddress", "10.0.0.0/8", "11.1.2.3", True),
    ("NotIpAddress", "10.0.0.0/8", "10.1.2.3", False),
    ("NotIpAddress", "10.0.0.0/8", "not-an-ip", False),
    ("NotIpAddress", "10.0.0.0/8", MISSING, True),
    # ARNs: per-segment wildcards
    ("ArnLike", "arn:aws:iam::*:role/admin*", "arn:aws:iam::111122223333:role/admin-x", True),
    ("ArnLike", "arn:aws:iam::*:role/admin*", "arn:aws:iam::111122223333:role/ops", False),
    ("ArnLike", "arn:aws:iam::1*:role/r", "arn:aws:iam::1:x:role/r", False),  # no ':' span
    ("ArnLike", "arn:aws:s3:::*", "arn:aws:s3:::bucket/key:with:colons", True),
    ("ArnLike", "arn:aws:s3:::b?", "arn:aws:s3:::bx", True),
    ("ArnLike", "arn:aws:s3:::b?", "arn:aws:s3:::bxy", False),
    ("ArnLike", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:root", True),
    ("ArnLike", "arn:aws:iam::111122223333:root", "ARN:aws:iam::111122223333:root", False),
    ("ArnLike", "arn:aws:*", "arn:aws:s3:::b", False),  # fewer than six segments: malformed
    ("ArnLike", "arn:aws:s3:::*", "not-an-arn", False),
    ("ArnLike", "arn:aws:s3:::*", MISSING, False),
    ("ArnEquals", "arn:aws:iam::*:role/x", "arn:aws:iam::111122223333:role/x", True),
    ("ArnEquals", "arn:aws:iam::1:role/x", "arn:aws:iam::1:role/y", False),
    ("ArnNotLike", "arn:aws:iam::*:role/admin*", "arn:aws:iam::1:role/ops", True),
    ("ArnNotLike", "arn:aws:iam::*:role/admin*", "arn:aws:iam::1:role/admin", False),
    ("ArnNotLike", "arn:aws:iam::*:role/admin*", "garbage", False),
    ("ArnNotLike", "arn:aws:iam::*:role/admin*", MISSING, True),
    ("ArnNotEquals", "arn:aws:iam::1:role/x", "arn:aws:iam::1:role/y", True),
    ("ArnNotEquals", "arn:aws:iam::1:role/x", MISSING, True),
    # Null
    ("Null", "true", MISSING, True),
    ("Null", "true", "x", False),
    ("Null", "false", "x", True),
    ("Null", "false", MISSING, False),
    ("Null", True, MISSING, True),
    ("Null", "TRUE", MISSING, True),
    ("Null", "true", [], True),  # an empty multi-valued key is absent
    ("Null", "false", "", True),  # an empty string is a present value
    ("Null", "maybe", MISSING, False),
    ("Null", ["true", "false"], "x", True),
    # IfExists: absent key passes, present key is tested
    ("StringEqualsIfExists", "alice", MISSING, True),
    ("StringEqualsIfExists", "alice", "alice", True),
    ("StringEqualsIfExists", "alice", "bob", False),
    ("StringNotEqualsIfExists", "alice", MISSING, True),
    ("StringNotEqualsIfExists", "alice", "alice", False),
    ("NumericLessThanIfExists", "10", MISSING, True),
    ("NumericLessThanIfExists", "10", "20", False),
    ("NumericLessThanIfExists", "ten", MISSING, True),  # absent key decided first
    ("BoolIfExists", "true", MISSING, True),
    ("BoolIfExists", "true", "false", False),
    ("IpAddressIfExists", "10.0.0.0/8", MISSING, True),
    ("IpAddressIfExists", "10.0.0.0/8", "11.0.0.1", False),
    ("ArnLikeIfExists", "arn:aws:s3:::*", MISSING, True),
    ("DateLessThanIfExists", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", False),
    # Multi-valued request keys without a set qualifier
    ("StringEquals", "a", ["x", "a"], True),
    ("StringEquals", "a", ["x", "y"], False),
    ("StringNotEquals", "a", ["x", "a"], False),  # complement of StringEquals
    ("StringNotEquals", "a", ["x", "y"], True),
    ("StringEquals", "a", [], False),  # empty set = absent
    ("StringNotEquals", "a", [], True),
    # ForAnyValue
    ("ForAnyValue:StringEquals", ["a", "b"], ["x", "a"], True),
    ("ForAnyValue:StringEquals", ["a", "b"], ["x", "y"], False),
    ("ForAnyValue:StringEquals", ["a", "b"], "a", True),
    ("ForAnyValue:StringEquals", ["a", "b"], MISSING, False),
    ("ForAnyValue:StringEquals", ["a", "b"], [], False),
    ("ForAnyValue:StringLike", "env:*", ["team:x", "env:prod"], True),
    ("ForAnyValue:StringNotEquals", "a", ["a", "x"], True),  # x is not a
    ("ForAnyValue:StringNotEquals", "a", ["a", "a"], False),
    ("ForAnyValue:StringNotEquals", "a", MISSING, False),
    ("ForAnyValue:StringEqualsIfExists", "a", MISSING, True),
    ("ForAnyValue:NumericGreaterThan", "10", ["1", "20"], True),
    ("ForAnyValue:NumericGreaterThan", "10", ["1", "bad"], False),
    ("ForAnyValue:NumericNotEquals", "10", ["10", "bad"], False),  # malformed != "not equal"
    ("ForAnyValue:IpAddress", "10.0.0.0/8", ["192.0.2.1", "10.0.0.9"], True),
    # ForAllValues
    ("ForAllValues:StringEquals", ["a", "b", "c"], ["a", "b"], True),
    ("ForAllValues:StringEquals", ["a", "b", "c"], ["a", "d"], False),
    ("ForAllValues:StringEquals", ["a", "b"], "a", True),
    ("ForAllValues:StringEquals", ["a", "b"], MISSING, True),  # vacuously true
    ("ForAllValues:StringEquals", ["a", "b"], [], True),
    ("ForAllValues:StringLike", "env:*", ["env:a", "env:b"], True),
    ("ForAllValues:StringLike", "env:*", ["env:a", "team:b"], False),
    ("ForAllValues:StringNotEquals", "a", ["x", "y"], True),
    ("ForAllValues:StringNotEquals", "a", ["x", "a"], False),
    ("ForAllValues:StringNotEquals", "a", MISSING, True),
    ("ForAllValues:StringEqualsIgnoreCase", ["A", "B"], ["a", "b"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "9"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "19"], False),
    ("ForAllValues:ArnLike", "arn:aws:s3:::b/*", ["arn:aws:s3:::b/1", "arn:aws:s3:::c/1"], False),
    # Malformed or odd condition values
    ("StringEquals", [], "x", False),  # no policy values at all
    ("StringNotEquals", [], "x", False),
    ("StringEquals", 5, "5", True),
    ("StringEquals", 1.50, "1.5", True),  # JSON number text as Python writes it back
]


@pytest.mark.parametrize(("operator", "values", "context_value", "expected"), CASES)
def test_condition_table(operator: str, values: Any, context_value: object, expected: bool) -> None:
    assert check(operator, values, context_value) is expected


def test_table_covers_every_operator_and_form() -> None:
    covered = {parse_condition(op, "a:b", "x").base_operator for op, *_ in CASES}
    assert covered == BASE_CONDITION_OPERATORS
    operators = {op for op, *_ in CASES}
    assert any(op.endswith("IfExists") for op in operators)
    assert any(op.startswith("ForAnyValue:") for op in operators)
    assert any(op.startswith("ForAllValues:") for op in operators)


# --------------------------------------------------------------------------------------------
# Keys, context values


@pytest.mark.parametrize(
    ("policy_key", "context_key"),
    [
        ("aws:SourceIp", "aws:sourceip"),
        ("AWS:SOURCEIP", "aws:SourceIp"),
        ("aws:sourceip", "AWS:SourceIP"),
    ],
)
def test_condition_key_names_are_case_insensitive(policy_key: str, context_key: str) -> None:
    assert check("IpAddress", "10.0.0.0/8", "10.0.0.1", key=policy_key, context_key=context_key)
    assert not check("IpAddress", "10.0.0.0/8", "11.0.0.1", key=policy_key, context_key=context_key)


def test_other_keys_do_not_count() -> None:
    assert not check("StringEquals", "x", "x", key="test:A", context_key="test:B")
    assert check("Null", "true", "x", key="test:A", context_key="test:B")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", ("a",)),
        (["a", "b"], ("a", "b")),
        (("a",), ("a",)),
        ([], None),
        (None, None),
        (True, ("true",)),
        (False, ("false",)),
        (7, ("7",)),
        ([1, True, None, "x"], ("1", "true", "x")),
        (frozenset({"q"}), ("q",)),
    ],
)
def test_normalize_context_value(value: object, expected: tuple[str, ...] | None) -> None:
    assert normalize_context_value(value) == expected


def test_non_string_context_values_are_coerced() -> None:
    assert check("Bool", "true", True)
    assert not check("Bool", "true", False)
    assert check("NumericEquals", "3", 3)
    assert check("ForAllValues:NumericLessThan", "10", [1, 2])


# --------------------------------------------------------------------------------------------
# Value parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Decimal(0)),
        ("-12", Decimal(-12)),
        ("+3", Decimal(3)),
        ("1.25", Decimal("1.25")),
        (".5", Decimal("0.5")),
        ("7.", Decimal(7)),
        ("", None),
        ("1e5", None),
        ("NaN", None),
        ("Infinity", None),
        ("1 ", None),
        ("0x10", None),
        ("1" * 41, None),
    ],
)
def test_parse_number(text: str, expected: Decimal | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1577836800", 1577836800 * 10**6),
        ("-1", -(10**6)),
        ("1.5", 1_500_000),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01", 0),
        ("1970-01-01T00:00:01.25Z", 1_250_000),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1970-01-01T00:00:00-00:30", 1_800_000_000),
        ("2020-02-30T00:00:00Z", None),
        ("tomorrow", None),
        ("", None),
        ("1970-01-01X", None),
        ("9" * 16, None),
    ],
)
def test_parse_date(text: str, expected: int | None) -> None:
    result = parse_date(text)
    assert result == (None if expected is None else Decimal(expected))


# --------------------------------------------------------------------------------------------
# Policy variables in condition values


def test_variable_in_condition_value() -> None:
    extra = {"aws:username": "alice"}
    assert check("StringEquals", "${aws:username}", "alice", extra=extra)
    assert not check("StringEquals", "${aws:username}", "bob", extra=extra)
    assert check("StringLike", "home/${aws:username}/*", "home/alice/x", extra=extra)
    assert not check("StringLike", "home/${aws:username}/*", "home/bob/x", extra=extra)


def test_variable_names_are_case_insensitive() -> None:
    extra = {"AWS:UserName": "alice"}
    assert check("StringEquals", "${aws:USERNAME}", "alice", extra=extra)


def test_substituted_values_are_literal_not_wildcards() -> None:
    extra = {"aws:username": "a*"}
    assert check("StringLike", "${aws:username}", "a*", extra=extra)
    assert not check("StringLike", "${aws:username}", "abc", extra=extra)
    assert not check("ArnLike", "arn:aws:iam::1:user/${aws:username}", "arn:aws:iam::1:user/ab",
                     extra=extra)  # fmt: skip


@pytest.mark.parametrize("operator", ["StringEquals", "StringLike", "StringNotEquals"])
def test_unresolved_variable_makes_the_condition_false(operator: str) -> None:
    assert not check(operator, "${aws:username}", "alice")
    assert not check(operator, ["x", "${aws:username}"], "x")


def test_multi_valued_keys_cannot_be_variables() -> None:
    extra = {"test:Multi": ["alice"]}
    assert not check("StringEquals", "${test:Multi}", "alice", extra=extra)
    assert check("StringEquals", "${test:Multi}", "alice", extra={"test:Multi": "alice"})


def test_variable_default_value() -> None:
    assert check("StringEquals", "${aws:PrincipalTag/team, 'none'}", "none")
    assert not check("StringEquals", "${aws:PrincipalTag/team, 'none'}", "ops")
    extra = {"aws:PrincipalTag/team": "ops"}
    assert check("StringEquals", "${aws:PrincipalTag/team, 'none'}", "ops", extra=extra)


def test_escapes() -> None:
    assert check("StringLike", "a${*}", "a*")
    assert not check("StringLike", "a${*}", "ab")
    assert check("StringLike", "a${?}", "a?")
    assert not check("StringLike", "a${?}", "ab")
    assert check("StringEquals", "${$}x", "$x")


def test_variables_disabled_for_2008_policies() -> None:
    extra = {"aws:username": "alice"}
    assert check("StringEquals", "${aws:username}", "${aws:username}", extra=extra, variables=False)
    assert not check("StringEquals", "${aws:username}", "alice", extra=extra, variables=False)
    assert check("StringEquals", "${aws:username}", "alice", extra=extra, variables=True)


def test_numeric_and_date_variables() -> None:
    extra = {"test:Limit": "10", "test:Start": "2020-01-01T00:00:00Z"}
    assert check("NumericLessThan", "${test:Limit}", "9", extra=extra)
    assert not check("NumericLessThan", "${test:Limit}", "11", extra=extra)
    assert check("DateGreaterThan", "${test:Start}", "2021-01-01T00:00:00Z", extra=extra)
    assert not check("NumericLessThan", "${test:Limit}", "9", extra={"test:Limit": "x"})


def test_parse_template() -> None:
    assert parse_template("plain") == (Text("plain"),)
    assert parse_template("") == (Text(""),)
    assert parse_template("a/${aws:UserName}/b") == (
        Text("a/"),
        VarRef("aws:username"),
        Text("/b"),
    )
    assert parse_template("${*}${?}${$}") == (Verbatim("*"), Verbatim("?"), Verbatim("$"))
    assert parse_template("${aws:PrincipalTag/t, 'd v'}") == (VarRef("aws:principaltag/t", "d v"),)
    assert parse_template("${not valid}") == (Text("${not valid}"),)
    assert parse_template("x${}y") == (Text("x${}y"),)
    assert parse_template("${a:b") == (Text("${a:b"),)


def test_resolve_and_wildcard_regex() -> None:
    context = MappingContext({"a:b": "v*"})
    chunks = resolve(parse_template("x*${a:b}?"), context)
    assert chunks == (("x*", True), ("v*", False), ("?", True))
    assert wildcard_regex(chunks) == r"x.*v\*."
    assert resolve(parse_template("${a:c}"), context) is None
    assert wildcard_regex([("arn:aws:s3:::*", True)], arn=True) == "arn:aws:s3:::.*"
    assert wildcard_regex([("arn:*:s3:::b", True)], arn=True) == "arn:[^:]*:s3:::b"
    assert wildcard_regex([("arn:aws:s3", True)], arn=True) is None


# --------------------------------------------------------------------------------------------
# Properties

ALL_OPERATORS = sorted(
    f"{qualifier}{base}{suffix}"
    for base in BASE_CONDITION_OPERATORS
    for qualifier in ("", "ForAnyValue:", "ForAllValues:")
    for suffix in ("", "IfExists")
    if not (base == "Null" and suffix)
)

any_text = st.text(max_size=12) | st.sampled_from(
    [
        "10",
        "-1.5",
        "true",
        "false",
        "10.0.0.0/8",
        "10.1.2.3",
        "::1",
        "2020-01-01T00:00:00Z",
        "1577836800",
        "QQ==",
        "arn:aws:s3:::b/*",
        "arn:aws:iam::111122223333:root",
        "${aws:username}",
        "${test:Key}",
        "${*}",
        "*",
    ]
)
PARSED_OPERATORS = {op: parse_condition(op, "test:Key", "x") for op in ALL_OPERATORS}
# Values that do not refer to the tested key itself (whose shape the properties vary).
plain_text = any_text.filter(lambda text: "${test:" not in text.lower())
context_values = st.one_of(
    any_text,
    st.lists(any_text, max_size=4),
    st.booleans(),
    st.integers(),
    st.none(),
)


@settings(max_examples=600, deadline=None)
@given(
    operator=st.sampled_from(ALL_OPERATORS),
    values=st.lists(any_text, max_size=3),
    context=st.dictionaries(
        st.sampled_from(["test:Key", "aws:username", "TEST:KEY"]), context_values
    ),
    variables=st.booleans(),
)
def test_conditions_never_raise(
    operator: str, values: list[str], context: dict[str, object], variables: bool
) -> None:
    template = PARSED_OPERATORS[operator]
    condition = Condition(
        operator=operator,
        base_operator=template.base_operator,
        if_exists=template.if_exists,
        set_qualifier=template.set_qualifier,
        key="test:Key",
        values=tuple(values),
    )
    result = compile_condition(condition, variables=variables)(MappingContext(context))
    assert isinstance(result, bool)


WELL_FORMED: dict[str, st.SearchStrategy[str]] = {
    "StringEquals": st.text(max_size=6),
    "StringEqualsIgnoreCase": st.text(max_size=6),
    "StringLike": st.text(alphabet="ab*?", max_size=5),
    "NumericEquals": st.integers(-50, 50).map(str),
    "DateEquals": st.integers(0, 5).map(str),
    "IpAddress": st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "192.0.2.7", "2001:db8::/32"]),
    "ArnLike": st.sampled_from(["arn:aws:s3:::b*", "arn:aws:iam::*:role/r?", "arn:*:s3:::*"]),
    "ArnEquals": st.sampled_from(["arn:aws:s3:::b", "arn:aws:iam::1:role/r"]),
}
REQUEST_VALUES: dict[str, st.SearchStrategy[str]] = {
    "StringEquals": st.text(max_size=6),
    "StringEqualsIgnoreCase": st.text(max_size=6),
    "StringLike": st.text(alphabet="ab", max_size=5),
    "NumericEquals": st.integers(-50, 50).map(str),
    "DateEquals": st.integers(0, 5).map(str),
    "IpAddress": st.sampled_from(["10.1.2.3", "10.2.0.1", "192.0.2.7", "2001:db8::9", "::1"]),
    "ArnLike": st.sampled_from(
        [
            "arn:aws:s3:::b",
            "arn:aws:s3:::bx/y:z",
            "arn:aws:iam::1:role/r1",
            "arn:aws:iam::1:x:role/r1",
        ]
    ),
    "ArnEquals": st.sampled_from(["arn:aws:s3:::b", "arn:aws:iam::1:role/r", "arn:aws:s3:::c"]),
}
NEGATION_OF = {positive: negated for negated, positive in NEGATED_OPERATORS.items()}


@settings(max_examples=400, deadline=None)
@given(data=st.data(), positive=st.sampled_from(sorted(NEGATION_OF)))
def test_negated_operator_is_the_complement_for_well_formed_present_values(
    data: st.DataObject, positive: str
) -> None:
    values = data.draw(st.lists(WELL_FORMED[positive], min_size=1, max_size=3))
    request = data.draw(
        REQUEST_VALUES[positive] | st.lists(REQUEST_VALUES[positive], min_size=1, max_size=3)
    )
    assert check(NEGATION_OF[positive], values, request) is not check(positive, values, request)


@settings(max_examples=300, deadline=None)
@given(
    operator=st.sampled_from(sorted(b for b in BASE_CONDITION_OPERATORS if b != "Null")),
    values=st.lists(plain_text, min_size=1, max_size=3),
    request=plain_text,
)
def test_if_exists_equals_plain_operator_when_key_present(
    operator: str, values: list[str], request: str
) -> None:
    assert check(operator + "IfExists", values, request) is check(operator, values, request)
    assert check(operator + "IfExists", values) is True


@settings(max_examples=300, deadline=None)
@given(
    operator=st.sampled_from(sorted(b for b in BASE_CONDITION_OPERATORS if b != "Null")),
    values=st.lists(plain_text, min_size=1, max_size=3),
    request=plain_text,
    absent=st.sampled_from([MISSING, []]),
)
def test_set_qualifiers(operator: str, values: list[str], request: str, absent: object) -> None:
    # A single request value: ForAnyValue and ForAllValues agree with each other and, for
    # positive operators, with the plain operator.
    any_value = check("ForAnyValue:" + operator, values, [request])
    assert check("ForAllValues:" + operator, values, [request]) is any_value
    if operator not in NEGATED_OPERATORS:
        assert check(operator, values, request) is any_value
    # Absent key (or empty set): ForAllValues vacuously true, ForAnyValue false.
    assert check("ForAllValues:" + operator, values, absent) is True
    assert check("ForAnyValue:" + operator, values, absent) is False


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.text(alphabet="abc:/", max_size=5), min_size=1), request=st.text("abc:/"))
def test_string_like_without_wildcards_equals_string_equals(
    values: list[str], request: str
) -> None:
    assert check("StringLike", values, request) is check("StringEquals", values, request)
