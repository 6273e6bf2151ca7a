"""IamService: one method per IAM operation. Plain Python in, dataclasses out.

Every rule AWS applies — name, path and tag rules, quotas, delete conflicts, policy
grammar and size — is decided here (in the entity modules this class gathers), not in
the protocol adapter. Each operation asks `authorize(call, action, resource ARN)` before
it acts; each change commits with its audit record and a bump of the account's
iam_version in one transaction.

    users.py     users, user tags, access keys
    roles.py     roles, trust policies, role tags
    groups.py    groups and membership
    policies.py  inline and managed policies, attachments
    base.py      input rules, paging, authorization and the write path
"""

from __future__ import annotations

from sealbox.iam.base import Authorize
from sealbox.iam.groups import GroupOperations
from sealbox.iam.policies import PolicyOperations
from sealbox.iam.roles import RoleOperations
from sealbox.iam.users import UserOperations

__all__ = ["Authorize", "IamService"]


class IamService(UserOperations, RoleOperations, GroupOperations, PolicyOperations):
    """IamService(db, keystore, clock, audit, authorize)."""
