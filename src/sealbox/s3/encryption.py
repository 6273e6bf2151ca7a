"""Object data keys: which key protects an object, and how S3 gets it from KMS.

Every object has its own random 256-bit data key (DEK) that seals its segment
streams. What differs between the SSE modes is only how the DEK is wrapped:

- SSE-S3: sealed by the bucket owner's service-owned S3 key (itself wrapped by the
  root key);
- SSE-KMS: the DEK *is* a KMS data key (GenerateDataKey with encryption context
  `aws:s3:arn` = the object ARN), stored as its KMS blob; every GET asks KMS to
  Decrypt it, on the caller's behalf, audited, invoked by S3;
- SSE-KMS with an S3 Bucket Key: S3 asks KMS for a bucket-level key (context = the
  bucket ARN) at most once per bounded period per caller, key and context, and seals
  each DEK with it; the bucket key's KMS blob is kept beside the object;
- SSE-C: sealed by the customer's key, which is never stored (a salted HMAC
  recognises it next time).

Because the DEK is independent of its wrapping, re-keying an object (UpdateObjectEncryption)
rewraps the DEK and never rewrites data.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from sealbox import crypto
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import keycheck
from sealbox.errors import AwsError
from sealbox.keystore.base import KeyStore
from sealbox.keystore.service_keys import ServiceKeys
from sealbox.kms import on_behalf
from sealbox.kms.service import KmsService
from sealbox.s3.errors import (
    InvalidArgument,
    InvalidRequest,
    KmsThroughS3,
    S3AccessDenied,
    S3Error,
)
from sealbox.s3.model import SSE_C, SSE_KMS, SSE_S3, Bucket, EncryptionRule, Keying
from sealbox.storage import s3_repo
from sealbox.storage.db import Database

T = TypeVar("T")

S3_SERVICE = "s3.amazonaws.com"
BUCKET_KEY_TTL_SECONDS = 300.0
_CACHE_LIMIT = 4096
DEK_BYTES = 32
_MANAGED_ALIAS = "alias/aws/s3"


class InvalidEncryptionAlgorithm(S3Error):
    code = "InvalidEncryptionAlgorithmError"


@dataclass(frozen=True, slots=True)
class SseRequest:
    """The encryption a request asks for (already validated)."""

    sse: str | None = None  # AES256 | aws:kms | None (take the bucket default)
    kms_key_id: str | None = None
    context: dict[str, str] | None = None
    bucket_key: bool | None = None
    customer_key: bytes | None = None  # SSE-C; never stored


@dataclass(frozen=True, slots=True)
class Resolved:
    """What will actually protect a new object."""

    sse: str  # AES256 | aws:kms | SSE-C
    kms_key_id: str | None = None
    context: dict[str, str] | None = None
    bucket_key: bool = False
    customer_key: bytes | None = None


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{what} must be base64-encoded.") from None


def customer_key_from(params: Mapping[str, Any], prefix: str = "", *, secure: bool) -> bytes | None:
    """The SSE-C key of a request (prefix "CopySource" for the copy-source headers)."""
    algorithm = params.get(f"{prefix}SSECustomerAlgorithm")
    key_text = params.get(f"{prefix}SSECustomerKey")
    key_md5 = params.get(f"{prefix}SSECustomerKeyMD5")
    if algorithm is None and key_text is None and key_md5 is None:
        return None
    if not secure:
        raise InvalidRequest(
            "Requests specifying Server Side Encryption with Customer provided keys "
            "must be made over a secure connection."
        )
    if algorithm is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide a valid encryption algorithm."
        )
    if algorithm != "AES256":
        raise InvalidEncryptionAlgorithm(
            "The encryption request you specified is not valid. The valid value is AES256."
        )
    if key_text is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide an appropriate secret key."
        )
    key = _b64(key_text, "The customer-provided encryption key")
    if len(key) != DEK_BYTES:
        raise InvalidArgument("The secret key was invalid for the specified algorithm.")
    if key_md5 is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide the client calculated MD5 of the secret key."
        )
    if _b64(key_md5, "The customer-provided key MD5") != keycheck.md5(key):
        raise InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided."
        )
    return key


def sse_request_from(params: Mapping[str, Any], *, secure: bool) -> SseRequest:
    """Validate a request's SSE parameters (boto3 names) as S3 does."""
    sse = params.get("ServerSideEncryption")
    kms_key_id = params.get("SSEKMSKeyId")
    context_text = params.get("SSEKMSEncryptionContext")
    bucket_key = params.get("BucketKeyEnabled")
    customer_key = customer_key_from(params, secure=secure)
    if sse is not None and sse not in (SSE_S3, SSE_KMS, "aws:kms:dsse"):
        raise InvalidArgument("The encryption method specified is not supported")
    if customer_key is not None and sse is not None:
        raise InvalidArgument(
            "Server Side Encryption with Customer provided key is incompatible with the "
            "encryption method specified"
        )
    if sse == "aws:kms:dsse":
        sse = SSE_KMS  # one layer here: DSSE's second layer adds nothing at rest
    if (kms_key_id is not None or context_text is not None) and sse != SSE_KMS:
        raise InvalidArgument(
            "Server Side Encryption with AWS KMS managed key requires HTTP header "
            "x-amz-server-side-encryption : aws:kms"
        )
    context: dict[str, str] | None = None
    if context_text is not None:
        try:
            decoded = orjson.loads(_b64(context_text, "The encryption context"))
        except orjson.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
        ):
            raise InvalidArgument("The encryption context must be a JSON object of strings.")
        if any(k.startswith("aws:") for k in decoded):
            raise InvalidArgument("Encryption context keys must not start with 'aws:'.")
        context = decoded
    if kms_key_id == "":
        raise InvalidArgument("x-amz-server-side-encryption-aws-kms-key-id must not be empty.")
    return SseRequest(sse, kms_key_id, context, bucket_key, customer_key)


