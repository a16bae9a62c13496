"""AWS Signature Version 4 for S3: the Authorization header and presigned URLs.

The canonical request is built as AWS builds it: the URI path percent-encoded
once (S3 does not normalise ``.``/``..`` or double-encode), the query sorted by
encoded name then value, the signed headers lower-cased with values trimmed and
inner whitespace folded, and the payload hash from ``x-amz-content-sha256``.
Clients differ in how they encode a path or a query before signing, so a
failed match is retried with the path and query exactly as sent and with the
configured ``public_hostname`` as Host; a request is accepted if any variant
matches. Signatures are compared in constant time.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from coffer.server.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_MAX_SIGNED_HEADERS = 64
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class V4Credential:
    """What a client claims: ``Credential=AK/DATE/REGION/SERVICE/aws4_request`` plus signed headers."""

    access_key: str
    date: str  # YYYYMMDD
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _malformed(detail: str) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}")


def _query_error(detail: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", detail)


def parse_credential(credential: str, signed_headers: str, signature: str) -> V4Credential:
    """Validate the pieces of a SigV4 credential (header or query form)."""
    parts = credential.strip().rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise _malformed('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    access_key, date, region, service, terminal = parts
    if len(date) != 8 or not date.isdigit() or not date.isascii():
        raise _malformed(f"incorrect date format '{date}'. The date in the credential must be 'yyyyMMdd'.")
    if not region:
        raise _malformed("the region in the Credential is empty.")
    if service != "s3":
        raise _malformed(f"incorrect service '{service}'. This endpoint belongs to 's3'.")
    if terminal != "aws4_request":
        raise _malformed(f"incorrect terminal '{terminal}'. This endpoint uses 'aws4_request'.")
    names = tuple(h.strip().lower() for h in signed_headers.split(";"))
    if not signed_headers.strip() or any(not h for h in names) or len(names) > _MAX_SIGNED_HEADERS:
        raise _malformed("the SignedHeaders list is empty or malformed.")
    return V4Credential(access_key, date, region, service, names, signature.strip())


# What SDKs send, matched in one go; anything else takes the general path below.
_COMMON_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([A-Za-z0-9._\-]+)/(\d{8})/([a-z0-9\-]+)/s3/aws4_request, ?"
    r"SignedHeaders=([a-z0-9\-;]+), ?Signature=([0-9a-f]{64})"
)


def parse_authorization(value: str) -> V4Credential:
    """``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    common = _COMMON_AUTHORIZATION.fullmatch(value)
    if common is not None:
        access_key, date, region, names, signature = common.groups()
        signed = tuple(names.split(";"))
        if all(signed) and len(signed) <= _MAX_SIGNED_HEADERS:
            return V4Credential(access_key, date, region, "s3", signed, signature)
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise S3Error("InvalidArgument", "Unsupported Authorization Type", ArgumentName="Authorization")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if not sep:
            raise _malformed(f"the authorization component '{part.strip()[:64]}' is malformed.")
        params[name.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in params]
    if missing:
        raise _malformed(f"the authorization header requires {', '.join(missing)}.")
    return parse_credential(params["Credential"], params["SignedHeaders"], params["Signature"])


_recent_dates: dict[str, float | None] = {}


def parse_amz_date(value: str) -> float | None:
    """``20130524T000000Z`` -> epoch seconds; None if malformed (requests in one second share it: cached)."""
    try:
        return _recent_dates[value]
    except KeyError:
        pass
    when = _parse_amz_date(value)
    if len(_recent_dates) > 256:
        _recent_dates.clear()
    _recent_dates[value] = when
    return when


def _parse_amz_date(value: str) -> float | None:
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not value.isascii():
        return None
    digits = value[:8] + value[9:15]
    if not digits.isdigit():
        return None
    year, month, day = int(value[:4]), int(value[4:6]), int(value[6:8])
    hour, minute, second = int(value[9:11]), int(value[11:13]), int(value[13:15])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year or 1, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 60 or year < 1970:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def amz_date(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


# ---------------------------------------------------------------------- canonical request
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9\-._~/]*")


def canonical_uri(raw_path: bytes) -> str:
    """The path URI-encoded once: every byte but unreserved characters and '/'."""
    if _PLAIN_PATH.fullmatch(raw_path):  # the common case: nothing to decode or encode
        return raw_path.decode("ascii") or "/"
    return quote(unquote_to_bytes(raw_path), safe="/~") or "/"


