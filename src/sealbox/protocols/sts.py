"""STS operation table: wire parameters ⇄ StsService calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sealbox.call import Call
from sealbox.iam.sts import StsService

Params = dict[str, Any]
Handler = Callable[[StsService, Call, Params], Params]

EVENT_SOURCE = "sts.amazonaws.com"


def get_caller_identity(svc: StsService, call: Call, p: Params) -> Params:
    who = svc.get_caller_identity(call)
    return {"UserId": who.user_id, "Account": who.account, "Arn": who.arn}


def assume_role(svc: StsService, call: Call, p: Params) -> Params:
    role = svc.assume_role(call, p["RoleArn"], p["RoleSessionName"], p.get("DurationSeconds"))
    return {
        "Credentials": {
            "AccessKeyId": role.access_key_id,
            "SecretAccessKey": role.secret_access_key,
            "SessionToken": role.session_token,
            "Expiration": role.expiration,
        },
        "AssumedRoleUser": {"AssumedRoleId": role.assumed_role_id, "Arn": role.arn},
    }


OPERATIONS: dict[str, Handler] = {
    "GetCallerIdentity": get_caller_identity,
    "AssumeRole": assume_role,
}
READ_ONLY = frozenset({"GetCallerIdentity"})
