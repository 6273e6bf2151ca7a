"""Asymmetric and HMAC operations: Sign, Verify, GetPublicKey, GenerateMac, VerifyMac,
GenerateDataKeyPair(WithoutPlaintext) and DeriveSharedSecret.

Private keys and HMAC keys leave Sealbox only as GenerateDataKeyPair's
PrivateKeyPlaintext (a fresh pair, not a KMS key's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sealbox.call import Call
from sealbox.crypto import asymmetric, mac
from sealbox.errors import ValidationError
from sealbox.kms import keyspec
from sealbox.kms.errors import (
    DryRunOperationError,
    InvalidKeyUsageError,
    InvalidMacError,
    InvalidSignatureError,
    UnsupportedOperationError,
)
from sealbox.kms.keyring import KeyView
from sealbox.kms.model import Key
from sealbox.kms.service import DRY_RUN_MESSAGE, SYMMETRIC_DEFAULT, KmsService

MAX_RAW_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class SignResult:
    key_arn: str
    signature: bytes
    algorithm: str


@dataclass(frozen=True, slots=True)
class PublicKeyResult:
    key: Key
    public_key: bytes


@dataclass(frozen=True, slots=True)
class MacResult:
    key_arn: str
    mac: bytes
    algorithm: str


@dataclass(frozen=True, slots=True)
class DataKeyPairResult:
    key_arn: str
    spec: str
    public_key: bytes
    private_ciphertext: bytes = field(repr=False)
    private_plaintext: bytes | None = field(repr=False)
    material_id: str


@dataclass(frozen=True, slots=True)
class SharedSecretResult:
    key_arn: str
    shared_secret: bytes = field(repr=False)
    origin: str


def _require_usage(key: Key, usage: str) -> None:
    if key.key_usage != usage:
        raise InvalidKeyUsageError(
            f"{key.arn} key usage is {key.key_usage}; this operation needs {usage}."
        )


class AsymmetricService:
    def __init__(self, kms: KmsService) -> None:
        self._kms = kms

    def _usable(self, call: Call, key_id: str, operation: str, usage: str) -> KeyView:
        view = self._kms.keyring.view(call, key_id)
        self._kms.access.check(call, operation, view)
        self._kms._require_usable(view.key)
        _require_usage(view.key, usage)
        return view

    @staticmethod
    def _private(view: KeyView) -> bytes:
        return view.materials[view.key.current_version].secret

    @staticmethod
    def _signing_algorithm(key: Key, algorithm: str) -> None:
        if algorithm not in keyspec.info(key.key_spec).signing_algorithms:
            raise InvalidKeyUsageError(
                f"SigningAlgorithm {algorithm} is not compatible with {key.arn} "
                f"(KeySpec {key.key_spec})."
            )

    @staticmethod
    def _message_type(message: bytes, message_type: str | None) -> Literal["RAW", "DIGEST"]:
        if message_type not in (None, "RAW", "DIGEST"):
            raise ValidationError(f"MessageType {message_type} is not valid.")
        if message_type == "DIGEST":
            return "DIGEST"
        if len(message) > MAX_RAW_MESSAGE:
            raise ValidationError(
                f"A RAW message can be at most {MAX_RAW_MESSAGE} bytes; sign a DIGEST instead."
            )
        return "RAW"

    def sign(
        self,
        call: Call,
        key_id: str,
        message: bytes,
        algorithm: str,
        message_type: str | None = None,
        dry_run: bool = False,
    ) -> SignResult:
        view = self._usable(call, key_id, "Sign", "SIGN_VERIFY")
        self._signing_algorithm(view.key, algorithm)
        message_type = self._message_type(message, message_type)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        try:
            signature = asymmetric.sign(self._private(view), algorithm, message, message_type)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return SignResult(view.key.arn, signature, algorithm)

    def verify(
        self,
        call: Call,
        key_id: str,
        message: bytes,
        signature: bytes,
        algorithm: str,
        message_type: str | None = None,
        dry_run: bool = False,
    ) -> SignResult:
        view = self._usable(call, key_id, "Verify", "SIGN_VERIFY")
        self._signing_algorithm(view.key, algorithm)
        message_type = self._message_type(message, message_type)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        try:
            valid = asymmetric.verify(
                self._private(view), algorithm, message, message_type, signature
            )
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if not valid:
            raise InvalidSignatureError("The signature is not valid for this message and key.")
        return SignResult(view.key.arn, signature, algorithm)

    def get_public_key(self, call: Call, key_id: str) -> PublicKeyResult:
        view = self._kms.keyring.view(call, key_id)
        self._kms.access.check(call, "GetPublicKey", view)
        key = view.key
        if not keyspec.info(key.key_spec).asymmetric:
            raise UnsupportedOperationError(f"{key.arn} is not an asymmetric KMS key.")
        self._kms._require_usable(key)
        return PublicKeyResult(key, asymmetric.public_key_der(self._private(view)))

    def generate_mac(
        self, call: Call, key_id: str, message: bytes, algorithm: str, dry_run: bool = False
    ) -> MacResult:
        view = self._usable(call, key_id, "GenerateMac", "GENERATE_VERIFY_MAC")
        self._mac_algorithm(view.key, algorithm)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        tag = mac.generate_mac(self._private(view), algorithm, message, key_spec=view.key.key_spec)
        return MacResult(view.key.arn, tag, algorithm)

    def verify_mac(
        self,
        call: Call,
        key_id: str,
        message: bytes,
        tag: bytes,
        algorithm: str,
        dry_run: bool = False,
    ) -> MacResult:
        view = self._usable(call, key_id, "VerifyMac", "GENERATE_VERIFY_MAC")
        self._mac_algorithm(view.key, algorithm)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        if not mac.verify_mac(
            self._private(view), algorithm, message, tag, key_spec=view.key.key_spec
        ):
            raise InvalidMacError("The MAC is not valid for this message and key.")
        return MacResult(view.key.arn, tag, algorithm)

    @staticmethod
    def _mac_algorithm(key: Key, algorithm: str) -> None:
        if algorithm not in keyspec.info(key.key_spec).mac_algorithms:
            raise InvalidKeyUsageError(
                f"MacAlgorithm {algorithm} is not compatible with {key.arn} "
                f"(KeySpec {key.key_spec})."
            )

    def generate_data_key_pair(
        self,
        call: Call,
        key_id: str,
        pair_spec: str,
        context: Mapping[str, str] | None = None,
        include_plaintext: bool = True,
        dry_run: bool = False,
    ) -> DataKeyPairResult:
        operation = (
            "GenerateDataKeyPair" if include_plaintext else "GenerateDataKeyPairWithoutPlaintext"
        )
        view = self._kms.keyring.view(call, key_id)
        self._kms.access.check(call, operation, view, encryption_context=context or {})
        key = view.key
        self._kms._require_usable(key)
        if key.key_spec != SYMMETRIC_DEFAULT or key.key_usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(
                f"{key.arn} cannot protect data key pairs: it must be a symmetric encryption key."
            )
        if pair_spec not in keyspec.DATA_KEY_PAIR_SPECS:
            raise UnsupportedOperationError(f"KeyPairSpec {pair_spec} is not supported.")
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        private, public = asymmetric.generate_data_key_pair(pair_spec)
        ciphertext, material_id = self._kms.keyring.seal(view, private, context)
        return DataKeyPairResult(
            key.arn,
            pair_spec,
            public,
            ciphertext,
            private if include_plaintext else None,
            material_id,
        )

    def derive_shared_secret(
        self,
        call: Call,
        key_id: str,
        algorithm: str,
        peer_public_key: bytes,
        dry_run: bool = False,
    ) -> SharedSecretResult:
        view = self._usable(call, key_id, "DeriveSharedSecret", "KEY_AGREEMENT")
        key = view.key
        if algorithm not in keyspec.info(key.key_spec).key_agreement_algorithms:
            raise InvalidKeyUsageError(f"KeyAgreementAlgorithm {algorithm} is not valid here.")
        try:
            asymmetric.load_public_key_check(peer_public_key, key.key_spec)
        except ValueError as exc:
            raise ValidationError(f"PublicKey is not valid for {key.key_spec}: {exc}") from None
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        secret = asymmetric.derive_shared_secret(self._private(view), peer_public_key)
        return SharedSecretResult(key.arn, secret, key.origin)