def canonical_query(raw_query: bytes, drop: str | None = None, *, normalize: bool = True) -> str:
    """Sorted ``name=value`` pairs; ``normalize`` re-encodes each one, otherwise they stay as sent."""
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split(b"&"):
        if not item:
            continue
        name, _, value = item.partition(b"=")
        if normalize:
            key, val = quote(unquote_to_bytes(name), safe="~"), quote(unquote_to_bytes(value), safe="~")
        else:
            key, val = name.decode("latin-1"), value.decode("latin-1")
        if drop is not None and unquote_to_bytes(name) == drop.encode():
            continue
        pairs.append((key, val))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(
    headers: dict[str, str], names: tuple[str, ...], host: str | None = None, utf8: bool = False
) -> str:
    """``name:value\n`` lines. Header values arrive as latin-1 text; ``utf8`` re-reads their bytes as
    UTF-8 (what clients that send UTF-8 header bytes signed)."""
    lines = []
    for name in names:
        value = host if name == "host" and host is not None else headers.get(name, "")
        if utf8:
            value = value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def canonical_request(
    method: str, uri: str, query: str, headers: str, signed: tuple[str, ...], payload_hash: str
) -> str:
    return f"{method}\n{uri}\n{query}\n{headers}\n{';'.join(signed)}\n{payload_hash}"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


_key_cache: dict[tuple[str, str, str, str], tuple[str, bytes]] = {}


def signing_key(access_key: str, secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """kSigning, cached per key and day (four HMACs saved on every request)."""
    cache_key = (access_key, date, region, service)
    hit = _key_cache.get(cache_key)
    if hit is not None and hmac.compare_digest(hit[0].encode(), secret.encode()):
        return hit[1]
    key = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    if len(_key_cache) > 4096:
        _key_cache.clear()
    _key_cache[cache_key] = (secret, key)
    return key


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), provided.encode("utf-8", "replace"))


# ---------------------------------------------------------------------- verification
@dataclass(slots=True)
class SignedRequest:
    """The parts of an HTTP request a signature covers."""

    method: str
    raw_path: bytes
    raw_query: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class Verified:
    """A matched signature: what streaming chunk signatures chain from."""

    key: bytes
    timestamp: str
    scope: str
    signature: str


def _variants(
    req: SignedRequest, cred: V4Credential, payload_hash: str, hosts: tuple[str | None, ...], drop: str | None
) -> Iterator[str]:
    """Canonical requests to try, most likely first; the alternatives are built only if needed."""
    uri = canonical_uri(req.raw_path)
    query = canonical_query(req.raw_query, drop)
    headers = canonical_headers(req.headers, cred.signed_headers)
    yield canonical_request(req.method, uri, query, headers, cred.signed_headers, payload_hash)
    uris = [uri]
    as_sent = req.raw_path.decode("latin-1") or "/"
    if as_sent != uri:
        uris.append(as_sent)
    queries = [query]
    raw_q = canonical_query(req.raw_query, drop, normalize=False)
    if raw_q != query:
        queries.append(raw_q)
    encodings = [False]
    if not all(req.headers.get(name, "").isascii() for name in cred.signed_headers):
        encodings.append(True)
    for host in hosts:
        for utf8 in encodings:
            headers = canonical_headers(req.headers, cred.signed_headers, host, utf8)
            for u in uris:
                for q in queries:
                    if host is None and not utf8 and u is uri and q is query:
                        continue  # the first one, already tried
                    yield canonical_request(req.method, u, q, headers, cred.signed_headers, payload_hash)


def check_signature(
    req: SignedRequest,
    cred: V4Credential,
    secret: str,
    timestamp: str,
    payload_hash: str,
    *,
    public_host: str | None = None,
    drop_query: str | None = None,
) -> Verified:
    """Raise SignatureDoesNotMatch unless some canonical form of ``req`` matches ``cred.signature``."""
    key = signing_key(cred.access_key, secret, cred.date, cred.region, cred.service)
    hosts: tuple[str | None, ...] = (None,)
    if public_host and public_host != req.headers.get("host"):  # host is always signed (check_signed_headers)
        hosts = (None, public_host)
    first: tuple[str, str] | None = None
    for canonical in _variants(req, cred, payload_hash, hosts, drop_query):
        sts = string_to_sign(timestamp, cred.scope, canonical)
        if signatures_equal(sign(key, sts), cred.signature):
            return Verified(key, timestamp, cred.scope, cred.signature)
        if first is None:
            first = (canonical, sts)
    assert first is not None
    raise mismatch(cred.access_key, cred.signature, first[1], first[0])


def mismatch(access_key: str, provided: str, sts: str, canonical: str | None = None) -> S3Error:
    """SignatureDoesNotMatch with the diagnostic fields AWS returns (no secret is in them)."""
    fields = {
        "AWSAccessKeyId": access_key,
        "StringToSign": sts,
        "SignatureProvided": provided,
        "StringToSignBytes": " ".join(f"{b:02x}" for b in sts.encode("utf-8")),
    }
    if canonical is not None:
        fields["CanonicalRequest"] = canonical
        fields["CanonicalRequestBytes"] = " ".join(f"{b:02x}" for b in canonical.encode("utf-8"))
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        extra=fields,
    )


