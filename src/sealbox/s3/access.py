"""Who may do what to a bucket or object: S3's actions, condition keys and bucket policies.

The decision is the IAM policy engine's (:mod:`sealbox.iam.policy.evaluate`) in its S3 mode
(``resource_policy_gates=False``):

* an explicit ``Deny`` in an identity policy or in the bucket policy wins;
* within the bucket owner's account, an identity policy ``Allow`` or a bucket policy ``Allow``
  naming the caller suffices (naming only the account delegates to IAM);
* across accounts both are needed: the bucket policy must name the caller or its account,
  and the caller's identity policies must allow the request;
* anonymous (unsigned) requests have no account and no identity policies: only a bucket
  policy ``Allow`` whose ``Principal`` is ``"*"`` grants them anything.

On top of that, as S3 does:

* Block Public Access ``RestrictPublicBuckets``: while the bucket policy is public
  (:func:`sealbox.s3.public.is_public_policy`), only principals of the bucket owner's account
  and AWS service principals may use the bucket; anonymous and cross-account requests are
  denied, even those a non-public statement would allow.
* ``BlockPublicPolicy``: :func:`check_put_policy` refuses to store a public bucket policy.
* The root user of the bucket owner's account may always run GetBucketPolicy,
  PutBucketPolicy and DeleteBucketPolicy, whatever the bucket policy says (the documented
  escape hatch against locking oneself out).

A denial is S3's bare ``AccessDenied`` / ``Access Denied``; the engine's reason goes to the
debug log only.  Bucket policies are compiled once per bucket and policy text, in a small
bounded cache, so a request costs the engine's evaluation and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from sealbox.call import Call
from sealbox.iam.authz import Authorizer, Subject
from sealbox.iam.model import Principal
from sealbox.iam.policy.evaluate import (
    AuthzPrincipal,
    AuthzRequest,
    CompiledPolicy,
    Decision,
    Result,
    compile_text,
    evaluate,
)
from sealbox.s3.errors import MethodNotAllowed, S3AccessDenied
from sealbox.s3.public import PublicAccessBlock, is_public_document

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "NO_FACTS",
    "OWNER_ACCOUNT_ONLY",
    "ROOT_ALWAYS_ALLOWED",
    "VERSIONED_ACTIONS",
    "BucketAccess",
    "Context",
    "S3AccessDenied",
    "S3RequestFacts",
    "bucket_arn",
    "check_put_policy",
    "copy_source_action",
    "is_anonymous",
    "object_arn",
    "request_context",
    "required_actions",
]

log = logging.getLogger("sealbox.s3.access")

Context = dict[str, str | Sequence[str]]

ACCESS_DENIED: Final = "Access Denied"
_METHOD_NOT_ALLOWED: Final = "The specified method is not allowed against this resource."

# --------------------------------------------------------------------------------------------
# Actions

#: Operation name → the IAM action S3 checks for it (the main one; see
#: :func:`required_actions` for the others some operations need).
ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # service
        "ListBuckets": "s3:ListAllMyBuckets",
        "CreateBucket": "s3:CreateBucket",
        # bucket
        "DeleteBucket": "s3:DeleteBucket",
        "HeadBucket": "s3:ListBucket",
        "GetBucketLocation": "s3:GetBucketLocation",
        "ListObjects": "s3:ListBucket",
        "ListObjectsV2": "s3:ListBucket",
        "ListObjectVersions": "s3:ListBucketVersions",
        "ListMultipartUploads": "s3:ListBucketMultipartUploads",
        "GetBucketPolicy": "s3:GetBucketPolicy",
        "PutBucketPolicy": "s3:PutBucketPolicy",
        "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
        "GetBucketEncryption": "s3:GetEncryptionConfiguration",
        "PutBucketEncryption": "s3:PutEncryptionConfiguration",
        "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
        "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
        "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
        "GetBucketTagging": "s3:GetBucketTagging",
        "PutBucketTagging": "s3:PutBucketTagging",
        "DeleteBucketTagging": "s3:PutBucketTagging",
        "GetBucketVersioning": "s3:GetBucketVersioning",
        "PutBucketVersioning": "s3:PutBucketVersioning",
        "GetBucketAcl": "s3:GetBucketAcl",
        "PutBucketAcl": "s3:PutBucketAcl",
        "GetBucketOwnershipControls": "s3:GetBucketOwnershipControls",
        "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
        "DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
        "GetBucketCors": "s3:GetBucketCORS",
        "PutBucketCors": "s3:PutBucketCORS",
        "DeleteBucketCors": "s3:PutBucketCORS",
        "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
        "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
        "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
        "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
        "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
        "GetBucketLogging": "s3:GetBucketLogging",
        "PutBucketLogging": "s3:PutBucketLogging",
        "GetBucketWebsite": "s3:GetBucketWebsite",
        "PutBucketWebsite": "s3:PutBucketWebsite",
        "DeleteBucketWebsite": "s3:DeleteBucketWebsite",
        "GetBucketRequestPayment": "s3:GetBucketRequestPayment",
        "PutBucketRequestPayment": "s3:PutBucketRequestPayment",
        "GetBucketAccelerateConfiguration": "s3:GetAccelerateConfiguration",
        "PutBucketAccelerateConfiguration": "s3:PutAccelerateConfiguration",
        "GetBucketReplication": "s3:GetReplicationConfiguration",
        "PutBucketReplication": "s3:PutReplicationConfiguration",
        "DeleteBucketReplication": "s3:PutReplicationConfiguration",
        "GetBucketAbac": "s3:GetBucketABAC",
        "PutBucketAbac": "s3:PutBucketABAC",
        # object
        "GetObject": "s3:GetObject",
        "HeadObject": "s3:GetObject",
        "SelectObjectContent": "s3:GetObject",
        "GetObjectAttributes": "s3:GetObjectAttributes",
        "PutObject": "s3:PutObject",
        "CopyObject": "s3:PutObject",  # on the destination; copy_source_action on the source
        "UpdateObjectEncryption": "s3:UpdateObjectEncryption",
        "DeleteObject": "s3:DeleteObject",
        "DeleteObjects": "s3:DeleteObject",  # per key
        "RestoreObject": "s3:RestoreObject",
        "GetObjectTagging": "s3:GetObjectTagging",
        "PutObjectTagging": "s3:PutObjectTagging",
        "DeleteObjectTagging": "s3:DeleteObjectTagging",
        "GetObjectAcl": "s3:GetObjectAcl",
        "PutObjectAcl": "s3:PutObjectAcl",
        "GetObjectRetention": "s3:GetObjectRetention",
        "PutObjectRetention": "s3:PutObjectRetention",
        "GetObjectLegalHold": "s3:GetObjectLegalHold",
        "PutObjectLegalHold": "s3:PutObjectLegalHold",
        "GetObjectTorrent": "s3:GetObjectTorrent",
        "CreateMultipartUpload": "s3:PutObject",
        "UploadPart": "s3:PutObject",
        "UploadPartCopy": "s3:PutObject",  # on the destination; copy_source_action on the source
        "CompleteMultipartUpload": "s3:PutObject",
        "AbortMultipartUpload": "s3:AbortMultipartUpload",
        "ListParts": "s3:ListMultipartUploadParts",
    }
)

#: Actions replaced by their version-specific action when the request names a ``versionId``.
VERSIONED_ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "s3:GetObject": "s3:GetObjectVersion",
        "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
        "s3:DeleteObject": "s3:DeleteObjectVersion",
        "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
        "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
        "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
        "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
        "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
        "s3:GetObjectTorrent": "s3:GetObjectVersionTorrent",
    }
)

# Operations that need more than their main action (API reference, "Permissions").
_EXTRA_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "GetObjectAttributes": ("s3:GetObject",),
        "UpdateObjectEncryption": ("s3:PutObject",),
    }
)
# Writes whose x-amz-acl / x-amz-tagging headers need s3:PutObjectAcl / s3:PutObjectTagging.
_OBJECT_WRITES: Final = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})

#: Actions the bucket owner's root user may always perform (S3's lockout escape hatch).
ROOT_ALWAYS_ALLOWED: Final = frozenset(
    {"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"}
)
#: Actions only principals of the bucket owner's account may perform: others who are
#: allowed get 405 MethodNotAllowed.
OWNER_ACCOUNT_ONLY: Final = ROOT_ALWAYS_ALLOWED


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def copy_source_action(version_id: str | None = None) -> str:
    """What CopyObject and UploadPartCopy need on the source object."""
    return "s3:GetObject" if version_id is None else "s3:GetObjectVersion"


# --------------------------------------------------------------------------------------------
# Condition keys


@dataclass(frozen=True, slots=True)
class S3RequestFacts:
    """What a request says that S3 condition keys expose; ``None`` means not in the request.

    Values are as the request carried them (headers, query parameters), except:
    ``sse_kms_key_id`` should be the key's ARN (S3 compares the ARN); ``version_id`` is the
    ``versionId`` of the object addressed; ``existing_object_tags`` are the tags of the object
    acted on (for operations on an existing object); ``request_object_tags`` the tags the
    request sets (``x-amz-tagging`` or a PutObjectTagging body); ``resource_tags`` the
    bucket's tags when attribute-based access control is enabled on it.
    """

    sse: str | None = None
    sse_kms_key_id: str | None = None
    sse_customer_algorithm: str | None = None
    prefix: str | None = None
    delimiter: str | None = None
    max_keys: str | None = None
    version_id: str | None = None
    existing_object_tags: Mapping[str, str] | None = None
    request_object_tags: Mapping[str, str] | None = None
    auth_type: str | None = None  # REST-HEADER | REST-QUERY-STRING | POST
    signature_version: str | None = None  # AWS4-HMAC-SHA256 (or AWS for SigV2)
    signature_age: str | None = None  # milliseconds
    content_sha256: str | None = None  # x-amz-content-sha256
    tls_version: str | None = None  # "1.2", "1.3"
    acl: str | None = None  # x-amz-acl
    copy_source: str | None = None  # x-amz-copy-source: "bucket/key"
    metadata_directive: str | None = None  # COPY | REPLACE
    storage_class: str | None = None
    location_constraint: str | None = None  # CreateBucket
    if_match: str | None = None
    if_none_match: str | None = None
    object_lock_mode: str | None = None
    object_lock_retain_until_date: str | None = None
    object_lock_legal_hold: str | None = None
    resource_tags: Mapping[str, str] | None = None


NO_FACTS: Final = S3RequestFacts()

_SCALAR_KEYS: Final = (
    ("sse", "s3:x-amz-server-side-encryption"),
    ("sse_kms_key_id", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
    ("sse_customer_algorithm", "s3:x-amz-server-side-encryption-customer-algorithm"),
    ("prefix", "s3:prefix"),
    ("delimiter", "s3:delimiter"),
    ("max_keys", "s3:max-keys"),
    ("version_id", "s3:VersionId"),
    ("auth_type", "s3:authType"),
    ("signature_version", "s3:signatureversion"),
    ("signature_age", "s3:signatureAge"),
    ("content_sha256", "s3:x-amz-content-sha256"),
    ("tls_version", "s3:TlsVersion"),
    ("acl", "s3:x-amz-acl"),
    ("copy_source", "s3:x-amz-copy-source"),
    ("metadata_directive", "s3:x-amz-metadata-directive"),
    ("storage_class", "s3:x-amz-storage-class"),
    ("location_constraint", "s3:LocationConstraint"),
    ("if_match", "s3:if-match"),
    ("if_none_match", "s3:if-none-match"),
    ("object_lock_mode", "s3:object-lock-mode"),
    ("object_lock_retain_until_date", "s3:object-lock-retain-until-date"),
    ("object_lock_legal_hold", "s3:object-lock-legal-hold"),
)


def request_context(facts: S3RequestFacts, *, owner_account: str | None = None) -> Context:
    """S3's condition keys for a request.  Keys the request does not carry are absent (so that
    ``Null`` conditions and the ``...IfExists`` operators behave as on AWS); the global keys
    (``aws:SecureTransport``, ``aws:SourceIp``, ...) come from :meth:`Authorizer.context`."""
    ctx: Context = {}
    for attr, key in _SCALAR_KEYS:
        value = getattr(facts, attr)
        if value is not None:
            ctx[key] = value
    if facts.existing_object_tags:
        for tag_key, tag_value in facts.existing_object_tags.items():
            ctx[f"s3:ExistingObjectTag/{tag_key}"] = tag_value
    if facts.request_object_tags is not None:
        for tag_key, tag_value in facts.request_object_tags.items():
            ctx[f"s3:RequestObjectTag/{tag_key}"] = tag_value
        ctx["s3:RequestObjectTagKeys"] = list(facts.request_object_tags)
    if facts.resource_tags:
        for tag_key, tag_value in facts.resource_tags.items():
            ctx[f"aws:ResourceTag/{tag_key}"] = tag_value
    if owner_account:
        ctx["s3:ResourceAccount"] = owner_account
        ctx["aws:ResourceAccount"] = owner_account
    return ctx


def required_actions(operation: str, facts: S3RequestFacts = NO_FACTS) -> tuple[str, ...]:
    """Every action an operation needs on its resource (all must be allowed).

    ``operation`` is an S3 operation name (``GetObject``) or already an action
    (``s3:GetObject``, returned as is).  A ``versionId`` switches object actions to their
    version-specific form; a write carrying ``x-amz-acl`` also needs ``s3:PutObjectAcl`` and
    one carrying tags ``s3:PutObjectTagging``.
    """
    if ":" in operation:
        return (operation,)
    try:
        main = ACTIONS[operation]
    except KeyError:
        raise ValueError(f"unknown S3 operation {operation!r}") from None
    actions = [main, *_EXTRA_ACTIONS.get(operation, ())]
    if operation in _OBJECT_WRITES:
        if facts.acl is not None:
            actions.append("s3:PutObjectAcl")
        if facts.request_object_tags:
            actions.append("s3:PutObjectTagging")
    if facts.version_id is not None:
        actions = [VERSIONED_ACTIONS.get(action, action) for action in actions]
    return tuple(actions)


# --------------------------------------------------------------------------------------------
# Principals

#: The caller of an unsigned request.
ANONYMOUS: Final = Principal(
    account_id="", arn="*", principal_type="Anonymous", principal_id="anonymous"
)
_ANONYMOUS_SUBJECT: Final = Subject(
    AuthzPrincipal(arn="*", account_id="", principal_type="Anonymous", user_id="anonymous"), ()
)


def is_anonymous(principal: Principal) -> bool:
    return principal.principal_type == "Anonymous"


# --------------------------------------------------------------------------------------------
# Bucket policies and Block Public Access


def check_put_policy(
    block: PublicAccessBlock,
    text: str,
    *,
    principal_arn: str | None = None,
    bucket: str | None = None,
) -> None:
    """Refuse a public bucket policy while ``BlockPublicPolicy`` is on (the policy must
    already be valid).  With the caller and bucket, the message is S3's detailed one."""
    if not block.block_public_policy:
        return
    compiled = compile_text(text, "resource")
    if not is_public_document(compiled.document):
        return
    if principal_arn and bucket:
        raise S3AccessDenied(
            f"User: {principal_arn} is not authorized to perform: s3:PutBucketPolicy on "
            f'resource: "{bucket_arn(bucket)}" because public policies are blocked by the '
            "BlockPublicPolicy block public access setting."
        )
    raise S3AccessDenied(ACCESS_DENIED)


