"""SigV4 verification against requests signed by botocore's own signers, and AWS vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from sealbox.auth.errors import (
    CredentialDateMismatch,
    IncompleteSignature,
    MissingAuthenticationToken,
    PresignedUrlExpired,
    SignatureExpired,
    SignatureMismatch,
    UnknownAccessKey,
)
from sealbox.auth.sigv4 import SignedRequest, Verifier, parse
from sealbox.clock import ManualClock
from sealbox.errors import ClientError

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "s3cr3t/Key+Value=="
CREDS = Credentials("AKIDSEALBOX", SECRET, "session/token+=")
KMS_HOST = "kms.eu-west-1.example.com"
S3_HOST = "s3.eu-west-1.example.com"


@dataclass
class Wire:
    """A request as the server receives it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def parse(self) -> SignedRequest:
        req = parse(self.method, self.path, self.query, self.headers)
        assert req is not None
        return req

    def verify(self, verifier: Verifier, secret: str = SECRET) -> SignedRequest:
        req = self.parse()
        verifier.verify(req, secret, self.method, self.path, self.query, self.headers, self.body)
        return req


@pytest.fixture(autouse=True)
def _botocore_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore signs at NOW (it asks for a naive UTC datetime)."""
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *a, **k: NOW.replace(tzinfo=None)
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def verifier(clock: ManualClock) -> Verifier:
    return Verifier(clock)


def sign(signer: SigV4Auth, request: AWSRequest) -> Wire:
    signer.add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    headers = {
        name.lower(): value.decode() if isinstance(value, bytes) else value
        for name, value in prepared.headers.items()
    }
    headers.setdefault("host", url.netloc)  # what the HTTP client adds
    body = prepared.body
    if isinstance(body, str):
        body = body.encode()
    return Wire(prepared.method, url.path, url.query, headers, body or b"")


def kms_request(
    *, method: str = "POST", path: str = "/", body: bytes = b'{"KeyId": "alias/x"}', **kw: object
) -> AWSRequest:
    headers = {
        "X-Amz-Target": "TrentService.Encrypt",
        "Content-Type": "application/x-amz-json-1.1",
        "User-Agent": "Boto3/1.35 test",
    }
    return AWSRequest(method, f"https://{KMS_HOST}{path}", data=body, headers=headers, **kw)


def kms(request: AWSRequest | None = None, region: str = "eu-west-1") -> Wire:
    return sign(SigV4Auth(CREDS, "kms", region), request or kms_request())


def s3(request: AWSRequest) -> Wire:
    return sign(S3SigV4Auth(CREDS, "s3", "eu-west-1"), request)


def s3_presigned(request: AWSRequest, expires: int = 3600) -> Wire:
    return sign(S3SigV4QueryAuth(CREDS, "s3", "eu-west-1", expires=expires), request)


# ------------------------------------------------------------------- accepted


ACCEPTED: dict[str, Callable[[], Wire]] = {
    "kms-post-json": lambda: kms(),
    "kms-get-repeated-and-empty-query": lambda: kms(
        kms_request(method="GET", body=b"", params=[("b", "2"), ("a", "1"), ("a", "0"), ("e", "")])
    ),
    "kms-query-in-url-with-flag": lambda: kms(
        AWSRequest("GET", f"https://{KMS_HOST}/?z=1&flag&a=%C3%BC&a=", data=b"")
    ),
    "kms-encoded-path": lambda: kms(kms_request(path="/a%20b/%C3%BC/x%2Fy/~t")),
    "kms-dot-segments-and-double-slash": lambda: kms(kms_request(path="/a/./b/../c//d/")),
    "kms-empty-body": lambda: kms(kms_request(body=b"")),
    "kms-date-header": lambda: kms(
        AWSRequest(
            "POST",
            f"https://{KMS_HOST}/",
            data=b"{}",
            headers={"Date": "Thu, 01 Jan 2026 12:00:00 GMT", "X-Amz-Target": "T.Op"},
        )
    ),
    "kms-signed-content-sha256-header": lambda: kms(
        AWSRequest(
            "POST",
            f"https://{KMS_HOST}/",
            data=b"{}",
            headers={"X-Amz-Content-SHA256": hashlib.sha256(b"{}").hexdigest()},
        )
    ),
    "kms-user-agent-and-expect-signed": lambda: _sign_all_headers(),
    "s3-put-odd-path": lambda: s3(
        AWSRequest("PUT", f"https://{S3_HOST}/bucket/a%20b/%C3%BC//../x.txt", data=b"data")
    ),
    "s3-get-dots-and-slashes": lambda: s3(
        AWSRequest("GET", f"https://{S3_HOST}/bucket/./../a//b/..", data=b"")
    ),
    "s3-list-query-params": lambda: s3(
        AWSRequest(
            "GET",
            f"https://{S3_HOST}/bucket",
            data=b"",
            params=[("list-type", "2"), ("prefix", "a b/ü"), ("delimiter", "/"), ("x", "")],
        )
    ),
    "s3-subresource-without-value": lambda: s3(
        AWSRequest("GET", f"https://{S3_HOST}/bucket?acl", data=b"")
    ),
    "s3-non-utf8-query-byte": lambda: s3(
        AWSRequest("GET", f"https://{S3_HOST}/bucket?prefix=%FF", data=b"")
    ),
    "s3-unsigned-payload": lambda: s3(
        _with_context(
            AWSRequest("PUT", f"https://{S3_HOST}/b/k", data=b"body"),
            client_config=Config(s3={"payload_signing_enabled": False}),
        )
    ),
    "s3-streaming-trailer": lambda: s3(
        _with_context(
            AWSRequest("PUT", f"https://{S3_HOST}/b/k", data=b"body"),
            checksum={"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}},
        )
    ),
    "s3-presigned-get": lambda: s3_presigned(
        AWSRequest(
            "GET",
            f"https://{S3_HOST}/bucket/k%20y/%C3%BC",
            params={"response-content-disposition": 'attachment; filename="a b.txt"'},
        )
    ),
    "s3-presigned-put": lambda: s3_presigned(
        AWSRequest("PUT", f"https://{S3_HOST}/bucket/key", data=b"", headers={"X-Amz-Meta-A": "1"})
    ),
    "kms-presigned": lambda: sign(
        SigV4QueryAuth(CREDS, "kms", "eu-west-1", expires=60),
        AWSRequest("GET", f"https://{KMS_HOST}/a/../b", params={"Action": "ListKeys"}),
    ),
}


def _with_context(request: AWSRequest, **context: object) -> AWSRequest:
    request.context.update(context)
    return request


class _SignEverything(SigV4Auth):  # type: ignore[misc]
    """A client that signs headers botocore never signs (user-agent, expect)."""

    def headers_to_sign(self, request: AWSRequest) -> object:
        headers = super().headers_to_sign(request)
        for name in ("User-Agent", "Expect"):
            headers[name.lower()] = request.headers[name]
        return headers


def _sign_all_headers() -> Wire:
    request = kms_request()
    del request.headers["User-Agent"]  # HTTPHeaders appends on assignment
    request.headers["User-Agent"] = "curl/8   with   spaces "
    request.headers["Expect"] = "100-continue"
    return sign(_SignEverything(CREDS, "kms", "eu-west-1"), request)


@pytest.mark.parametrize("case", ACCEPTED)
def test_botocore_signed_requests_verify(case: str, verifier: Verifier) -> None:
    wire = ACCEPTED[case]()
    req = wire.verify(verifier)
    assert req.access_key_id == "AKIDSEALBOX"
    assert req.region == "eu-west-1"
    assert req.security_token == "session/token+="
    assert req.amz_date == NOW
    assert req.presigned == ("X-Amz-Signature=" in wire.query)


def test_parsed_fields(verifier: Verifier) -> None:
    req = kms().verify(verifier)
    assert req == SignedRequest(
        access_key_id="AKIDSEALBOX",
        scope_date="20260101",
        region="eu-west-1",
        service="kms",
        signed_headers=(
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target",
        ),
        signature=req.signature,
        amz_date=NOW,
        security_token="session/token+=",
        presigned=False,
        expires_seconds=None,
        payload_hash=None,
    )
    presigned = ACCEPTED["s3-presigned-get"]().parse()
    assert (presigned.presigned, presigned.expires_seconds, presigned.service) == (True, 3600, "s3")
    assert presigned.signed_headers == ("host",)
    s3_put = ACCEPTED["s3-put-odd-path"]().parse()
    assert s3_put.payload_hash == hashlib.sha256(b"data").hexdigest()
    assert ACCEPTED["s3-unsigned-payload"]().parse().payload_hash == "UNSIGNED-PAYLOAD"


def test_boto3_client_request_verifies() -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.awsrequest import AWSResponse

    captured: list[object] = []

    class _Raw:
        def stream(self, **_: object) -> Iterator[bytes]:
            return iter([b"{}"])

    def capture(request: object, **_: object) -> AWSResponse:
        captured.append(request)
        return AWSResponse("http://x", 200, {}, _Raw())

    session = boto3.session.Session(
        aws_access_key_id="AKIDSEALBOX",
        aws_secret_access_key=SECRET,
        aws_session_token="tok",
        region_name="eu-west-1",
    )
    client = session.client("kms", endpoint_url="http://127.0.0.1:1")
    client.meta.events.register("before-send", capture)
    client.encrypt(KeyId="alias/x", Plaintext=b"secret data")
    prepared = captured[0]
    url = urlsplit(prepared.url)  # type: ignore[attr-defined]
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v
        for k, v in prepared.headers.items()  # type: ignore[attr-defined]
    }
    headers["host"] = url.netloc
    wire = Wire("POST", url.path, url.query, headers, prepared.body)  # type: ignore[attr-defined]
    req = wire.parse()
    Verifier(ManualClock(req.amz_date)).verify(
        req, SECRET, wire.method, wire.path, wire.query, wire.headers, wire.body
    )


def test_signing_key_is_cached(verifier: Verifier) -> None:
    for _ in range(3):
        kms().verify(verifier)
    info = verifier._signing_key.cache_info()
    assert (info.misses, info.hits) == (1, 2)


# ------------------------------------------------------------------ tampering


def _mutate_header(name: str, value: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        wire.headers[name] = value

    return mutate


def _drop_header(name: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        del wire.headers[name]

    return mutate


def _flip_body(wire: Wire) -> None:
    assert wire.body
    wire.body = bytes([wire.body[0] ^ 1]) + wire.body[1:]


def _set(**changes: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        for key, value in changes.items():
            setattr(wire, key, value)

    return mutate


def _auth_replace(old: str, new: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        assert old in wire.headers["authorization"]
        wire.headers["authorization"] = wire.headers["authorization"].replace(old, new)

    return mutate


def _query_replace(old: str, new: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        assert old in wire.query
        wire.query = wire.query.replace(old, new)

    return mutate


TAMPERED: dict[str, tuple[str, Callable[[Wire], None]]] = {
    "body-byte": ("kms-post-json", _flip_body),
    "header-value": ("kms-post-json", _mutate_header("x-amz-target", "TrentService.Decrypt")),
    "header-whitespace-inside": ("kms-post-json", _mutate_header("content-type", "a pplication")),
    "security-token": ("kms-post-json", _mutate_header("x-amz-security-token", "other")),
    "dropped-signed-header": ("kms-post-json", _drop_header("content-type")),
    "host": ("kms-post-json", _mutate_header("host", "evil.example.com")),
    "path": ("kms-post-json", _set(path="/other")),
    "path-non-s3-encoding": ("kms-encoded-path", _set(path="/a%20b/%C3%BC/x/y/~t")),
    "method": ("kms-post-json", _set(method="PUT")),
    "query-added": ("kms-post-json", _set(query="a=1")),
    "query-value": ("kms-get-repeated-and-empty-query", _query_replace("a=0", "a=9")),
    "query-repeated-dropped": ("kms-get-repeated-and-empty-query", _query_replace("&a=0", "")),
    "region": ("kms-post-json", _auth_replace("/eu-west-1/", "/us-east-1/")),
    "service": ("kms-post-json", _auth_replace("/kms/", "/sqs/")),
    "signed-headers-list": (
        "kms-post-json",
        _auth_replace("x-amz-security-token;x-amz-target", "x-amz-security-token"),
    ),
    "signature-non-ascii": ("kms-post-json", _auth_replace("Signature=", "Signature=\u00e9")),
    "sent-hash-not-body": (
        "kms-post-json",
        _mutate_header("x-amz-content-sha256", hashlib.sha256(b"x").hexdigest()),
    ),
    "date-header-changed": (
        "kms-date-header",
        _mutate_header("date", "Thu, 01 Jan 2026 12:00:01 GMT"),
    ),
    "s3-path-dots": ("s3-get-dots-and-slashes", _set(path="/bucket/a//b/..")),
    "s3-path-reencoded": ("s3-put-odd-path", _set(path="/bucket/a b/ü//../x.txt")),
    "s3-payload-hash": (
        "s3-put-odd-path",
        _mutate_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ),
    "s3-streaming-to-unsigned": (
        "s3-streaming-trailer",
        _mutate_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ),
    "s3-query": ("s3-list-query-params", _query_replace("list-type=2", "list-type=1")),
    "presigned-query": ("s3-presigned-get", _query_replace("attachment", "inline")),
    "presigned-expires": (
        "s3-presigned-get",
        _query_replace("X-Amz-Expires=3600", "X-Amz-Expires=7200"),
    ),
    "presigned-path": ("s3-presigned-get", _set(path="/bucket/other")),
    "presigned-method": ("s3-presigned-put", _set(method="DELETE")),
    "presigned-signed-header": ("s3-presigned-put", _mutate_header("x-amz-meta-a", "2")),
    "presigned-token": (
        "s3-presigned-get",
        _query_replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x"),
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_tampering_is_a_signature_mismatch(case: str, verifier: Verifier) -> None:
    base, mutate = TAMPERED[case]
    wire = ACCEPTED[base]()
    mutate(wire)
    with pytest.raises(SignatureMismatch) as exc:
        wire.verify(verifier)
    assert exc.value.code == "InvalidSignatureException"
    assert exc.value.http_status == 400


@pytest.mark.parametrize("case", ["kms-post-json", "s3-put-odd-path", "s3-presigned-get"])
def test_wrong_secret(case: str, verifier: Verifier) -> None:
    wire = ACCEPTED[case]()
    req = wire.parse()
    with pytest.raises(SignatureMismatch) as exc:
        wire.verify(verifier, secret="not-the-secret")
    message = str(exc.value)
    assert "calculated does not match" in message
    for leak in (SECRET, "not-the-secret", req.signature):
        assert leak not in message


def test_unsigned_extra_header_is_not_bound(verifier: Verifier) -> None:
    """Headers outside SignedHeaders are the caller's business (user-agent changes)."""
    wire = kms()
    wire.headers["user-agent"] = "something else"
    wire.headers["x-forwarded-for"] = "1.2.3.4"
    wire.verify(verifier)


