"""KmsService: one method per KMS operation. Plain Python in, dataclasses out.

Every rule AWS applies — which identifiers an operation accepts, which key states
allow it, who may call it (key policy, IAM delegation, grants), limits and defaults —
is decided here or in the modules it uses (keyring, access, grant_ops), never in the
protocol adapter.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.audit.recorder import AuditRecorder
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import asymmetric
from sealbox.errors import ValidationError
from sealbox.iam.authz import Authorizer
from sealbox.keystore.base import KeyStore
from sealbox.kms import keyspec
from sealbox.kms.access import Context, KeyAccess
from sealbox.kms.errors import (
    AlreadyExistsError,
    DisabledError,
    DryRunOperationError,
    IncorrectKeyError,
    InvalidCiphertextError,
    InvalidKeyUsageError,
    InvalidMarkerError,
    InvalidStateError,
    LimitExceededError,
    MalformedPolicyDocumentError,
    NotAuthorizedError,
    NotFoundError,
    TagError,
    UnsupportedOperationError,
)
from sealbox.kms.keyring import KeyRing, KeyView, material_label
from sealbox.kms.material import generate as generate_material
from sealbox.kms.model import Alias, Key, KeyManager, KeyState, KeyVersion
from sealbox.kms.policy import (
    DEFAULT_POLICY_NAME,
    aws_managed_key_policy,
    default_key_policy,
    validate_key_policy,
)
from sealbox.kms.results import (
    AliasListing,
    DataKeyResult,
    DecryptResult,
    DeletionScheduled,
    EncryptResult,
    KeyDescription,
    KeyListing,
    ReEncryptResult,
    RotationEntry,
    RotationListing,
    RotationStatus,
    TagListing,
)
from sealbox.storage import audit_repo, kms_repo
from sealbox.storage.db import Database

if TYPE_CHECKING:
    from sealbox.kms.asymmetric_ops import AsymmetricService
    from sealbox.kms.grant_ops import GrantService
    from sealbox.kms.importing import ImportService
    from sealbox.kms.multi_region import MultiRegionService

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
MAX_ON_DEMAND_ROTATIONS = 10
MAX_TAGS = 50
RESERVED_ALIAS_PREFIX = "alias/aws/"
_ALIAS_NAME = re.compile(r"alias/[a-zA-Z0-9/_-]+")
DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."
LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."

InternalOpHook = Callable[[str, str], None]  # (operation, calling service)

# The cryptographic operations GetKeyLastUsage reports.
CRYPTO_EVENTS = frozenset(
    {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
     "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify",
     "GenerateMac", "VerifyMac", "DeriveSharedSecret"}
)  # fmt: skip


def encode_marker(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def decode_marker(marker: str | None) -> str | None:
    if marker is None:
        return None
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidMarkerError("The marker is not valid.") from None


class KmsService:
    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        clock: Clock,
        audit: AuditRecorder,
        authorizer: Authorizer,
        on_internal_op: InternalOpHook | None = None,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._audit = audit
        self._on_internal_op = on_internal_op
        self.keyring = KeyRing(db, keystore)
        self.access = KeyAccess(authorizer)
        # Grant operations live in grant_ops.GrantService, which builds on this one.
        from sealbox.kms.asymmetric_ops import AsymmetricService
        from sealbox.kms.grant_ops import GrantService
        from sealbox.kms.importing import ImportService
        from sealbox.kms.multi_region import MultiRegionService

        self.grant_service: GrantService = GrantService(self, db, clock)
        self.asymmetric: AsymmetricService = AsymmetricService(self)
        self.importing: ImportService = ImportService(self, db, keystore, clock)
        self.multi_region: MultiRegionService = MultiRegionService(self, db, clock)

    # -- state rules ---------------------------------------------------------------

    @staticmethod
    def _require_usable(key: Key) -> None:
        """Key-state rules for cryptographic operations."""
        if key.key_state is KeyState.DISABLED:
            raise DisabledError(f"{key.arn} is disabled.")
        if key.key_state is KeyState.PENDING_DELETION:
            raise InvalidStateError(f"{key.arn} is pending deletion.")
        if key.key_state is not KeyState.ENABLED:
            raise InvalidStateError(f"{key.arn} is {key.key_state.value}.")

    @staticmethod
    def _require_not_pending_deletion(key: Key) -> None:
        if key.key_state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
            raise InvalidStateError(f"{key.arn} is pending deletion.")

    @staticmethod
    def _require_customer_managed(key: Key, operation: str) -> None:
        if key.key_manager is KeyManager.AWS:
            raise UnsupportedOperationError(
                f"{operation} is not supported on AWS managed key {key.arn}."
            )

    @staticmethod
    def _require_symmetric_encryption(key: Key, algorithm: str | None) -> str:
        if key.key_usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(
                f"{key.arn} key usage is {key.key_usage} which is not valid."
            )
        if key.key_spec != SYMMETRIC_DEFAULT:
            raise InvalidKeyUsageError(
                f"{key.arn} is not a symmetric encryption key (KeySpec {key.key_spec})."
            )
        algorithm = algorithm or SYMMETRIC_DEFAULT
        if algorithm != SYMMETRIC_DEFAULT:
            raise InvalidKeyUsageError(
                f"EncryptionAlgorithm {algorithm} is not supported by {key.arn} "
                f"with KeySpec {key.key_spec}."
            )
        return algorithm

    @staticmethod
    def _require_rsa_encryption(
        key: Key, algorithm: str | None, context: Mapping[str, str] | None
    ) -> str:
        """Encrypt/Decrypt with an RSA key: an explicit OAEP algorithm, no context."""
        if key.key_usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(
                f"{key.arn} key usage is {key.key_usage} which is not valid."
            )
        spec = keyspec.info(key.key_spec)
        if algorithm is None or algorithm not in spec.encryption_algorithms:
            raise InvalidKeyUsageError(
                f"EncryptionAlgorithm {algorithm} is not supported by {key.arn} with KeySpec "
                f"{key.key_spec}; use one of {', '.join(spec.encryption_algorithms)}."
            )
        if context:
            raise ValidationError("Asymmetric KMS keys do not support an encryption context.")
        return algorithm

    # -- key material ------------------------------------------------------------------

    def _new_version(
        self,
        key: Key,
        version: int,
        rotation_type: str | None,
        material: bytes | None = None,
        fingerprint: str | None = None,
    ) -> KeyVersion:
        """A key version holding material (generated for the key's spec unless given)."""
        if material is None:
            material = generate_material(keyspec.info(key.key_spec))
        return KeyVersion(
            version=version,
            material_id=crypto.random_bytes(32).hex(),
            created_at=self._clock.now(),
            rotation_type=rotation_type,
            wrapped_material=self._keystore.wrap(material, material_label(key, version)),
            fingerprint=fingerprint,
        )

    def _open(
        self,
        call: Call,
        blob: bytes,
        context: Mapping[str, str] | None,
        key_id: str | None,
        algorithm: str | None,
        operation: str,
        grant_operation: str | None = None,
        imported: KeyView | None = None,
    ) -> tuple[KeyView, bytes, str, str]:
        """Authorize and decrypt a blob: (view, plaintext, algorithm, material id).

        `imported` is the view of an EXTERNAL-origin key the caller named: a blob made
        by another Sealbox (or a deleted key) holding the same imported material names
        a key id unknown here, and opens with this key's material instead — one
        authenticated attempt, the blob's own header still bound as AAD.
        """
        try:
            header, _ = crypto.read_header(blob)
        except crypto.InvalidCiphertext:
            raise InvalidCiphertextError("The ciphertext is not valid.") from None
        if not arns.is_key_id(header.key_id):
            raise InvalidCiphertextError("The ciphertext is not valid.")
        region = call.region
        if imported is not None and header.key_id != imported.key.key_id:
            return self._open_imported(call, imported, blob, header, context, algorithm, operation)
        if key_id is not None:
            account, _, wanted = self.keyring.resolve(None, call, key_id, allow_alias=True)
            if wanted != header.key_id:
                raise IncorrectKeyError(
                    "The key ID in the request does not identify a KMS key "
                    "that can perform this operation."
                )
        else:
            # The blob names only the key id (unique): find its account, which may be
            # another one for cross-account use.
            account = call.principal.account_id
            if kms_repo.key_row_version(self._db, account, region, header.key_id) is None:
                account = kms_repo.key_account(self._db, region, header.key_id) or account
        try:
            view = self.keyring.view_by_id(call, account, region, header.key_id)
        except NotFoundError:
            with self._db.read() as conn:
                deleted = kms_repo.was_deleted(conn, account, region, header.key_id)
            if deleted:
                raise  # crypto-shredded: the key is gone, as AWS answers for a deleted key
            # Never a key here (another region, or not ours at all).
            raise InvalidCiphertextError("The ciphertext is not valid.") from None
        self.access.check(
            call,
            operation,
            view,
            encryption_context=context or {},
            context={"kms:EncryptionAlgorithm": algorithm or SYMMETRIC_DEFAULT},
            grant_operation=grant_operation,
        )
        key = view.key
        self._require_usable(key)
        algorithm = self._require_symmetric_encryption(key, algorithm)
        material = view.materials.get(header.key_version)
        if material is None:
            raise InvalidCiphertextError("The ciphertext is not valid.")
        try:
            plaintext = crypto.open_blob(material.secret, blob, context)
        except crypto.InvalidCiphertext:
            raise InvalidCiphertextError(
                "The ciphertext could not be decrypted: it was altered, or the "
                "encryption context does not match."
            ) from None
        return view, plaintext, algorithm, material.material_id

    def _open_imported(
        self,
        call: Call,
        view: KeyView,
        blob: bytes,
        header: crypto.BlobHeader,
        context: Mapping[str, str] | None,
        algorithm: str | None,
        operation: str,
    ) -> tuple[KeyView, bytes, str, str]:
        self.access.check(call, operation, view, encryption_context=context or {})
        key = view.key
        self._require_usable(key)
        algorithm = self._require_symmetric_encryption(key, algorithm)
        material = view.materials.get(header.key_version)
        incorrect = IncorrectKeyError(
            "The key ID in the request does not identify a KMS key that can perform this operation."
        )
        if material is None:
            raise incorrect
        try:
            plaintext = crypto.open_blob(material.secret, blob, context)
        except crypto.InvalidCiphertext:
            raise incorrect from None
        return view, plaintext, algorithm, material.material_id

    # -- cryptographic operations -------------------------------------------------

    def encrypt(
        self,
        call: Call,
        key_id: str,
        plaintext: bytes,
        context: Mapping[str, str] | None = None,
        algorithm: str | None = None,
        dry_run: bool = False,
    ) -> EncryptResult:
        view = self.keyring.view(call, key_id)
        alg = algorithm or SYMMETRIC_DEFAULT
        self.access.check(
            call,
            "Encrypt",
            view,
            encryption_context=context or {},
            context={"kms:EncryptionAlgorithm": alg, **_request_alias(key_id)},
        )
        self._require_usable(view.key)
        if dry_run:
            self._encryption_algorithm(view.key, algorithm, context)
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        ciphertext, algorithm = self._encrypt_with(view, plaintext, context, algorithm)
        return EncryptResult(ciphertext, view.key.arn, algorithm)

    def _encryption_algorithm(
        self, key: Key, algorithm: str | None, context: Mapping[str, str] | None
    ) -> str:
        if key.key_spec == SYMMETRIC_DEFAULT:
            return self._require_symmetric_encryption(key, algorithm)
        return self._require_rsa_encryption(key, algorithm, context)

    def _encrypt_with(
        self,
        view: KeyView,
        plaintext: bytes,
        context: Mapping[str, str] | None,
        algorithm: str | None,
    ) -> tuple[bytes, str]:
        """Symmetric keys seal a KMS blob; RSA keys return the raw OAEP ciphertext."""
        key = view.key
        algorithm = self._encryption_algorithm(key, algorithm, context)
        if key.key_spec == SYMMETRIC_DEFAULT:
            return self.keyring.seal(view, plaintext, context)[0], algorithm
        limit = asymmetric.rsa_max_plaintext(key.key_spec, algorithm)
        if len(plaintext) > limit:
            raise ValidationError(
                f"Plaintext is {len(plaintext)} bytes; {key.key_spec} with {algorithm} "
                f"encrypts at most {limit} bytes."
            )
        private = view.materials[key.current_version].secret
        return asymmetric.rsa_encrypt(private, algorithm, plaintext), algorithm

    def decrypt(
        self,
        call: Call,
        ciphertext: bytes,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        algorithm: str | None = None,
        dry_run: bool = False,
    ) -> DecryptResult:
        view, plaintext, algorithm, material_id = self._decrypt_any(
            call, ciphertext, context, key_id, algorithm, "Decrypt"
        )
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        return DecryptResult(plaintext, view.key.arn, algorithm, material_id)

    def _decrypt_any(
        self,
        call: Call,
        ciphertext: bytes,
        context: Mapping[str, str] | None,
        key_id: str | None,
        algorithm: str | None,
        operation: str,
    ) -> tuple[KeyView, bytes, str, str]:
        """A KMS blob (symmetric) or, when KeyId names an RSA key, an OAEP ciphertext."""
        if key_id is not None:
            view = self.keyring.view(call, key_id)
            if view.key.key_spec != SYMMETRIC_DEFAULT:
                return self._rsa_decrypt(call, view, ciphertext, context, algorithm, operation)
            if view.key.origin == "EXTERNAL":
                return self._open(
                    call, ciphertext, context, key_id, algorithm, operation, imported=view
                )
        return self._open(call, ciphertext, context, key_id, algorithm, operation)

    def _rsa_decrypt(
        self,
        call: Call,
        view: KeyView,
        ciphertext: bytes,
        context: Mapping[str, str] | None,
        algorithm: str | None,
        operation: str,
    ) -> tuple[KeyView, bytes, str, str]:
        key = view.key
        self.access.check(
            call, operation, view, context={"kms:EncryptionAlgorithm": algorithm or ""}
        )
        self._require_usable(key)
        algorithm = self._require_rsa_encryption(key, algorithm, context)
        material = view.materials[key.current_version]
        try:
            plaintext = asymmetric.rsa_decrypt(material.secret, algorithm, ciphertext)
        except crypto.InvalidCiphertext:
            raise InvalidCiphertextError("The ciphertext is not valid.") from None
        return view, plaintext, algorithm, material.material_id

    def re_encrypt(
        self,
        call: Call,
        ciphertext: bytes,
        destination_key_id: str,
        source_context: Mapping[str, str] | None = None,
        destination_context: Mapping[str, str] | None = None,
        source_key_id: str | None = None,
        source_algorithm: str | None = None,
        destination_algorithm: str | None = None,
        dry_run: bool = False,
    ) -> ReEncryptResult:
        source, plaintext, source_algorithm, source_material = self._decrypt_any(
            call,
            ciphertext,
            source_context,
            source_key_id,
            source_algorithm,
            "ReEncryptFrom",
        )
        dest = self.keyring.view(call, destination_key_id)
        self.access.check(call, "ReEncryptTo", dest, encryption_context=destination_context or {})
        self._require_usable(dest.key)
        self._encryption_algorithm(dest.key, destination_algorithm, destination_context)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        new_blob, destination_algorithm = self._encrypt_with(
            dest, plaintext, destination_context, destination_algorithm
        )
        dest_material = dest.materials[dest.key.current_version].material_id
        return ReEncryptResult(
            new_blob,
            source.key.arn,
            dest.key.arn,
            source_algorithm,
            destination_algorithm,
            source_material,
            dest_material,
        )

    def generate_data_key(
        self,
        call: Call,
        key_id: str,
        context: Mapping[str, str] | None = None,
        number_of_bytes: int | None = None,
        key_spec: str | None = None,
        include_plaintext: bool = True,
        dry_run: bool = False,
    ) -> DataKeyResult:
        operation = "GenerateDataKey" if include_plaintext else "GenerateDataKeyWithoutPlaintext"
        view = self.keyring.view(call, key_id)
        self.access.check(
            call,
            operation,
            view,
            encryption_context=context or {},
            context=_request_alias(key_id),
        )
        if (number_of_bytes is None) == (key_spec is None):
            raise ValidationError("Please specify either number of bytes or key spec.")
        size = number_of_bytes if number_of_bytes is not None else DATA_KEY_SPECS[str(key_spec)]
        self._require_usable(view.key)
        self._require_symmetric_encryption(view.key, None)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        data_key = crypto.random_bytes(size)
        ciphertext, material_id = self.keyring.seal(view, data_key, context)
        return DataKeyResult(
            ciphertext, data_key if include_plaintext else None, view.key.arn, material_id
        )

    def check_use(self, call: Call, key_id: str, operation: str, context: Mapping[str, str]) -> str:
        """Authorize a use of a symmetric key and check its state, with no crypto.

        For a service holding a key KMS gave it earlier (an S3 Bucket Key): each use is
        still refused the moment the caller loses permission or the key is disabled or
        pending deletion. Not a KMS operation: not audited, not counted.
        """
        view = self.keyring.view(call, key_id)
        self.access.check(call, operation, view, encryption_context=context)
        self._require_usable(view.key)
        return view.key.arn

    def generate_random(self, call: Call, number_of_bytes: int | None) -> bytes:
        self.access.check_account(call, "GenerateRandom")
        if number_of_bytes is None:
            raise ValidationError("NumberOfBytes is required.")
        return crypto.random_bytes(number_of_bytes)

    # -- key life cycle -------------------------------------------------------------

    def create_key(
        self,
        call: Call,
        *,
        policy: str | None = None,
        description: str = "",
        key_usage: str | None = None,
        key_spec: str | None = None,
        customer_master_key_spec: str | None = None,
        origin: str | None = None,
        tags: list[tuple[str, str]] | None = None,
        multi_region: bool = False,
        bypass_policy_lockout_safety_check: bool = False,
    ) -> KeyDescription:
        tag_map = self._validate_tags(tags or [])
        request_ctx: Context = {
            "kms:BypassPolicyLockoutSafetyCheck": str(bypass_policy_lockout_safety_check).lower(),
            "aws:TagKeys": sorted(tag_map),
            **{f"aws:RequestTag/{k}": v for k, v in tag_map.items()},
        }
        self.access.check_account(call, "CreateKey", request_ctx)
        if key_spec and customer_master_key_spec and key_spec != customer_master_key_spec:
            raise ValidationError("KeySpec and CustomerMasterKeySpec must not differ.")
        spec, usage = keyspec.resolve(key_spec or customer_master_key_spec, key_usage)
        origin = origin or "AWS_KMS"
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise UnsupportedOperationError(f"Origin {origin} is not supported by this server.")
        if origin == "EXTERNAL" and spec.kind == "mldsa":
            raise UnsupportedOperationError(f"{spec.name} keys cannot have imported material.")
        account = call.principal.account_id
        if policy is not None:
            validate_key_policy(policy)
        key = Key(
            account_id=account,
            region=call.region,
            key_id=arns.new_key_id(multi_region),
            description=description,
            key_usage=usage,
            key_spec=spec.name,
            origin=origin,
            key_manager=KeyManager.CUSTOMER,
            key_state=KeyState.PENDING_IMPORT if origin == "EXTERNAL" else KeyState.ENABLED,
            creation_date=self._clock.now(),
            policy=policy if policy is not None else default_key_policy(account),
            current_version=0 if origin == "EXTERNAL" else 1,
            multi_region=multi_region,
            primary_region=call.region if multi_region else None,
        )
        if policy is not None and not bypass_policy_lockout_safety_check:
            self._check_lockout(call, key, policy)
        versions = [] if origin == "EXTERNAL" else [self._new_version(key, 1, None)]

        def work(conn: Connection) -> None:
            kms_repo.insert_key(conn, key)
            for version in versions:
                kms_repo.insert_version(conn, key, version)
            kms_repo.put_tags(conn, key, tag_map)
            call.resources.append(key.arn)
            self._audit_in(conn, call)

        self._db.write(work)
        return KeyDescription(key, versions[0].material_id if versions else None, tag_map)

    def _check_lockout(self, call: Call, key: Key, policy: str) -> None:
        """Refuse a policy that would stop the caller from ever changing it again."""
        ctx: Context = {"kms:CallerAccount": call.principal.account_id}
        if not self.access.policy_allows(call, "PutKeyPolicy", key, policy, ctx):
            raise MalformedPolicyDocumentError(LOCKOUT_MESSAGE)

    def ensure_aws_managed_key(self, account_id: str, region: str, service: str) -> Key:
        """The AWS managed key alias/aws/SERVICE, created on first use (internal call)."""
        alias_name = f"{RESERVED_ALIAS_PREFIX}{service}"

        def work(conn: Connection) -> Key:
            alias = kms_repo.get_alias(conn, account_id, region, alias_name)
            if alias is not None:
                existing = kms_repo.get_key(conn, account_id, region, alias.target_key_id)
                if existing is not None:
                    return existing
            now = self._clock.now()
            key = Key(
                account_id=account_id,
                region=region,
                key_id=arns.new_key_id(),
                description=f"Default key that protects my {service.upper()} data "
                "when no other key is defined",
                key_usage="ENCRYPT_DECRYPT",
                key_spec=SYMMETRIC_DEFAULT,
                origin="AWS_KMS",
                key_manager=KeyManager.AWS,
                key_state=KeyState.ENABLED,
                creation_date=now,
                policy=aws_managed_key_policy(account_id, region, service),
                current_version=1,
                rotation_enabled=True,
                rotation_period_days=365,
                next_rotation_date=now + timedelta(days=365),
            )
            kms_repo.insert_key(conn, key)
            kms_repo.insert_version(conn, key, self._new_version(key, 1, None))
            if alias is not None:
                kms_repo.delete_alias(conn, account_id, region, alias_name)
            kms_repo.insert_alias(conn, Alias(account_id, region, alias_name, key.key_id, now, now))
            return key

        key = self._db.write(work)
        if self._on_internal_op is not None:
            self._on_internal_op("EnsureAwsManagedKey", service)
        return key

    def describe_key(self, call: Call, key_id: str) -> KeyDescription:
        view = self.keyring.view(call, key_id)
        self.access.check(call, "DescribeKey", view, context=_request_alias(key_id))
        key = view.key
        current = view.materials.get(key.current_version)
        return KeyDescription(key, None if current is None else current.material_id)

    def list_keys(self, call: Call, limit: int | None, marker: str | None) -> KeyListing:
        self.access.check_account(call, "ListKeys")
        limit = limit or 100
        after = decode_marker(marker)
        with self._db.read() as conn:
            keys = kms_repo.list_keys(
                conn, call.principal.account_id, call.region, after, limit + 1
            )
        more = len(keys) > limit
        keys = keys[:limit]
        return KeyListing(keys, encode_marker(keys[-1].key_id) if more else None)

    def _mutate(
        self,
        call: Call,
        key_id: str,
        operation: str,
        change: Callable[[Connection, Key], None],
        context: Context | None = None,
    ) -> Key:
        """Load a key in a write transaction, authorize, apply change, persist, audit."""

        def work(conn: Connection) -> Key:
            key = self.keyring.load(conn, call, key_id)
            self.access.check(call, operation, self.keyring.load_view(conn, key), context=context)
            change(conn, key)
            kms_repo.update_key(conn, key)
            self._audit_in(conn, call)
            return key

        key = self._db.write(work)
        self.keyring.forget(key)
        return key

    def enable_key(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "EnableKey")
            self._require_not_pending_deletion(key)
            if key.key_state is KeyState.DISABLED:
                key.key_state = KeyState.ENABLED

        self._mutate(call, key_id, "EnableKey", change)

    def disable_key(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "DisableKey")
            self._require_not_pending_deletion(key)
            if key.key_state is KeyState.ENABLED:
                key.key_state = KeyState.DISABLED

        self._mutate(call, key_id, "DisableKey", change)

    def update_key_description(self, call: Call, key_id: str, description: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "UpdateKeyDescription")
            self._require_not_pending_deletion(key)
            key.description = description

        self._mutate(call, key_id, "UpdateKeyDescription", change)

    def schedule_key_deletion(
        self, call: Call, key_id: str, pending_window_days: int | None
    ) -> DeletionScheduled:
        days = 30 if pending_window_days is None else pending_window_days
        if not 7 <= days <= 30:
            raise ValidationError("PendingWindowInDays must be between 7 and 30, inclusive.")

        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "ScheduleKeyDeletion")
            if key.key_state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
                raise InvalidStateError(f"{key.arn} is pending deletion.")
            key.pending_window_days = days
            from sealbox.kms.multi_region import has_replicas, is_primary

            if is_primary(key) and has_replicas(conn, key):
                # AWS: a primary outlives its replicas; its window starts after them.
                key.key_state = KeyState.PENDING_REPLICA_DELETION
                key.deletion_date = None
                return
            key.key_state = KeyState.PENDING_DELETION
            key.deletion_date = self._clock.now() + timedelta(days=days)

        ctx: Context = {"kms:ScheduleKeyDeletionPendingWindowInDays": str(days)}
        key = self._mutate(call, key_id, "ScheduleKeyDeletion", change, ctx)
        return DeletionScheduled(key.arn, key.deletion_date, key.key_state.value, days)

    def cancel_key_deletion(self, call: Call, key_id: str) -> str:
        def change(conn: Connection, key: Key) -> None:
            if key.key_state not in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
                raise InvalidStateError(f"{key.arn} is not pending deletion.")
            key.key_state = KeyState.DISABLED
            key.deletion_date = None
            key.pending_window_days = None

        return self._mutate(call, key_id, "CancelKeyDeletion", change).arn

    # -- tags ---------------------------------------------------------------------------

    @staticmethod
    def _validate_tags(tags: list[tuple[str, str]]) -> dict[str, str]:
        result: dict[str, str] = {}
        for tag_key, tag_value in tags:
            if tag_key.startswith("aws:"):
                raise TagError("Tag keys beginning with 'aws:' are reserved.")
            result[tag_key] = tag_value
        if len(result) > MAX_TAGS:
            raise LimitExceededError(f"A KMS key can have at most {MAX_TAGS} tags.")
        return result

    def tag_resource(self, call: Call, key_id: str, tags: list[tuple[str, str]]) -> None:
        new = self._validate_tags(tags)

        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "TagResource")
            self._require_not_pending_deletion(key)
            existing = kms_repo.get_tags(conn, key.account_id, key.region, key.key_id)
            if len(existing | new) > MAX_TAGS:
                raise LimitExceededError(f"A KMS key can have at most {MAX_TAGS} tags.")
            kms_repo.put_tags(conn, key, new)

        ctx: Context = {
            "aws:TagKeys": sorted(new),
            **{f"aws:RequestTag/{k}": v for k, v in new.items()},
        }
        self._mutate(call, key_id, "TagResource", change, ctx)

    def untag_resource(self, call: Call, key_id: str, tag_keys: list[str]) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "UntagResource")
            self._require_not_pending_deletion(key)
            kms_repo.delete_tags(conn, key, tag_keys)

        self._mutate(call, key_id, "UntagResource", change, {"aws:TagKeys": sorted(tag_keys)})

    def list_resource_tags(
        self, call: Call, key_id: str, limit: int | None, marker: str | None
    ) -> TagListing:
        view = self._view_for_key_id_only(call, key_id)
        self.access.check(call, "ListResourceTags", view)
        limit = limit or 50
        after = decode_marker(marker)
        tags = sorted(view.tags.items())
        if after is not None:
            tags = [t for t in tags if t[0] > after]
        more = len(tags) > limit
        tags = tags[:limit]
        return TagListing(tags, encode_marker(tags[-1][0]) if more else None)

    def _view_for_key_id_only(self, call: Call, key_id: str) -> KeyView:
        """Operations that accept a key id or key ARN but not an alias."""
        account, region, resolved = self.keyring.resolve(None, call, key_id, allow_alias=False)
        return self.keyring.view_by_id(call, account, region, resolved, key_id)

    # -- aliases ------------------------------------------------------------------------

    @staticmethod
    def _check_alias_name(name: str) -> None:
        if not _ALIAS_NAME.fullmatch(name) or len(name) > 256:
            raise ValidationError(
                'Alias must start with the prefix "alias/" and contain only alphanumeric '
                "characters, forward slashes (/), underscores (_) and dashes (-)."
            )
        if name.startswith(RESERVED_ALIAS_PREFIX):
            raise NotAuthorizedError(
                "The alias prefix alias/aws/ is reserved for AWS managed keys."
            )

    def _alias_key_check(self, conn: Connection, call: Call, key: Key, operation: str) -> None:
        if key.account_id != call.principal.account_id:
            raise NotFoundError(f"Key '{key.arn}' does not exist")  # no cross-account aliases
        self.access.check(call, operation, self.keyring.load_view(conn, key))
        self._require_customer_managed(key, operation)
        self._require_not_pending_deletion(key)

    def create_alias(self, call: Call, alias_name: str, target_key_id: str) -> None:
        self._check_alias_name(alias_name)

        def work(conn: Connection) -> None:
            key = self.keyring.load(conn, call, target_key_id)
            self._alias_key_check(conn, call, key, "CreateAlias")
            account, region = call.principal.account_id, call.region
            if kms_repo.get_alias(conn, account, region, alias_name) is not None:
                raise AlreadyExistsError(
                    f"An alias with the name {arns.alias_arn(region, account, alias_name)} "
                    "already exists"
                )
            now = self._clock.now()
            kms_repo.insert_alias(conn, Alias(account, region, alias_name, key.key_id, now, now))
            kms_repo.update_key(conn, key)  # kms:ResourceAliases changed
            call.resources.append(arns.alias_arn(region, account, alias_name))
            self._audit_in(conn, call)

        self._db.write(work)

    def update_alias(self, call: Call, alias_name: str, target_key_id: str) -> None:
        self._check_alias_name(alias_name)

        def work(conn: Connection) -> None:
            account, region = call.principal.account_id, call.region
            alias = kms_repo.get_alias(conn, account, region, alias_name)
            if alias is None:
                raise NotFoundError(
                    f"Alias '{arns.alias_arn(region, account, alias_name)}' is not found."
                )
            key = self.keyring.load(conn, call, target_key_id)
            self._alias_key_check(conn, call, key, "UpdateAlias")
            old = kms_repo.get_key(conn, account, region, alias.target_key_id)
            if old is not None and (old.key_spec, old.key_usage) != (key.key_spec, key.key_usage):
                raise ValidationError(
                    "The new target key must have the same key spec and key usage "
                    "as the current target key."
                )
            kms_repo.retarget_alias(
                conn, account, region, alias_name, key.key_id, self._clock.now()
            )
            kms_repo.update_key(conn, key)  # kms:ResourceAliases changed on both keys
            if old is not None and old.key_id != key.key_id:
                kms_repo.update_key(conn, old)
            call.resources.append(alias.arn)
            self._audit_in(conn, call)

        self._db.write(work)

    def delete_alias(self, call: Call, alias_name: str) -> None:
        if alias_name.startswith(RESERVED_ALIAS_PREFIX):
            raise NotAuthorizedError(
                "The alias prefix alias/aws/ is reserved for AWS managed keys."
            )

        def work(conn: Connection) -> None:
            account, region = call.principal.account_id, call.region
            alias = kms_repo.get_alias(conn, account, region, alias_name)
            if alias is None:
                raise NotFoundError(
                    f"Alias '{arns.alias_arn(region, account, alias_name)}' is not found."
                )
            key = kms_repo.get_key(conn, account, region, alias.target_key_id)
            if key is not None:
                self.access.check(call, "DeleteAlias", self.keyring.load_view(conn, key))
            kms_repo.delete_alias(conn, account, region, alias_name)
            if key is not None:
                kms_repo.update_key(conn, key)  # kms:ResourceAliases changed
            call.resources.append(alias.arn)
            self._audit_in(conn, call)

        self._db.write(work)

    def list_aliases(
        self, call: Call, key_id: str | None, limit: int | None, marker: str | None
    ) -> AliasListing:
        self.access.check_account(call, "ListAliases")
        limit = limit or 50
        after = decode_marker(marker)
        with self._db.read() as conn:
            target = None
            if key_id is not None:
                target = self.keyring.load(conn, call, key_id).key_id
            aliases = kms_repo.list_aliases(
                conn, call.principal.account_id, call.region, target, after, limit + 1
            )
        more = len(aliases) > limit
        aliases = aliases[:limit]
        return AliasListing(aliases, encode_marker(aliases[-1].alias_name) if more else None)

    # -- rotation -------------------------------------------------------------------------

    def _require_rotatable(self, key: Key, operation: str) -> None:
        self._require_customer_managed(key, operation)
        if key.key_spec != SYMMETRIC_DEFAULT or key.origin != "AWS_KMS":
            raise UnsupportedOperationError(
                f"{key.arn} does not support rotation: only symmetric encryption keys "
                "with key material generated by KMS rotate."
            )
        if key.multi_region and key.primary_region != key.region:
            raise UnsupportedOperationError(
                f"{key.arn} is a multi-Region replica; manage rotation on the primary key "
                f"in {key.primary_region}."
            )
        if key.key_state is KeyState.DISABLED:
            raise DisabledError(f"{key.arn} is disabled.")
        self._require_not_pending_deletion(key)

    @staticmethod
    def _sync_rotation(conn: Connection, key: Key) -> None:
        """Replicas share the primary's rotation settings."""
        if not key.multi_region:
            return
        for other in kms_repo.related_keys(conn, key.account_id, key.key_id):
            if other.region != key.region:
                other.rotation_enabled = key.rotation_enabled
                other.rotation_period_days = key.rotation_period_days
                other.next_rotation_date = key.next_rotation_date
                kms_repo.update_key(conn, other)

    def enable_key_rotation(self, call: Call, key_id: str, period_days: int | None) -> None:
        period = 365 if period_days is None else period_days
        if not 90 <= period <= 2560:
            raise ValidationError("RotationPeriodInDays must be between 90 and 2560, inclusive.")

        def change(conn: Connection, key: Key) -> None:
            self._require_rotatable(key, "EnableKeyRotation")
            now = self._clock.now()
            if key.rotation_enabled and key.next_rotation_date and key.rotation_period_days:
                # A new period counts from the last rotation, as AWS does.
                base = key.next_rotation_date - timedelta(days=key.rotation_period_days)
                key.next_rotation_date = base + timedelta(days=period)
            else:
                key.next_rotation_date = now + timedelta(days=period)
            key.rotation_enabled = True
            key.rotation_period_days = period
            self._sync_rotation(conn, key)

        ctx: Context = {"kms:RotationPeriodInDays": str(period)}
        self._mutate(call, key_id, "EnableKeyRotation", change, ctx)

    def disable_key_rotation(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_rotatable(key, "DisableKeyRotation")
            key.rotation_enabled = False
            key.rotation_period_days = None
            key.next_rotation_date = None
            self._sync_rotation(conn, key)

        self._mutate(call, key_id, "DisableKeyRotation", change)

    def get_key_rotation_status(self, call: Call, key_id: str) -> RotationStatus:
        view = self._view_for_key_id_only(call, key_id)
        self.access.check(call, "GetKeyRotationStatus", view)
        key = view.key
        return RotationStatus(
            key.arn,
            key.rotation_enabled,
            key.rotation_period_days if key.rotation_enabled else None,
            key.next_rotation_date if key.rotation_enabled else None,
            key.on_demand_rotation_started,
        )

    def add_version(self, conn: Connection, key: Key, rotation_type: str) -> None:
        """Rotate: new material becomes current; older versions keep decrypting."""
        version = self._new_version(key, key.current_version + 1, rotation_type)
        kms_repo.insert_version(conn, key, version)
        key.current_version = version.version
        if key.multi_region:
            from sealbox.kms.multi_region import rotate_related

            rotate_related(conn, key, version)

    def rotate_key_on_demand(self, call: Call, key_id: str) -> str:
        def change(conn: Connection, key: Key) -> None:
            self._require_rotatable(key, "RotateKeyOnDemand")
            done = [
                v
                for v in kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
                if v.rotation_type == "ON_DEMAND"
            ]
            if len(done) >= MAX_ON_DEMAND_ROTATIONS:
                raise LimitExceededError(
                    f"{key.arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} "
                    "on-demand rotations."
                )
            self.add_version(conn, key, "ON_DEMAND")

        return self._mutate(call, key_id, "RotateKeyOnDemand", change).arn

    def list_key_rotations(
        self,
        call: Call,
        key_id: str,
        limit: int | None,
        marker: str | None,
        include_initial: bool = False,
    ) -> RotationListing:
        limit = limit or 100
        after = decode_marker(marker)
        if after is not None and not after.isdigit():
            raise InvalidMarkerError("The marker is not valid.")
        with self._db.read() as conn:
            key = self.keyring.load(conn, call, key_id)
            self.access.check(call, "ListKeyRotations", self.keyring.load_view(conn, key))
            if key.key_spec != SYMMETRIC_DEFAULT:
                raise UnsupportedOperationError(f"{key.arn} does not support rotation.")
            versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
        first = int(after) if after is not None else 0
        chosen = [
            v
            for v in versions
            if (include_initial or v.rotation_type is not None) and v.version > first
        ]
        more = len(chosen) > limit
        chosen = chosen[:limit]
        entries = [
            RotationEntry(
                key.arn,
                v.material_id,
                v.created_at if v.rotation_type else None,
                v.rotation_type,
                v.version == key.current_version,
            )
            for v in chosen
        ]
        return RotationListing(entries, encode_marker(str(chosen[-1].version)) if more else None)

    # -- usage ----------------------------------------------------------------------------

    def get_key_last_usage(self, call: Call, key_id: str) -> tuple[Key, dict[str, Any] | None]:
        """The newest successful cryptographic use of a key, from the audit records."""
        view = self._view_for_key_id_only(call, key_id)
        self.access.check(call, "GetKeyLastUsage", view)
        key = view.key
        self._audit.catch_up()
        with self._db.read() as conn:
            record = audit_repo.last_successful_use(conn, key.account_id, key.arn, CRYPTO_EVENTS)
        return key, record

    # -- key policies -----------------------------------------------------------------------

    @staticmethod
    def _check_policy_name(name: str | None) -> None:
        if name is not None and name != DEFAULT_POLICY_NAME:
            raise NotFoundError(f"No such policy exists: {name}")

    def get_key_policy(self, call: Call, key_id: str, policy_name: str | None) -> str:
        self._check_policy_name(policy_name)
        view = self._view_for_key_id_only(call, key_id)
        self.access.check(call, "GetKeyPolicy", view)
        return view.key.policy

    def put_key_policy(
        self,
        call: Call,
        key_id: str,
        policy: str,
        policy_name: str | None,
        bypass_policy_lockout_safety_check: bool = False,
    ) -> None:
        self._check_policy_name(policy_name)
        validate_key_policy(policy)

        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "PutKeyPolicy")
            if not bypass_policy_lockout_safety_check:
                self._check_lockout(call, key, policy)
            key.policy = policy

        ctx: Context = {
            "kms:BypassPolicyLockoutSafetyCheck": str(bypass_policy_lockout_safety_check).lower()
        }
        self._mutate(call, key_id, "PutKeyPolicy", change, ctx)

    def list_key_policies(self, call: Call, key_id: str) -> list[str]:
        view = self._view_for_key_id_only(call, key_id)
        self.access.check(call, "ListKeyPolicies", view)
        return [DEFAULT_POLICY_NAME]

    # -- audit -----------------------------------------------------------------------------

    def record(self, conn: Connection, call: Call) -> None:
        """Append the call's audit record inside conn's transaction."""
        self._audit_in(conn, call)

    def _audit_in(self, conn: Connection, call: Call) -> None:
        self._audit.append(conn, call)
        call.audited = True


def _request_alias(key_id: str) -> Context:
    """kms:RequestAlias: the alias the request named the key by, if any."""
    if key_id.startswith("alias/"):
        return {"kms:RequestAlias": key_id}
    if key_id.startswith("arn:") and ":alias/" in key_id:
        return {"kms:RequestAlias": key_id.split(":", 5)[5]}
    return {}
