"""EbsService domain rules on a real database: encryption by default, copy and restore
encryption outcomes, KMS on the caller's behalf and key states, attach/detach and the
export seam, the direct APIs' rules."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sealbox.call import Call
from sealbox.clock import ManualClock
from sealbox.ebs.device import DeviceError
from sealbox.ebs.errors import (
    EbsConflict,
    EbsValidation,
    Ec2Error,
    KmsFailure,
)
from sealbox.ebs.model import BLOCK_SIZE, Volume
from sealbox.ebs.service import EbsService
from sealbox.server.runtime import Runtime
from sealbox.storage import ebs_repo
from tests.support.runtime import build_runtime, root_call

INSTANCE = "i-0123456789abcdef0"
AZ = "us-east-1a"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    runtime = build_runtime(tmp_path / "data", clock)
    yield runtime
    runtime.close()


@pytest.fixture
def ebs(rt: Runtime) -> EbsService:
    return rt.ebs


def _key(rt: Runtime) -> str:
    arn: str = rt.kms.create_key(root_call("CreateKey")).key.arn
    return arn


def _managed_arn(rt: Runtime) -> str:
    return rt.kms.ensure_aws_managed_key("111122223333", "us-east-1", "ebs").arn


def _code(err: pytest.ExceptionInfo[Exception]) -> str:
    code: str = getattr(err.value, "code", "")
    return code


def _filled_volume(ebs: EbsService, data: bytes, **kwargs: object) -> Volume:
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ, **kwargs)  # type: ignore[arg-type]
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    device = ebs.export(volume.volume_id)
    assert device is not None
    device.write(0, data)
    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    return volume


def _read_volume(ebs: EbsService, volume_id: str, length: int) -> bytes:
    ebs.attach_volume(root_call("AttachVolume"), volume_id, "i-0000000000000000f", "/dev/sdz")
    device = ebs.export(volume_id)
    assert device is not None
    data = device.read(0, length)
    ebs.detach_volume(root_call("DetachVolume"), volume_id)
    return data


# -- encryption by default --------------------------------------------------------------------


def test_encryption_by_default_encrypts_whatever_the_request_said(
    rt: Runtime, ebs: EbsService
) -> None:
    call = root_call("GetEbsEncryptionByDefault")
    assert ebs.get_encryption_by_default(call) is False
    plain = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ)
    assert not plain.keying.encrypted
    assert ebs.set_encryption_by_default(root_call("EnableEbsEncryptionByDefault"), True)
    volume = ebs.create_volume(
        root_call("CreateVolume"), size=1, availability_zone=AZ, encrypted=False
    )
    assert volume.keying.encrypted
    assert volume.keying.kms_key_arn == _managed_arn(rt)
    assert ebs.get_default_kms_key_id(call) == ("arn:aws:kms:us-east-1:111122223333:alias/aws/ebs")
    key = _key(rt)
    assert ebs.modify_default_kms_key_id(root_call("ModifyEbsDefaultKmsKeyId"), key) == key
    assert (
        ebs.create_volume(
            root_call("CreateVolume"), size=1, availability_zone=AZ
        ).keying.kms_key_arn
        == key
    )
    assert ebs.get_default_kms_key_id(call) == key
    ebs.reset_default_kms_key_id(root_call("ResetEbsDefaultKmsKeyId"))
    assert ebs.create_volume(
        root_call("CreateVolume"), size=1, availability_zone=AZ
    ).keying.kms_key_arn == _managed_arn(rt)
    ebs.set_encryption_by_default(root_call("DisableEbsEncryptionByDefault"), False)
    assert not ebs.create_volume(
        root_call("CreateVolume"), size=1, availability_zone=AZ
    ).keying.encrypted


def test_copies_are_encrypted_under_encryption_by_default(rt: Runtime, ebs: EbsService) -> None:
    volume = _filled_volume(ebs, b"plain data")
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    assert not snap.keying.encrypted
    ebs.set_encryption_by_default(root_call("EnableEbsEncryptionByDefault"), True)
    copy = ebs.copy_snapshot(
        root_call("CopySnapshot"), source_region="us-east-1", source_snapshot_id=snap.snapshot_id
    )
    assert copy.keying.encrypted
    assert copy.keying.kms_key_arn == _managed_arn(rt)


def test_a_kms_key_needs_encrypted_true(rt: Runtime, ebs: EbsService) -> None:
    with pytest.raises(Ec2Error) as err:
        ebs.create_volume(
            root_call("CreateVolume"), size=1, availability_zone=AZ, kms_key_id=_key(rt)
        )
    assert _code(err) == "InvalidParameterDependency"


def test_modify_default_key_refuses_unknown_and_asymmetric_keys(
    rt: Runtime, ebs: EbsService
) -> None:
    with pytest.raises(KmsFailure) as err:
        ebs.modify_default_kms_key_id(root_call("ModifyEbsDefaultKmsKeyId"), "alias/nope")
    assert _code(err) == "InvalidKMSKey.NotFound"
    rsa = rt.kms.create_key(
        root_call("CreateKey"), key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT"
    ).key.arn
    with pytest.raises(Ec2Error) as bad:
        ebs.modify_default_kms_key_id(root_call("ModifyEbsDefaultKmsKeyId"), rsa)
    assert _code(bad) == "InvalidParameterValue"


# -- restore and copy outcomes ----------------------------------------------------------------


def test_a_volume_from_an_encrypted_snapshot_is_encrypted(rt: Runtime, ebs: EbsService) -> None:
    key = _key(rt)
    data = os.urandom(3 * BLOCK_SIZE)
    volume = _filled_volume(ebs, data, encrypted=True, kms_key_id=key)
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    assert snap.keying.encrypted and snap.keying.kms_key_arn == key
    same = ebs.create_volume(
        root_call("CreateVolume"),
        snapshot_id=snap.snapshot_id,
        availability_zone=AZ,
        encrypted=False,
    )
    assert same.keying.encrypted and same.keying.kms_key_arn == key
    assert _read_volume(ebs, same.volume_id, len(data)) == data
    other = _key(rt)
    moved = ebs.create_volume(
        root_call("CreateVolume"),
        snapshot_id=snap.snapshot_id,
        availability_zone=AZ,
        encrypted=True,
        kms_key_id=other,
    )
    assert moved.keying.kms_key_arn == other
    assert moved.keying.context_id == moved.volume_id  # a data key of its own
    assert _read_volume(ebs, moved.volume_id, len(data)) == data


def test_copy_plaintext_to_encrypted_and_reencrypt_under_another_key(
    rt: Runtime, ebs: EbsService
) -> None:
    data = os.urandom(2 * BLOCK_SIZE + 5)
    volume = _filled_volume(ebs, data)
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    key1, key2 = _key(rt), _key(rt)
    call = root_call("CopySnapshot")
    enc = ebs.copy_snapshot(
        call,
        source_region="us-east-1",
        source_snapshot_id=snap.snapshot_id,
        encrypted=True,
        kms_key_id=key1,
        description="springboard",
    )
    assert enc.keying.encrypted and enc.keying.kms_key_arn == key1
    assert enc.volume_id == "vol-ffffffff" and enc.description == "springboard"
    with rt.db.read() as conn:
        plain_ids = {r.block_id for r in ebs_repo.snapshot_blocks(conn, snap.snapshot_id)}
        enc_ids = {r.block_id for r in ebs_repo.snapshot_blocks(conn, enc.snapshot_id)}
    assert plain_ids and not plain_ids & enc_ids  # every block sealed anew
    # Nothing turns encrypted data back into plaintext: Encrypted=false is ignored.
    again = ebs.copy_snapshot(
        root_call("CopySnapshot"),
        source_region="us-east-1",
        source_snapshot_id=enc.snapshot_id,
        encrypted=False,
    )
    assert again.keying.encrypted and again.keying.kms_key_arn == key1
    rekeyed = ebs.copy_snapshot(
        root_call("CopySnapshot"),
        source_region="us-east-1",
        source_snapshot_id=enc.snapshot_id,
        encrypted=True,
        kms_key_id=key2,
    )
    assert rekeyed.keying.kms_key_arn == key2
    restored = ebs.create_volume(
        root_call("CreateVolume"), snapshot_id=rekeyed.snapshot_id, availability_zone=AZ
    )
    assert restored.keying.encrypted and restored.keying.kms_key_arn == key2
    assert _read_volume(ebs, restored.volume_id, len(data)) == data


def test_cross_region_copy_uses_a_key_of_the_destination_region(
    rt: Runtime, ebs: EbsService
) -> None:
    key = _key(rt)
    data = os.urandom(BLOCK_SIZE)
    volume = _filled_volume(ebs, data, encrypted=True, kms_key_id=key)
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    west = root_call("CopySnapshot", region="us-west-2")
    copy = ebs.copy_snapshot(west, source_region="us-east-1", source_snapshot_id=snap.snapshot_id)
    managed_west = rt.kms.ensure_aws_managed_key("111122223333", "us-west-2", "ebs").arn
    assert copy.region == "us-west-2" and copy.keying.kms_key_arn == managed_west
    decrypts = [sub for sub, _, _ in west.related if sub.event_name == "Decrypt"]
    assert {sub.region for sub in decrypts} == {"us-east-1", "us-west-2"}
    restored = ebs.create_volume(
        root_call("CreateVolume", region="us-west-2"),
        snapshot_id=copy.snapshot_id,
        availability_zone="us-west-2a",
    )
    ebs.attach_volume(
        root_call("AttachVolume", region="us-west-2"), restored.volume_id, INSTANCE, "xvdf"
    )
    device = ebs.export(restored.volume_id)
    assert device is not None and device.read(0, BLOCK_SIZE) == data
    with pytest.raises(Ec2Error) as missing:
        ebs.copy_snapshot(
            root_call("CopySnapshot"),
            source_region="eu-west-1",
            source_snapshot_id=snap.snapshot_id,
        )
    assert _code(missing) == "InvalidSnapshot.NotFound"


def test_kms_is_called_on_the_callers_behalf_with_the_ebs_context(
    rt: Runtime, ebs: EbsService
) -> None:
    key = _key(rt)
    call = root_call("CreateVolume")
    volume = ebs.create_volume(call, size=1, availability_zone=AZ, encrypted=True, kms_key_id=key)
    [(sub, code, _)] = [r for r in call.related if r[0].event_name != "DescribeKey"]
    assert code is None
    assert sub.event_name == "GenerateDataKeyWithoutPlaintext"
    assert sub.invoked_by == "ec2.amazonaws.com"
    assert sub.principal == call.principal
    assert sub.request_parameters is not None
    assert sub.request_parameters["encryptionContext"] == {"aws:ebs:id": volume.volume_id}
    attach = root_call("AttachVolume")
    ebs.attach_volume(attach, volume.volume_id, INSTANCE, "/dev/sdf")
    assert [r[0].event_name for r in attach.related] == ["Decrypt"]


# -- key states --------------------------------------------------------------------------------


def test_a_disabled_key_fails_attach_and_snapshot_reads(rt: Runtime, ebs: EbsService) -> None:
    key = _key(rt)
    data = os.urandom(BLOCK_SIZE)
    volume = _filled_volume(ebs, data, encrypted=True, kms_key_id=key)
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    rt.kms.disable_key(root_call("DisableKey"), key)
    # Attached volumes keep working (the data key is already with the host, as in AWS)...
    device = ebs.export(volume.volume_id)
    assert device is not None and device.read(0, 16) == data[:16]
    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    # ...but the next attach, and every read of the snapshot, fail with the key's state.
    call = root_call("AttachVolume")
    with pytest.raises(KmsFailure) as err:
        ebs.attach_volume(call, volume.volume_id, INSTANCE, "/dev/sdf")
    assert _code(err) == "InvalidKMSKey.InvalidState"
    assert err.value.kms_code == "DisabledException"
    assert call.related[0][1] == "DisabledException"  # the failed Decrypt is audited
    with pytest.raises(KmsFailure):
        ebs.create_volume(
            root_call("CreateVolume"), snapshot_id=snap.snapshot_id, availability_zone=AZ
        )
    with rt.db.read() as conn:
        ref = ebs_repo.snapshot_blocks(conn, snap.snapshot_id)[0]
    with pytest.raises(KmsFailure):
        ebs.get_snapshot_block(root_call("GetSnapshotBlock"), snap.snapshot_id, 0, ref.block_id)
    with pytest.raises(KmsFailure):
        ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    rt.kms.enable_key(root_call("EnableKey"), key)
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")


def test_after_the_key_is_shredded_nothing_is_readable(
    rt: Runtime, ebs: EbsService, clock: ManualClock
) -> None:
    key = _key(rt)
    data = os.urandom(BLOCK_SIZE)
    volume = _filled_volume(ebs, data, encrypted=True, kms_key_id=key)
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), volume.volume_id)
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    assert ebs.export(volume.volume_id) is not None
    rt.kms.schedule_key_deletion(root_call("ScheduleKeyDeletion"), key, 7)
    with pytest.raises(KmsFailure) as pending:
        ebs.copy_snapshot(
            root_call("CopySnapshot"),
            source_region="us-east-1",
            source_snapshot_id=snap.snapshot_id,
        )
    assert _code(pending) == "InvalidKMSKey.InvalidState"
    assert pending.value.kms_code == "KMSInvalidStateException"
    clock.advance(timedelta(days=8))
    rt.run_scheduled_work()
    assert ebs.reconcile_exports() == [volume.volume_id]
    assert ebs.export(volume.volume_id) is None
    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    with pytest.raises(KmsFailure) as gone:
        ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    assert _code(gone) == "InvalidKMSKey.NotFound"


# -- attach / detach and the export seam ---------------------------------------------------------


def test_attach_detach_rules_and_export(ebs: EbsService) -> None:
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ)
    assert ebs.export(volume.volume_id) is None  # not attached: no export
    with pytest.raises(Ec2Error) as bad_instance:
        ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, "instance-1", "/dev/sdf")
    assert _code(bad_instance) == "InvalidInstanceID.Malformed"
    with pytest.raises(Ec2Error) as not_attached:
        ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    assert _code(not_attached) == "IncorrectState"
    attached = ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    assert attached.state == "in-use" and attached.attachment is not None
    assert ebs.export_names() == [volume.volume_id]
    with pytest.raises(Ec2Error) as twice:
        ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdg")
    assert _code(twice) == "VolumeInUse"
    with pytest.raises(Ec2Error) as in_use:
        ebs.delete_volume(root_call("DeleteVolume"), volume.volume_id)
    assert _code(in_use) == "VolumeInUse"
    with pytest.raises(Ec2Error) as wrong:
        ebs.detach_volume(root_call("DetachVolume"), volume.volume_id, instance_id="i-00000000")
    assert _code(wrong) == "InvalidAttachment.NotFound"

    device = ebs.export(volume.volume_id)
    other = ebs.export(volume.volume_id)  # one device per connection
    assert device is not None and other is not None and other is not device
    device.write(0, b"written before detach")
    assert other.read(0, 21) == b"written before detach"
    other.close()  # a connection ended
    ended: list[str] = []
    ebs.on_detach(ended.append)
    ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
    assert ended == [volume.volume_id]
    assert ebs.export(volume.volume_id) is None
    assert ebs.export_names() == []
    with pytest.raises(DeviceError):  # detach closed (and flushed) what was still open
        device.read(0, 1)
    assert _read_volume(ebs, volume.volume_id, 21) == b"written before detach"
    ebs.delete_volume(root_call("DeleteVolume"), volume.volume_id)
    assert not ebs.volume_store.exists(volume.volume_id)


def test_devices_of_one_volume_share_unit_locks(ebs: EbsService) -> None:
    """Two connections writing different sectors of the same 4 KiB units at once."""
    volume = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ)
    ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
    devices = [ebs.export(volume.volume_id) for _ in range(2)]
    sectors = [os.urandom(512) for _ in range(64)]

    def writer(n: int) -> None:
        device = devices[n]
        assert device is not None
        for _ in range(20):
            for i in range(n, 64, 2):
                device.write(i * 512, sectors[i])

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = ebs.export(volume.volume_id)
    assert check is not None and check.read(0, 64 * 512) == b"".join(sectors)


def test_reconcile_ends_exports_detached_by_another_process(rt: Runtime, tmp_path: Path) -> None:
    other = build_runtime(tmp_path / "data", ManualClock())  # a second "worker"
    try:
        volume = rt.ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ)
        rt.ebs.attach_volume(root_call("AttachVolume"), volume.volume_id, INSTANCE, "/dev/sdf")
        assert rt.ebs.export(volume.volume_id) is not None
        ended: list[str] = []
        rt.ebs.on_detach(ended.append)
        other.ebs.detach_volume(root_call("DetachVolume"), volume.volume_id)
        assert ended == []
        assert rt.ebs.reconcile_exports() == [volume.volume_id]
        assert ended == [volume.volume_id]
    finally:
        other.close()


def test_errors_of_create_volume(rt: Runtime, ebs: EbsService) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"availability_zone": AZ}, "MissingParameter"),
        ({"size": 1}, "MissingParameter"),
        ({"size": 1, "availability_zone": "eu-west-1a"}, "InvalidZone.NotFound"),
        ({"size": 1, "availability_zone": AZ, "volume_type": "gp9"}, "InvalidParameterValue"),
        ({"size": 0, "availability_zone": AZ}, "InvalidParameterValue"),
        ({"size": 1, "availability_zone": AZ, "iops": 3000}, "InvalidParameterCombination"),
        ({"size": 10, "availability_zone": AZ, "volume_type": "io2"}, "MissingParameter"),
        (
            {"snapshot_id": "snap-0123456789abcdef0", "availability_zone": AZ},
            "InvalidSnapshot.NotFound",
        ),
        ({"snapshot_id": "bogus", "availability_zone": AZ}, "InvalidSnapshotID.Malformed"),
    ]
    for kwargs, code in cases:
        with pytest.raises(Ec2Error) as err:
            ebs.create_volume(root_call("CreateVolume"), **kwargs)  # type: ignore[arg-type]
        assert _code(err) == code, kwargs
    with rt.db.read() as conn:
        assert ebs_repo.list_volumes(conn, "111122223333", "us-east-1") == []


def test_dry_run(ebs: EbsService) -> None:
    with pytest.raises(Ec2Error) as err:
        ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ, dry_run=True)
    assert _code(err) == "DryRunOperation" and err.value.http_status == 412


def test_describe_filters_and_pages(ebs: EbsService) -> None:
    ids = []
    for i in range(7):
        tags = [{"ResourceType": "volume", "Tags": [{"Key": "n", "Value": str(i % 2)}]}]
        ids.append(
            ebs.create_volume(
                root_call("CreateVolume"), size=1 + i, availability_zone=AZ, tag_specifications=tags
            ).volume_id
        )
    call = root_call("DescribeVolumes")
    odd, _ = ebs.describe_volumes(call, filters=[{"Name": "tag:n", "Values": ["1"]}])
    assert len(odd) == 3
    big, _ = ebs.describe_volumes(call, filters=[{"Name": "size", "Values": ["6", "7"]}])
    assert len(big) == 2
    wild, _ = ebs.describe_volumes(
        call, filters=[{"Name": "volume-id", "Values": [ids[0][:6] + "*"]}]
    )
    assert ids[0] in {v.volume_id for v in wild}
    seen: list[str] = []
    token = None
    while True:
        page, token = ebs.describe_volumes(call, max_results=5, next_token=token)
        seen += [v.volume_id for v in page]
        if token is None:
            break
    assert sorted(seen) == sorted(ids)
    with pytest.raises(Ec2Error) as bad:
        ebs.describe_volumes(call, filters=[{"Name": "colour", "Values": ["red"]}])
    assert _code(bad) == "InvalidParameterValue"
    with pytest.raises(Ec2Error) as combo:
        ebs.describe_volumes(call, volume_ids=ids[:1], max_results=5)
    assert _code(combo) == "InvalidParameterCombination"


# -- the direct APIs ---------------------------------------------------------------------------


def _put(ebs: EbsService, call: Call, snapshot_id: str, index: int, data: bytes) -> bytes:
    digest = hashlib.sha256(data).digest()
    ebs.put_snapshot_block(
        call,
        snapshot_id,
        index,
        data,
        data_length=len(data),
        checksum=base64.b64encode(digest).decode(),
        checksum_algorithm="SHA256",
    )
    return digest


def test_direct_snapshots_with_a_parent_share_unchanged_blocks(ebs: EbsService) -> None:
    call = root_call("StartSnapshot")
    parent = ebs.start_snapshot(call, volume_size=1)
    blocks = {i: os.urandom(BLOCK_SIZE) for i in (0, 5, 6)}
    digests = [_put(ebs, call, parent.snapshot_id, i, d) for i, d in sorted(blocks.items())]
    linear = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert (
        ebs.complete_snapshot(call, parent.snapshot_id, 3, linear, "SHA256", "LINEAR")
        == "completed"
    )

    child = ebs.start_snapshot(call, volume_size=2, parent_snapshot_id=parent.snapshot_id)
    assert child.keying.context_id == parent.keying.context_id
    new5 = os.urandom(BLOCK_SIZE)
    digest = _put(ebs, call, child.snapshot_id, 5, new5)
    _put(ebs, call, child.snapshot_id, 3000, bytes(BLOCK_SIZE))  # beyond the parent's size
    with pytest.raises(EbsValidation):
        ebs.complete_snapshot(call, child.snapshot_id, 1)  # two blocks were written
    texts = base64.b64encode(
        hashlib.sha256(
            (
                base64.b64encode(digest).decode()
                + base64.b64encode(hashlib.sha256(bytes(BLOCK_SIZE)).digest()).decode()
            ).encode()
        ).digest()
    ).decode()
    ebs.complete_snapshot(call, child.snapshot_id, 2, texts, "SHA256", "LINEAR")

    listing = ebs.list_changed_blocks(call, child.snapshot_id, first_snapshot_id=parent.snapshot_id)
    assert [b["BlockIndex"] for b in listing["ChangedBlocks"]] == [5, 3000]
    assert "FirstBlockToken" not in listing["ChangedBlocks"][1]
    all_blocks = ebs.list_snapshot_blocks(call, child.snapshot_id)["Blocks"]
    assert [b["BlockIndex"] for b in all_blocks] == [0, 5, 6, 3000]
    tokens = {b["BlockIndex"]: b["BlockToken"] for b in all_blocks}
    data, checksum = ebs.get_snapshot_block(call, child.snapshot_id, 0, tokens[0])
    assert data == blocks[0]
    assert checksum == base64.b64encode(hashlib.sha256(blocks[0]).digest()).decode()
    assert ebs.get_snapshot_block(call, child.snapshot_id, 5, tokens[5])[0] == new5
    with pytest.raises(EbsValidation) as bad_token:
        ebs.get_snapshot_block(call, child.snapshot_id, 6, tokens[5])
    assert bad_token.value.reason == "INVALID_BLOCK_TOKEN"


def test_direct_api_validation(rt: Runtime, ebs: EbsService, clock: ManualClock) -> None:
    call = root_call("StartSnapshot")
    snap = ebs.start_snapshot(call, volume_size=1, timeout=10)
    data = os.urandom(BLOCK_SIZE)
    with pytest.raises(EbsValidation):  # wrong checksum
        ebs.put_snapshot_block(
            call, snap.snapshot_id, 0, data, data_length=BLOCK_SIZE,
            checksum=base64.b64encode(b"x" * 32).decode(), checksum_algorithm="SHA256",
        )  # fmt: skip
    with pytest.raises(EbsValidation) as outside:
        _put(ebs, call, snap.snapshot_id, 2048, data)
    assert outside.value.reason == "INVALID_BLOCK"
    with pytest.raises(EbsValidation):
        _put(ebs, call, snap.snapshot_id, 0, data[:1000])
    _put(ebs, call, snap.snapshot_id, 0, data)
    _put(ebs, call, snap.snapshot_id, 0, data)  # rewriting an index replaces the block
    assert len(ebs.block_store.block_ids()) == 1
    with pytest.raises(EbsValidation):
        ebs.complete_snapshot(call, snap.snapshot_id, 1, "AAAA", "SHA256", "LINEAR")
    with pytest.raises(EbsValidation):  # a pending snapshot cannot be read
        ebs.list_snapshot_blocks(call, snap.snapshot_id)
    clock.advance(timedelta(minutes=11))
    assert ebs.expire_pending() == 1
    with pytest.raises(EbsValidation):
        _put(ebs, call, snap.snapshot_id, 1, data)
    [described], _ = ebs.describe_snapshots(root_call("DescribeSnapshots"))
    assert described.state == "error"

    with pytest.raises(EbsValidation):
        ebs.start_snapshot(call, volume_size=1, parent_snapshot_id=snap.snapshot_id, encrypted=True)
    with pytest.raises(EbsValidation) as size:
        ebs.start_snapshot(call, volume_size=70000)
    assert size.value.reason == "INVALID_VOLUME_SIZE"
    with pytest.raises(EbsValidation):
        ebs.start_snapshot(call, volume_size=1, kms_key_arn=_key(rt))  # without Encrypted


def test_start_snapshot_encryption_outcomes(rt: Runtime, ebs: EbsService) -> None:
    call = root_call("StartSnapshot")
    plain = ebs.start_snapshot(call, volume_size=1)
    ebs.complete_snapshot(call, plain.snapshot_id, 0)
    assert not plain.keying.encrypted
    key = _key(rt)
    enc = ebs.start_snapshot(call, volume_size=1, encrypted=True, kms_key_arn=key)
    assert enc.keying.kms_key_arn == key
    ebs.complete_snapshot(call, enc.snapshot_id, 0)
    child = ebs.start_snapshot(call, volume_size=1, parent_snapshot_id=enc.snapshot_id)
    assert child.keying.kms_key_arn == key
    with pytest.raises(EbsValidation):
        ebs.start_snapshot(
            call, volume_size=1, parent_snapshot_id=enc.snapshot_id, kms_key_arn=_key(rt)
        )
    ebs.set_encryption_by_default(root_call("EnableEbsEncryptionByDefault"), True)
    assert ebs.start_snapshot(call, volume_size=1).keying.kms_key_arn == _managed_arn(rt)
    with pytest.raises(EbsValidation):  # an unencrypted parent under encryption by default
        ebs.start_snapshot(call, volume_size=1, parent_snapshot_id=plain.snapshot_id)


def test_start_snapshot_is_idempotent_by_client_token(ebs: EbsService) -> None:
    call = root_call("StartSnapshot")
    first = ebs.start_snapshot(call, volume_size=1, client_token="tok-1")
    again = ebs.start_snapshot(call, volume_size=1, client_token="tok-1")
    assert again.snapshot_id == first.snapshot_id
    with pytest.raises(EbsConflict):
        ebs.start_snapshot(call, volume_size=2, client_token="tok-1")


# -- the springboard, in process ---------------------------------------------------------------


def test_springboard_256_mib_plaintext_to_encrypted(rt: Runtime, ebs: EbsService) -> None:
    """A plaintext volume filled with 256 MiB of random data, a snapshot, CopySnapshot
    with Encrypted=true and a customer key, a new volume from the copy, attached and read
    back byte-identical (through the VolumeDevice the NBD server exports)."""
    size = 256 * 1024 * 1024
    chunk = 8 * 1024 * 1024
    seed = os.urandom(32)

    def piece(i: int) -> bytes:
        return hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(chunk)

    source = ebs.create_volume(root_call("CreateVolume"), size=1, availability_zone=AZ)
    assert not source.keying.encrypted
    ebs.attach_volume(root_call("AttachVolume"), source.volume_id, INSTANCE, "/dev/sdf")
    device = ebs.export(source.volume_id)
    assert device is not None
    for i in range(size // chunk):
        device.write(i * chunk, piece(i))
    device.flush()
    snap = ebs.create_snapshot(root_call("CreateSnapshot"), source.volume_id)
    key = _key(rt)
    copy = ebs.copy_snapshot(
        root_call("CopySnapshot"),
        source_region="us-east-1",
        source_snapshot_id=snap.snapshot_id,
        encrypted=True,
        kms_key_id=key,
    )
    assert copy.keying.encrypted and copy.keying.kms_key_arn == key
    target = ebs.create_volume(
        root_call("CreateVolume"), snapshot_id=copy.snapshot_id, availability_zone=AZ
    )
    assert target.keying.encrypted and target.keying.kms_key_arn == key
    ebs.attach_volume(
        root_call("AttachVolume"), target.volume_id, "i-0000000000000000f", "/dev/sdg"
    )
    restored = ebs.export(target.volume_id)
    assert restored is not None
    for i in range(size // chunk):
        assert restored.read(i * chunk, chunk) == piece(i), f"chunk {i} differs"
    assert restored.read(size, 4096) == bytes(4096)  # beyond what was written


def test_put_block_rewrite_frees_the_first_and_complete_makes_blocks_durable(
    rt: Runtime, ebs: EbsService
) -> None:
    call = root_call("StartSnapshot")
    snap = ebs.start_snapshot(call, volume_size=1)
    first = os.urandom(BLOCK_SIZE)
    _put(ebs, call, snap.snapshot_id, 7, first)
    with rt.db.read() as conn:
        first_id = ebs_repo.snapshot_block(conn, snap.snapshot_id, 7)
    assert first_id is not None
    second = os.urandom(BLOCK_SIZE)
    digest = _put(ebs, call, snap.snapshot_id, 7, second)  # rewritten: the first is freed
    with rt.db.read() as conn:
        ref = ebs_repo.snapshot_block(conn, snap.snapshot_id, 7)
        assert ref is not None and ref.block_id != first_id.block_id and ref.written
        assert ebs_repo.get_block(conn, first_id.block_id) is None
        assert ebs_repo.get_block(conn, ref.block_id) is not None
    assert first_id.block_id not in ebs.block_store.block_ids()

    # A block lost before CompleteSnapshot (an OS crash: PutSnapshotBlock does not
    # fsync) fails the completion instead of completing a snapshot that cannot be read.
    path = ebs.block_store._blobs.path(ref.block_id)
    saved = path.read_bytes()
    path.write_bytes(b"")
    linear = base64.b64encode(hashlib.sha256(digest).digest()).decode()
    with pytest.raises(EbsValidation) as lost:
        ebs.complete_snapshot(call, snap.snapshot_id, 1, linear, "SHA256", "LINEAR")
    assert "lost" in lost.value.message
    path.write_bytes(saved)
    assert ebs.complete_snapshot(call, snap.snapshot_id, 1, linear, "SHA256", "LINEAR") == (
        "completed"
    )
    token = ebs.list_snapshot_blocks(call, snap.snapshot_id)["Blocks"][0]["BlockToken"]
    assert ebs.get_snapshot_block(call, snap.snapshot_id, 7, token)[0] == second


def test_put_block_checks_the_checksum_against_a_precomputed_digest(ebs: EbsService) -> None:
    call = root_call("StartSnapshot")
    snap = ebs.start_snapshot(call, volume_size=1)
    data = os.urandom(BLOCK_SIZE)
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    kwargs = {"data_length": BLOCK_SIZE, "checksum": checksum, "checksum_algorithm": "SHA256"}
    with pytest.raises(EbsValidation):  # the body's (verified) hash is not the checksum's
        ebs.put_snapshot_block(call, snap.snapshot_id, 0, data, verified_sha256=bytes(32), **kwargs)
    assert (
        ebs.put_snapshot_block(
            call, snap.snapshot_id, 0, data, verified_sha256=hashlib.sha256(data).digest(), **kwargs
        )
        == checksum
    )
