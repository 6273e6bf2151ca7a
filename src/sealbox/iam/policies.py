"""Identity policies: inline policies of users, roles and groups; customer managed
policies and their attachments.

AWS managed policies (arn:aws:iam::aws:policy/...) do not exist here: naming one answers
NoSuchEntity, as for any policy the account does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox.call import Call
from sealbox.iam.base import (
    IamBase,
    check_description,
    check_length,
    check_name,
    check_path,
    check_path_prefix,
    decode_marker,
    entity_arn,
    new_unique_id,
    non_whitespace_length,
    page_in_memory,
    page_limit,
    page_of,
    parse_document,
    validate_tags,
)
from sealbox.iam.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    IamValidationError,
    InvalidInputError,
    LimitExceededError,
    NoSuchEntityError,
)
from sealbox.iam.model import AttachedPolicy, EntityKind, InlinePolicy, ManagedPolicy, Page
from sealbox.storage import iam_repo

MAX_MANAGED_POLICIES: Final = 1500
MAX_MANAGED_POLICY_SIZE: Final = 6144
MAX_ATTACHED_POLICIES: Final = 10
#: Aggregate size of an entity's inline policies, in characters other than white space.
MAX_INLINE_SIZE: Final[dict[EntityKind, int]] = {"user": 2048, "role": 10240, "group": 5120}
_KIND_WORD: Final[dict[EntityKind, str]] = {"user": "User", "role": "Role", "group": "Group"}
_SCOPES: Final = ("All", "AWS", "Local")
_USAGE_FILTERS: Final = ("PermissionsPolicy", "PermissionsBoundary")


def _check_policy_arn(policy_arn: str) -> None:
    check_length(policy_arn, "policyArn", 20, 2048)
    parsed = arns.parse_arn(policy_arn)
    if parsed is None or parsed.service != "iam" or not parsed.resource.startswith("policy/"):
        raise InvalidInputError(f"ARN {policy_arn} is not valid.")


class PolicyOperations(IamBase):
    # -- inline policies, for any entity kind ---------------------------------------------------

    def _put_inline(
        self, call: Call, kind: EntityKind, entity: str, policy_name: str, document: str
    ) -> None:
        self._check_entity_name(kind, entity)
        check_name(policy_name, "policyName", 128)
        self._authorize(
            call, f"iam:Put{_KIND_WORD[kind]}Policy", self._entity_arn(call, kind, entity)
        )
        parse_document(document, "identity")
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name, _ = self._require_entity(conn, account, kind, entity)
            others = [
                p
                for p in iam_repo.inline_policies(conn, account, kind, name)
                if p.policy_name.lower() != policy_name.lower()
            ]
            size = non_whitespace_length(document) + sum(
                non_whitespace_length(p.document) for p in others
            )
            if size > MAX_INLINE_SIZE[kind]:
                raise LimitExceededError(
                    f"Maximum policy size of {MAX_INLINE_SIZE[kind]} bytes exceeded for "
                    f"{kind} {name}"
                )
            iam_repo.put_inline_policy(conn, account, kind, name, policy_name, document)

        self._write(call, work)

    def _get_inline(
        self, call: Call, kind: EntityKind, entity: str, policy_name: str
    ) -> InlinePolicy:
        self._check_entity_name(kind, entity)
        check_name(policy_name, "policyName", 128)
        self._authorize(
            call, f"iam:Get{_KIND_WORD[kind]}Policy", self._entity_arn(call, kind, entity)
        )
        account = call.principal.account_id
        with self._db.read() as conn:
            name, _ = self._require_entity(conn, account, kind, entity)
            policy = iam_repo.get_inline_policy(conn, account, kind, name, policy_name)
        if policy is None:
            raise NoSuchEntityError(f"The {kind} policy with name {policy_name} cannot be found.")
        return policy

    def _delete_inline(self, call: Call, kind: EntityKind, entity: str, policy_name: str) -> None:
        self._check_entity_name(kind, entity)
        check_name(policy_name, "policyName", 128)
        action = f"iam:Delete{_KIND_WORD[kind]}Policy"
        self._authorize(call, action, self._entity_arn(call, kind, entity))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name, _ = self._require_entity(conn, account, kind, entity)
            if not iam_repo.delete_inline_policy(conn, account, kind, name, policy_name):
                raise NoSuchEntityError(
                    f"The {kind} policy with name {policy_name} cannot be found."
                )

        self._write(call, work)

    def _list_inline(
        self,
        call: Call,
        kind: EntityKind,
        entity: str,
        marker: str | None,
        max_items: int | None,
    ) -> Page[str]:
        self._check_entity_name(kind, entity)
        limit = page_limit(max_items)
        action = f"iam:List{_KIND_WORD[kind]}Policies"
        self._authorize(call, action, self._entity_arn(call, kind, entity))
        account = call.principal.account_id
        with self._db.read() as conn:
            name, _ = self._require_entity(conn, account, kind, entity)
            names = [p.policy_name for p in iam_repo.inline_policies(conn, account, kind, name)]
        return page_in_memory(names, marker, limit, lambda n: n)

    def put_user_policy(self, call: Call, user_name: str, policy_name: str, doc: str) -> None:
        self._put_inline(call, "user", user_name, policy_name, doc)

    def get_user_policy(self, call: Call, user_name: str, policy_name: str) -> InlinePolicy:
        return self._get_inline(call, "user", user_name, policy_name)

    def delete_user_policy(self, call: Call, user_name: str, policy_name: str) -> None:
        self._delete_inline(call, "user", user_name, policy_name)

    def list_user_policies(
        self, call: Call, user_name: str, marker: str | None = None, max_items: int | None = None
    ) -> Page[str]:
        return self._list_inline(call, "user", user_name, marker, max_items)

    def put_role_policy(self, call: Call, role_name: str, policy_name: str, doc: str) -> None:
        self._put_inline(call, "role", role_name, policy_name, doc)

    def get_role_policy(self, call: Call, role_name: str, policy_name: str) -> InlinePolicy:
        return self._get_inline(call, "role", role_name, policy_name)

    def delete_role_policy(self, call: Call, role_name: str, policy_name: str) -> None:
        self._delete_inline(call, "role", role_name, policy_name)

    def list_role_policies(
        self, call: Call, role_name: str, marker: str | None = None, max_items: int | None = None
    ) -> Page[str]:
        return self._list_inline(call, "role", role_name, marker, max_items)

    def put_group_policy(self, call: Call, group_name: str, policy_name: str, doc: str) -> None:
        self._put_inline(call, "group", group_name, policy_name, doc)

    def get_group_policy(self, call: Call, group_name: str, policy_name: str) -> InlinePolicy:
        return self._get_inline(call, "group", group_name, policy_name)

    def delete_group_policy(self, call: Call, group_name: str, policy_name: str) -> None:
        self._delete_inline(call, "group", group_name, policy_name)

    def list_group_policies(
        self, call: Call, group_name: str, marker: str | None = None, max_items: int | None = None
    ) -> Page[str]:
        return self._list_inline(call, "group", group_name, marker, max_items)

    # -- managed policies -------------------------------------------------------------------------

    def create_policy(
        self,
        call: Call,
        policy_name: str,
        policy_document: str,
        path: str | None = None,
        description: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> ManagedPolicy:
        check_name(policy_name, "policyName", 128)
        path = "/" if path is None else path
        check_path(path, policy=True)
        description = description or ""
        check_description(description)
        tag_map = validate_tags(tags)
        account = call.principal.account_id
        arn = entity_arn(account, "policy", path, policy_name)
        self._authorize(call, "iam:CreatePolicy", arn)
        parse_document(policy_document, "identity")
        if non_whitespace_length(policy_document) > MAX_MANAGED_POLICY_SIZE:
            raise LimitExceededError(
                f"Cannot exceed quota for PolicySize: {MAX_MANAGED_POLICY_SIZE}"
            )

        def work(conn: Connection) -> ManagedPolicy:
            if iam_repo.get_managed_policy_by_name(conn, account, policy_name) is not None:
                raise EntityAlreadyExistsError(
                    f"A policy called {policy_name} already exists. Duplicate names are not "
                    "allowed."
                )
            count = iam_repo.count_managed_policies(conn, account)
            self._quota(count, MAX_MANAGED_POLICIES, "PoliciesPerAccount")
            now = self._clock.now()
            policy = ManagedPolicy(
                account_id=account,
                policy_name=policy_name,
                policy_id=new_unique_id("ANPA"),
                arn=arn,
                path=path,
                description=description,
                document=policy_document,
                created_at=now,
                updated_at=now,
                tags=tuple(sorted(tag_map.items())),
            )
            iam_repo.insert_managed_policy(conn, policy)
            iam_repo.put_tags(conn, account, "policy", policy_name, tag_map)
            return policy

        return self._write(call, work)

    def _require_policy(self, conn: Connection, account: str, policy_arn: str) -> ManagedPolicy:
        policy = iam_repo.get_managed_policy(conn, account, policy_arn)
        if policy is None:
            raise NoSuchEntityError(f"Policy {policy_arn} was not found.")
        return policy

    def get_policy(self, call: Call, policy_arn: str) -> ManagedPolicy:
        _check_policy_arn(policy_arn)
        self._authorize(call, "iam:GetPolicy", policy_arn)
        account = call.principal.account_id
        with self._db.read() as conn:
            policy = self._require_policy(conn, account, policy_arn)
            tags = iam_repo.get_tags(conn, account, "policy", policy.policy_name)
        return replace(policy, tags=tags)

    def delete_policy(self, call: Call, policy_arn: str) -> None:
        _check_policy_arn(policy_arn)
        self._authorize(call, "iam:DeletePolicy", policy_arn)
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            policy = self._require_policy(conn, account, policy_arn)
            if policy.attachment_count:
                raise DeleteConflictError("Cannot delete a policy attached to entities.")
            iam_repo.delete_managed_policy(conn, account, policy)

        self._write(call, work)

    def list_policies(
        self,
        call: Call,
        scope: str | None = None,
        only_attached: bool = False,
        path_prefix: str | None = None,
        policy_usage_filter: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[ManagedPolicy]:
        """The account's managed policies (Scope AWS lists none: there are none here)."""
        scope = scope or "All"
        if scope not in _SCOPES:
            raise IamValidationError(
                f"1 validation error detected: Value '{scope}' at 'scope' failed to satisfy "
                "constraint: Member must satisfy enum value set: [All, AWS, Local]"
            )
        if policy_usage_filter is not None and policy_usage_filter not in _USAGE_FILTERS:
            raise IamValidationError(
                f"1 validation error detected: Value '{policy_usage_filter}' at "
                "'policyUsageFilter' failed to satisfy constraint: Member must satisfy enum "
                "value set: [PermissionsPolicy, PermissionsBoundary]"
            )
        prefix = "/" if path_prefix is None else path_prefix
        check_path_prefix(prefix, policy=True)
        limit = page_limit(max_items)
        after = decode_marker(marker)
        account = call.principal.account_id
        self._authorize(call, "iam:ListPolicies", entity_arn(account, "policy", prefix, ""))
        if scope == "AWS" or policy_usage_filter == "PermissionsBoundary":
            return Page([])
        with self._db.read() as conn:
            policies = iam_repo.list_managed_policies(
                conn, account, prefix, only_attached, after, limit + 1
            )
        return page_of(policies, limit, lambda p: p.policy_name)

    # -- attachments ---------------------------------------------------------------------

    def _attach(self, call: Call, kind: EntityKind, entity: str, policy_arn: str) -> None:
        self._check_entity_name(kind, entity)
        _check_policy_arn(policy_arn)
        action = f"iam:Attach{_KIND_WORD[kind]}Policy"
        self._authorize(call, action, self._entity_arn(call, kind, entity))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name, _ = self._require_entity(conn, account, kind, entity)
            if iam_repo.get_managed_policy(conn, account, policy_arn) is None:
                raise NoSuchEntityError(f"Policy {policy_arn} does not exist or is not attachable.")
            if iam_repo.is_attached(conn, account, kind, name, policy_arn):
                return  # attaching again changes nothing, as in AWS
            count = iam_repo.count_attached(conn, account, kind, name)
            self._quota(count, MAX_ATTACHED_POLICIES, f"PoliciesPer{_KIND_WORD[kind]}")
            iam_repo.attach_policy(conn, account, kind, name, policy_arn)

        self._write(call, work)

    def _detach(self, call: Call, kind: EntityKind, entity: str, policy_arn: str) -> None:
        self._check_entity_name(kind, entity)
        _check_policy_arn(policy_arn)
        action = f"iam:Detach{_KIND_WORD[kind]}Policy"
        self._authorize(call, action, self._entity_arn(call, kind, entity))
        account = call.principal.account_id

        def work(conn: Connection) -> None:
            name, _ = self._require_entity(conn, account, kind, entity)
            if not iam_repo.detach_policy(conn, account, kind, name, policy_arn):
                raise NoSuchEntityError(f"Policy {policy_arn} was not found.")

        self._write(call, work)

    def _list_attached(
        self,
        call: Call,
        kind: EntityKind,
        entity: str,
        path_prefix: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> Page[AttachedPolicy]:
        self._check_entity_name(kind, entity)
        prefix = "/" if path_prefix is None else path_prefix
        check_path_prefix(prefix, policy=True)
        limit = page_limit(max_items)
        action = f"iam:ListAttached{_KIND_WORD[kind]}Policies"
        self._authorize(call, action, self._entity_arn(call, kind, entity))
        account = call.principal.account_id
        with self._db.read() as conn:
            name, _ = self._require_entity(conn, account, kind, entity)
            attached = iam_repo.attached_policies(conn, account, kind, name, prefix)
        return page_in_memory(attached, marker, limit, lambda a: a.policy_name)

    def attach_user_policy(self, call: Call, user_name: str, policy_arn: str) -> None:
        self._attach(call, "user", user_name, policy_arn)

    def detach_user_policy(self, call: Call, user_name: str, policy_arn: str) -> None:
        self._detach(call, "user", user_name, policy_arn)

    def list_attached_user_policies(
        self,
        call: Call,
        user_name: str,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[AttachedPolicy]:
        return self._list_attached(call, "user", user_name, path_prefix, marker, max_items)

    def attach_role_policy(self, call: Call, role_name: str, policy_arn: str) -> None:
        self._attach(call, "role", role_name, policy_arn)

    def detach_role_policy(self, call: Call, role_name: str, policy_arn: str) -> None:
        self._detach(call, "role", role_name, policy_arn)

    def list_attached_role_policies(
        self,
        call: Call,
        role_name: str,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[AttachedPolicy]:
        return self._list_attached(call, "role", role_name, path_prefix, marker, max_items)

    def attach_group_policy(self, call: Call, group_name: str, policy_arn: str) -> None:
        self._attach(call, "group", group_name, policy_arn)

    def detach_group_policy(self, call: Call, group_name: str, policy_arn: str) -> None:
        self._detach(call, "group", group_name, policy_arn)

    def list_attached_group_policies(
        self,
        call: Call,
        group_name: str,
        path_prefix: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> Page[AttachedPolicy]:
        return self._list_attached(call, "group", group_name, path_prefix, marker, max_items)
