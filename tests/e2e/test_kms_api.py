"""End-to-end tests of the KMS API: boto3 against a real `sealbox serve` (2 workers).

AWS KMS's documented behaviour is the specification: parameters, defaults, error codes
and HTTP statuses are asserted as a user of the AWS SDK sees them. The server is shared
by the whole session, so every test creates its own keys (and aliases with unique
names); tests that need an exact listing use a region no other test writes to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerProcess

Params = dict[str, Any]

PLAINTEXT = b"sealbox end-to-end plaintext \x00\x01\xff"
CONTEXT = {"purpose": "e2e", "tenant": "alpha"}
ONE_DAY = timedelta(days=1)
RSA_ALGORITHM = "RSAES_OAEP_SHA_256"


# ------------------------------------------------------------------------------ helpers


def expect_error(
    call: Callable[..., Any], code: str, status: int = 400, **params: Any
) -> dict[str, str]:
    """Call an SDK method, assert it fails with `code` and HTTP `status`, return the error."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["Error"]
    error: dict[str, str] = response["Error"]
    return error


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def pages(call: Callable[..., Params], **params: Any) -> list[Params]:
    """Every page of a listing, following NextMarker; Truncated must agree with NextMarker."""
    result: list[Params] = []
    marker: str | None = None
    while True:
        page = call(**params, **({"Marker": marker} if marker else {}))
        result.append(page)
        assert page["Truncated"] is ("NextMarker" in page), page
        if not page["Truncated"]:
            return result
        marker = page["NextMarker"]


def list_all(call: Callable[..., Params], member: str, **params: Any) -> list[Params]:
    return [item for page in pages(call, **params) for item in page[member]]


def assert_near(when: datetime, expected: datetime, slack: timedelta = ONE_DAY) -> None:
    assert abs(when - expected) <= slack, (when, expected)


def flip(blob: bytes, position: int) -> bytes:
    """The blob with the top bit of one byte inverted."""
    data = bytearray(blob)
    data[position] ^= 0x80
    return bytes(data)


def signed_request(
    server: ServerProcess,
    body: bytes,
    target: str | None = "TrentService.ListKeys",
    *,
    access_key_id: str = ACCESS_KEY_ID,
    secret_access_key: str = SECRET_ACCESS_KEY,
    sign: bool = True,
) -> requests.Response:
    """POST a raw JSON 1.1 body, SigV4-signed for kms/us-east-1 unless sign is False."""
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=f"{server.url}/", data=body, headers=headers)
    if sign:
        credentials = Credentials(access_key_id, secret_access_key)
        SigV4Auth(credentials, "kms", REGION).add_auth(request)
    return requests.post(request.url, data=body, headers=dict(request.headers), timeout=10)


def assert_wire_error(response: requests.Response, code: str, status: int = 400) -> str:
    """Assert a raw JSON 1.1 error response; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["__type"].rsplit("#", 1)[-1] == code, body
    message: str = body.get("message") or body.get("Message") or ""
    return message


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def raw(server: ServerProcess) -> Any:
    """A client without botocore's parameter validation: the server must validate."""
    return server.client("kms", parameter_validation=False)


@pytest.fixture(scope="module")
def account(kms: Any) -> str:
    account_id: str = kms.create_key(Description="account probe")["KeyMetadata"]["AWSAccountId"]
    return account_id


@pytest.fixture
def new_key(kms: Any) -> Callable[..., Params]:
    """Create a key in us-east-1 and return its KeyMetadata."""

    def make(**params: Any) -> Params:
        metadata: Params = kms.create_key(**params)["KeyMetadata"]
        return metadata

    return make


@pytest.fixture
def key(new_key: Callable[..., Params]) -> Params:
    return new_key(Description="e2e key")


@pytest.fixture
def other_key(new_key: Callable[..., Params]) -> Params:
    return new_key(Description="e2e other key")


@pytest.fixture
def alias(kms: Any, key: Params) -> str:
    """An alias (name) that points at `key`."""
    name = f"alias/{unique('e2e')}"
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    return name


@pytest.fixture
def blob(kms: Any, key: Params) -> bytes:
    """PLAINTEXT encrypted under `key` with CONTEXT."""
    ciphertext: bytes = kms.encrypt(
        KeyId=key["KeyId"], Plaintext=PLAINTEXT, EncryptionContext=CONTEXT
    )["CiphertextBlob"]
    return ciphertext


# Operations that need a usable key, each called on the key with a ciphertext made under it.
CryptoOp = Callable[[Any, str, bytes], Any]
CRYPTO_OPS: dict[str, CryptoOp] = {
    "Encrypt": lambda c, k, b: c.encrypt(KeyId=k, Plaintext=PLAINTEXT),
    "Decrypt": lambda c, k, b: c.decrypt(CiphertextBlob=b, EncryptionContext=CONTEXT),
    "ReEncrypt": lambda c, k, b: c.re_encrypt(
        CiphertextBlob=b, SourceEncryptionContext=CONTEXT, DestinationKeyId=k
    ),
    "GenerateDataKey": lambda c, k, b: c.generate_data_key(KeyId=k, KeySpec="AES_256"),
    "GenerateDataKeyWithoutPlaintext": lambda c, k, b: c.generate_data_key_without_plaintext(
        KeyId=k, NumberOfBytes=32
    ),
}


