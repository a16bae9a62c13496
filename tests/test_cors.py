"""CORS: bucket configuration through boto3, preflight allowed and refused, headers on
actual requests (errors included), and the server-wide allow-all development setting."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess

RULES = {
    "CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]},
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["start*end"]},
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["prefix*"]},
        {
            "ID": "uploads",
            "AllowedMethods": ["PUT", "POST"],
            "AllowedOrigins": ["https://app.example.com"],
            "AllowedHeaders": ["x-amz-meta-*", "Content-Type"],
            "ExposeHeaders": ["ETag", "x-amz-request-id"],
            "MaxAgeSeconds": 3000,
        },
    ]
}


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


@pytest.fixture
def cors_bucket(s3, bucket: str) -> str:  # type: ignore[no-untyped-def]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"data")
    return bucket


def test_put_get_delete_bucket_cors(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as err:
        s3.get_bucket_cors(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert len(got) == 4
    assert got[0] == {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]}
    assert got[3] == {
        "ID": "uploads",
        "AllowedMethods": ["PUT", "POST"],
        "AllowedOrigins": ["https://app.example.com"],
        "AllowedHeaders": ["x-amz-meta-*", "Content-Type"],
        "ExposeHeaders": ["ETag", "x-amz-request-id"],
        "MaxAgeSeconds": 3000,
    }
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as err:
        s3.get_bucket_cors(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    # Deleting again is fine; a missing bucket is not.
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as err:
        s3.get_bucket_cors(Bucket="no-such-bucket-cors")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]}, "InvalidRequest"),
        ({"AllowedMethods": ["GET"], "AllowedOrigins": ["*.*.example"]}, "InvalidRequest"),
        ({"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "AllowedHeaders": ["a*b*"]}, "InvalidRequest"),
        ({"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "ExposeHeaders": ["x-*"]}, "InvalidRequest"),
    ],
)
def test_invalid_cors_rules(s3, bucket: str, rule: dict, code: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(ClientError) as err:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_malformed_cors_documents(server: ServerProcess, bucket: str) -> None:
    for body in (
        b"<CORSConfiguration></CORSConfiguration>",  # no rule
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
        b"<Nope/>",
        b"not xml",
    ):
        status, _, data = request(server.port, "PUT", f"/{bucket}?cors", body=body)
        assert status == 400, body
        assert b"<Code>MalformedXML</Code>" in data


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("foo.suffix", True),
        ("foo.bar", False),
        ("foo.suffix.get", False),
        ("startend", True),
        ("start12end", True),
        ("0start12end", False),
        ("prefix", True),
        ("prefix.suffix", True),
        ("bla.prefix", False),
    ],
)
def test_preflight_origin_wildcards(server: ServerProcess, cors_bucket: str, origin: str, allowed: bool) -> None:
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    status, got, body = request(server.port, "OPTIONS", f"/{cors_bucket}/obj", headers)
    if allowed:
        assert status == 200
        assert got["access-control-allow-origin"] == origin
        assert got["access-control-allow-methods"] == "GET"
        assert "Origin" in got["vary"]
    else:
        assert status == 403
        assert b"<Code>AccessForbidden</Code>" in body
        assert "access-control-allow-origin" not in got


def test_preflight_methods_headers_max_age(server: ServerProcess, cors_bucket: str) -> None:
    origin = "https://app.example.com"
    allowed = {
        "Origin": origin,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "X-Amz-Meta-Author, content-type",
    }
    status, got, _ = request(server.port, "OPTIONS", f"/{cors_bucket}/new-key", allowed)
    assert status == 200
    assert got["access-control-allow-origin"] == origin
    assert got["access-control-allow-methods"] == "PUT, POST"
    assert got["access-control-allow-headers"] == "x-amz-meta-author, content-type"
    assert got["access-control-expose-headers"] == "ETag, x-amz-request-id"
    assert got["access-control-max-age"] == "3000"
    assert got["access-control-allow-credentials"] == "true"
    # A header outside AllowedHeaders, a method outside AllowedMethods: refused.
    for refused in (
        {**allowed, "Access-Control-Request-Headers": "x-custom"},
        {**allowed, "Access-Control-Request-Method": "DELETE"},
        {**allowed, "Origin": "https://evil.example.com"},
    ):
        status, got, _ = request(server.port, "OPTIONS", f"/{cors_bucket}/new-key", refused)
        assert status == 403, refused
        assert "access-control-allow-origin" not in got


def test_preflight_bad_requests(server: ServerProcess, s3, cors_bucket: str) -> None:  # type: ignore[no-untyped-def]
    # No Origin, or no/invalid Access-Control-Request-Method: 400.
    assert request(server.port, "OPTIONS", f"/{cors_bucket}")[0] == 400
    assert request(server.port, "OPTIONS", f"/{cors_bucket}", {"Origin": "foo.suffix"})[0] == 400
    bad_method = {"Origin": "foo.suffix", "Access-Control-Request-Method": "BREW"}
    assert request(server.port, "OPTIONS", f"/{cors_bucket}", bad_method)[0] == 400
    # A bucket without CORS configuration refuses every preflight.
    s3.create_bucket(Bucket="no-cors-rules")
    status, _, body = request(
        server.port, "OPTIONS", "/no-cors-rules/x", {"Origin": "foo.suffix", "Access-Control-Request-Method": "GET"}
    )
    assert status == 403
    assert b"CORS is not enabled" in body


def test_actual_requests_carry_cors_headers(server: ServerProcess, cors_bucket: str) -> None:
    status, got, body = request(server.port, "GET", f"/{cors_bucket}/obj", {"Origin": "foo.suffix"})
    assert status == 200 and body == b"data"
    assert got["access-control-allow-origin"] == "foo.suffix"
    assert got["access-control-allow-methods"] == "GET"
    # Errors too (a browser must be able to read the 404).
    status, got, _ = request(server.port, "GET", f"/{cors_bucket}/missing", {"Origin": "foo.suffix"})
    assert status == 404
    assert got["access-control-allow-origin"] == "foo.suffix"
    # An origin no rule allows gets no CORS headers, but the request itself is served.
    status, got, _ = request(server.port, "GET", f"/{cors_bucket}/obj", {"Origin": "foo.bar"})
    assert status == 200
    assert "access-control-allow-origin" not in got
    # No Origin, no CORS headers.
    status, got, _ = request(server.port, "GET", f"/{cors_bucket}/obj")
    assert "access-control-allow-origin" not in got
    # A PUT from the upload origin exposes the configured headers.
    status, got, _ = request(
        server.port, "PUT", f"/{cors_bucket}/up", {"Origin": "https://app.example.com"}, body=b"123"
    )
    assert status == 200
    assert got["access-control-allow-origin"] == "https://app.example.com"
    assert got["access-control-expose-headers"] == "ETag, x-amz-request-id"


def test_wildcard_origin_answers_star(s3, server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_cors(
        Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}
    )
    status, got, _ = request(server.port, "GET", f"/{bucket}", {"Origin": "example.origin"})
    assert status == 200
    assert got["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in got


@pytest.mark.server
def test_server_wide_allow_all(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--cors-allow-all", "true").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="open")
        s3.create_bucket(Bucket="strict")
        s3.put_bucket_cors(
            Bucket="strict",
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"]}]},
        )
        preflight = {
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-amz-date, authorization",
        }
        status, got, _ = request(server.port, "OPTIONS", "/open/any", preflight)
        assert status == 200
        assert got["access-control-allow-origin"] == "http://localhost:3000"
        assert got["access-control-allow-headers"] == "x-amz-date, authorization"
        assert "ETag" in got["access-control-expose-headers"]
        status, got, _ = request(server.port, "GET", "/", {"Origin": "http://localhost:3000"})
        assert status == 200 and got["access-control-allow-origin"] == "http://localhost:3000"
        # A bucket with its own rules keeps them.
        status, _, _ = request(server.port, "OPTIONS", "/strict/any", preflight)
        assert status == 403
    finally:
        server.stop()
