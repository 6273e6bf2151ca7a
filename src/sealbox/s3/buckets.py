"""BucketService: S3's bucket-level operations, one method per operation.

Each method takes the operation's input members under botocore's names and returns its
output members under botocore's names; the REST-XML codec turns those into headers and
XML.  Every rule S3 applies to a bucket's configuration -- names, regions, tags, bucket
policies, default encryption, Block Public Access, versioning, ACLs -- is decided here.

New buckets get AWS's current defaults: SSE-S3 default encryption with SSE-C blocked
(since April 2026), all four Block Public Access settings on, ObjectOwnership
BucketOwnerEnforced (ACLs disabled) and versioning never configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sealbox.call import Call
from sealbox.iam.policy.document import PolicyDocument, PolicyDocumentError, parse_policy
from sealbox.s3.access import S3RequestFacts, bucket_arn, check_put_policy
from sealbox.s3.base import S3Base, block_of
from sealbox.s3.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    InvalidTag,
    MalformedPolicy,
    MalformedXML,
    NoSuchBucketPolicy,
    NoSuchPublicAccessBlockConfiguration,
    NoSuchTagSet,
    S3AccessDenied,
    S3Error,
)
from sealbox.s3.model import SSE_C, SSE_KMS, SSE_S3, Bucket, EncryptionRule
from sealbox.storage import s3_repo

__all__ = [
    "DEFAULT_ENCRYPTION",
    "DEFAULT_PUBLIC_ACCESS_BLOCK",
    "AccessControlListNotSupported",
    "BucketService",
    "IllegalLocationConstraintException",
    "InvalidBucketAclWithObjectOwnership",
    "InvalidLocationConstraint",
    "S3NotImplemented",
    "canonical_user_id",
    "check_bucket_name",
    "validate_tag_set",
]

# -- errors S3 has that errors.py does not ---------------------------------------------------


class IllegalLocationConstraintException(S3Error):
    code = "IllegalLocationConstraintException"


class InvalidLocationConstraint(S3Error):
    code = "InvalidLocationConstraint"


class NoSuchLifecycleConfiguration(S3Error):
    code = "NoSuchLifecycleConfiguration"
    http_status = 404


class AccessControlListNotSupported(S3Error):
    code = "AccessControlListNotSupported"


class InvalidBucketAclWithObjectOwnership(S3Error):
    code = "InvalidBucketAclWithObjectOwnership"


class S3NotImplemented(S3Error):
    """A request asks for functionality Sealbox does not implement (S3's own code)."""

    code = "NotImplemented"
    http_status = 501


# -- defaults and limits -------------------------------------------------------------------

US_EAST_1: Final = "us-east-1"
#: SSE-S3 with SSE-C writes blocked: every new bucket's default encryption (and what
#: DeleteBucketEncryption returns a bucket to).
DEFAULT_ENCRYPTION: Final = EncryptionRule(SSE_S3, None, False, (SSE_C,))
#: The four Block Public Access settings, all on: every new bucket's configuration.
DEFAULT_PUBLIC_ACCESS_BLOCK: Final[Mapping[str, bool]] = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_PAB_FIELDS: Final = tuple(DEFAULT_PUBLIC_ACCESS_BLOCK)

MAX_BUCKET_TAGS: Final = 50
MAX_TAG_KEY: Final = 128
MAX_TAG_VALUE: Final = 256
MAX_POLICY_SIZE: Final = 20 * 1024  # bucket policies are limited to 20 KB
MAX_LIST_BUCKETS: Final = 10_000
BUCKET_OWNER_ENFORCED: Final = "BucketOwnerEnforced"

_BUCKET_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP_LIKE_RE: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_REGION_RE: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_TAG_PUNCTUATION: Final = frozenset("_.:/=+-@")
_ALGORITHMS: Final = frozenset({SSE_S3, SSE_KMS, "aws:kms:dsse", "aws:fsx"})
_ENCRYPTION_TYPES: Final = frozenset({"NONE", SSE_C})
_VERSIONING: Final = frozenset({"Enabled", "Suspended"})
_OWNER_ONLY_CANNED_ACLS: Final = frozenset({"private", "bucket-owner-full-control"})
_GRANT_HEADERS: Final = (
    "GrantFullControl",
    "GrantRead",
    "GrantReadACP",
    "GrantWrite",
    "GrantWriteACP",
)
_GRANT_ID_RE: Final = re.compile(r'\s*id\s*=\s*"?([^",\s]+)"?\s*', re.IGNORECASE)

_NOT_VALID_BUCKET: Final = "The specified bucket is not valid."
_ACLS_NOT_SUPPORTED: Final = "The bucket does not allow ACLs"
_UNSUPPORTED_HEADER: Final = "A header you provided implies functionality that is not implemented"
_MALFORMED_XML: Final = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


# -- pure helpers ------------------------------------------------------------------------------


def _malformed() -> MalformedXML:
    return MalformedXML(_MALFORMED_XML)


def canonical_user_id(account_id: str) -> str:
    """The account's S3 canonical user ID: 64 hex digits, stable for the account."""
    return hashlib.sha256(f"sealbox/s3/canonical-user/{account_id}".encode()).hexdigest()


def check_bucket_name(name: object) -> str:
    """Raise InvalidBucketName unless ``name`` follows S3's general purpose bucket rules."""
    if not isinstance(name, str):
        raise InvalidBucketName(_NOT_VALID_BUCKET)
    valid = (
        3 <= len(name) <= 63
        and _BUCKET_NAME_RE.fullmatch(name) is not None
        and ".." not in name
        and _IP_LIKE_RE.fullmatch(name) is None
        and not name.startswith(_RESERVED_PREFIXES)
        and not name.endswith(_RESERVED_SUFFIXES)
    )
    if not valid:
        raise InvalidBucketName(_NOT_VALID_BUCKET, BucketName=name)
    return name


def _tag_text_ok(text: str) -> bool:
    return all(c in _TAG_PUNCTUATION or unicodedata.category(c)[0] in ("L", "N", "Z") for c in text)


def validate_tag_set(tag_set: object) -> dict[str, str]:
    """A TagSet ([{"Key", "Value"}, ...]) checked as S3 checks bucket tags."""
    if tag_set is None:
        tag_set = []
    if not isinstance(tag_set, list):
        raise _malformed()
    if len(tag_set) > MAX_BUCKET_TAGS:
        raise InvalidTag(f"Bucket tag count cannot be greater than {MAX_BUCKET_TAGS}")
    tags: dict[str, str] = {}
    for item in tag_set:
        if not isinstance(item, Mapping):
            raise _malformed()
        key = item.get("Key")
        value = item.get("Value")
        value = "" if value is None else value
        if not isinstance(key, str) or not isinstance(value, str):
            raise _malformed()
        if not 1 <= len(key) <= MAX_TAG_KEY or not _tag_text_ok(key):
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if len(value) > MAX_TAG_VALUE or not _tag_text_ok(value):
            raise InvalidTag(
                "The TagValue you have provided is invalid", TagKey=key, TagValue=value
            )
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    return tags


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a request body for the audit record."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _region_for(constraint: object, request_region: str) -> str:
    """The region a CreateBucket request creates its bucket in (S3's rules)."""
    if constraint is None or constraint == "":
        return request_region
    if not isinstance(constraint, str):
        raise _malformed()
    if constraint == US_EAST_1:
        # us-east-1 is the "unspecified" location: naming it explicitly is refused.
        raise InvalidLocationConstraint("The specified location-constraint is not valid")
    region = "eu-west-1" if constraint == "EU" else constraint
    if _REGION_RE.fullmatch(region) is None:
        raise InvalidLocationConstraint(
            "The specified location-constraint is not valid", LocationConstraint=constraint
        )
    if region != request_region:
        raise IllegalLocationConstraintException(
            f"The {constraint} location constraint is incompatible for the region specific "
            "endpoint this request was sent to."
        )
    return region


def _location(bucket: str, region: str) -> str:
    """CreateBucket's Location: "/bucket" in us-east-1, the bucket's URL elsewhere."""
    if region == US_EAST_1:
        return f"/{bucket}"
    return f"http://{bucket}.s3.amazonaws.com/"


def _location_constraint(region: str) -> str | None:
    return None if region == US_EAST_1 else region


def _check_policy_scope(document: PolicyDocument, bucket: str) -> None:
    """A bucket policy may only name this bucket and its objects, and S3 actions."""
    arn = bucket_arn(bucket)
    for statement in document.statements:
        for resource in (statement.resource or ()) + (statement.not_resource or ()):
            if resource != arn and not resource.startswith(arn + "/"):
                raise MalformedPolicy("Policy has invalid resource")
        for action in (statement.action or ()) + (statement.not_action or ()):
            if action != "*" and action.partition(":")[0].lower() != "s3":
                raise MalformedPolicy("Policy has invalid action")


def _encryption_rule(config: object, current: EncryptionRule | None) -> EncryptionRule:
    """A ServerSideEncryptionConfiguration as S3 validates it.  A rule without
    BlockedEncryptionTypes keeps the bucket's current blocked types."""
    if not isinstance(config, Mapping):
        raise _malformed()
    rules = config.get("Rules")
    if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], Mapping):
        raise _malformed()
    rule: Mapping[str, Any] = rules[0]
    algorithm = SSE_S3
    key_id: str | None = None
    default = rule.get("ApplyServerSideEncryptionByDefault")
    if default is not None:
        if not isinstance(default, Mapping):
            raise _malformed()
        requested = default.get("SSEAlgorithm")
        if requested not in _ALGORITHMS:
            raise _malformed()
        algorithm = str(requested)
        if algorithm == "aws:fsx":
            raise InvalidArgument(
                "The aws:fsx server-side encryption algorithm is only available to buckets "
                "attached to an FSx file system.",
                ArgumentName="SSEAlgorithm",
                ArgumentValue=algorithm,
            )
        key_id = default.get("KMSMasterKeyID")
        if key_id is not None:
            if algorithm == SSE_S3:
                raise InvalidArgument(
                    "a KMSMasterKeyID is not applicable if the default sse algorithm is not "
                    "aws:kms or aws:kms:dsse",
                    ArgumentName="ApplyServerSideEncryptionByDefault",
                )
            if not isinstance(key_id, str) or not key_id.strip():
                raise InvalidArgument(
                    "The KMSMasterKeyID must not be empty.", ArgumentName="KMSMasterKeyID"
                )
        if algorithm == "aws:kms:dsse":
            # One layer at rest here, as for objects (see encryption.sse_request_from).
            algorithm = SSE_KMS
    bucket_key = rule.get("BucketKeyEnabled", False)
    if not isinstance(bucket_key, bool):
        raise _malformed()
    return EncryptionRule(algorithm, key_id, bucket_key, _blocked_types(rule, current))


