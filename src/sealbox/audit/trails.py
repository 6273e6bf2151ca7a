"""CloudTrail trails: the API's domain side (create, update, logging on and off, selectors,
tags, public keys).

AWS semantics kept:
- A trail lives in its home region of an account; its ARN is
  arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME. Reads name it by name (the region's trail,
  or a multi-region trail of another region: a "shadow" trail) or by ARN; changes must be
  made in the home region (InvalidHomeRegionException). At most 5 trails per region.
- CreateTrail does not start logging (StartLogging does). It checks that the bucket
  exists and that its policy lets cloudtrail.amazonaws.com s3:PutObject under
  [prefix/]AWSLogs/ACCOUNT/ for this trail (InsufficientS3BucketPolicyException); with a
  KmsKeyId, that the key exists, is enabled and that its policy lets CloudTrail generate
  data keys (KmsKeyNotFound / KmsKeyDisabled / InsufficientEncryptionPolicy); the trail
  stores the key's ARN. SNS topics, CloudWatch Logs and organization trails are not
  supported (UnsupportedOperationException).
- What is delivered: StartLogging delivers from its own event on; StopLogging's event is
  the last one delivered; records written while a trail was stopped are never delivered.
  Every change of a trail is appended to the audit chain in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sealbox import arn as arns
from sealbox.audit import selectors as sel
from sealbox.audit.digests import DigestSigner
from sealbox.audit.errors import InvalidTimeRangeError
from sealbox.audit.recorder import AuditRecorder
from sealbox.audit.trail_errors import (
    CloudTrailArnInvalidError,
    InsufficientEncryptionPolicyError,
    InsufficientS3BucketPolicyError,
    InvalidHomeRegionError,
    InvalidKmsKeyIdError,
    InvalidS3BucketNameError,
    InvalidS3PrefixError,
    InvalidTagParameterError,
    InvalidTrailNameError,
    KmsError,
    KmsKeyDisabledError,
    KmsKeyNotFoundError,
    MaximumNumberOfTrailsExceededError,
    ResourceNotFoundError,
    S3BucketDoesNotExistError,
    TagsLimitExceededError,
    TrailAlreadyExistsError,
    TrailNotFoundError,
    TrailNotProvidedError,
    UnsupportedOperationError,
)
from sealbox.audit.trail_layout import log_prefix
from sealbox.audit.trail_model import (
    SERVICE_PRINCIPAL,
    DeliveryState,
    SigningKey,
    Trail,
    trail_arn,
)
from sealbox.audit.trail_s3 import TrailS3, service_principal
from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.crypto import unique_id
from sealbox.errors import AccessDeniedError, AwsError
from sealbox.iam.authz import Authorizer
from sealbox.kms.service import KmsService
from sealbox.s3.errors import NoSuchBucket
from sealbox.storage import trail_repo
from sealbox.storage.db import Database

MAX_TRAILS_PER_REGION: Final = 5
MAX_TAGS: Final = 50
MAX_PREFIX: Final = 200
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|[._-](?=[A-Za-z0-9]))*")
_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class TrailSettings:
    delivery_interval: timedelta
    digest_interval: timedelta


@dataclass(frozen=True, slots=True)
class TrailChanges:
    """UpdateTrail's input: None leaves a setting as it is; "" clears a string one."""

    s3_bucket: str | None = None
    s3_prefix: str | None = None
    include_global: bool | None = None
    multi_region: bool | None = None
    log_validation: bool | None = None
    kms_key_id: str | None = None


def check_name(name: str) -> None:
    if (
        not 3 <= len(name) <= 128
        or _NAME.fullmatch(name) is None
        or _IP.fullmatch(name) is not None
    ):
        raise InvalidTrailNameError(
            "Trail name must start with a letter or number, end with a letter or number, be "
            "3 to 128 characters of letters, numbers, periods, underscores and dashes, have "
            "no adjacent periods, underscores or dashes, and not look like an IP address."
        )


def parse_trail_arn(text: str) -> tuple[str, str, str]:
    """(region, account, name) of a trail ARN."""
    parsed = arns.parse_arn(text)
    if (
        parsed is None
        or parsed.service != "cloudtrail"
        or not re.fullmatch(r"\d{12}", parsed.account)
        or not parsed.region
        or not parsed.resource.startswith("trail/")
    ):
        raise CloudTrailArnInvalidError(f"{text} is not a valid trail ARN.")
    name = parsed.resource[len("trail/") :]
    check_name(name)
    return parsed.region, parsed.account, name


