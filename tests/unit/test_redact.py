"""Audit parameters never carry plaintexts, ciphertexts or data keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sealbox.protocols.codec import models
from sealbox.protocols.codec.redact import audit_parameters

KMS = models.load_service("kms")


def test_blobs_are_dropped_and_names_camel_cased() -> None:
    op = KMS.operation_model("Encrypt")
    params = {
        "KeyId": "alias/app",
        "Plaintext": b"top secret",
        "EncryptionContext": {"tenant": "t1"},
        "GrantTokens": ["g1"],
    }
    assert audit_parameters(op, params) == {
        "keyId": "alias/app",
        "encryptionContext": {"tenant": "t1"},
        "grantTokens": ["g1"],
    }


def test_re_encrypt_drops_the_source_ciphertext() -> None:
    op = KMS.operation_model("ReEncrypt")
    cleaned = audit_parameters(
        op, {"CiphertextBlob": b"\x01\x02", "DestinationKeyId": "k", "DryRun": True}
    )
    assert cleaned == {"destinationKeyId": "k", "dryRun": True}


def test_nested_lists_of_structures_and_timestamps() -> None:
    op = KMS.operation_model("CreateKey")
    cleaned = audit_parameters(op, {"Tags": [{"TagKey": "a", "TagValue": "b"}], "Description": "d"})
    assert cleaned == {"tags": [{"tagKey": "a", "tagValue": "b"}], "description": "d"}
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    imp = KMS.operation_model("ImportKeyMaterial")
    cleaned = audit_parameters(
        imp,
        {"KeyId": "k", "ImportToken": b"t", "EncryptedKeyMaterial": b"m", "ValidTo": when},
    )
    assert cleaned == {"keyId": "k", "validTo": "2026-01-02T03:04:05Z"}


def test_operations_without_input_give_none() -> None:
    assert audit_parameters(KMS.operation_model("ListKeys"), {}) is None
