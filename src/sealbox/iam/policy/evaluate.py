"""AWS policy evaluation: may this principal perform this action on this resource?

A pure module: callers hand in the principal, the request (action, resource, condition
context) and the already-fetched policies; nothing here does I/O.  Policies are compiled once
(:func:`compile_policy`, or :func:`compile_text` which also parses and caches by text) into
matchers, so evaluating a request never re-parses JSON or rebuilds regular expressions.

The decision follows the IAM "policy evaluation logic" and "cross-account policy evaluation
logic" and the KMS key policy rules:

1. An applicable ``Deny`` statement, in an identity policy or in the resource policy (whose
   ``Principal`` matches the caller, names the caller's account, or whose ``NotPrincipal``
   does not exclude the caller) wins: :attr:`Decision.EXPLICIT_DENY`.
2. Otherwise the request is allowed only as follows, else :attr:`Decision.IMPLICIT_DENY`.
   *Identity allows* means an identity policy ``Allow`` applies; identity policies never
   apply to an account root, which counts as allowed on the identity side.

   * ``resource_policy_gates=True`` (KMS): the key policy is required.  Allowed if a key
     policy ``Allow`` names the caller itself (its ARN, its role for a role session, ``*``, or
     the account when the caller is that account's root) and the caller is in the key's
     account; or if a key policy ``Allow`` names the caller or the caller's account and
     identity allows (delegation to IAM, and every cross-account access); or if a grant
     allows and the caller is in the key's account or identity allows.
   * ``resource_policy_gates=False`` (S3 and others): within the resource's account,
     allowed if identity allows or a resource policy ``Allow`` names the caller itself
     (naming only the account delegates to IAM and so adds nothing); across accounts, a
     resource policy ``Allow`` must name the caller or its account and identity must allow.

   AWS service principals (``{"Service": ...}``) belong to no account: a resource policy
   ``Allow`` naming the service suffices.  Anonymous callers (``principal_type``
   ``"Anonymous"``) belong to no account and have no identity policies: only a resource policy
   ``Allow`` naming everyone (``"*"``) applies, and never with ``resource_policy_gates``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from sealbox.iam.policy.conditions import CompiledCondition
from sealbox.iam.policy.document import (
    PolicyDocument,
    PolicyKind,
    Principals,
    Statement,
    parse_policy,
)
from sealbox.iam.policy.variables import (
    Part,
    Text,
    has_variables,
    normalize_context_value,
    parse_template,
    resolve,
    static_chunks,
    wildcard_regex,
)

__all__ = [
    "AuthzPrincipal",
    "AuthzRequest",
    "CompiledPolicy",
    "CompiledStatement",
    "Decision",
    "Result",
    "compile_policy",
    "compile_text",
    "evaluate",
]

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_VARIABLES_VERSION: Final = "2012-10-17"  # policy variables exist only from this version on


@dataclass(frozen=True, slots=True)
class AuthzPrincipal:
    """The authenticated caller.

    ``arn`` is ``arn:aws:iam::A:root``, ``arn:aws:iam::A:user/path/name``,
    ``arn:aws:sts::A:assumed-role/R/S`` or a service name such as ``s3.amazonaws.com``;
    ``principal_type`` is the ``aws:PrincipalType`` value (``Account``, ``User``,
    ``AssumedRole``, ``AWSService``); ``user_id`` is ``aws:userid``; ``role_arn`` is the
    role's ARN (with path) for role sessions; ``tags`` are ``aws:PrincipalTag/*``.
    """

    arn: str
    account_id: str
    principal_type: str
    user_id: str
    username: str | None = None
    role_arn: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def is_root(self) -> bool:
        return self.principal_type == "Account"

    @property
    def is_service(self) -> bool:
        return self.principal_type == "AWSService"

    @property
    def is_anonymous(self) -> bool:
        """An unsigned request (``aws:PrincipalType`` ``Anonymous``): no account, no identity
        policies; only a resource policy statement naming everyone applies to it."""
        return self.principal_type == "Anonymous"


@dataclass(frozen=True, slots=True)
class AuthzRequest:
    """What is being attempted.

    ``action`` is ``service:Action`` (compared case-insensitively); ``resource`` the ARN of
    the resource, or ``"*"`` for actions without a resource; ``resource_account`` the account
    owning it (``None`` for account-less actions, which count as the caller's own account);
    ``context`` maps condition keys (any case) to a value or a sequence of values.
    """

    action: str
    resource: str
    resource_account: str | None
    context: Mapping[str, str | Sequence[str]] = field(default_factory=lambda: _EMPTY)


class Decision(Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True, slots=True)
class Result:
    """The decision and a short explanation for logs (policy and statement names only)."""

    decision: Decision
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


# --------------------------------------------------------------------------------------------
# Request context


class _EvalContext:
    """Condition keys of one request: principal-derived global keys, then the request's."""

    __slots__ = ("_lowered", "_principal", "_source", "_values")

    def __init__(self, principal: AuthzPrincipal, context: Mapping[str, object]) -> None:
        self._principal = principal
        self._source = context
        self._lowered: dict[str, object] | None = None
        self._values: dict[str, tuple[str, ...] | None] = {}

    def _request(self) -> dict[str, object]:
        lowered = self._lowered
        if lowered is None:
            lowered = {k.lower(): v for k, v in self._source.items() if isinstance(k, str)}
            self._lowered = lowered
        return lowered

    def _principal_key(self, key: str) -> tuple[bool, str | None]:
        """``(True, value)`` for keys the principal determines (they cannot be overridden by
        the request context), ``(False, None)`` for other keys."""
        p = self._principal
        if key.startswith("aws:principaltag/"):
            wanted = key[len("aws:principaltag/") :]
            for tag, value in p.tags.items():
                if tag.lower() == wanted:
                    return True, value
            return True, None
        if key not in _PRINCIPAL_KEYS:
            return False, None
        service = p.is_service
        if key == "aws:principalarn":
            return True, None if service or p.is_anonymous else (p.role_arn or p.arn)
        if key == "aws:principalaccount":
            return True, None if service or not p.account_id else p.account_id
        if key == "aws:userid":
            return True, p.user_id or None
        if key == "aws:username":
            return True, p.username
        if key == "aws:principaltype":
            return True, p.principal_type
        if key == "aws:principalisawsservice":
            return True, "true" if service else "false"
        return True, p.arn if service else None  # aws:principalservicename

    def values(self, key: str) -> tuple[str, ...] | None:
        try:
            return self._values[key]
        except KeyError:
            pass
        result: tuple[str, ...] | None
        known = False
        if key.startswith("aws:"):
            known, value = self._principal_key(key)
            if known:
                result = None if value is None else (value,)
        if not known:
            result = normalize_context_value(self._request().get(key))
        self._values[key] = result
        return result

    def single(self, key: str) -> str | None:
        if key.startswith("aws:"):
            known, value = self._principal_key(key)
            if known:
                return value
        raw = self._request().get(key)
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, int | float):
            return str(raw)
        return None  # absent or multi-valued: multi-valued keys cannot be policy variables


