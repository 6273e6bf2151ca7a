"""What survives a restart, what happens at start, and what lies on disk."""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from sealbox.crypto import random_bytes
from tests.support.server import ServerProcess

ServerFactory = Callable[..., ServerProcess]
DAY = 24 * 3600


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_restart_keeps_keys_versions_aliases_tags_rotation_and_deletion(
    make_server: ServerFactory,
) -> None:
    srv = make_server()
    kms = srv.client()
    key = kms.create_key(Description="survivor", Tags=[{"TagKey": "team", "TagValue": "x"}])
    key_id = key["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/survivor", TargetKeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    before = kms.encrypt(KeyId=key_id, Plaintext=b"v1", EncryptionContext={"k": "v"})
    kms.rotate_key_on_demand(KeyId=key_id)
    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    deletion = kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=9)
    status_before = kms.get_key_rotation_status(KeyId=key_id)

    srv.restart()
    kms = srv.client()

    meta = kms.describe_key(KeyId="alias/survivor")["KeyMetadata"]
    assert meta["KeyId"] == key_id and meta["Description"] == "survivor"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "x"}]
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["RotationPeriodInDays"] == 180
    assert status["NextRotationDate"] == status_before["NextRotationDate"]
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]] == [
        "ON_DEMAND"
    ]
    plain = kms.decrypt(CiphertextBlob=before["CiphertextBlob"], EncryptionContext={"k": "v"})
    assert plain["Plaintext"] == b"v1"
    doomed_meta = kms.describe_key(KeyId=doomed)["KeyMetadata"]
    assert doomed_meta["KeyState"] == "PendingDeletion"
    assert doomed_meta["DeletionDate"] == deletion["DeletionDate"]