# ----------------------------------------------------------------- incomplete


def test_no_auth_at_all_is_none() -> None:
    assert parse("GET", "/", "", {"host": KMS_HOST}) is None
    assert parse("GET", "/b/k", "prefix=a&X-Amz-Date=x", {"host": S3_HOST}) is None
    err = MissingAuthenticationToken()
    assert (err.code, err.http_status) == ("MissingAuthenticationTokenException", 400)
    unknown = UnknownAccessKey()
    assert unknown.code == "UnrecognizedClientException"
    assert unknown.message == "The security token included in the request is invalid."
    assert isinstance(unknown, ClientError)


GOOD_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


@pytest.mark.parametrize(
    ("authorization", "headers", "expected"),
    [
        (
            "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abc",
            {},
            "requires 'Credential' parameter",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, Signature=abc",
            {},
            "requires 'SignedHeaders' parameter",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, "
            "SignedHeaders=host",
            {},
            "requires 'Signature' parameter",
        ),
        (GOOD_AUTH, {"x-amz-date": None}, "either a 'X-Amz-Date' or a 'Date' header"),
        (GOOD_AUTH, {"x-amz-date": "2026-01-01T00:00:00Z"}, "ISO-8601 'basic format'"),
        (GOOD_AUTH, {"x-amz-date": "20261301T000000Z"}, "ISO-8601 'basic format'"),
        (GOOD_AUTH.replace("host;", ""), {}, "'Host' or ':authority' must be a 'SignedHeader'"),
        (GOOD_AUTH.replace("host;", "host;;"), {}, "empty header names"),
        (GOOD_AUTH.replace("/kms/", "/"), {}, "exactly 5 slash-delimited elements"),
        (GOOD_AUTH.replace("/kms/", "/kms/x/"), {}, "exactly 5 slash-delimited elements"),
        (GOOD_AUTH.replace("aws4_request", "aws5_request"), {}, "valid terminator"),
        (GOOD_AUTH.replace("/20260101/", "/2026011/"), {}, "valid date"),
        (GOOD_AUTH.replace("/eu-west-1/", "//"), {}, "valid region"),
        (GOOD_AUTH.replace("/kms/", "//"), {}, "valid service"),
        (GOOD_AUTH.replace("AKID/", "/"), {}, "access key id"),
        (GOOD_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), {}, "Unsupported"),
        ("AWS AKID:c2lnbmF0dXJl", {}, "Unsupported"),
        ("Bearer some-token", {}, "Unsupported"),
    ],
)
def test_malformed_authorization(
    authorization: str, headers: dict[str, str | None], expected: str
) -> None:
    all_headers = {
        "host": KMS_HOST,
        "x-amz-date": "20260101T120000Z",
        "authorization": authorization,
    }
    all_headers.update(headers)  # type: ignore[arg-type]
    sent = {k: v for k, v in all_headers.items() if v is not None}
    with pytest.raises(IncompleteSignature) as exc:
        parse("POST", "/", "", sent)
    assert expected in exc.value.message
    assert exc.value.code == "IncompleteSignatureException"
    assert "some-token" not in exc.value.message


