"""EC2 volumes/snapshots and the EBS direct APIs with boto3's `ec2` and `ebs` clients
against a real `sealbox serve`: wire formats, errors, encryption rules, canary scan."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess

AZ = "us-east-1a"
BLOCK = 524_288


@pytest.fixture(scope="module")
def ebs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: encryption by default is an account switch."""
    proc = ServerProcess(tmp_path_factory.mktemp("ebs") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ec2(ebs_server: ServerProcess) -> Any:
    return ebs_server.client("ec2")


@pytest.fixture(scope="module")
def ebs(ebs_server: ServerProcess) -> Any:
    return ebs_server.client("ebs")


@pytest.fixture(scope="module")
def kms(ebs_server: ServerProcess) -> Any:
    return ebs_server.client("kms")


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    code: str = err.value.response["Error"]["Code"]
    return code


def _checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _put(ebs: Any, snapshot_id: str, index: int, data: bytes) -> None:
    ebs.put_snapshot_block(
        SnapshotId=snapshot_id,
        BlockIndex=index,
        BlockData=data,
        DataLength=len(data),
        Checksum=_checksum(data),
        ChecksumAlgorithm="SHA256",
    )


def _direct_snapshot(ebs: Any, blocks: dict[int, bytes], **start: Any) -> str:
    snapshot_id: str = ebs.start_snapshot(VolumeSize=1, **start)["SnapshotId"]
    for index, data in sorted(blocks.items()):
        _put(ebs, snapshot_id, index, data)
    digests = b"".join(hashlib.sha256(blocks[i]).digest() for i in sorted(blocks))
    ebs.complete_snapshot(
        SnapshotId=snapshot_id,
        ChangedBlocksCount=len(blocks),
        Checksum=base64.b64encode(hashlib.sha256(digests).digest()).decode(),
        ChecksumAlgorithm="SHA256",
        ChecksumAggregationMethod="LINEAR",
    )
    return snapshot_id


# -- volumes ----------------------------------------------------------------------------------


def test_create_describe_filter_paginate_delete_volumes(ec2: Any) -> None:
    created = [
        ec2.create_volume(
            Size=1 + i,
            AvailabilityZone=AZ,
            VolumeType="gp3",
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": "suite", "Value": f"pages-{i % 2}"}]}
            ],
        )
        for i in range(6)
    ]
    first = created[0]
    assert first["VolumeId"].startswith("vol-") and len(first["VolumeId"]) == 21
    assert first["State"] == "creating"
    assert first["Encrypted"] is False
    assert first["Iops"] == 3000 and first["Throughput"] == 125
    ids = {v["VolumeId"] for v in created}
    ec2.get_waiter("volume_available").wait(VolumeIds=sorted(ids))

    tagged = ec2.describe_volumes(Filters=[{"Name": "tag:suite", "Values": ["pages-1"]}])
    assert {v["VolumeId"] for v in tagged["Volumes"]} == {
        v["VolumeId"] for i, v in enumerate(created) if i % 2
    }
    both = ec2.describe_volumes(
        Filters=[
            {"Name": "tag:suite", "Values": ["pages-*"]},
            {"Name": "status", "Values": ["available"]},
            {"Name": "encrypted", "Values": ["false"]},
        ]
    )
    assert ids <= {v["VolumeId"] for v in both["Volumes"]}

    seen: set[str] = set()
    pages = 0
    for page in ec2.get_paginator("describe_volumes").paginate(
        Filters=[{"Name": "tag:suite", "Values": ["pages-*"]}], PaginationConfig={"PageSize": 5}
    ):
        pages += 1
        seen |= {v["VolumeId"] for v in page["Volumes"]}
    assert seen == ids and pages == 2

    one = ec2.describe_volumes(VolumeIds=[first["VolumeId"]])["Volumes"][0]
    assert one["Size"] == 1 and one["AvailabilityZone"] == AZ
    assert one["Tags"] == [{"Key": "suite", "Value": "pages-0"}]

    for volume_id in ids:
        ec2.delete_volume(VolumeId=volume_id)
    with pytest.raises(ClientError) as err:
        ec2.describe_volumes(VolumeIds=[first["VolumeId"]])
    assert _code(err) == "InvalidVolume.NotFound"


