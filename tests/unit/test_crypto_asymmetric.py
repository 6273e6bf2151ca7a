"""Asymmetric KMS keys: interoperability with the openssl command line, and failures."""

from __future__ import annotations

import base64
import functools
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from sealbox import crypto
from sealbox.crypto import asymmetric as asym

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")

RSA = ["RSA_2048", "RSA_3072", "RSA_4096"]
ECC = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"]
ML_DSA = ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"]
OPENSSL_CURVE = {
    "ECC_NIST_P256": "P-256",
    "ECC_NIST_P384": "P-384",
    "ECC_NIST_P521": "P-521",
    "ECC_SECG_P256K1": "secp256k1",
}
HASH = {"SHA_256": "sha256", "SHA_384": "sha384", "SHA_512": "sha512"}
RSA_SIGNING = [
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
]
EC_SIGNING = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
MESSAGE = b"the quick brown fox jumps over the lazy dog" * 3
has_ml_dsa = pytest.mark.skipif(
    "ML_DSA_44" not in asym.supported_specs(), reason="backend lacks ML-DSA"
)


@functools.cache
def key(spec: str) -> bytes:
    """One private key per spec for the whole module (RSA generation is slow)."""
    return asym.generate_private_key(spec)


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


def pss_opts(algorithm: str) -> list[str]:
    if "PSS" not in algorithm:
        return []
    return ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]


def openssl_verifies(tmp: Path, spec: str, algorithm: str, message: bytes, sig: bytes) -> bool:
    pub = write(tmp, "pub.pem", pem(asym.public_key_der(key(spec)), "PUBLIC KEY"))
    args = ["dgst", f"-{HASH[algorithm[-7:]]}", "-verify", pub, "-signature"]
    args += [write(tmp, "sig", sig), *pss_opts(algorithm), write(tmp, "msg", message)]
    result = subprocess.run(["openssl", *args], capture_output=True)
    return result.returncode == 0 and b"Verified OK" in result.stdout


# --- key generation and formats ------------------------------------------------------


def test_supported_specs() -> None:
    assert set(RSA + ECC) <= asym.supported_specs()
    assert "SM2" not in asym.supported_specs()
    assert "SYMMETRIC_DEFAULT" not in asym.supported_specs()
    with pytest.raises(ValueError):
        asym.generate_private_key("SM2")


@needs_openssl
@pytest.mark.parametrize("spec", RSA + ECC)
def test_pkcs8_and_spki_agree_with_openssl(spec: str, tmp_path: Path) -> None:
    private_der = key(spec)
    asym.check_private_key(private_der, spec)
    public_der = asym.public_key_der(private_der)
    asym.load_public_key_check(public_der, spec)
    path = write(tmp_path, "k.der", private_der)
    from_openssl = openssl("pkey", "-inform", "DER", "-in", path, "-pubout", "-outform", "DER")
    assert from_openssl == public_der
    text = openssl("pkey", "-inform", "DER", "-in", path, "-noout", "-text").decode()
    if spec in RSA:
        assert f"({spec[4:]} bit" in text
        assert "publicExponent: 65537" in text
    else:
        assert {"P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"}.get(
            OPENSSL_CURVE[spec], OPENSSL_CURVE[spec]
        ) in text


def test_check_private_key_rejects_mismatch_and_garbage() -> None:
    with pytest.raises(ValueError):
        asym.check_private_key(key("ECC_NIST_P256"), "ECC_NIST_P384")
    with pytest.raises(ValueError):
        asym.check_private_key(key("RSA_2048"), "RSA_3072")
    for junk in [b"", b"\x30\x00", key("RSA_2048")[:-5]]:
        with pytest.raises(ValueError):
            asym.check_private_key(junk, "RSA_2048")


def test_load_public_key_check() -> None:
    p256 = asym.public_key_der(key("ECC_NIST_P256"))
    asym.load_public_key_check(p256, "ECC_NIST_P256")
    for spec in ["ECC_NIST_P384", "ECC_SECG_P256K1", "RSA_2048"]:
        with pytest.raises(ValueError):
            asym.load_public_key_check(p256, spec)
    off_curve = bytearray(p256)
    off_curve[-1] ^= 0x01  # the point's y coordinate no longer satisfies the curve equation
    for junk in [b"", b"not der", p256[:-1], bytes(off_curve), key("ECC_NIST_P256")]:
        with pytest.raises(ValueError):
            asym.load_public_key_check(junk, "ECC_NIST_P256")