def test_all_missing_parts_are_listed() -> None:
    with pytest.raises(IncompleteSignature) as exc:
        parse("POST", "/", "", {"host": KMS_HOST, "authorization": "AWS4-HMAC-SHA256 "})
    for part in ("'Credential'", "'Signature'", "'SignedHeaders'", "'X-Amz-Date'"):
        assert part in exc.value.message


def test_credential_date_must_be_the_request_date() -> None:
    headers = {"host": KMS_HOST, "x-amz-date": "20260102T000000Z", "authorization": GOOD_AUTH}
    with pytest.raises(CredentialDateMismatch) as exc:
        parse("POST", "/", "", headers)
    assert exc.value.code == "InvalidSignatureException"
    assert "'20260101' != '20260102'" in exc.value.message


def test_s3_header_auth_requires_content_sha256(verifier: Verifier) -> None:
    wire = ACCEPTED["s3-put-odd-path"]()
    del wire.headers["x-amz-content-sha256"]
    with pytest.raises(IncompleteSignature, match="x-amz-content-sha256"):
        wire.verify(verifier)


def _presigned_drop(param: str) -> Callable[[Wire], None]:
    def mutate(wire: Wire) -> None:
        wire.query = "&".join(p for p in wire.query.split("&") if not p.startswith(param + "="))

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_presigned_drop("X-Amz-Signature"), "must include 'X-Amz-Signature'"),
        (_presigned_drop("X-Amz-Date"), "must include 'X-Amz-Date'"),
        (_presigned_drop("X-Amz-SignedHeaders"), "must include 'X-Amz-SignedHeaders'"),
        (_presigned_drop("X-Amz-Expires"), "must include 'X-Amz-Expires'"),
        (_presigned_drop("X-Amz-Algorithm"), "must include 'X-Amz-Algorithm'"),
        (_presigned_drop("X-Amz-Credential"), "must include 'X-Amz-Credential'"),
        (_query_replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "Unsupported"),
        (_query_replace("X-Amz-Expires=3600", "X-Amz-Expires=0"), "positive number"),
        (_query_replace("X-Amz-Expires=3600", "X-Amz-Expires=-5"), "positive number"),
        (_query_replace("X-Amz-Expires=3600", "X-Amz-Expires=1h"), "positive number"),
        (_query_replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"), "less than a week"),
        (_query_replace("X-Amz-Date=20260101T120000Z", "X-Amz-Date=2026"), "ISO8601"),
        (_query_replace("X-Amz-Date=", "X-Amz-Date=1&X-Amz-Date="), "repeated"),
        (_mutate_header("authorization", GOOD_AUTH), "Only one auth mechanism"),
    ],
)
def test_malformed_presigned(mutate: Callable[[Wire], None], expected: str) -> None:
    wire = ACCEPTED["s3-presigned-get"]()
    mutate(wire)
    with pytest.raises(IncompleteSignature, match=expected):
        wire.parse()


