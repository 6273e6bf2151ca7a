"""IAM operation table: wire parameters ⇄ IamService calls.

Each handler takes the parsed request (botocore member names) and returns the wire
result in botocore's IAM output shapes. AWS semantics live in the service; this only
maps names and shapes — and URL-encodes policy documents, which IAM returns
percent-encoded (botocore decodes every `policyDocumentType` member).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sealbox.call import Call
from sealbox.iam.model import AccessKeyInfo, Group, ManagedPolicy, Page, Role, Tags, User
from sealbox.iam.service import IamService

Params = dict[str, Any]
Handler = Callable[[IamService, Call, Params], Params]

EVENT_SOURCE = "iam.amazonaws.com"


def encode_document(document: str) -> str:
    return quote(document, safe="")


def _tags_in(p: Params) -> list[tuple[str, str]]:
    return [(t["Key"], t.get("Value", "")) for t in p.get("Tags") or []]


def _tags_out(tags: Tags) -> list[Params]:
    return [{"Key": k, "Value": v} for k, v in tags]


def _page(page: Page[Any]) -> Params:
    if page.marker is not None:
        return {"IsTruncated": True, "Marker": page.marker}
    return {"IsTruncated": False}


def _listing(p: Params) -> tuple[str | None, int | None]:
    return p.get("Marker"), p.get("MaxItems")


def user_shape(user: User, with_tags: bool = False) -> Params:
    if user.is_root:
        # AWS describes the root user by the account: no UserName and no Path.
        return {"UserId": user.user_id, "Arn": user.arn, "CreateDate": user.created_at}
    out: Params = {
        "Path": user.path,
        "UserName": user.user_name,
        "UserId": user.user_id,
        "Arn": user.arn,
        "CreateDate": user.created_at,
    }
    if with_tags and user.tags:
        out["Tags"] = _tags_out(user.tags)
    return out


def role_shape(role: Role, with_tags: bool = False, last_used: bool = False) -> Params:
    out: Params = {
        "Path": role.path,
        "RoleName": role.role_name,
        "RoleId": role.role_id,
        "Arn": role.arn,
        "CreateDate": role.created_at,
        "AssumeRolePolicyDocument": encode_document(role.trust_policy),
        "MaxSessionDuration": role.max_session_duration,
    }
    if role.description:
        out["Description"] = role.description
    if with_tags and role.tags:
        out["Tags"] = _tags_out(role.tags)
    if last_used:
        out["RoleLastUsed"] = {}
    return out


def group_shape(group: Group) -> Params:
    return {
        "Path": group.path,
        "GroupName": group.group_name,
        "GroupId": group.group_id,
        "Arn": group.arn,
        "CreateDate": group.created_at,
    }


def policy_shape(policy: ManagedPolicy, detail: bool = False) -> Params:
    out: Params = {
        "PolicyName": policy.policy_name,
        "PolicyId": policy.policy_id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version_id,
        "AttachmentCount": policy.attachment_count,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "CreateDate": policy.created_at,
        "UpdateDate": policy.updated_at,
    }
    # Like AWS, only GetPolicy shows the description.
    if detail and policy.description:
        out["Description"] = policy.description
    if policy.tags:
        out["Tags"] = _tags_out(policy.tags)
    return out


def _access_key_meta(key: AccessKeyInfo) -> Params:
    out: Params = {
        "AccessKeyId": key.access_key_id,
        "Status": key.status,
        "CreateDate": key.created_at,
    }
    if key.user_name:
        out["UserName"] = key.user_name
    return out


# -- users ----------------------------------------------------------------------------------


def create_user(svc: IamService, call: Call, p: Params) -> Params:
    user = svc.create_user(
        call,
        p["UserName"],
        path=p.get("Path"),
        tags=_tags_in(p),
        permissions_boundary=p.get("PermissionsBoundary"),
    )
    return {"User": user_shape(user, with_tags=True)}


def get_user(svc: IamService, call: Call, p: Params) -> Params:
    return {"User": user_shape(svc.get_user(call, p.get("UserName")), with_tags=True)}


def list_users(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_users(call, p.get("PathPrefix"), *_listing(p))
    return {"Users": [user_shape(u) for u in page.items], **_page(page)}


def delete_user(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_user(call, p["UserName"])
    return {}


def tag_user(svc: IamService, call: Call, p: Params) -> Params:
    svc.tag_user(call, p["UserName"], _tags_in(p))
    return {}


def untag_user(svc: IamService, call: Call, p: Params) -> Params:
    svc.untag_user(call, p["UserName"], list(p.get("TagKeys") or []))
    return {}


def list_user_tags(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_user_tags(call, p["UserName"], *_listing(p))
    return {"Tags": _tags_out(tuple(page.items)), **_page(page)}


# -- access keys ------------------------------------------------------------------------------


def create_access_key(svc: IamService, call: Call, p: Params) -> Params:
    new = svc.create_access_key(call, p.get("UserName"))
    key = _access_key_meta(new.info)
    key["SecretAccessKey"] = new.secret_access_key
    return {"AccessKey": key}


def list_access_keys(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_access_keys(call, p.get("UserName"), *_listing(p))
    return {"AccessKeyMetadata": [_access_key_meta(k) for k in page.items], **_page(page)}


def update_access_key(svc: IamService, call: Call, p: Params) -> Params:
    svc.update_access_key(call, p["AccessKeyId"], p["Status"], p.get("UserName"))
    return {}


def delete_access_key(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_access_key(call, p["AccessKeyId"], p.get("UserName"))
    return {}


# -- roles ----------------------------------------------------------------------------------


def create_role(svc: IamService, call: Call, p: Params) -> Params:
    role = svc.create_role(
        call,
        p["RoleName"],
        p["AssumeRolePolicyDocument"],
        path=p.get("Path"),
        description=p.get("Description"),
        max_session_duration=p.get("MaxSessionDuration"),
        tags=_tags_in(p),
        permissions_boundary=p.get("PermissionsBoundary"),
    )
    return {"Role": role_shape(role, with_tags=True)}


def get_role(svc: IamService, call: Call, p: Params) -> Params:
    return {"Role": role_shape(svc.get_role(call, p["RoleName"]), with_tags=True, last_used=True)}


def list_roles(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_roles(call, p.get("PathPrefix"), *_listing(p))
    return {"Roles": [role_shape(r) for r in page.items], **_page(page)}


def delete_role(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_role(call, p["RoleName"])
    return {}


def update_assume_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.update_assume_role_policy(call, p["RoleName"], p["PolicyDocument"])
    return {}


def tag_role(svc: IamService, call: Call, p: Params) -> Params:
    svc.tag_role(call, p["RoleName"], _tags_in(p))
    return {}


def untag_role(svc: IamService, call: Call, p: Params) -> Params:
    svc.untag_role(call, p["RoleName"], list(p.get("TagKeys") or []))
    return {}


def list_role_tags(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_role_tags(call, p["RoleName"], *_listing(p))
    return {"Tags": _tags_out(tuple(page.items)), **_page(page)}


# -- inline policies --------------------------------------------------------------------------


def put_user_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.put_user_policy(call, p["UserName"], p["PolicyName"], p["PolicyDocument"])
    return {}


def get_user_policy(svc: IamService, call: Call, p: Params) -> Params:
    policy = svc.get_user_policy(call, p["UserName"], p["PolicyName"])
    return {
        "UserName": policy.entity_name,
        "PolicyName": policy.policy_name,
        "PolicyDocument": encode_document(policy.document),
    }


def delete_user_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_user_policy(call, p["UserName"], p["PolicyName"])
    return {}


def list_user_policies(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_user_policies(call, p["UserName"], *_listing(p))
    return {"PolicyNames": page.items, **_page(page)}


def put_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.put_role_policy(call, p["RoleName"], p["PolicyName"], p["PolicyDocument"])
    return {}


def get_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    policy = svc.get_role_policy(call, p["RoleName"], p["PolicyName"])
    return {
        "RoleName": policy.entity_name,
        "PolicyName": policy.policy_name,
        "PolicyDocument": encode_document(policy.document),
    }


def delete_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_role_policy(call, p["RoleName"], p["PolicyName"])
    return {}


def list_role_policies(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_role_policies(call, p["RoleName"], *_listing(p))
    return {"PolicyNames": page.items, **_page(page)}


def put_group_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.put_group_policy(call, p["GroupName"], p["PolicyName"], p["PolicyDocument"])
    return {}


def get_group_policy(svc: IamService, call: Call, p: Params) -> Params:
    policy = svc.get_group_policy(call, p["GroupName"], p["PolicyName"])
    return {
        "GroupName": policy.entity_name,
        "PolicyName": policy.policy_name,
        "PolicyDocument": encode_document(policy.document),
    }


def delete_group_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_group_policy(call, p["GroupName"], p["PolicyName"])
    return {}


def list_group_policies(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_group_policies(call, p["GroupName"], *_listing(p))
    return {"PolicyNames": page.items, **_page(page)}


# -- managed policies ---------------------------------------------------------------------------


def create_policy(svc: IamService, call: Call, p: Params) -> Params:
    policy = svc.create_policy(
        call,
        p["PolicyName"],
        p["PolicyDocument"],
        path=p.get("Path"),
        description=p.get("Description"),
        tags=_tags_in(p),
    )
    return {"Policy": policy_shape(policy)}


def get_policy(svc: IamService, call: Call, p: Params) -> Params:
    return {"Policy": policy_shape(svc.get_policy(call, p["PolicyArn"]), detail=True)}


def delete_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_policy(call, p["PolicyArn"])
    return {}


def list_policies(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_policies(
        call,
        scope=p.get("Scope"),
        only_attached=bool(p.get("OnlyAttached", False)),
        path_prefix=p.get("PathPrefix"),
        policy_usage_filter=p.get("PolicyUsageFilter"),
        marker=p.get("Marker"),
        max_items=p.get("MaxItems"),
    )
    return {"Policies": [policy_shape(x) for x in page.items], **_page(page)}


def _attached(page: Page[Any]) -> Params:
    items = [{"PolicyName": a.policy_name, "PolicyArn": a.policy_arn} for a in page.items]
    return {"AttachedPolicies": items, **_page(page)}


def attach_user_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.attach_user_policy(call, p["UserName"], p["PolicyArn"])
    return {}


def detach_user_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.detach_user_policy(call, p["UserName"], p["PolicyArn"])
    return {}


def list_attached_user_policies(svc: IamService, call: Call, p: Params) -> Params:
    name, prefix = p["UserName"], p.get("PathPrefix")
    return _attached(svc.list_attached_user_policies(call, name, prefix, *_listing(p)))


def attach_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.attach_role_policy(call, p["RoleName"], p["PolicyArn"])
    return {}


def detach_role_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.detach_role_policy(call, p["RoleName"], p["PolicyArn"])
    return {}


def list_attached_role_policies(svc: IamService, call: Call, p: Params) -> Params:
    name, prefix = p["RoleName"], p.get("PathPrefix")
    return _attached(svc.list_attached_role_policies(call, name, prefix, *_listing(p)))


def attach_group_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.attach_group_policy(call, p["GroupName"], p["PolicyArn"])
    return {}


def detach_group_policy(svc: IamService, call: Call, p: Params) -> Params:
    svc.detach_group_policy(call, p["GroupName"], p["PolicyArn"])
    return {}


def list_attached_group_policies(svc: IamService, call: Call, p: Params) -> Params:
    name, prefix = p["GroupName"], p.get("PathPrefix")
    return _attached(svc.list_attached_group_policies(call, name, prefix, *_listing(p)))


# -- groups ----------------------------------------------------------------------------------


def create_group(svc: IamService, call: Call, p: Params) -> Params:
    return {"Group": group_shape(svc.create_group(call, p["GroupName"], p.get("Path")))}


def get_group(svc: IamService, call: Call, p: Params) -> Params:
    result = svc.get_group(call, p["GroupName"], *_listing(p))
    return {
        "Group": group_shape(result.group),
        "Users": [user_shape(u) for u in result.users.items],
        **_page(result.users),
    }


def list_groups(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_groups(call, p.get("PathPrefix"), *_listing(p))
    return {"Groups": [group_shape(g) for g in page.items], **_page(page)}


def delete_group(svc: IamService, call: Call, p: Params) -> Params:
    svc.delete_group(call, p["GroupName"])
    return {}


def add_user_to_group(svc: IamService, call: Call, p: Params) -> Params:
    svc.add_user_to_group(call, p["GroupName"], p["UserName"])
    return {}


def remove_user_from_group(svc: IamService, call: Call, p: Params) -> Params:
    svc.remove_user_from_group(call, p["GroupName"], p["UserName"])
    return {}


def list_groups_for_user(svc: IamService, call: Call, p: Params) -> Params:
    page = svc.list_groups_for_user(call, p["UserName"], *_listing(p))
    return {"Groups": [group_shape(g) for g in page.items], **_page(page)}


OPERATIONS: dict[str, Handler] = {
    "CreateUser": create_user,
    "GetUser": get_user,
    "ListUsers": list_users,
    "DeleteUser": delete_user,
    "TagUser": tag_user,
    "UntagUser": untag_user,
    "ListUserTags": list_user_tags,
    "CreateAccessKey": create_access_key,
    "ListAccessKeys": list_access_keys,
    "UpdateAccessKey": update_access_key,
    "DeleteAccessKey": delete_access_key,
    "CreateRole": create_role,
    "GetRole": get_role,
    "ListRoles": list_roles,
    "DeleteRole": delete_role,
    "UpdateAssumeRolePolicy": update_assume_role_policy,
    "TagRole": tag_role,
    "UntagRole": untag_role,
    "ListRoleTags": list_role_tags,
    "PutUserPolicy": put_user_policy,
    "GetUserPolicy": get_user_policy,
    "DeleteUserPolicy": delete_user_policy,
    "ListUserPolicies": list_user_policies,
    "PutRolePolicy": put_role_policy,
    "GetRolePolicy": get_role_policy,
    "DeleteRolePolicy": delete_role_policy,
    "ListRolePolicies": list_role_policies,
    "PutGroupPolicy": put_group_policy,
    "GetGroupPolicy": get_group_policy,
    "DeleteGroupPolicy": delete_group_policy,
    "ListGroupPolicies": list_group_policies,
    "CreatePolicy": create_policy,
    "GetPolicy": get_policy,
    "DeletePolicy": delete_policy,
    "ListPolicies": list_policies,
    "AttachUserPolicy": attach_user_policy,
    "DetachUserPolicy": detach_user_policy,
    "ListAttachedUserPolicies": list_attached_user_policies,
    "AttachRolePolicy": attach_role_policy,
    "DetachRolePolicy": detach_role_policy,
    "ListAttachedRolePolicies": list_attached_role_policies,
    "AttachGroupPolicy": attach_group_policy,
    "DetachGroupPolicy": detach_group_policy,
    "ListAttachedGroupPolicies": list_attached_group_policies,
    "CreateGroup": create_group,
    "GetGroup": get_group,
    "ListGroups": list_groups,
    "DeleteGroup": delete_group,
    "AddUserToGroup": add_user_to_group,
    "RemoveUserFromGroup": remove_user_from_group,
    "ListGroupsForUser": list_groups_for_user,
}

# Operations that change nothing: audited by group commit after the call. The others
# append their audit record inside their own transaction.
READ_ONLY = frozenset(name for name in OPERATIONS if name.startswith(("Get", "List")))