def check_clock(request_time: float, now: float) -> None:
    if abs(now - request_time) > MAX_SKEW_SECONDS:
        raise S3Error(
            "RequestTimeTooSkewed",
            RequestTime=amz_date(request_time),
            ServerTime=amz_date(now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000),
        )


def header_timestamp(headers: dict[str, str]) -> tuple[str, float]:
    """The request time of a header-signed request: x-amz-date, else Date (RFC 1123)."""
    raw = headers.get("x-amz-date")
    if raw is not None:
        when = parse_amz_date(raw.strip())
        if when is not None:
            return raw.strip(), when
    else:
        from coffer.server.http import parse_http_date

        date = headers.get("date")
        when = parse_http_date(date) if date else None
        if when is not None and when >= 0:
            return amz_date(when), when
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def payload_hash_of(headers: dict[str, str], method: str) -> str:
    value = headers.get("x-amz-content-sha256")
    if value is None:
        if method in ("GET", "HEAD", "DELETE", "OPTIONS") and headers.get("content-length", "0") in ("", "0"):
            return EMPTY_SHA256
        raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    value = value.strip()
    if value in (UNSIGNED_PAYLOAD, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
        return value
    if len(value) == 64 and set(value) <= _HEX:
        return value
    if value.startswith("STREAMING-AWS4-ECDSA"):
        raise S3Error("NotImplemented", "SigV4a (ECDSA) signing is not implemented by Coffer.")
    raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA256.")


# The request envelope: headers a client may add around a signed request without signing them.
# Each only describes how the body is framed or what it hashes to, and the server checks it
# against the bytes themselves (a wrong value fails the upload, it never widens what the
# signature allows): x-amz-content-sha256 (AWS does not require it signed), and the aws-chunked
# x-amz-decoded-content-length and x-amz-trailer. Every other x-amz-* header must be signed, as
# AWS requires: x-amz-copy-source, -meta-*, -tagging, -checksum-*, -server-side-encryption-* ...
UNSIGNED_ENVELOPE = frozenset({"x-amz-content-sha256", "x-amz-decoded-content-length", "x-amz-trailer"})


def check_signed_headers(headers: dict[str, str], signed: tuple[str, ...]) -> None:
    """AccessDenied unless ``host`` and every x-amz-* header but the envelope are signed: an unsigned
    Host lets a request be replayed against another (virtual-hosted) bucket, an unsigned
    x-amz-copy-source turns a PUT into a copy of anything the signer may read."""
    unsigned = [
        name for name in headers if name[:6] == "x-amz-" and name not in signed and name not in UNSIGNED_ENVELOPE
    ]
    if "host" not in signed:
        unsigned.insert(0, "host")
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )


# ---------------------------------------------------------------------- presigned URLs
PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@dataclass(frozen=True, slots=True)
class Presigned:
    credential: V4Credential
    timestamp: str
    issued: float
    expires: int


def parse_presigned(query: dict[str, str], now: float) -> Presigned:
    """Validate the X-Amz-* query parameters of a presigned URL, including its expiry."""
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        if "X-Amz-Algorithm" in query and query["X-Amz-Algorithm"].startswith("AWS4-ECDSA"):
            raise S3Error("NotImplemented", "SigV4a (ECDSA) signing is not implemented by Coffer.")
        raise _query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    if any(p not in query for p in PRESIGN_PARAMS):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    raw_expires = query["X-Amz-Expires"].strip()
    if not raw_expires.lstrip("-").isdigit() or not raw_expires.isascii() or len(raw_expires) > 12:
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(raw_expires)
    # Out of range is refused like an expired URL (403), as S3-compatible servers and s3-tests expect.
    if expires > MAX_PRESIGN_SECONDS:
        raise S3Error("AccessDenied", "X-Amz-Expires must be less than a week (in seconds) that is; 604800")
    if expires < 1:
        raise S3Error("AccessDenied", "X-Amz-Expires must be at least 1 second", extra={"X-Amz-Expires": raw_expires})
    timestamp = query["X-Amz-Date"].strip()
    issued = parse_amz_date(timestamp)
    if issued is None:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    credential = parse_credential(query["X-Amz-Credential"], query["X-Amz-SignedHeaders"], query["X-Amz-Signature"])
    if credential.date != timestamp[:8]:
        raise _malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
    if issued - now > MAX_SKEW_SECONDS:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if now > issued + expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra={"X-Amz-Expires": str(expires), "Expires": amz_date(issued + expires), "ServerTime": amz_date(now)},
        )
    return Presigned(credential, timestamp, issued, expires)