def test_presigned_expires_max_is_accepted(clock: ManualClock, verifier: Verifier) -> None:
    wire = s3_presigned(AWSRequest("GET", f"https://{S3_HOST}/b/k"), expires=604800)
    clock.advance(timedelta(days=7))
    wire.verify(verifier)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(PresignedUrlExpired):
        wire.verify(verifier)


# ----------------------------------------------------------------------- time


@pytest.mark.parametrize("case", ["kms-post-json", "s3-put-odd-path"])
def test_clock_skew_boundaries(case: str, clock: ManualClock, verifier: Verifier) -> None:
    wire = ACCEPTED[case]()
    for offset in (timedelta(minutes=15), timedelta(minutes=-15), timedelta(0)):
        clock.set(NOW + offset)
        wire.verify(verifier)


def test_signature_expired_message(clock: ManualClock, verifier: Verifier) -> None:
    wire = kms()
    clock.set(NOW + timedelta(minutes=25))
    with pytest.raises(SignatureExpired) as exc:
        wire.verify(verifier)
    assert exc.value.code == "InvalidSignatureException"
    assert exc.value.message == (
        "Signature expired: 20260101T120000Z is now earlier than 20260101T121000Z "
        "(20260101T122500Z - 15 min.)"
    )
    assert not isinstance(exc.value, PresignedUrlExpired)