_PRINCIPAL_KEYS: Final = frozenset(
    {
        "aws:principalarn",
        "aws:principalaccount",
        "aws:userid",
        "aws:username",
        "aws:principaltype",
        "aws:principalisawsservice",
        "aws:principalservicename",
    }
)

# --------------------------------------------------------------------------------------------
# Compiled statements

# How a resource policy statement's Principal relates to the caller.
_NO_MATCH: Final = 0
_ACCOUNT: Final = 1  # names the caller's account (delegation to the account's IAM policies)
_DIRECT: Final = 2  # names the caller itself (or everyone)

_ACCOUNT_ROOT_RE: Final = re.compile(r"arn:[^:]+:iam::([0-9]{12}):root")
_ACCOUNT_ID_RE: Final = re.compile(r"[0-9]{12}")


def _pattern(
    values: Sequence[str], *, variables: bool
) -> tuple[bool, frozenset[str], re.Pattern[str] | None, tuple[tuple[Part, ...], ...]]:
    """Split element values into: matches everything, exact strings, one regex for the static
    wildcard patterns, and templates with policy variables."""
    match_all = False
    exact: set[str] = set()
    regexes: list[str] = []
    templates: list[tuple[Part, ...]] = []
    for value in values:
        parts = parse_template(value) if variables else (Text(value),)
        if has_variables(parts):
            templates.append(parts)
            continue
        chunks = static_chunks(parts)
        if chunks == (("*", True),):
            match_all = True
        elif not any(active and ("*" in text or "?" in text) for text, active in chunks):
            exact.add("".join(text for text, _ in chunks))
        else:
            regex = wildcard_regex(chunks)
            assert regex is not None
            regexes.append(f"(?:{regex})")
    compiled = re.compile("|".join(regexes), re.DOTALL) if regexes else None
    return match_all, frozenset(exact), compiled, tuple(templates)


