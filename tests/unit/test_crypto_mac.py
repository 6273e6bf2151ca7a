"""HMAC KMS keys: GenerateMac/VerifyMac against openssl and the stdlib, and failures."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess

import pytest

from sealbox.crypto import mac

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")

SPECS = {
    "HMAC_224": ("HMAC_SHA_224", "sha224", 28),
    "HMAC_256": ("HMAC_SHA_256", "sha256", 32),
    "HMAC_384": ("HMAC_SHA_384", "sha384", 48),
    "HMAC_512": ("HMAC_SHA_512", "sha512", 64),
}
MESSAGE = b"GenerateMac message \x00\xff" * 10


@pytest.mark.parametrize("spec", SPECS)
def test_new_key_lengths_and_algorithm(spec: str) -> None:
    algorithm, _, length = SPECS[spec]
    key = mac.new_hmac_key(spec)
    assert len(key) == length
    assert key != mac.new_hmac_key(spec)
    assert mac.mac_algorithm(spec) == algorithm
    mac.check_hmac_key(spec, key)


def test_unknown_spec() -> None:
    for call in (mac.new_hmac_key, mac.mac_algorithm):
        with pytest.raises(ValueError):
            call("HMAC_128")
    with pytest.raises(ValueError):
        mac.check_hmac_key("RSA_2048", bytes(32))


@needs_openssl
@pytest.mark.parametrize("spec", SPECS)
def test_mac_matches_openssl_and_stdlib(spec: str) -> None:
    algorithm, md, _ = SPECS[spec]
    key = mac.new_hmac_key(spec)
    tag = mac.generate_mac(key, algorithm, MESSAGE, key_spec=spec)
    out = subprocess.run(
        ["openssl", "dgst", f"-{md}", "-mac", "HMAC", "-macopt", f"hexkey:{key.hex()}", "-binary"],
        input=MESSAGE,
        capture_output=True,
        check=True,
    ).stdout
    assert tag == out
    assert tag == hmac.new(key, MESSAGE, md).digest()
    assert len(tag) == hashlib.new(md).digest_size
    assert mac.verify_mac(key, algorithm, MESSAGE, tag, key_spec=spec)
    assert mac.verify_mac(key, algorithm, MESSAGE, tag)


def test_imported_lengths_follow_aws_ranges() -> None:
    ranges = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128)}
    ranges["HMAC_512"] = (64, 128)
    for spec, (lo, hi) in ranges.items():
        algorithm, md, _ = SPECS[spec]
        for n in (lo, hi):
            key = bytes(range(n))
            mac.check_hmac_key(spec, key)
            expected = hmac.new(key, MESSAGE, md).digest()
            assert mac.generate_mac(key, algorithm, MESSAGE, key_spec=spec) == expected
        for n in (0, lo - 1, hi + 1):
            with pytest.raises(ValueError):
                mac.check_hmac_key(spec, bytes(n))
            with pytest.raises(ValueError):
                mac.generate_mac(bytes(n), algorithm, MESSAGE)
            with pytest.raises(ValueError):
                mac.verify_mac(bytes(n), algorithm, MESSAGE, bytes(32))


def test_verify_rejects_any_mismatch() -> None:
    key = mac.new_hmac_key("HMAC_256")
    tag = mac.generate_mac(key, "HMAC_SHA_256", MESSAGE)
    for i in (0, 15, 31):
        tampered = bytearray(tag)
        tampered[i] ^= 0x01
        assert not mac.verify_mac(key, "HMAC_SHA_256", MESSAGE, bytes(tampered))
    for bad in (b"", tag[:-1], tag[:16], tag + b"\x00", tag * 2):
        assert not mac.verify_mac(key, "HMAC_SHA_256", MESSAGE, bad)
    assert not mac.verify_mac(key, "HMAC_SHA_256", MESSAGE + b"!", tag)
    assert not mac.verify_mac(mac.new_hmac_key("HMAC_256"), "HMAC_SHA_256", MESSAGE, tag)
    assert mac.generate_mac(key, "HMAC_SHA_256", b"") != tag


def test_algorithm_must_fit_the_key_spec() -> None:
    key = mac.new_hmac_key("HMAC_512")
    for algorithm in ("HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384"):
        with pytest.raises(ValueError):
            mac.generate_mac(key, algorithm, MESSAGE, key_spec="HMAC_512")
        with pytest.raises(ValueError):
            mac.verify_mac(key, algorithm, MESSAGE, bytes(64), key_spec="HMAC_512")
    for algorithm in ("HMAC_SHA_1", "HMAC_SHA_512_256", "hmac_sha_256", ""):
        with pytest.raises(ValueError):
            mac.generate_mac(key, algorithm, MESSAGE)
    # Without key_spec the key length still has to be possible for the algorithm.
    with pytest.raises(ValueError):
        mac.generate_mac(mac.new_hmac_key("HMAC_256"), "HMAC_SHA_512", MESSAGE)