def test_a_deletion_window_that_ended_while_down_is_acted_on_at_start(
    make_server: ServerFactory,
) -> None:
    srv = make_server()
    kms = srv.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"gone soon")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    survivor = kms.create_key()["KeyMetadata"]["KeyId"]

    # Come back eight days later (the service clock is shifted; SigV4 uses real time).
    srv.restart(extra_env={"SEALBOX_CLOCK_OFFSET_SECONDS": str(8 * DAY)})
    kms = srv.client()
    with pytest.raises(ClientError) as err:
        kms.describe_key(KeyId=key_id)
    assert error_code(err) == "NotFoundException"
    with pytest.raises(ClientError) as err:
        kms.decrypt(CiphertextBlob=blob)
    assert error_code(err) == "NotFoundException"
    assert kms.describe_key(KeyId=survivor)["KeyMetadata"]["KeyState"] == "Enabled"


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_data_directory_holds_no_plaintext_or_data_keys(make_server: ServerFactory) -> None:
    srv = make_server()
    kms = srv.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    canary = b"CANARY-" + random_bytes(24).hex().encode()
    secrets = [canary]
    for _ in range(20):
        kms.encrypt(KeyId=key_id, Plaintext=canary, EncryptionContext={"c": "1"})
        secrets.append(kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"])
        secrets.append(kms.generate_random(NumberOfBytes=32)["Plaintext"])
    kms.rotate_key_on_demand(KeyId=key_id)
    srv.stop()  # checkpoint the WAL so everything is in the files we scan
    blobs = {p: p.read_bytes() for p in _all_files(srv.data_dir)}
    assert any(p.name == "sealbox.db" for p in blobs)
    for path, content in blobs.items():
        for secret in secrets:
            assert secret not in content, f"a plaintext secret was found in {path}"
            assert secret.hex().encode() not in content, f"hex secret found in {path}"


def test_generated_root_credentials_are_shown_once_and_saved_privately(
    make_server: ServerFactory,
) -> None:
    srv = make_server(credentials=False, env={"SEALBOX_ACCOUNT_ID": "123456789012"})
    path = srv.data_dir / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parser = configparser.ConfigParser()
    parser.read(path)
    key_id = parser["sealbox"]["aws_access_key_id"]
    secret = parser["sealbox"]["aws_secret_access_key"]
    assert key_id in srv.log() and secret in srv.log()  # printed once on first start

    sts_free = boto3.client(
        "kms",
        endpoint_url=srv.url,
        region_name="eu-central-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    arn = sts_free.create_key()["KeyMetadata"]["Arn"]
    assert arn.startswith("arn:aws:kms:eu-central-1:123456789012:key/")

    log_size = len(srv.log_path.read_bytes())
    srv.restart()
    assert secret not in srv.log_path.read_bytes()[log_size:].decode(errors="replace")


def test_passphrase_protected_root_key(make_server: ServerFactory) -> None:
    srv = make_server(env={"SEALBOX_MASTER_PASSPHRASE": "a long passphrase"})
    kms = srv.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert b'"protection": "scrypt"' in (srv.data_dir / "root-key.json").read_bytes()

    srv.stop()
    srv.extra_env = {"SEALBOX_MASTER_PASSPHRASE": "wrong"}
    with pytest.raises(RuntimeError, match="wrong SEALBOX_MASTER_PASSPHRASE"):
        srv.start(timeout=30)
    srv.restart(extra_env={"SEALBOX_MASTER_PASSPHRASE": "a long passphrase"})
    assert srv.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_https_with_a_self_signed_certificate(make_server: ServerFactory) -> None:
    srv = make_server(args=["--tls-self-signed"], workers=1)
    assert srv.url.startswith("https://")
    key_id = srv.client().create_key()["KeyMetadata"]["KeyId"]
    assert srv.client().describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True
    assert stat.S_IMODE(os.stat(srv.data_dir / "tls-key.pem").st_mode) == 0o600


def test_health_and_metrics(server: ServerProcess, kms: object) -> None:
    import urllib.request

    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    server.client().encrypt(KeyId=key_id, Plaintext=b"m")
    with urllib.request.urlopen(f"{server.url}/_sealbox/health") as r:  # noqa: S310
        assert r.status == 200
    with urllib.request.urlopen(f"{server.url}/_sealbox/metrics") as r:  # noqa: S310
        text = r.read().decode()
    assert 'sealbox_requests_total{operation="Encrypt",outcome="ok",service="kms"}' in text
    assert "sealbox_request_duration_seconds_bucket" in text
    assert "sealbox_kms_internal_operations_total" in text


def test_every_call_is_audited_without_secrets(make_server: ServerFactory) -> None:
    import json
    import sqlite3

    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    srv = make_server()
    kms = srv.client()
    key = kms.create_key()["KeyMetadata"]
    secret = b"AUDIT-CANARY-" + random_bytes(8).hex().encode()
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=secret, EncryptionContext={"app": "a"})
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"]
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob["CiphertextBlob"])  # missing context
    # A signed request whose body is not JSON is still an audited call.
    req = AWSRequest(
        method="POST",
        url=srv.url + "/",
        data=b"{not json",
        headers={
            "X-Amz-Target": "TrentService.Encrypt",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "kms", REGION).add_auth(req)
    resp = requests.post(req.url, data=req.body, headers=dict(req.headers), timeout=10)
    assert resp.status_code == 400
    srv.stop()

    db = sqlite3.connect(srv.data_dir / "sealbox.db")
    rows = db.execute("SELECT record FROM audit_events ORDER BY seq").fetchall()
    db.close()
    records = [json.loads(r[0]) for r in rows]
    names = [(r["eventName"], r.get("errorCode")) for r in records]
    assert names == [
        ("CreateKey", None),
        ("Encrypt", None),
        ("GenerateDataKey", None),
        ("Decrypt", "InvalidCiphertextException"),
        ("Encrypt", "SerializationException"),
    ]
    encrypt = records[1]
    assert encrypt["eventSource"] == "kms.amazonaws.com"
    assert encrypt["awsRegion"] == REGION
    assert encrypt["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in encrypt["userAgent"] or "Botocore" in encrypt["userAgent"]
    assert encrypt["userIdentity"]["accessKeyId"] == ACCESS_KEY_ID
    assert encrypt["userIdentity"]["type"] == "Root"
    assert encrypt["requestParameters"] == {
        "keyId": key["KeyId"],
        "encryptionContext": {"app": "a"},
    }
    assert encrypt["resources"][0]["ARN"] == key["Arn"]
    everything = json.dumps(records).encode()
    for forbidden in (secret, base64_of(secret), base64_of(data_key), SECRET_ACCESS_KEY.encode()):
        assert forbidden not in everything


def base64_of(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)