def resolve(request: SseRequest, bucket: Bucket) -> Resolved:
    """The request's encryption, else the bucket default, else SSE-S3 (as AWS since 2023)."""
    rule: EncryptionRule | None = bucket.encryption
    if request.customer_key is not None:
        if rule is not None and SSE_C in rule.blocked_types:
            raise S3AccessDenied(
                "Requests specifying Server Side Encryption with Customer provided keys "
                "are blocked by this bucket's encryption configuration."
            )
        return Resolved(SSE_C, customer_key=request.customer_key)
    if request.sse == SSE_S3:
        return Resolved(SSE_S3)
    if request.sse == SSE_KMS:
        default_bucket_key = rule.bucket_key_enabled if rule is not None else False
        key_id = request.kms_key_id
        if key_id is None and rule is not None and rule.algorithm == SSE_KMS:
            key_id = rule.kms_key_id
        bucket_key = request.bucket_key if request.bucket_key is not None else default_bucket_key
        return Resolved(SSE_KMS, key_id, request.context, bucket_key)
    if rule is not None and rule.algorithm == SSE_KMS:
        return Resolved(SSE_KMS, rule.kms_key_id, None, rule.bucket_key_enabled)
    return Resolved(SSE_S3)


def _aad(sse: str, object_arn: str) -> bytes:
    return f"sealbox/s3/dek/v1|{sse}|{object_arn}".encode()


@dataclass(slots=True)
class _BucketKey:
    key_arn: str
    plaintext: bytes
    blob: bytes
    expires: float


