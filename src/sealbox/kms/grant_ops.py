"""Grant operations: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

A grant change bumps its key's row_version (through update_key), so every worker's
cached view of the key — which carries the grants — is refreshed on its next use.
Grant tokens are stored only as SHA-256 digests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.errors import ValidationError
from sealbox.kms.access import Context, grantee_arns
from sealbox.kms.errors import (
    AccessDeniedError,
    DryRunOperationError,
    InvalidGrantTokenError,
    LimitExceededError,
    NotFoundError,
)
from sealbox.kms.grants import CONTEXT_OPERATIONS, GRANT_OPERATIONS, Grant
from sealbox.kms.model import Key
from sealbox.kms.service import DRY_RUN_MESSAGE, KmsService, decode_marker, encode_marker
from sealbox.storage import kms_repo
from sealbox.storage.db import Database

MAX_GRANTS_PER_KEY = 50_000


@dataclass(frozen=True, slots=True)
class CreatedGrant:
    grant_id: str
    grant_token: str


@dataclass(frozen=True, slots=True)
class GrantListing:
    key_arn: str | None
    grants: list[tuple[str, Grant]]  # (key ARN, grant)
    next_marker: str | None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class GrantService:
    def __init__(self, kms: KmsService, db: Database, clock: Clock) -> None:
        self._kms = kms
        self._db = db
        self._clock = clock

    def create_grant(
        self,
        call: Call,
        key_id: str,
        grantee: str,
        operations: list[str],
        retiring: str | None = None,
        context_equals: Mapping[str, str] | None = None,
        context_subset: Mapping[str, str] | None = None,
        name: str | None = None,
        dry_run: bool = False,
    ) -> CreatedGrant:
        ops = tuple(dict.fromkeys(operations))
        unknown = [op for op in ops if op not in GRANT_OPERATIONS]
        if unknown or not ops:
            raise ValidationError(f"Grant operations {unknown or ops} are not valid.")
        if (context_equals is not None or context_subset is not None) and any(
            op not in CONTEXT_OPERATIONS for op in ops
        ):
            raise ValidationError(
                "Encryption context grant constraints are allowed only with operations "
                "that accept an encryption context."
            )
        constraint = (
            "EncryptionContextEquals"
            if context_equals is not None
            else "EncryptionContextSubset"
            if context_subset is not None
            else None
        )
        ctx: Context = {
            "kms:GrantOperations": list(ops),
            "kms:GranteePrincipal": grantee,
            "kms:GrantIsForAWSResource": "true" if call.invoked_by else "false",
        }
        if retiring:
            ctx["kms:RetiringPrincipal"] = retiring
        if constraint:
            ctx["kms:GrantConstraintType"] = constraint
        token = base64.urlsafe_b64encode(crypto.random_bytes(96)).decode().rstrip("=")

        def work(conn: Connection) -> CreatedGrant:
            key = self._kms.keyring.load(conn, call, key_id)
            view = self._kms.keyring.load_view(conn, key)
            self._kms.access.check(
                call,
                "CreateGrant",
                view,
                encryption_context=context_equals or context_subset,
                context=ctx,
            )
            self._kms._require_not_pending_deletion(key)
            if dry_run:
                raise DryRunOperationError(DRY_RUN_MESSAGE)
            if name is not None:
                for existing in view.grants:
                    if (
                        existing.name == name
                        and existing.grantee == grantee
                        and existing.retiring == retiring
                        and set(existing.operations) == set(ops)
                        and existing.context_equals == context_equals
                        and existing.context_subset == context_subset
                    ):
                        return CreatedGrant(existing.grant_id, token)  # idempotent retry
            if len(view.grants) >= MAX_GRANTS_PER_KEY:
                raise LimitExceededError("The key has too many grants.")
            grant = Grant(
                grant_id=crypto.random_bytes(32).hex(),
                key_id=key.key_id,
                name=name,
                grantee=grantee,
                retiring=retiring,
                issuing_account=arns.account_root_arn(call.principal.account_id),
                operations=ops,
                context_equals=dict(context_equals) if context_equals is not None else None,
                context_subset=dict(context_subset) if context_subset is not None else None,
                created_at=self._clock.now(),
                token_digest=_digest(token),
            )
            kms_repo.insert_grant(conn, key.account_id, key.region, grant)
            kms_repo.update_key(conn, key)
            self._kms.record(conn, call)
            return CreatedGrant(grant.grant_id, token)

        result = self._db.write(work)
        return result

    def list_grants(
        self,
        call: Call,
        key_id: str,
        limit: int | None,
        marker: str | None,
        grant_id: str | None = None,
        grantee: str | None = None,
    ) -> GrantListing:
        view = self._kms.keyring.view(call, key_id)
        self._kms.access.check(call, "ListGrants", view)
        grants = [
            g
            for g in view.grants
            if (grant_id is None or g.grant_id == grant_id)
            and (grantee is None or g.grantee == grantee)
        ]
        return self._page(view.key.arn, [(view.key.arn, g) for g in grants], limit, marker)

    def list_retirable_grants(
        self, call: Call, retiring: str, limit: int | None, marker: str | None
    ) -> GrantListing:
        self._kms.access.check_account(call, "ListRetirableGrants")
        with self._db.read() as conn:
            grants = kms_repo.grants_by_retiring_principal(conn, call.region, retiring)
        pairs = [
            (arns.key_arn(call.region, g.issuing_account.split(":")[4], g.key_id), g)
            for g in grants
        ]
        return self._page(None, pairs, limit, marker)

    @staticmethod
    def _page(
        key_arn: str | None, pairs: list[tuple[str, Grant]], limit: int | None, marker: str | None
    ) -> GrantListing:
        limit = limit or 50
        after = decode_marker(marker)
        if after is not None:
            ids = [g.grant_id for _, g in pairs]
            pairs = pairs[ids.index(after) + 1 :] if after in ids else []
        more = len(pairs) > limit
        pairs = pairs[:limit]
        return GrantListing(key_arn, pairs, encode_marker(pairs[-1][1].grant_id) if more else None)

    def retire_grant(
        self,
        call: Call,
        grant_token: str | None,
        key_id: str | None,
        grant_id: str | None,
        dry_run: bool = False,
    ) -> None:
        def work(conn: Connection) -> None:
            key, grant = self._find(conn, call, grant_token, key_id, grant_id)
            names = grantee_arns(call)
            key_root = arns.account_root_arn(key.account_id)
            may_retire = (
                (grant.retiring is not None and grant.retiring in names)
                or (grant.grantee in names and "RetireGrant" in grant.operations)
                or call.principal.arn == key_root
            )
            if not may_retire:
                raise AccessDeniedError(
                    f"User: {call.principal.arn} is not authorized to perform: "
                    f"kms:RetireGrant on resource: {key.arn}"
                )
            if dry_run:
                raise DryRunOperationError(DRY_RUN_MESSAGE)
            self._delete(conn, call, key, grant)

        self._db.write(work)

    def revoke_grant(self, call: Call, key_id: str, grant_id: str, dry_run: bool = False) -> None:
        def work(conn: Connection) -> None:
            key = self._kms.keyring.load(conn, call, key_id)
            view = self._kms.keyring.load_view(conn, key)
            self._kms.access.check(call, "RevokeGrant", view)
            grant = next((g for g in view.grants if g.grant_id == grant_id), None)
            if grant is None:
                raise NotFoundError(f"Grant ID {grant_id} not found")
            if dry_run:
                raise DryRunOperationError(DRY_RUN_MESSAGE)
            self._delete(conn, call, key, grant)

        self._db.write(work)

    def _find(
        self,
        conn: Connection,
        call: Call,
        token: str | None,
        key_id: str | None,
        grant_id: str | None,
    ) -> tuple[Key, Grant]:
        if token is not None:
            found = kms_repo.grant_by_token(conn, _digest(token))
            if found is None:
                raise InvalidGrantTokenError("The grant token is not valid.")
            account, region, grant = found
            key = kms_repo.get_key(conn, account, region, grant.key_id)
            if key is None:
                raise NotFoundError("The grant's key does not exist.")
            return key, grant
        if key_id is None or grant_id is None:
            raise ValidationError("Specify GrantToken, or both KeyId and GrantId.")
        key = self._kms.keyring.load(conn, call, key_id)
        grants = kms_repo.grants_for_key(conn, key.account_id, key.region, key.key_id)
        match = next((g for g in grants if g.grant_id == grant_id), None)
        if match is None:
            raise NotFoundError(f"Grant ID {grant_id} not found")
        return key, match

    def _delete(self, conn: Connection, call: Call, key: Key, grant: Grant) -> None:
        kms_repo.delete_grant(conn, key.account_id, key.region, key.key_id, grant.grant_id)
        kms_repo.update_key(conn, key)
        if key.arn not in call.resources:
            call.resources.append(key.arn)
        self._kms.record(conn, call)
        self._kms.keyring.forget(key)
