"""KMS operation table: wire parameters ⇄ KmsService calls.

Each handler takes the parsed request (botocore member names) and returns the wire
result. AWS semantics live in the service; this only maps names and shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sealbox.call import Call
from sealbox.kms import keyspec
from sealbox.kms.grants import Grant
from sealbox.kms.model import Alias, Key
from sealbox.kms.results import KeyDescription
from sealbox.kms.service import KmsService

Params = dict[str, Any]
Handler = Callable[[KmsService, Call, Params], Params]

EVENT_SOURCE = "kms.amazonaws.com"


def key_metadata(desc: KeyDescription, svc: KmsService | None = None) -> Params:
    key: Key = desc.key
    meta: Params = {
        "AWSAccountId": key.account_id,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.creation_date,
        "Enabled": key.enabled,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.key_state.value,
        "Origin": key.origin,
        "KeyManager": key.key_manager.value,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "MultiRegion": key.multi_region,
        **keyspec.info(key.key_spec).algorithms_for(key.key_usage),
    }
    if key.origin == "EXTERNAL" and key.expiration_model is not None:
        meta["ExpirationModel"] = key.expiration_model
        if key.valid_to is not None:
            meta["ValidTo"] = key.valid_to
    if key.multi_region and svc is not None:
        meta["MultiRegionConfiguration"] = svc.multi_region.configuration(key)
    if key.deletion_date is not None:
        # (PendingDeletionWindowInDays is only for PendingReplicaDeletion, per AWS.)
        meta["DeletionDate"] = key.deletion_date
    if desc.current_material_id is not None:
        meta["CurrentKeyMaterialId"] = desc.current_material_id
    return meta


def _alias(alias: Alias) -> Params:
    return {
        "AliasName": alias.alias_name,
        "AliasArn": alias.arn,
        "TargetKeyId": alias.target_key_id,
        "CreationDate": alias.creation_date,
        "LastUpdatedDate": alias.last_updated_date,
    }


def _page(marker: str | None) -> Params:
    return {"NextMarker": marker, "Truncated": True} if marker else {"Truncated": False}


def _tags(params: Params) -> list[tuple[str, str]]:
    return [(t["TagKey"], t["TagValue"]) for t in params.get("Tags", [])]


def create_key(svc: KmsService, call: Call, p: Params) -> Params:
    desc = svc.create_key(
        call,
        policy=p.get("Policy"),
        description=p.get("Description", ""),
        key_usage=p.get("KeyUsage"),
        key_spec=p.get("KeySpec"),
        customer_master_key_spec=p.get("CustomerMasterKeySpec"),
        origin=p.get("Origin"),
        tags=_tags(p),
        multi_region=p.get("MultiRegion", False),
        bypass_policy_lockout_safety_check=p.get("BypassPolicyLockoutSafetyCheck", False),
    )
    return {"KeyMetadata": key_metadata(desc, svc)}


def describe_key(svc: KmsService, call: Call, p: Params) -> Params:
    return {"KeyMetadata": key_metadata(svc.describe_key(call, p["KeyId"]), svc)}


def list_keys(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.list_keys(call, p.get("Limit"), p.get("Marker"))
    keys = [{"KeyId": k.key_id, "KeyArn": k.arn} for k in listing.keys]
    return {"Keys": keys, **_page(listing.next_marker)}


def enable_key(svc: KmsService, call: Call, p: Params) -> Params:
    svc.enable_key(call, p["KeyId"])
    return {}


def disable_key(svc: KmsService, call: Call, p: Params) -> Params:
    svc.disable_key(call, p["KeyId"])
    return {}


def update_key_description(svc: KmsService, call: Call, p: Params) -> Params:
    svc.update_key_description(call, p["KeyId"], p["Description"])
    return {}


def tag_resource(svc: KmsService, call: Call, p: Params) -> Params:
    svc.tag_resource(call, p["KeyId"], _tags(p))
    return {}


def untag_resource(svc: KmsService, call: Call, p: Params) -> Params:
    svc.untag_resource(call, p["KeyId"], list(p["TagKeys"]))
    return {}


def list_resource_tags(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.list_resource_tags(call, p["KeyId"], p.get("Limit"), p.get("Marker"))
    tags = [{"TagKey": k, "TagValue": v} for k, v in listing.tags]
    return {"Tags": tags, **_page(listing.next_marker)}


def create_alias(svc: KmsService, call: Call, p: Params) -> Params:
    svc.create_alias(call, p["AliasName"], p["TargetKeyId"])
    return {}


def update_alias(svc: KmsService, call: Call, p: Params) -> Params:
    svc.update_alias(call, p["AliasName"], p["TargetKeyId"])
    return {}


def delete_alias(svc: KmsService, call: Call, p: Params) -> Params:
    svc.delete_alias(call, p["AliasName"])
    return {}


def list_aliases(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.list_aliases(call, p.get("KeyId"), p.get("Limit"), p.get("Marker"))
    return {"Aliases": [_alias(a) for a in listing.aliases], **_page(listing.next_marker)}


def encrypt(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.encrypt(
        call,
        p["KeyId"],
        p["Plaintext"],
        p.get("EncryptionContext"),
        p.get("EncryptionAlgorithm"),
        p.get("DryRun", False),
    )
    return {"CiphertextBlob": r.ciphertext, "KeyId": r.key_arn, "EncryptionAlgorithm": r.algorithm}


def decrypt(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.decrypt(
        call,
        p["CiphertextBlob"],
        p.get("EncryptionContext"),
        p.get("KeyId"),
        p.get("EncryptionAlgorithm"),
        p.get("DryRun", False),
    )
    return {
        "Plaintext": r.plaintext,
        "KeyId": r.key_arn,
        "EncryptionAlgorithm": r.algorithm,
        "KeyMaterialId": r.material_id,
    }


def re_encrypt(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.re_encrypt(
        call,
        p["CiphertextBlob"],
        p["DestinationKeyId"],
        source_context=p.get("SourceEncryptionContext"),
        destination_context=p.get("DestinationEncryptionContext"),
        source_key_id=p.get("SourceKeyId"),
        source_algorithm=p.get("SourceEncryptionAlgorithm"),
        destination_algorithm=p.get("DestinationEncryptionAlgorithm"),
        dry_run=p.get("DryRun", False),
    )
    return {
        "CiphertextBlob": r.ciphertext,
        "SourceKeyId": r.source_key_arn,
        "KeyId": r.key_arn,
        "SourceEncryptionAlgorithm": r.source_algorithm,
        "DestinationEncryptionAlgorithm": r.destination_algorithm,
        "SourceKeyMaterialId": r.source_material_id,
        "DestinationKeyMaterialId": r.destination_material_id,
    }


def _data_key(svc: KmsService, call: Call, p: Params, include_plaintext: bool) -> Params:
    r = svc.generate_data_key(
        call,
        p["KeyId"],
        p.get("EncryptionContext"),
        p.get("NumberOfBytes"),
        p.get("KeySpec"),
        include_plaintext=include_plaintext,
        dry_run=p.get("DryRun", False),
    )
    out: Params = {
        "CiphertextBlob": r.ciphertext,
        "KeyId": r.key_arn,
        "KeyMaterialId": r.material_id,
    }
    if r.plaintext is not None:
        out["Plaintext"] = r.plaintext
    return out


def generate_data_key(svc: KmsService, call: Call, p: Params) -> Params:
    return _data_key(svc, call, p, include_plaintext=True)


def generate_data_key_without_plaintext(svc: KmsService, call: Call, p: Params) -> Params:
    return _data_key(svc, call, p, include_plaintext=False)


def generate_random(svc: KmsService, call: Call, p: Params) -> Params:
    return {"Plaintext": svc.generate_random(call, p.get("NumberOfBytes"))}


def enable_key_rotation(svc: KmsService, call: Call, p: Params) -> Params:
    svc.enable_key_rotation(call, p["KeyId"], p.get("RotationPeriodInDays"))
    return {}


def disable_key_rotation(svc: KmsService, call: Call, p: Params) -> Params:
    svc.disable_key_rotation(call, p["KeyId"])
    return {}


def get_key_rotation_status(svc: KmsService, call: Call, p: Params) -> Params:
    s = svc.get_key_rotation_status(call, p["KeyId"])
    return {
        "KeyRotationEnabled": s.enabled,
        "KeyId": s.key_arn,
        "RotationPeriodInDays": s.period_days,
        "NextRotationDate": s.next_rotation_date,
        "OnDemandRotationStartDate": s.on_demand_started,
    }


def rotate_key_on_demand(svc: KmsService, call: Call, p: Params) -> Params:
    return {"KeyId": svc.rotate_key_on_demand(call, p["KeyId"])}


def list_key_rotations(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.list_key_rotations(
        call,
        p["KeyId"],
        p.get("Limit"),
        p.get("Marker"),
        include_initial=p.get("IncludeKeyMaterial") == "ALL_KEY_MATERIAL",
    )
    rotations = [
        {
            "KeyId": e.key_arn,
            "KeyMaterialId": e.material_id,
            "RotationDate": e.rotation_date,
            "RotationType": e.rotation_type,
            "KeyMaterialState": "CURRENT" if e.current else "NON_CURRENT",
        }
        for e in listing.rotations
    ]
    return {"Rotations": rotations, **_page(listing.next_marker)}


def schedule_key_deletion(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.schedule_key_deletion(call, p["KeyId"], p.get("PendingWindowInDays"))
    return {
        "KeyId": r.key_arn,
        "DeletionDate": r.deletion_date,  # absent while a primary waits for replicas
        "KeyState": r.key_state,
        "PendingWindowInDays": r.pending_window_days,
    }


def cancel_key_deletion(svc: KmsService, call: Call, p: Params) -> Params:
    return {"KeyId": svc.cancel_key_deletion(call, p["KeyId"])}


def get_key_policy(svc: KmsService, call: Call, p: Params) -> Params:
    name = p.get("PolicyName")
    return {"Policy": svc.get_key_policy(call, p["KeyId"], name), "PolicyName": "default"}


def put_key_policy(svc: KmsService, call: Call, p: Params) -> Params:
    svc.put_key_policy(
        call,
        p["KeyId"],
        p["Policy"],
        p.get("PolicyName"),
        p.get("BypassPolicyLockoutSafetyCheck", False),
    )
    return {}


def list_key_policies(svc: KmsService, call: Call, p: Params) -> Params:
    return {"PolicyNames": svc.list_key_policies(call, p["KeyId"]), "Truncated": False}


def _grant_entry(key_arn: str, g: Grant) -> Params:
    entry: Params = {
        "KeyId": key_arn,
        "GrantId": g.grant_id,
        "Name": g.name,
        "CreationDate": g.created_at,
        "GranteePrincipal": g.grantee,
        "RetiringPrincipal": g.retiring,
        "IssuingAccount": g.issuing_account,
        "Operations": list(g.operations),
    }
    if g.context_equals is not None:
        entry["Constraints"] = {"EncryptionContextEquals": dict(g.context_equals)}
    elif g.context_subset is not None:
        entry["Constraints"] = {"EncryptionContextSubset": dict(g.context_subset)}
    return entry


def create_grant(svc: KmsService, call: Call, p: Params) -> Params:
    constraints = p.get("Constraints") or {}
    created = svc.grant_service.create_grant(
        call,
        p["KeyId"],
        p["GranteePrincipal"],
        list(p["Operations"]),
        retiring=p.get("RetiringPrincipal"),
        context_equals=constraints.get("EncryptionContextEquals"),
        context_subset=constraints.get("EncryptionContextSubset"),
        name=p.get("Name"),
        dry_run=p.get("DryRun", False),
    )
    return {"GrantToken": created.grant_token, "GrantId": created.grant_id}


def list_grants(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.grant_service.list_grants(
        call,
        p["KeyId"],
        p.get("Limit"),
        p.get("Marker"),
        grant_id=p.get("GrantId"),
        grantee=p.get("GranteePrincipal"),
    )
    grants = [_grant_entry(arn, g) for arn, g in listing.grants]
    return {"Grants": grants, **_page(listing.next_marker)}


def list_retirable_grants(svc: KmsService, call: Call, p: Params) -> Params:
    listing = svc.grant_service.list_retirable_grants(
        call, p["RetiringPrincipal"], p.get("Limit"), p.get("Marker")
    )
    grants = [_grant_entry(arn, g) for arn, g in listing.grants]
    return {"Grants": grants, **_page(listing.next_marker)}


def retire_grant(svc: KmsService, call: Call, p: Params) -> Params:
    svc.grant_service.retire_grant(
        call, p.get("GrantToken"), p.get("KeyId"), p.get("GrantId"), p.get("DryRun", False)
    )
    return {}


def revoke_grant(svc: KmsService, call: Call, p: Params) -> Params:
    svc.grant_service.revoke_grant(call, p["KeyId"], p["GrantId"], p.get("DryRun", False))
    return {}


# -- asymmetric, HMAC ------------------------------------------------------------


def sign(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.sign(
        call, p["KeyId"], p["Message"], p["SigningAlgorithm"], p.get("MessageType"),
        p.get("DryRun", False),
    )  # fmt: skip
    return {"KeyId": r.key_arn, "Signature": r.signature, "SigningAlgorithm": r.algorithm}


def verify(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.verify(
        call, p["KeyId"], p["Message"], p["Signature"], p["SigningAlgorithm"],
        p.get("MessageType"), p.get("DryRun", False),
    )  # fmt: skip
    return {"KeyId": r.key_arn, "SignatureValid": True, "SigningAlgorithm": r.algorithm}


def get_public_key(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.get_public_key(call, p["KeyId"])
    key = r.key
    return {
        "KeyId": key.arn,
        "PublicKey": r.public_key,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
        **keyspec.info(key.key_spec).algorithms_for(key.key_usage),
    }


def generate_mac(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.generate_mac(
        call, p["KeyId"], p["Message"], p["MacAlgorithm"], p.get("DryRun", False)
    )
    return {"Mac": r.mac, "MacAlgorithm": r.algorithm, "KeyId": r.key_arn}


def verify_mac(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.verify_mac(
        call, p["KeyId"], p["Message"], p["Mac"], p["MacAlgorithm"], p.get("DryRun", False)
    )
    return {"KeyId": r.key_arn, "MacValid": True, "MacAlgorithm": r.algorithm}


def _data_key_pair(svc: KmsService, call: Call, p: Params, include: bool) -> Params:
    r = svc.asymmetric.generate_data_key_pair(
        call, p["KeyId"], p["KeyPairSpec"], p.get("EncryptionContext"), include,
        p.get("DryRun", False),
    )  # fmt: skip
    out: Params = {
        "PrivateKeyCiphertextBlob": r.private_ciphertext,
        "PublicKey": r.public_key,
        "KeyId": r.key_arn,
        "KeyPairSpec": r.spec,
        "KeyMaterialId": r.material_id,
    }
    if r.private_plaintext is not None:
        out["PrivateKeyPlaintext"] = r.private_plaintext
    return out


def generate_data_key_pair(svc: KmsService, call: Call, p: Params) -> Params:
    return _data_key_pair(svc, call, p, include=True)


def generate_data_key_pair_without_plaintext(svc: KmsService, call: Call, p: Params) -> Params:
    return _data_key_pair(svc, call, p, include=False)


def derive_shared_secret(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.asymmetric.derive_shared_secret(
        call, p["KeyId"], p["KeyAgreementAlgorithm"], p["PublicKey"], p.get("DryRun", False)
    )
    return {
        "KeyId": r.key_arn,
        "SharedSecret": r.shared_secret,
        "KeyAgreementAlgorithm": p["KeyAgreementAlgorithm"],
        "KeyOrigin": r.origin,
    }


# -- imported key material -----------------------------------------------------------


def get_parameters_for_import(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.importing.get_parameters_for_import(
        call, p["KeyId"], p["WrappingAlgorithm"], p["WrappingKeySpec"]
    )
    return {
        "KeyId": r.key_arn,
        "ImportToken": r.import_token,
        "PublicKey": r.public_key,
        "ParametersValidTo": r.valid_to,
    }


def import_key_material(svc: KmsService, call: Call, p: Params) -> Params:
    arn, material_id = svc.importing.import_key_material(
        call, p["KeyId"], p["ImportToken"], p["EncryptedKeyMaterial"], p.get("ValidTo"),
        p.get("ExpirationModel"),
    )  # fmt: skip
    return {"KeyId": arn, "KeyMaterialId": material_id}


def delete_imported_key_material(svc: KmsService, call: Call, p: Params) -> Params:
    arn, material_id = svc.importing.delete_imported_key_material(call, p["KeyId"])
    return {"KeyId": arn, "KeyMaterialId": material_id}


# -- multi-Region keys, usage ----------------------------------------------------------


def replicate_key(svc: KmsService, call: Call, p: Params) -> Params:
    r = svc.multi_region.replicate_key(
        call, p["KeyId"], p["ReplicaRegion"], p.get("Policy"), p.get("Description", ""),
        _tags(p),
    )  # fmt: skip
    return {
        "ReplicaKeyMetadata": key_metadata(r.description, svc),
        "ReplicaPolicy": r.policy,
        "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in r.tags.items()],
    }


def update_primary_region(svc: KmsService, call: Call, p: Params) -> Params:
    svc.multi_region.update_primary_region(call, p["KeyId"], p["PrimaryRegion"])
    return {}


def get_key_last_usage(svc: KmsService, call: Call, p: Params) -> Params:
    key, record = svc.get_key_last_usage(call, p["KeyId"])
    out: Params = {
        "KeyId": key.arn,
        "TrackingStartDate": key.creation_date,
        "KeyCreationDate": key.creation_date,
    }
    if record is not None:
        out["KeyLastUsage"] = {
            "Operation": record["eventName"],
            "Timestamp": datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC
            ),
            "CloudTrailEventId": record["eventID"],
            "KmsRequestId": record["requestID"],
        }
    return out


OPERATIONS: dict[str, Handler] = {
    "Sign": sign,
    "Verify": verify,
    "GetPublicKey": get_public_key,
    "GenerateMac": generate_mac,
    "VerifyMac": verify_mac,
    "GenerateDataKeyPair": generate_data_key_pair,
    "GenerateDataKeyPairWithoutPlaintext": generate_data_key_pair_without_plaintext,
    "DeriveSharedSecret": derive_shared_secret,
    "GetParametersForImport": get_parameters_for_import,
    "ImportKeyMaterial": import_key_material,
    "DeleteImportedKeyMaterial": delete_imported_key_material,
    "ReplicateKey": replicate_key,
    "UpdatePrimaryRegion": update_primary_region,
    "GetKeyLastUsage": get_key_last_usage,
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "ListRetirableGrants": list_retirable_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "UpdateKeyDescription": update_key_description,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": list_resource_tags,
    "CreateAlias": create_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "GenerateRandom": generate_random,
    "EnableKeyRotation": enable_key_rotation,
    "DisableKeyRotation": disable_key_rotation,
    "GetKeyRotationStatus": get_key_rotation_status,
    "RotateKeyOnDemand": rotate_key_on_demand,
    "ListKeyRotations": list_key_rotations,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
    "GetKeyPolicy": get_key_policy,
    "PutKeyPolicy": put_key_policy,
    "ListKeyPolicies": list_key_policies,
}

# Operations that change no key state: run inline on the event loop (they only read)
# and are audited by group commit. The rest run in a worker thread and append their
# audit record inside their own transaction.
READ_ONLY = frozenset(
    {
        "DescribeKey",
        "ListKeys",
        "ListResourceTags",
        "ListAliases",
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateRandom",
        "GetKeyRotationStatus",
        "ListKeyRotations",
        "GetKeyPolicy",
        "ListKeyPolicies",
        "ListGrants",
        "ListRetirableGrants",
        "Sign",
        "Verify",
        "GetPublicKey",
        "GenerateMac",
        "VerifyMac",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "DeriveSharedSecret",
        "GetKeyLastUsage",
    }
)
