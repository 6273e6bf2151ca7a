"""Accounts, IAM users, groups, roles, policies, tags and access keys ⇄ rows.

IAM names are unique regardless of case (like AWS: no "Bob" beside "bob"), so lookups by
name match case-insensitively and return the stored spelling; rows that refer to an
entity by name (tags, inline policies, attachments, group members) use that stored
spelling. Every IAM change also calls bump_iam_version in its transaction, so caches of
identity policies can tell they are stale with one lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    and_,
    delete,
    func,
    select,
    update,
)

from sealbox.iam.model import (
    AccessKeyInfo,
    AttachedPolicy,
    EntityKind,
    Group,
    InlinePolicy,
    ManagedPolicy,
    Role,
    TagKind,
    Tags,
    User,
)
from sealbox.storage.tables import (
    access_keys,
    accounts,
    iam_attachments,
    iam_group_members,
    iam_groups,
    iam_inline_policies,
    iam_managed_policies,
    iam_roles,
    iam_tags,
    iam_users,
)


@dataclass(frozen=True, slots=True)
class AccessKeyRow:
    access_key_id: str
    account_id: str
    user_name: str
    user_id: str
    user_arn: str
    is_root: bool
    wrapped_secret: bytes
    status: str


def count_accounts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())


def default_account_id(conn: Connection) -> str | None:
    row = conn.execute(
        select(accounts.c.account_id).order_by(accounts.c.created_at).limit(1)
    ).first()
    return None if row is None else str(row.account_id)


def insert_account(conn: Connection, account_id: str, name: str, now: datetime) -> None:
    conn.execute(accounts.insert().values(account_id=account_id, name=name, created_at=now))


def insert_user(
    conn: Connection,
    account_id: str,
    user_name: str,
    user_id: str,
    arn: str,
    is_root: bool,
    now: datetime,
) -> None:
    conn.execute(
        iam_users.insert().values(
            account_id=account_id,
            user_name=user_name,
            user_id=user_id,
            arn=arn,
            is_root=is_root,
            created_at=now,
        )
    )


def insert_access_key(
    conn: Connection,
    access_key_id: str,
    account_id: str,
    user_name: str,
    wrapped_secret: bytes,
    now: datetime,
) -> None:
    conn.execute(
        access_keys.insert().values(
            access_key_id=access_key_id,
            account_id=account_id,
            user_name=user_name,
            wrapped_secret=wrapped_secret,
            status="Active",
            created_at=now,
        )
    )


def get_access_key(conn: Connection, access_key_id: str) -> AccessKeyRow | None:
    row = conn.execute(
        select(
            access_keys.c.access_key_id,
            access_keys.c.account_id,
            access_keys.c.user_name,
            access_keys.c.wrapped_secret,
            access_keys.c.status,
            iam_users.c.user_id,
            iam_users.c.arn,
            iam_users.c.is_root,
        )
        .join(
            iam_users,
            (iam_users.c.account_id == access_keys.c.account_id)
            & (iam_users.c.user_name == access_keys.c.user_name),
        )
        .where(access_keys.c.access_key_id == access_key_id)
    ).first()
    if row is None:
        return None
    return AccessKeyRow(
        access_key_id=row.access_key_id,
        account_id=row.account_id,
        user_name=row.user_name,
        user_id=row.user_id,
        user_arn=row.arn,
        is_root=bool(row.is_root),
        wrapped_secret=bytes(row.wrapped_secret),
        status=row.status,
    )


def replace_secret(conn: Connection, access_key_id: str, wrapped_secret: bytes) -> None:
    conn.execute(
        access_keys.update()
        .where(access_keys.c.access_key_id == access_key_id)
        .values(wrapped_secret=wrapped_secret, status="Active")
    )


# -- account IAM version -------------------------------------------------------------------


def bump_iam_version(conn: Connection, account_id: str) -> None:
    """Mark the account's IAM state changed (call in every IAM write transaction)."""
    conn.execute(
        update(accounts)
        .where(accounts.c.account_id == account_id)
        .values(iam_version=accounts.c.iam_version + 1)
    )


