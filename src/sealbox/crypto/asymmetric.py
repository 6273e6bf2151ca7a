"""Asymmetric KMS keys with AWS KMS semantics: Sign/Verify, RSA Encrypt/Decrypt, ECDH.

Formats (all DER, as AWS KMS uses them):

- private keys: PKCS#8 ``PrivateKeyInfo``, unencrypted. Sealbox wraps and stores these;
  they are never logged. RSA keys use public exponent 65537.
- public keys: X.509 ``SubjectPublicKeyInfo`` (what GetPublicKey returns and what
  DeriveSharedSecret takes as the peer key).
- ECDSA signatures: ASN.1 DER ``Ecdsa-Sig-Value`` (SEQUENCE of r, s). RSA signatures are
  the modulus length. ML-DSA signatures are FIPS 204 raw bytes.
- ECDH output: the raw shared secret (the x-coordinate of the shared point, big-endian,
  padded to the field size), exactly as DeriveSharedSecret returns it; no KDF applied.

Algorithms per key spec (AWS's key spec reference):

- RSA_2048/3072/4096: RSASSA_PSS_SHA_256/384/512 (MGF1 with the same hash, salt length =
  digest length), RSASSA_PKCS1_V1_5_SHA_256/384/512; RSAES_OAEP_SHA_1/256 (MGF1 with the
  same hash, empty label).
- ECC_NIST_P256 and ECC_SECG_P256K1: ECDSA_SHA_256; ECC_NIST_P384: ECDSA_SHA_384;
  ECC_NIST_P521: ECDSA_SHA_512. ECDH on all four curves here (AWS allows KEY_AGREEMENT
  only for the NIST curves; that is the key-usage layer's rule, not this module's).
- ML_DSA_44/65/87 (when the installed backend has ML-DSA): ML_DSA_SHAKE_256, pure
  ML-DSA with an empty context, RAW messages only.

MessageType RAW means this module hashes the message; DIGEST means the message *is* the
digest (its length must equal the algorithm's digest length).

Stored private keys are loaded without re-running OpenSSL's RSA consistency check (it
costs ~0.2 s for RSA_4096): run ``check_private_key`` once when material enters Sealbox
(import), and everything Sealbox generates is valid by construction.
"""

from __future__ import annotations

import functools
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from sealbox.crypto.errors import InvalidCiphertext

try:
    from cryptography.hazmat.primitives.asymmetric import mldsa
except ImportError:  # pragma: no cover - cryptography < 47 has no ML-DSA
    mldsa = None  # type: ignore[assignment]

MessageType = Literal["RAW", "DIGEST"]

RSA_SPECS: dict[str, int] = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_SPECS: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
ML_DSA_SPECS = ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
DATA_KEY_PAIR_SPECS = frozenset(RSA_SPECS) | frozenset(EC_SPECS)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
_RSA_SIGNING = (
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
)
_EC_SIGNING: dict[str, str] = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
ML_DSA_SIGNING = "ML_DSA_SHAKE_256"
RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


@functools.cache
def supported_specs() -> frozenset[str]:
    """Every key spec generate_private_key accepts with the installed backend."""
    specs = set(RSA_SPECS) | set(EC_SPECS)
    if mldsa is not None:
        try:
            mldsa.MLDSA44PrivateKey.generate()
        except UnsupportedAlgorithm:
            pass
        else:
            specs.update(ML_DSA_SPECS)
    return frozenset(specs)


def signing_algorithms(spec: str) -> tuple[str, ...]:
    """The SigningAlgorithms AWS lists for a SIGN_VERIFY key of this spec."""
    if spec in RSA_SPECS:
        return _RSA_SIGNING
    if spec in EC_SPECS:
        return (_EC_SIGNING[spec],)
    if spec in ML_DSA_SPECS:
        return (ML_DSA_SIGNING,)
    raise ValueError("unsupported key spec")


