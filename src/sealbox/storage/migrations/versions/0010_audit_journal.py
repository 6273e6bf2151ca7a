"""audit journal: how far each journal segment has been indexed

Revision ID: 0010
Revises: 0009

Audit events are made durable in per-process journal segments (data_dir/audit-journal)
and moved into audit_events in batches; this table records, per segment, how many
bytes have been moved and the segment's chain hash at that point, in the same
transaction as the rows, so every event is indexed exactly once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_journal_segments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("indexed_bytes", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_journal_segments")