def iam_version(conn: Connection, account_id: str) -> int:
    value = conn.execute(
        select(accounts.c.iam_version).where(accounts.c.account_id == account_id)
    ).scalar()
    return int(value or 0)


# -- helpers -------------------------------------------------------------------------------


def _iname(column: Any, name: str) -> ColumnElement[bool]:
    """Case-insensitive name match (IAM names are ASCII, so SQL lower() suffices)."""
    result: ColumnElement[bool] = func.lower(column) == name.lower()
    return result


def _after(column: Any, after: str | None) -> ColumnElement[bool] | None:
    if after is None:
        return None
    result: ColumnElement[bool] = func.lower(column) > after
    return result


def _path_from_arn(arn: str, kind: str, name: str) -> str:
    """The path inside an IAM ARN "arn:aws:iam::ACCOUNT:KIND/PATH/NAME"."""
    resource = arn.split(":", 5)[5]
    path = resource[len(kind) : len(resource) - len(name)]
    return path if path.startswith("/") and path.endswith("/") else "/"


# -- users ---------------------------------------------------------------------------------


def _user(row: Row[Any], tags: Tags = ()) -> User:
    return User(
        account_id=row.account_id,
        user_name=row.user_name,
        user_id=row.user_id,
        arn=row.arn,
        path="/" if row.is_root else _path_from_arn(row.arn, "user", row.user_name),
        created_at=row.created_at,
        is_root=bool(row.is_root),
        tags=tags,
    )


def get_user(conn: Connection, account_id: str, user_name: str) -> User | None:
    """A user by name, any case (the root user's row included; callers hide it)."""
    row = conn.execute(
        select(iam_users).where(
            iam_users.c.account_id == account_id, _iname(iam_users.c.user_name, user_name)
        )
    ).first()
    return None if row is None else _user(row)


def get_root_user(conn: Connection, account_id: str) -> User | None:
    """The row standing for the account's root user (bootstrap creates it)."""
    row = conn.execute(
        select(iam_users).where(iam_users.c.account_id == account_id, iam_users.c.is_root.is_(True))
    ).first()
    return None if row is None else _user(row)


def list_users(
    conn: Connection, account_id: str, path_prefix: str, after: str | None, limit: int
) -> list[User]:
    """Users (not root) whose path starts with path_prefix, by lower-cased name after
    `after`; at most `limit`. The path lives in the ARN, so the prefix is tested here."""
    query = (
        select(iam_users)
        .where(iam_users.c.account_id == account_id, iam_users.c.is_root.is_(False))
        .order_by(func.lower(iam_users.c.user_name))
    )
    cond = _after(iam_users.c.user_name, after)
    if cond is not None:
        query = query.where(cond)
    users: list[User] = []
    for row in conn.execute(query):
        user = _user(row)
        if user.path.startswith(path_prefix):
            users.append(user)
            if len(users) >= limit:
                break
    return users


def count_users(conn: Connection, account_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(iam_users)
            .where(iam_users.c.account_id == account_id, iam_users.c.is_root.is_(False))
        ).scalar_one()
    )


def delete_user(conn: Connection, account_id: str, user_name: str) -> None:
    delete_all_tags(conn, account_id, "user", user_name)
    conn.execute(
        delete(iam_users).where(
            iam_users.c.account_id == account_id, iam_users.c.user_name == user_name
        )
    )


# -- access keys ---------------------------------------------------------------------------


def list_access_keys(conn: Connection, account_id: str, user_name: str) -> list[AccessKeyInfo]:
    rows = conn.execute(
        select(
            access_keys.c.user_name,
            access_keys.c.access_key_id,
            access_keys.c.status,
            access_keys.c.created_at,
        )
        .where(access_keys.c.account_id == account_id, access_keys.c.user_name == user_name)
        .order_by(access_keys.c.created_at, access_keys.c.access_key_id)
    )
    return [AccessKeyInfo(r.user_name, r.access_key_id, r.status, r.created_at) for r in rows]


