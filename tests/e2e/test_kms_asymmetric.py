"""Asymmetric and HMAC keys through boto3, checked against OpenSSL and `cryptography`."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.support.server import ServerProcess


def code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def public_pem(tmp_path: Path, der: bytes) -> Path:
    der_path, pem_path = tmp_path / "pub.der", tmp_path / "pub.pem"
    der_path.write_bytes(der)
    openssl("pkey", "-pubin", "-inform", "DER", "-in", str(der_path), "-out", str(pem_path))
    return pem_path


@pytest.mark.parametrize(
    ("spec", "algorithm", "digest", "sigopts"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", "-sha256", []),
        ("ECC_NIST_P384", "ECDSA_SHA_384", "-sha384", []),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", "-sha256", []),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "-sha256", []),
        (
            "RSA_3072",
            "RSASSA_PSS_SHA_384",
            "-sha384",
            ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"],
        ),
    ],
)
def test_signatures_verify_with_openssl(
    kms: Any, tmp_path: Path, spec: str, algorithm: str, digest: str, sigopts: list[str]
) -> None:
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert key["SigningAlgorithms"] and algorithm in key["SigningAlgorithms"]
    message = b"the quick brown fox " * 20
    sig = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
    pub = kms.get_public_key(KeyId=key["Arn"])
    assert pub["KeySpec"] == spec and pub["KeyUsage"] == "SIGN_VERIFY"
    pem = public_pem(tmp_path, pub["PublicKey"])
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(sig)
    out = openssl(
        "dgst", digest, "-verify", str(pem), "-signature", str(tmp_path / "sig"), *sigopts,
        str(tmp_path / "msg"),
    )  # fmt: skip
    assert b"Verified OK" in out
    # Verify in Sealbox, RAW and as a DIGEST of the same message.
    assert kms.verify(
        KeyId=key["KeyId"], Message=message, Signature=sig, SigningAlgorithm=algorithm
    )["SignatureValid"]
    hash_name = {"-sha256": "sha256", "-sha384": "sha384"}[digest]
    prehashed = hashlib.new(hash_name, message).digest()
    digest_sig = kms.sign(
        KeyId=key["KeyId"], Message=prehashed, MessageType="DIGEST", SigningAlgorithm=algorithm
    )["Signature"]
    assert kms.verify(
        KeyId=key["KeyId"], Message=message, Signature=digest_sig, SigningAlgorithm=algorithm
    )["SignatureValid"]
    # A tampered signature or message is KMSInvalidSignatureException.
    bad = bytearray(sig)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(ClientError) as err:
        kms.verify(KeyId=key["KeyId"], Message=message, Signature=bytes(bad),
                   SigningAlgorithm=algorithm)  # fmt: skip
    assert code(err) == "KMSInvalidSignatureException"
    with pytest.raises(ClientError) as err:
        kms.verify(KeyId=key["KeyId"], Message=message + b"!", Signature=sig,
                   SigningAlgorithm=algorithm)  # fmt: skip
    assert code(err) == "KMSInvalidSignatureException"


def test_ecdsa_signature_verifies_with_cryptography(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sig = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(sig, b"m", ec.ECDSA(hashes.SHA256()))  # raises if invalid


def test_signing_rules(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    for kwargs, expected in [
        ({"Message": b"x", "SigningAlgorithm": "ECDSA_SHA_384"}, "InvalidKeyUsageException"),
        ({"Message": b"x" * 4097, "SigningAlgorithm": "ECDSA_SHA_256"}, "ValidationException"),
        (
            {"Message": b"short", "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"},
            "ValidationException",
        ),
    ]:
        with pytest.raises(ClientError) as err:
            kms.sign(KeyId=key_id, **kwargs)
        assert code(err) == expected, kwargs
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(err) == "InvalidKeyUsageException"
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        kms.get_public_key(KeyId=symmetric)
    assert code(err) == "UnsupportedOperationException"


def test_rsa_encryption_interoperates_with_openssl(kms: Any, tmp_path: Path) -> None:
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert key["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    pem = public_pem(tmp_path, kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    (tmp_path / "plain").write_bytes(b"offline secret")
    offline = openssl(
        "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pem), "-in", str(tmp_path / "plain"),
        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
        "-pkeyopt", "rsa_mgf1_md:sha256",
    )  # fmt: skip
    plain = kms.decrypt(
        KeyId=key["KeyId"], CiphertextBlob=offline, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert plain["Plaintext"] == b"offline secret"
    # And the other way: Sealbox encrypts, cryptography can't decrypt without the
    # private key, but Sealbox round-trips with SHA-1 OAEP too.
    blob = kms.encrypt(
        KeyId=key["KeyId"], Plaintext=b"x" * 214, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
    )["CiphertextBlob"]
    assert len(blob) == 256
    assert (
        kms.decrypt(
            KeyId=key["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
        )["Plaintext"]
        == b"x" * 214
    )
    for kwargs, expected in [
        ({"Plaintext": b"x"}, "InvalidKeyUsageException"),  # no algorithm given
        ({"Plaintext": b"x" * 191, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
         "ValidationException"),
        ({"Plaintext": b"x", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256",
          "EncryptionContext": {"a": "b"}}, "ValidationException"),
    ]:  # fmt: skip
        with pytest.raises(ClientError) as err:
            kms.encrypt(KeyId=key["KeyId"], **kwargs)
        assert code(err) == expected, kwargs
    with pytest.raises(ClientError) as err:
        kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=offline[:-1] + b"\0",
                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")  # fmt: skip
    assert code(err) == "InvalidCiphertextException"


def test_hmac_keys(kms: Any) -> None:
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert key["MacAlgorithms"] == ["HMAC_SHA_256"]
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"msg", MacAlgorithm="HMAC_SHA_256")
    assert len(mac["Mac"]) == 32
    again = kms.generate_mac(KeyId=key["KeyId"], Message=b"msg", MacAlgorithm="HMAC_SHA_256")
    assert again["Mac"] == mac["Mac"]  # deterministic
    ok = kms.verify_mac(
        KeyId=key["KeyId"], Message=b"msg", Mac=mac["Mac"], MacAlgorithm="HMAC_SHA_256"
    )
    assert ok["MacValid"] is True
    with pytest.raises(ClientError) as err:
        kms.verify_mac(KeyId=key["KeyId"], Message=b"msg!", Mac=mac["Mac"],
                       MacAlgorithm="HMAC_SHA_256")  # fmt: skip
    assert code(err) == "KMSInvalidMacException"
    with pytest.raises(ClientError) as err:
        kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512")
    assert code(err) == "InvalidKeyUsageException"


def test_derive_shared_secret_matches_the_peer(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"][
        "KeyId"
    ]
    peer = ec.generate_private_key(ec.SECP256R1())
    peer_spki = peer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = kms.derive_shared_secret(
        KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer_spki
    )["SharedSecret"]
    kms_public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    assert secret == peer.exchange(ec.ECDH(), kms_public)
    wrong_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ClientError) as err:
        kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=wrong_curve)
    assert code(err) == "ValidationException"


def test_generate_data_key_pair(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(
        KeyId=key_id, KeyPairSpec="ECC_NIST_P256", EncryptionContext={"use": "tls"}
    )
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == pair["PublicKey"]
    )
    back = kms.decrypt(
        CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext={"use": "tls"}
    )
    assert back["Plaintext"] == pair["PrivateKeyPlaintext"]
    no_plain = kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec="RSA_2048")
    assert "PrivateKeyPlaintext" not in no_plain
    rsa_key = serialization.load_der_public_key(no_plain["PublicKey"])
    assert rsa_key.key_size == 2048  # type: ignore[union-attr]
    signer = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        kms.generate_data_key_pair(KeyId=signer, KeyPairSpec="RSA_2048")
    assert code(err) == "InvalidKeyUsageException"


def test_key_last_usage_comes_from_real_use(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"][
        "KeyId"
    ]
    assert "KeyLastUsage" not in kms.get_key_last_usage(KeyId=key_id)
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_384")
    usage = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
    assert usage["Operation"] == "GenerateMac"
    assert usage["KmsRequestId"] == mac["ResponseMetadata"]["RequestId"]


def test_private_keys_never_rest_in_plaintext(make_server: Any) -> None:
    srv: ServerProcess = make_server()
    kms = srv.client()
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.sign(KeyId=key_id, Message=b"x", SigningAlgorithm="RSASSA_PSS_SHA_256")
    pair = kms.generate_data_key_pair(KeyId=kms.create_key()["KeyMetadata"]["KeyId"],
                                      KeyPairSpec="ECC_NIST_P256")  # fmt: skip
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    modulus = public.public_numbers().n  # type: ignore[union-attr]
    srv.stop()
    for path in [p for p in srv.data_dir.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        assert pair["PrivateKeyPlaintext"] not in content
        assert b"PRIVATE KEY" not in content
        # A PKCS#8 RSA key holds the modulus next to its private exponent.
        assert modulus.to_bytes(256, "big") not in content, path


def test_pss_signature_verifies_with_cryptography(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sig = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    public.verify(  # type: ignore[union-attr,call-arg]
        sig, b"m", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
    )
