"""audit lookup indexes (CloudTrail LookupEvents)

Revision ID: 0006
Revises: 0005

Every LookupEvents filter walks one index newest first (seq descending) within the
caller's account. EventId, ResourceName, EventName and Username already have theirs
(the unique event_id, ix_audit_resource, ix_audit_account_name, ix_audit_account_user);
these serve no filter or only a time range (and ResourceType), EventSource, ReadOnly
and AccessKeyId.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# EventSource and ReadOnly have few values, so a newest-first walk of
# ix_audit_account_seq finds their matches quickly; an index each would cost every
# audited call an insert (measured: ~0.015 ms per index per call) for little gain.
INDEXES = {
    "ix_audit_account_seq": ["account_id", "seq"],
    "ix_audit_account_key": ["account_id", "access_key_id", "seq"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_events", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, "audit_events")
