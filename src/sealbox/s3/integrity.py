"""What a client said its upload is (Content-MD5, signed SHA-256, a flexible checksum)
against what arrived. Checked before anything becomes visible."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sealbox.crypto import checksums
from sealbox.s3.datapath import Written
from sealbox.s3.errors import BadDigest, ContentSha256Mismatch, InvalidDigest, InvalidRequest

# botocore member name suffix ↔ algorithm
MEMBERS = {a: f"Checksum{a}" for a in checksums.ALGORITHMS}


class PendingWrite(Protocol):
    """A body being streamed into a new blob (PutObject, UploadPart)."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self, trailers: Mapping[str, str]) -> dict[str, Any]: ...

    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Expected:
    content_md5: bytes | None
    payload_sha256: str | None  # hex, when the payload itself was signed
    algorithm: str | None  # the flexible checksum to compute
    value: str | None  # its base64 value, when sent as a header

    @property
    def algorithms(self) -> tuple[str, ...]:
        return (self.algorithm,) if self.algorithm else ()


def expected_from(
    params: Mapping[str, Any], payload_sha256: str | None, trailer_names: tuple[str, ...] = ()
) -> Expected:
    md5: bytes | None = None
    if params.get("ContentMD5") is not None:
        try:
            md5 = base64.b64decode(params["ContentMD5"], validate=True)
        except (binascii.Error, ValueError):
            md5 = b""
        if len(md5) != 16:
            raise InvalidDigest("The Content-MD5 you specified was invalid.")
    sent = [(a, params[m]) for a, m in MEMBERS.items() if params.get(m) is not None]
    trailed = [a for a in checksums.ALGORITHMS if f"x-amz-checksum-{a.lower()}" in trailer_names]
    if len(sent) + len(trailed) > 1:
        raise InvalidRequest("Expecting a single x-amz-checksum- header")
    algorithm: str | None = None
    value: str | None = None
    if sent:
        algorithm, value = sent[0]
    elif trailed:
        algorithm = trailed[0]
    else:
        declared = params.get("ChecksumAlgorithm")
        if declared is not None:
            if declared.upper() not in checksums.ALGORITHMS:
                raise InvalidRequest(f"Checksum algorithm {declared} is not supported.")
            algorithm = declared.upper()
    hex_sha = payload_sha256 if payload_sha256 and len(payload_sha256) == 64 else None
    return Expected(md5, hex_sha, algorithm, value)


def verify(expected: Expected, written: Written, trailers: Mapping[str, str]) -> dict[str, str]:
    """Raise the S3 error for any mismatch; return the checksum to store {alg: b64}."""
    if expected.payload_sha256 is not None and written.sha256_hex != expected.payload_sha256:
        raise ContentSha256Mismatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    if expected.content_md5 is not None and expected.content_md5 != written.md5:
        raise BadDigest("The Content-MD5 you specified did not match what we received.")
    if expected.algorithm is None:
        return {}
    actual = checksums.b64(written.checksums[expected.algorithm])
    claimed = expected.value
    if claimed is None:
        claimed = trailers.get(f"x-amz-checksum-{expected.algorithm.lower()}")
    if claimed is not None and claimed != actual:
        raise BadDigest(
            f"The {expected.algorithm} you specified did not match the calculated checksum."
        )
    return {expected.algorithm: actual}
