"""IAM users, their tags and their access keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox.auth.principal import secret_label
from sealbox.call import Call
from sealbox.iam.base import (
    MAX_TAGS,
    IamBase,
    check_name,
    check_path,
    check_path_prefix,
    decode_marker,
    entity_arn,
    merged_tag_count,
    new_unique_id,
    page_in_memory,
    page_limit,
    page_of,
    validate_tag_keys,
    validate_tags,
)
from sealbox.iam.bootstrap import new_access_key_id, new_secret_access_key
from sealbox.iam.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    IamValidationError,
    InvalidInputError,
    LimitExceededError,
    NoSuchEntityError,
)
from sealbox.iam.model import AccessKeyInfo, NewAccessKey, Page, User
from sealbox.storage import iam_repo

MAX_USERS: Final = 5000
MAX_ACCESS_KEYS: Final = 2
_KEY_STATUSES: Final = ("Active", "Inactive")


class UserOperations(IamBase):
    # -- whose user ------------------------------------------------------------------------

    @staticmethod
    def _implicit_user_name(call: Call) -> str:
        """The IAM user an operation without UserName acts on: the caller's own.

        (The root caller is handled by each operation: it acts on the root user.)"""
        principal = call.principal
        if principal.principal_type == "IAMUser" and principal.user_name:
            return principal.user_name
        raise IamValidationError("Must specify userName when calling with non-User credentials")

    def _key_owner(self, call: Call, user_name: str | None) -> tuple[str, str]:
        """(name as given or implied, ARN to authorize) for the access key operations."""
        if user_name is None:
            if call.principal.principal_type == "Root":
                return "", arns.account_root_arn(call.principal.account_id)
            return self._implicit_user_name(call), call.principal.arn
        check_name(user_name, "userName", 128)
        return user_name, self._entity_arn(call, "user", user_name)

    def _key_owner_user(self, conn: Connection, call: Call, user_name: str | None) -> User:
        account = call.principal.account_id
        if user_name is None and call.principal.principal_type == "Root":
            root = iam_repo.get_root_user(conn, account)
            if root is None:
                raise NoSuchEntityError("The root user of this account cannot be found.")
            return root
        name = user_name if user_name is not None else self._implicit_user_name(call)
        return self._require_user(conn, account, name)

    # -- users -----------------------------------------------------------------------------

    def create_user(
        self,
        call: Call,
        user_name: str,
        path: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        permissions_boundary: str | None = None,
    ) -> User:
        check_name(user_name, "userName", 64)
        path = "/" if path is None else path
        check_path(path)
        tag_map = validate_tags(tags)
        if permissions_boundary is not None:
            raise InvalidInputError("Permissions boundaries are not supported by this server.")
        account = call.principal.account_id
        arn = entity_arn(account, "user", path, user_name)
        self._authorize(call, "iam:CreateUser", arn)

        def work(conn: Connection) -> User:
            existing = iam_repo.get_user(conn, account, user_name)
            if existing is not None:
                if existing.is_root:
                    raise InvalidInputError(
                        f"The user name {user_name} is reserved for the account's root user."
                    )
                raise EntityAlreadyExistsError(f"User with name {user_name} already exists.")
            self._quota(iam_repo.count_users(conn, account), MAX_USERS, "UsersPerAccount")
            now = self._clock.now()
            user_id = new_unique_id("AIDA")
            iam_repo.insert_user(conn, account, user_name, user_id, arn, False, now)
            iam_repo.put_tags(conn, account, "user", user_name, tag_map)
            return User(
                account_id=account,
                user_name=user_name,
                user_id=user_id,
                arn=arn,
                path=path,
                created_at=now,
                tags=tuple(sorted(tag_map.items())),
            )

        return self._write(call, work)

    def get_user(self, call: Call, user_name: str | None = None) -> User:
        """A user by name, or without a name the caller's own user (the root user too)."""
        account = call.principal.account_id
        if user_name is None:
            is_root = call.principal.principal_type == "Root"
            name = "" if is_root else self._implicit_user_name(call)
            self._authorize(call, "iam:GetUser", call.principal.arn)
            with self._db.read() as conn:
                if is_root:
                    root = iam_repo.get_root_user(conn, account)
                    if root is None:
                        raise NoSuchEntityError("The root user of this account cannot be found.")
                    # AWS shows the account itself: its id, the root ARN, no name or path.
                    return User(account, "", account, root.arn, "", root.created_at, True)
                user = self._require_user(conn, account, name)
                tags = iam_repo.get_tags(conn, account, "user", user.user_name)
            return replace(user, tags=tags)
        check_name(user_name, "userName", 128)
        self._authorize(call, "iam:GetUser", self._entity_arn(call, "user", user_name))
        with self._db.read() as conn:
            user = self._require_user(conn, account, user_name)
            tags = iam_repo.get_tags(conn, account, "user", user.user_name)
        return replace(user, tags=tags)

    def list_users(
        self,
        call: Call,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[User]:
        prefix = "/" if path_prefix is None else path_prefix
        check_path_prefix(prefix)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        account = call.principal.account_id
        self._authorize(call, "iam:ListUsers", entity_arn(account, "user", prefix, ""))
        with self._db.read() as conn:
            users = iam_repo.list_users(conn, account, prefix, after, limit + 1)
        return page_of(users, limit, lambda u: u.user_name)

    def delete_user(self, call: Call, user_name: str) -> None:
        check_name(user_name, "userName", 128)
        self._authorize(call, "iam:DeleteUser", self._entity_arn(call, "user", user_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_user(conn, account, user_name).user_name
            if iam_repo.list_access_keys(conn, account, name):
                raise DeleteConflictError("Cannot delete entity, must delete access keys first.")
            if iam_repo.inline_policies(conn, account, "user", name):
                raise DeleteConflictError("Cannot delete entity, must delete policies first.")
            if iam_repo.count_attached(conn, account, "user", name):
                raise DeleteConflictError("Cannot delete entity, must detach all policies first.")
            if iam_repo.user_group_names(conn, account, name):
                raise DeleteConflictError(
                    "Cannot delete entity, must remove user from all groups first."
                )
            iam_repo.delete_user(conn, account, name)

        self._write(call, work)

    # -- tags ------------------------------------------------------------------------------

    def tag_user(self, call: Call, user_name: str, tags: Sequence[tuple[str, str]]) -> None:
        check_name(user_name, "userName", 128)
        tag_map = validate_tags(tags)
        self._authorize(call, "iam:TagUser", self._entity_arn(call, "user", user_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_user(conn, account, user_name).user_name
            existing = iam_repo.get_tags(conn, account, "user", name)
            if merged_tag_count(existing, tag_map) > MAX_TAGS:
                raise LimitExceededError(f"Cannot exceed quota for TagsPerUser: {MAX_TAGS}")
            iam_repo.put_tags(conn, account, "user", name, tag_map)

        self._write(call, work)

    def untag_user(self, call: Call, user_name: str, tag_keys: Sequence[str]) -> None:
        check_name(user_name, "userName", 128)
        keys = validate_tag_keys(tag_keys)
        self._authorize(call, "iam:UntagUser", self._entity_arn(call, "user", user_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_user(conn, account, user_name).user_name
            iam_repo.delete_tags(conn, account, "user", name, keys)

        self._write(call, work)

    def list_user_tags(
        self,
        call: Call,
        user_name: str,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[tuple[str, str]]:
        check_name(user_name, "userName", 128)
        limit = page_limit(max_items)
        self._authorize(call, "iam:ListUserTags", self._entity_arn(call, "user", user_name))
        account = call.principal.account_id
        with self._db.read() as conn:
            name = self._require_user(conn, account, user_name).user_name
            tags = list(iam_repo.get_tags(conn, account, "user", name))
        return page_in_memory(tags, marker, limit, lambda t: t[0])

    # -- access keys --------------------------------------------------------------------------

    def create_access_key(self, call: Call, user_name: str | None = None) -> NewAccessKey:
        """A new access key; the secret is returned here once and stored only wrapped."""
        _, arn = self._key_owner(call, user_name)
        self._authorize(call, "iam:CreateAccessKey", arn)
        account = call.principal.account_id
        key_id, secret = new_access_key_id(), new_secret_access_key()
        wrapped = self._keystore.wrap(secret.encode(), secret_label(key_id))

        def work(conn: Connection) -> AccessKeyInfo:
            user = self._key_owner_user(conn, call, user_name)
            existing = iam_repo.list_access_keys(conn, account, user.user_name)
            self._quota(len(existing), MAX_ACCESS_KEYS, "AccessKeysPerUser")
            now = self._clock.now()
            iam_repo.insert_access_key(conn, key_id, account, user.user_name, wrapped, now)
            shown = "" if user.is_root else user.user_name
            return AccessKeyInfo(shown, key_id, "Active", now)

        return NewAccessKey(self._write(call, work), secret)

    def list_access_keys(
        self,
        call: Call,
        user_name: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[AccessKeyInfo]:
        _, arn = self._key_owner(call, user_name)
        limit = page_limit(max_items)
        self._authorize(call, "iam:ListAccessKeys", arn)
        with self._db.read() as conn:
            user = self._key_owner_user(conn, call, user_name)
            keys = iam_repo.list_access_keys(conn, call.principal.account_id, user.user_name)
        if user.is_root:
            keys = [AccessKeyInfo("", k.access_key_id, k.status, k.created_at) for k in keys]
        return page_in_memory(keys, marker, limit, lambda k: k.access_key_id)

    def _owned_key(self, conn: Connection, call: Call, user: User, access_key_id: str) -> None:
        row = iam_repo.get_access_key(conn, access_key_id)
        if (
            row is None
            or row.account_id != call.principal.account_id
            or row.user_name != user.user_name
        ):
            raise NoSuchEntityError(f"The Access Key with id {access_key_id} cannot be found.")

    def update_access_key(
        self, call: Call, access_key_id: str, status: str, user_name: str | None = None
    ) -> None:
        if status not in _KEY_STATUSES:
            raise IamValidationError(
                f"1 validation error detected: Value '{status}' at 'status' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Active, Inactive]"
            )
        _, arn = self._key_owner(call, user_name)
        self._authorize(call, "iam:UpdateAccessKey", arn)

        def work(conn: Connection) -> None:
            user = self._key_owner_user(conn, call, user_name)
            self._owned_key(conn, call, user, access_key_id)
            iam_repo.set_access_key_status(conn, access_key_id, status)

        self._write(call, work)

    def delete_access_key(
        self, call: Call, access_key_id: str, user_name: str | None = None
    ) -> None:
        _, arn = self._key_owner(call, user_name)
        self._authorize(call, "iam:DeleteAccessKey", arn)

        def work(conn: Connection) -> None:
            user = self._key_owner_user(conn, call, user_name)
            self._owned_key(conn, call, user, access_key_id)
            iam_repo.delete_access_key(conn, access_key_id)

        self._write(call, work)
