"""IAM roles, groups, policies, tags; STS sessions; KMS grants

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("iam_version", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "iam_roles",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("role_name", sa.String(64), primary_key=True),
        sa.Column("role_id", sa.String(32), nullable=False, unique=True),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("trust_policy", sa.Text(), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("max_session_duration", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "iam_groups",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("group_id", sa.String(32), nullable=False, unique=True),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "iam_group_members",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("user_name", sa.String(64), primary_key=True),
    )
    op.create_table(
        "iam_tags",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("entity_kind", sa.String(8), primary_key=True),
        sa.Column("entity_name", sa.String(128), primary_key=True),
        sa.Column("tag_key", sa.String(128), primary_key=True),
        sa.Column("tag_value", sa.String(256), nullable=False),
    )
    op.create_table(
        "iam_inline_policies",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("entity_kind", sa.String(8), primary_key=True),
        sa.Column("entity_name", sa.String(128), primary_key=True),
        sa.Column("policy_name", sa.String(128), primary_key=True),
        sa.Column("document", sa.Text(), nullable=False),
    )
    op.create_table(
        "iam_managed_policies",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("policy_name", sa.String(128), primary_key=True),
        sa.Column("policy_id", sa.String(32), nullable=False, unique=True),
        sa.Column("arn", sa.String(2048), nullable=False, unique=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "iam_attachments",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("entity_kind", sa.String(8), primary_key=True),
        sa.Column("entity_name", sa.String(128), primary_key=True),
        sa.Column("policy_arn", sa.String(2048), primary_key=True),
    )
    op.create_table(
        "sts_sessions",
        sa.Column("access_key_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("role_id", sa.String(32), nullable=False),
        sa.Column("session_name", sa.String(64), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_arn", sa.String(2048), nullable=False),
    )
    op.create_index("ix_sts_sessions_expiry", "sts_sessions", ["expires_at"])
    op.create_table(
        "kms_grants",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256)),
        sa.Column("grantee_principal", sa.String(256), nullable=False),
        sa.Column("retiring_principal", sa.String(256)),
        sa.Column("issuing_account", sa.String(2048), nullable=False),
        sa.Column("operations", sa.Text(), nullable=False),
        sa.Column("constraints", sa.Text()),
        sa.Column("token_digest", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "region", "key_id"],
            ["kms_keys.account_id", "kms_keys.region", "kms_keys.key_id"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in (
        "kms_grants",
        "sts_sessions",
        "iam_attachments",
        "iam_managed_policies",
        "iam_inline_policies",
        "iam_tags",
        "iam_group_members",
        "iam_groups",
        "iam_roles",
    ):
        op.drop_table(table)
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("iam_version")
