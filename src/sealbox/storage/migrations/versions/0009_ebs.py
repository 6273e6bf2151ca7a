"""EBS: encryption-by-default settings, service keys, volumes, snapshots, blocks, tags

Revision ID: 0009
Revises: 0008

Volume data lives in one XTS-encrypted file per volume (data_dir/volumes) and snapshot
blocks in the block store (data_dir/ebs-blocks); these tables hold what is needed to
find, authorize and decrypt them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _keying_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("kms_key_arn", sa.String(2048)),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_context_id", sa.String(32), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "ebs_settings",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("encryption_by_default", sa.Boolean(), nullable=False),
        sa.Column("default_kms_key_id", sa.String(2048)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ebs_service_keys",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ebs_volumes",
        sa.Column("volume_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("availability_zone", sa.String(64), nullable=False),
        sa.Column("size_gib", sa.Integer(), nullable=False),
        sa.Column("volume_type", sa.String(16), nullable=False),
        sa.Column("iops", sa.Integer()),
        sa.Column("throughput", sa.Integer()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_id", sa.String(32)),
        *_keying_columns(),
        sa.Column("base_snapshot_id", sa.String(32)),
        sa.Column("instance_id", sa.String(32)),
        sa.Column("device", sa.String(64)),
        sa.Column("attach_time", sa.DateTime(timezone=True)),
        sa.Column("attached_key", sa.LargeBinary()),
        sa.Column("row_version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_ebs_volumes_account", "ebs_volumes", ["account_id", "region", "volume_id"])
    op.create_table(
        "ebs_snapshots",
        sa.Column("snapshot_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("volume_id", sa.String(32), nullable=False),
        sa.Column("volume_size_gib", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completion_time", sa.DateTime(timezone=True)),
        sa.Column("origin", sa.String(16), nullable=False),
        *_keying_columns(),
        sa.Column("parent_snapshot_id", sa.String(32)),
        sa.Column("source_snapshot_id", sa.String(32)),
        sa.Column("client_token", sa.String(128)),
        sa.Column("request_fingerprint", sa.String(64)),
        sa.Column("timeout_minutes", sa.Integer()),
        sa.Column("last_activity", sa.DateTime(timezone=True)),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_ebs_snapshots_account", "ebs_snapshots", ["account_id", "region", "snapshot_id"]
    )
    op.create_index(
        "ix_ebs_snapshots_token", "ebs_snapshots", ["account_id", "region", "client_token"]
    )
    op.create_table(
        "ebs_blocks",
        sa.Column("block_id", sa.String(32), primary_key=True),
        sa.Column("key_context_id", sa.String(32), nullable=False),
        sa.Column("block_index", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.LargeBinary()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ebs_snapshot_blocks",
        sa.Column("snapshot_id", sa.String(32), primary_key=True),
        sa.Column("block_index", sa.BigInteger(), primary_key=True),
        sa.Column("block_id", sa.String(32), nullable=False),
        sa.Column("written", sa.Boolean(), nullable=False),
        sa.Column("sealed_checksum", sa.LargeBinary()),
    )
    op.create_index("ix_ebs_snapshot_blocks_block", "ebs_snapshot_blocks", ["block_id"])
    op.create_table(
        "ebs_tags",
        sa.Column("resource_id", sa.String(32), primary_key=True),
        sa.Column("tag_key", sa.String(128), primary_key=True),
        sa.Column("tag_value", sa.String(256), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(16), nullable=False),
    )
    op.create_index("ix_ebs_tags_account", "ebs_tags", ["account_id", "region", "resource_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_ebs_tags_account", "ebs_tags"),
        ("ix_ebs_snapshot_blocks_block", "ebs_snapshot_blocks"),
        ("ix_ebs_snapshots_token", "ebs_snapshots"),
        ("ix_ebs_snapshots_account", "ebs_snapshots"),
        ("ix_ebs_volumes_account", "ebs_volumes"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "ebs_tags",
        "ebs_snapshot_blocks",
        "ebs_blocks",
        "ebs_snapshots",
        "ebs_volumes",
        "ebs_service_keys",
        "ebs_settings",
    ):
        op.drop_table(table)