@pytest.mark.parametrize("spec", RSA + ECC)
def test_generate_data_key_pair(spec: str) -> None:
    private_der, public_der = asym.generate_data_key_pair(spec)
    asym.check_private_key(private_der, spec)
    assert asym.public_key_der(private_der) == public_der
    assert private_der != key(spec)


@pytest.mark.parametrize("spec", ["SM2", "ML_DSA_44", "HMAC_256", "SYMMETRIC_DEFAULT"])
def test_generate_data_key_pair_rejects_other_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        asym.generate_data_key_pair(spec)


def test_signing_algorithms_table() -> None:
    for spec in RSA:
        assert set(asym.signing_algorithms(spec)) == set(RSA_SIGNING)
    for spec, alg in EC_SIGNING.items():
        assert asym.signing_algorithms(spec) == (alg,)
    with pytest.raises(ValueError):
        asym.signing_algorithms("HMAC_256")


# --- Sign / Verify -------------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("algorithm", RSA_SIGNING)
def test_rsa_signatures_verify_with_openssl(algorithm: str, tmp_path: Path) -> None:
    sig = asym.sign(key("RSA_2048"), algorithm, MESSAGE, "RAW")
    assert len(sig) == 256
    assert openssl_verifies(tmp_path, "RSA_2048", algorithm, MESSAGE, sig)
    assert not openssl_verifies(tmp_path, "RSA_2048", algorithm, MESSAGE + b"!", sig)
    assert asym.verify(key("RSA_2048"), algorithm, MESSAGE, "RAW", sig)


@needs_openssl
@pytest.mark.parametrize("spec", ["RSA_3072", "RSA_4096"])
def test_larger_rsa_keys_sign_pss_for_openssl(spec: str, tmp_path: Path) -> None:
    sig = asym.sign(key(spec), "RSASSA_PSS_SHA_512", MESSAGE, "RAW")
    assert len(sig) == int(spec[4:]) // 8
    assert openssl_verifies(tmp_path, spec, "RSASSA_PSS_SHA_512", MESSAGE, sig)


@needs_openssl
@pytest.mark.parametrize("spec", ECC)
def test_ecdsa_signatures_verify_with_openssl(spec: str, tmp_path: Path) -> None:
    algorithm = EC_SIGNING[spec]
    sig = asym.sign(key(spec), algorithm, MESSAGE, "RAW")
    assert sig[0] == 0x30  # DER SEQUENCE, as AWS returns
    assert openssl_verifies(tmp_path, spec, algorithm, MESSAGE, sig)
    assert not openssl_verifies(tmp_path, spec, algorithm, MESSAGE + b"!", sig)


@needs_openssl
@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ],
)
def test_openssl_signatures_verify_here(spec: str, algorithm: str, tmp_path: Path) -> None:
    private_pem = write(tmp_path, "k.pem", pem(key(spec), "PRIVATE KEY"))
    msg = write(tmp_path, "msg", MESSAGE)
    args = ["dgst", f"-{HASH[algorithm[-7:]]}", "-sign", private_pem, *pss_opts(algorithm), msg]
    sig = openssl(*args)
    public_der = asym.public_key_der(key(spec))
    assert asym.verify(public_der, algorithm, MESSAGE, "RAW", sig)
    assert not asym.verify(public_der, algorithm, MESSAGE[:-1], "RAW", sig)


@needs_openssl
@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [("RSA_2048", a) for a in RSA_SIGNING] + list(EC_SIGNING.items()),
)
def test_digest_mode_equals_raw_mode(spec: str, algorithm: str, tmp_path: Path) -> None:
    digest = hashlib.new(HASH[algorithm[-7:]], MESSAGE).digest()
    sig = asym.sign(key(spec), algorithm, digest, "DIGEST")
    # A signature over the digest is a signature over the raw message...
    assert openssl_verifies(tmp_path, spec, algorithm, MESSAGE, sig)
    assert asym.verify(key(spec), algorithm, MESSAGE, "RAW", sig)
    assert asym.verify(key(spec), algorithm, digest, "DIGEST", sig)
    # ...and the other way round.
    raw_sig = asym.sign(key(spec), algorithm, MESSAGE, "RAW")
    assert asym.verify(asym.public_key_der(key(spec)), algorithm, digest, "DIGEST", raw_sig)
    # Deterministic PKCS#1 v1.5 gives byte-identical signatures.
    if "PKCS1" in algorithm:
        assert raw_sig == sig


