"""Every table Sealbox stores metadata in (SQLAlchemy Core).

Secrets are never stored in a column in plaintext: `wrapped_*` columns hold values
sealed by the keystore's root key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # Bumped by every IAM change in the account, so a node's cache of identity
    # policies can tell it is stale with one lookup.
    Column("iam_version", BigInteger, nullable=False, server_default="0"),
)

iam_users = Table(
    "iam_users",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("user_name", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False, unique=True),
    Column("arn", String(2048), nullable=False),
    Column("is_root", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

iam_roles = Table(
    "iam_roles",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("role_name", String(64), primary_key=True),
    Column("role_id", String(32), nullable=False, unique=True),
    Column("arn", String(2048), nullable=False),
    Column("path", String(512), nullable=False),
    Column("trust_policy", Text, nullable=False),
    Column("description", String(1000), nullable=False, default=""),
    Column("max_session_duration", Integer, nullable=False, default=3600),
    Column("created_at", UtcDateTime(), nullable=False),
)

iam_groups = Table(
    "iam_groups",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("group_name", String(128), primary_key=True),
    Column("group_id", String(32), nullable=False, unique=True),
    Column("arn", String(2048), nullable=False),
    Column("path", String(512), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

iam_group_members = Table(
    "iam_group_members",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("group_name", String(128), primary_key=True),
    Column("user_name", String(64), primary_key=True),
)

# Tags on users and roles (aws:PrincipalTag/*).
iam_tags = Table(
    "iam_tags",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("entity_kind", String(8), primary_key=True),  # user | role
    Column("entity_name", String(128), primary_key=True),
    Column("tag_key", String(128), primary_key=True),
    Column("tag_value", String(256), nullable=False),
)

# Inline policies of users, groups and roles.
iam_inline_policies = Table(
    "iam_inline_policies",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("entity_kind", String(8), primary_key=True),  # user | group | role
    Column("entity_name", String(128), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
)

iam_managed_policies = Table(
    "iam_managed_policies",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("policy_id", String(32), nullable=False, unique=True),
    Column("arn", String(2048), nullable=False, unique=True),
    Column("path", String(512), nullable=False),
    Column("description", String(1000), nullable=False, default=""),
    Column("document", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

iam_attachments = Table(
    "iam_attachments",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("entity_kind", String(8), primary_key=True),  # user | group | role
    Column("entity_name", String(128), primary_key=True),
    Column("policy_arn", String(2048), primary_key=True),
)

# STS sessions: temporary credentials from AssumeRole. The secret is wrapped by the
# root of trust; the session token is stored only as a SHA-256 digest.
sts_sessions = Table(
    "sts_sessions",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("role_name", String(64), nullable=False),
    Column("role_id", String(32), nullable=False),
    Column("session_name", String(64), nullable=False),
    Column("wrapped_secret", LargeBinary, nullable=False),
    Column("token_digest", LargeBinary, nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("source_arn", String(2048), nullable=False),
    Index("ix_sts_sessions_expiry", "expires_at"),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("wrapped_secret", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["account_id", "user_name"], ["iam_users.account_id", "iam_users.user_name"]
    ),
)

kms_keys = Table(
    "kms_keys",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("key_usage", String(32), nullable=False),
    Column("key_spec", String(32), nullable=False),
    Column("origin", String(32), nullable=False),
    Column("key_manager", String(16), nullable=False),
    Column("key_state", String(32), nullable=False),
    Column("creation_date", UtcDateTime(), nullable=False),
    Column("deletion_date", UtcDateTime()),
    Column("pending_window_days", Integer),
    Column("policy", Text, nullable=False),
    Column("multi_region", Boolean, nullable=False, default=False),
    Column("rotation_enabled", Boolean, nullable=False, default=False),
    Column("rotation_period_days", Integer),
    Column("next_rotation_date", UtcDateTime()),
    Column("on_demand_rotation_started", UtcDateTime()),
    Column("current_version", Integer, nullable=False),
    # Imported material: when it expires (KEY_MATERIAL_EXPIRES) or None.
    Column("valid_to", UtcDateTime()),
    Column("expiration_model", String(32)),
    # Multi-Region keys: the region of the primary key of the related set.
    Column("primary_region", String(32)),
    # Bumped by every change, so a node's cache can tell a stale entry.
    Column("row_version", BigInteger, nullable=False, default=1),
    Index("ix_kms_keys_deletion", "key_state", "deletion_date"),
    Index("ix_kms_keys_rotation", "rotation_enabled", "next_rotation_date"),
)

kms_key_versions = Table(
    "kms_key_versions",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("material_id", String(64), nullable=False),
    Column("wrapped_material", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("rotation_type", String(16)),
    # Imported material's keyed fingerprint: re-imports must bring the same material.
    Column("material_fingerprint", String(64)),
    ForeignKeyConstraint(
        ["account_id", "region", "key_id"],
        ["kms_keys.account_id", "kms_keys.region", "kms_keys.key_id"],
        ondelete="CASCADE",
    ),
)

kms_grants = Table(
    "kms_grants",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("grant_id", String(64), primary_key=True),
    Column("name", String(256)),
    Column("grantee_principal", String(256), nullable=False),
    Column("retiring_principal", String(256)),
    Column("issuing_account", String(2048), nullable=False),
    Column("operations", Text, nullable=False),  # JSON list
    Column("constraints", Text),  # JSON object or null
    Column("token_digest", LargeBinary, nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["account_id", "region", "key_id"],
        ["kms_keys.account_id", "kms_keys.region", "kms_keys.key_id"],
        ondelete="CASCADE",
    ),
)

# GetParametersForImport: an RSA wrapping key pair per (key, token), valid 24 hours.
kms_import_params = Table(
    "kms_import_params",
    metadata,
    Column("token_digest", LargeBinary, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("wrapping_algorithm", String(32), nullable=False),
    Column("wrapping_key_spec", String(16), nullable=False),
    Column("wrapped_private_key", LargeBinary, nullable=False),
    Column("valid_to", UtcDateTime(), nullable=False),
    Index("ix_kms_import_params_key", "account_id", "region", "key_id"),
)

# Keys destroyed at the end of their deletion window: so a ciphertext naming one is
# answered "not found" rather than "invalid", as AWS does. No material is kept.
kms_deleted_keys = Table(
    "kms_deleted_keys",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("deleted_at", UtcDateTime(), nullable=False),
)

kms_aliases = Table(
    "kms_aliases",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("alias_name", String(256), primary_key=True),
    Column("target_key_id", String(64), nullable=False),
    Column("creation_date", UtcDateTime(), nullable=False),
    Column("last_updated_date", UtcDateTime(), nullable=False),
    Index("ix_kms_aliases_target", "account_id", "region", "target_key_id"),
)

kms_tags = Table(
    "kms_tags",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("tag_key", String(128), primary_key=True),
    Column("tag_value", String(256), nullable=False),
    ForeignKeyConstraint(
        ["account_id", "region", "key_id"],
        ["kms_keys.account_id", "kms_keys.region", "kms_keys.key_id"],
        ondelete="CASCADE",
    ),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_time", UtcDateTime(), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("event_source", String(64), nullable=False),
    Column("event_name", String(64), nullable=False),
    Column("access_key_id", String(128)),
    Column("principal_arn", String(2048)),
    Column("resource_arn", String(2048)),
    Column("error_code", String(64)),
    Column("read_only", Boolean, nullable=False),
    Column("record", Text, nullable=False),  # the CloudTrail-shaped JSON record
    Column("username", String(128)),
    Column("chain_hash", LargeBinary),  # see audit/chain.py
    Index("ix_audit_time", "account_id", "event_time"),
    Index("ix_audit_resource", "resource_arn", "seq"),
    Index("ix_audit_account_name", "account_id", "event_name", "seq"),
    Index("ix_audit_account_user", "account_id", "username", "seq"),
    # LookupEvents (migration 0006).
    Index("ix_audit_account_seq", "account_id", "seq"),
    Index("ix_audit_account_key", "account_id", "access_key_id", "seq"),
)

# The head of the audit hash chain, and the anchor left by retention.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", LargeBinary, nullable=False),
    Column("anchor_seq", BigInteger, nullable=False),  # records with seq > anchor are kept
    Column("anchor_hash", LargeBinary, nullable=False),
)


# How far each audit journal segment has been moved into audit_events (migration 0010).
audit_journal_segments = Table(
    "audit_journal_segments",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("indexed_bytes", BigInteger, nullable=False),
    Column("head", LargeBinary, nullable=False),  # the segment's chain hash there
)


# -- S3 ------------------------------------------------------------------------------------


def _encryption_columns() -> list[Column[Any]]:
    """How an object's (or upload's) data key is protected; see s3/encryption.py.

    The data key itself is only ever stored wrapped: by the account's SSE-S3 key, by
    KMS (a KMS blob), by an S3 Bucket Key (whose KMS blob is kept beside it), or by
    the customer's SSE-C key (never stored; only a salted HMAC to recognise it).
    """
    return [
        Column("sse", String(16), nullable=False),  # AES256 | aws:kms | SSE-C
        Column("kms_key_arn", String(2048)),
        Column("bucket_key", Boolean, nullable=False, default=False),
        Column("sse_context", Text),  # JSON: the encryption context KMS bound
        Column("wrapped_dek", LargeBinary, nullable=False),
        Column("bucket_key_blob", LargeBinary),
        Column("ssec_salt", LargeBinary),
        Column("ssec_hmac", LargeBinary),
    ]


s3_buckets = Table(
    "s3_buckets",
    metadata,
    Column("name", String(63), primary_key=True),  # bucket names are global
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("versioning", String(16)),  # None (never enabled) | Enabled | Suspended
    Column("policy", Text),
    Column("encryption", Text),  # JSON: ServerSideEncryptionConfiguration rules
    Column("public_access_block", Text),  # JSON: the four flags
    Column("tags", Text),  # JSON object
    # Bumped by every configuration change: nodes cache a bucket while it is unchanged.
    Column("config_version", Integer, nullable=False, default=1),
    Index("ix_s3_buckets_account", "account_id"),
)

s3_objects = Table(
    "s3_objects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # version order
    Column("bucket", String(63), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("version_id", String(64), nullable=False),  # "null" when unversioned
    Column("is_latest", Boolean, nullable=False),
    Column("delete_marker", Boolean, nullable=False, default=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("etag", String(80), nullable=False, default=""),
    Column("last_modified", UtcDateTime(), nullable=False),
    Column("owner_account", String(12), nullable=False),
    Column("headers", Text),  # JSON: Content-Type, Cache-Control, ...
    Column("metadata", Text),  # JSON: x-amz-meta-*
    Column("tags", Text),  # JSON object
    Column("checksum", Text),  # JSON: algorithm, type, value, part values
    Column("parts", Text),  # JSON: the encrypted extents, in order (see s3/model.py)
    *_encryption_columns(),
    Index("ux_s3_objects_version", "bucket", "object_key", "version_id", unique=True),
    Index("ix_s3_objects_history", "bucket", "object_key", "id"),
    Index("ix_s3_objects_latest", "bucket", "is_latest", "object_key"),
)

s3_uploads = Table(
    "s3_uploads",
    metadata,
    Column("upload_id", String(96), primary_key=True),
    Column("bucket", String(63), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("initiated", UtcDateTime(), nullable=False),
    Column("owner_account", String(12), nullable=False),
    Column("initiator_arn", String(2048), nullable=False),
    Column("headers", Text),
    Column("metadata", Text),
    Column("tags", Text),
    Column("checksum_algorithm", String(16)),
    Column("checksum_type", String(16)),
    *_encryption_columns(),
    Index("ix_s3_uploads_key", "bucket", "object_key", "initiated"),
)

s3_parts = Table(
    "s3_parts",
    metadata,
    Column("upload_id", String(96), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("blob", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("segment_size", Integer, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("checksum", Text),  # JSON: algorithm → base64 value
    Column("last_modified", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(["upload_id"], ["s3_uploads.upload_id"], ondelete="CASCADE"),
)

s3_service_keys = Table(
    "s3_service_keys",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),  # sealed by the root key
    Column("created_at", UtcDateTime(), nullable=False),
)


# -- CloudTrail trails (migration 0008) -------------------------------------------------------

# A trail: its configuration (the CloudTrail API) and its delivery state (audit/delivery.py).
cloudtrail_trails = Table(
    "cloudtrail_trails",
    metadata,
    Column("trail_id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),  # the home region
    Column("name", String(128), nullable=False),
    Column("s3_bucket", String(63), nullable=False),
    Column("s3_prefix", String(200)),
    Column("include_global", Boolean, nullable=False),
    Column("multi_region", Boolean, nullable=False),
    Column("log_validation", Boolean, nullable=False),
    Column("kms_key_id", String(2048)),
    Column("event_selectors", Text),  # JSON; NULL: the default (all management events)
    Column("advanced_selectors", Text),  # JSON
    Column("tags", Text),  # JSON object
    Column("created_at", UtcDateTime(), nullable=False),
    Column("is_logging", Boolean, nullable=False),
    Column("start_logging_time", UtcDateTime()),
    Column("stop_logging_time", UtcDateTime()),
    # Audit records with seq <= delivered_seq are done; after StopLogging, those with
    # seq > stop_seq are not the trail's; skipped: JSON [[after, upto], ...] seq ranges
    # recorded while the trail was stopped.
    Column("delivered_seq", BigInteger, nullable=False),
    Column("stop_seq", BigInteger),
    Column("skipped", Text),
    Column("next_delivery_at", UtcDateTime()),
    Column("latest_delivery_time", UtcDateTime()),
    Column("latest_delivery_attempt", UtcDateTime()),
    Column("latest_delivery_error", Text),
    # Digests: a new chain (epoch) starts whenever logging or validation (re)starts.
    Column("digest_epoch", Integer, nullable=False),
    Column("digest_start", UtcDateTime()),
    Column("next_digest_at", UtcDateTime()),
    Column("latest_digest_time", UtcDateTime()),
    Column("latest_digest_error", Text),
    # Work started but not committed (JSON), redone identically after a crash.
    Column("pending", Text),
    # Which process may deliver for this trail, until when (see audit/delivery.py).
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime()),
    Index("ux_cloudtrail_trails_name", "account_id", "region", "name", unique=True),
)

# Log files delivered (kept after the trail is deleted: `sealbox audit verify` reads them).
cloudtrail_log_files = Table(
    "cloudtrail_log_files",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("trail_id", String(36), nullable=False),
    Column("region", String(32), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),  # of the uncompressed file
    Column("oldest_event_time", UtcDateTime()),
    Column("newest_event_time", UtcDateTime()),
    Column("delivered_at", UtcDateTime(), nullable=False),
    Column("digest_id", BigInteger),  # NULL: not yet digested; 0: never will be
    Index("ix_cloudtrail_log_files_trail", "trail_id", "region", "digest_id"),
)

# Digest files delivered, in chain order per trail, region and epoch.
cloudtrail_digests = Table(
    "cloudtrail_digests",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("trail_id", String(36), nullable=False),
    Column("region", String(32), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),
    Column("end_time", UtcDateTime(), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),  # of the uncompressed digest
    Column("signature", Text, nullable=False),  # hex
    Column("fingerprint", String(64), nullable=False),
    Index("ix_cloudtrail_digests_chain", "trail_id", "region", "epoch", "id"),
)

# Per-region digest signing keys; the private half is sealed by the root key.
cloudtrail_signing_keys = Table(
    "cloudtrail_signing_keys",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),  # DER PKCS #1
    Column("wrapped_private_key", LargeBinary, nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_to", UtcDateTime()),
)


# -- EBS: volumes, snapshots and their blocks (see sealbox/ebs) ---------------------------

ebs_settings = Table(
    "ebs_settings",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("encryption_by_default", Boolean, nullable=False, default=False),
    Column("default_kms_key_id", String(2048)),  # None: alias/aws/ebs
    Column("updated_at", UtcDateTime(), nullable=False),
)

ebs_service_keys = Table(
    "ebs_service_keys",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),  # sealed by the root key
    Column("created_at", UtcDateTime(), nullable=False),
)


def _ebs_keying_columns() -> list[Column[Any]]:
    """How a volume's or snapshot's data key is kept: a KMS blob (Encrypted=true) or
    sealed by the account's service-owned EBS key (Encrypted=false). `key_context_id`
    is the aws:ebs:id the data key was made for; resources sharing it share the key."""
    return [
        Column("encrypted", Boolean, nullable=False),
        Column("kms_key_arn", String(2048)),
        Column("wrapped_key", LargeBinary, nullable=False),
        Column("key_context_id", String(32), nullable=False),
    ]


ebs_volumes = Table(
    "ebs_volumes",
    metadata,
    Column("volume_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("availability_zone", String(64), nullable=False),
    Column("size_gib", Integer, nullable=False),
    Column("volume_type", String(16), nullable=False),
    Column("iops", Integer),
    Column("throughput", Integer),
    Column("state", String(16), nullable=False),  # creating|available|in-use|deleting|error
    Column("created_at", UtcDateTime(), nullable=False),
    Column("snapshot_id", String(32)),  # the snapshot it was created from
    *_ebs_keying_columns(),
    # The snapshot the next snapshot of this volume is incremental to (same data key).
    Column("base_snapshot_id", String(32)),
    Column("instance_id", String(32)),
    Column("device", String(64)),
    Column("attach_time", UtcDateTime()),
    # While attached: the data key sealed by the service key, for the block server.
    Column("attached_key", LargeBinary),
    Column("row_version", Integer, nullable=False, default=1),
    Index("ix_ebs_volumes_account", "account_id", "region", "volume_id"),
)

ebs_snapshots = Table(
    "ebs_snapshots",
    metadata,
    Column("snapshot_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("volume_id", String(32), nullable=False),  # vol-ffffffff: not from a volume
    Column("volume_size_gib", Integer, nullable=False),
    Column("description", Text),
    Column("state", String(16), nullable=False),  # pending|completed|error
    Column("start_time", UtcDateTime(), nullable=False),
    Column("completion_time", UtcDateTime()),
    Column("origin", String(16), nullable=False),  # volume|direct|copy
    *_ebs_keying_columns(),
    Column("parent_snapshot_id", String(32)),  # incremental to (shares blocks with)
    Column("source_snapshot_id", String(32)),  # CopySnapshot's source
    Column("client_token", String(128)),  # StartSnapshot idempotency
    Column("request_fingerprint", String(64)),
    Column("timeout_minutes", Integer),
    Column("last_activity", UtcDateTime()),
    Column("stored_bytes", BigInteger, nullable=False, default=0),
    Index("ix_ebs_snapshots_account", "account_id", "region", "snapshot_id"),
    Index("ix_ebs_snapshots_token", "account_id", "region", "client_token"),
)

ebs_blocks = Table(
    "ebs_blocks",
    metadata,
    # A stored 512 KiB snapshot block (a file in the block store), shared by every
    # snapshot row that names it: it is deleted when the last such row goes.
    Column("block_id", String(32), primary_key=True),
    Column("key_context_id", String(32), nullable=False),  # the data key it is sealed under
    Column("block_index", BigInteger, nullable=False),  # bound into its AAD
    Column("mac", LargeBinary),  # HMAC of the plaintext under a key of that data key
    Column("created_at", UtcDateTime(), nullable=False),
)

ebs_snapshot_blocks = Table(
    "ebs_snapshot_blocks",
    metadata,
    Column("snapshot_id", String(32), primary_key=True),
    Column("block_index", BigInteger, primary_key=True),
    Column("block_id", String(32), nullable=False),
    # Written in this snapshot (not inherited from its parent); with its SHA-256 sealed
    # under the snapshot's key while pending (CompleteSnapshot's aggregate checksum).
    Column("written", Boolean, nullable=False, default=False),
    Column("sealed_checksum", LargeBinary),
    Index("ix_ebs_snapshot_blocks_block", "block_id"),
)

ebs_tags = Table(
    "ebs_tags",
    metadata,
    Column("resource_id", String(32), primary_key=True),
    Column("tag_key", String(128), primary_key=True),
    Column("tag_value", String(256), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("resource_type", String(16), nullable=False),  # volume|snapshot
    Index("ix_ebs_tags_account", "account_id", "region", "resource_id"),
)
