"""IAM groups and their members."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection

from sealbox.call import Call
from sealbox.iam.base import (
    IamBase,
    check_name,
    check_path,
    check_path_prefix,
    decode_marker,
    entity_arn,
    new_unique_id,
    page_limit,
    page_of,
)
from sealbox.iam.errors import DeleteConflictError, EntityAlreadyExistsError, NoSuchEntityError
from sealbox.iam.model import Group, GroupWithUsers, Page
from sealbox.storage import iam_repo

MAX_GROUPS: Final = 300
MAX_GROUPS_PER_USER: Final = 10


class GroupOperations(IamBase):
    def create_group(self, call: Call, group_name: str, path: str | None = None) -> Group:
        check_name(group_name, "groupName", 128)
        path = "/" if path is None else path
        check_path(path)
        account = call.principal.account_id
        arn = entity_arn(account, "group", path, group_name)
        self._authorize(call, "iam:CreateGroup", arn)

        def work(conn: Connection) -> Group:
            if iam_repo.get_group(conn, account, group_name) is not None:
                raise EntityAlreadyExistsError(f"Group with name {group_name} already exists.")
            self._quota(iam_repo.count_groups(conn, account), MAX_GROUPS, "GroupsPerAccount")
            group = Group(
                account_id=account,
                group_name=group_name,
                group_id=new_unique_id("AGPA"),
                arn=arn,
                path=path,
                created_at=self._clock.now(),
            )
            iam_repo.insert_group(conn, group)
            return group

        return self._write(call, work)

    def get_group(
        self,
        call: Call,
        group_name: str,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> GroupWithUsers:
        """A group and (a page of) its users."""
        check_name(group_name, "groupName", 128)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        self._authorize(call, "iam:GetGroup", self._entity_arn(call, "group", group_name))
        account = call.principal.account_id
        with self._db.read() as conn:
            group = self._require_group(conn, account, group_name)
            users = iam_repo.group_members(conn, account, group.group_name, after, limit + 1)
        return GroupWithUsers(group, page_of(users, limit, lambda u: u.user_name))

    def list_groups(
        self,
        call: Call,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[Group]:
        prefix = "/" if path_prefix is None else path_prefix
        check_path_prefix(prefix)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        account = call.principal.account_id
        self._authorize(call, "iam:ListGroups", entity_arn(account, "group", prefix, ""))
        with self._db.read() as conn:
            groups = iam_repo.list_groups(conn, account, prefix, after, limit + 1)
        return page_of(groups, limit, lambda g: g.group_name)

    def delete_group(self, call: Call, group_name: str) -> None:
        check_name(group_name, "groupName", 128)
        self._authorize(call, "iam:DeleteGroup", self._entity_arn(call, "group", group_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name = self._require_group(conn, account, group_name).group_name
            if iam_repo.count_group_members(conn, account, name):
                raise DeleteConflictError(
                    "Cannot delete entity, must remove users from group first."
                )
            if iam_repo.inline_policies(conn, account, "group", name):
                raise DeleteConflictError("Cannot delete entity, must delete policies first.")
            if iam_repo.count_attached(conn, account, "group", name):
                raise DeleteConflictError("Cannot delete entity, must detach all policies first.")
            iam_repo.delete_group(conn, account, name)

        self._write(call, work)

    def add_user_to_group(self, call: Call, group_name: str, user_name: str) -> None:
        check_name(group_name, "groupName", 128)
        check_name(user_name, "userName", 128)
        self._authorize(call, "iam:AddUserToGroup", self._entity_arn(call, "group", group_name))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            group = self._require_group(conn, account, group_name).group_name
            user = self._require_user(conn, account, user_name).user_name
            groups = iam_repo.user_group_names(conn, account, user)
            if group in groups:
                return  # already a member: AWS answers success
            self._quota(len(groups), MAX_GROUPS_PER_USER, "GroupsPerUser")
            iam_repo.add_group_member(conn, account, group, user)

        self._write(call, work)

    def remove_user_from_group(self, call: Call, group_name: str, user_name: str) -> None:
        check_name(group_name, "groupName", 128)
        check_name(user_name, "userName", 128)
        arn = self._entity_arn(call, "group", group_name)
        self._authorize(call, "iam:RemoveUserFromGroup", arn)
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            group = self._require_group(conn, account, group_name).group_name
            user = self._require_user(conn, account, user_name).user_name
            if not iam_repo.remove_group_member(conn, account, group, user):
                raise NoSuchEntityError(
                    f"The user with name {user_name} cannot be found in group {group_name}."
                )

        self._write(call, work)

    def list_groups_for_user(
        self,
        call: Call,
        user_name: str,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[Group]:
        check_name(user_name, "userName", 128)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        arn = self._entity_arn(call, "user", user_name)
        self._authorize(call, "iam:ListGroupsForUser", arn)
        account = call.principal.account_id
        with self._db.read() as conn:
            name = self._require_user(conn, account, user_name).user_name
            groups = iam_repo.groups_for_user(conn, account, name, after, limit + 1)
        return page_of(groups, limit, lambda g: g.group_name)