class Encryption:
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
            "sealbox/s3/sse-s3",
            s3_repo.get_service_key,
            s3_repo.insert_service_key,
        )
        # (caller ARN, bucket, requested key id, context) → the bucket key to seal with
        self._sealing: dict[tuple[str, str, str | None, str], _BucketKey] = {}
        # (caller ARN, bucket key blob) → the bucket key's plaintext, for reads
        self._opening: dict[tuple[str, bytes], _BucketKey] = {}
        self._lock = threading.Lock()

    # -- SSE-S3 ----------------------------------------------------------------------

    def _service_key(self, account_id: str) -> bytes:
        return self._service_keys.key(account_id)

    # -- KMS on the caller's behalf -------------------------------------------------------

    @staticmethod
    def _kms_call(call: Call, bucket: Bucket, event_name: str) -> Call:
        return on_behalf.kms_call(call, bucket.region, event_name, S3_SERVICE)

    def _through_kms(self, call: Call, sub: Call, work: Callable[[], T]) -> T:
        """Run a KMS operation for S3, surfacing its errors the way S3 does."""
        try:
            return on_behalf.run(call, sub, work, self._count_kms)
        except AwsError as err:
            if err.code.startswith("AccessDenied"):
                raise S3AccessDenied(err.message) from None
            raise KmsThroughS3(err) from None

    def _kms_key_id(self, resolved: Resolved, bucket: Bucket) -> str:
        """The key to ask KMS for; the AWS managed key alias/aws/s3 is made on first use."""
        key_id = resolved.kms_key_id
        if key_id is not None and not (
            key_id == _MANAGED_ALIAS or key_id.endswith(":" + _MANAGED_ALIAS)
        ):
            return key_id
        return self._kms.ensure_aws_managed_key(bucket.account_id, bucket.region, "s3").arn

    def _generate(
        self, call: Call, bucket: Bucket, key_id: str, context: dict[str, str]
    ) -> tuple[str, bytes, bytes]:
        sub = self._kms_call(call, bucket, "GenerateDataKey")
        sub.request_parameters = {
            "keyId": key_id,
            "encryptionContext": context,
            "keySpec": "AES_256",
        }
        result = self._through_kms(
            call,
            sub,
            lambda: self._kms.generate_data_key(sub, key_id, context, key_spec="AES_256"),
        )
        assert result.plaintext is not None
        return result.key_arn, result.plaintext, result.ciphertext

    def _decrypt(self, call: Call, bucket: Bucket, blob: bytes, context: dict[str, str]) -> bytes:
        sub = self._kms_call(call, bucket, "Decrypt")
        sub.request_parameters = {"encryptionContext": context}
        result = self._through_kms(call, sub, lambda: self._kms.decrypt(sub, blob, context))
        plaintext: bytes = result.plaintext
        return plaintext

    def _check_cached(
        self, call: Call, bucket: Bucket, key_arn: str, operation: str, context: dict[str, str]
    ) -> None:
        """A cached bucket key is used only while the caller could get it from KMS now."""
        sub = self._kms_call(call, bucket, operation)
        try:
            self._kms.check_use(sub, key_arn, operation, context)
        except AwsError as err:
            if err.code.startswith("AccessDenied"):
                raise S3AccessDenied(err.message) from None
            raise KmsThroughS3(err) from None

    def _bucket_key_for_sealing(
        self, call: Call, bucket: Bucket, key_id: str | None, context: dict[str, str]
    ) -> _BucketKey:
        cache_key = (
            call.principal.arn,
            bucket.name,
            key_id,
            orjson.dumps(context, option=orjson.OPT_SORT_KEYS).decode(),
        )
        now = time.monotonic()
        cached = self._sealing.get(cache_key)
        if cached is not None and cached.expires > now:
            self._check_cached(call, bucket, cached.key_arn, "GenerateDataKey", context)
            return cached
        resolved_id = self._kms_key_id(Resolved(SSE_KMS, key_id), bucket)
        key_arn, plaintext, blob = self._generate(call, bucket, resolved_id, context)
        fresh = _BucketKey(key_arn, plaintext, blob, now + BUCKET_KEY_TTL_SECONDS)
        with self._lock:
            if len(self._sealing) >= _CACHE_LIMIT:
                self._sealing.clear()
            self._sealing[cache_key] = fresh
            if len(self._opening) >= _CACHE_LIMIT:
                self._opening.clear()
            self._opening[(call.principal.arn, blob)] = fresh
        return fresh

    def _bucket_key_for_opening(
        self, call: Call, bucket: Bucket, keying: Keying, context: dict[str, str]
    ) -> bytes:
        assert keying.bucket_key_blob is not None and keying.kms_key_arn is not None
        cache_key = (call.principal.arn, keying.bucket_key_blob)
        now = time.monotonic()
        cached = self._opening.get(cache_key)
        if cached is not None and cached.expires > now:
            self._check_cached(call, bucket, keying.kms_key_arn, "Decrypt", context)
            return cached.plaintext
        plaintext = self._decrypt(call, bucket, keying.bucket_key_blob, context)
        with self._lock:
            if len(self._opening) >= _CACHE_LIMIT:
                self._opening.clear()
            self._opening[cache_key] = _BucketKey(
                keying.kms_key_arn, plaintext, keying.bucket_key_blob, now + BUCKET_KEY_TTL_SECONDS
            )
        return plaintext

    # -- the public face ---------------------------------------------------------------------

    def new_data_key(
        self, call: Call, bucket: Bucket, object_key: str, resolved: Resolved
    ) -> tuple[bytes, Keying]:
        """A fresh DEK for a new object (or upload) and how it is stored."""
        object_arn = f"{bucket.arn}/{object_key}"
        if resolved.sse == SSE_KMS and not resolved.bucket_key:
            context = {**(resolved.context or {}), "aws:s3:arn": object_arn}
            key_id = self._kms_key_id(resolved, bucket)
            key_arn, dek, blob = self._generate(call, bucket, key_id, context)
            return dek, Keying(SSE_KMS, blob, key_arn, False, context)
        dek = crypto.random_bytes(DEK_BYTES)
        return dek, self.wrap(call, bucket, object_key, dek, resolved)

    def wrap(
        self, call: Call, bucket: Bucket, object_key: str, dek: bytes, resolved: Resolved
    ) -> Keying:
        """Protect an existing DEK as `resolved` says (new objects and re-keying)."""
        object_arn = f"{bucket.arn}/{object_key}"
        if resolved.sse == SSE_C:
            assert resolved.customer_key is not None
            salt, check = keycheck.new_check(resolved.customer_key)
            wrapped = crypto.seal(resolved.customer_key, dek, _aad(SSE_C, object_arn))
            return Keying(SSE_C, wrapped, ssec_salt=salt, ssec_hmac=check)
        if resolved.sse == SSE_KMS and resolved.bucket_key:
            context = {**(resolved.context or {}), "aws:s3:arn": bucket.arn}
            bucket_key = self._bucket_key_for_sealing(call, bucket, resolved.kms_key_id, context)
            wrapped = crypto.seal(bucket_key.plaintext, dek, _aad(SSE_KMS, object_arn))
            return Keying(SSE_KMS, wrapped, bucket_key.key_arn, True, context, bucket_key.blob)
        if resolved.sse == SSE_KMS:
            # An existing DEK under a KMS key: KMS encrypts it (re-keying only).
            context = {**(resolved.context or {}), "aws:s3:arn": object_arn}
            key_id = self._kms_key_id(resolved, bucket)
            sub = self._kms_call(call, bucket, "Encrypt")
            sub.request_parameters = {"keyId": key_id, "encryptionContext": context}
            result = self._through_kms(
                call, sub, lambda: self._kms.encrypt(sub, key_id, dek, context)
            )
            return Keying(SSE_KMS, result.ciphertext, result.key_arn, False, context)
        service_key = self._service_key(bucket.account_id)
        return Keying(SSE_S3, crypto.seal(service_key, dek, _aad(SSE_S3, object_arn)))

    def open_data_key(
        self,
        call: Call,
        bucket: Bucket,
        object_key: str,
        keying: Keying,
        customer_key: bytes | None,
    ) -> bytes:
        """The DEK of a stored object; SSE-C needs the same customer key again."""
        object_arn = f"{bucket.arn}/{object_key}"
        try:
            if keying.sse == SSE_C:
                return self._open_ssec(object_arn, keying, customer_key)
            if customer_key is not None:
                raise InvalidRequest("The encryption parameters are not applicable to this object.")
            if keying.sse == SSE_KMS and keying.bucket_key:
                bucket_key = self._bucket_key_for_opening(
                    call, bucket, keying, keying.context or {}
                )
                return crypto.open_(bucket_key, keying.wrapped_dek, _aad(SSE_KMS, object_arn))
            if keying.sse == SSE_KMS:
                return self._decrypt(call, bucket, keying.wrapped_dek, keying.context or {})
            service_key = self._service_key(bucket.account_id)
            return crypto.open_(service_key, keying.wrapped_dek, _aad(SSE_S3, object_arn))
        except crypto.InvalidCiphertext:
            from sealbox.s3.errors import StoredDataCorrupt

            raise StoredDataCorrupt("The object's data key could not be opened.") from None

    @staticmethod
    def _open_ssec(object_arn: str, keying: Keying, customer_key: bytes | None) -> bytes:
        if customer_key is None:
            raise InvalidRequest(
                "The object was stored using a form of Server Side Encryption. The correct "
                "parameters must be provided to retrieve the object."
            )
        assert keying.ssec_salt is not None and keying.ssec_hmac is not None
        if not keycheck.matches(customer_key, keying.ssec_salt, keying.ssec_hmac):
            raise S3AccessDenied("Access Denied")
        return crypto.open_(customer_key, keying.wrapped_dek, _aad(SSE_C, object_arn))