def set_access_key_status(conn: Connection, access_key_id: str, status: str) -> None:
    conn.execute(
        update(access_keys)
        .where(access_keys.c.access_key_id == access_key_id)
        .values(status=status)
    )


def delete_access_key(conn: Connection, access_key_id: str) -> None:
    conn.execute(delete(access_keys).where(access_keys.c.access_key_id == access_key_id))


# -- roles ---------------------------------------------------------------------------------


def _role(row: Row[Any], tags: Tags = ()) -> Role:
    return Role(
        account_id=row.account_id,
        role_name=row.role_name,
        role_id=row.role_id,
        arn=row.arn,
        path=row.path,
        trust_policy=row.trust_policy,
        description=row.description,
        max_session_duration=row.max_session_duration,
        created_at=row.created_at,
        tags=tags,
    )


def _by_path(
    query: Select[Any],
    table: Table,
    name: ColumnElement[str],
    account_id: str,
    path_prefix: str,
    after: str | None,
) -> Select[Any]:
    """An account's entities under a path prefix, by case-insensitive name, past a marker."""
    query = query.where(
        table.c.account_id == account_id,
        table.c.path.startswith(path_prefix, autoescape=True),
    ).order_by(func.lower(name))
    cond = _after(name, after)
    return query if cond is None else query.where(cond)


def insert_role(conn: Connection, role: Role) -> None:
    conn.execute(
        iam_roles.insert().values(
            account_id=role.account_id,
            role_name=role.role_name,
            role_id=role.role_id,
            arn=role.arn,
            path=role.path,
            trust_policy=role.trust_policy,
            description=role.description,
            max_session_duration=role.max_session_duration,
            created_at=role.created_at,
        )
    )


def get_role(conn: Connection, account_id: str, role_name: str) -> Role | None:
    row = conn.execute(
        select(iam_roles).where(
            iam_roles.c.account_id == account_id, _iname(iam_roles.c.role_name, role_name)
        )
    ).first()
    return None if row is None else _role(row)


def list_roles(
    conn: Connection, account_id: str, path_prefix: str, after: str | None, limit: int
) -> list[Role]:
    query = _by_path(select(iam_roles), iam_roles, iam_roles.c.role_name, account_id,
                     path_prefix, after).limit(limit)  # fmt: skip
    return [_role(row) for row in conn.execute(query)]


def count_roles(conn: Connection, account_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(iam_roles).where(iam_roles.c.account_id == account_id)
        ).scalar_one()
    )


def update_trust_policy(conn: Connection, account_id: str, role_name: str, document: str) -> None:
    conn.execute(
        update(iam_roles)
        .where(iam_roles.c.account_id == account_id, iam_roles.c.role_name == role_name)
        .values(trust_policy=document)
    )


def delete_role(conn: Connection, account_id: str, role_name: str) -> None:
    delete_all_tags(conn, account_id, "role", role_name)
    conn.execute(
        delete(iam_roles).where(
            iam_roles.c.account_id == account_id, iam_roles.c.role_name == role_name
        )
    )


# -- groups and members --------------------------------------------------------------------


def _group(row: Row[Any]) -> Group:
    return Group(
        account_id=row.account_id,
        group_name=row.group_name,
        group_id=row.group_id,
        arn=row.arn,
        path=row.path,
        created_at=row.created_at,
    )


def insert_group(conn: Connection, group: Group) -> None:
    conn.execute(
        iam_groups.insert().values(
            account_id=group.account_id,
            group_name=group.group_name,
            group_id=group.group_id,
            arn=group.arn,
            path=group.path,
            created_at=group.created_at,
        )
    )


def get_group(conn: Connection, account_id: str, group_name: str) -> Group | None:
    row = conn.execute(
        select(iam_groups).where(
            iam_groups.c.account_id == account_id, _iname(iam_groups.c.group_name, group_name)
        )
    ).first()
    return None if row is None else _group(row)