def test_ec2_errors_are_ec2s(ec2: Any, kms: Any) -> None:
    with pytest.raises(ClientError) as missing:
        ec2.delete_volume(VolumeId="vol-0123456789abcdef0")
    assert _code(missing) == "InvalidVolume.NotFound"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as malformed:
        ec2.delete_volume(VolumeId="volume-1")
    assert _code(malformed) == "InvalidVolumeID.Malformed"
    with pytest.raises(ClientError) as no_size:
        ec2.create_volume(AvailabilityZone=AZ)
    assert _code(no_size) == "MissingParameter"
    key = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as dependency:
        ec2.create_volume(Size=1, AvailabilityZone=AZ, KmsKeyId=key)
    assert _code(dependency) == "InvalidParameterDependency"
    with pytest.raises(ClientError) as dry:
        ec2.create_volume(Size=1, AvailabilityZone=AZ, DryRun=True)
    assert _code(dry) == "DryRunOperation"
    with pytest.raises(ClientError) as snap:
        ec2.describe_snapshots(SnapshotIds=["snap-0123456789abcdef0"])
    assert _code(snap) == "InvalidSnapshot.NotFound"


def test_attach_detach_and_in_use(ec2: Any) -> None:
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"]
    attached = ec2.attach_volume(
        VolumeId=volume_id, InstanceId="i-0123456789abcdef0", Device="/dev/sdf"
    )
    assert attached["State"] == "attaching"
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id])
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["Attachments"][0]["InstanceId"] == "i-0123456789abcdef0"
    assert volume["Attachments"][0]["State"] == "attached"
    with pytest.raises(ClientError) as in_use:
        ec2.delete_volume(VolumeId=volume_id)
    assert _code(in_use) == "VolumeInUse"
    assert ec2.detach_volume(VolumeId=volume_id)["State"] == "detaching"
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id])
    with pytest.raises(ClientError) as again:
        ec2.detach_volume(VolumeId=volume_id)
    assert _code(again) == "IncorrectState"
    ec2.delete_volume(VolumeId=volume_id)


def test_tags(ec2: Any) -> None:
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"]
    ec2.create_tags(
        Resources=[volume_id], Tags=[{"Key": "team", "Value": "blue"}, {"Key": "x", "Value": "1"}]
    )
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [volume_id]}])["Tags"]
    assert {(t["Key"], t["Value"], t["ResourceType"]) for t in tags} == {
        ("team", "blue", "volume"),
        ("x", "1", "volume"),
    }
    ec2.delete_tags(Resources=[volume_id], Tags=[{"Key": "x"}])
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["Tags"] == [{"Key": "team", "Value": "blue"}]
    with pytest.raises(ClientError) as reserved:
        ec2.create_tags(Resources=[volume_id], Tags=[{"Key": "aws:x", "Value": "1"}])
    assert _code(reserved) == "InvalidParameterValue"
    ec2.delete_volume(VolumeId=volume_id)


# -- snapshots and encryption -------------------------------------------------------------------


def test_copy_plaintext_snapshot_to_encrypted_with_a_customer_key(
    ec2: Any, ebs: Any, kms: Any
) -> None:
    blocks = {0: os.urandom(BLOCK), 3: os.urandom(BLOCK)}
    source = _direct_snapshot(ebs, blocks)
    [described] = ec2.describe_snapshots(SnapshotIds=[source])["Snapshots"]
    assert described["Encrypted"] is False and described["State"] == "completed"
    key = kms.create_key(Description="springboard")["KeyMetadata"]["Arn"]
    copy_id = ec2.copy_snapshot(
        SourceRegion="us-east-1",
        SourceSnapshotId=source,
        Encrypted=True,
        KmsKeyId=key,
        Description="encrypted copy",
    )["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[copy_id])
    [copy] = ec2.describe_snapshots(OwnerIds=["self"], SnapshotIds=[copy_id])["Snapshots"]
    assert copy["Encrypted"] is True and copy["KmsKeyId"] == key
    assert copy["Description"] == "encrypted copy"
    assert ec2.describe_snapshots(OwnerIds=["amazon"], SnapshotIds=[copy_id])["Snapshots"] == []
    encrypted = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "encrypted", "Values": ["true"]}]
    )["Snapshots"]
    assert copy_id in {s["SnapshotId"] for s in encrypted}

    volume = ec2.create_volume(SnapshotId=copy_id, AvailabilityZone=AZ)
    assert volume["Encrypted"] is True and volume["KmsKeyId"] == key
    assert volume["SnapshotId"] == copy_id and volume["Size"] == 1
    # The volume's data is the copy's: snapshot it and read it back through the direct APIs.
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume["VolumeId"]])
    snap = ec2.create_snapshot(VolumeId=volume["VolumeId"], Description="of the restore")
    assert snap["State"] == "pending" and snap["Encrypted"] is True
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap["SnapshotId"]])
    listed = ebs.list_snapshot_blocks(SnapshotId=snap["SnapshotId"])["Blocks"]
    assert [b["BlockIndex"] for b in listed] == [0, 3]
    for block in listed:
        got = ebs.get_snapshot_block(
            SnapshotId=snap["SnapshotId"],
            BlockIndex=block["BlockIndex"],
            BlockToken=block["BlockToken"],
        )
        assert got["BlockData"].read() == blocks[block["BlockIndex"]]

    # Nothing makes encrypted data plaintext again.
    again = ec2.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=copy_id, Encrypted=False)
    [again_desc] = ec2.describe_snapshots(SnapshotIds=[again["SnapshotId"]])["Snapshots"]
    assert again_desc["Encrypted"] is True