@pytest.mark.parametrize(
    ("spec", "algorithm"), [("RSA_2048", "RSASSA_PSS_SHA_384"), ("ECC_NIST_P256", "ECDSA_SHA_256")]
)
def test_digest_of_wrong_length_is_rejected(spec: str, algorithm: str) -> None:
    good = asym.sign(key(spec), algorithm, MESSAGE, "RAW")
    for digest in [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64]:
        with pytest.raises(ValueError):
            asym.sign(key(spec), algorithm, digest, "DIGEST")
        with pytest.raises(ValueError):
            asym.verify(key(spec), algorithm, digest, "DIGEST", good)
    with pytest.raises(ValueError):
        asym.sign(key(spec), algorithm, MESSAGE, "EXTERNAL_MU")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_384"),
        ("ECC_NIST_P256", "ECDSA_SHA_512"),
        ("ECC_NIST_P384", "ECDSA_SHA_256"),
        ("ECC_NIST_P521", "ECDSA_SHA_384"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_512"),
        ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "ECDSA_SHA_256"),
        ("RSA_2048", "RSASSA_PSS_SHA_1"),
        ("RSA_2048", "ML_DSA_SHAKE_256"),
        ("RSA_2048", "RSAES_OAEP_SHA_256"),
    ],
)
def test_algorithm_that_does_not_fit_the_key(spec: str, algorithm: str) -> None:
    with pytest.raises(ValueError):
        asym.sign(key(spec), algorithm, MESSAGE, "RAW")
    with pytest.raises(ValueError):
        asym.verify(key(spec), algorithm, MESSAGE, "RAW", b"\x00" * 64)


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [("RSA_2048", "RSASSA_PSS_SHA_256"), ("RSA_2048", RSA_SIGNING[0]), *EC_SIGNING.items()],
)
def test_bad_signatures_are_false_never_errors(spec: str, algorithm: str) -> None:
    sig = asym.sign(key(spec), algorithm, MESSAGE, "RAW")
    public_der = asym.public_key_der(key(spec))
    assert asym.verify(public_der, algorithm, MESSAGE, "RAW", sig)
    for i in [0, 1, len(sig) // 2, len(sig) - 1]:
        tampered = bytearray(sig)
        tampered[i] ^= 0x01
        assert not asym.verify(public_der, algorithm, MESSAGE, "RAW", bytes(tampered))
    for junk in [b"", b"\x30", b"\x30\x00", b"\xff" * 8, sig + b"\x00", sig[:-1], b"\x00" * 600]:
        assert not asym.verify(public_der, algorithm, MESSAGE, "RAW", junk)
    other = asym.sign(asym.generate_data_key_pair(spec)[0], algorithm, MESSAGE, "RAW")
    assert not asym.verify(public_der, algorithm, MESSAGE, "RAW", other)


def test_garbage_keys_are_value_errors() -> None:
    for junk in [b"", b"\x30\x00", b"garbage"]:
        with pytest.raises(ValueError):
            asym.sign(junk, "ECDSA_SHA_256", MESSAGE, "RAW")
        with pytest.raises(ValueError):
            asym.verify(junk, "ECDSA_SHA_256", MESSAGE, "RAW", b"sig")
        with pytest.raises(ValueError):
            asym.public_key_der(junk)
    with pytest.raises(ValueError):  # a public key cannot sign
        asym.sign(asym.public_key_der(key("ECC_NIST_P256")), "ECDSA_SHA_256", MESSAGE, "RAW")


@has_ml_dsa
@pytest.mark.parametrize("spec", ML_DSA)
def test_ml_dsa_sign_verify(spec: str) -> None:
    private_der = asym.generate_private_key(spec)
    asym.check_private_key(private_der, spec)
    public_der = asym.public_key_der(private_der)
    asym.load_public_key_check(public_der, spec)
    assert asym.signing_algorithms(spec) == ("ML_DSA_SHAKE_256",)
    sig = asym.sign(private_der, "ML_DSA_SHAKE_256", MESSAGE, "RAW")
    assert asym.verify(public_der, "ML_DSA_SHAKE_256", MESSAGE, "RAW", sig)
    assert asym.verify(private_der, "ML_DSA_SHAKE_256", MESSAGE, "RAW", sig)
    tampered = bytearray(sig)
    tampered[10] ^= 0x01
    for bad in [bytes(tampered), sig[:-1], b"", sig + b"\x00"]:
        assert not asym.verify(public_der, "ML_DSA_SHAKE_256", MESSAGE, "RAW", bad)
    assert not asym.verify(public_der, "ML_DSA_SHAKE_256", MESSAGE + b"!", "RAW", sig)
    with pytest.raises(ValueError):
        asym.sign(private_der, "ML_DSA_SHAKE_256", hashlib.sha256(MESSAGE).digest(), "DIGEST")
    with pytest.raises(ValueError):
        asym.sign(private_der, "ECDSA_SHA_256", MESSAGE, "RAW")
    with pytest.raises(ValueError):
        asym.generate_data_key_pair(spec)


# --- RSA Encrypt / Decrypt -----------------------------------------------------------


def test_rsa_max_plaintext_matches_aws() -> None:
    expected = {
        ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
        ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
        ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
        ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
        ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
        ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
    }
    for (spec, algorithm), n in expected.items():
        assert asym.rsa_max_plaintext(spec, algorithm) == n
    with pytest.raises(ValueError):
        asym.rsa_max_plaintext("ECC_NIST_P256", "RSAES_OAEP_SHA_256")
    with pytest.raises(ValueError):
        asym.rsa_max_plaintext("RSA_2048", "RSAES_PKCS1_V1_5")


@needs_openssl
@pytest.mark.parametrize(
    ("algorithm", "md", "explicit_mgf1"),
    [
        ("RSAES_OAEP_SHA_256", "sha256", False),
        ("RSAES_OAEP_SHA_256", "sha256", True),
        ("RSAES_OAEP_SHA_1", "sha1", False),
    ],
)
def test_openssl_oaep_ciphertext_decrypts(
    algorithm: str, md: str, explicit_mgf1: bool, tmp_path: Path
) -> None:
    public_der = asym.public_key_der(key("RSA_2048"))
    pub = write(tmp_path, "pub.der", public_der)
    plaintext = b"\x01" * asym.rsa_max_plaintext("RSA_2048", algorithm)
    args = ["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", pub]
    args += ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}"]
    if explicit_mgf1:
        args += ["-pkeyopt", f"rsa_mgf1_md:{md}"]
    ciphertext = openssl(*args, "-in", write(tmp_path, "pt", plaintext))
    assert asym.rsa_decrypt(key("RSA_2048"), algorithm, ciphertext) == plaintext
    other = "RSAES_OAEP_SHA_1" if algorithm == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
    with pytest.raises(crypto.InvalidCiphertext):
        asym.rsa_decrypt(key("RSA_2048"), other, ciphertext)