class CompiledStatement:
    """A statement with precompiled matchers for its elements."""

    __slots__ = (
        "_action_all",
        "_action_exact",
        "_action_negated",
        "_action_regex",
        "_conditions",
        "_has_principal",
        "_p_accounts",
        "_p_arns",
        "_p_negated",
        "_p_services",
        "_p_wildcard",
        "_resource_all",
        "_resource_exact",
        "_resource_negated",
        "_resource_regex",
        "_resource_templates",
        "index",
        "is_deny",
        "label",
        "statement",
    )

    def __init__(self, statement: Statement, index: int, *, variables: bool) -> None:
        self.statement = statement
        self.index = index
        self.is_deny = statement.effect == "Deny"
        self.label = f"statement {statement.sid!r}" if statement.sid else f"statement #{index + 1}"

        # Action / NotAction: case-insensitive, never with policy variables.
        self._action_negated = statement.action is None
        actions = statement.action if statement.action is not None else statement.not_action
        lowered = tuple(action.lower() for action in actions or ())
        self._action_all, self._action_exact, self._action_regex, _ = _pattern(
            lowered, variables=False
        )

        # Resource / NotResource: case-sensitive, wildcards may span colons.  Trust policies
        # have neither: the statement applies to the resource it is attached to.
        self._resource_negated = statement.resource is None and statement.not_resource is not None
        resources = statement.resource if statement.resource is not None else statement.not_resource
        if resources is None:
            resources = ("*",)
        (
            self._resource_all,
            self._resource_exact,
            self._resource_regex,
            self._resource_templates,
        ) = _pattern(resources, variables=variables)

        # Principal / NotPrincipal (resource and trust policies only).
        principals = statement.principal or statement.not_principal
        self._has_principal = principals is not None
        self._p_negated = statement.not_principal is not None
        self._p_wildcard = False
        accounts: set[str] = set()
        arns: set[str] = set()
        services: set[str] = set()
        if principals is not None:
            self._p_wildcard = _collect_principals(principals, accounts, arns, services)
        self._p_accounts = frozenset(accounts)
        self._p_arns = frozenset(arns)
        self._p_services = frozenset(services)

        self._conditions = tuple(
            CompiledCondition(condition, variables=variables) for condition in statement.conditions
        )

    # -- elements ------------------------------------------------------------------------

    def matches_action(self, action: str) -> bool:
        """``action`` must be lower-cased."""
        regex = self._action_regex
        hit = (
            self._action_all
            or action in self._action_exact
            or (regex is not None and regex.fullmatch(action) is not None)
        )
        return hit is not self._action_negated

    def matches_resource(self, resource: str, context: _EvalContext) -> bool:
        regex = self._resource_regex
        hit = (
            self._resource_all
            or resource in self._resource_exact
            or (regex is not None and regex.fullmatch(resource) is not None)
        )
        if not hit and self._resource_templates:
            for template in self._resource_templates:
                chunks = resolve(template, context)
                if chunks is None:
                    # A variable without a value: this Resource value matches nothing, and
                    # a NotResource element cannot be satisfied.
                    if self._resource_negated:
                        return False
                    continue
                if re.fullmatch(wildcard_regex(chunks) or "", resource, re.DOTALL) is not None:
                    hit = True
                    break
        return hit is not self._resource_negated

    def conditions_hold(self, context: _EvalContext) -> bool:
        # A plain loop: measurably faster than all() over a generator on this hot path.
        for condition in self._conditions:  # noqa: SIM110
            if not condition(context):
                return False
        return True

    def applies(self, action: str, resource: str, context: _EvalContext) -> bool:
        """Action, resource and conditions match (the principal is checked separately)."""
        return (
            self.matches_action(action)
            and self.matches_resource(resource, context)
            and self.conditions_hold(context)
        )

    def principal_level(self, principal: AuthzPrincipal) -> int:
        """How this statement's Principal/NotPrincipal relates to ``principal``."""
        if not self._has_principal:
            return _DIRECT  # identity policy: applies to the identity it is attached to
        if self._p_negated:
            return _NO_MATCH if self._excluded(principal) else _DIRECT
        if self._p_wildcard:
            return _DIRECT
        if principal.is_service:
            return _DIRECT if principal.arn.lower() in self._p_services else _NO_MATCH
        arns = self._p_arns
        if principal.arn in arns or (principal.role_arn is not None and principal.role_arn in arns):
            return _DIRECT
        if principal.account_id in self._p_accounts:
            return _DIRECT if principal.is_root else _ACCOUNT
        return _NO_MATCH

    def _excluded(self, principal: AuthzPrincipal) -> bool:
        """Whether a NotPrincipal lists the caller.  As AWS documents, a user or role session
        is only excluded if its account is listed too (AWS checks the account, then the role,
        then the session); a role session is excluded by its session ARN or its role ARN."""
        if self._p_wildcard:
            return True
        if principal.is_service:
            return principal.arn.lower() in self._p_services
        if principal.account_id not in self._p_accounts:
            return False
        if principal.is_root:
            return True
        arns = self._p_arns
        return principal.arn in arns or (
            principal.role_arn is not None and principal.role_arn in arns
        )

    def __repr__(self) -> str:
        return f"CompiledStatement({self.label}, {self.statement.effect})"


