"""S3: buckets, object versions, multipart uploads and parts, SSE-S3 service keys

Revision ID: 0007
Revises: 0006

Object data lives in the blob store (storage/blobstore.py) as encrypted segment
streams; these tables hold what is needed to find, authorize and decrypt it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _encryption_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("sse", sa.String(16), nullable=False),
        sa.Column("kms_key_arn", sa.String(2048)),
        sa.Column("bucket_key", sa.Boolean(), nullable=False),
        sa.Column("sse_context", sa.Text()),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column("bucket_key_blob", sa.LargeBinary()),
        sa.Column("ssec_salt", sa.LargeBinary()),
        sa.Column("ssec_hmac", sa.LargeBinary()),
    ]


def upgrade() -> None:
    op.create_table(
        "s3_buckets",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("versioning", sa.String(16)),
        sa.Column("policy", sa.Text()),
        sa.Column("encryption", sa.Text()),
        sa.Column("public_access_block", sa.Text()),
        sa.Column("tags", sa.Text()),
        sa.Column("config_version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_s3_buckets_account", "s3_buckets", ["account_id"])
    op.create_table(
        "s3_objects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("delete_marker", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_account", sa.String(12), nullable=False),
        sa.Column("headers", sa.Text()),
        sa.Column("metadata", sa.Text()),
        sa.Column("tags", sa.Text()),
        sa.Column("checksum", sa.Text()),
        sa.Column("parts", sa.Text()),
        *_encryption_columns(),
    )
    op.create_index(
        "ux_s3_objects_version", "s3_objects", ["bucket", "object_key", "version_id"], unique=True
    )
    op.create_index("ix_s3_objects_history", "s3_objects", ["bucket", "object_key", "id"])
    op.create_index("ix_s3_objects_latest", "s3_objects", ["bucket", "is_latest", "object_key"])
    op.create_table(
        "s3_uploads",
        sa.Column("upload_id", sa.String(96), primary_key=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("initiated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_account", sa.String(12), nullable=False),
        sa.Column("initiator_arn", sa.String(2048), nullable=False),
        sa.Column("headers", sa.Text()),
        sa.Column("metadata", sa.Text()),
        sa.Column("tags", sa.Text()),
        sa.Column("checksum_algorithm", sa.String(16)),
        sa.Column("checksum_type", sa.String(16)),
        *_encryption_columns(),
    )
    op.create_index("ix_s3_uploads_key", "s3_uploads", ["bucket", "object_key", "initiated"])
    op.create_table(
        "s3_parts",
        sa.Column("upload_id", sa.String(96), primary_key=True),
        sa.Column("part_number", sa.Integer(), primary_key=True),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("segment_size", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("checksum", sa.Text()),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["s3_uploads.upload_id"], ondelete="CASCADE"),
    )
    op.create_table(
        "s3_service_keys",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("s3_service_keys", "s3_parts", "s3_uploads", "s3_objects", "s3_buckets"):
        op.drop_table(table)