def test_signature_not_yet_current_message(clock: ManualClock, verifier: Verifier) -> None:
    wire = kms()
    clock.set(NOW - timedelta(minutes=15, seconds=1))
    with pytest.raises(SignatureExpired) as exc:
        wire.verify(verifier)
    assert exc.value.message == (
        "Signature not yet current: 20260101T120000Z is still later than 20260101T115959Z "
        "(20260101T114459Z + 15 min.)"
    )


def test_custom_skew(clock: ManualClock) -> None:
    wire = kms()
    clock.set(NOW + timedelta(minutes=6))
    with pytest.raises(SignatureExpired, match=r"- 5 min\.\)"):
        wire.verify(Verifier(clock, max_skew=timedelta(minutes=5)))


def test_presigned_expiry(clock: ManualClock, verifier: Verifier) -> None:
    wire = ACCEPTED["s3-presigned-get"]()
    clock.set(NOW + timedelta(seconds=3600))  # the last valid second
    wire.verify(verifier)
    clock.set(NOW + timedelta(seconds=3601))
    with pytest.raises(PresignedUrlExpired) as exc:
        wire.verify(verifier)
    assert isinstance(exc.value, SignatureExpired)
    assert exc.value.message == "Request has expired"


def test_presigned_not_yet_valid(clock: ManualClock, verifier: Verifier) -> None:
    wire = ACCEPTED["s3-presigned-get"]()
    clock.set(NOW - timedelta(minutes=14))
    wire.verify(verifier)
    clock.set(NOW - timedelta(minutes=16))
    with pytest.raises(SignatureExpired, match="not yet current"):
        wire.verify(verifier)