def expect_op_error(
    kms: Any, name: str, key_id: str, ciphertext: bytes, code: str, status: int = 400, **extra: Any
) -> None:
    """Assert CRYPTO_OPS[name] fails with code/status; `extra` is added to the call (DryRun)."""
    expect_error(lambda: CRYPTO_OPS[name](_WithExtra(kms, extra), key_id, ciphertext), code, status)


class _WithExtra:
    """Adds fixed keyword arguments to every SDK method called through it."""

    def __init__(self, client: Any, extra: Params) -> None:
        self._client = client
        self._extra = extra

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda **params: method(**params, **self._extra)


# ============================================================ CreateKey / DescribeKey


def test_create_key_defaults(key: Params, account: str) -> None:
    assert key["Arn"] == f"arn:aws:kms:{REGION}:{account}:key/{key['KeyId']}"
    assert key["AWSAccountId"] == account
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert key["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert key["KeyManager"] == "CUSTOMER"
    assert key["KeyState"] == "Enabled"
    assert key["Enabled"] is True
    assert key["Origin"] == "AWS_KMS"
    assert key["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert key["MultiRegion"] is False
    assert key["Description"] == "e2e key"
    assert "DeletionDate" not in key
    assert_near(key["CreationDate"], datetime.now(UTC), timedelta(minutes=5))


def test_create_key_description_tags_and_policy_round_trip(
    kms: Any, new_key: Callable[..., Params], account: str
) -> None:
    policy = {
        "Version": "2012-10-17",
        "Id": "custom",
        "Statement": [
            {
                "Sid": "Root",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    tags = [{"TagKey": "team", "TagValue": "crypto"}, {"TagKey": "env", "TagValue": ""}]
    key = new_key(Description="with extras", Tags=tags, Policy=json.dumps(policy))
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert described["Description"] == "with extras"
    listed = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
    assert sorted(listed, key=lambda t: t["TagKey"]) == sorted(tags, key=lambda t: t["TagKey"])
    got = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    assert json.loads(got["Policy"]) == policy


MALFORMED_POLICIES = {
    "not-json": "this is not a policy",
    "not-an-object": '["Statement"]',
    "no-statement": '{"Version": "2012-10-17"}',
    "bad-effect": json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}
            ],
        }
    ),
    "no-principal": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*"}]}
    ),
}


@pytest.mark.parametrize("policy", MALFORMED_POLICIES.values(), ids=MALFORMED_POLICIES.keys())
def test_create_key_rejects_malformed_policy(kms: Any, policy: str) -> None:
    expect_error(kms.create_key, "MalformedPolicyDocumentException", Policy=policy)


SYMMETRIC = "SYMMETRIC_DEFAULT"
INVALID = "ValidationException"
NOT_BUILT = "UnsupportedOperationException"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param({"KeySpec": SYMMETRIC, "KeyUsage": "SIGN_VERIFY"}, INVALID, id="sym-sign"),
        pytest.param(
            {"KeySpec": SYMMETRIC, "KeyUsage": "GENERATE_VERIFY_MAC"}, INVALID, id="sym-mac"
        ),
        pytest.param({"KeyUsage": "SIGN_VERIFY"}, INVALID, id="usage-without-spec"),
        pytest.param({"KeySpec": "NOT_A_SPEC"}, INVALID, id="unknown-spec"),
        pytest.param(
            {"KeySpec": SYMMETRIC, "CustomerMasterKeySpec": "RSA_2048"}, INVALID, id="specs-differ"
        ),
        pytest.param({"KeySpec": "RSA_2048"}, INVALID, id="rsa-without-usage"),
        pytest.param(
            {"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"}, INVALID, id="hmac-encrypt"
        ),
        pytest.param(
            {"KeySpec": "ECC_NIST_P256", "KeyUsage": "ENCRYPT_DECRYPT"}, INVALID, id="ecc-encrypt"
        ),
        pytest.param(
            {"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "KEY_AGREEMENT"}, INVALID, id="k1-ecdh"
        ),
        pytest.param({"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"}, NOT_BUILT, id="sm2"),
    ],
)
def test_create_key_rejects_unsupported_spec_and_usage(raw: Any, params: Params, code: str) -> None:
    expect_error(raw.create_key, code, **params)


@pytest.mark.parametrize("form", ["key-id", "key-arn", "alias-name", "alias-arn"])
def test_describe_key_by_every_identifier(
    kms: Any, key: Params, alias: str, account: str, form: str
) -> None:
    identifier = {
        "key-id": key["KeyId"],
        "key-arn": key["Arn"],
        "alias-name": alias,
        "alias-arn": f"arn:aws:kms:{REGION}:{account}:{alias}",
    }[form]
    described = kms.describe_key(KeyId=identifier)["KeyMetadata"]
    assert (described["KeyId"], described["Arn"]) == (key["KeyId"], key["Arn"])


@pytest.mark.parametrize("form", ["key-id", "key-arn", "alias-name", "alias-arn"])
def test_describe_unknown_key_is_not_found(kms: Any, account: str, form: str) -> None:
    identifier = {
        "key-id": str(uuid.uuid4()),
        "key-arn": f"arn:aws:kms:{REGION}:{account}:key/{uuid.uuid4()}",
        "alias-name": f"alias/{unique('missing')}",
        "alias-arn": f"arn:aws:kms:{REGION}:{account}:alias/{unique('missing')}",
    }[form]
    expect_error(kms.describe_key, "NotFoundException", KeyId=identifier)


