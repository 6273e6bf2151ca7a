"""Audit events ⇄ rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from sealbox.audit.model import AuditEvent
from sealbox.storage.tables import audit_events


def insert_events(conn: Connection, events: Sequence[AuditEvent]) -> None:
    if not events:
        return
    conn.execute(
        audit_events.insert(),
        [
            {
                "event_id": e.event_id,
                "event_time": e.event_time,
                "account_id": e.account_id,
                "region": e.region,
                "event_source": e.event_source,
                "event_name": e.event_name,
                "access_key_id": e.access_key_id,
                "principal_arn": e.principal_arn,
                "resource_arn": e.resource_arn,
                "error_code": e.error_code,
                "read_only": e.read_only,
                "record": json.dumps(e.record, separators=(",", ":")),
            }
            for e in events
        ],
    )


def latest_records(conn: Connection, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest records first (for `sealbox audit` and tests)."""
    rows = conn.execute(
        select(audit_events.c.record)
        .where(audit_events.c.account_id == account_id)
        .order_by(audit_events.c.seq.desc())
        .limit(limit)
    )
    return [json.loads(r.record) for r in rows]