def _blocked_types(rule: Mapping[str, Any], current: EncryptionRule | None) -> tuple[str, ...]:
    blocked = rule.get("BlockedEncryptionTypes")
    if blocked is None:
        return () if current is None else current.blocked_types
    if not isinstance(blocked, Mapping):
        raise _malformed()
    raw = blocked.get("EncryptionType") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise _malformed()
    types: list[str] = []
    for value in raw:
        if value not in _ENCRYPTION_TYPES:
            raise _malformed()
        if value not in types:
            types.append(value)
    if "NONE" in types and len(types) > 1:
        raise InvalidArgument(
            "The encryption type NONE cannot be combined with other encryption types.",
            ArgumentName="BlockedEncryptionTypes",
        )
    return tuple(types)


def _encryption_config(rule: EncryptionRule) -> dict[str, Any]:
    by_default: dict[str, Any] = {"SSEAlgorithm": rule.algorithm}
    if rule.kms_key_id is not None:
        by_default["KMSMasterKeyID"] = rule.kms_key_id
    out: dict[str, Any] = {
        "ApplyServerSideEncryptionByDefault": by_default,
        "BucketKeyEnabled": rule.bucket_key_enabled,
    }
    if rule.blocked_types:
        out["BlockedEncryptionTypes"] = {"EncryptionType": list(rule.blocked_types)}
    return {"Rules": [out]}


