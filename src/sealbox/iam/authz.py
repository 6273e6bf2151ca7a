"""Authorization: who is asking, which policies apply, and the engine's verdict.

The policy engine (`iam.policy.evaluate`) is pure. This module gathers its inputs —
the caller's identity policies and tags, the request's condition keys — and turns a
denial into the service's AccessDenied error and message. Identity policies are
compiled once and cached per principal, valid while the account's `iam_version`
(bumped by every IAM change) is unchanged: one cheap lookup per request.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.errors import AwsError
from sealbox.iam.model import Principal
from sealbox.iam.policy.evaluate import (
    AuthzPrincipal,
    AuthzRequest,
    CompiledPolicy,
    Decision,
    compile_text,
    evaluate,
)
from sealbox.storage import iam_repo, sts_repo
from sealbox.storage.db import Database

_CACHE_LIMIT = 10_000

_TYPES = {"Root": "Account", "IAMUser": "User", "AssumedRole": "AssumedRole"}


@dataclass(frozen=True, slots=True)
class Subject:
    """A principal as the engine sees it, with its identity policies compiled."""

    principal: AuthzPrincipal
    identity_policies: tuple[CompiledPolicy, ...]


def role_of_session(arn: str) -> tuple[str, str] | None:
    """(account, role name) of an assumed-role session ARN."""
    # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("assumed-role/"):
        return None
    return parts[4], parts[5].split("/")[1]


class Authorizer:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._subjects: dict[tuple[str, str], tuple[int, Subject]] = {}
        self._lock = threading.Lock()

    # -- who is asking ------------------------------------------------------------

    def _iam_version(self, account_id: str) -> int:
        row = self._db.fast_row(
            "SELECT iam_version FROM accounts WHERE account_id = ?", (account_id,)
        )
        return -1 if row is None else int(row[0])

    def subject(self, principal: Principal) -> Subject:
        key = (principal.account_id, principal.arn)
        version = self._iam_version(principal.account_id)
        cached = self._subjects.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        subject = self._load_subject(principal)
        with self._lock:
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            self._subjects[key] = (version, subject)
        return subject

    def _load_subject(self, principal: Principal) -> Subject:
        account = principal.account_id
        kind, name, role_arn = "", "", None
        if principal.principal_type == "IAMUser" and principal.user_name:
            kind, name = "user", principal.user_name
        elif principal.principal_type == "AssumedRole":
            role = role_of_session(principal.arn)
            if role is not None:
                kind, name = "role", role[1]
                role_arn = sts_repo.role_arn(self._db, account, name)
        texts: list[str] = []
        tags: dict[str, str] = {}
        if kind:
            with self._db.read() as conn:
                texts = iam_repo.identity_policy_documents(conn, account, kind, name)
                tags = iam_repo.principal_tags(conn, account, kind, name)
        return Subject(
            AuthzPrincipal(
                arn=principal.arn,
                account_id=account,
                principal_type=_TYPES.get(principal.principal_type, principal.principal_type),
                user_id=principal.principal_id,
                username=principal.user_name if kind == "user" else None,
                role_arn=role_arn,
                tags=tags,
            ),
            tuple(compile_text(t, "identity") for t in texts),
        )

    # -- the decision --------------------------------------------------------------

    def context(self, call: Call, subject: Subject) -> dict[str, str | Sequence[str]]:
        """The global condition keys of a request (services add their own)."""
        p = subject.principal
        now = self._clock.now()
        ctx: dict[str, str | Sequence[str]] = {
            "aws:PrincipalArn": p.role_arn or p.arn,
            "aws:PrincipalAccount": p.account_id,
            "aws:PrincipalType": p.principal_type,
            "aws:userid": p.user_id,
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:RequestedRegion": call.region,
            "aws:SecureTransport": "true" if call.secure_transport else "false",
            "aws:ViaAWSService": "true" if call.invoked_by else "false",
        }
        if p.username:
            ctx["aws:username"] = p.username
        if call.source_ip and not call.invoked_by:
            ctx["aws:SourceIp"] = call.source_ip
        for tag_key, tag_value in p.tags.items():
            ctx[f"aws:PrincipalTag/{tag_key}"] = tag_value
        return ctx

    def check(
        self,
        call: Call,
        action: str,
        resource: str,
        resource_account: str | None,
        denied: type[AwsError],
        *,
        resource_policy: str | None = None,
        resource_policy_kind: Literal["resource", "trust"] = "resource",
        gates: bool = False,
        grant_allows: bool = False,
        context: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        """Raise `denied` unless the principal may perform action on resource."""
        subject = self.subject(call.principal)
        ctx = self.context(call, subject)
        if context:
            ctx.update(context)
        compiled = compile_text(resource_policy, resource_policy_kind) if resource_policy else None
        result = evaluate(
            subject.principal,
            AuthzRequest(action, resource, resource_account, ctx),
            identity_policies=subject.identity_policies,
            resource_policy=compiled,
            resource_policy_gates=gates,
            grant_allows=grant_allows,
        )
        if result.decision is not Decision.ALLOW:
            raise denied(denial_message(call.principal.arn, action, resource, result.decision))

    def allows(
        self,
        call: Call,
        action: str,
        resource: str,
        resource_account: str | None,
        *,
        resource_policy: str | None,
        gates: bool,
        context: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether check would pass (the lockout safety check asks this)."""
        subject = self.subject(call.principal)
        ctx = self.context(call, subject)
        if context:
            ctx.update(context)
        compiled = compile_text(resource_policy, "resource") if resource_policy else None
        result = evaluate(
            subject.principal,
            AuthzRequest(action, resource, resource_account, ctx),
            identity_policies=subject.identity_policies,
            resource_policy=compiled,
            resource_policy_gates=gates,
        )
        return result.decision is Decision.ALLOW


def denial_message(principal_arn: str, action: str, resource: str, decision: Decision) -> str:
    """AWS's message shape: who, which action, which resource, and why."""
    why = (
        "with an explicit deny in a policy"
        if decision is Decision.EXPLICIT_DENY
        else "because no policy allows the action"
    )
    return (
        f"User: {principal_arn} is not authorized to perform: {action} "
        f"on resource: {resource} {why}"
    )