def test_list_keys_paginates_with_limit_and_marker(server: ServerProcess) -> None:
    client = server.client("kms", region="eu-west-3")
    created = {client.create_key()["KeyMetadata"]["Arn"] for _ in range(5)}
    listing = pages(client.list_keys, Limit=2)
    assert [len(p["Keys"]) for p in listing] == [2, 2, 1]
    assert [p["Truncated"] for p in listing] == [True, True, False]
    listed = [k["KeyArn"] for p in listing for k in p["Keys"]]
    assert len(listed) == len(set(listed)) and set(listed) == created
    assert all(k["KeyArn"].endswith(f":key/{k['KeyId']}") for p in listing for k in p["Keys"])


def test_keys_are_invisible_from_another_region(server: ServerProcess, kms: Any) -> None:
    local = server.client("kms", region="ap-northeast-3")
    created = local.create_key()["KeyMetadata"]
    assert created["Arn"].startswith("arn:aws:kms:ap-northeast-3:")
    assert created["KeyId"] in {k["KeyId"] for k in list_all(local.list_keys, "Keys")}
    assert created["KeyId"] not in {k["KeyId"] for k in list_all(kms.list_keys, "Keys")}
    expect_error(kms.describe_key, "NotFoundException", KeyId=created["KeyId"])
    expect_error(kms.encrypt, "NotFoundException", KeyId=created["KeyId"], Plaintext=b"x")


# ===================================================== Enable / Disable / Description / Tags


def test_disable_and_enable_key_state(kms: Any, key: Params) -> None:
    kms.disable_key(KeyId=key["KeyId"])
    disabled = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (disabled["KeyState"], disabled["Enabled"]) == ("Disabled", False)
    kms.enable_key(KeyId=key["KeyId"])
    enabled = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (enabled["KeyState"], enabled["Enabled"]) == ("Enabled", True)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"ok")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"ok"


@pytest.mark.parametrize("operation", CRYPTO_OPS)
def test_disabled_key_refuses_cryptographic_operations(
    kms: Any, key: Params, blob: bytes, operation: str
) -> None:
    kms.disable_key(KeyId=key["KeyId"])
    expect_op_error(kms, operation, key["KeyId"], blob, "DisabledException")


def test_update_key_description(kms: Any, key: Params) -> None:
    kms.update_key_description(KeyId=key["KeyId"], Description="renamed")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "renamed"
    kms.update_key_description(KeyId=key["KeyId"], Description="")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == ""


def test_tag_untag_and_list_resource_tags(kms: Any, key: Params) -> None:
    def tags() -> dict[str, str]:
        listing = kms.list_resource_tags(KeyId=key["KeyId"])
        assert listing["Truncated"] is False
        return {t["TagKey"]: t["TagValue"] for t in listing["Tags"]}

    assert tags() == {}
    kms.tag_resource(
        KeyId=key["KeyId"],
        Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}],
    )
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "a", "TagValue": "changed"}])
    assert tags() == {"a": "changed", "b": "2"}
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["a", "never-set"])
    assert tags() == {"b": "2"}


def test_list_resource_tags_paginates(kms: Any, key: Params) -> None:
    wanted = {f"k{i:02d}": str(i) for i in range(7)}
    kms.tag_resource(
        KeyId=key["KeyId"], Tags=[{"TagKey": k, "TagValue": v} for k, v in wanted.items()]
    )
    listed = list_all(kms.list_resource_tags, "Tags", KeyId=key["KeyId"], Limit=3)
    assert {t["TagKey"]: t["TagValue"] for t in listed} == wanted
    assert len(listed) == len(wanted)


@pytest.mark.parametrize("where", ["CreateKey", "TagResource"])
def test_aws_prefixed_tag_keys_are_reserved(kms: Any, key: Params, where: str) -> None:
    tags = [{"TagKey": "aws:reserved", "TagValue": "x"}]
    if where == "CreateKey":
        expect_error(kms.create_key, "TagException", Tags=tags)
    else:
        expect_error(kms.tag_resource, "TagException", KeyId=key["KeyId"], Tags=tags)
        assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == []


# ================================================================================ Aliases


def aliases_named(entries: list[Params], prefix: str) -> dict[str, str]:
    return {a["AliasName"]: a["TargetKeyId"] for a in entries if a["AliasName"].startswith(prefix)}


def test_alias_lifecycle(kms: Any, key: Params, other_key: Params, account: str) -> None:
    prefix = f"alias/{unique('life')}"
    names = [f"{prefix}/one", f"{prefix}/two"]
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])

    by_key = list_all(kms.list_aliases, "Aliases", KeyId=key["KeyId"])
    assert sorted(a["AliasName"] for a in by_key) == names
    for entry in by_key:
        assert entry["TargetKeyId"] == key["KeyId"]
        assert entry["AliasArn"] == f"arn:aws:kms:{REGION}:{account}:{entry['AliasName']}"
        assert isinstance(entry["CreationDate"], datetime)
    everything = list_all(kms.list_aliases, "Aliases", Limit=1)
    assert aliases_named(everything, prefix) == dict.fromkeys(names, key["KeyId"])
    assert list_all(kms.list_aliases, "Aliases", KeyId=other_key["Arn"]) == []

    kms.delete_alias(AliasName=names[0])
    assert aliases_named(list_all(kms.list_aliases, "Aliases"), prefix) == {names[1]: key["KeyId"]}
    expect_error(kms.describe_key, "NotFoundException", KeyId=names[0])
    expect_error(kms.encrypt, "NotFoundException", KeyId=names[0], Plaintext=b"x")