@needs_openssl
@pytest.mark.parametrize("spec", RSA)
def test_ciphertext_decrypts_with_openssl(spec: str, tmp_path: Path) -> None:
    plaintext = b"secret data key material"
    ciphertext = asym.rsa_encrypt(asym.public_key_der(key(spec)), "RSAES_OAEP_SHA_256", plaintext)
    assert len(ciphertext) == int(spec[4:]) // 8
    args = ["pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", write(tmp_path, "k", key(spec))]
    args += ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256"]
    args += ["-pkeyopt", "rsa_mgf1_md:sha256", "-in", write(tmp_path, "ct", ciphertext)]
    assert openssl(*args) == plaintext


def test_rsa_encrypt_limits_and_round_trip() -> None:
    for algorithm in ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]:
        limit = asym.rsa_max_plaintext("RSA_2048", algorithm)
        for plaintext in [b"", b"x", b"y" * limit]:
            ct = asym.rsa_encrypt(key("RSA_2048"), algorithm, plaintext)
            assert asym.rsa_decrypt(key("RSA_2048"), algorithm, ct) == plaintext
        with pytest.raises(ValueError):
            asym.rsa_encrypt(key("RSA_2048"), algorithm, b"z" * (limit + 1))
    with pytest.raises(ValueError):
        asym.rsa_encrypt(key("ECC_NIST_P256"), "RSAES_OAEP_SHA_256", b"x")
    with pytest.raises(ValueError):
        asym.rsa_encrypt(key("RSA_2048"), "SYMMETRIC_DEFAULT", b"x")