class TrailService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditRecorder,
        authorizer: Authorizer,
        kms: KmsService,
        s3: TrailS3,
        signer: DigestSigner,
        settings: TrailSettings,
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._authz = authorizer
        self._kms = kms
        self._s3 = s3
        self._signer = signer
        self._settings = settings

    # -- helpers ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)

    def _authorize(self, call: Call, action: str, resource: str) -> None:
        self._authz.check(
            call, f"cloudtrail:{action}", resource, call.principal.account_id, AccessDeniedError
        )
        if resource != "*" and resource not in call.resources:
            call.resources.append(resource)

    def _target(self, call: Call, name: str | None) -> str:
        """The ARN a request names (for authorization, before the trail is looked up)."""
        if not name:
            raise TrailNotProvidedError("A trail name or ARN is required.")
        if name.startswith("arn:"):
            parse_trail_arn(name)
            return name
        check_name(name)
        return trail_arn(call.region, call.principal.account_id, name)

    def _find(self, conn: Connection, call: Call, name: str, *, home: bool) -> Trail:
        account = call.principal.account_id
        trail: Trail | None
        if name.startswith("arn:"):
            region, owner, short = parse_trail_arn(name)
            trail = None if owner != account else trail_repo.get_trail(conn, owner, region, short)
        else:
            trail = trail_repo.get_trail(conn, account, call.region, name)
            if trail is None:
                trail = next(
                    (t for t in trail_repo.find_trails(conn, account, name) if t.multi_region),
                    None,
                )
        if trail is None:
            shown = name if name.startswith("arn:") else trail_arn(call.region, account, name)
            raise TrailNotFoundError(f"Unknown trail: {shown} for the user: {account}")
        if home and trail.region != call.region:
            raise InvalidHomeRegionError(
                f"This operation must be called from the trail's home region, {trail.region}."
            )
        return trail

    def _read(self, call: Call, action: str, name: str | None) -> Trail:
        self._authorize(call, action, self._target(call, name))
        assert name is not None
        with self._db.read() as conn:
            return self._find(conn, call, name, home=False)

    def _record(self, conn: Connection, call: Call) -> None:
        self._audit.append(conn, call)
        call.audited = True

    # -- destination checks ---------------------------------------------------------------

    def _check_destination(
        self, call: Call, arn: str, bucket_name: str, prefix: str | None, kms_key_id: str | None
    ) -> str | None:
        """Check the bucket, its policy and the KMS key; returns the key's ARN."""
        account = call.principal.account_id
        if _BUCKET.fullmatch(bucket_name) is None or ".." in bucket_name:
            raise InvalidS3BucketNameError(f"Bucket name {bucket_name} is not valid.")
        if prefix is not None and (len(prefix) > MAX_PREFIX or prefix.startswith("/")):
            raise InvalidS3PrefixError(f"S3 key prefix {prefix} is not valid.")
        try:
            bucket = self._s3.bucket(bucket_name)
        except NoSuchBucket:
            raise S3BucketDoesNotExistError(f"S3 bucket {bucket_name} does not exist.") from None
        sample = f"{log_prefix(prefix, account)}CloudTrail/{call.region}/"
        if not self._s3.may_write(bucket, arn, account, sample):
            raise InsufficientS3BucketPolicyError(
                f"Incorrect S3 bucket policy is detected for bucket: {bucket_name}"
            )
        if not kms_key_id:
            return None
        sub = Call(
            principal=service_principal(account),
            region=call.region,
            event_source="kms.amazonaws.com",
            event_name="GenerateDataKey",
            request_id=call.request_id,
            invoked_by=SERVICE_PRINCIPAL,
            secure_transport=True,
        )
        context = {"aws:s3:arn": f"{bucket.arn}/{sample}"}
        try:
            return self._kms.check_use(sub, kms_key_id, "GenerateDataKey", context)
        except AwsError as err:
            raise _kms_error(err, kms_key_id) from None

    # -- CreateTrail / UpdateTrail / DeleteTrail ---------------------------------------------

    def create_trail(
        self,
        call: Call,
        name: str,
        s3_bucket: str,
        *,
        s3_prefix: str | None = None,
        include_global: bool = True,
        multi_region: bool = False,
        log_validation: bool = False,
        kms_key_id: str | None = None,
        tags: Sequence[Mapping[str, str]] = (),
        unsupported: Sequence[str] = (),
    ) -> Trail:
        if name.startswith("arn:"):
            raise InvalidTrailNameError("CreateTrail takes a trail name, not an ARN.")
        arn = self._target(call, name)
        self._authorize(call, "CreateTrail", arn)
        _refuse(unsupported)
        tag_map = _tags_to_add({}, tags)
        prefix = s3_prefix or None
        key_arn = self._check_destination(call, arn, s3_bucket, prefix, kms_key_id)
        account = call.principal.account_id
        trail = Trail(
            trail_id=unique_id(),
            account_id=account,
            region=call.region,
            name=name,
            s3_bucket=s3_bucket,
            s3_prefix=prefix,
            include_global=include_global,
            multi_region=multi_region,
            log_validation=log_validation,
            kms_key_id=key_arn,
            event_selectors=None,
            advanced_selectors=None,
            tags=tag_map,
            created_at=self._now(),
            is_logging=False,
        )

        def work(conn: Connection) -> None:
            if trail_repo.get_trail(conn, account, call.region, name) is not None:
                raise _exists(name, account)
            if trail_repo.count_trails(conn, account, call.region) >= MAX_TRAILS_PER_REGION:
                raise MaximumNumberOfTrailsExceededError(
                    f"User: {account} already has {MAX_TRAILS_PER_REGION} trails in {call.region}."
                )
            trail_repo.insert_trail(conn, trail, trail_repo.head_seq(conn))
            call.response_elements = _response(trail)
            self._record(conn, call)

        try:
            self._db.write(work)
        except IntegrityError:
            raise _exists(name, account) from None
        return trail

    def update_trail(
        self, call: Call, name: str, changes: TrailChanges, unsupported: Sequence[str] = ()
    ) -> Trail:
        self._authorize(call, "UpdateTrail", self._target(call, name))
        _refuse(unsupported)
        with self._db.read() as conn:
            trail = self._find(conn, call, name, home=True)
        values: dict[str, Any] = {}
        for field in ("include_global", "multi_region"):
            value = getattr(changes, field)
            if value is not None:
                values[field] = value
        bucket = trail.s3_bucket if changes.s3_bucket is None else changes.s3_bucket
        prefix = trail.s3_prefix if changes.s3_prefix is None else (changes.s3_prefix or None)
        kms = trail.kms_key_id if changes.kms_key_id is None else (changes.kms_key_id or None)
        if (bucket, prefix, kms) != (trail.s3_bucket, trail.s3_prefix, trail.kms_key_id):
            kms = self._check_destination(call, trail.arn, bucket, prefix, kms)
            values.update(s3_bucket=bucket, s3_prefix=prefix, kms_key_id=kms)
        now = self._now()

        def work(conn: Connection) -> Trail:
            current = self._find(conn, call, trail.arn, home=True)
            state = trail_repo.get_state(conn, current.trail_id)
            assert state is not None
            more = dict(values)
            validation = changes.log_validation
            if validation is not None and validation != current.log_validation:
                more["log_validation"] = validation
                trail_repo.never_digest(conn, current.trail_id)
                if validation:
                    more.update(self._new_digest_chain(state, now, current.is_logging))
                else:
                    more["next_digest_at"] = None
            if more:
                trail_repo.update_trail(conn, current.trail_id, **more)
            updated = trail_repo.get_trail_by_id(conn, current.trail_id)
            assert updated is not None
            call.response_elements = _response(updated)
            self._record(conn, call)
            return updated

        return self._db.write(work)

    def _new_digest_chain(
        self, state: DeliveryState, now: datetime, logging: bool
    ) -> dict[str, Any]:
        return {
            "digest_epoch": state.digest_epoch + 1,
            "digest_start": now,
            "next_digest_at": now + self._settings.digest_interval if logging else None,
        }

    def delete_trail(self, call: Call, name: str) -> None:
        self._authorize(call, "DeleteTrail", self._target(call, name))

        def work(conn: Connection) -> None:
            trail = self._find(conn, call, name, home=True)
            trail_repo.delete_trail(conn, trail.trail_id)
            self._record(conn, call)

        self._db.write(work)

    # -- StartLogging / StopLogging ---------------------------------------------------------

    def start_logging(self, call: Call, name: str) -> None:
        self._authorize(call, "StartLogging", self._target(call, name))
        now = self._now()

        def work(conn: Connection) -> None:
            trail = self._find(conn, call, name, home=True)
            if not trail.is_logging:
                state = trail_repo.get_state(conn, trail.trail_id)
                assert state is not None
                head = trail_repo.head_seq(conn, lock=True)
                values: dict[str, Any] = {
                    "is_logging": True,
                    "stop_seq": None,
                    "start_logging_time": now,
                    "next_delivery_at": now + self._settings.delivery_interval,
                    **self._new_digest_chain(state, now, trail.log_validation),
                }
                if state.stop_seq is None or state.delivered_seq >= state.stop_seq:
                    values.update(delivered_seq=max(state.delivered_seq, head), skipped=[])
                elif head > state.stop_seq:
                    values["skipped"] = [*state.skipped, (state.stop_seq, head)]
                trail_repo.update_trail(conn, trail.trail_id, **values)
            self._record(conn, call)  # after the head was read: delivered with the rest

        self._db.write(work)

    def stop_logging(self, call: Call, name: str) -> None:
        self._authorize(call, "StopLogging", self._target(call, name))
        now = self._now()

        def work(conn: Connection) -> None:
            trail = self._find(conn, call, name, home=True)
            self._record(conn, call)  # before the head is read: the last one delivered
            if trail.is_logging:
                trail_repo.update_trail(
                    conn,
                    trail.trail_id,
                    is_logging=False,
                    stop_seq=trail_repo.head_seq(conn, lock=True),
                    stop_logging_time=now,
                )

        self._db.write(work)

    # -- reads -------------------------------------------------------------------------------

    def get_trail(self, call: Call, name: str) -> Trail:
        return self._read(call, "GetTrail", name)

    def get_trail_status(self, call: Call, name: str) -> tuple[Trail, DeliveryState]:
        trail = self._read(call, "GetTrailStatus", name)
        with self._db.read() as conn:
            state = trail_repo.get_state(conn, trail.trail_id)
        if state is None:
            raise TrailNotFoundError(f"Unknown trail: {trail.arn}")
        return trail, state

    def describe_trails(
        self, call: Call, names: Sequence[str] | None, include_shadow: bool = True
    ) -> list[Trail]:
        self._authorize(call, "DescribeTrails", "*")
        account = call.principal.account_id
        with self._db.read() as conn:
            everything = trail_repo.list_trails(conn, account)
            if not names:
                return [
                    t
                    for t in everything
                    if t.region == call.region or (include_shadow and t.multi_region)
                ]
            found: list[Trail] = []
            for name in names:
                try:
                    trail = self._find(conn, call, name, home=False)
                except (TrailNotFoundError, InvalidTrailNameError, CloudTrailArnInvalidError):
                    continue
                if trail.region != call.region and not include_shadow:
                    continue
                if trail not in found:
                    found.append(trail)
            return found

    def list_trails(self, call: Call) -> list[Trail]:
        self._authorize(call, "ListTrails", "*")
        with self._db.read() as conn:
            return trail_repo.list_trails(conn, call.principal.account_id)

    # -- event selectors -------------------------------------------------------------------

    def put_event_selectors(
        self,
        call: Call,
        name: str,
        event_selectors: Sequence[Mapping[str, Any]] | None,
        advanced: Sequence[Mapping[str, Any]] | None,
    ) -> Trail:
        self._authorize(call, "PutEventSelectors", self._target(call, name))
        basic, fancy = sel.normalize(event_selectors, advanced)

        def work(conn: Connection) -> Trail:
            trail = self._find(conn, call, name, home=True)
            trail_repo.update_trail(
                conn, trail.trail_id, event_selectors=basic, advanced_selectors=fancy
            )
            call.response_elements = {"trailARN": trail.arn}
            self._record(conn, call)
            return replace(trail, event_selectors=basic, advanced_selectors=fancy)

        return self._db.write(work)

    def get_event_selectors(self, call: Call, name: str) -> Trail:
        return self._read(call, "GetEventSelectors", name)

    # -- tags ---------------------------------------------------------------------------------

    def _tagged(self, conn: Connection, call: Call, resource_id: str) -> Trail:
        if not resource_id.startswith("arn:"):
            raise CloudTrailArnInvalidError(
                "When a resource ARN is required, the value must be a valid ARN."
            )
        try:
            return self._find(conn, call, resource_id, home=False)
        except TrailNotFoundError:
            raise ResourceNotFoundError(f"Resource {resource_id} does not exist.") from None

    def add_tags(self, call: Call, resource_id: str, tags: Sequence[Mapping[str, str]]) -> None:
        self._authorize(call, "AddTags", self._tag_target(resource_id))

        def work(conn: Connection) -> None:
            trail = self._tagged(conn, call, resource_id)
            trail_repo.update_trail(conn, trail.trail_id, tags=_tags_to_add(trail.tags, tags))
            self._record(conn, call)

        self._db.write(work)

    def remove_tags(self, call: Call, resource_id: str, tags: Sequence[Mapping[str, str]]) -> None:
        self._authorize(call, "RemoveTags", self._tag_target(resource_id))

        def work(conn: Connection) -> None:
            trail = self._tagged(conn, call, resource_id)
            remaining = dict(trail.tags)
            for tag in tags:
                key = tag.get("Key", "")
                if key in remaining and tag.get("Value") in (None, remaining[key]):
                    del remaining[key]
            trail_repo.update_trail(conn, trail.trail_id, tags=remaining)
            self._record(conn, call)

        self._db.write(work)

    def list_tags(
        self, call: Call, resource_ids: Sequence[str]
    ) -> list[tuple[str, dict[str, str]]]:
        for resource_id in resource_ids:
            self._authorize(call, "ListTags", self._tag_target(resource_id))
        with self._db.read() as conn:
            return [(r, self._tagged(conn, call, r).tags) for r in resource_ids]

    @staticmethod
    def _tag_target(resource_id: str) -> str:
        if not resource_id.startswith("arn:"):
            raise CloudTrailArnInvalidError(
                "When a resource ARN is required, the value must be a valid ARN."
            )
        parse_trail_arn(resource_id)
        return resource_id

    # -- public keys ---------------------------------------------------------------------------

    def list_public_keys(
        self, call: Call, start: datetime | None, end: datetime | None
    ) -> list[SigningKey]:
        self._authorize(call, "ListPublicKeys", "*")
        if start is not None and end is not None and start > end:
            raise InvalidTimeRangeError("The start time must not be later than the end time.")
        if start is None and end is None:
            start = end = self._clock.now()
        return self._signer.public_keys(call.region, start, end)