def test_update_alias_retargets_encryption(kms: Any, alias: str, other_key: Params) -> None:
    kms.update_alias(AliasName=alias, TargetKeyId=other_key["KeyId"])
    encrypted = kms.encrypt(KeyId=alias, Plaintext=PLAINTEXT)
    assert encrypted["KeyId"] == other_key["Arn"]
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"])
    assert (decrypted["KeyId"], decrypted["Plaintext"]) == (other_key["Arn"], PLAINTEXT)
    listed = kms.list_aliases(KeyId=other_key["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("no-prefix-{}", "ValidationException"),
        ("alias/aws/{}", "NotAuthorizedException"),
        ("alias/has:colon-{}", "ValidationException"),
        ("alias/has space-{}", "ValidationException"),
    ],
    ids=["missing-alias-prefix", "reserved-aws-prefix", "colon", "space"],
)
def test_alias_naming_rules(raw: Any, key: Params, name: str, code: str) -> None:
    bad = name.format(uuid.uuid4().hex[:8])
    expect_error(raw.create_alias, code, AliasName=bad, TargetKeyId=key["KeyId"])
    assert raw.list_aliases(KeyId=key["KeyId"])["Aliases"] == []


def test_create_existing_alias_already_exists(kms: Any, alias: str, other_key: Params) -> None:
    expect_error(
        kms.create_alias, "AlreadyExistsException", AliasName=alias, TargetKeyId=other_key["KeyId"]
    )
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] != other_key["KeyId"]


@pytest.mark.parametrize("operation", ["delete_alias", "update_alias"])
def test_missing_alias_is_not_found(kms: Any, key: Params, operation: str) -> None:
    params = {"TargetKeyId": key["KeyId"]} if operation == "update_alias" else {}
    name = f"alias/{unique('missing')}"
    expect_error(getattr(kms, operation), "NotFoundException", AliasName=name, **params)


def test_create_alias_for_unknown_key_is_not_found(kms: Any) -> None:
    expect_error(
        kms.create_alias,
        "NotFoundException",
        AliasName=f"alias/{unique('orphan')}",
        TargetKeyId=str(uuid.uuid4()),
    )


# ========================================================================= Encrypt / Decrypt


@pytest.mark.parametrize("context", [None, CONTEXT], ids=["no-context", "context"])
def test_encrypt_decrypt_round_trip(kms: Any, key: Params, context: dict[str, str] | None) -> None:
    extra = {"EncryptionContext": context} if context else {}
    encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT, **extra)
    assert encrypted["KeyId"] == key["Arn"]
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert PLAINTEXT not in encrypted["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], **extra)
    assert decrypted["Plaintext"] == PLAINTEXT
    assert decrypted["KeyId"] == key["Arn"]
    assert decrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"


def test_encrypting_twice_gives_different_ciphertexts(kms: Any, key: Params) -> None:
    first = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT)["CiphertextBlob"]
    second = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT)["CiphertextBlob"]
    assert first != second


@pytest.mark.parametrize("form", ["key-id", "key-arn", "alias-name", "alias-arn"])
def test_decrypt_with_key_id_in_every_form(
    kms: Any, key: Params, alias: str, blob: bytes, account: str, form: str
) -> None:
    identifier = {
        "key-id": key["KeyId"],
        "key-arn": key["Arn"],
        "alias-name": alias,
        "alias-arn": f"arn:aws:kms:{REGION}:{account}:{alias}",
    }[form]
    decrypted = kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT, KeyId=identifier)
    assert decrypted["Plaintext"] == PLAINTEXT


def test_encryption_context_order_does_not_matter(kms: Any, blob: bytes) -> None:
    reordered = dict(reversed(list(CONTEXT.items())))
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=reordered)["Plaintext"] == PLAINTEXT


@pytest.mark.parametrize(
    "context",
    [
        None,
        {"purpose": "e2e"},
        {**CONTEXT, "tenant": "beta"},
        {**CONTEXT, "extra": "pair"},
        {"PURPOSE": "e2e", "tenant": "alpha"},
    ],
    ids=["missing", "subset", "other-value", "extra-pair", "key-case"],
)
def test_decrypt_with_wrong_context_is_invalid_ciphertext(
    kms: Any, blob: bytes, context: dict[str, str] | None
) -> None:
    extra = {"EncryptionContext": context} if context is not None else {}
    expect_error(kms.decrypt, "InvalidCiphertextException", CiphertextBlob=blob, **extra)


def test_context_given_only_at_decrypt_is_invalid_ciphertext(kms: Any, key: Params) -> None:
    plain_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT)["CiphertextBlob"]
    expect_error(
        kms.decrypt,
        "InvalidCiphertextException",
        CiphertextBlob=plain_blob,
        EncryptionContext=CONTEXT,
    )