def test_rsa_decrypt_failures_are_invalid_ciphertext() -> None:
    ct = asym.rsa_encrypt(key("RSA_2048"), "RSAES_OAEP_SHA_256", b"secret")
    for i in [0, 100, 255]:
        tampered = bytearray(ct)
        tampered[i] ^= 0x01
        with pytest.raises(crypto.InvalidCiphertext):
            asym.rsa_decrypt(key("RSA_2048"), "RSAES_OAEP_SHA_256", bytes(tampered))
    for bad in [b"", ct[:-1], ct + b"\x00", b"\xff" * 256, b"\x00" * 256]:
        with pytest.raises(crypto.InvalidCiphertext):
            asym.rsa_decrypt(key("RSA_2048"), "RSAES_OAEP_SHA_256", bad)
    other = asym.generate_data_key_pair("RSA_2048")[0]
    with pytest.raises(crypto.InvalidCiphertext):
        asym.rsa_decrypt(other, "RSAES_OAEP_SHA_256", ct)
    with pytest.raises(crypto.InvalidCiphertext):  # a 3072-bit key gets a 2048-bit ciphertext
        asym.rsa_decrypt(key("RSA_3072"), "RSAES_OAEP_SHA_256", ct)
    with pytest.raises(ValueError):
        asym.rsa_decrypt(key("ECC_NIST_P256"), "RSAES_OAEP_SHA_256", ct)


# --- DeriveSharedSecret --------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("spec", ECC)
def test_ecdh_matches_openssl_derive(spec: str, tmp_path: Path) -> None:
    peer_pem = openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{OPENSSL_CURVE[spec]}"
    )
    peer = write(tmp_path, "peer.pem", peer_pem)
    peer_spki = openssl("pkey", "-in", peer, "-pubout", "-outform", "DER")
    ours = write(tmp_path, "ours.pem", pem(asym.public_key_der(key(spec)), "PUBLIC KEY"))
    expected = openssl("pkeyutl", "-derive", "-inkey", peer, "-peerkey", ours)
    secret = asym.derive_shared_secret(key(spec), peer_spki)
    assert secret == expected
    field_bytes = {"P-256": 32, "P-384": 48, "P-521": 66, "secp256k1": 32}[OPENSSL_CURVE[spec]]
    assert len(secret) == field_bytes


def test_ecdh_is_symmetric() -> None:
    a_priv, a_pub = asym.generate_data_key_pair("ECC_NIST_P384")
    b_priv, b_pub = asym.generate_data_key_pair("ECC_NIST_P384")
    assert asym.derive_shared_secret(a_priv, b_pub) == asym.derive_shared_secret(b_priv, a_pub)


@pytest.mark.parametrize(
    "peer_spec", ["ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "RSA_2048"]
)
def test_ecdh_rejects_peer_on_another_curve(peer_spec: str) -> None:
    peer = asym.public_key_der(key(peer_spec))
    with pytest.raises(ValueError):
        asym.derive_shared_secret(key("ECC_NIST_P256"), peer)


def test_ecdh_rejects_malformed_peer_and_non_ec_keys() -> None:
    peer = asym.public_key_der(key("ECC_NIST_P256"))
    off_curve = bytearray(peer)
    off_curve[-1] ^= 0x01
    for junk in [b"", b"\x30\x00", peer[:-1], bytes(off_curve), key("ECC_NIST_P256")]:
        with pytest.raises(ValueError):
            asym.derive_shared_secret(key("ECC_NIST_P256"), junk)
    with pytest.raises(ValueError):
        asym.derive_shared_secret(key("RSA_2048"), peer)
