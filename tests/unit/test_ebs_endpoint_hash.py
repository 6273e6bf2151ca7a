"""PutSnapshotBlock reuses the body hash the SigV4 check computed, and only that."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

from sealbox.auth.sigv4 import SignedRequest
from sealbox.server.ebs_endpoint import verified_body_sha256

BODY = b"block" * 1000
HEX = hashlib.sha256(BODY).hexdigest()
SIGNED = SignedRequest(
    access_key_id="AKIAEXAMPLE",
    scope_date="20261125",
    region="us-east-1",
    service="ebs",
    signed_headers=("host", "x-amz-checksum", "x-amz-content-sha256", "x-amz-date"),
    signature="0" * 64,
    amz_date=datetime(2026, 11, 25, tzinfo=UTC),
    security_token=None,
    presigned=False,
    expires_seconds=None,
    payload_hash=HEX,
)


def test_a_signed_hex_payload_hash_is_the_digest() -> None:
    assert verified_body_sha256(SIGNED) == hashlib.sha256(BODY).digest()


def test_unsigned_missing_or_odd_payload_hashes_are_not_used() -> None:
    for value in (None, "UNSIGNED-PAYLOAD", HEX.upper(), HEX[:-1], "STREAMING-X"):
        assert verified_body_sha256(replace(SIGNED, payload_hash=value)) is None
    assert verified_body_sha256(replace(SIGNED, service="s3")) is None