def test_direct_apis_round_trip(ebs: Any, ec2: Any) -> None:
    blocks = {i: os.urandom(BLOCK) for i in (0, 1, 7, 100)}
    snapshot_id = _direct_snapshot(ebs, blocks, Description="direct", Timeout=60)
    listing = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, MaxResults=100)
    assert listing["BlockSize"] == BLOCK and listing["VolumeSize"] == 1
    assert [b["BlockIndex"] for b in listing["Blocks"]] == sorted(blocks)
    for block in listing["Blocks"]:
        got = ebs.get_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=block["BlockIndex"], BlockToken=block["BlockToken"]
        )
        data = got["BlockData"].read()
        assert data == blocks[block["BlockIndex"]]
        assert got["Checksum"] == _checksum(data) and got["ChecksumAlgorithm"] == "SHA256"
        assert got["DataLength"] == BLOCK

    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=snapshot_id)["SnapshotId"]
    new7 = os.urandom(BLOCK)
    _put(ebs, child, 7, new7)
    ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=1)
    changed = ebs.list_changed_blocks(FirstSnapshotId=snapshot_id, SecondSnapshotId=child)
    [entry] = changed["ChangedBlocks"]
    assert entry["BlockIndex"] == 7 and entry["FirstBlockToken"] != entry["SecondBlockToken"]
    [described] = ec2.describe_snapshots(SnapshotIds=[child])["Snapshots"]
    assert described["VolumeId"] == "vol-ffffffff" and described["State"] == "completed"


def test_direct_api_errors(ebs: Any) -> None:
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = os.urandom(BLOCK)
    with pytest.raises(ClientError) as bad_sum:
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=0, BlockData=data, DataLength=BLOCK,
            Checksum=_checksum(b"other"), ChecksumAlgorithm="SHA256",
        )  # fmt: skip
    assert _code(bad_sum) == "ValidationException"
    with pytest.raises(ClientError) as outside:
        _put(ebs, snapshot_id, 5000, data)
    assert outside.value.response["Reason"] == "INVALID_BLOCK"
    with pytest.raises(ClientError) as missing:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert _code(missing) == "ResourceNotFoundException"
    assert missing.value.response["Reason"] == "SNAPSHOT_NOT_FOUND"
    _put(ebs, snapshot_id, 0, data)
    with pytest.raises(ClientError) as count:
        ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=2)
    assert _code(count) == "ValidationException"
    token = "idem-" + os.urandom(4).hex()
    first = ebs.start_snapshot(VolumeSize=1, ClientToken=token)["SnapshotId"]
    assert ebs.start_snapshot(VolumeSize=1, ClientToken=token)["SnapshotId"] == first
    with pytest.raises(ClientError) as conflict:
        ebs.start_snapshot(VolumeSize=2, ClientToken=token)
    assert _code(conflict) == "ConflictException"


def test_direct_api_throughput_smoke(ebs: Any) -> None:
    """Eight threads putting and getting blocks at once (the bench measures speed)."""
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {i: os.urandom(BLOCK) for i in range(32)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _put(ebs, snapshot_id, i, blocks[i]), blocks))
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(blocks))
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]

    def get(block: dict[str, Any]) -> bool:
        got = ebs.get_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=block["BlockIndex"], BlockToken=block["BlockToken"]
        )
        return bool(got["BlockData"].read() == blocks[block["BlockIndex"]])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(get, listed))