def list_groups(
    conn: Connection, account_id: str, path_prefix: str, after: str | None, limit: int
) -> list[Group]:
    query = _by_path(select(iam_groups), iam_groups, iam_groups.c.group_name, account_id,
                     path_prefix, after).limit(limit)  # fmt: skip
    return [_group(row) for row in conn.execute(query)]


def count_groups(conn: Connection, account_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(iam_groups)
            .where(iam_groups.c.account_id == account_id)
        ).scalar_one()
    )


def delete_group(conn: Connection, account_id: str, group_name: str) -> None:
    conn.execute(
        delete(iam_groups).where(
            iam_groups.c.account_id == account_id, iam_groups.c.group_name == group_name
        )
    )


def _member_where(account_id: str, group_name: str, user_name: str) -> ColumnElement[bool]:
    return and_(
        iam_group_members.c.account_id == account_id,
        iam_group_members.c.group_name == group_name,
        iam_group_members.c.user_name == user_name,
    )


def is_group_member(conn: Connection, account_id: str, group_name: str, user_name: str) -> bool:
    row = conn.execute(
        select(iam_group_members.c.user_name).where(
            _member_where(account_id, group_name, user_name)
        )
    ).first()
    return row is not None


def add_group_member(conn: Connection, account_id: str, group_name: str, user_name: str) -> None:
    if not is_group_member(conn, account_id, group_name, user_name):
        conn.execute(
            iam_group_members.insert().values(
                account_id=account_id, group_name=group_name, user_name=user_name
            )
        )


def remove_group_member(conn: Connection, account_id: str, group_name: str, user_name: str) -> bool:
    result = conn.execute(
        delete(iam_group_members).where(_member_where(account_id, group_name, user_name))
    )
    return bool(result.rowcount)


def group_members(
    conn: Connection, account_id: str, group_name: str, after: str | None, limit: int
) -> list[User]:
    query = (
        select(iam_users)
        .join(
            iam_group_members,
            and_(
                iam_group_members.c.account_id == iam_users.c.account_id,
                iam_group_members.c.user_name == iam_users.c.user_name,
            ),
        )
        .where(
            iam_group_members.c.account_id == account_id,
            iam_group_members.c.group_name == group_name,
        )
        .order_by(func.lower(iam_users.c.user_name))
        .limit(limit)
    )
    cond = _after(iam_users.c.user_name, after)
    if cond is not None:
        query = query.where(cond)
    return [_user(row) for row in conn.execute(query)]


def count_group_members(conn: Connection, account_id: str, group_name: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(iam_group_members)
            .where(
                iam_group_members.c.account_id == account_id,
                iam_group_members.c.group_name == group_name,
            )
        ).scalar_one()
    )


def groups_for_user(
    conn: Connection, account_id: str, user_name: str, after: str | None, limit: int
) -> list[Group]:
    query = (
        select(iam_groups)
        .join(
            iam_group_members,
            and_(
                iam_group_members.c.account_id == iam_groups.c.account_id,
                iam_group_members.c.group_name == iam_groups.c.group_name,
            ),
        )
        .where(
            iam_group_members.c.account_id == account_id,
            iam_group_members.c.user_name == user_name,
        )
        .order_by(func.lower(iam_groups.c.group_name))
        .limit(limit)
    )
    cond = _after(iam_groups.c.group_name, after)
    if cond is not None:
        query = query.where(cond)
    return [_group(row) for row in conn.execute(query)]


def user_group_names(conn: Connection, account_id: str, user_name: str) -> list[str]:
    rows = conn.execute(
        select(iam_group_members.c.group_name)
        .where(
            iam_group_members.c.account_id == account_id,
            iam_group_members.c.user_name == user_name,
        )
        .order_by(iam_group_members.c.group_name)
    )
    return [str(r.group_name) for r in rows]


# -- tags (users, roles, managed policies) -------------------------------------------------


