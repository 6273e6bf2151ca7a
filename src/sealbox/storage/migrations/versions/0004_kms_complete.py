"""imported key material, multi-Region keys

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kms_keys") as batch:
        batch.add_column(sa.Column("valid_to", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("expiration_model", sa.String(32)))
        batch.add_column(sa.Column("primary_region", sa.String(32)))
    with op.batch_alter_table("kms_key_versions") as batch:
        batch.add_column(sa.Column("material_fingerprint", sa.String(64)))
    op.create_table(
        "kms_import_params",
        sa.Column("token_digest", sa.LargeBinary(), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("wrapping_algorithm", sa.String(32), nullable=False),
        sa.Column("wrapping_key_spec", sa.String(16), nullable=False),
        sa.Column("wrapped_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_kms_import_params_key", "kms_import_params", ["account_id", "region", "key_id"]
    )
    # GetKeyLastUsage reads the newest record naming a key.
    op.create_index("ix_audit_resource", "audit_events", ["resource_arn", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_resource", "audit_events")
    op.drop_table("kms_import_params")
    with op.batch_alter_table("kms_key_versions") as batch:
        batch.drop_column("material_fingerprint")
    with op.batch_alter_table("kms_keys") as batch:
        batch.drop_column("primary_region")
        batch.drop_column("expiration_model")
        batch.drop_column("valid_to")