def _public_access_block(config: object) -> dict[str, bool]:
    if not isinstance(config, Mapping):
        raise _malformed()
    flags: dict[str, bool] = {}
    for name in _PAB_FIELDS:
        value = config.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise _malformed()
        flags[name] = value
    return flags


def _owner_only_grants(params: Mapping[str, Any], owner_id: str) -> bool:
    """Whether a request's grant headers and AccessControlPolicy grant nothing beyond the
    bucket owner's FULL_CONTROL (what a bucket with ACLs disabled accepts)."""
    for header in _GRANT_HEADERS:
        value = params.get(header)
        if value is None:
            continue
        if header != "GrantFullControl" or not isinstance(value, str):
            return False
        for grantee in value.split(","):
            match = _GRANT_ID_RE.fullmatch(grantee)
            if match is None or match.group(1) != owner_id:
                return False
    policy = params.get("AccessControlPolicy")
    if policy is None:
        return True
    if not isinstance(policy, Mapping):
        return False
    for grant in policy.get("Grants") or []:
        if not isinstance(grant, Mapping):
            return False
        who = grant.get("Grantee")
        if (
            grant.get("Permission") != "FULL_CONTROL"
            or not isinstance(who, Mapping)
            or who.get("Type") != "CanonicalUser"
            or who.get("ID") != owner_id
        ):
            return False
    return True


