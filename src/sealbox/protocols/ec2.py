"""EC2 operation table (volumes, snapshots, tags, encryption by default): wire parameters
(already decoded by the EC2 Query codec, keyed by botocore member names) ⇄ EbsService.

Responses are dicts keyed by member names; the codec writes them as EC2's XML (lists as
``<item>``, no result wrapper). CreateVolume answers with State "creating" and
CreateSnapshot with "pending", as EC2 does; the work is done by then, so the next
Describe shows "available" / "completed".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sealbox.call import Call
from sealbox.ebs.model import Snapshot, Volume
from sealbox.ebs.service import EbsService

Params = dict[str, Any]
Handler = Callable[[EbsService, Call, Params], Params]

EVENT_SOURCE = "ec2.amazonaws.com"


def _tags(tags: dict[str, str]) -> list[dict[str, str]] | None:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())] or None


def volume_out(v: Volume, state: str | None = None) -> Params:
    out: Params = {
        "VolumeId": v.volume_id,
        "Size": v.size_gib,
        "SnapshotId": v.snapshot_id or "",
        "AvailabilityZone": v.availability_zone,
        "State": state or v.state,
        "CreateTime": v.created_at,
        "Attachments": [attachment_out(v)] if v.attachment is not None else [],
        "Encrypted": v.keying.encrypted,
        "VolumeType": v.volume_type,
        "MultiAttachEnabled": False,
        "Iops": v.iops,
        "Throughput": v.throughput,
        "Tags": _tags(v.tags),
    }
    if v.keying.encrypted:
        out["KmsKeyId"] = v.keying.kms_key_arn
    return out


def attachment_out(v: Volume, state: str = "attached") -> Params:
    a = v.attachment
    assert a is not None
    return {
        "AttachTime": a.attach_time,
        "Device": a.device,
        "InstanceId": a.instance_id,
        "State": state,
        "VolumeId": v.volume_id,
        "DeleteOnTermination": False,
    }


def data_encryption_key_id(context_id: str) -> str:
    """EC2's DataEncryptionKeyId: equal for snapshots sharing a data key (one lineage)."""
    return "dek-" + hashlib.sha256(context_id.encode()).hexdigest()[:17]


def snapshot_out(s: Snapshot, state: str | None = None) -> Params:
    state = state or s.state
    out: Params = {
        "SnapshotId": s.snapshot_id,
        "VolumeId": s.volume_id,
        "State": state,
        "StartTime": s.start_time,
        "Progress": "100%" if state == "completed" else ("" if state == "pending" else "0%"),
        "OwnerId": s.account_id,
        "Description": s.description or "",
        "VolumeSize": s.volume_size_gib,
        "Encrypted": s.keying.encrypted,
        "DataEncryptionKeyId": data_encryption_key_id(s.keying.context_id),
        "StorageTier": "standard",
        "Tags": _tags(s.tags),
    }
    if s.keying.encrypted:
        out["KmsKeyId"] = s.keying.kms_key_arn
    if s.completion_time is not None and state == "completed":
        out["CompletionTime"] = s.completion_time
    return out


# -- volumes ----------------------------------------------------------------------------------


def create_volume(svc: EbsService, call: Call, p: Params) -> Params:
    volume = svc.create_volume(
        call,
        size=p.get("Size"),
        snapshot_id=p.get("SnapshotId"),
        encrypted=p.get("Encrypted"),
        kms_key_id=p.get("KmsKeyId"),
        availability_zone=p.get("AvailabilityZone"),
        volume_type=p.get("VolumeType"),
        iops=p.get("Iops"),
        throughput=p.get("Throughput"),
        tag_specifications=p.get("TagSpecifications"),
        dry_run=p.get("DryRun"),
    )
    call.response_elements = {"volumeId": volume.volume_id}
    return volume_out(volume, "creating")


def describe_volumes(svc: EbsService, call: Call, p: Params) -> Params:
    volumes, token = svc.describe_volumes(
        call,
        volume_ids=p.get("VolumeIds"),
        filters=p.get("Filters"),
        max_results=p.get("MaxResults"),
        next_token=p.get("NextToken"),
        dry_run=p.get("DryRun"),
    )
    return {"Volumes": [volume_out(v) for v in volumes], "NextToken": token}


def delete_volume(svc: EbsService, call: Call, p: Params) -> Params:
    svc.delete_volume(call, p["VolumeId"], dry_run=p.get("DryRun"))
    return {}


def attach_volume(svc: EbsService, call: Call, p: Params) -> Params:
    volume = svc.attach_volume(
        call, p["VolumeId"], p["InstanceId"], p["Device"], dry_run=p.get("DryRun")
    )
    return attachment_out(volume, "attaching")


def detach_volume(svc: EbsService, call: Call, p: Params) -> Params:
    volume = svc.detach_volume(
        call,
        p["VolumeId"],
        instance_id=p.get("InstanceId"),
        device=p.get("Device"),
        force=p.get("Force"),
        dry_run=p.get("DryRun"),
    )
    return attachment_out(volume, "detaching")


# -- snapshots --------------------------------------------------------------------------------


