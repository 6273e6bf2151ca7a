"""Volume and snapshot data keys: where they come from and how EBS opens them.

Every volume and snapshot has a 256-bit data key. Encrypted resources (Encrypted=true)
get it from KMS: ``GenerateDataKeyWithoutPlaintext`` with encryption context
``{"aws:ebs:id": <volume or snapshot id>}`` when the key is made, ``Decrypt`` with the
same context when EBS needs the plaintext (attach, snapshot, restore, copy, the direct
APIs) — each a KMS call of its own made on the caller's behalf (invokedBy
ec2.amazonaws.com, kms:ViaService ec2.REGION.amazonaws.com), collected on the caller's
Call and audited with it. KMS errors (disabled key, pending deletion, access denied,
shredded key) surface as EC2's (see ebs.errors.KmsFailure).

"Unencrypted" resources (Encrypted=false, as AWS reports them) are still encrypted at
rest: their data key is sealed by the account's service-owned EBS key (itself wrapped by
the root of trust), like SSE-S3 beside SSE-KMS.

While a volume is attached its data key is also kept sealed by the service key
(``attached_key``), so the block server can open the volume without a KMS call and in
any process: as in AWS, disabling the KMS key does not cut off an attached volume, it
makes the next attach fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sealbox import crypto
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.ebs.errors import InvalidParameterValue, KmsFailure, StoredDataCorrupt
from sealbox.ebs.model import Keying
from sealbox.errors import AwsError
from sealbox.keystore.base import KeyStore
from sealbox.keystore.service_keys import ServiceKeys
from sealbox.kms import on_behalf
from sealbox.kms.service import KmsService
from sealbox.storage import ebs_repo
from sealbox.storage.db import Database

T = TypeVar("T")
EC2_SERVICE = "ec2.amazonaws.com"
CONTEXT_KEY = "aws:ebs:id"
DATA_KEY_BYTES = 32
MANAGED_ALIAS = "alias/aws/ebs"
DATA_KEY_TTL_SECONDS = 300.0
_CACHE_LIMIT = 4096


def kms_context(context_id: str) -> dict[str, str]:
    return {CONTEXT_KEY: context_id}


def _aad(kind: str, ident: str) -> bytes:
    return f"sealbox/ebs/{kind}/v1|{ident}".encode()


class DataKeys:
    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        kms: KmsService,
        clock: Clock,
        count_kms: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._keystore = keystore
        self._kms = kms
        self._clock = clock
        self._count_kms = count_kms or (lambda _op: None)
        self._service_keys = ServiceKeys(
            db,
            keystore,
            clock,
            "sealbox/ebs/service-key",
            ebs_repo.get_service_key,
            ebs_repo.insert_service_key,
        )
        # (caller ARN, wrapped key) → (plaintext, key ARN, expiry): the direct APIs open
        # a snapshot's key once per caller per period, re-checking the key on every use.
        self._opened: dict[tuple[str, bytes], tuple[bytes, str, float]] = {}
        self._lock = threading.Lock()

    # -- the service-owned key -------------------------------------------------------------

    def _service_key(self, account_id: str) -> bytes:
        return self._service_keys.key(account_id)

    def seal_attached(self, account_id: str, volume_id: str, data_key: bytes) -> bytes:
        return crypto.seal(self._service_key(account_id), data_key, _aad("attached", volume_id))

    def open_attached(self, account_id: str, volume_id: str, sealed: bytes) -> bytes:
        return crypto.open_(self._service_key(account_id), sealed, _aad("attached", volume_id))

    # -- KMS on the caller's behalf ----------------------------------------------------------

    @staticmethod
    def kms_call(call: Call, region: str, event_name: str) -> Call:
        return on_behalf.kms_call(call, region, event_name, EC2_SERVICE)

    def _through_kms(self, call: Call, sub: Call, work: Callable[[], T]) -> T:
        try:
            return on_behalf.run(call, sub, work, self._count_kms)
        except AwsError as err:
            raise KmsFailure(err) from None

    def managed_key_arn(self, account_id: str, region: str) -> str:
        return self._kms.ensure_aws_managed_key(account_id, region, "ebs").arn

    def default_key_id(self, account_id: str, region: str) -> str:
        """The key encryption by default (and Encrypted=true without a key) uses."""
        with self._db.read() as conn:
            configured = ebs_repo.get_settings(conn, account_id, region).default_kms_key_id
        return configured or self.managed_key_arn(account_id, region)

    def _is_managed_alias(self, key_id: str) -> bool:
        return key_id == MANAGED_ALIAS or key_id.endswith(":" + MANAGED_ALIAS)

    def key_arn(self, call: Call, region: str, key_id: str) -> str:
        """The ARN of the key an EC2 parameter names (DescribeKey on the caller's behalf)."""
        if self._is_managed_alias(key_id):
            return self.managed_key_arn(call.principal.account_id, region)
        sub = self.kms_call(call, region, "DescribeKey")
        sub.request_parameters = {"keyId": key_id}
        description = self._through_kms(call, sub, lambda: self._kms.describe_key(sub, key_id))
        key = description.key
        if key.key_spec != "SYMMETRIC_DEFAULT" or key.key_usage != "ENCRYPT_DECRYPT":
            raise InvalidParameterValue(
                f"The KMS key {key.arn} is not a symmetric encryption key; "
                "Amazon EBS supports only symmetric encryption KMS keys."
            )
        arn: str = key.arn
        return arn

    # -- data keys ---------------------------------------------------------------------------

    def new_keying(
        self, call: Call, region: str, context_id: str, kms_key_id: str | None
    ) -> Keying:
        """A fresh data key for resource context_id: from KMS under kms_key_id, or (None)
        sealed by the service key."""
        if kms_key_id is None:
            data_key = crypto.random_bytes(DATA_KEY_BYTES)
            sealed = crypto.seal(
                self._service_key(call.principal.account_id), data_key, _aad("dk", context_id)
            )
            return Keying(False, None, sealed, context_id)
        if self._is_managed_alias(kms_key_id):
            kms_key_id = self.managed_key_arn(call.principal.account_id, region)
        context = kms_context(context_id)
        sub = self.kms_call(call, region, "GenerateDataKeyWithoutPlaintext")
        sub.request_parameters = {
            "keyId": kms_key_id,
            "encryptionContext": context,
            "keySpec": "AES_256",
        }
        key_id = kms_key_id
        result = self._through_kms(
            call,
            sub,
            lambda: self._kms.generate_data_key(
                sub, key_id, context, key_spec="AES_256", include_plaintext=False
            ),
        )
        return Keying(True, result.key_arn, result.ciphertext, context_id)

    def open(self, call: Call, keying: Keying, region: str, account_id: str) -> bytes:
        """The plaintext data key (Decrypt on the caller's behalf for encrypted ones)."""
        if not keying.encrypted:
            try:
                return crypto.open_(
                    self._service_key(account_id), keying.wrapped_key, _aad("dk", keying.context_id)
                )
            except crypto.InvalidCiphertext:
                raise StoredDataCorrupt("A data key could not be opened.") from None
        context = kms_context(keying.context_id)
        sub = self.kms_call(call, region, "Decrypt")
        sub.request_parameters = {"encryptionContext": context}
        blob = keying.wrapped_key
        result = self._through_kms(call, sub, lambda: self._kms.decrypt(sub, blob, context))
        plaintext: bytes = result.plaintext
        return plaintext

    def open_cached(self, call: Call, keying: Keying, region: str, account_id: str) -> bytes:
        """As open, but a key opened for this caller in the last few minutes is reused —
        after re-checking, without crypto, that the caller may still use it and that it is
        still enabled (so disabling the key or revoking access takes effect at once)."""
        if not keying.encrypted:
            return self.open(call, keying, region, account_id)
        cache_key = (call.principal.arn, keying.wrapped_key)
        now = time.monotonic()
        cached = self._opened.get(cache_key)
        if cached is not None and cached[2] > now:
            self._check_use(call, region, cached[1], keying.context_id)
            return cached[0]
        plaintext = self.open(call, keying, region, account_id)
        assert keying.kms_key_arn is not None
        with self._lock:
            if len(self._opened) >= _CACHE_LIMIT:
                self._opened.clear()
            self._opened[cache_key] = (plaintext, keying.kms_key_arn, now + DATA_KEY_TTL_SECONDS)
        return plaintext

    def _check_use(self, call: Call, region: str, key_arn: str, context_id: str) -> None:
        sub = self.kms_call(call, region, "Decrypt")
        try:
            self._kms.check_use(sub, key_arn, "Decrypt", kms_context(context_id))
        except AwsError as err:
            raise KmsFailure(err) from None

    def forget(self) -> None:
        """Drop every cached data key (tests; a key's state change needs no flush)."""
        with self._lock:
            self._opened.clear()