def _max_buckets(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid_max_buckets(value)
    try:
        number = int(value)
    except ValueError:
        raise _invalid_max_buckets(value) from None
    if not 1 <= number <= MAX_LIST_BUCKETS:
        raise _invalid_max_buckets(value)
    return number


def _invalid_max_buckets(value: object) -> InvalidArgument:
    return InvalidArgument(
        f"Argument max-buckets must be an integer between 1 and {MAX_LIST_BUCKETS}",
        ArgumentName="max-buckets",
        ArgumentValue=str(value),
    )


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: object) -> str:
    invalid = InvalidArgument(
        "The continuation token provided is incorrect", ArgumentName="continuation-token"
    )
    if not isinstance(token, str) or not token:
        raise invalid
    try:
        name = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise invalid from None
    if _BUCKET_NAME_RE.fullmatch(name) is None:
        raise invalid
    return name


# -- the service ------------------------------------------------------------------------------


class BucketService(S3Base):
    """CreateBucket, DeleteBucket, HeadBucket, ListBuckets and the bucket subresources."""

    # -- shared steps ----------------------------------------------------------------------

    @staticmethod
    def _audit(call: Call, params: Mapping[str, Any], **extra: Any) -> None:
        """Record the request's non-secret parameters the way CloudTrail shows S3
        management events: the bucket name, the subresource and the configuration body."""
        call.request_parameters = {
            "bucketName": params.get("Bucket"),
            **{k: _plain(v) for k, v in extra.items()},
        }

    def _target(
        self,
        call: Call,
        params: Mapping[str, Any],
        action: str,
        facts: S3RequestFacts | None = None,
    ) -> Bucket:
        """The bucket a request names, once the caller is allowed to run ``action`` on it."""
        bucket = self.bucket(params.get("Bucket") or "")
        self.resources(call, bucket)
        self.authorize(call, action, bucket, facts=facts)
        expected = params.get("ExpectedBucketOwner")
        if expected is not None and expected != bucket.account_id:
            raise S3AccessDenied("Access Denied")
        return bucket

    def _update(self, bucket: Bucket, **changes: Any) -> None:
        def work(conn: Connection) -> None:
            s3_repo.update_bucket(conn, bucket.name, **changes)

        self.write(work)

    # -- create / delete / head / list ----------------------------------------------------------

    def create_bucket(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        config = params.get("CreateBucketConfiguration") or {}
        audit: dict[str, Any] = {}
        if config:
            audit["CreateBucketConfiguration"] = config
        for header in ("ACL", "ObjectOwnership", "ObjectLockEnabledForBucket"):
            if params.get(header) is not None:
                audit[header] = params[header]
        self._audit(call, params, **audit)
        name = check_bucket_name(params.get("Bucket"))
        if not isinstance(config, Mapping):
            raise _malformed()
        if config.get("Location") is not None or config.get("Bucket") is not None:
            raise InvalidArgument(
                "Directory buckets are not supported; omit Location and Bucket.",
                ArgumentName="CreateBucketConfiguration",
            )
        constraint = config.get("LocationConstraint")
        region = _region_for(constraint, call.region)
        tags = validate_tag_set(config.get("Tags"))
        self._check_create_headers(params, canonical_user_id(call.principal.account_id))

        bucket = Bucket(
            name=name,
            account_id=call.principal.account_id,
            region=region,
            created_at=self.clock.now(),
            versioning=None,
            policy=None,
            encryption=DEFAULT_ENCRYPTION,
            public_access_block=dict(DEFAULT_PUBLIC_ACCESS_BLOCK),
            tags=tags,
        )
        self.resources(call, bucket)
        facts = S3RequestFacts(
            location_constraint=constraint if isinstance(constraint, str) else None,
            acl=params.get("ACL"),
        )
        self.authorize(call, "s3:CreateBucket", bucket, facts=facts)
        if tags:
            self.authorize(call, "s3:TagResource", bucket)

        def work(conn: Connection) -> None:
            existing = s3_repo.get_bucket(conn, name)
            if existing is not None:
                raise self._exists_error(existing, call)
            s3_repo.insert_bucket(conn, bucket)

        try:
            self.write(work)
        except IntegrityError:
            # Created by another process between our check and our insert.
            with self.db.read() as conn:
                existing = s3_repo.get_bucket(conn, name)
            if existing is None:
                raise
            raise self._exists_error(existing, call) from None
        return {"Location": _location(name, region)}

    @staticmethod
    def _exists_error(existing: Bucket, call: Call) -> S3Error:
        if existing.account_id == call.principal.account_id:
            return BucketAlreadyOwnedByYou(
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                BucketName=existing.name,
            )
        return BucketAlreadyExists(
            "The requested bucket name is not available. The bucket namespace is shared by "
            "all users of the system. Please select a different name and try again.",
            BucketName=existing.name,
        )

    @staticmethod
    def _check_create_headers(params: Mapping[str, Any], owner_id: str) -> None:
        ownership = params.get("ObjectOwnership")
        if ownership is not None and ownership != BUCKET_OWNER_ENFORCED:
            # ACL-enabled buckets (ObjectWriter, BucketOwnerPreferred) are not implemented.
            raise S3NotImplemented(_UNSUPPORTED_HEADER, Header="x-amz-object-ownership")
        if params.get("ObjectLockEnabledForBucket"):
            raise S3NotImplemented(_UNSUPPORTED_HEADER, Header="x-amz-bucket-object-lock-enabled")
        acl = params.get("ACL")
        if (acl is not None and acl not in _OWNER_ONLY_CANNED_ACLS) or not _owner_only_grants(
            params, owner_id
        ):
            raise InvalidBucketAclWithObjectOwnership(
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            )

    def delete_bucket(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params)
        bucket = self._target(call, params, "s3:DeleteBucket")

        def work(conn: Connection) -> None:
            s3_repo.lock_bucket(conn, bucket.name, exclusive=True)
            if s3_repo.bucket_has_content(conn, bucket.name):
                raise BucketNotEmpty(
                    "The bucket you tried to delete is not empty", BucketName=bucket.name
                )
            s3_repo.delete_bucket(conn, bucket.name)

        self.write(work)
        self.access.forget(bucket.name)
        with self._lock:
            self._buckets.pop(bucket.name, None)
        return {}

    def head_bucket(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params)
        bucket = self._target(call, params, "s3:ListBucket")
        return {"BucketRegion": bucket.region, "AccessPointAlias": False}

    def get_bucket_location(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, location="")
        bucket = self._target(call, params, "s3:GetBucketLocation")
        return {"LocationConstraint": _location_constraint(bucket.region)}

    def list_buckets(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        audit = {
            k: params[k]
            for k in ("MaxBuckets", "ContinuationToken", "Prefix", "BucketRegion")
            if params.get(k) is not None
        }
        call.request_parameters = _plain(audit)
        call.resources = []
        limit = _max_buckets(params.get("MaxBuckets"))
        token = params.get("ContinuationToken")
        after = None if token is None else _decode_token(token)
        prefix = params.get("Prefix") or ""
        region = params.get("BucketRegion")
        self.access.check_account(call, "ListBuckets")

        with self.db.read() as conn:
            buckets = s3_repo.list_buckets(conn, call.principal.account_id)
        chosen = [
            b
            for b in buckets
            if b.name.startswith(prefix)
            and (region is None or b.region == region)
            and (after is None or b.name > after)
        ]
        more = limit is not None and len(chosen) > limit
        if limit is not None:
            chosen = chosen[:limit]
        out: dict[str, Any] = {
            "Buckets": [
                {"Name": b.name, "CreationDate": b.created_at, "BucketRegion": b.region}
                for b in chosen
            ],
            # S3 stopped returning Owner.DisplayName in November 2025: the ID only.
            "Owner": {"ID": canonical_user_id(call.principal.account_id)},
        }
        if more:
            out["ContinuationToken"] = _encode_token(chosen[-1].name)
        if params.get("Prefix") is not None:
            out["Prefix"] = prefix
        return out

    # -- tagging -------------------------------------------------------------------------------

    def get_bucket_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, tagging="")
        bucket = self._target(call, params, "s3:GetBucketTagging")
        if not bucket.tags:
            raise NoSuchTagSet("The TagSet does not exist", BucketName=bucket.name)
        return {"TagSet": [{"Key": k, "Value": v} for k, v in bucket.tags.items()]}

    def put_bucket_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        tagging = params.get("Tagging")
        self._audit(call, params, tagging="", Tagging=tagging)
        bucket = self._target(call, params, "s3:PutBucketTagging")
        if not isinstance(tagging, Mapping) or "TagSet" not in tagging:
            raise _malformed()
        tags = validate_tag_set(tagging["TagSet"])
        self._update(bucket, tags=tags)
        return {}

    def delete_bucket_tagging(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, tagging="")
        bucket = self._target(call, params, "s3:PutBucketTagging")
        if bucket.tags:
            self._update(bucket, tags={})
        return {}

    # -- bucket policy ------------------------------------------------------------------------

    def get_bucket_policy(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, policy="")
        bucket = self._target(call, params, "s3:GetBucketPolicy")
        if bucket.policy is None:
            raise NoSuchBucketPolicy("The bucket policy does not exist", BucketName=bucket.name)
        return {"Policy": bucket.policy}

    def put_bucket_policy(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        text = params.get("Policy")
        shown: Any = text
        if isinstance(text, str):
            try:
                shown = orjson.loads(text)
            except orjson.JSONDecodeError:
                shown = text
        self._audit(call, params, policy="", bucketPolicy=shown)
        bucket = self._target(call, params, "s3:PutBucketPolicy")
        if not isinstance(text, str):
            raise MalformedPolicy("Policies must be valid JSON and the first byte must be '{'")
        try:
            document = parse_policy(text, kind="resource", max_size=MAX_POLICY_SIZE)
        except PolicyDocumentError as exc:
            raise MalformedPolicy(str(exc)) from None
        _check_policy_scope(document, bucket.name)
        check_put_policy(
            block_of(bucket), text, principal_arn=call.principal.arn, bucket=bucket.name
        )
        self._update(bucket, policy=text)
        return {}

    def delete_bucket_policy(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, policy="")
        bucket = self._target(call, params, "s3:DeleteBucketPolicy")
        if bucket.policy is not None:
            self._update(bucket, policy=None)
        return {}

    def get_bucket_policy_status(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, policyStatus="")
        bucket = self._target(call, params, "s3:GetBucketPolicyStatus")
        if bucket.policy is None:
            raise NoSuchBucketPolicy("The bucket policy does not exist", BucketName=bucket.name)
        public = self.access.policy_is_public(bucket.name, bucket.policy)
        return {"PolicyStatus": {"IsPublic": public}}

    # -- default encryption ---------------------------------------------------------------------

    def get_bucket_encryption(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, encryption="")
        bucket = self._target(call, params, "s3:GetEncryptionConfiguration")
        # Every bucket has a default encryption configuration (SSE-S3 at the least).
        rule = bucket.encryption or EncryptionRule(SSE_S3)
        return {"ServerSideEncryptionConfiguration": _encryption_config(rule)}

    def put_bucket_encryption(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        config = params.get("ServerSideEncryptionConfiguration")
        self._audit(call, params, encryption="", ServerSideEncryptionConfiguration=config)
        bucket = self._target(call, params, "s3:PutEncryptionConfiguration")
        rule = _encryption_rule(config, bucket.encryption)
        if rule != bucket.encryption:
            self._update(bucket, encryption=rule)
        return {}

    def delete_bucket_encryption(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, encryption="")
        bucket = self._target(call, params, "s3:PutEncryptionConfiguration")
        if bucket.encryption != DEFAULT_ENCRYPTION:
            self._update(bucket, encryption=DEFAULT_ENCRYPTION)
        return {}

    # -- Block Public Access ------------------------------------------------------------------

    def get_public_access_block(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, publicAccessBlock="")
        bucket = self._target(call, params, "s3:GetBucketPublicAccessBlock")
        flags = bucket.public_access_block
        if flags is None:
            raise NoSuchPublicAccessBlockConfiguration(
                "The public access block configuration was not found", BucketName=bucket.name
            )
        return {
            "PublicAccessBlockConfiguration": {
                name: bool(flags.get(name, False)) for name in _PAB_FIELDS
            }
        }

    def put_public_access_block(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        config = params.get("PublicAccessBlockConfiguration")
        self._audit(call, params, publicAccessBlock="", PublicAccessBlockConfiguration=config)
        bucket = self._target(call, params, "s3:PutBucketPublicAccessBlock")
        flags = _public_access_block(config)
        self._update(bucket, public_access_block=flags)
        return {}

    def delete_public_access_block(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, publicAccessBlock="")
        bucket = self._target(call, params, "s3:PutBucketPublicAccessBlock")
        if bucket.public_access_block is not None:
            self._update(bucket, public_access_block=None)
        return {}

    # -- versioning ------------------------------------------------------------------------------

    def get_bucket_versioning(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, versioning="")
        bucket = self._target(call, params, "s3:GetBucketVersioning")
        return {} if bucket.versioning is None else {"Status": bucket.versioning}

    def put_bucket_versioning(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        config = params.get("VersioningConfiguration")
        self._audit(call, params, versioning="", VersioningConfiguration=config)
        bucket = self._target(call, params, "s3:PutBucketVersioning")
        if not isinstance(config, Mapping):
            raise _malformed()
        mfa_delete = config.get("MFADelete")
        if mfa_delete not in (None, "Disabled", "Enabled"):
            raise _malformed()
        if mfa_delete == "Enabled":
            raise S3NotImplemented(_UNSUPPORTED_HEADER, Header="MFADelete")
        status = config.get("Status")
        if status is None:
            return {}  # nothing to change (a configuration of MFADelete only)
        if status not in _VERSIONING:
            raise _malformed()
        if status != bucket.versioning:
            self._update(bucket, versioning=status)
        return {}

    # -- ACLs and object ownership (ACLs are disabled: BucketOwnerEnforced) ---------------------

    def get_bucket_acl(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        self._audit(call, params, acl="")
        bucket = self._target(call, params, "s3:GetBucketAcl")
        owner = canonical_user_id(bucket.account_id)
        return {
            "Owner": {"ID": owner},
            "Grants": [
                {
                    "Grantee": {"ID": owner, "Type": "CanonicalUser"},
                    "Permission": "FULL_CONTROL",
                }
            ],
        }

    def put_bucket_acl(self, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
        audit: dict[str, Any] = {"acl": ""}
        for name in ("ACL", "AccessControlPolicy", *_GRANT_HEADERS):
            if params.get(name) is not None:
                audit[name] = params[name]
        self._audit(call, params, **audit)
        acl = params.get("ACL")
        bucket = self._target(
            call, params, "s3:PutBucketAcl", S3RequestFacts(acl=acl if acl else None)
        )
        owner = canonical_user_id(bucket.account_id)
        if (acl is not None and acl != "private") or not _owner_only_grants(params, owner):
            raise AccessControlListNotSupported(_ACLS_NOT_SUPPORTED)
        return {}  # the owner's FULL_CONTROL is what the bucket already has

    def get_bucket_lifecycle_configuration(
        self, call: Call, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Sealbox has no lifecycle rules (uploads expire by a server setting)."""
        self._audit(call, params, lifecycle="")
        bucket = self._target(call, params, "s3:GetLifecycleConfiguration")
        raise NoSuchLifecycleConfiguration(
            "The lifecycle configuration does not exist", BucketName=bucket.name
        )

    def get_bucket_ownership_controls(
        self, call: Call, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._audit(call, params, ownershipControls="")
        self._target(call, params, "s3:GetBucketOwnershipControls")
        return {"OwnershipControls": {"Rules": [{"ObjectOwnership": BUCKET_OWNER_ENFORCED}]}}
