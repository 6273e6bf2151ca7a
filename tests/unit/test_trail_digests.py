"""Trail file layout, digest format and signatures — checked against the reference
validator's own code (awscli.customizations.cloudtrail.validation), which is what
`aws cloudtrail validate-logs` runs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from awscli.customizations.cloudtrail.validation import (
    DigestError,
    DigestProvider,
    DigestSignatureError,
    Sha256RSADigestValidator,
    extract_digest_key_date,
)

from sealbox.audit.digests import DigestContent, digest_body, string_to_sign
from sealbox.audit.trail_layout import (
    cloudtrail_time,
    compress,
    decompress,
    digest_key,
    log_file_body,
    log_file_key,
    log_prefix,
    new_unique,
)
from sealbox.audit.trail_model import Digest, LogFile
from sealbox.crypto import digest_signing

ACCOUNT = "111122223333"
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair() -> digest_signing.SigningKeyPair:
    return digest_signing.new_key_pair()


def test_log_file_keys_follow_cloudtrails_layout() -> None:
    unique = new_unique()
    assert re.fullmatch(r"[A-Za-z0-9]{16}", unique)
    assert log_file_key(None, ACCOUNT, "eu-west-1", WHEN, unique) == (
        f"AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/2026/03/04/"
        f"{ACCOUNT}_CloudTrail_eu-west-1_20260304T0506Z_{unique}.json.gz"
    )
    assert log_file_key("a/b", ACCOUNT, "us-east-1", WHEN, unique).startswith(
        f"a/b/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/03/04/"
    )
    assert log_prefix(None, ACCOUNT) == f"AWSLogs/{ACCOUNT}/"
    assert log_prefix("p", ACCOUNT) == f"p/AWSLogs/{ACCOUNT}/"


@pytest.mark.parametrize("prefix", [None, "logs/prod"])
def test_digest_keys_are_what_the_validator_lists_and_dates(prefix: str | None) -> None:
    key = digest_key(prefix, ACCOUNT, "us-east-2", "my.trail-1", "us-east-2", WHEN)
    expected = (
        f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-2/2026/03/04/"
        f"{ACCOUNT}_CloudTrail-Digest_us-east-2_my.trail-1_us-east-2_20260304T050607Z.json.gz"
    )
    assert key == (f"{prefix}/{expected}" if prefix else expected)
    provider = DigestProvider(None, ACCOUNT, "my.trail-1", "us-east-2")
    assert re.match(provider._create_digest_key_regex(prefix), key)
    assert extract_digest_key_date(key) == "20260304T050607Z"
    # The validator's list marker (a minute before the start) sorts before the key.
    assert provider._create_digest_key(WHEN, prefix) < key


def test_log_file_body_keeps_records_exactly_and_compresses_reproducibly() -> None:
    records = ['{"eventName":"Encrypt","b":1}', '{"eventName":"Decrypt"}']
    body = log_file_body(records)
    assert json.loads(body) == {"Records": [json.loads(r) for r in records]}
    assert body == b'{"Records":[' + ",".join(records).encode() + b"]}"
    assert log_file_body([]) == b'{"Records":[]}'
    assert compress(body) == compress(body)  # no name, no mtime in the gzip header
    assert decompress(compress(body)) == body == gzip.decompress(compress(body))


def _file(n: int) -> LogFile:
    return LogFile(
        id=n,
        trail_id="t",
        region="us-east-1",
        bucket="logs",
        key=f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/03/04/f{n}.json.gz",
        sha256=hashlib.sha256(str(n).encode()).hexdigest(),
        oldest_event_time=WHEN + timedelta(minutes=n),
        newest_event_time=WHEN + timedelta(minutes=n, seconds=30),
        delivered_at=WHEN + timedelta(minutes=n + 1),
        digest_id=None,
    )


def _signed(
    pair: digest_signing.SigningKeyPair,
    end: datetime,
    previous: Digest | None,
    files: list[LogFile],
) -> tuple[dict[str, object], bytes, str, str]:
    key = digest_key(None, ACCOUNT, "us-east-1", "main", "us-east-1", end)
    content = DigestContent(
        ACCOUNT, "logs", key, end - timedelta(hours=1), end, pair.fingerprint, previous, files
    )
    body = digest_body(content)
    digest_hash = hashlib.sha256(body).hexdigest()
    message = string_to_sign(
        cloudtrail_time(end), "logs", key, digest_hash, previous.signature if previous else None
    )
    signature = digest_signing.sign(pair.private_der, message).hex()
    data = json.loads(body)
    data["_signature"] = signature
    data["_signature_algorithm"] = "SHA256withRSA"
    return data, body, key, signature


def test_digest_format_and_signature_pass_the_reference_validator(
    pair: digest_signing.SigningKeyPair,
) -> None:
    public = base64.b64encode(pair.public_der)  # ListPublicKeys' Value as the CLI sees it
    validator = Sha256RSADigestValidator()

    first, body, key, signature = _signed(pair, WHEN, None, [_file(1), _file(2)])
    validator.validate("logs", key, public, first, body)
    assert first["previousDigestSignature"] is None
    assert first["digestPublicKeyFingerprint"] == pair.fingerprint
    assert first["oldestEventTime"] == cloudtrail_time(WHEN + timedelta(minutes=1))
    assert first["newestEventTime"] == cloudtrail_time(WHEN + timedelta(minutes=2, seconds=30))
    assert [f["s3Object"] for f in first["logFiles"]] == [_file(1).key, _file(2).key]  # type: ignore[attr-defined]
    for required in (
        "awsAccountId", "digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
        "digestSignatureAlgorithm", "previousDigestS3Bucket", "previousDigestS3Object",
        "previousDigestHashValue", "previousDigestHashAlgorithm",
    ):  # fmt: skip
        assert required in first

    previous = Digest(
        1, "t", "us-east-1", 1, ACCOUNT, WHEN - timedelta(hours=1), WHEN, "logs", key,
        hashlib.sha256(body).hexdigest(), signature, pair.fingerprint,
    )  # fmt: skip
    end = WHEN + timedelta(hours=1)
    second, body2, key2, _ = _signed(pair, end, previous, [])  # no logs: still a digest
    validator.validate("logs", key2, public, second, body2)
    assert second["logFiles"] == [] and second["newestEventTime"] is None
    assert second["previousDigestSignature"] == signature
    assert second["previousDigestS3Object"] == key
    assert second["previousDigestHashValue"] == hashlib.sha256(body).hexdigest()
    assert second["previousDigestHashAlgorithm"] == "SHA-256"

    # One byte of the digest changed, or a different chain link claimed: rejected.
    with pytest.raises(DigestSignatureError):
        validator.validate("logs", key2, public, second, body2.replace(b"logs", b"logz", 1))
    relinked = dict(second, previousDigestSignature="00" * 256)
    with pytest.raises(DigestSignatureError):
        validator.validate("logs", key2, public, relinked, body2)
    other = digest_signing.new_key_pair()
    with pytest.raises(DigestError):
        validator.validate("logs", key2, base64.b64encode(other.public_der), second, body2)


def test_signing_keys_fingerprints_and_verification(pair: digest_signing.SigningKeyPair) -> None:
    assert pair.fingerprint == hashlib.md5(pair.public_der, usedforsecurity=False).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{32}", pair.fingerprint)
    signature = digest_signing.sign(pair.private_der, b"message")
    assert signature == digest_signing.sign(pair.private_der, b"message")  # deterministic
    assert digest_signing.verify(pair.public_der, b"message", signature)
    assert not digest_signing.verify(pair.public_der, b"messagf", signature)
    assert not digest_signing.verify(b"not a key", b"message", signature)