def _tag_where(account_id: str, kind: TagKind, name: str) -> ColumnElement[bool]:
    return and_(
        iam_tags.c.account_id == account_id,
        iam_tags.c.entity_kind == kind,
        iam_tags.c.entity_name == name,
    )


def get_tags(conn: Connection, account_id: str, kind: TagKind, name: str) -> Tags:
    """Tags sorted by key."""
    rows = conn.execute(
        select(iam_tags.c.tag_key, iam_tags.c.tag_value)
        .where(_tag_where(account_id, kind, name))
        .order_by(iam_tags.c.tag_key)
    )
    return tuple((str(r.tag_key), str(r.tag_value)) for r in rows)


def put_tags(
    conn: Connection, account_id: str, kind: TagKind, name: str, tags: Mapping[str, str]
) -> None:
    """Add or replace tags; a key replaces an existing key that differs only in case."""
    if not tags:
        return
    delete_tags(conn, account_id, kind, name, tags.keys())
    conn.execute(
        iam_tags.insert(),
        [
            {
                "account_id": account_id,
                "entity_kind": kind,
                "entity_name": name,
                "tag_key": key,
                "tag_value": value,
            }
            for key, value in tags.items()
        ],
    )


def delete_tags(
    conn: Connection, account_id: str, kind: TagKind, name: str, keys: Iterable[str]
) -> None:
    lowered = [k.lower() for k in keys]
    if lowered:
        conn.execute(
            delete(iam_tags).where(
                _tag_where(account_id, kind, name), func.lower(iam_tags.c.tag_key).in_(lowered)
            )
        )


def delete_all_tags(conn: Connection, account_id: str, kind: TagKind, name: str) -> None:
    conn.execute(delete(iam_tags).where(_tag_where(account_id, kind, name)))


def principal_tags(
    conn: Connection, account_id: str, entity_kind: str, entity_name: str
) -> dict[str, str]:
    """The tags of a user or role (aws:PrincipalTag/KEY), for the authorizer."""
    if entity_kind not in ("user", "role"):
        return {}
    rows = conn.execute(
        select(iam_tags.c.tag_key, iam_tags.c.tag_value).where(
            iam_tags.c.account_id == account_id,
            iam_tags.c.entity_kind == entity_kind,
            iam_tags.c.entity_name == entity_name,
        )
    )
    return {str(r.tag_key): str(r.tag_value) for r in rows}


# -- inline policies -----------------------------------------------------------------------


def _inline_where(account_id: str, kind: EntityKind, entity_name: str) -> ColumnElement[bool]:
    return and_(
        iam_inline_policies.c.account_id == account_id,
        iam_inline_policies.c.entity_kind == kind,
        iam_inline_policies.c.entity_name == entity_name,
    )


def inline_policies(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str
) -> list[InlinePolicy]:
    """An entity's inline policies, by lower-cased name."""
    rows = conn.execute(
        select(iam_inline_policies.c.policy_name, iam_inline_policies.c.document)
        .where(_inline_where(account_id, kind, entity_name))
        .order_by(func.lower(iam_inline_policies.c.policy_name))
    )
    return [InlinePolicy(entity_name, str(r.policy_name), str(r.document)) for r in rows]


def get_inline_policy(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str, policy_name: str
) -> InlinePolicy | None:
    row = conn.execute(
        select(iam_inline_policies.c.policy_name, iam_inline_policies.c.document).where(
            _inline_where(account_id, kind, entity_name),
            _iname(iam_inline_policies.c.policy_name, policy_name),
        )
    ).first()
    return None if row is None else InlinePolicy(entity_name, row.policy_name, row.document)


def delete_inline_policy(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str, policy_name: str
) -> bool:
    result = conn.execute(
        delete(iam_inline_policies).where(
            _inline_where(account_id, kind, entity_name),
            _iname(iam_inline_policies.c.policy_name, policy_name),
        )
    )
    return bool(result.rowcount)