def test_time_is_checked_before_the_signature(clock: ManualClock, verifier: Verifier) -> None:
    wire = kms()
    clock.set(NOW + timedelta(hours=1))
    with pytest.raises(SignatureExpired):
        wire.verify(verifier, secret="wrong")


# ------------------------------------------------------ AWS SigV4 test suite


SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_CREDENTIAL = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# (name, method, raw path, raw query, extra headers, signature) from AWS's published
# aws-sig-v4-test-suite; the requests are sent as written there (raw paths).
SUITE = [
    (
        "get-vanilla",
        "GET",
        "/",
        "",
        {},
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "post-vanilla",
        "POST",
        "/",
        "",
        {},
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/",
        "Param2=value2&Param1=value1",
        {},
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-empty-query-key",
        "GET",
        "/",
        "Param1=value1",
        {},
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ),
    (
        "post-vanilla-query",
        "POST",
        "/",
        "Param1=value1",
        {},
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET",
        "/",
        f"{UNRESERVED}={UNRESERVED}",
        {},
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    (
        "get-vanilla-utf8-query",
        "GET",
        "/",
        "\u1234=bar",
        {},
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-utf8",
        "GET",
        "/\u1234",
        "",
        {},
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "get-space",
        "GET",
        "/example space/",
        "",
        {},
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    (
        "get-slash-pointless-dot",
        "GET",
        "/./example",
        "",
        {},
        "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    ),
    (
        "get-unreserved",
        "GET",
        f"/{UNRESERVED}",
        "",
        {},
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        "",
        {"my-header1": " value1", "my-header2": ' "a   b   c"'},
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "post-header-key-sort",
        "POST",
        "/",
        "",
        {"my-header1": "value1"},
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
]


@pytest.mark.parametrize(("name", "method", "path", "query", "extra", "signature"), SUITE)
def test_aws_test_suite_vectors(
    name: str, method: str, path: str, query: str, extra: dict[str, str], signature: str
) -> None:
    signed = ";".join(sorted(["host", "x-amz-date", *extra]))
    headers = {
        "host": "example.amazonaws.com",
        "x-amz-date": "20150830T123600Z",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={SUITE_CREDENTIAL}, SignedHeaders={signed}, "
            f"Signature={signature}"
        ),
        **extra,
    }
    req = parse(method, path, query, headers)
    assert req is not None
    verifier = Verifier(ManualClock(datetime(2015, 8, 30, 12, 36, tzinfo=UTC)))
    verifier.verify(req, SUITE_SECRET, method, path, query, headers, b"")
    wrong = replace(req, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    with pytest.raises(SignatureMismatch):
        verifier.verify(wrong, SUITE_SECRET, method, path, query, headers, b"")
