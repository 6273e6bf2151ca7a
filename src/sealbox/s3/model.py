"""S3's domain records: buckets, object versions, uploads, and how data is keyed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# SSE values as S3 reports them; "SSE-C" is Sealbox's own marker for customer keys
# (S3 reports SSE-C objects as AES256 plus the customer-algorithm headers).
SSE_S3 = "AES256"
SSE_KMS = "aws:kms"
SSE_C = "SSE-C"

NULL_VERSION = "null"


@dataclass(frozen=True, slots=True)
class EncryptionRule:
    """A bucket's default encryption (one ServerSideEncryptionConfiguration rule)."""

    algorithm: str  # AES256 | aws:kms
    kms_key_id: str | None = None
    bucket_key_enabled: bool = False
    blocked_types: tuple[str, ...] = ()  # BlockedEncryptionTypes, e.g. ("SSE-C",)


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    account_id: str
    region: str
    created_at: datetime
    versioning: str | None = None
    policy: str | None = None
    encryption: EncryptionRule | None = None
    public_access_block: dict[str, bool] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    config_version: int = 1

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.name}"


@dataclass(frozen=True, slots=True)
class Keying:
    """How one object's data key is protected (never the data key itself)."""

    sse: str
    wrapped_dek: bytes
    kms_key_arn: str | None = None
    bucket_key: bool = False
    context: dict[str, str] | None = None  # the encryption context KMS bound
    bucket_key_blob: bytes | None = None
    ssec_salt: bytes | None = None
    ssec_hmac: bytes | None = None


@dataclass(frozen=True, slots=True)
class Extent:
    """One encrypted segment stream in the blob store: a whole object, or one part."""

    blob: str
    size: int  # plaintext bytes
    segment_size: int
    part_number: int = 1
    etag: str = ""
    checksum: dict[str, str] | None = None  # algorithm → base64, as the part was sent

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"b": self.blob, "s": self.size, "g": self.segment_size}
        if self.part_number != 1:
            out["n"] = self.part_number
        if self.etag:
            out["e"] = self.etag
        if self.checksum:
            out["c"] = self.checksum
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Extent:
        return cls(
            data["b"], data["s"], data["g"], data.get("n", 1), data.get("e", ""), data.get("c")
        )


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str  # CRC32 | CRC32C | SHA1 | SHA256 | CRC64NVME
    value: str  # base64, with "-N" for a composite multipart checksum
    type: str = "FULL_OBJECT"  # or COMPOSITE


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    bucket: str
    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str
    last_modified: datetime
    owner_account: str
    keying: Keying | None  # None for delete markers
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    checksum: Checksum | None = None
    extents: tuple[Extent, ...] = ()
    row_id: int = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"

    @property
    def multipart(self) -> bool:
        return "-" in self.etag

    def keying_or_fail(self) -> Keying:
        """The keying of an object with data (delete markers have none)."""
        if self.keying is None:
            raise ValueError(f"{self.key} version {self.version_id} has no data key")
        return self.keying


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: datetime
    owner_account: str
    initiator_arn: str
    keying: Keying
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    part_number: int
    blob: str
    size: int
    segment_size: int
    etag: str
    last_modified: datetime
    checksum: dict[str, str] | None = None