def put_inline_policy(
    conn: Connection,
    account_id: str,
    kind: EntityKind,
    entity_name: str,
    policy_name: str,
    document: str,
) -> None:
    """Create or replace (a name differing only in case replaces, too)."""
    delete_inline_policy(conn, account_id, kind, entity_name, policy_name)
    conn.execute(
        iam_inline_policies.insert().values(
            account_id=account_id,
            entity_kind=kind,
            entity_name=entity_name,
            policy_name=policy_name,
            document=document,
        )
    )


def delete_all_inline_policies(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str
) -> None:
    conn.execute(delete(iam_inline_policies).where(_inline_where(account_id, kind, entity_name)))


# -- managed policies ----------------------------------------------------------------------


def _attachment_counts() -> Any:
    return (
        select(
            iam_attachments.c.account_id,
            iam_attachments.c.policy_arn,
            func.count().label("attachments"),
        )
        .group_by(iam_attachments.c.account_id, iam_attachments.c.policy_arn)
        .subquery()
    )


def _managed_query() -> Any:
    counts = _attachment_counts()
    return select(
        iam_managed_policies, func.coalesce(counts.c.attachments, 0).label("attachments")
    ).outerjoin(
        counts,
        and_(
            counts.c.account_id == iam_managed_policies.c.account_id,
            counts.c.policy_arn == iam_managed_policies.c.arn,
        ),
    )


def _managed(row: Row[Any], tags: Tags = ()) -> ManagedPolicy:
    return ManagedPolicy(
        account_id=row.account_id,
        policy_name=row.policy_name,
        policy_id=row.policy_id,
        arn=row.arn,
        path=row.path,
        description=row.description,
        document=row.document,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attachment_count=int(row.attachments),
        tags=tags,
    )


def insert_managed_policy(conn: Connection, policy: ManagedPolicy) -> None:
    conn.execute(
        iam_managed_policies.insert().values(
            account_id=policy.account_id,
            policy_name=policy.policy_name,
            policy_id=policy.policy_id,
            arn=policy.arn,
            path=policy.path,
            description=policy.description,
            document=policy.document,
            created_at=policy.created_at,
            updated_at=policy.updated_at,
        )
    )


def get_managed_policy(conn: Connection, account_id: str, arn: str) -> ManagedPolicy | None:
    row = conn.execute(
        _managed_query().where(
            iam_managed_policies.c.account_id == account_id, iam_managed_policies.c.arn == arn
        )
    ).first()
    return None if row is None else _managed(row)


def get_managed_policy_by_name(
    conn: Connection, account_id: str, policy_name: str
) -> ManagedPolicy | None:
    row = conn.execute(
        _managed_query().where(
            iam_managed_policies.c.account_id == account_id,
            _iname(iam_managed_policies.c.policy_name, policy_name),
        )
    ).first()
    return None if row is None else _managed(row)


def list_managed_policies(
    conn: Connection,
    account_id: str,
    path_prefix: str,
    only_attached: bool,
    after: str | None,
    limit: int,
) -> list[ManagedPolicy]:
    query = _by_path(
        _managed_query(),
        iam_managed_policies,
        iam_managed_policies.c.policy_name,
        account_id,
        path_prefix,
        after,
    )
    policies: list[ManagedPolicy] = []
    for row in conn.execute(query):
        policy = _managed(row)
        if only_attached and policy.attachment_count == 0:
            continue
        policies.append(policy)
        if len(policies) >= limit:
            break
    return policies


def count_managed_policies(conn: Connection, account_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(iam_managed_policies)
            .where(iam_managed_policies.c.account_id == account_id)
        ).scalar_one()
    )


def delete_managed_policy(conn: Connection, account_id: str, policy: ManagedPolicy) -> None:
    delete_all_tags(conn, account_id, "policy", policy.policy_name)
    conn.execute(
        delete(iam_managed_policies).where(
            iam_managed_policies.c.account_id == account_id,
            iam_managed_policies.c.arn == policy.arn,
        )
    )


# -- attachments ---------------------------------------------------------------------------