@pytest.mark.parametrize("position", [0, 1, 2, 3, 4, 12, 30, 42, 50, 70, -17, -2, -1])
def test_tampered_ciphertext_is_invalid(kms: Any, blob: bytes, position: int) -> None:
    expect_error(
        kms.decrypt,
        "InvalidCiphertextException",
        CiphertextBlob=flip(blob, position),
        EncryptionContext=CONTEXT,
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b[: len(b) // 2],
        lambda b: b"not a sealbox ciphertext blob at all, just some bytes",
        lambda b: b"\x00",
    ],
    ids=["truncated-by-one", "extended", "half", "garbage", "one-byte"],
)
def test_malformed_ciphertext_is_invalid(
    kms: Any, blob: bytes, mangle: Callable[[bytes], bytes]
) -> None:
    expect_error(
        kms.decrypt,
        "InvalidCiphertextException",
        CiphertextBlob=mangle(blob),
        EncryptionContext=CONTEXT,
    )


def test_ciphertext_from_another_region_is_invalid(server: ServerProcess, blob: bytes) -> None:
    """AWS answers InvalidCiphertextException when the blob's key is not in the region."""
    elsewhere = server.client("kms", region="ap-southeast-4")
    expect_error(
        elsewhere.decrypt,
        "InvalidCiphertextException",
        CiphertextBlob=blob,
        EncryptionContext=CONTEXT,
    )


def test_decrypt_with_another_keys_id_is_incorrect_key(
    kms: Any, blob: bytes, other_key: Params
) -> None:
    expect_error(
        kms.decrypt,
        "IncorrectKeyException",
        CiphertextBlob=blob,
        EncryptionContext=CONTEXT,
        KeyId=other_key["KeyId"],
    )


@pytest.mark.parametrize(
    ("size", "code"),
    [(1, None), (4096, None), (0, "ValidationException"), (4097, "ValidationException")],
)
def test_plaintext_size_limits(raw: Any, key: Params, size: int, code: str | None) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    if code is not None:
        expect_error(raw.encrypt, code, KeyId=key["KeyId"], Plaintext=plaintext)
        return
    blob = raw.encrypt(KeyId=key["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
    assert raw.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


def test_encrypt_unknown_key_is_not_found(kms: Any) -> None:
    expect_error(kms.encrypt, "NotFoundException", KeyId=str(uuid.uuid4()), Plaintext=b"x")


@pytest.mark.parametrize("operation", ["Encrypt", "Decrypt"])
def test_asymmetric_algorithm_on_symmetric_key_is_invalid_key_usage(
    kms: Any, key: Params, blob: bytes, operation: str
) -> None:
    if operation == "Encrypt":
        expect_error(
            kms.encrypt,
            "InvalidKeyUsageException",
            KeyId=key["KeyId"],
            Plaintext=PLAINTEXT,
            EncryptionAlgorithm=RSA_ALGORITHM,
        )
    else:
        expect_error(
            kms.decrypt,
            "InvalidKeyUsageException",
            CiphertextBlob=blob,
            EncryptionContext=CONTEXT,
            EncryptionAlgorithm=RSA_ALGORITHM,
        )


@pytest.mark.parametrize("operation", CRYPTO_OPS)
def test_dry_run_answers_412(kms: Any, key: Params, blob: bytes, operation: str) -> None:
    expect_op_error(
        kms, operation, key["KeyId"], blob, "DryRunOperationException", 412, DryRun=True
    )


def test_dry_run_reports_the_real_error_first(kms: Any, key: Params) -> None:
    kms.disable_key(KeyId=key["KeyId"])
    expect_error(kms.encrypt, "DisabledException", KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)


# ================================================================================ ReEncrypt


def test_re_encrypt_to_another_key_with_new_context(
    kms: Any, key: Params, other_key: Params, blob: bytes
) -> None:
    new_context = {"stage": "re-encrypted"}
    result = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=other_key["KeyId"],
        DestinationEncryptionContext=new_context,
    )
    assert result["SourceKeyId"] == key["Arn"]
    assert result["KeyId"] == other_key["Arn"]
    assert result["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert result["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    decrypted = kms.decrypt(CiphertextBlob=result["CiphertextBlob"], EncryptionContext=new_context)
    assert (decrypted["Plaintext"], decrypted["KeyId"]) == (PLAINTEXT, other_key["Arn"])
    expect_error(
        kms.decrypt,
        "InvalidCiphertextException",
        CiphertextBlob=result["CiphertextBlob"],
        EncryptionContext=CONTEXT,
    )


def test_re_encrypt_with_wrong_source_context_is_invalid(
    kms: Any, blob: bytes, other_key: Params
) -> None:
    expect_error(
        kms.re_encrypt,
        "InvalidCiphertextException",
        CiphertextBlob=blob,
        SourceEncryptionContext={"purpose": "other"},
        DestinationKeyId=other_key["KeyId"],
    )


def test_re_encrypt_with_wrong_source_key_is_incorrect_key(
    kms: Any, blob: bytes, other_key: Params
) -> None:
    expect_error(
        kms.re_encrypt,
        "IncorrectKeyException",
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        SourceKeyId=other_key["KeyId"],
        DestinationKeyId=other_key["KeyId"],
    )


# ======================================================================= Data keys and random


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"KeySpec": "AES_256"}, 32),
        ({"KeySpec": "AES_128"}, 16),
        ({"NumberOfBytes": 1}, 1),
        ({"NumberOfBytes": 64}, 64),
        ({"NumberOfBytes": 1024}, 1024),
    ],
    ids=["AES_256", "AES_128", "1-byte", "64-bytes", "1024-bytes"],
)
def test_generate_data_key_sizes(kms: Any, key: Params, params: Params, size: int) -> None:
    result = kms.generate_data_key(KeyId=key["KeyId"], EncryptionContext=CONTEXT, **params)
    assert result["KeyId"] == key["Arn"]
    assert len(result["Plaintext"]) == size
    decrypted = kms.decrypt(CiphertextBlob=result["CiphertextBlob"], EncryptionContext=CONTEXT)
    assert decrypted["Plaintext"] == result["Plaintext"]


