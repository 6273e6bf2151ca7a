"""Who may do what with a key: key policy, IAM delegation and grants, with KMS's
condition keys (kms:EncryptionContext:*, kms:CallerAccount, aws:ResourceTag/*, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sealbox import arn as arns
from sealbox.call import Call
from sealbox.iam.authz import Authorizer, role_of_session
from sealbox.kms.errors import AccessDeniedError
from sealbox.kms.grants import grants_permit
from sealbox.kms.keyring import KeyView
from sealbox.kms.model import Key

Context = dict[str, str | Sequence[str]]


def key_context(key: Key, tags: Mapping[str, str], aliases: Sequence[str] = ()) -> Context:
    ctx: Context = {
        "kms:ResourceAliases": list(aliases),
        "kms:KeySpec": key.key_spec,
        "kms:KeyUsage": key.key_usage,
        "kms:KeyOrigin": key.origin,
        "kms:MultiRegion": "true" if key.multi_region else "false",
    }
    for tag_key, tag_value in tags.items():
        ctx[f"aws:ResourceTag/{tag_key}"] = tag_value
    return ctx


def encryption_context_keys(context: Mapping[str, str] | None) -> Context:
    ctx: Context = {"kms:EncryptionContextKeys": sorted(context or {})}
    for k, v in (context or {}).items():
        ctx[f"kms:EncryptionContext:{k}"] = v
    return ctx


def grantee_arns(call: Call) -> list[str]:
    """The ARNs a grant's GranteePrincipal may name to match this caller."""
    p = call.principal
    arns_: list[str] = [p.arn]
    role = role_of_session(p.arn)
    if role is not None:
        arns_.append(arns.iam_arn(role[0], f"role/{role[1]}"))
    return arns_


class KeyAccess:
    def __init__(self, authorizer: Authorizer) -> None:
        self._authz = authorizer

    def check(
        self,
        call: Call,
        operation: str,
        view: KeyView,
        *,
        encryption_context: Mapping[str, str] | None = None,
        context: Context | None = None,
        grant_operation: str | None = None,
    ) -> None:
        """Raise AccessDeniedException unless the caller may run operation on the key."""
        key = view.key
        ctx = key_context(key, view.tags, view.aliases)
        ctx["kms:CallerAccount"] = call.principal.account_id
        if call.invoked_by:
            # "s3.amazonaws.com" calling in us-east-1 is "s3.us-east-1.amazonaws.com".
            service = call.invoked_by.split(".", 1)[0]
            ctx["kms:ViaService"] = f"{service}.{call.region}.amazonaws.com"
        if encryption_context is not None or operation in _CONTEXT_OPERATIONS:
            ctx.update(encryption_context_keys(encryption_context))
        if context:
            ctx.update(context)
        grant_op = grant_operation or operation
        grant_allows = bool(view.grants) and grants_permit(
            view.grants, grantee_arns(call), grant_op, encryption_context
        )
        self._authz.check(
            call,
            f"kms:{operation}",
            key.arn,
            key.account_id,
            AccessDeniedError,
            resource_policy=key.policy,
            gates=True,
            grant_allows=grant_allows,
            context=ctx,
        )

    def check_account(self, call: Call, operation: str, context: Context | None = None) -> None:
        """Operations authorized by IAM policies alone (CreateKey, ListKeys, ...)."""
        self._authz.check(
            call,
            f"kms:{operation}",
            "*",
            call.principal.account_id,
            AccessDeniedError,
            context=context,
        )

    def policy_allows(
        self, call: Call, operation: str, key: Key, policy: str, context: Context
    ) -> bool:
        """Would policy let the caller run operation on key (the lockout safety check)?"""
        return self._authz.allows(
            call,
            f"kms:{operation}",
            key.arn,
            key.account_id,
            resource_policy=policy,
            gates=True,
            context=context,
        )


_CONTEXT_OPERATIONS = frozenset(
    {"Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
     "ReEncryptTo"}
)  # fmt: skip
