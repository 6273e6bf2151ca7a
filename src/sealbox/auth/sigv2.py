"""S3's legacy query-string authentication (Signature Version 2), for presigned URLs.

boto3 still presigns S3 URLs this way by default in us-east-1
(``?AWSAccessKeyId=…&Signature=…&Expires=…``), so Sealbox accepts it for S3 only, and
nothing else of SigV2. The canonical resource is botocore's own (its rules for which
subresources are signed are long and its client is the reference); the comparison is
constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from botocore.auth import HmacV1Auth

from sealbox.auth.errors import IncompleteSignature, PresignedUrlExpired, SignatureMismatch

_AUTH_PARAMS = frozenset({"AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token"})
_V1 = HmacV1Auth(None)  # only its stateless canonical_resource is used


@dataclass(frozen=True, slots=True)
class PresignedV2:
    access_key_id: str
    signature: str
    expires: int
    security_token: str | None


def parse(query_string: str) -> PresignedV2 | None:
    """The SigV2 parameters of a presigned S3 URL, or None when it is not one."""
    if "Signature=" not in query_string or "AWSAccessKeyId=" not in query_string:
        return None
    params = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
    try:
        expires = int(params["Expires"])
        return PresignedV2(
            params["AWSAccessKeyId"],
            params["Signature"],
            expires,
            params.get("x-amz-security-token"),
        )
    except (KeyError, ValueError):
        raise IncompleteSignature(
            "Query-string authentication requires the Signature, Expires and "
            "AWSAccessKeyId parameters"
        ) from None


def verify(
    req: PresignedV2,
    secret_access_key: str,
    method: str,
    resource_path: str,
    query_string: str,
    headers: Mapping[str, str],
    now: datetime,
) -> None:
    """Raise PresignedUrlExpired or SignatureMismatch, or return.

    ``resource_path`` is the raw (percent-encoded) path including the bucket, as
    path-style addressing sends it.
    """
    if now.timestamp() > req.expires:
        raise PresignedUrlExpired()
    kept = "&".join(
        part
        for part in query_string.split("&")
        if part and part.split("=", 1)[0] not in _AUTH_PARAMS
    )
    resource = _V1.canonical_resource(urllib.parse.urlsplit(f"{resource_path}?{kept}"))
    amz = {
        name: value.strip()
        for name, value in headers.items()
        if name.startswith("x-amz-") and name != "x-amz-date"
    }
    if req.security_token is not None:
        amz["x-amz-security-token"] = req.security_token
    canonical = "\n".join(
        [
            method.upper(),
            headers.get("content-md5", "").strip(),
            headers.get("content-type", "").strip(),
            str(req.expires),
            *[f"{name}:{amz[name]}" for name in sorted(amz)],
            resource,
        ]
    )
    expected = base64.b64encode(
        hmac.digest(secret_access_key.encode(), canonical.encode("utf-8"), hashlib.sha1)
    )
    if not hmac.compare_digest(expected, req.signature.encode("utf-8", "surrogateescape")):
        raise SignatureMismatch()
