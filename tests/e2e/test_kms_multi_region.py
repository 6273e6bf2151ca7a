"""Multi-Region keys: one key id and the same material in several regions."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess


def code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_replicas_decrypt_each_others_ciphertexts(server: ServerProcess) -> None:
    east = server.client(region="us-east-2")
    west = server.client(region="us-west-2")
    primary = east.create_key(MultiRegion=True, Description="mrk")["KeyMetadata"]
    assert primary["KeyId"].startswith("mrk-") and primary["MultiRegion"] is True
    config = primary["MultiRegionConfiguration"]
    assert config["MultiRegionKeyType"] == "PRIMARY" and config["ReplicaKeys"] == []

    replica = east.replicate_key(
        KeyId=primary["KeyId"], ReplicaRegion="us-west-2", Description="west copy",
        Tags=[{"TagKey": "site", "TagValue": "west"}],
    )  # fmt: skip
    meta = replica["ReplicaKeyMetadata"]
    assert meta["KeyId"] == primary["KeyId"]
    assert meta["Arn"].startswith("arn:aws:kms:us-west-2:")
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert meta["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == "us-east-2"
    assert replica["ReplicaTags"] == [{"TagKey": "site", "TagValue": "west"}]
    assert east.describe_key(KeyId=primary["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"][
        "ReplicaKeys"
    ] == [{"Arn": meta["Arn"], "Region": "us-west-2"}]

    blob = east.encrypt(KeyId=primary["KeyId"], Plaintext=b"made in east")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made in east"
    back = west.encrypt(KeyId=meta["Arn"], Plaintext=b"made in west")["CiphertextBlob"]
    assert east.decrypt(CiphertextBlob=back)["Plaintext"] == b"made in west"

    # Rotation happens on the primary and reaches the replica.
    with pytest.raises(ClientError) as err:
        west.rotate_key_on_demand(KeyId=primary["KeyId"])
    assert code(err) == "UnsupportedOperationException"
    east.rotate_key_on_demand(KeyId=primary["KeyId"])
    rotated = east.encrypt(KeyId=primary["KeyId"], Plaintext=b"v2")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=rotated)["Plaintext"] == b"v2"
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made in east"

    with pytest.raises(ClientError) as err:
        east.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")
    assert code(err) == "AlreadyExistsException"
    single = east.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        east.replicate_key(KeyId=single, ReplicaRegion="us-west-2")
    assert code(err) == "UnsupportedOperationException"


def test_primary_region_moves_and_deletion_waits_for_replicas(server: ServerProcess) -> None:
    east = server.client(region="ca-central-1")
    west = server.client(region="sa-east-1")
    key_id = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    east.replicate_key(KeyId=key_id, ReplicaRegion="sa-east-1")

    east.update_primary_region(KeyId=key_id, PrimaryRegion="sa-east-1")
    assert (
        west.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
            "MultiRegionKeyType"
        ]
        == "PRIMARY"
    )
    assert (
        east.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
            "MultiRegionKeyType"
        ]
        == "REPLICA"
    )
    with pytest.raises(ClientError) as err:
        east.update_primary_region(KeyId=key_id, PrimaryRegion="eu-north-1")
    assert code(err) == "NotFoundException"

    # The primary (now in sa-east-1) cannot go before its replica.
    scheduled = west.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingReplicaDeletion"
    assert "DeletionDate" not in scheduled
    with pytest.raises(ClientError) as err:
        west.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(err) == "KMSInvalidStateException"
    west.cancel_key_deletion(KeyId=key_id)
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    replica_deletion = east.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert replica_deletion["KeyState"] == "PendingDeletion"
