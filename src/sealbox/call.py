"""One API call as the domain sees it: who, where, what — for audit and authorization.

Adapters build a Call from a request; services read it and never see HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sealbox.iam.model import Principal


@dataclass(slots=True)
class Call:
    principal: Principal
    region: str
    event_source: str  # e.g. "kms.amazonaws.com"
    event_name: str  # the operation, e.g. "Encrypt"
    request_id: str
    source_ip: str = ""
    user_agent: str = ""
    # Request parameters with secrets already removed (plaintexts, blobs, keys).
    request_parameters: dict[str, Any] | None = None
    read_only: bool = False
    # The request arrived over TLS (aws:SecureTransport).
    secure_transport: bool = False
    # Set when one service calls another on a caller's behalf ("s3.amazonaws.com").
    invoked_by: str | None = None
    # Filled by the service for the audit record.
    resources: list[str] = field(default_factory=list)
    response_elements: dict[str, Any] | None = None
    # A data event (S3 object reads and writes), not a management event.
    data_event: bool = False
    # Calls made on this caller's behalf (S3 asking KMS for a data key), each with the
    # error code and message it failed with, if any; audited with this one.
    related: list[tuple[Call, str | None, str | None]] = field(default_factory=list)
    # True once the service appended the success event inside its own transaction;
    # otherwise the adapter records it after the call (group commit).
    audited: bool = False
