"""The EBS direct APIs over REST-JSON (boto3 ``ebs``): routes, input, output, errors.

Six operations, so they are routed and decoded here by hand (the shapes are small and
fixed) rather than by a general REST-JSON codec:

=====================  ======  ============================================
StartSnapshot          POST    /snapshots                          → 201
PutSnapshotBlock       PUT     /snapshots/{id}/blocks/{index}      → 201
CompleteSnapshot       POST    /snapshots/completion/{id}          → 202
ListSnapshotBlocks     GET     /snapshots/{id}/blocks
GetSnapshotBlock       GET     /snapshots/{id}/blocks/{index}
ListChangedBlocks      GET     /snapshots/{id}/changedblocks
=====================  ======  ============================================

Errors are REST-JSON: the code in ``x-amzn-ErrorType``, ``{"Message": ..., "Reason": ...}``
in the body. EC2-style domain errors are translated to the direct APIs' few codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from sealbox.call import Call
from sealbox.ebs.errors import (
    EbsAccessDenied,
    EbsApiError,
    EbsInternal,
    EbsNotFound,
    EbsValidation,
    Ec2Error,
    KmsFailure,
    StoredDataCorrupt,
)
from sealbox.ebs.model import BLOCK_SIZE, Snapshot
from sealbox.ebs.service import EbsService
from sealbox.errors import AwsError, ClientError

EVENT_SOURCE = "ebs.amazonaws.com"
Params = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
Handler = Callable[[EbsService, Call, Params], "Output"]

_SNAPSHOT = r"(snap-[0-9a-f]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str, tuple[str, ...]]] = [
    ("POST", re.compile(r"/snapshots/?"), "StartSnapshot", ()),
    ("POST", re.compile(rf"/snapshots/completion/{_SNAPSHOT}"), "CompleteSnapshot",
     ("SnapshotId",)),
    ("PUT", re.compile(rf"/snapshots/{_SNAPSHOT}/blocks/(\d+)"), "PutSnapshotBlock",
     ("SnapshotId", "BlockIndex")),
    ("GET", re.compile(rf"/snapshots/{_SNAPSHOT}/blocks/(\d+)"), "GetSnapshotBlock",
     ("SnapshotId", "BlockIndex")),
    ("GET", re.compile(rf"/snapshots/{_SNAPSHOT}/blocks/?"), "ListSnapshotBlocks", ("SnapshotId",)),
    ("GET", re.compile(rf"/snapshots/{_SNAPSHOT}/changedblocks/?"), "ListChangedBlocks",
     ("SnapshotId",)),
]  # fmt: skip
_ANY_SNAPSHOT_PATH = re.compile(r"/snapshots/(?:completion/)?([^/]+)")

READ_ONLY = frozenset({"ListSnapshotBlocks", "ListChangedBlocks", "GetSnapshotBlock"})
DATA_EVENTS = frozenset(
    {"PutSnapshotBlock", "GetSnapshotBlock", "ListSnapshotBlocks", "ListChangedBlocks"}
)


class UnknownOperation(ClientError):
    code = "UnknownOperationException"
    http_status = 404


@dataclass(frozen=True, slots=True)
class Output:
    status: int
    headers: Headers
    body: bytes


def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """(operation, path parameters) of a request; UnknownOperation if none matches."""
    for verb, pattern, name, names in _ROUTES:
        m = pattern.fullmatch(path)
        if m is not None and verb == method:
            return name, dict(zip(names, m.groups(), strict=True))
    bad = _ANY_SNAPSHOT_PATH.match(path)
    if bad is not None and not re.fullmatch(_SNAPSHOT, bad.group(1)):
        raise EbsValidation(
            f"The snapshot ID '{bad.group(1)[:64]}' is not valid.", "INVALID_SNAPSHOT_ID"
        )
    raise UnknownOperation(f"No EBS direct API operation is {method} {path[:128]}.")


# -- input --------------------------------------------------------------------------------------


def _int(text: str | None, name: str, *, required: bool = False) -> int | None:
    if text is None or text == "":
        if required:
            raise EbsValidation(f"{name} is required.", "INVALID_PARAMETER_VALUE")
        return None
    try:
        value = int(text)
    except ValueError:
        raise EbsValidation(f"{name} must be an integer.", "INVALID_PARAMETER_VALUE") from None
    if value < 0:
        raise EbsValidation(f"{name} must not be negative.", "INVALID_PARAMETER_VALUE")
    return value


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EbsValidation(
            "The request body is not valid JSON.", "INVALID_PARAMETER_VALUE"
        ) from None
    if not isinstance(value, dict):
        raise EbsValidation("The request body must be a JSON object.", "INVALID_PARAMETER_VALUE")
    return value


def _typed(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EbsValidation(f"{name} has the wrong type.", "INVALID_PARAMETER_VALUE")
    return value


def parse(
    operation: str,
    path_params: Mapping[str, str],
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Params:
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    p: Params = dict(path_params)
    if "BlockIndex" in p:
        p["BlockIndex"] = _int(p["BlockIndex"], "BlockIndex", required=True)
    if operation == "StartSnapshot":
        b = _json_body(body)
        p["VolumeSize"] = _typed(b, "VolumeSize", int)
        if p["VolumeSize"] is None:
            raise EbsValidation("VolumeSize is required.", "INVALID_PARAMETER_VALUE")
        for name, kind in (
            ("ParentSnapshotId", str),
            ("Description", str),
            ("ClientToken", str),
            ("Encrypted", bool),
            ("KmsKeyArn", str),
            ("Timeout", int),
            ("Tags", list),
        ):
            p[name] = _typed(b, name, kind)
        for tag in p["Tags"] or []:
            if not isinstance(tag, dict):
                raise EbsValidation("Each tag must be an object.", "INVALID_TAG")
    elif operation == "PutSnapshotBlock":
        p["BlockData"] = body
        p["DataLength"] = _int(headers.get("x-amz-data-length"), "DataLength", required=True)
        p["Progress"] = _int(headers.get("x-amz-progress"), "Progress")
        p["Checksum"] = headers.get("x-amz-checksum")
        p["ChecksumAlgorithm"] = headers.get("x-amz-checksum-algorithm")
    elif operation == "CompleteSnapshot":
        p["ChangedBlocksCount"] = _int(
            headers.get("x-amz-changedblockscount"), "ChangedBlocksCount", required=True
        )
        p["Checksum"] = headers.get("x-amz-checksum")
        p["ChecksumAlgorithm"] = headers.get("x-amz-checksum-algorithm")
        p["ChecksumAggregationMethod"] = headers.get("x-amz-checksum-aggregation-method")
    elif operation == "GetSnapshotBlock":
        token = query.get("blockToken")
        if not token:
            raise EbsValidation("BlockToken is required.", "INVALID_BLOCK_TOKEN")
        p["BlockToken"] = token
    else:  # the two listings
        p["NextToken"] = query.get("pageToken") or None
        p["MaxResults"] = _int(query.get("maxResults"), "MaxResults")
        p["StartingBlockIndex"] = _int(query.get("startingBlockIndex"), "StartingBlockIndex")
        if operation == "ListChangedBlocks":
            p["FirstSnapshotId"] = query.get("firstSnapshotId") or None
    return p


_NOT_AUDITED = frozenset({"BlockData", "KmsKeyArn", "VerifiedSha256"})


def audit_parameters(operation: str, p: Params) -> Params:
    """What the audit record keeps: no block data, no KMS key ARN (marked sensitive)."""
    kept = {k: v for k, v in p.items() if k not in _NOT_AUDITED and v is not None}
    return {k[:1].lower() + k[1:]: v for k, v in kept.items()}


# -- output -------------------------------------------------------------------------------------


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _json(status: int, value: Mapping[str, Any]) -> Output:
    body = orjson.dumps({k: v for k, v in value.items() if v is not None})
    return Output(status, [(b"content-type", b"application/json")], body)


def _snapshot_out(s: Snapshot) -> Params:
    return {
        "Description": s.description or None,
        "SnapshotId": s.snapshot_id,
        "OwnerId": s.account_id,
        "Status": s.state,
        "StartTime": _epoch(s.start_time),
        "VolumeSize": s.volume_size_gib,
        "BlockSize": BLOCK_SIZE,
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(s.tags.items())] or None,
        "ParentSnapshotId": s.parent_snapshot_id,
        "KmsKeyArn": s.keying.kms_key_arn if s.keying.encrypted else None,
        "SseType": "sse-kms" if s.keying.encrypted else "none",
    }


def start_snapshot(svc: EbsService, call: Call, p: Params) -> Output:
    snapshot = svc.start_snapshot(
        call,
        volume_size=p["VolumeSize"],
        parent_snapshot_id=p.get("ParentSnapshotId"),
        encrypted=p.get("Encrypted"),
        kms_key_arn=p.get("KmsKeyArn"),
        timeout=p.get("Timeout"),
        client_token=p.get("ClientToken"),
        description=p.get("Description"),
        tags=p.get("Tags"),
    )
    call.response_elements = {"snapshotId": snapshot.snapshot_id}
    return _json(201, _snapshot_out(snapshot))


def put_snapshot_block(svc: EbsService, call: Call, p: Params) -> Output:
    checksum = svc.put_snapshot_block(
        call,
        p["SnapshotId"],
        p["BlockIndex"],
        p["BlockData"],
        data_length=p.get("DataLength"),
        checksum=p.get("Checksum"),
        checksum_algorithm=p.get("ChecksumAlgorithm"),
        progress=p.get("Progress"),
        verified_sha256=p.get("VerifiedSha256"),
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amz-checksum", checksum.encode("ascii")),
        (b"x-amz-checksum-algorithm", b"SHA256"),
    ]
    return Output(201, headers, b"{}")


def complete_snapshot(svc: EbsService, call: Call, p: Params) -> Output:
    status = svc.complete_snapshot(
        call,
        p["SnapshotId"],
        p["ChangedBlocksCount"],
        checksum=p.get("Checksum"),
        checksum_algorithm=p.get("ChecksumAlgorithm"),
        aggregation_method=p.get("ChecksumAggregationMethod"),
    )
    return _json(202, {"Status": status})


def _listing(result: Params) -> Params:
    return {**result, "ExpiryTime": _epoch(result["ExpiryTime"])}


def list_snapshot_blocks(svc: EbsService, call: Call, p: Params) -> Output:
    result = svc.list_snapshot_blocks(
        call,
        p["SnapshotId"],
        max_results=p.get("MaxResults"),
        next_token=p.get("NextToken"),
        starting_block_index=p.get("StartingBlockIndex"),
    )
    return _json(200, _listing(result))


def list_changed_blocks(svc: EbsService, call: Call, p: Params) -> Output:
    result = svc.list_changed_blocks(
        call,
        p["SnapshotId"],
        first_snapshot_id=p.get("FirstSnapshotId"),
        max_results=p.get("MaxResults"),
        next_token=p.get("NextToken"),
        starting_block_index=p.get("StartingBlockIndex"),
    )
    return _json(200, _listing(result))


def get_snapshot_block(svc: EbsService, call: Call, p: Params) -> Output:
    data, checksum = svc.get_snapshot_block(call, p["SnapshotId"], p["BlockIndex"], p["BlockToken"])
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"x-amz-data-length", str(len(data)).encode()),
        (b"x-amz-checksum", checksum.encode("ascii")),
        (b"x-amz-checksum-algorithm", b"SHA256"),
    ]
    return Output(200, headers, data)


OPERATIONS: dict[str, Handler] = {
    "StartSnapshot": start_snapshot,
    "PutSnapshotBlock": put_snapshot_block,
    "CompleteSnapshot": complete_snapshot,
    "ListSnapshotBlocks": list_snapshot_blocks,
    "ListChangedBlocks": list_changed_blocks,
    "GetSnapshotBlock": get_snapshot_block,
}


# -- errors -------------------------------------------------------------------------------------

_EC2_TO_EBS: dict[str, tuple[type[EbsApiError], str | None]] = {
    "InvalidSnapshot.NotFound": (EbsNotFound, "SNAPSHOT_NOT_FOUND"),
    "InvalidSnapshotID.Malformed": (EbsValidation, "INVALID_SNAPSHOT_ID"),
    "UnauthorizedOperation": (EbsAccessDenied, "UNAUTHORIZED_ACCOUNT"),
}


def ebs_error(err: AwsError) -> AwsError:
    """A domain error as the EBS direct APIs name it."""
    if isinstance(err, EbsApiError):
        return err
    if isinstance(err, KmsFailure):
        if err.kms_code.startswith("AccessDenied"):
            return EbsAccessDenied(err.message, "DEPENDENCY_ACCESS_DENIED")
        if err.kms_code == "NotFoundException":
            return EbsNotFound(err.message, "DEPENDENCY_RESOURCE_NOT_FOUND")
        return EbsValidation(err.message, "INVALID_CUSTOMER_KEY")
    if isinstance(err, Ec2Error):
        cls, reason = _EC2_TO_EBS.get(err.code, (EbsValidation, "INVALID_PARAMETER_VALUE"))
        return cls(err.message, reason)
    if isinstance(err, StoredDataCorrupt):
        return EbsInternal(err.message)
    return err


def render_error(err: AwsError, request_id: str) -> tuple[int, Headers, bytes]:
    err = ebs_error(err)
    payload: dict[str, str] = {"Message": err.message}
    reason = getattr(err, "reason", None)
    if reason:
        payload["Reason"] = reason
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", err.code.encode("ascii", "replace")),
    ]
    return err.http_status, headers, orjson.dumps(payload)
