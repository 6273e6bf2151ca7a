"""Importing key material: unwrap what AWS's documented openssl procedure produces."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sealbox import crypto
from sealbox.crypto import asymmetric, wrap

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")

OAEP_MD = {
    "RSAES_OAEP_SHA_1": "sha1",
    "RSAES_OAEP_SHA_256": "sha256",
    "RSA_AES_KEY_WRAP_SHA_1": "sha1",
    "RSA_AES_KEY_WRAP_SHA_256": "sha256",
}


@functools.cache
def wrapping_key(spec: str = "RSA_2048") -> tuple[bytes, bytes]:
    return wrap.new_wrapping_key(spec)


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def aws_wrap(tmp: Path, public_der: bytes, algorithm: str, material: bytes) -> bytes:
    """EncryptedKeyMaterial made exactly as AWS's ImportKeyMaterial guide does it."""
    pub = tmp / "WrappingPublicKey.bin"
    pub.write_bytes(public_der)
    md = OAEP_MD[algorithm]
    oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}"]
    oaep += ["-pkeyopt", f"rsa_mgf1_md:{md}"]
    rsa = ["pkeyutl", "-encrypt", "-inkey", str(pub), "-keyform", "DER", "-pubin", *oaep]
    (tmp / "material.der").write_bytes(material)
    if algorithm.startswith("RSAES_OAEP_"):
        return openssl(*rsa, "-in", str(tmp / "material.der"))
    aes_key = os.urandom(32)
    (tmp / "aes-key.bin").write_bytes(aes_key)
    wrapped_material = openssl(
        "enc",
        "-id-aes256-wrap-pad",
        "-K",
        aes_key.hex(),
        "-iv",
        "A65959A6",
        "-in",
        str(tmp / "material.der"),
    )
    wrapped_aes_key = openssl(*rsa, "-in", str(tmp / "aes-key.bin"))
    return wrapped_aes_key + wrapped_material


@needs_openssl
@pytest.mark.parametrize("algorithm", sorted(OAEP_MD))
@pytest.mark.parametrize("length", [32, 28, 64, 1, 8, 9])
def test_aws_procedure_unwraps(algorithm: str, length: int, tmp_path: Path) -> None:
    private_der, public_der = wrapping_key()
    material = os.urandom(length)
    wrapped = aws_wrap(tmp_path, public_der, algorithm, material)
    assert wrap.unwrap_import(private_der, algorithm, wrapped) == material


@needs_openssl
@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_4096", "ECC_NIST_P521", "ECC_SECG_P256K1"])
def test_asymmetric_material_unwraps_with_aes_key_wrap(spec: str, tmp_path: Path) -> None:
    private_der, public_der = wrapping_key("RSA_4096")
    material = asymmetric.generate_private_key(spec)
    wrapped = aws_wrap(tmp_path, public_der, "RSA_AES_KEY_WRAP_SHA_256", material)
    assert len(wrapped) > 512
    unwrapped = wrap.unwrap_import(private_der, "RSA_AES_KEY_WRAP_SHA_256", wrapped)
    assert unwrapped == material
    asymmetric.check_private_key(unwrapped, spec)


@needs_openssl
def test_wrapping_key_is_what_openssl_reads(tmp_path: Path) -> None:
    for spec, bits in [("RSA_2048", 2048), ("RSA_3072", 3072)]:
        private_der, public_der = wrapping_key(spec)
        path = tmp_path / "k.der"
        path.write_bytes(private_der)
        pub = openssl("pkey", "-inform", "DER", "-in", str(path), "-pubout", "-outform", "DER")
        assert pub == public_der
        assert f"({bits} bit".encode() in openssl(
            "pkey", "-inform", "DER", "-in", str(path), "-noout", "-text"
        )
    with pytest.raises(ValueError):
        wrap.new_wrapping_key("SM2")


@needs_openssl
@pytest.mark.parametrize("algorithm", sorted(OAEP_MD))
def test_tampering_is_invalid_ciphertext(algorithm: str, tmp_path: Path) -> None:
    private_der, public_der = wrapping_key()
    wrapped = aws_wrap(tmp_path, public_der, algorithm, os.urandom(32))
    positions = [0, 100, 255] + ([256, 263, 264, len(wrapped) - 1] if len(wrapped) > 256 else [])
    for i in positions:
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises(crypto.InvalidCiphertext):
            wrap.unwrap_import(private_der, algorithm, bytes(tampered))
    for bad in [b"", wrapped[:-1], wrapped[:-8], wrapped + b"\x00", wrapped + bytes(8)]:
        with pytest.raises(crypto.InvalidCiphertext):
            wrap.unwrap_import(private_der, algorithm, bad)
    with pytest.raises(crypto.InvalidCiphertext):
        wrap.unwrap_import(wrap.new_wrapping_key("RSA_2048")[0], algorithm, wrapped)


@needs_openssl
def test_wrong_algorithm_is_invalid_ciphertext(tmp_path: Path) -> None:
    private_der, public_der = wrapping_key()
    material = os.urandom(32)
    for made_with, claimed in [
        ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"),
        ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSAES_OAEP_SHA_256"),
        ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"),
    ]:
        wrapped = aws_wrap(tmp_path, public_der, made_with, material)
        with pytest.raises(crypto.InvalidCiphertext):
            wrap.unwrap_import(private_der, claimed, wrapped)


def test_unknown_algorithm_or_bad_wrapping_key_is_value_error() -> None:
    private_der, public_der = wrapping_key()
    for algorithm in ["RSAES_PKCS1_V1_5", "SM2PKE", ""]:
        with pytest.raises(ValueError):
            wrap.unwrap_import(private_der, algorithm, bytes(256))
    for not_a_wrapping_key in [b"", public_der, asymmetric.generate_private_key("ECC_NIST_P256")]:
        with pytest.raises(ValueError):
            wrap.unwrap_import(not_a_wrapping_key, "RSAES_OAEP_SHA_256", bytes(256))


def test_material_fingerprint() -> None:
    material = os.urandom(32)
    fp = wrap.material_fingerprint(material)
    assert fp == wrap.material_fingerprint(bytes(material))
    assert len(fp) == 64
    int(fp, 16)
    assert fp != wrap.material_fingerprint(material[:-1] + bytes([material[-1] ^ 1]))
    assert fp != hashlib.sha256(material).hexdigest()
    assert material.hex() not in fp
