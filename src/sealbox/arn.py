"""ARNs, key ids and alias names: the only place ARN strings are built and parsed."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

PARTITION = "aws"

_KEY_ID = re.compile(
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


@dataclass(frozen=True, slots=True)
class Arn:
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{PARTITION}:{self.service}:{self.region}:{self.account}:{self.resource}"


def parse_arn(text: str) -> Arn | None:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1].startswith("aws"):
        return None
    return Arn(parts[2], parts[3], parts[4], parts[5])


def new_key_id(multi_region: bool = False) -> str:
    return f"mrk-{uuid.uuid4().hex}" if multi_region else str(uuid.uuid4())


def is_key_id(text: str) -> bool:
    return _KEY_ID.fullmatch(text) is not None


def key_arn(region: str, account: str, key_id: str) -> str:
    return str(Arn("kms", region, account, f"key/{key_id}"))


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return str(Arn("kms", region, account, alias_name))


def iam_arn(account: str, resource: str) -> str:
    return str(Arn("iam", "", account, resource))


def account_root_arn(account: str) -> str:
    return iam_arn(account, "root")


def sts_session_arn(account: str, role_name: str, session_name: str) -> str:
    return str(Arn("sts", "", account, f"assumed-role/{role_name}/{session_name}"))