def _response(trail: Trail) -> dict[str, Any]:
    """The audit record's responseElements of CreateTrail and UpdateTrail."""
    return {
        "name": trail.name,
        "s3BucketName": trail.s3_bucket,
        "s3KeyPrefix": trail.s3_prefix,
        "includeGlobalServiceEvents": trail.include_global,
        "isMultiRegionTrail": trail.multi_region,
        "trailARN": trail.arn,
        "logFileValidationEnabled": trail.log_validation,
        "kmsKeyId": trail.kms_key_id,
        "isOrganizationTrail": False,
    }


def _exists(name: str, account: str) -> TrailAlreadyExistsError:
    return TrailAlreadyExistsError(f"Trail {name} already exists for customer: {account}")


def _refuse(unsupported: Sequence[str]) -> None:
    if unsupported:
        raise UnsupportedOperationError(
            f"{', '.join(unsupported)}: not supported by this server (Sealbox delivers to S3 only)."
        )


def _tags_to_add(current: Mapping[str, str], tags: Sequence[Mapping[str, str]]) -> dict[str, str]:
    out = dict(current)
    seen: set[str] = set()
    for tag in tags:
        key, value = tag.get("Key", ""), tag.get("Value") or ""
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            raise InvalidTagParameterError(f"Tag key {key!r} or its value is not valid.")
        if key in seen:
            raise InvalidTagParameterError(f"Tag key {key!r} appears more than once.")
        seen.add(key)
        out[key] = value
    if len(out) > MAX_TAGS:
        raise TagsLimitExceededError(f"A trail can have at most {MAX_TAGS} tags.")
    return out


def _kms_error(err: AwsError, key_id: str) -> AwsError:
    code = err.code
    if code == "NotFoundException":
        return KmsKeyNotFoundError(f"KMS key {key_id} was not found.")
    if code in ("InvalidArnException", "InvalidKeyUsageException"):
        return InvalidKmsKeyIdError(f"KMS key {key_id} is not valid for CloudTrail.")
    if code in ("DisabledException", "KMSInvalidStateException"):
        return KmsKeyDisabledError(f"KMS key {key_id} is disabled.")
    if code.startswith("AccessDenied"):
        return InsufficientEncryptionPolicyError(
            f"Insufficient permissions to access S3 bucket or KMS key {key_id}: the key "
            "policy must let cloudtrail.amazonaws.com GenerateDataKey."
        )
    return KmsError(f"KMS could not check key {key_id}: {err.message}")