def _collect_principals(
    principals: Principals, accounts: set[str], arns: set[str], services: set[str]
) -> bool:
    """Sort principal values into accounts, ARNs and services; True for a wildcard."""
    if principals.wildcard:
        return True
    wildcard = False
    for value in principals.values("AWS"):
        if value == "*":
            wildcard = True  # {"AWS": "*"} is equivalent to "*"
        elif _ACCOUNT_ID_RE.fullmatch(value):
            accounts.add(value)
        elif (root := _ACCOUNT_ROOT_RE.fullmatch(value)) is not None:
            accounts.add(root.group(1))
        else:
            arns.add(value)
    for value in principals.values("Service"):
        services.add(value.lower())
    # Federated and CanonicalUser principals are never callers here: they match nothing.
    return wildcard


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPolicy:
    """A policy document with precompiled statements, split by effect."""

    document: PolicyDocument
    statements: tuple[CompiledStatement, ...]
    allows: tuple[CompiledStatement, ...]
    denies: tuple[CompiledStatement, ...]


def compile_policy(document: PolicyDocument) -> CompiledPolicy:
    """Precompile a parsed policy for :func:`evaluate`."""
    variables = document.version == _VARIABLES_VERSION
    statements = tuple(
        CompiledStatement(statement, index, variables=variables)
        for index, statement in enumerate(document.statements)
    )
    return CompiledPolicy(
        document=document,
        statements=statements,
        allows=tuple(s for s in statements if not s.is_deny),
        denies=tuple(s for s in statements if s.is_deny),
    )


@functools.lru_cache(maxsize=2048)
def compile_text(text: str, kind: PolicyKind) -> CompiledPolicy:
    """Parse and compile policy text, cached by ``(text, kind)``.

    Raises :class:`~sealbox.iam.policy.document.PolicyDocumentError` for an invalid document
    (errors are not cached).
    """
    return compile_policy(parse_policy(text, kind=kind))


# --------------------------------------------------------------------------------------------
# Evaluation


def _where(policy: CompiledPolicy, statement: CompiledStatement, origin: str) -> str:
    """``"key policy 'key-default-1' statement 'Enable IAM'"`` and the like."""
    policy_id = policy.document.id
    named = f"{origin} {policy_id!r}" if policy_id else origin
    return f"{named} {statement.label}"


def _identity_allow(
    policies: Sequence[CompiledPolicy], action: str, resource: str, context: _EvalContext
) -> str | None:
    """Where an identity policy allows the request, or ``None``."""
    for number, policy in enumerate(policies, 1):
        for statement in policy.allows:
            if statement.applies(action, resource, context):
                return _where(policy, statement, f"identity policy #{number}")
    return None


def _resource_allow(
    policy: CompiledPolicy,
    principal: AuthzPrincipal,
    action: str,
    resource: str,
    context: _EvalContext,
    minimum: int,
) -> tuple[int, CompiledStatement | None]:
    """The strongest principal match among the resource policy's applicable Allow statements
    (at least ``minimum``), and that statement."""
    best = _NO_MATCH
    found: CompiledStatement | None = None
    for statement in policy.allows:
        if not statement.matches_action(action):
            continue
        level = statement.principal_level(principal)
        if level <= best or level < minimum:
            continue
        if statement.matches_resource(resource, context) and statement.conditions_hold(context):
            best, found = level, statement
            if level == _DIRECT:
                break
    return best, found


