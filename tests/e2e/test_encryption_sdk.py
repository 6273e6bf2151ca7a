"""The AWS Encryption SDK, given a KMS client pointed at Sealbox, works unchanged."""

from __future__ import annotations

import io
import os
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy
from cryptography.exceptions import InvalidTag

from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerProcess


def _provider(server: ServerProcess, key_arn: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The SDK builds its own KMS clients from a botocore session; botocore's
    # service-specific endpoint variable points them at Sealbox.
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)
    session = botocore.session.Session()
    session.set_credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    session.set_config_variable("region", REGION)
    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=session
    )


def test_sdk_streams_multi_megabyte_data_through_a_sealbox_key(
    server: ServerProcess, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_arn = kms.create_key(Description="esdk")["KeyMetadata"]["Arn"]
    provider = _provider(server, key_arn, monkeypatch)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    data = os.urandom(3 * 1024 * 1024 + 12345)
    context = {"purpose": "sealbox e2e", "tenant": "t-1"}

    encrypted = io.BytesIO()
    with client.stream(
        mode="e", source=io.BytesIO(data), key_provider=provider, encryption_context=context
    ) as encryptor:
        for chunk in encryptor:
            encrypted.write(chunk)
    ciphertext = encrypted.getvalue()
    assert data[:4096] not in ciphertext

    decrypted = io.BytesIO()
    with client.stream(mode="d", source=io.BytesIO(ciphertext), key_provider=provider) as decryptor:
        for chunk in decryptor:
            decrypted.write(chunk)
        header_context = decryptor.header.encryption_context
    assert decrypted.getvalue() == data
    assert header_context["tenant"] == "t-1"

    # The message names the Sealbox key, and tampering is caught end to end.
    tampered = bytearray(ciphertext)
    tampered[len(tampered) // 2] ^= 0x01
    # (the SDK lets cryptography's InvalidTag escape for a bad frame tag)
    with pytest.raises((InvalidTag, aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError)):
        client.decrypt(source=bytes(tampered), key_provider=provider)
