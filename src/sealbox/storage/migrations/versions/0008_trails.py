"""CloudTrail trails: configuration, delivery state, delivered log and digest files,
digest signing keys

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cloudtrail_trails",
        sa.Column("trail_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("s3_bucket", sa.String(63), nullable=False),
        sa.Column("s3_prefix", sa.String(200)),
        sa.Column("include_global", sa.Boolean(), nullable=False),
        sa.Column("multi_region", sa.Boolean(), nullable=False),
        sa.Column("log_validation", sa.Boolean(), nullable=False),
        sa.Column("kms_key_id", sa.String(2048)),
        sa.Column("event_selectors", sa.Text()),
        sa.Column("advanced_selectors", sa.Text()),
        sa.Column("tags", sa.Text()),
        _time("created_at", nullable=False),
        sa.Column("is_logging", sa.Boolean(), nullable=False),
        _time("start_logging_time"),
        _time("stop_logging_time"),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("stop_seq", sa.BigInteger()),
        sa.Column("skipped", sa.Text()),
        _time("next_delivery_at"),
        _time("latest_delivery_time"),
        _time("latest_delivery_attempt"),
        sa.Column("latest_delivery_error", sa.Text()),
        sa.Column("digest_epoch", sa.Integer(), nullable=False),
        _time("digest_start"),
        _time("next_digest_at"),
        _time("latest_digest_time"),
        sa.Column("latest_digest_error", sa.Text()),
        sa.Column("pending", sa.Text()),
        sa.Column("lease_owner", sa.String(128)),
        _time("lease_until"),
    )
    op.create_index(
        "ux_cloudtrail_trails_name",
        "cloudtrail_trails",
        ["account_id", "region", "name"],
        unique=True,
    )
    op.create_table(
        "cloudtrail_log_files",
        _id(),
        sa.Column("trail_id", sa.String(36), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _time("oldest_event_time"),
        _time("newest_event_time"),
        _time("delivered_at", nullable=False),
        sa.Column("digest_id", sa.BigInteger()),
    )
    op.create_index(
        "ix_cloudtrail_log_files_trail",
        "cloudtrail_log_files",
        ["trail_id", "region", "digest_id"],
    )
    op.create_table(
        "cloudtrail_digests",
        _id(),
        sa.Column("trail_id", sa.String(36), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        _time("start_time", nullable=False),
        _time("end_time", nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_cloudtrail_digests_chain",
        "cloudtrail_digests",
        ["trail_id", "region", "epoch", "id"],
    )
    op.create_table(
        "cloudtrail_signing_keys",
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_private_key", sa.LargeBinary(), nullable=False),
        _time("valid_from", nullable=False),
        _time("valid_to"),
    )


def downgrade() -> None:
    for table in (
        "cloudtrail_signing_keys",
        "cloudtrail_digests",
        "cloudtrail_log_files",
        "cloudtrail_trails",
    ):
        op.drop_table(table)