def evaluate(
    principal: AuthzPrincipal,
    request: AuthzRequest,
    *,
    identity_policies: Sequence[CompiledPolicy] = (),
    resource_policy: CompiledPolicy | None = None,
    resource_policy_gates: bool = False,
    grant_allows: bool = False,
) -> Result:
    """Decide a request (see the module documentation for the rules).

    ``identity_policies`` are all policies of the caller (inline, attached, group, role);
    ``resource_policy`` is the resource's policy (KMS key policy, bucket policy) if any;
    ``resource_policy_gates`` selects KMS semantics; ``grant_allows`` says a grant covers the
    request (for a cross-account caller it still needs an identity allow).
    """
    context = _EvalContext(principal, request.context)
    action = request.action.lower()
    resource = request.resource
    root = principal.is_root

    # 1. Explicit denies win.
    if not root:
        for number, policy in enumerate(identity_policies, 1):
            for deny in policy.denies:
                if deny.applies(action, resource, context):
                    where = _where(policy, deny, f"identity policy #{number}")
                    return Result(Decision.EXPLICIT_DENY, f"explicitly denied by {where}")
    if resource_policy is not None:
        for deny in resource_policy.denies:
            if (
                deny.matches_action(action)
                and deny.principal_level(principal) != _NO_MATCH
                and deny.matches_resource(resource, context)
                and deny.conditions_hold(context)
            ):
                where = _where(resource_policy, deny, "resource policy")
                return Result(Decision.EXPLICIT_DENY, f"explicitly denied by {where}")

    # 2. Allows.
    level: int
    statement: CompiledStatement | None
    owner = request.resource_account
    same_account = principal.is_service or owner is None or owner == principal.account_id

    def identity() -> str | None:
        if root:
            return "account root"
        return _identity_allow(identity_policies, action, resource, context)

    if principal.is_anonymous:
        # No account and no identity policies: only a resource policy Allow that names
        # everyone grants access, and never under KMS semantics.
        if resource_policy is not None and not resource_policy_gates:
            _, statement = _resource_allow(
                resource_policy, principal, action, resource, context, _DIRECT
            )
            if statement is not None:
                where = _where(resource_policy, statement, "resource policy")
                return Result(Decision.ALLOW, f"allowed by {where}")
        return Result(Decision.IMPLICIT_DENY, "anonymous request: no policy allows everyone")

    if resource_policy_gates:
        level, statement = _NO_MATCH, None
        if resource_policy is not None:
            level, statement = _resource_allow(
                resource_policy, principal, action, resource, context, _ACCOUNT
            )
        if level == _DIRECT and same_account:
            assert statement is not None and resource_policy is not None
            where = _where(resource_policy, statement, "key policy")
            return Result(Decision.ALLOW, f"allowed by {where}")
        if grant_allows and same_account:
            return Result(Decision.ALLOW, "allowed by a grant")
        if level == _NO_MATCH and not grant_allows:
            return Result(
                Decision.IMPLICIT_DENY,
                "the key policy does not allow the principal or its account",
            )
        granted_by = identity()
        if granted_by is None:
            return Result(Decision.IMPLICIT_DENY, "no identity policy allows the request")
        if statement is not None and resource_policy is not None:
            where = _where(resource_policy, statement, "key policy")
            return Result(Decision.ALLOW, f"allowed by {where} and {granted_by}")
        return Result(Decision.ALLOW, f"allowed by a grant and {granted_by}")

    if same_account:
        granted_by = identity()
        if granted_by is not None:
            return Result(Decision.ALLOW, f"allowed by {granted_by}")
        if resource_policy is not None:
            level, statement = _resource_allow(
                resource_policy, principal, action, resource, context, _DIRECT
            )
            if statement is not None:
                where = _where(resource_policy, statement, "resource policy")
                return Result(Decision.ALLOW, f"allowed by {where}")
        if grant_allows:
            return Result(Decision.ALLOW, "allowed by a grant")
        return Result(Decision.IMPLICIT_DENY, "no policy allows the request")

    level, statement = _NO_MATCH, None
    if resource_policy is not None:
        level, statement = _resource_allow(
            resource_policy, principal, action, resource, context, _ACCOUNT
        )
    if level == _NO_MATCH and not grant_allows:
        return Result(
            Decision.IMPLICIT_DENY,
            "cross-account request: the resource policy does not allow the principal "
            "or its account",
        )
    granted_by = identity()
    if granted_by is None:
        return Result(Decision.IMPLICIT_DENY, "cross-account request: no identity policy allows it")
    if statement is not None and resource_policy is not None:
        where = _where(resource_policy, statement, "resource policy")
        return Result(Decision.ALLOW, f"allowed by {where} and {granted_by}")
    return Result(Decision.ALLOW, f"allowed by a grant and {granted_by}")
