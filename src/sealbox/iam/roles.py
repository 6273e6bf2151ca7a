"""IAM roles: trust policies, session duration, tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.iam.base import (
    MAX_TAGS,
    IamBase,
    check_description,
    check_name,
    check_path,
    check_path_prefix,
    constraint_error,
    decode_marker,
    entity_arn,
    merged_tag_count,
    new_unique_id,
    non_whitespace_length,
    page_in_memory,
    page_limit,
    page_of,
    parse_document,
    validate_tag_keys,
    validate_tags,
)
from sealbox.iam.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    InvalidInputError,
    LimitExceededError,
)
from sealbox.iam.model import Page, Role
from sealbox.storage import iam_repo

MAX_ROLES: Final = 1000
MAX_TRUST_POLICY_SIZE: Final = 2048  # characters other than white space (ACLSizePerRole)
MIN_SESSION_DURATION: Final = 3600
MAX_SESSION_DURATION: Final = 43200


def _check_trust_policy(document: str) -> None:
    parse_document(document, "trust")
    if non_whitespace_length(document) > MAX_TRUST_POLICY_SIZE:
        raise LimitExceededError(f"Cannot exceed quota for ACLSizePerRole: {MAX_TRUST_POLICY_SIZE}")


class RoleOperations(IamBase):
    def create_role(
        self,
        call: Call,
        role_name: str,
        assume_role_policy_document: str,
        path: str | None = None,
        description: str | None = None,
        max_session_duration: int | None = None,
        tags: Sequence[tuple[str, str]] = (),
        permissions_boundary: str | None = None,
    ) -> Role:
        check_name(role_name, "roleName", 64)
        path = "/" if path is None else path
        check_path(path)
        description = description or ""
        check_description(description)
        duration = MIN_SESSION_DURATION if max_session_duration is None else max_session_duration
        if duration < MIN_SESSION_DURATION:
            raise constraint_error(
                duration,
                "maxSessionDuration",
                f"Member must have value greater than or equal to {MIN_SESSION_DURATION}",
            )
        if duration > MAX_SESSION_DURATION:
            raise constraint_error(
                duration,
                "maxSessionDuration",
                f"Member must have value less than or equal to {MAX_SESSION_DURATION}",
            )
        tag_map = validate_tags(tags)
        if permissions_boundary is not None:
            raise InvalidInputError("Permissions boundaries are not supported by this server.")
        account = call.principal.account_id
        arn = entity_arn(account, "role", path, role_name)
        self._authorize(call, "iam:CreateRole", arn)
        _check_trust_policy(assume_role_policy_document)

        def work(conn: Connection) -> Role:
            if iam_repo.get_role(conn, account, role_name) is not None:
                raise EntityAlreadyExistsError(f"Role with name {role_name} already exists.")
            self._quota(iam_repo.count_roles(conn, account), MAX_ROLES, "RolesPerAccount")
            role = Role(
                account_id=account,
                role_name=role_name,
                role_id=new_unique_id("AROA"),
                arn=arn,
                path=path,
                trust_policy=assume_role_policy_document,
                description=description,
                max_session_duration=duration,
                created_at=self._clock.now(),
                tags=tuple(sorted(tag_map.items())),
            )
            iam_repo.insert_role(conn, role)
            iam_repo.put_tags(conn, account, "role", role_name, tag_map)
            return role

        return self._write(call, work)

    def get_role(self, call: Call, role_name: str) -> Role:
        check_name(role_name, "roleName", 64)
        self._authorize(call, "iam:GetRole", self._entity_arn(call, "role", role_name))
        account = call.principal.account_id
        with self._db.read() as conn:
            role = self._require_role(conn, account, role_name)
            tags = iam_repo.get_tags(conn, account, "role", role.role_name)
        return replace(role, tags=tags)

    def list_roles(
        self,
        call: Call,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[Role]:
        prefix = "/" if path_prefix is None else path_prefix
        check_path_prefix(prefix)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        account = call.principal.account_id
        self._authorize(call, "iam:ListRoles", entity_arn(account, "role", prefix, ""))
        with self._db.read() as conn:
            roles = iam_repo.list_roles(conn, account, prefix, after, limit + 1)
        return page_of(roles, limit, lambda r: r.role_name)

    def delete_role(self, call: Call, role_name: str) -> None:
        check_name(role_name, "roleName", 64)
        self._authorize(call, "iam:DeleteRole", self._entity_arn(call, "role", role_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_role(conn, account, role_name).role_name
            if iam_repo.inline_policies(conn, account, "role", name):
                raise DeleteConflictError("Cannot delete entity, must delete policies first.")
            if iam_repo.count_attached(conn, account, "role", name):
                raise DeleteConflictError("Cannot delete entity, must detach all policies first.")
            iam_repo.delete_role(conn, account, name)

        self._write(call, work)

    def update_assume_role_policy(self, call: Call, role_name: str, policy_document: str) -> None:
        check_name(role_name, "roleName", 64)
        arn = self._entity_arn(call, "role", role_name)
        self._authorize(call, "iam:UpdateAssumeRolePolicy", arn)
        _check_trust_policy(policy_document)
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_role(conn, account, role_name).role_name
            iam_repo.update_trust_policy(conn, account, name, policy_document)

        self._write(call, work)

    # -- tags ------------------------------------------------------------------------------

    def tag_role(self, call: Call, role_name: str, tags: Sequence[tuple[str, str]]) -> None:
        check_name(role_name, "roleName", 64)
        tag_map = validate_tags(tags)
        self._authorize(call, "iam:TagRole", self._entity_arn(call, "role", role_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_role(conn, account, role_name).role_name
            existing = iam_repo.get_tags(conn, account, "role", name)
            if merged_tag_count(existing, tag_map) > MAX_TAGS:
                raise LimitExceededError(f"Cannot exceed quota for TagsPerRole: {MAX_TAGS}")
            iam_repo.put_tags(conn, account, "role", name, tag_map)

        self._write(call, work)

    def untag_role(self, call: Call, role_name: str, tag_keys: Sequence[str]) -> None:
        check_name(role_name, "roleName", 64)
        keys = validate_tag_keys(tag_keys)
        self._authorize(call, "iam:UntagRole", self._entity_arn(call, "role", role_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_role(conn, account, role_name).role_name
            iam_repo.delete_tags(conn, account, "role", name, keys)

        self._write(call, work)

    def list_role_tags(
        self,
        call: Call,
        role_name: str,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[tuple[str, str]]:
        check_name(role_name, "roleName", 64)
        limit = page_limit(max_items)
        self._authorize(call, "iam:ListRoleTags", self._entity_arn(call, "role", role_name))
        account = call.principal.account_id
        with self._db.read() as conn:
            name = self._require_role(conn, account, role_name).role_name
            tags = list(iam_repo.get_tags(conn, account, "role", name))
        return page_in_memory(tags, marker, limit, lambda t: t[0])
