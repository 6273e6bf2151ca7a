"""Bring your own key: AWS's documented import procedure, done with OpenSSL, and the
recovery story — the same material in a second Sealbox decrypts the first's data."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess

DAY = 24 * 3600


def code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def wrap_like_aws_docs(tmp: Path, public_der: bytes, material: bytes, algorithm: str) -> bytes:
    """Wrap key material with openssl as AWS's 'Encrypt key material' guide shows."""
    (tmp / "pub.der").write_bytes(public_der)
    (tmp / "material.bin").write_bytes(material)
    oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
            "-pkeyopt", "rsa_mgf1_md:sha256"]  # fmt: skip
    rsa = ["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(tmp / "pub.der")]
    if algorithm == "RSAES_OAEP_SHA_256":
        return openssl(*rsa, "-in", str(tmp / "material.bin"), *oaep)
    assert algorithm == "RSA_AES_KEY_WRAP_SHA_256"
    aes_key = os.urandom(32)
    (tmp / "aes.bin").write_bytes(aes_key)
    wrapped_material = openssl(
        "enc", "-id-aes256-wrap-pad", "-K", aes_key.hex(), "-iv", "A65959A6",
        "-in", str(tmp / "material.bin"),
    )  # fmt: skip
    wrapped_key = openssl(*rsa, "-in", str(tmp / "aes.bin"), *oaep)
    return wrapped_key + wrapped_material


def import_material(
    kms: Any, tmp: Path, key_id: str, material: bytes, algorithm: str, **extra: Any
) -> dict[str, Any]:
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_4096"
    )
    assert params["ParametersValidTo"] - datetime.now(UTC) > timedelta(hours=23)
    wrapped = wrap_like_aws_docs(tmp, params["PublicKey"], material, algorithm)
    return dict(
        kms.import_key_material(
            KeyId=key_id,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrapped,
            **(extra or {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
        )
    )


def test_import_life_cycle_and_recovery_in_a_second_sealbox(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = make_server(name="first")
    kms = first.client()
    key = kms.create_key(Origin="EXTERNAL", Description="byok")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport" and key["Origin"] == "EXTERNAL"
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert code(err) == "KMSInvalidStateException"

    material = os.urandom(32)
    imported = import_material(kms, tmp_path, key["KeyId"], material, "RSAES_OAEP_SHA_256")
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert meta["CurrentKeyMaterialId"] == imported["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"disaster", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]

    # Deleting the material makes the data unreadable until the SAME material returns.
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as err:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"})
    assert code(err) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as err:
        import_material(kms, tmp_path, key["KeyId"], os.urandom(32), "RSAES_OAEP_SHA_256")
    assert code(err) == "IncorrectKeyMaterialException"
    import_material(kms, tmp_path, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_256")
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"})["Plaintext"] == (
        b"disaster"
    )

    # Recovery: a separate Sealbox, a new EXTERNAL key, the same material.
    second = make_server(name="second")
    kms2 = second.client()
    key2 = kms2.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    import_material(kms2, tmp_path, key2, material, "RSA_AES_KEY_WRAP_SHA_256")
    recovered = kms2.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"}, KeyId=key2)
    assert recovered["Plaintext"] == b"disaster"
    with pytest.raises(ClientError) as err:  # the context is still bound
        kms2.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "2"}, KeyId=key2)
    assert code(err) == "IncorrectKeyException"

    # Neither data directory holds the material in plaintext.
    first.stop()
    second.stop()
    for srv in (first, second):
        for path in [p for p in srv.data_dir.rglob("*") if p.is_file()]:
            assert material not in path.read_bytes(), path


def test_import_errors(kms: Any, tmp_path: Path) -> None:
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    wrapped = wrap_like_aws_docs(tmp_path, params["PublicKey"], os.urandom(32),
                                 "RSAES_OAEP_SHA_256")  # fmt: skip
    for kwargs, expected in [
        ({"KeyId": other, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": wrapped,
          "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}, "InvalidImportTokenException"),
        ({"KeyId": key_id, "ImportToken": params["ImportToken"],
          "EncryptedKeyMaterial": wrapped[:-1] + b"\0",
          "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}, "InvalidCiphertextException"),
        ({"KeyId": key_id, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": wrapped},
         "ValidationException"),  # the default model expires, so ValidTo is required
    ]:  # fmt: skip
        with pytest.raises(ClientError) as err:
            kms.import_key_material(**kwargs)
        assert code(err) == expected, expected
    aws_key = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        kms.get_parameters_for_import(
            KeyId=aws_key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        )
    assert code(err) == "UnsupportedOperationException"


def test_imported_material_expires_at_valid_to(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    srv = make_server()
    kms = srv.client()
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    valid_to = datetime.now(UTC) + timedelta(days=2)
    import_material(
        kms, tmp_path, key_id, os.urandom(32), "RSAES_OAEP_SHA_256",
        ValidTo=valid_to, ExpirationModel="KEY_MATERIAL_EXPIRES",
    )  # fmt: skip
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((meta["ValidTo"] - valid_to).total_seconds()) < 1
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    srv.restart(extra_env={"SEALBOX_CLOCK_OFFSET_SECONDS": str(3 * DAY)})
    kms = srv.client()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(err) == "KMSInvalidStateException"


def test_imported_signing_key(kms: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")[
        "KeyMetadata"
    ]["KeyId"]
    import_material(kms, tmp_path, key_id, der, "RSA_AES_KEY_WRAP_SHA_256")
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert public == private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