def _attachment_where(account_id: str, kind: EntityKind, entity_name: str) -> ColumnElement[bool]:
    return and_(
        iam_attachments.c.account_id == account_id,
        iam_attachments.c.entity_kind == kind,
        iam_attachments.c.entity_name == entity_name,
    )


def attached_policies(
    conn: Connection,
    account_id: str,
    kind: EntityKind,
    entity_name: str,
    path_prefix: str = "/",
) -> list[AttachedPolicy]:
    """Managed policies attached to an entity, by lower-cased policy name."""
    rows = conn.execute(
        select(iam_managed_policies.c.policy_name, iam_managed_policies.c.arn)
        .join(
            iam_attachments,
            and_(
                iam_attachments.c.account_id == iam_managed_policies.c.account_id,
                iam_attachments.c.policy_arn == iam_managed_policies.c.arn,
            ),
        )
        .where(
            _attachment_where(account_id, kind, entity_name),
            iam_managed_policies.c.path.startswith(path_prefix, autoescape=True),
        )
        .order_by(func.lower(iam_managed_policies.c.policy_name))
    )
    return [AttachedPolicy(str(r.policy_name), str(r.arn)) for r in rows]


def count_attached(conn: Connection, account_id: str, kind: EntityKind, entity_name: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(iam_attachments)
            .where(_attachment_where(account_id, kind, entity_name))
        ).scalar_one()
    )


def is_attached(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str, policy_arn: str
) -> bool:
    row = conn.execute(
        select(iam_attachments.c.policy_arn).where(
            _attachment_where(account_id, kind, entity_name),
            iam_attachments.c.policy_arn == policy_arn,
        )
    ).first()
    return row is not None


def attach_policy(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str, policy_arn: str
) -> None:
    if not is_attached(conn, account_id, kind, entity_name, policy_arn):
        conn.execute(
            iam_attachments.insert().values(
                account_id=account_id,
                entity_kind=kind,
                entity_name=entity_name,
                policy_arn=policy_arn,
            )
        )


def detach_policy(
    conn: Connection, account_id: str, kind: EntityKind, entity_name: str, policy_arn: str
) -> bool:
    result = conn.execute(
        delete(iam_attachments).where(
            _attachment_where(account_id, kind, entity_name),
            iam_attachments.c.policy_arn == policy_arn,
        )
    )
    return bool(result.rowcount)


# -- what the authorizer reads -------------------------------------------------------------


def _entity_documents(
    conn: Connection, account_id: str, kind: EntityKind, name: str, seen_arns: set[str]
) -> list[str]:
    docs = [p.document for p in inline_policies(conn, account_id, kind, name)]
    rows = conn.execute(
        select(iam_managed_policies.c.arn, iam_managed_policies.c.document)
        .join(
            iam_attachments,
            and_(
                iam_attachments.c.account_id == iam_managed_policies.c.account_id,
                iam_attachments.c.policy_arn == iam_managed_policies.c.arn,
            ),
        )
        .where(_attachment_where(account_id, kind, name))
        .order_by(iam_managed_policies.c.arn)
    )
    for row in rows:
        if row.arn not in seen_arns:
            seen_arns.add(row.arn)
            docs.append(str(row.document))
    return docs


def identity_policy_documents(
    conn: Connection, account_id: str, entity_kind: str, entity_name: str
) -> list[str]:
    """Every identity policy text that applies to a user or a role.

    A user's: its inline policies, the managed policies attached to it, and for each of
    its groups the group's inline and attached policies. A role's: its inline and
    attached policies. A managed policy reached more than once is listed once. The name
    is the stored spelling (as a principal carries it).
    """
    seen: set[str] = set()
    if entity_kind == "role":
        return _entity_documents(conn, account_id, "role", entity_name, seen)
    if entity_kind != "user":
        return []
    docs = _entity_documents(conn, account_id, "user", entity_name, seen)
    for group_name in user_group_names(conn, account_id, entity_name):
        docs.extend(_entity_documents(conn, account_id, "group", group_name, seen))
    return docs
