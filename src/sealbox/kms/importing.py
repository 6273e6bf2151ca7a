"""Imported key material (BYOK): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial, and expiry at ValidTo.

The wrapping key pair is stored only wrapped by the root of trust and the import
token only as a SHA-256 digest. Imported material is stored like generated material
(wrapped), with a keyed fingerprint so that a re-import accepts only the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from sealbox import crypto
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import asymmetric, wrap
from sealbox.errors import ValidationError
from sealbox.keystore.base import KeyStore
from sealbox.kms import keyspec
from sealbox.kms.errors import (
    ExpiredImportTokenError,
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    InvalidStateError,
    UnsupportedOperationError,
)
from sealbox.kms.keyring import material_label
from sealbox.kms.model import Key, KeyState
from sealbox.kms.service import KmsService
from sealbox.storage import kms_repo
from sealbox.storage.db import Database

PARAMETERS_VALID_FOR = timedelta(hours=24)
MAX_VALID_TO = timedelta(days=365)
WRAPPING_ALGORITHMS = frozenset(
    {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"}
)
WRAPPING_KEY_SPECS = frozenset({"RSA_2048", "RSA_3072", "RSA_4096"})
# AWS's accepted HMAC key material lengths (bytes) per spec.
_HMAC_LENGTHS = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128),
                 "HMAC_512": (64, 128)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImportParameters:
    key_arn: str
    import_token: bytes
    public_key: bytes
    valid_to: datetime


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _params_label(digest: bytes) -> str:
    return f"kms-import-wrapping-key/v1/{digest.hex()}"


class ImportService:
    def __init__(self, kms: KmsService, db: Database, keystore: KeyStore, clock: Clock) -> None:
        self._kms = kms
        self._db = db
        self._keystore = keystore
        self._clock = clock

    @staticmethod
    def _require_external(key: Key) -> None:
        if key.origin != "EXTERNAL":
            raise UnsupportedOperationError(
                f"{key.arn} has Origin {key.origin}; only EXTERNAL keys take imported material."
            )

    def get_parameters_for_import(
        self, call: Call, key_id: str, wrapping_algorithm: str, wrapping_key_spec: str
    ) -> ImportParameters:
        if wrapping_algorithm not in WRAPPING_ALGORITHMS:
            raise ValidationError(f"WrappingAlgorithm {wrapping_algorithm} is not supported.")
        if wrapping_key_spec not in WRAPPING_KEY_SPECS:
            raise ValidationError(f"WrappingKeySpec {wrapping_key_spec} is not supported.")
        private, public = wrap.new_wrapping_key(wrapping_key_spec)
        token = crypto.random_bytes(256)
        digest = _digest(token)
        valid_to = self._clock.now() + PARAMETERS_VALID_FOR

        def work(conn: Connection) -> Key:
            key = self._kms.keyring.load(conn, call, key_id)
            self._kms.access.check(
                call,
                "GetParametersForImport",
                self._kms.keyring.load_view(conn, key),
                context={"kms:WrappingAlgorithm": wrapping_algorithm,
                         "kms:WrappingKeySpec": wrapping_key_spec},
            )  # fmt: skip
            self._require_external(key)
            self._kms._require_not_pending_deletion(key)
            kms_repo.delete_expired_import_params(conn, self._clock.now())
            kms_repo.insert_import_params(
                conn,
                digest,
                key,
                wrapping_algorithm,
                wrapping_key_spec,
                self._keystore.wrap(private, _params_label(digest)),
                valid_to,
            )
            self._kms.record(conn, call)
            return key

        key = self._db.write(work)
        return ImportParameters(key.arn, token, public, valid_to)

    def import_key_material(
        self,
        call: Call,
        key_id: str,
        import_token: bytes,
        encrypted_material: bytes,
        valid_to: datetime | None = None,
        expiration_model: str | None = None,
    ) -> tuple[str, str]:
        """Returns (key ARN, key material id)."""
        model = expiration_model or "KEY_MATERIAL_EXPIRES"
        now = self._clock.now()
        if model == "KEY_MATERIAL_EXPIRES":
            if valid_to is None:
                raise ValidationError("ValidTo is required when ExpirationModel is "
                                      "KEY_MATERIAL_EXPIRES.")  # fmt: skip
            if valid_to <= now or valid_to > now + MAX_VALID_TO:
                raise ValidationError("ValidTo must be in the future and at most 365 days away.")
        elif valid_to is not None:
            raise ValidationError("ValidTo is not valid when ExpirationModel is "
                                  "KEY_MATERIAL_DOES_NOT_EXPIRE.")  # fmt: skip
        digest = _digest(import_token)

        def work(conn: Connection) -> tuple[str, str]:
            key = self._kms.keyring.load(conn, call, key_id)
            self._kms.access.check(
                call,
                "ImportKeyMaterial",
                self._kms.keyring.load_view(conn, key),
                context={"kms:ExpirationModel": model},
            )
            self._require_external(key)
            if key.key_state is not KeyState.PENDING_IMPORT:
                raise InvalidStateError(f"{key.arn} is {key.key_state.value}, not PendingImport.")
            params = kms_repo.get_import_params(conn, digest)
            if params is None or (params.account_id, params.region, params.key_id) != (
                key.account_id, key.region, key.key_id
            ):  # fmt: skip
                raise InvalidImportTokenError("The import token is not valid for this key.")
            if params.valid_to < now:
                raise ExpiredImportTokenError("The import token has expired.")
            private = self._keystore.unwrap(
                bytes(params.wrapped_private_key), _params_label(digest)
            )
            try:
                material = wrap.unwrap_import(
                    private, params.wrapping_algorithm, encrypted_material
                )
            except crypto.InvalidCiphertext:
                raise InvalidCiphertextError(
                    "The encrypted key material could not be unwrapped with these parameters."
                ) from None
            self._check_material(key, material)
            fingerprint = wrap.material_fingerprint(material)
            versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
            if versions:
                if versions[0].fingerprint != fingerprint:
                    raise IncorrectKeyMaterialError(
                        "The key material is not the material this key held before."
                    )
                kms_repo.restore_material(
                    conn, key, versions[0].version,
                    self._keystore.wrap(material, material_label(key, versions[0].version)),
                )  # fmt: skip
                material_id = versions[0].material_id
            else:
                version = self._kms._new_version(key, 1, None, material, fingerprint)
                kms_repo.insert_version(conn, key, version)
                material_id = version.material_id
            key.current_version = 1
            key.key_state = KeyState.ENABLED
            key.expiration_model = model
            key.valid_to = valid_to
            kms_repo.update_key(conn, key)
            self._kms.record(conn, call)
            return key.arn, material_id

        result = self._db.write(work)
        return result

    @staticmethod
    def _check_material(key: Key, material: bytes) -> None:
        spec = keyspec.info(key.key_spec)
        if spec.kind == "symmetric" and len(material) != 32:
            raise IncorrectKeyMaterialError("Symmetric key material must be 256 bits.")
        if spec.kind == "hmac":
            low, high = _HMAC_LENGTHS[spec.name]
            if not low <= len(material) <= high:
                raise IncorrectKeyMaterialError(
                    f"{spec.name} key material must be {low} to {high} bytes."
                )
        if spec.asymmetric:
            try:
                asymmetric.check_private_key(material, spec.name)
            except ValueError as exc:
                raise IncorrectKeyMaterialError(f"Not a {spec.name} private key: {exc}") from None

    def delete_imported_key_material(self, call: Call, key_id: str) -> tuple[str, str | None]:
        def work(conn: Connection) -> tuple[str, str | None]:
            key = self._kms.keyring.load(conn, call, key_id)
            self._kms.access.check(
                call, "DeleteImportedKeyMaterial", self._kms.keyring.load_view(conn, key)
            )
            self._require_external(key)
            self._kms._require_not_pending_deletion(key)
            versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
            self._forget(conn, key)
            self._kms.record(conn, call)
            return key.arn, versions[0].material_id if versions else None

        return self._db.write(work)

    def _forget(self, conn: Connection, key: Key) -> None:
        kms_repo.forget_material(conn, key)
        key.key_state = KeyState.PENDING_IMPORT
        key.valid_to = None
        key.expiration_model = None
        kms_repo.update_key(conn, key)
        self._kms.keyring.forget(key)

    def expire_due(self, system_call_for: Callable[[str, str, str], Call]) -> int:
        """Destroy imported material whose ValidTo has passed; returns how many keys."""
        now = self._clock.now()
        with self._db.read() as conn:
            due = kms_repo.keys_with_expired_material(conn, now)
        done = 0
        for ids in due:

            def work(conn: Connection, ids: tuple[str, str, str] = ids) -> bool:
                account, region, key_id = ids
                key = kms_repo.get_key(conn, account, region, key_id)
                if key is None or key.valid_to is None or key.valid_to > now:
                    return False
                if key.key_state is KeyState.PENDING_IMPORT:
                    return False
                self._forget(conn, key)
                call = system_call_for(account, region, "DeleteExpiredKeyMaterial")
                call.resources.append(key.arn)
                self._kms.record(conn, call)
                return True

            done += self._db.write(work)
        return done
