"""CloudTrail's side of S3: writing trail files as cloudtrail.amazonaws.com, reading them back.

Writes go through S3's own ObjectService as the service principal (account = the bucket
owner, invokedBy cloudtrail.amazonaws.com), so the bucket policy, Block Public Access and
the bucket's default encryption apply as they would to any writer; a trail with a
KmsKeyId asks for SSE-KMS under that key. The request carries what CloudTrail's does and
what AWS's documented bucket policy conditions on: ``aws:SourceArn`` (the trail's ARN),
``aws:SourceAccount`` and ``s3:x-amz-acl`` = ``bucket-owner-full-control``. (Sealbox's S3
adapter does not expose these keys for ordinary requests yet, so this module adds them to
the condition context of its own requests only.) Each write is audited like an S3
PutObject, with the KMS calls it caused.

Reading (``sealbox audit verify``) opens stored objects directly, as the bucket owner, with
no bucket policy in the way: it is the operator checking what was delivered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sealbox import arn as arns
from sealbox.audit.recorder import AuditRecorder
from sealbox.audit.trail_layout import sha256_hex
from sealbox.audit.trail_model import SERVICE_PRINCIPAL
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import unique_id
from sealbox.errors import AwsError
from sealbox.iam.authz import Authorizer, Subject
from sealbox.iam.model import Principal
from sealbox.s3.access import BucketAccess, S3RequestFacts
from sealbox.s3.base import block_of
from sealbox.s3.datapath import read_plaintext
from sealbox.s3.model import Bucket
from sealbox.s3.objects import ObjectService
from sealbox.s3.service import S3Service
from sealbox.storage import s3_repo
from sealbox.storage.db import Database

ACL: Final = "bucket-owner-full-control"
S3_SOURCE: Final = "s3.amazonaws.com"
CONTENT_TYPE: Final = "application/json"


@dataclass(slots=True)
class DeliveryCall(Call):
    """A Call CloudTrail makes for a trail: the trail is the request's aws:SourceArn."""

    source_arn: str = ""
    source_account: str = ""


class _DeliveryAuthorizer(Authorizer):
    """Adds the condition keys CloudTrail's own requests carry."""

    def context(self, call: Call, subject: Subject) -> dict[str, str | Sequence[str]]:
        ctx = super().context(call, subject)
        if isinstance(call, DeliveryCall):
            ctx["aws:SourceArn"] = call.source_arn
            ctx["aws:SourceAccount"] = call.source_account
            ctx["s3:x-amz-acl"] = ACL
        return ctx


def service_principal(account_id: str) -> Principal:
    return Principal(
        account_id=account_id,
        arn=SERVICE_PRINCIPAL,
        principal_type="AWSService",
        principal_id=SERVICE_PRINCIPAL,
    )


@dataclass(frozen=True, slots=True)
class StoredObject:
    data: bytes
    metadata: dict[str, str]


class TrailS3:
    def __init__(self, db: Database, clock: Clock, s3: S3Service, audit: AuditRecorder) -> None:
        self._db = db
        self._s3 = s3
        self._audit = audit
        self._access = BucketAccess(_DeliveryAuthorizer(db, clock))
        self._objects = ObjectService(db, clock, self._access, s3.blobs, s3.encryption)

    def bucket(self, name: str) -> Bucket:
        """The bucket (S3's NoSuchBucket when there is none)."""
        return self._objects.bucket(name)

    def _call(self, bucket: Bucket, trail_arn: str, trail_account: str, key: str) -> DeliveryCall:
        return DeliveryCall(
            principal=service_principal(bucket.account_id),
            region=bucket.region,
            event_source=S3_SOURCE,
            event_name="PutObject",
            request_id=unique_id(),
            source_ip=SERVICE_PRINCIPAL,
            user_agent=SERVICE_PRINCIPAL,
            request_parameters={"bucketName": bucket.name, "key": key, "x-amz-acl": ACL},
            secure_transport=True,
            invoked_by=SERVICE_PRINCIPAL,
            source_arn=trail_arn,
            source_account=trail_account,
        )

    def may_write(self, bucket: Bucket, trail_arn: str, trail_account: str, key: str) -> bool:
        """Whether the bucket's policy lets CloudTrail put this key for this trail."""
        call = self._call(bucket, trail_arn, trail_account, key)
        return self._access.allows(
            call,
            "s3:PutObject",
            bucket=bucket.name,
            key=key,
            owner_account=bucket.account_id,
            policy=bucket.policy,
            block=block_of(bucket),
            facts=S3RequestFacts(),
        )

    def put(
        self,
        bucket_name: str,
        key: str,
        body: bytes,
        *,
        trail_arn: str,
        trail_account: str,
        metadata: Mapping[str, str] | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        """Write one trail file (already gzipped) and audit the write."""
        bucket = self.bucket(bucket_name)
        call = self._call(bucket, trail_arn, trail_account, key)
        params: dict[str, Any] = {
            "Bucket": bucket_name,
            "Key": key,
            "ContentType": CONTENT_TYPE,
            "ContentEncoding": "gzip",
        }
        if metadata:
            params["Metadata"] = dict(metadata)
        if kms_key_id:
            params["ServerSideEncryption"] = "aws:kms"
            params["SSEKMSKeyId"] = kms_key_id
        try:
            pending = self._objects.start_put(call, params, sha256_hex(body))
            try:
                pending.write(body)
            except BaseException:
                pending.abort()
                raise
            pending.commit({})
        except AwsError as err:
            self._record(call, err.code, err.message)
            raise
        self._record(call, None, None)

    def _record(self, call: Call, code: str | None, message: str | None) -> None:
        for related, r_code, r_message in call.related:
            self._audit.record_now(related, r_code, r_message)
        call.related.clear()
        self._audit.record_now(call, code, message)

    def read(self, bucket_name: str, key: str) -> StoredObject | None:
        """The newest version's plaintext and user metadata; None if it is gone."""
        with self._db.read() as conn:
            bucket = s3_repo.get_bucket(conn, bucket_name)
            obj = None if bucket is None else s3_repo.get_version(conn, bucket_name, key)
        if bucket is None or obj is None or obj.delete_marker:
            return None
        call = Call(
            principal=Principal(
                account_id=bucket.account_id,
                arn=arns.account_root_arn(bucket.account_id),
                principal_type="Root",
                principal_id=bucket.account_id,
            ),
            region=bucket.region,
            event_source=S3_SOURCE,
            event_name="GetObject",
            request_id=unique_id(),
            user_agent="sealbox audit verify",
            read_only=True,
            data_event=True,
        )
        try:
            dek = self._s3.encryption.open_data_key(call, bucket, key, obj.keying_or_fail(), None)
        finally:
            for related, code, message in call.related:
                self._audit.record_now(related, code, message)
        chunks = (
            read_plaintext(self._s3.blobs, dek, obj.extents, 0, obj.size - 1) if obj.size else ()
        )
        return StoredObject(b"".join(chunks), dict(obj.metadata))