def create_snapshot(svc: EbsService, call: Call, p: Params) -> Params:
    snapshot = svc.create_snapshot(
        call,
        p["VolumeId"],
        description=p.get("Description"),
        tag_specifications=p.get("TagSpecifications"),
        dry_run=p.get("DryRun"),
    )
    call.response_elements = {"snapshotId": snapshot.snapshot_id}
    return snapshot_out(snapshot, "pending")


def describe_snapshots(svc: EbsService, call: Call, p: Params) -> Params:
    snapshots, token = svc.describe_snapshots(
        call,
        snapshot_ids=p.get("SnapshotIds"),
        owner_ids=p.get("OwnerIds"),
        restorable_by=p.get("RestorableByUserIds"),
        filters=p.get("Filters"),
        max_results=p.get("MaxResults"),
        next_token=p.get("NextToken"),
        dry_run=p.get("DryRun"),
    )
    return {"Snapshots": [snapshot_out(s) for s in snapshots], "NextToken": token}


def delete_snapshot(svc: EbsService, call: Call, p: Params) -> Params:
    svc.delete_snapshot(call, p["SnapshotId"], dry_run=p.get("DryRun"))
    return {}


def copy_snapshot(svc: EbsService, call: Call, p: Params) -> Params:
    snapshot = svc.copy_snapshot(
        call,
        source_region=p["SourceRegion"],
        source_snapshot_id=p["SourceSnapshotId"],
        encrypted=p.get("Encrypted"),
        kms_key_id=p.get("KmsKeyId"),
        description=p.get("Description"),
        tag_specifications=p.get("TagSpecifications"),
        dry_run=p.get("DryRun"),
    )
    call.response_elements = {"snapshotId": snapshot.snapshot_id}
    return {"SnapshotId": snapshot.snapshot_id, "Tags": _tags(snapshot.tags)}


# -- tags -------------------------------------------------------------------------------------


def create_tags(svc: EbsService, call: Call, p: Params) -> Params:
    svc.create_tags(call, p.get("Resources") or [], p.get("Tags") or [], dry_run=p.get("DryRun"))
    return {}


def delete_tags(svc: EbsService, call: Call, p: Params) -> Params:
    svc.delete_tags(call, p.get("Resources") or [], p.get("Tags"), dry_run=p.get("DryRun"))
    return {}


def describe_tags(svc: EbsService, call: Call, p: Params) -> Params:
    tags, token = svc.describe_tags(
        call,
        filters=p.get("Filters"),
        max_results=p.get("MaxResults"),
        next_token=p.get("NextToken"),
        dry_run=p.get("DryRun"),
    )
    return {"Tags": tags, "NextToken": token}


# -- encryption by default --------------------------------------------------------------------


def enable_ebd(svc: EbsService, call: Call, p: Params) -> Params:
    return {"EbsEncryptionByDefault": svc.set_encryption_by_default(call, True, p.get("DryRun"))}


def disable_ebd(svc: EbsService, call: Call, p: Params) -> Params:
    return {"EbsEncryptionByDefault": svc.set_encryption_by_default(call, False, p.get("DryRun"))}


def get_ebd(svc: EbsService, call: Call, p: Params) -> Params:
    return {
        "EbsEncryptionByDefault": svc.get_encryption_by_default(call, p.get("DryRun")),
        "SseType": "none",
    }


def get_default_key(svc: EbsService, call: Call, p: Params) -> Params:
    return {"KmsKeyId": svc.get_default_kms_key_id(call, p.get("DryRun"))}


def modify_default_key(svc: EbsService, call: Call, p: Params) -> Params:
    return {"KmsKeyId": svc.modify_default_kms_key_id(call, p["KmsKeyId"], p.get("DryRun"))}


def reset_default_key(svc: EbsService, call: Call, p: Params) -> Params:
    return {"KmsKeyId": svc.reset_default_kms_key_id(call, p.get("DryRun"))}


OPERATIONS: dict[str, Handler] = {
    "CreateVolume": create_volume,
    "DescribeVolumes": describe_volumes,
    "DeleteVolume": delete_volume,
    "AttachVolume": attach_volume,
    "DetachVolume": detach_volume,
    "CreateSnapshot": create_snapshot,
    "DescribeSnapshots": describe_snapshots,
    "DeleteSnapshot": delete_snapshot,
    "CopySnapshot": copy_snapshot,
    "CreateTags": create_tags,
    "DeleteTags": delete_tags,
    "DescribeTags": describe_tags,
    "EnableEbsEncryptionByDefault": enable_ebd,
    "DisableEbsEncryptionByDefault": disable_ebd,
    "GetEbsEncryptionByDefault": get_ebd,
    "GetEbsDefaultKmsKeyId": get_default_key,
    "ModifyEbsDefaultKmsKeyId": modify_default_key,
    "ResetEbsDefaultKmsKeyId": reset_default_key,
}
READ_ONLY = frozenset(
    {
        "DescribeVolumes",
        "DescribeSnapshots",
        "DescribeTags",
        "GetEbsEncryptionByDefault",
        "GetEbsDefaultKmsKeyId",
    }
)