def test_delete_snapshot_keeps_what_children_need(ec2: Any, ebs: Any) -> None:
    parent_blocks = {0: os.urandom(BLOCK), 1: os.urandom(BLOCK)}
    parent = _direct_snapshot(ebs, parent_blocks)
    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent)["SnapshotId"]
    ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=0)
    ec2.delete_snapshot(SnapshotId=parent)
    listed = ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]
    for block in listed:
        got = ebs.get_snapshot_block(
            SnapshotId=child, BlockIndex=block["BlockIndex"], BlockToken=block["BlockToken"]
        )
        assert got["BlockData"].read() == parent_blocks[block["BlockIndex"]]
    ec2.delete_snapshot(SnapshotId=child)
    with pytest.raises(ClientError) as gone:
        ec2.describe_snapshots(SnapshotIds=[child])
    assert _code(gone) == "InvalidSnapshot.NotFound"


def test_disabled_key_fails_attach_and_snapshot_reads(ec2: Any, ebs: Any, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    blocks = {0: os.urandom(BLOCK)}
    snapshot_id = _direct_snapshot(ebs, blocks, Encrypted=True, KmsKeyArn=key)
    volume_id = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=AZ)["VolumeId"]
    kms.disable_key(KeyId=key)
    try:
        with pytest.raises(ClientError) as attach:
            ec2.attach_volume(VolumeId=volume_id, InstanceId="i-0123456789abcdef0", Device="xvdf")
        assert _code(attach) == "InvalidKMSKey.InvalidState"
        token = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"][0]["BlockToken"]
        with pytest.raises(ClientError) as read:
            ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=0, BlockToken=token)
        assert _code(read) == "ValidationException"
        assert read.value.response["Reason"] == "INVALID_CUSTOMER_KEY"
    finally:
        kms.enable_key(KeyId=key)
    ec2.attach_volume(VolumeId=volume_id, InstanceId="i-0123456789abcdef0", Device="xvdf")
    ec2.detach_volume(VolumeId=volume_id)


def test_ebs_kms_use_is_audited_as_invoked_by_ec2(
    ebs_server: ServerProcess, ec2: Any, kms: Any
) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=AZ, Encrypted=True, KmsKeyId=key)[
        "VolumeId"
    ]
    trail = ebs_server.client("cloudtrail")
    events = trail.lookup_events(
        LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "GenerateDataKeyWithoutPlaintext"}
        ]
    )["Events"]
    records = [e["CloudTrailEvent"] for e in events]
    assert any(volume_id in r and "ec2.amazonaws.com" in r for r in records)


# -- encryption by default (last: it changes the account) -----------------------------------------


def test_zz_encryption_by_default(ec2: Any, ebs: Any) -> None:
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    plain = ec2.create_volume(Size=1, AvailabilityZone=AZ)
    assert plain["Encrypted"] is False
    assert ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    default_key = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert default_key.endswith(":alias/aws/ebs")
    volume = ec2.create_volume(Size=1, AvailabilityZone=AZ)
    assert volume["Encrypted"] is True and ":key/" in volume["KmsKeyId"]
    assert ec2.create_volume(Size=1, AvailabilityZone=AZ, Encrypted=False)["Encrypted"] is True
    snap = ebs.start_snapshot(VolumeSize=1)
    assert snap["KmsKeyArn"] == volume["KmsKeyId"]
    assert ec2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


# -- nothing plaintext at rest --------------------------------------------------------------------


def test_data_directory_holds_no_plaintext_canary(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server()
    ec2, ebs = server.client("ec2"), server.client("ebs")
    canary = b"EBS-CANARY-" + os.urandom(8).hex().encode()
    block = (canary * (BLOCK // len(canary) + 1))[:BLOCK]
    plain = _direct_snapshot(ebs, {0: block, 9: block})  # "unencrypted" snapshot
    restored = ec2.create_volume(SnapshotId=plain, AvailabilityZone=AZ)["VolumeId"]  # volume file
    copy = ec2.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=plain, Encrypted=True)
    ec2.create_volume(SnapshotId=copy["SnapshotId"], AvailabilityZone=AZ)
    ec2.create_snapshot(VolumeId=restored)
    server.stop()
    found = []
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file() and canary[:16] in path.read_bytes():
            found.append(str(path))
    assert found == []
    assert any((Path(server.data_dir) / "volumes").iterdir())
    assert any(p.is_file() for p in (Path(server.data_dir) / "ebs-blocks").rglob("*"))
