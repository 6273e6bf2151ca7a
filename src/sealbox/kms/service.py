"""KmsService: one method per KMS operation. Plain Python in, dataclasses out.

Every rule AWS applies — which identifiers an operation accepts, which key states
allow it, limits and defaults — is decided here, not in the protocol adapter. Key
material is unwrapped from the keystore only when needed and cached per process,
keyed by the key row's row_version so a change made by another worker process
(disable, rotate, delete) is seen on the next request.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from sealbox import arn as arns
from sealbox import crypto
from sealbox.audit.recorder import AuditRecorder
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.errors import ValidationError
from sealbox.keystore.base import KeyStore
from sealbox.kms import keyspec
from sealbox.kms.errors import (
    AlreadyExistsError,
    DisabledError,
    DryRunOperationError,
    IncorrectKeyError,
    InvalidArnError,
    InvalidCiphertextError,
    InvalidKeyUsageError,
    InvalidMarkerError,
    InvalidStateError,
    LimitExceededError,
    NotAuthorizedError,
    NotFoundError,
    TagError,
    UnsupportedOperationError,
)
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
from sealbox.storage import kms_repo
from sealbox.storage.db import Database

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
MAX_ON_DEMAND_ROTATIONS = 10
MAX_TAGS = 50
RESERVED_ALIAS_PREFIX = "alias/aws/"
_ALIAS_NAME = re.compile(r"alias/[a-zA-Z0-9/_-]+")
_MATERIAL_CACHE_LIMIT = 10_000
DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."

InternalOpHook = Callable[[str, str], None]  # (operation, calling service)


@dataclass(frozen=True, slots=True)
class _Material:
    secret: bytes = field(repr=False)
    material_id: str


def _encode_marker(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode_marker(marker: str | None) -> str | None:
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
        on_internal_op: InternalOpHook | None = None,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._clock = clock
        self._audit = audit
        self._on_internal_op = on_internal_op
        # (account, region, key id) → (row_version, {version: (material, material id)})
        self._materials: dict[tuple[str, str, str], tuple[int, dict[int, _Material]]] = {}
        # (account, region, key id) → Key as of its row_version (read-only use).
        self._keys: dict[tuple[str, str, str], Key] = {}
        self._materials_lock = threading.Lock()

    # -- identifiers and state ------------------------------------------------

    def _resolve_key_id(
        self, conn: Connection, call: Call, key_id: str, allow_alias: bool
    ) -> tuple[str, str]:
        """Map a key id, key ARN, alias name or alias ARN to (region, key id)."""
        account, region = call.principal.account_id, call.region
        if key_id.startswith("arn:"):
            parsed = arns.parse_arn(key_id)
            if parsed is None or parsed.service != "kms":
                raise InvalidArnError(f"ARN {key_id} is not a valid KMS ARN.")
            if parsed.account != account or parsed.region != region:
                raise NotFoundError(f"Key '{key_id}' does not exist")
            resource = parsed.resource
            if resource.startswith("key/"):
                return region, resource[4:]
            if resource.startswith("alias/") and allow_alias:
                return region, self._alias_target(conn, account, region, resource)
            raise NotFoundError(f"Invalid keyId '{key_id}'")
        if key_id.startswith("alias/"):
            if not allow_alias:
                raise NotFoundError(f"Invalid keyId '{key_id}'")
            return region, self._alias_target(conn, account, region, key_id)
        return region, key_id

    def _alias_target(self, conn: Connection, account: str, region: str, name: str) -> str:
        alias = kms_repo.get_alias(conn, account, region, name)
        if alias is None:
            raise NotFoundError(f"Alias '{arns.alias_arn(region, account, name)}' is not found.")
        return alias.target_key_id

    def _load(self, conn: Connection, call: Call, key_id: str, allow_alias: bool = False) -> Key:
        region, resolved = self._resolve_key_id(conn, call, key_id, allow_alias)
        account = call.principal.account_id
        key = (
            kms_repo.get_key(conn, account, region, resolved) if arns.is_key_id(resolved) else None
        )
        if key is None:
            if not arns.is_key_id(resolved):
                raise NotFoundError(f"Invalid keyId '{key_id}'")
            raise NotFoundError(f"Key '{arns.key_arn(region, account, resolved)}' does not exist")
        if key.arn not in call.resources:
            call.resources.append(key.arn)
        return key

    def _crypto_key(self, call: Call, key_id: str) -> Key:
        """The key a cryptographic operation names (id, ARN, alias or alias ARN).

        Hot path: a cached Key is used only while its row_version still matches the
        database, checked with one cheap lookup per request, so a change committed by
        any worker process (disable, rotate, schedule deletion) is seen at once.
        """
        account, region = call.principal.account_id, call.region
        resolved = key_id
        if key_id.startswith("alias/") or key_id.startswith(
            f"arn:aws:kms:{region}:{account}:alias/"
        ):
            name = key_id if key_id.startswith("alias/") else key_id.split(":", 5)[5]
            target = kms_repo.alias_target(self._db, account, region, name)
            resolved = target if target is not None else key_id
        elif key_id.startswith(f"arn:aws:kms:{region}:{account}:key/"):
            resolved = key_id.split(":", 5)[5][4:]
        cache_key = (account, region, resolved)
        cached = self._keys.get(cache_key)
        if cached is not None and arns.is_key_id(resolved):
            version = kms_repo.key_row_version(self._db, account, region, resolved)
            if version == cached.row_version:
                if cached.arn not in call.resources:
                    call.resources.append(cached.arn)
                return cached
        with self._db.read() as conn:
            key = self._load(conn, call, key_id, allow_alias=True)
            self._materials_for(conn, key)
        with self._materials_lock:
            if len(self._keys) >= _MATERIAL_CACHE_LIMIT:
                self._keys.clear()
            self._keys[(key.account_id, key.region, key.key_id)] = key
        return key

    def _cached_materials(self, key: Key) -> dict[int, _Material]:
        """Materials for a key _crypto_key returned (loads them if evicted meanwhile)."""
        cached = self._materials.get((key.account_id, key.region, key.key_id))
        if cached is not None and cached[0] == key.row_version:
            return cached[1]
        with self._db.read() as conn:
            return self._materials_for(conn, key)

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
        if key.key_state is KeyState.PENDING_DELETION:
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
        algorithm = algorithm or SYMMETRIC_DEFAULT
        if key.key_spec == SYMMETRIC_DEFAULT and algorithm != SYMMETRIC_DEFAULT:
            raise InvalidKeyUsageError(
                f"EncryptionAlgorithm {algorithm} is not supported by {key.arn} "
                f"with KeySpec {key.key_spec}."
            )
        return algorithm

    # -- key material ------------------------------------------------------------

    def _material_label(self, key: Key, version: int) -> str:
        return f"kms-key-material/v1/{key.account_id}/{key.key_id}/{version}"

    def _new_version(self, key: Key, version: int, rotation_type: str | None) -> KeyVersion:
        material = crypto.new_key_material()
        return KeyVersion(
            version=version,
            material_id=crypto.random_bytes(32).hex(),
            created_at=self._clock.now(),
            rotation_type=rotation_type,
            wrapped_material=self._keystore.wrap(material, self._material_label(key, version)),
        )

    def _materials_for(self, conn: Connection, key: Key) -> dict[int, _Material]:
        cache_key = (key.account_id, key.region, key.key_id)
        cached = self._materials.get(cache_key)
        if cached is not None and cached[0] == key.row_version:
            return cached[1]
        materials = {
            v.version: _Material(
                self._keystore.unwrap(v.wrapped_material, self._material_label(key, v.version)),
                v.material_id,
            )
            for v in kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
        }
        with self._materials_lock:
            if len(self._materials) >= _MATERIAL_CACHE_LIMIT:
                self._materials.clear()
            self._materials[cache_key] = (key.row_version, materials)
        return materials

    def _forget_materials(self, key: Key) -> None:
        with self._materials_lock:
            self._materials.pop((key.account_id, key.region, key.key_id), None)

    def _seal(
        self, key: Key, plaintext: bytes, context: Mapping[str, str] | None
    ) -> tuple[bytes, str]:
        """Seal under the key's current material; returns the blob and the material id."""
        material = self._cached_materials(key)[key.current_version]
        header = crypto.BlobHeader(key.key_id, key.current_version)
        return crypto.seal_blob(material.secret, header, plaintext, context), material.material_id

    def _open(
        self,
        call: Call,
        blob: bytes,
        context: Mapping[str, str] | None,
        key_id: str | None,
        algorithm: str | None,
    ) -> tuple[Key, bytes, str, str]:
        """Decrypt a blob: (key, plaintext, algorithm, material id)."""
        try:
            header, _ = crypto.read_header(blob)
        except crypto.InvalidCiphertext:
            raise InvalidCiphertextError("The ciphertext is not valid.") from None
        if key_id is not None and self._crypto_key(call, key_id).key_id != header.key_id:
            raise IncorrectKeyError(
                "The key ID in the request does not identify a KMS key "
                "that can perform this operation."
            )
        if not arns.is_key_id(header.key_id):
            raise InvalidCiphertextError("The ciphertext is not valid.")
        try:
            key = self._crypto_key(call, header.key_id)
        except NotFoundError:
            account, region = call.principal.account_id, call.region
            with self._db.read() as conn:
                deleted = kms_repo.was_deleted(conn, account, region, header.key_id)
            if deleted:
                raise  # crypto-shredded: the key is gone, as AWS answers for a deleted key
            # Never a key here (another region or account, or not ours at all).
            raise InvalidCiphertextError("The ciphertext is not valid.") from None
        self._require_usable(key)
        algorithm = self._require_symmetric_encryption(key, algorithm)
        material = self._cached_materials(key).get(header.key_version)
        if material is None:
            raise InvalidCiphertextError("The ciphertext is not valid.")
        try:
            plaintext = crypto.open_blob(material.secret, blob, context)
        except crypto.InvalidCiphertext:
            raise InvalidCiphertextError(
                "The ciphertext could not be decrypted: it was altered, or the "
                "encryption context does not match."
            ) from None
        return key, plaintext, algorithm, material.material_id

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
        key = self._crypto_key(call, key_id)
        self._require_usable(key)
        algorithm = self._require_symmetric_encryption(key, algorithm)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        ciphertext, _ = self._seal(key, plaintext, context)
        return EncryptResult(ciphertext, key.arn, algorithm)

    def decrypt(
        self,
        call: Call,
        ciphertext: bytes,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        algorithm: str | None = None,
        dry_run: bool = False,
    ) -> DecryptResult:
        key, plaintext, algorithm, material_id = self._open(
            call, ciphertext, context, key_id, algorithm
        )
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        return DecryptResult(plaintext, key.arn, algorithm, material_id)

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
        source, plaintext, source_algorithm, source_material = self._open(
            call, ciphertext, source_context, source_key_id, source_algorithm
        )
        dest = self._crypto_key(call, destination_key_id)
        self._require_usable(dest)
        destination_algorithm = self._require_symmetric_encryption(dest, destination_algorithm)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        new_blob, dest_material = self._seal(dest, plaintext, destination_context)
        return ReEncryptResult(
            new_blob,
            source.arn,
            dest.arn,
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
        if (number_of_bytes is None) == (key_spec is None):
            raise ValidationError("Please specify either number of bytes or key spec.")
        size = number_of_bytes if number_of_bytes is not None else DATA_KEY_SPECS[str(key_spec)]
        key = self._crypto_key(call, key_id)
        self._require_usable(key)
        self._require_symmetric_encryption(key, None)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        data_key = crypto.random_bytes(size)
        ciphertext, material_id = self._seal(key, data_key, context)
        return DataKeyResult(
            ciphertext, data_key if include_plaintext else None, key.arn, material_id
        )

    def generate_random(self, call: Call, number_of_bytes: int | None) -> bytes:
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
    ) -> KeyDescription:
        if key_spec and customer_master_key_spec and key_spec != customer_master_key_spec:
            raise ValidationError("KeySpec and CustomerMasterKeySpec must not differ.")
        info = keyspec.resolve(key_spec or customer_master_key_spec, key_usage)
        origin = origin or "AWS_KMS"
        if origin != "AWS_KMS":
            raise UnsupportedOperationError(f"Origin {origin} is not supported by this server yet.")
        if multi_region:
            raise UnsupportedOperationError(
                "Multi-Region keys are not supported by this server yet."
            )
        account = call.principal.account_id
        if policy is not None:
            validate_key_policy(policy)
        tag_map = self._validate_tags(tags or [])
        key = Key(
            account_id=account,
            region=call.region,
            key_id=arns.new_key_id(),
            description=description,
            key_usage=info.usages[0] if key_usage is None else key_usage,
            key_spec=info.name,
            origin=origin,
            key_manager=KeyManager.CUSTOMER,
            key_state=KeyState.ENABLED,
            creation_date=self._clock.now(),
            policy=policy if policy is not None else default_key_policy(account),
            current_version=1,
        )
        version = self._new_version(key, 1, None)

        def work(conn: Connection) -> None:
            kms_repo.insert_key(conn, key)
            kms_repo.insert_version(conn, key, version)
            kms_repo.put_tags(conn, key, tag_map)
            call.resources.append(key.arn)
            self._audit_in(conn, call)

        self._db.write(work)
        return KeyDescription(key, version.material_id, tag_map)

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
                policy=aws_managed_key_policy(account_id, service),
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
        with self._db.read() as conn:
            key = self._load(conn, call, key_id, allow_alias=True)
            versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
        current = next((v.material_id for v in versions if v.version == key.current_version), None)
        return KeyDescription(key, current)

    def list_keys(self, call: Call, limit: int | None, marker: str | None) -> KeyListing:
        limit = limit or 100
        after = _decode_marker(marker)
        with self._db.read() as conn:
            keys = kms_repo.list_keys(
                conn, call.principal.account_id, call.region, after, limit + 1
            )
        more = len(keys) > limit
        keys = keys[:limit]
        return KeyListing(keys, _encode_marker(keys[-1].key_id) if more else None)

    def _mutate(
        self,
        call: Call,
        key_id: str,
        change: Callable[[Connection, Key], None],
        allow_alias: bool = False,
    ) -> Key:
        """Load a key in a write transaction, apply change, persist, and audit."""

        def work(conn: Connection) -> Key:
            key = self._load(conn, call, key_id, allow_alias=allow_alias)
            change(conn, key)
            kms_repo.update_key(conn, key)
            self._audit_in(conn, call)
            return key

        key = self._db.write(work)
        self._forget_materials(key)
        return key

    def enable_key(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "EnableKey")
            self._require_not_pending_deletion(key)
            if key.key_state is KeyState.DISABLED:
                key.key_state = KeyState.ENABLED

        self._mutate(call, key_id, change)

    def disable_key(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "DisableKey")
            self._require_not_pending_deletion(key)
            if key.key_state is KeyState.ENABLED:
                key.key_state = KeyState.DISABLED

        self._mutate(call, key_id, change)

    def update_key_description(self, call: Call, key_id: str, description: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "UpdateKeyDescription")
            self._require_not_pending_deletion(key)
            key.description = description

        self._mutate(call, key_id, change)

    def schedule_key_deletion(
        self, call: Call, key_id: str, pending_window_days: int | None
    ) -> DeletionScheduled:
        days = 30 if pending_window_days is None else pending_window_days
        if not 7 <= days <= 30:
            raise ValidationError("PendingWindowInDays must be between 7 and 30, inclusive.")

        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "ScheduleKeyDeletion")
            if key.key_state is KeyState.PENDING_DELETION:
                raise InvalidStateError(f"{key.arn} is pending deletion.")
            key.key_state = KeyState.PENDING_DELETION
            key.pending_window_days = days
            key.deletion_date = self._clock.now() + timedelta(days=days)

        key = self._mutate(call, key_id, change)
        assert key.deletion_date is not None
        return DeletionScheduled(key.arn, key.deletion_date, key.key_state.value, days)

    def cancel_key_deletion(self, call: Call, key_id: str) -> str:
        def change(conn: Connection, key: Key) -> None:
            if key.key_state is not KeyState.PENDING_DELETION:
                raise InvalidStateError(f"{key.arn} is not pending deletion.")
            key.key_state = KeyState.DISABLED
            key.deletion_date = None
            key.pending_window_days = None

        return self._mutate(call, key_id, change).arn

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

        self._mutate(call, key_id, change)

    def untag_resource(self, call: Call, key_id: str, tag_keys: list[str]) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "UntagResource")
            self._require_not_pending_deletion(key)
            kms_repo.delete_tags(conn, key, tag_keys)

        self._mutate(call, key_id, change)

    def list_resource_tags(
        self, call: Call, key_id: str, limit: int | None, marker: str | None
    ) -> TagListing:
        limit = limit or 50
        after = _decode_marker(marker)
        with self._db.read() as conn:
            key = self._load(conn, call, key_id)
            tags = sorted(kms_repo.get_tags(conn, key.account_id, key.region, key.key_id).items())
        if after is not None:
            tags = [t for t in tags if t[0] > after]
        more = len(tags) > limit
        tags = tags[:limit]
        return TagListing(tags, _encode_marker(tags[-1][0]) if more else None)

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

    def create_alias(self, call: Call, alias_name: str, target_key_id: str) -> None:
        self._check_alias_name(alias_name)

        def work(conn: Connection) -> None:
            key = self._load(conn, call, target_key_id)
            self._require_customer_managed(key, "CreateAlias")
            self._require_not_pending_deletion(key)
            account, region = call.principal.account_id, call.region
            if kms_repo.get_alias(conn, account, region, alias_name) is not None:
                raise AlreadyExistsError(
                    f"An alias with the name {arns.alias_arn(region, account, alias_name)} "
                    "already exists"
                )
            now = self._clock.now()
            kms_repo.insert_alias(conn, Alias(account, region, alias_name, key.key_id, now, now))
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
            key = self._load(conn, call, target_key_id)
            self._require_customer_managed(key, "UpdateAlias")
            self._require_not_pending_deletion(key)
            old = kms_repo.get_key(conn, account, region, alias.target_key_id)
            if old is not None and (old.key_spec, old.key_usage) != (key.key_spec, key.key_usage):
                raise ValidationError(
                    "The new target key must have the same key spec and key usage "
                    "as the current target key."
                )
            kms_repo.retarget_alias(
                conn, account, region, alias_name, key.key_id, self._clock.now()
            )
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
            kms_repo.delete_alias(conn, account, region, alias_name)
            call.resources.append(alias.arn)
            self._audit_in(conn, call)

        self._db.write(work)

    def list_aliases(
        self, call: Call, key_id: str | None, limit: int | None, marker: str | None
    ) -> AliasListing:
        limit = limit or 50
        after = _decode_marker(marker)
        with self._db.read() as conn:
            target = None
            if key_id is not None:
                target = self._load(conn, call, key_id).key_id
            aliases = kms_repo.list_aliases(
                conn, call.principal.account_id, call.region, target, after, limit + 1
            )
        more = len(aliases) > limit
        aliases = aliases[:limit]
        return AliasListing(aliases, _encode_marker(aliases[-1].alias_name) if more else None)

    # -- rotation -------------------------------------------------------------------------

    def _require_rotatable(self, key: Key, operation: str) -> None:
        self._require_customer_managed(key, operation)
        if key.key_spec != SYMMETRIC_DEFAULT or key.origin != "AWS_KMS":
            raise UnsupportedOperationError(
                f"{key.arn} does not support rotation: only symmetric encryption keys "
                "with key material generated by KMS rotate."
            )
        if key.key_state is KeyState.DISABLED:
            raise DisabledError(f"{key.arn} is disabled.")
        self._require_not_pending_deletion(key)

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

        self._mutate(call, key_id, change)

    def disable_key_rotation(self, call: Call, key_id: str) -> None:
        def change(conn: Connection, key: Key) -> None:
            self._require_rotatable(key, "DisableKeyRotation")
            key.rotation_enabled = False
            key.rotation_period_days = None
            key.next_rotation_date = None

        self._mutate(call, key_id, change)

    def get_key_rotation_status(self, call: Call, key_id: str) -> RotationStatus:
        with self._db.read() as conn:
            key = self._load(conn, call, key_id)
        return RotationStatus(
            key.arn,
            key.rotation_enabled,
            key.rotation_period_days if key.rotation_enabled else None,
            key.next_rotation_date if key.rotation_enabled else None,
            key.on_demand_rotation_started,
        )

    def _rotate(self, conn: Connection, key: Key, rotation_type: str) -> None:
        version = self._new_version(key, key.current_version + 1, rotation_type)
        kms_repo.insert_version(conn, key, version)
        key.current_version = version.version

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
            self._rotate(conn, key, "ON_DEMAND")

        return self._mutate(call, key_id, change).arn

    def list_key_rotations(
        self,
        call: Call,
        key_id: str,
        limit: int | None,
        marker: str | None,
        include_initial: bool = False,
    ) -> RotationListing:
        limit = limit or 100
        after = _decode_marker(marker)
        with self._db.read() as conn:
            key = self._load(conn, call, key_id)
            if key.key_spec != SYMMETRIC_DEFAULT:
                raise UnsupportedOperationError(f"{key.arn} does not support rotation.")
            versions = kms_repo.get_versions(conn, key.account_id, key.region, key.key_id)
        first = int(after) if after is not None and after.isdigit() else 0
        if after is not None and not after.isdigit():
            raise InvalidMarkerError("The marker is not valid.")
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
        return RotationListing(entries, _encode_marker(str(chosen[-1].version)) if more else None)

    # -- key policies -----------------------------------------------------------------------

    @staticmethod
    def _check_policy_name(name: str | None) -> None:
        if name is not None and name != DEFAULT_POLICY_NAME:
            raise NotFoundError(f"No such policy exists: {name}")

    def get_key_policy(self, call: Call, key_id: str, policy_name: str | None) -> str:
        self._check_policy_name(policy_name)
        with self._db.read() as conn:
            return self._load(conn, call, key_id).policy

    def put_key_policy(self, call: Call, key_id: str, policy: str, policy_name: str | None) -> None:
        self._check_policy_name(policy_name)
        validate_key_policy(policy)

        def change(conn: Connection, key: Key) -> None:
            self._require_customer_managed(key, "PutKeyPolicy")
            key.policy = policy

        self._mutate(call, key_id, change)

    def list_key_policies(self, call: Call, key_id: str) -> list[str]:
        with self._db.read() as conn:
            self._load(conn, call, key_id)
        return [DEFAULT_POLICY_NAME]

    # -- scheduled work (deletion windows, automatic rotation) -----------------------------

    def run_due_work(self, system_call: Callable[[str, str, str], Call]) -> tuple[int, int]:
        """Destroy keys whose deletion window ended and rotate keys that are due.

        Idempotent and safe to run from several processes at once: each key is
        re-checked inside its own write transaction. Returns (deleted, rotated).
        """
        now = self._clock.now()
        with self._db.read() as conn:
            due_delete = kms_repo.keys_due_for_deletion(conn, now)
            due_rotate = kms_repo.keys_due_for_rotation(conn, now)
        deleted = sum(self._destroy_if_due(ids, now, system_call) for ids in due_delete)
        rotated = sum(self._rotate_if_due(ids, now, system_call) for ids in due_rotate)
        return deleted, rotated

    def _destroy_if_due(
        self, ids: tuple[str, str, str], now: datetime, system_call: Callable[[str, str, str], Call]
    ) -> bool:
        account, region, key_id = ids

        def work(conn: Connection) -> bool:
            key = kms_repo.get_key(conn, account, region, key_id)
            if (
                key is None
                or key.key_state is not KeyState.PENDING_DELETION
                or key.deletion_date is None
                or key.deletion_date > now
            ):
                return False
            kms_repo.delete_key(conn, account, region, key_id, now)
            call = system_call(account, region, "DeleteKey")
            call.resources.append(key.arn)
            self._audit_in(conn, call)
            return True

        done = self._db.write(work)
        if done:
            with self._materials_lock:
                self._materials.pop(ids, None)
        return done

    def _rotate_if_due(
        self, ids: tuple[str, str, str], now: datetime, system_call: Callable[[str, str, str], Call]
    ) -> bool:
        account, region, key_id = ids

        def work(conn: Connection) -> bool:
            key = kms_repo.get_key(conn, account, region, key_id)
            if (
                key is None
                or not key.rotation_enabled
                or key.key_state is not KeyState.ENABLED
                or key.next_rotation_date is None
                or key.next_rotation_date > now
                or key.rotation_period_days is None
            ):
                return False
            self._rotate(conn, key, "AUTOMATIC")
            key.next_rotation_date = now + timedelta(days=key.rotation_period_days)
            kms_repo.update_key(conn, key)
            call = system_call(account, region, "RotateKey")
            call.resources.append(key.arn)
            self._audit_in(conn, call)
            return True

        return self._db.write(work)

    # -- audit -----------------------------------------------------------------------------

    def _audit_in(self, conn: Connection, call: Call) -> None:
        self._audit.append(conn, call)
        call.audited = True
