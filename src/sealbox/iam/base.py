"""What every IAM operation shares: input rules, paging, authorization and the write path.

AWS's rules for names, paths, tags, policy documents and markers are checked here, with
AWS's error codes and wording, so each entity module only states what is particular to it.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.audit.recorder import AuditRecorder
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.iam.errors import (
    IamValidationError,
    InvalidInputError,
    LimitExceededError,
    MalformedPolicyDocumentError,
    NoSuchEntityError,
)
from sealbox.iam.model import EntityKind, Group, Page, Role, User
from sealbox.iam.policy.document import PolicyDocumentError, PolicyKind, parse_policy
from sealbox.keystore.base import KeyStore
from sealbox.storage import iam_repo
from sealbox.storage.db import Database

T = TypeVar("T")

#: (call, action such as "iam:CreateUser", resource ARN or "*"); raises when denied.
Authorize = Callable[[Call, str, str], None]

DEFAULT_MAX_ITEMS: Final = 100
MAX_TAGS: Final = 50

_NAME: Final = re.compile(r"[\w+=,.@-]+", re.ASCII)
_NAME_PATTERN: Final = r"[\w+=,.@-]+"
_PATH: Final = re.compile(r"/|/[\x21-\x7e]+/")
_PATH_PATTERN: Final = r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)"
_POLICY_PATH: Final = re.compile(r"(?:/[A-Za-z0-9.,+@=_-]+)*/")
_POLICY_PATH_PATTERN: Final = r"((/[A-Za-z0-9\.,\+@=_-]+)*)/"
_PATH_PREFIX: Final = re.compile(r"/[\x21-\x7f]*")
_PATH_PREFIX_PATTERN: Final = r"\u002F[\u0021-\u007F]*"
_DOCUMENT_CHARS: Final = re.compile(r"[\t\n\r\x20-\xff]+")
_DOCUMENT_PATTERN: Final = r"[\u0009\u000A\u000D\u0020-\u00FF]+"
_DOCUMENT_MAX: Final = 131072
_TAG_PUNCTUATION: Final = frozenset("_.:/=+-@")
_ID_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


# -- input rules ----------------------------------------------------------------------------


def constraint_error(value: object, member: str, constraint: str) -> IamValidationError:
    """AWS's wording for a parameter that breaks its constraint."""
    return IamValidationError(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def check_length(value: str, member: str, low: int, high: int) -> None:
    if len(value) < low:
        raise constraint_error(
            value, member, f"Member must have length greater than or equal to {low}"
        )
    if len(value) > high:
        raise constraint_error(
            value, member, f"Member must have length less than or equal to {high}"
        )


def check_name(value: str, member: str, max_length: int) -> None:
    """User, role, group and policy names: [\\w+=,.@-], 1..max_length characters."""
    check_length(value, member, 1, max_length)
    if not _NAME.fullmatch(value):
        raise constraint_error(
            value, member, f"Member must satisfy regular expression pattern: {_NAME_PATTERN}"
        )


def check_path(value: str, member: str = "path", policy: bool = False) -> None:
    check_length(value, member, 1, 512)
    regex, pattern = (_POLICY_PATH, _POLICY_PATH_PATTERN) if policy else (_PATH, _PATH_PATTERN)
    if not regex.fullmatch(value):
        raise constraint_error(
            value, member, f"Member must satisfy regular expression pattern: {pattern}"
        )


def check_path_prefix(value: str, policy: bool = False) -> None:
    if policy:
        check_path(value, "pathPrefix", policy=True)
        return
    check_length(value, "pathPrefix", 1, 512)
    if not _PATH_PREFIX.fullmatch(value):
        raise constraint_error(
            value,
            "pathPrefix",
            f"Member must satisfy regular expression pattern: {_PATH_PREFIX_PATTERN}",
        )


def check_description(value: str, member: str = "description") -> None:
    check_length(value, member, 0, 1000)


def non_whitespace_length(text: str) -> int:
    """Policy sizes count characters other than white space, as IAM does."""
    return sum(1 for char in text if not char.isspace())


def parse_document(text: str, kind: PolicyKind, member: str = "policyDocument") -> None:
    """Check a policy document's characters and grammar (its size is the caller's quota)."""
    check_length(text, member, 1, _DOCUMENT_MAX)
    if not _DOCUMENT_CHARS.fullmatch(text):
        raise constraint_error(
            "[policy document]",
            member,
            f"Member must satisfy regular expression pattern: {_DOCUMENT_PATTERN}",
        )
    try:
        parse_policy(text, kind=kind)
    except PolicyDocumentError as exc:
        raise MalformedPolicyDocumentError(str(exc)) from None


def _tag_text_ok(text: str) -> bool:
    return all(unicodedata.category(char)[0] in "LZN" or char in _TAG_PUNCTUATION for char in text)


def validate_tags(tags: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Tags of a request as a mapping; keys are unique regardless of case."""
    if len(tags) > MAX_TAGS:
        raise constraint_error(
            "[tags]", "tags", f"Member must have length less than or equal to {MAX_TAGS}"
        )
    result: dict[str, str] = {}
    seen: set[str] = set()
    for index, (key, value) in enumerate(tags, start=1):
        check_length(key, f"tags.{index}.member.key", 1, 128)
        check_length(value, f"tags.{index}.member.value", 0, 256)
        if not _tag_text_ok(key) or not _tag_text_ok(value):
            raise InvalidInputError(
                "Tag keys and values may contain only Unicode letters, digits, white space "
                "and _ . : / = + - @"
            )
        if key.lower().startswith("aws:"):
            raise InvalidInputError("User-defined tag keys can't start with the prefix 'aws:'.")
        if key.lower() in seen:
            raise InvalidInputError(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive."
            )
        seen.add(key.lower())
        result[key] = value
    return result


def validate_tag_keys(keys: Sequence[str]) -> list[str]:
    if len(keys) > MAX_TAGS:
        raise constraint_error(
            "[tagKeys]", "tagKeys", f"Member must have length less than or equal to {MAX_TAGS}"
        )
    for index, key in enumerate(keys, start=1):
        check_length(key, f"tagKeys.{index}.member", 1, 128)
    return list(keys)


def merged_tag_count(existing: Sequence[tuple[str, str]], new: dict[str, str]) -> int:
    keys = {k.lower() for k, _ in existing} | {k.lower() for k in new}
    return len(keys)


def new_unique_id(prefix: str) -> str:
    """An IAM unique id: AIDA (user), AROA (role), AGPA (group), ANPA (policy) + 17."""
    return prefix + crypto.random_token(_ID_ALPHABET, 17)


def entity_arn(account_id: str, kind: str, path: str, name: str) -> str:
    """arn:aws:iam::ACCOUNT:KIND/PATH/NAME (the path "/" adds nothing)."""
    return arns.iam_arn(account_id, f"{kind}{path}{name}")


# -- paging ---------------------------------------------------------------------------------


def page_limit(value: int | None) -> int:
    if value is None:
        return DEFAULT_MAX_ITEMS
    if not 1 <= value <= 1000:
        raise constraint_error(
            value,
            "maxItems",
            "Member must have value "
            + ("greater than or equal to 1" if value < 1 else "less than or equal to 1000"),
        )
    return value


def decode_marker(marker: str | None) -> str | None:
    """The lower-cased sort key a listing resumes after."""
    if marker is None:
        return None
    try:
        after = base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        after = ""
    if not after:
        raise IamValidationError("Invalid Marker.")
    return after


def encode_marker(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode("ascii")


def page_of(items: list[T], limit: int, sort_key: Callable[[T], str]) -> Page[T]:
    """Cut a page from up to limit + 1 items fetched after the marker."""
    if len(items) <= limit:
        return Page(items)
    items = items[:limit]
    return Page(items, encode_marker(sort_key(items[-1]).lower()))


def page_in_memory(
    items: list[T], marker: str | None, limit: int, sort_key: Callable[[T], str]
) -> Page[T]:
    """Page through a short, already sorted list (tags, key ids, policy names)."""
    after = decode_marker(marker)
    if after is not None:
        items = [item for item in items if sort_key(item).lower() > after]
    return page_of(items[: limit + 1], limit, sort_key)


# -- the base of the entity modules -----------------------------------------------------------


class IamBase:
    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        clock: Clock,
        audit: AuditRecorder,
        authorize: Authorize,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._audit = audit
        self._authorize_fn = authorize

    def _authorize(self, call: Call, action: str, resource: str) -> None:
        """Ask before acting; the resource is recorded for the audit event."""
        self._authorize_fn(call, action, resource)
        if resource != "*" and resource not in call.resources:
            call.resources.append(resource)

    def _write(self, call: Call, work: Callable[[Connection], T]) -> T:
        """Run a change, bump the account's iam_version and audit, in one transaction."""

        def transaction(conn: Connection) -> T:
            result = work(conn)
            iam_repo.bump_iam_version(conn, call.principal.account_id)
            self._audit.append(conn, call)
            call.audited = True
            return result

        return self._db.write(transaction)

    # -- entities -----------------------------------------------------------------------------

    @staticmethod
    def _find_user(conn: Connection, account_id: str, user_name: str) -> User | None:
        user = iam_repo.get_user(conn, account_id, user_name)
        return None if user is None or user.is_root else user

    def _require_user(self, conn: Connection, account_id: str, user_name: str) -> User:
        user = self._find_user(conn, account_id, user_name)
        if user is None:
            raise NoSuchEntityError(f"The user with name {user_name} cannot be found.")
        return user

    @staticmethod
    def _require_role(conn: Connection, account_id: str, role_name: str) -> Role:
        role = iam_repo.get_role(conn, account_id, role_name)
        if role is None:
            raise NoSuchEntityError(f"The role with name {role_name} cannot be found.")
        return role

    @staticmethod
    def _require_group(conn: Connection, account_id: str, group_name: str) -> Group:
        group = iam_repo.get_group(conn, account_id, group_name)
        if group is None:
            raise NoSuchEntityError(f"The group with name {group_name} cannot be found.")
        return group

    def _require_entity(
        self, conn: Connection, account_id: str, kind: EntityKind, name: str
    ) -> tuple[str, str]:
        """(stored name, ARN) of an existing user, group or role."""
        if kind == "user":
            user = self._require_user(conn, account_id, name)
            return user.user_name, user.arn
        if kind == "role":
            role = self._require_role(conn, account_id, name)
            return role.role_name, role.arn
        group = self._require_group(conn, account_id, name)
        return group.group_name, group.arn

    def _entity_arn(self, call: Call, kind: EntityKind, name: str) -> str:
        """The ARN to authorize against: the entity's own (with its path) if it exists,
        else the one it would have at path "/" (so a missing entity is not revealed to
        a caller who may not ask about it)."""
        account = call.principal.account_id
        with self._db.read() as conn:
            try:
                return self._require_entity(conn, account, kind, name)[1]
            except NoSuchEntityError:
                return entity_arn(account, kind, "/", name)

    @staticmethod
    def _check_entity_name(kind: EntityKind, name: str) -> None:
        member = {"user": "userName", "role": "roleName", "group": "groupName"}[kind]
        check_name(name, member, 64 if kind == "role" else 128)

    @staticmethod
    def _quota(count: int, limit: int, quota: str) -> None:
        if count >= limit:
            raise LimitExceededError(f"Cannot exceed quota for {quota}: {limit}")