@pytest.mark.parametrize(
    "params",
    [
        {"KeySpec": "AES_256", "NumberOfBytes": 32},
        {},
        {"NumberOfBytes": 0},
        {"NumberOfBytes": 1025},
        {"KeySpec": "AES_512"},
    ],
    ids=["both", "neither", "zero-bytes", "1025-bytes", "unknown-spec"],
)
@pytest.mark.parametrize("operation", ["generate_data_key", "generate_data_key_without_plaintext"])
def test_generate_data_key_validation(
    raw: Any, key: Params, params: Params, operation: str
) -> None:
    expect_error(getattr(raw, operation), "ValidationException", KeyId=key["KeyId"], **params)


def test_generate_data_key_without_plaintext(kms: Any, alias: str, key: Params) -> None:
    result = kms.generate_data_key_without_plaintext(
        KeyId=alias, KeySpec="AES_256", EncryptionContext=CONTEXT
    )
    assert "Plaintext" not in result
    assert result["KeyId"] == key["Arn"]
    decrypted = kms.decrypt(CiphertextBlob=result["CiphertextBlob"], EncryptionContext=CONTEXT)
    assert len(decrypted["Plaintext"]) == 32


def test_data_keys_are_fresh(kms: Any, key: Params) -> None:
    keys = {
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(3)
    }
    assert len(keys) == 3


@pytest.mark.parametrize("size", [1, 32, 1024])
def test_generate_random_lengths(kms: Any, size: int) -> None:
    first = kms.generate_random(NumberOfBytes=size)["Plaintext"]
    assert len(first) == size
    if size >= 32:
        assert kms.generate_random(NumberOfBytes=size)["Plaintext"] != first


@pytest.mark.parametrize("size", [0, 1025])
def test_generate_random_bounds(raw: Any, size: int) -> None:
    expect_error(raw.generate_random, "ValidationException", NumberOfBytes=size)


# ================================================================================== Rotation


def test_key_rotation_status_defaults_and_enable(kms: Any, key: Params) -> None:
    before = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert before["KeyRotationEnabled"] is False
    assert before["KeyId"] == key["Arn"]
    assert "RotationPeriodInDays" not in before and "NextRotationDate" not in before

    kms.enable_key_rotation(KeyId=key["KeyId"])
    after = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert after["KeyRotationEnabled"] is True
    assert after["KeyId"] == key["Arn"]
    assert after["RotationPeriodInDays"] == 365
    assert_near(after["NextRotationDate"], datetime.now(UTC) + timedelta(days=365))

    kms.disable_key_rotation(KeyId=key["KeyId"])
    disabled = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert disabled["KeyRotationEnabled"] is False
    assert "RotationPeriodInDays" not in disabled and "NextRotationDate" not in disabled


@pytest.mark.parametrize(
    ("period", "code"),
    [(90, None), (2560, None), (89, "ValidationException"), (2561, "ValidationException")],
)
def test_rotation_period_bounds(raw: Any, key: Params, period: int, code: str | None) -> None:
    if code is not None:
        expect_error(raw.enable_key_rotation, code, KeyId=key["KeyId"], RotationPeriodInDays=period)
        assert raw.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
        return
    raw.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=period)
    status = raw.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["RotationPeriodInDays"] == period
    assert_near(status["NextRotationDate"], datetime.now(UTC) + timedelta(days=period))


def test_rotate_on_demand_adds_a_key_version(kms: Any, key: Params) -> None:
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    original_material = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []

    assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["Arn"]

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 1
    (entry,) = rotations
    assert entry["KeyId"] == key["Arn"]
    assert entry["RotationType"] == "ON_DEMAND"
    assert_near(entry["RotationDate"], datetime.now(UTC), timedelta(minutes=5))
    current = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != original_material
    assert entry["KeyMaterialId"] == current

    after = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after"


def test_decrypt_reports_the_key_material_of_each_ciphertext(kms: Any, key: Params) -> None:
    """Decrypt returns KeyMaterialId for symmetric keys: old blobs name the old material."""
    original = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    rotated = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    after = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=before).get("KeyMaterialId") == original
    assert kms.decrypt(CiphertextBlob=after).get("KeyMaterialId") == rotated