@dataclass(frozen=True, slots=True)
class _BucketPolicy:
    text: str
    compiled: CompiledPolicy
    public: bool


class BucketAccess:
    """S3 authorization over an :class:`Authorizer` (identities) and bucket policies."""

    def __init__(self, authorizer: Authorizer, *, cache_size: int = 1024) -> None:
        self._authz = authorizer
        self._cache_size = max(1, cache_size)
        self._policies: dict[str, _BucketPolicy] = {}
        self._lock = threading.Lock()

    # -- bucket policies ----------------------------------------------------------------------

    def _bucket_policy(self, bucket: str, text: str | None) -> _BucketPolicy | None:
        if not text:
            return None
        cached = self._policies.get(bucket)
        if cached is not None and (cached.text is text or cached.text == text):
            return cached
        compiled = compile_text(text, "resource")
        entry = _BucketPolicy(text, compiled, is_public_document(compiled.document))
        with self._lock:
            self._policies.pop(bucket, None)
            while len(self._policies) >= self._cache_size:
                self._policies.pop(next(iter(self._policies)))  # the oldest entry
            self._policies[bucket] = entry
        return entry

    def forget(self, bucket: str) -> None:
        """Drop a bucket's cached policy (on DeleteBucket; updates are noticed anyway)."""
        with self._lock:
            self._policies.pop(bucket, None)

    def policy_is_public(self, bucket: str, policy: str | None) -> bool:
        """GetBucketPolicyStatus's IsPublic."""
        entry = self._bucket_policy(bucket, policy)
        return entry is not None and entry.public

    # -- the decision -------------------------------------------------------------------------

    def _subject(self, principal: Principal) -> Subject:
        if is_anonymous(principal):
            return _ANONYMOUS_SUBJECT
        return self._authz.subject(principal)

    def decide(
        self,
        call: Call,
        operation_or_action: str,
        *,
        bucket: str,
        key: str | None,
        owner_account: str,
        policy: str | None,
        block: PublicAccessBlock,
        facts: S3RequestFacts = NO_FACTS,
    ) -> Result:
        """The engine's verdict on every action the request needs (the first denial, or the
        last allow).  ``key`` is ``None`` for bucket operations (the resource is the bucket)."""
        actions = required_actions(operation_or_action, facts)
        resource = bucket_arn(bucket) if key is None else object_arn(bucket, key)
        subject = self._subject(call.principal)
        ctx = self._authz.context(call, subject)
        ctx.update(request_context(facts, owner_account=owner_account))
        entry = self._bucket_policy(bucket, policy)
        result = Result(Decision.IMPLICIT_DENY, "no action")
        for action in actions:
            result = self._decide_one(subject, action, resource, owner_account, entry, block, ctx)
            if not result.allowed:
                break
        return result

    def _decide_one(
        self,
        subject: Subject,
        action: str,
        resource: str,
        owner_account: str,
        entry: _BucketPolicy | None,
        block: PublicAccessBlock,
        ctx: Context,
    ) -> Result:
        p = subject.principal
        in_owner_account = not p.is_anonymous and p.account_id == owner_account
        if p.is_root and in_owner_account and action in ROOT_ALWAYS_ALLOWED:
            return Result(Decision.ALLOW, "the bucket owner's root user (lockout escape hatch)")
        if (
            entry is not None
            and entry.public
            and block.restrict_public_buckets
            and not in_owner_account
            and not p.is_service
        ):
            return Result(
                Decision.IMPLICIT_DENY,
                "RestrictPublicBuckets: the bucket policy is public, so only the bucket owner's "
                "account and AWS services may use the bucket",
            )
        return evaluate(
            p,
            AuthzRequest(action, resource, owner_account, ctx),
            identity_policies=subject.identity_policies,
            resource_policy=None if entry is None else entry.compiled,
            resource_policy_gates=False,
        )

    def allows(
        self,
        call: Call,
        operation_or_action: str,
        *,
        bucket: str,
        key: str | None,
        owner_account: str,
        policy: str | None,
        block: PublicAccessBlock,
        facts: S3RequestFacts = NO_FACTS,
    ) -> bool:
        """Whether :meth:`check` would pass its policy evaluation (DeleteObjects asks this per
        key and reports AccessDenied per key)."""
        return self.decide(
            call,
            operation_or_action,
            bucket=bucket,
            key=key,
            owner_account=owner_account,
            policy=policy,
            block=block,
            facts=facts,
        ).allowed

    def check(
        self,
        call: Call,
        operation_or_action: str,
        *,
        bucket: str,
        key: str | None,
        owner_account: str,
        policy: str | None,
        block: PublicAccessBlock,
        facts: S3RequestFacts = NO_FACTS,
    ) -> None:
        """Raise :class:`S3AccessDenied` unless the caller may run the operation; raise
        :class:`MethodNotAllowed` for an allowed caller outside the bucket owner's account
        asking for the bucket policy itself."""
        result = self.decide(
            call,
            operation_or_action,
            bucket=bucket,
            key=key,
            owner_account=owner_account,
            policy=policy,
            block=block,
            facts=facts,
        )
        if not result.allowed:
            log.debug(
                "S3 access denied: %s %s on %s/%s: %s",
                call.principal.arn,
                operation_or_action,
                bucket,
                key or "",
                result.reason,
            )
            raise S3AccessDenied(ACCESS_DENIED)
        principal = call.principal
        if (
            principal.account_id != owner_account
            and principal.principal_type != "AWSService"
            and any(a in OWNER_ACCOUNT_ONLY for a in required_actions(operation_or_action, facts))
        ):
            raise MethodNotAllowed(_METHOD_NOT_ALLOWED)

    def check_account(
        self,
        call: Call,
        operation_or_action: str,
        *,
        bucket: str | None = None,
        facts: S3RequestFacts = NO_FACTS,
    ) -> None:
        """Operations no bucket policy governs: ListBuckets (resource ``*``) and CreateBucket
        (the new bucket, in the caller's account).  Anonymous callers are always denied."""
        principal = call.principal
        if is_anonymous(principal):
            raise S3AccessDenied(ACCESS_DENIED)
        subject = self._authz.subject(principal)
        ctx = self._authz.context(call, subject)
        ctx.update(request_context(facts))
        resource = "*" if bucket is None else bucket_arn(bucket)
        for action in required_actions(operation_or_action, facts):
            result = evaluate(
                subject.principal,
                AuthzRequest(action, resource, principal.account_id, ctx),
                identity_policies=subject.identity_policies,
            )
            if not result.allowed:
                log.debug(
                    "S3 access denied: %s %s: %s", principal.arn, operation_or_action, result.reason
                )
                raise S3AccessDenied(ACCESS_DENIED)
