"""Parser and validator for AWS JSON policy documents.

Covers IAM identity policies, resource policies (KMS key policies, S3 bucket policies) and IAM
role trust policies.  The module is pure: it turns policy text into immutable, fully typed
dataclasses or raises :class:`PolicyDocumentError` naming what is wrong.  Each service maps
that error to its own wire error (KMS ``MalformedPolicyDocumentException``, IAM
``MalformedPolicyDocument``, S3 ``MalformedPolicy``).

The rules follow the IAM JSON policy grammar:

* the document is a JSON object with only ``Version``, ``Id`` and ``Statement``;
  duplicate object keys are rejected anywhere in the document;
* ``Version`` is ``"2012-10-17"`` or ``"2008-10-17"``; a missing ``Version`` means
  ``"2008-10-17"``;
* ``Statement`` is a single statement object or a non-empty list of them;
* a statement has ``Effect`` (``Allow``/``Deny``, case-sensitive), exactly one of
  ``Action``/``NotAction`` and, except in trust policies (which may not name resources),
  exactly one of ``Resource``/``NotResource``;
* ``Principal``/``NotPrincipal`` is required (exactly one) in resource policies, required as
  ``Principal`` in trust policies (``NotPrincipal`` is not supported there) and forbidden in
  identity policies; ``NotPrincipal`` may only be used with ``"Effect": "Deny"``;
* ``Sid`` values are unique within a document; identity policies only allow ASCII letters
  and digits in them;
* ``Condition`` maps a condition operator from AWS's catalogue (optionally prefixed with
  ``ForAnyValue:``/``ForAllValues:`` and suffixed with ``IfExists``, except ``Null``) to a
  map of condition key to a value or list of values (strings, numbers or booleans).
  Values are normalised to strings the way AWS does: ``true`` becomes ``"true"`` and a
  number keeps its JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, NoReturn, TypeAlias, cast

__all__ = [
    "ANY_PRINCIPAL",
    "BASE_CONDITION_OPERATORS",
    "DEFAULT_VERSION",
    "KMS_KEY_POLICY_MAX_SIZE",
    "PRINCIPAL_KINDS",
    "SUPPORTED_VERSIONS",
    "Condition",
    "Effect",
    "PolicyDocument",
    "PolicyDocumentError",
    "PolicyKind",
    "PrincipalKind",
    "Principals",
    "SetQualifier",
    "Statement",
    "parse_policy",
    "statement_actions_match",
]

PolicyKind: TypeAlias = Literal["identity", "resource", "trust"]
Effect: TypeAlias = Literal["Allow", "Deny"]
PrincipalKind: TypeAlias = Literal["AWS", "Service", "Federated", "CanonicalUser"]
SetQualifier: TypeAlias = Literal["ForAnyValue", "ForAllValues"]

VERSION_2012_10_17: Final = "2012-10-17"
VERSION_2008_10_17: Final = "2008-10-17"
SUPPORTED_VERSIONS: Final[frozenset[str]] = frozenset({VERSION_2012_10_17, VERSION_2008_10_17})
#: The version a document without a ``Version`` element is interpreted as.
DEFAULT_VERSION: Final = VERSION_2008_10_17

#: Maximum key policy size accepted by KMS, in characters.
KMS_KEY_POLICY_MAX_SIZE: Final = 32768

PRINCIPAL_KINDS: Final[tuple[PrincipalKind, ...]] = ("AWS", "Service", "Federated", "CanonicalUser")

#: Condition operators without ``ForAnyValue:``/``ForAllValues:`` prefix or ``IfExists`` suffix.
BASE_CONDITION_OPERATORS: Final[frozenset[str]] = frozenset(
    {
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericLessThanEquals",
        "NumericGreaterThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
        "Null",
    }
)

_SET_QUALIFIERS: Final[tuple[SetQualifier, ...]] = ("ForAnyValue", "ForAllValues")
_IF_EXISTS: Final = "IfExists"

_TOP_LEVEL_ELEMENTS: Final = ("Version", "Id", "Statement")
_STATEMENT_ELEMENTS: Final = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)

_IDENTITY_SID_RE: Final = re.compile(r"[A-Za-z0-9]*")
_ACTION_RE: Final = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9_*?-]+")
# arn:partition:service:region:account:resource -- the resource part may contain colons.
_ARN_RE: Final = re.compile(r"arn:[^:\s]+:[^:\s]+:[^:\s]*:[^:\s]*:\S+")
_ACCOUNT_ID_RE: Final = re.compile(r"[0-9]{12}")
_CANONICAL_USER_RE: Final = re.compile(r"[0-9A-Fa-f]{64}")
_CONDITION_KEY_RE: Final = re.compile(r"[^:\s]+:\S+")
_NO_WHITESPACE_RE: Final = re.compile(r"\S+")


class PolicyDocumentError(ValueError):
    """A policy document is not valid JSON or violates the AWS policy grammar."""


@dataclass(frozen=True, slots=True)
class Principals:
    """The value of a ``Principal`` or ``NotPrincipal`` element.

    ``"Principal": "*"`` is represented as ``wildcard=True`` with an empty ``by_kind``.  The
    object form maps principal kinds to their values, in document order; note that
    ``{"AWS": "*"}`` is kept as written (``wildcard=False``, ``by_kind={"AWS": ("*",)}``).
    """

    wildcard: bool = False
    by_kind: Mapping[PrincipalKind, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        # Store a private read-only copy so that instances are truly immutable.
        object.__setattr__(self, "by_kind", MappingProxyType(dict(self.by_kind)))
        if self.wildcard and self.by_kind:
            raise ValueError("a wildcard Principals cannot also list principals by kind")

    def __hash__(self) -> int:
        return hash((self.wildcard, frozenset(self.by_kind.items())))

    def values(self, kind: PrincipalKind) -> tuple[str, ...]:
        """The values listed for ``kind`` (empty if the kind is absent)."""
        return self.by_kind.get(kind, ())


#: ``"Principal": "*"``.
ANY_PRINCIPAL: Final = Principals(wildcard=True)


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition key test: ``{operator: {key: values}}``.

    ``operator`` is the operator exactly as written (e.g. ``"ForAnyValue:StringLikeIfExists"``);
    ``base_operator`` is it without qualifier and ``IfExists`` (``"StringLike"``).
    """

    operator: str
    base_operator: str
    if_exists: bool
    set_qualifier: SetQualifier | None
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    """One policy statement.  List-valued elements are normalised to tuples (``"*"`` → ``("*",)``);
    absent elements are ``None``."""

    sid: str | None
    effect: Effect
    principal: Principals | None = None
    not_principal: Principals | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A parsed policy.  ``version`` is ``"2008-10-17"`` when the document has no ``Version``."""

    version: str
    id: str | None
    statements: tuple[Statement, ...]


def statement_actions_match(pattern: str, action: str) -> bool:
    """Whether an action pattern from a policy (``"kms:Get*"``) matches an action name.

    Matching is case-insensitive and covers the whole string; ``*`` matches any run of
    characters and ``?`` any single character.
    """
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, action, re.IGNORECASE | re.DOTALL) is not None


# --------------------------------------------------------------------------------------------
# JSON decoding


@dataclass(frozen=True, slots=True)
class _JsonNumber:
    """A JSON number, kept as its source text (AWS compares condition values as strings)."""

    text: str


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise PolicyDocumentError(f'Policy document contains duplicate JSON key "{key}"')
        result[key] = value
    return result


def _reject_constant(name: str) -> NoReturn:
    raise PolicyDocumentError(f"Policy document is not valid JSON: {name} is not a JSON value")


def _decode(text: str) -> object:
    try:
        return cast(
            object,
            json.loads(
                text,
                object_pairs_hook=_reject_duplicate_keys,
                parse_int=_JsonNumber,
                parse_float=_JsonNumber,
                parse_constant=_reject_constant,
            ),
        )
    except json.JSONDecodeError as exc:
        raise PolicyDocumentError(
            f"Policy document is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise PolicyDocumentError("Policy document is nested too deeply") from None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _JsonNumber):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _as_object(value: object) -> dict[str, object] | None:
    if isinstance(value, dict):
        return cast(dict[str, object], value)
    return None


# --------------------------------------------------------------------------------------------
# Parsing


def parse_policy(text: str, *, kind: PolicyKind, max_size: int | None = None) -> PolicyDocument:
    """Parse and validate a policy document.

    ``kind`` selects the rules for the ``Principal`` and ``Resource`` elements: ``"identity"``
    (IAM user/group/role policies), ``"resource"`` (KMS key policies, S3 bucket policies, ...)
    or ``"trust"`` (IAM role trust policies).  ``max_size`` limits the document length in
    characters.  Raises :class:`PolicyDocumentError` if the document is invalid.
    """
    if kind not in ("identity", "resource", "trust"):
        raise ValueError(f"unknown policy kind {kind!r}")
    if max_size is not None and len(text) > max_size:
        raise PolicyDocumentError(
            f"Policy document is {len(text)} characters long; the maximum is {max_size}"
        )
    if not text.strip():
        raise PolicyDocumentError("Policy document is empty")

    root = _as_object(_decode(text))
    if root is None:
        raise PolicyDocumentError("Policy document must be a JSON object")
    for name in root:
        if name not in _TOP_LEVEL_ELEMENTS:
            raise PolicyDocumentError(
                f'Policy document has unknown element "{name}"; '
                f"allowed elements are {', '.join(_TOP_LEVEL_ELEMENTS)}"
            )

    version = DEFAULT_VERSION
    if "Version" in root:
        raw_version = root["Version"]
        if not isinstance(raw_version, str):
            raise PolicyDocumentError(
                f"Policy Version must be a string, not {_describe(raw_version)}"
            )
        if raw_version not in SUPPORTED_VERSIONS:
            raise PolicyDocumentError(
                f"Policy document has unsupported Version {json.dumps(raw_version)}; "
                f'use "{VERSION_2012_10_17}" or "{VERSION_2008_10_17}"'
            )
        version = raw_version

    policy_id: str | None = None
    if "Id" in root:
        raw_id = root["Id"]
        if not isinstance(raw_id, str):
            raise PolicyDocumentError(f"Policy Id must be a string, not {_describe(raw_id)}")
        policy_id = raw_id

    if "Statement" not in root:
        raise PolicyDocumentError('Policy document is missing the "Statement" element')
    raw_statements = root["Statement"]
    items: list[object]
    if isinstance(raw_statements, list):
        items = cast(list[object], raw_statements)
        if not items:
            raise PolicyDocumentError("Policy document Statement list must not be empty")
    elif isinstance(raw_statements, dict):
        items = [raw_statements]
    else:
        raise PolicyDocumentError(
            "Policy document Statement must be an object or a list of objects, "
            f"not {_describe(raw_statements)}"
        )

    statements: list[Statement] = []
    seen_sids: set[str] = set()
    for index, item in enumerate(items):
        statement = _parse_statement(item, index, kind)
        if statement.sid:
            if statement.sid in seen_sids:
                raise PolicyDocumentError(
                    f'Statement IDs (Sid) must be unique; "{statement.sid}" is used more than once'
                )
            seen_sids.add(statement.sid)
        statements.append(statement)

    return PolicyDocument(version=version, id=policy_id, statements=tuple(statements))


def _parse_statement(raw: object, index: int, kind: PolicyKind) -> Statement:
    where = f"Statement {index}"
    body = _as_object(raw)
    if body is None:
        raise PolicyDocumentError(f"{where} must be an object, not {_describe(raw)}")

    sid: str | None = None
    if "Sid" in body:
        raw_sid = body["Sid"]
        if not isinstance(raw_sid, str):
            raise PolicyDocumentError(f"{where}: Sid must be a string, not {_describe(raw_sid)}")
        sid = raw_sid
        where = f"Statement {index} (Sid {json.dumps(sid)})"
        if kind == "identity" and not _IDENTITY_SID_RE.fullmatch(sid):
            raise PolicyDocumentError(
                f"{where}: Sid may only contain ASCII letters and digits in identity policies"
            )

    for name in body:
        if name not in _STATEMENT_ELEMENTS:
            raise PolicyDocumentError(
                f'{where} has unknown element "{name}"; '
                f"allowed elements are {', '.join(_STATEMENT_ELEMENTS)}"
            )

    if "Effect" not in body:
        raise PolicyDocumentError(f'{where} is missing the "Effect" element')
    raw_effect = body["Effect"]
    if raw_effect == "Allow":
        effect: Effect = "Allow"
    elif raw_effect == "Deny":
        effect = "Deny"
    else:
        shown = json.dumps(raw_effect) if isinstance(raw_effect, str) else _describe(raw_effect)
        raise PolicyDocumentError(f'{where}: Effect must be "Allow" or "Deny", not {shown}')

    principal, not_principal = _parse_principal_elements(body, where, kind, effect)
    action, not_action = _parse_actions(body, where)
    resource, not_resource = _parse_resources(body, where, kind)
    conditions = _parse_conditions(body["Condition"], where) if "Condition" in body else ()

    return Statement(
        sid=sid,
        effect=effect,
        principal=principal,
        not_principal=not_principal,
        action=action,
        not_action=not_action,
        resource=resource,
        not_resource=not_resource,
        conditions=conditions,
    )


def _string_list(value: object, where: str, element: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings, as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        values = cast(list[object], value)
        if not values:
            raise PolicyDocumentError(f"{where}: {element} must not be an empty list")
        result: list[str] = []
        for item in values:
            if not isinstance(item, str):
                raise PolicyDocumentError(
                    f"{where}: {element} values must be strings, not {_describe(item)}"
                )
            result.append(item)
        return tuple(result)
    raise PolicyDocumentError(
        f"{where}: {element} must be a string or a list of strings, not {_describe(value)}"
    )


def _exactly_one(body: dict[str, object], where: str, first: str, second: str) -> str:
    if first in body and second in body:
        raise PolicyDocumentError(f'{where} must not contain both "{first}" and "{second}"')
    if first not in body and second not in body:
        raise PolicyDocumentError(f'{where} must contain "{first}" or "{second}"')
    return first if first in body else second


# Principal ------------------------------------------------------------------------------------


def _parse_principal_elements(
    body: dict[str, object], where: str, kind: PolicyKind, effect: Effect
) -> tuple[Principals | None, Principals | None]:
    if kind == "identity":
        for name in ("Principal", "NotPrincipal"):
            if name in body:
                raise PolicyDocumentError(
                    f'{where}: identity policies must not contain "{name}" '
                    "(the principal is the identity the policy is attached to)"
                )
        return None, None
    if kind == "trust" and "NotPrincipal" in body:
        raise PolicyDocumentError(f'{where}: trust policies do not support "NotPrincipal"')
    name = _exactly_one(body, where, "Principal", "NotPrincipal")
    principals = _parse_principals(body[name], where, name)
    if name == "Principal":
        return principals, None
    if effect != "Deny":
        raise PolicyDocumentError(f'{where}: "NotPrincipal" may only be used with "Effect": "Deny"')
    return None, principals


def _parse_principals(raw: object, where: str, element: str) -> Principals:
    if raw == "*":
        return ANY_PRINCIPAL
    mapping = _as_object(raw)
    if mapping is None:
        shown = json.dumps(raw) if isinstance(raw, str) else _describe(raw)
        raise PolicyDocumentError(
            f'{where}: {element} must be "*" or an object keyed by '
            f"{', '.join(PRINCIPAL_KINDS)}, not {shown}"
        )
    if not mapping:
        raise PolicyDocumentError(f"{where}: {element} must name at least one principal")
    by_kind: dict[PrincipalKind, tuple[str, ...]] = {}
    for raw_kind, raw_values in mapping.items():
        principal_kind = next((k for k in PRINCIPAL_KINDS if k == raw_kind), None)
        if principal_kind is None:
            raise PolicyDocumentError(
                f'{where}: {element} has unknown principal type "{raw_kind}"; '
                f"use one of {', '.join(PRINCIPAL_KINDS)}"
            )
        label = f"{element} {principal_kind}"
        values = _string_list(raw_values, where, label)
        for value in values:
            _check_principal_value(principal_kind, value, where, label)
        by_kind[principal_kind] = values
    return Principals(by_kind=by_kind)


def _check_principal_value(kind: PrincipalKind, value: str, where: str, label: str) -> None:
    shown = json.dumps(value)
    if kind == "AWS" and value == "*":
        return
    if "*" in value or "?" in value:
        raise PolicyDocumentError(
            f"{where}: {label} value {shown} is invalid; wildcards cannot match part of a "
            'principal (only "AWS": "*" is allowed)'
        )
    if kind == "AWS":
        valid = bool(_ACCOUNT_ID_RE.fullmatch(value) or _ARN_RE.fullmatch(value))
        expected = 'an ARN, a 12-digit account ID or "*"'
    elif kind == "CanonicalUser":
        valid = bool(_CANONICAL_USER_RE.fullmatch(value))
        expected = "a 64-character hexadecimal canonical user ID"
    else:
        valid = bool(_NO_WHITESPACE_RE.fullmatch(value))
        expected = "a non-empty name without whitespace"
    if not valid:
        raise PolicyDocumentError(f"{where}: {label} value {shown} is invalid; expected {expected}")


# Action / Resource ----------------------------------------------------------------------------


def _parse_actions(
    body: dict[str, object], where: str
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    name = _exactly_one(body, where, "Action", "NotAction")
    values = _string_list(body[name], where, name)
    for value in values:
        if value != "*" and not _ACTION_RE.fullmatch(value):
            raise PolicyDocumentError(
                f'{where}: {name} {json.dumps(value)} is invalid; actions must be "*" or '
                'prefixed by a service, like "kms:Encrypt" (wildcards * and ? are allowed)'
            )
    return (values, None) if name == "Action" else (None, values)


def _parse_resources(
    body: dict[str, object], where: str, kind: PolicyKind
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    if kind == "trust":
        for name in ("Resource", "NotResource"):
            if name in body:
                raise PolicyDocumentError(
                    f'{where}: trust policies must not contain "{name}" '
                    "(the resource is the role the policy is attached to)"
                )
        return None, None
    name = _exactly_one(body, where, "Resource", "NotResource")
    values = _string_list(body[name], where, name)
    for value in values:
        if value != "*" and not _ARN_RE.fullmatch(value):
            raise PolicyDocumentError(
                f"{where}: {name} {json.dumps(value)} must be in ARN format "
                '(arn:partition:service:region:account:resource) or "*"'
            )
    return (values, None) if name == "Resource" else (None, values)


# Condition ------------------------------------------------------------------------------------


def _parse_operator(operator: str, where: str) -> tuple[str, bool, SetQualifier | None]:
    rest = operator
    qualifier: SetQualifier | None = None
    for candidate in _SET_QUALIFIERS:
        if rest.startswith(candidate + ":"):
            qualifier = candidate
            rest = rest[len(candidate) + 1 :]
            break
    if_exists = rest.endswith(_IF_EXISTS)
    base = rest[: -len(_IF_EXISTS)] if if_exists else rest
    if base not in BASE_CONDITION_OPERATORS:
        raise PolicyDocumentError(
            f"{where}: unknown condition operator {json.dumps(operator)}; operators are a "
            "condition type such as StringEquals, NumericLessThan, DateGreaterThan, Bool, "
            "BinaryEquals, IpAddress, ArnLike or Null, optionally prefixed with ForAnyValue: "
            "or ForAllValues: and suffixed with IfExists"
        )
    if base == "Null" and if_exists:
        raise PolicyDocumentError(
            f"{where}: condition operator {json.dumps(operator)} is invalid; "
            "Null has no IfExists form"
        )
    return base, if_exists, qualifier


def _condition_value(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, _JsonNumber):
        return value.text
    return None


def _parse_conditions(raw: object, where: str) -> tuple[Condition, ...]:
    block = _as_object(raw)
    if block is None:
        raise PolicyDocumentError(f"{where}: Condition must be an object, not {_describe(raw)}")
    conditions: list[Condition] = []
    for operator, raw_tests in block.items():
        base, if_exists, qualifier = _parse_operator(operator, where)
        tests = _as_object(raw_tests)
        if tests is None:
            raise PolicyDocumentError(
                f"{where}: Condition operator {json.dumps(operator)} must map condition keys "
                f"to values, not be {_describe(raw_tests)}"
            )
        for key, raw_values in tests.items():
            if not _CONDITION_KEY_RE.fullmatch(key):
                raise PolicyDocumentError(
                    f"{where}: condition key {json.dumps(key)} is invalid; condition keys are "
                    'prefixed by a service, like "aws:SourceIp" or "kms:ViaService"'
                )
            items = cast(list[object], raw_values) if isinstance(raw_values, list) else [raw_values]
            values: list[str] = []
            for item in items:
                text = _condition_value(item)
                if text is None:
                    raise PolicyDocumentError(
                        f"{where}: values of condition {operator} {json.dumps(key)} must be "
                        f"strings, numbers or booleans, not {_describe(item)}"
                    )
                values.append(text)
            conditions.append(
                Condition(
                    operator=operator,
                    base_operator=base,
                    if_exists=if_exists,
                    set_qualifier=qualifier,
                    key=key,
                    values=tuple(values),
                )
            )
    return tuple(conditions)