def test_on_demand_rotation_limit_and_listing_pages(kms: Any, key: Params) -> None:
    blobs = [kms.encrypt(KeyId=key["KeyId"], Plaintext=b"v1")["CiphertextBlob"]]
    for i in range(10):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
        encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=f"v{i + 2}".encode())
        blobs.append(encrypted["CiphertextBlob"])
    expect_error(kms.rotate_key_on_demand, "LimitExceededException", KeyId=key["KeyId"])

    rotations = list_all(kms.list_key_rotations, "Rotations", KeyId=key["KeyId"], Limit=4)
    assert len(rotations) == 10
    assert {r["RotationType"] for r in rotations} == {"ON_DEMAND"}
    assert len({r["KeyMaterialId"] for r in rotations}) == 10
    assert [kms.decrypt(CiphertextBlob=b)["Plaintext"] for b in blobs] == [
        f"v{i}".encode() for i in range(1, 12)
    ]


@pytest.mark.parametrize("operation", ["enable_key_rotation", "rotate_key_on_demand"])
@pytest.mark.parametrize(
    ("make_state", "code"),
    [
        (lambda kms, key_id: kms.disable_key(KeyId=key_id), "DisabledException"),
        (
            lambda kms, key_id: kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7),
            "KMSInvalidStateException",
        ),
    ],
    ids=["disabled", "pending-deletion"],
)
def test_rotation_needs_an_enabled_key(
    kms: Any, key: Params, operation: str, make_state: Callable[[Any, str], Any], code: str
) -> None:
    make_state(kms, key["KeyId"])
    expect_error(getattr(kms, operation), code, KeyId=key["KeyId"])


# ================================================================================== Deletion


def test_schedule_key_deletion_default_window(kms: Any, key: Params) -> None:
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert scheduled["KeyId"] == key["Arn"]
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 30
    assert_near(scheduled["DeletionDate"], datetime.now(UTC) + timedelta(days=30))
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion"
    assert described["Enabled"] is False
    assert described["DeletionDate"] == scheduled["DeletionDate"]


def test_describe_pending_deletion_key_has_no_replica_window(kms: Any, key: Params) -> None:
    """PendingDeletionWindowInDays is documented as present only for PendingReplicaDeletion."""
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert "PendingDeletionWindowInDays" not in described


@pytest.mark.parametrize(
    ("days", "code"),
    [(7, None), (30, None), (6, "ValidationException"), (31, "ValidationException")],
)
def test_deletion_window_bounds(kms: Any, key: Params, days: int, code: str | None) -> None:
    if code is not None:
        expect_error(kms.schedule_key_deletion, code, KeyId=key["KeyId"], PendingWindowInDays=days)
        assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
        return
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=days)
    assert scheduled["PendingWindowInDays"] == days
    assert_near(scheduled["DeletionDate"], datetime.now(UTC) + timedelta(days=days))


@pytest.mark.parametrize("operation", CRYPTO_OPS)
def test_pending_deletion_key_refuses_cryptographic_operations(
    kms: Any, key: Params, blob: bytes, operation: str
) -> None:
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_op_error(kms, operation, key["KeyId"], blob, "KMSInvalidStateException")


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("schedule_key_deletion", {}),
        ("enable_key", {}),
        ("disable_key", {}),
        ("update_key_description", {"Description": "x"}),
        ("tag_resource", {"Tags": [{"TagKey": "a", "TagValue": "b"}]}),
    ],
)
def test_pending_deletion_key_refuses_changes(
    kms: Any, key: Params, operation: str, params: Params
) -> None:
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error(getattr(kms, operation), "KMSInvalidStateException", KeyId=key["KeyId"], **params)


def test_cancel_key_deletion_leaves_key_disabled(kms: Any, key: Params, blob: bytes) -> None:
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert kms.cancel_key_deletion(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (described["KeyState"], described["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in described
    expect_error(kms.encrypt, "DisabledException", KeyId=key["KeyId"], Plaintext=b"x")

    kms.enable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)["Plaintext"] == PLAINTEXT


def test_cancel_deletion_of_a_key_not_pending_deletion(kms: Any, key: Params) -> None:
    expect_error(kms.cancel_key_deletion, "KMSInvalidStateException", KeyId=key["KeyId"])


# ============================================================================== Key policies


def test_default_key_policy_names_the_account_root(kms: Any, key: Params, account: str) -> None:
    result = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    policy = json.loads(result["Policy"])
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    assert any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
        and s["Action"] == "kms:*"
        and s["Resource"] == "*"
        for s in statements
    ), statements
    assert kms.get_key_policy(KeyId=key["KeyId"])["Policy"] == result["Policy"]


def test_put_key_policy_round_trips(kms: Any, key: Params, account: str) -> None:
    policy = {
        "Version": "2012-10-17",
        "Id": "custom-e2e",
        "Statement": [
            {
                "Sid": "Root",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "DenyOutsiders",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"kms:CallerAccount": account}},
            },
        ],
    }
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
    got = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    assert json.loads(got["Policy"]) == policy


def test_list_key_policies(kms: Any, key: Params) -> None:
    listing = kms.list_key_policies(KeyId=key["KeyId"])
    assert listing["PolicyNames"] == ["default"]
    assert listing["Truncated"] is False