def generate_private_key(spec: str) -> bytes:
    """A fresh private key of an AWS key spec, as DER PKCS#8."""
    if spec not in supported_specs():
        raise ValueError("unsupported key spec")
    key: PrivateKeyTypes
    if spec in RSA_SPECS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[spec])
    elif spec in EC_SPECS:
        key = ec.generate_private_key(EC_SPECS[spec]())
    else:
        key = _new_ml_dsa(spec)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_data_key_pair(spec: str) -> tuple[bytes, bytes]:
    """(private DER PKCS#8, public DER SPKI) for a GenerateDataKeyPair KeyPairSpec."""
    if spec not in DATA_KEY_PAIR_SPECS:
        raise ValueError("unsupported key pair spec")
    private_der = generate_private_key(spec)
    return private_der, public_key_der(private_der)


def public_key_der(private_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a stored private key (GetPublicKey's PublicKey)."""
    return _spki(_load_private(private_der).public_key())


def check_private_key(private_der: bytes, spec: str) -> None:
    """Fully validate imported PKCS#8 material; ValueError unless it is a key of spec."""
    try:
        key = serialization.load_der_private_key(private_der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("malformed private key") from None
    if _spec_of(key) != spec:
        raise ValueError("private key does not match the key spec")


def load_public_key_check(spki_der: bytes, spec: str) -> None:
    """ValueError unless spki_der is a well-formed DER SPKI public key of spec."""
    if _spec_of(_load_public(spki_der)) != spec:
        raise ValueError("public key does not match the key spec")


def sign(private_der: bytes, algorithm: str, message: bytes, message_type: MessageType) -> bytes:
    """Sign as KMS Sign does; ValueError if the algorithm or message doesn't fit the key."""
    key = _load_private(private_der)
    _check_signing_algorithm(_spec_of(key), algorithm)
    if isinstance(key, rsa.RSAPrivateKey):
        data, alg = _prepare(algorithm, message, message_type)
        return key.sign(data, _rsa_signature_padding(algorithm), alg)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        data, alg = _prepare(algorithm, message, message_type)
        return key.sign(data, ec.ECDSA(alg))
    if mldsa is not None and isinstance(
        key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
    ):
        _check_ml_dsa_message_type(message_type)
        return key.sign(message)
    raise ValueError("unsupported key type")  # pragma: no cover - _spec_of rejected it


def verify(
    public_or_private_der: bytes,
    algorithm: str,
    message: bytes,
    message_type: MessageType,
    signature: bytes,
) -> bool:
    """True iff signature is valid; False for any bad or malformed signature.

    ValueError only for a request that doesn't fit the key (algorithm, digest length).
    """
    key = _load_public_or_private(public_or_private_der)
    _check_signing_algorithm(_spec_of(key), algorithm)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            data, alg = _prepare(algorithm, message, message_type)
            key.verify(signature, data, _rsa_signature_padding(algorithm), alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            data, alg = _prepare(algorithm, message, message_type)
            key.verify(signature, data, ec.ECDSA(alg))
        elif mldsa is not None and isinstance(
            key, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
        ):
            _check_ml_dsa_message_type(message_type)
            key.verify(signature, message)
        else:  # pragma: no cover - _spec_of rejected it
            raise ValueError("unsupported key type")
    except InvalidSignature:
        return False
    return True


def rsa_max_plaintext(spec: str, algorithm: str) -> int:
    """Largest plaintext KMS Encrypt accepts: modulus bytes - 2 * hash bytes - 2."""
    if spec not in RSA_SPECS:
        raise ValueError("not an RSA key spec")
    return RSA_SPECS[spec] // 8 - 2 * _oaep_hash(algorithm).digest_size - 2


def rsa_encrypt(public_or_private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    """RSAES-OAEP (MGF1 with the same hash, empty label); ValueError if too long."""
    key = _load_public_or_private(public_or_private_der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA key")
    if len(plaintext) > rsa_max_plaintext(_spec_of(key), algorithm):
        raise ValueError("plaintext too long for this key and algorithm")
    return key.encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    """Undo rsa_encrypt (or any RSAES-OAEP with the same hash for MGF1, empty label).

    Any ciphertext failure raises InvalidCiphertext; ValueError only for a non-RSA key
    or an unknown algorithm.
    """
    key = _load_private(private_der)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    pad = _oaep(algorithm)
    if len(ciphertext) != key.key_size // 8:
        raise InvalidCiphertext()
    try:
        return key.decrypt(ciphertext, pad)
    except ValueError:
        raise InvalidCiphertext() from None


def derive_shared_secret(private_der: bytes, peer_public_spki_der: bytes) -> bytes:
    """ECDH raw shared secret (x-coordinate, field-size bytes).

    ValueError if our key is not an EC key or the peer key is malformed or on another curve.
    """
    key = _load_private(private_der)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an elliptic curve key")
    peer = _load_public(peer_public_spki_der)
    if not isinstance(peer, ec.EllipticCurvePublicKey) or _spec_of(peer) != _spec_of(key):
        raise ValueError("peer public key is not on this key's curve")
    return key.exchange(ec.ECDH(), peer)


# --- internals ---------------------------------------------------------------


def _new_ml_dsa(spec: str) -> PrivateKeyTypes:
    if spec == "ML_DSA_44":
        return mldsa.MLDSA44PrivateKey.generate()
    if spec == "ML_DSA_65":
        return mldsa.MLDSA65PrivateKey.generate()
    return mldsa.MLDSA87PrivateKey.generate()


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private(private_der: bytes) -> PrivateKeyTypes:
    """A stored (already validated) private key of a supported spec; else ValueError."""
    try:
        key = serialization.load_der_private_key(
            private_der, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("malformed private key") from None
    _spec_of(key)
    return key


def _load_public(spki_der: bytes) -> PublicKeyTypes:
    """A DER SPKI public key of a supported spec (point on curve checked); else ValueError."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("malformed public key") from None
    _spec_of(key)
    return key


def _load_public_or_private(der: bytes) -> PublicKeyTypes:
    """The public key in a DER SPKI, or of a DER PKCS#8 private key."""
    try:
        return _load_public(der)
    except ValueError:
        return _load_private(der).public_key()


def _spec_of(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """The AWS key spec of a loaded key; ValueError for anything else."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        spec = f"RSA_{key.key_size}"
        if spec in RSA_SPECS:
            return spec
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for spec, curve in EC_SPECS.items():
            if isinstance(key.curve, curve):
                return spec
    elif mldsa is not None:
        if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA44PublicKey):
            return "ML_DSA_44"
        if isinstance(key, mldsa.MLDSA65PrivateKey | mldsa.MLDSA65PublicKey):
            return "ML_DSA_65"
        if isinstance(key, mldsa.MLDSA87PrivateKey | mldsa.MLDSA87PublicKey):
            return "ML_DSA_87"
    raise ValueError("unsupported key type")


def _check_signing_algorithm(spec: str, algorithm: str) -> None:
    if algorithm not in signing_algorithms(spec):
        raise ValueError("signing algorithm is not valid for this key")


def _check_ml_dsa_message_type(message_type: str) -> None:
    if message_type != "RAW":
        raise ValueError("ML-DSA signs RAW messages only")


def _prepare(
    algorithm: str, message: bytes, message_type: str
) -> tuple[bytes, hashes.HashAlgorithm | utils.Prehashed]:
    """(data, hash argument) for cryptography's sign/verify, per MessageType."""
    alg = _HASHES[algorithm[-7:]]()
    if message_type == "RAW":
        return message, alg
    if message_type == "DIGEST":
        if len(message) != alg.digest_size:
            raise ValueError("digest length does not match the signing algorithm")
        return message, utils.Prehashed(alg)
    raise ValueError("unknown message type")


def _rsa_signature_padding(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(
            mgf=padding.MGF1(_HASHES[algorithm[-7:]]()), salt_length=padding.PSS.DIGEST_LENGTH
        )
    return padding.PKCS1v15()


def _oaep_hash(algorithm: str) -> hashes.HashAlgorithm:
    if algorithm not in RSA_ENCRYPTION:
        raise ValueError("unsupported encryption algorithm")
    return _HASHES[algorithm.removeprefix("RSAES_OAEP_")]()


def _oaep(algorithm: str) -> padding.OAEP:
    alg = _oaep_hash(algorithm)
    return padding.OAEP(mgf=padding.MGF1(alg), algorithm=alg, label=None)