@pytest.mark.parametrize("operation", ["get_key_policy", "put_key_policy"])
def test_policy_name_other_than_default_is_not_found(kms: Any, key: Params, operation: str) -> None:
    params = {"Policy": kms.get_key_policy(KeyId=key["KeyId"])["Policy"]}
    extra = params if operation == "put_key_policy" else {}
    expect_error(
        getattr(kms, operation),
        "NotFoundException",
        KeyId=key["KeyId"],
        PolicyName="other",
        **extra,
    )


@pytest.mark.parametrize("policy", MALFORMED_POLICIES.values(), ids=MALFORMED_POLICIES.keys())
def test_put_malformed_key_policy(kms: Any, key: Params, policy: str) -> None:
    before = kms.get_key_policy(KeyId=key["KeyId"])["Policy"]
    expect_error(
        kms.put_key_policy,
        "MalformedPolicyDocumentException",
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy,
    )
    assert kms.get_key_policy(KeyId=key["KeyId"])["Policy"] == before


# ===================================================================== Wire-level errors


@pytest.mark.parametrize(
    "target",
    [None, "TrentService.NoSuchOperation", "NotTrent.ListKeys", "TrentService."],
    ids=["missing", "unknown-operation", "wrong-prefix", "empty-operation"],
)
def test_unknown_target_is_unknown_operation(server: ServerProcess, target: str | None) -> None:
    assert_wire_error(signed_request(server, b"{}", target), "UnknownOperationException")


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("ListKeys", b"{not json"),
        ("ListKeys", b'{"Limit": 1'),
        ("ListKeys", b"[]"),
        ("ListKeys", b'"a string"'),
        ("ListKeys", b"42"),
        ("ListKeys", b'{"Limit": "ten"}'),
        ("DescribeKey", b'{"KeyId": 123}'),
        ("DescribeKey", b'{"KeyId": ["a"]}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": {"a": 1}}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "!!not base64!!"}'),
    ],
    ids=[
        "malformed-json",
        "truncated-json",
        "array-body",
        "string-body",
        "number-body",
        "string-for-integer",
        "integer-for-string",
        "list-for-string",
        "object-for-blob",
        "bad-base64-blob",
    ],
)
def test_bad_request_bodies_are_serialization_errors(
    server: ServerProcess, target: str, body: bytes
) -> None:
    response = signed_request(server, body, f"TrentService.{target}")
    assert_wire_error(response, "SerializationException")


def test_unsigned_request_is_missing_authentication_token(server: ServerProcess) -> None:
    response = signed_request(server, b"{}", sign=False)
    assert_wire_error(response, "MissingAuthenticationTokenException")


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({"secret_access_key": "not-the-secret"}, "InvalidSignatureException"),
        ({"access_key_id": "AKIANOSUCHKEY0000000"}, "UnrecognizedClientException"),
    ],
    ids=["wrong-secret", "unknown-access-key"],
)
def test_bad_credentials(server: ServerProcess, credentials: Params, code: str) -> None:
    expect_error(server.client("kms", **credentials).list_keys, code)
    assert_wire_error(signed_request(server, b"{}", **credentials), code)


def test_expired_signature(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    twenty_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: twenty_minutes_ago)
    message = assert_wire_error(signed_request(server, b"{}"), "InvalidSignatureException")
    assert "Signature expired" in message


def test_request_body_tampered_after_signing(server: ServerProcess) -> None:
    request = AWSRequest(
        method="POST",
        url=f"{server.url}/",
        data=b'{"Limit": 1}',
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "TrentService.ListKeys",
        },
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "kms", REGION).add_auth(request)
    response = requests.post(
        request.url, data=b'{"Limit": 2}', headers=dict(request.headers), timeout=10
    )
    assert_wire_error(response, "InvalidSignatureException")


# =============================================================== Consistency across workers


def fresh_clients(server: ServerProcess, count: int) -> Iterator[Any]:
    """One new client (new connection) per call, closed afterwards."""
    for _ in range(count):
        client = server.client("kms")
        try:
            yield client
        finally:
            client.close()


def test_key_state_is_consistent_across_worker_processes(
    server: ServerProcess, kms: Any, key: Params
) -> None:
    # Warm every worker's material cache with the enabled key first.
    for client in fresh_clients(server, 10):
        client.encrypt(KeyId=key["KeyId"], Plaintext=b"warm")

    kms.disable_key(KeyId=key["KeyId"])
    codes = []
    for client in fresh_clients(server, 20):
        with pytest.raises(ClientError) as info:
            client.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
        codes.append(info.value.response["Error"]["Code"])
    assert codes == ["DisabledException"] * 20

    kms.enable_key(KeyId=key["KeyId"])
    arns = [
        client.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"]
        for client in fresh_clients(server, 20)
    ]
    assert arns == [key["Arn"]] * 20


def test_rotation_is_seen_by_every_worker_process(
    server: ServerProcess, kms: Any, key: Params
) -> None:
    for client in fresh_clients(server, 6):
        client.encrypt(KeyId=key["KeyId"], Plaintext=b"warm")
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    blobs = [
        client.encrypt(KeyId=key["KeyId"], Plaintext=b"new")["CiphertextBlob"]
        for client in fresh_clients(server, 10)
    ]
    plaintexts = [
        client.decrypt(CiphertextBlob=b)["Plaintext"]
        for client, b in zip(fresh_clients(server, 10), reversed(blobs), strict=True)
    ]
    assert plaintexts == [b"new"] * 10
