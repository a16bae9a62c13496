"""Compression of generated XML/JSON responses, never of object bodies."""

from __future__ import annotations

import gzip
import http.client

import brotli
import pytest
import zstandard

from coffer.server import compression
from tests.server_process import ServerProcess


def request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    assert len(data) == int(response.getheader("content-length", "-1"))
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


@pytest.fixture
def listing_bucket(s3, bucket: str) -> str:  # type: ignore[no-untyped-def]
    for i in range(40):
        s3.put_object(Bucket=bucket, Key=f"some/longish/prefix/key-{i:04d}.txt", Body=b"x")
    # An object whose own type is XML: its body must come back byte for byte.
    body = b"<a>" + b"<b>repeat</b>" * 500 + b"</a>"
    s3.put_object(Bucket=bucket, Key="doc.xml", Body=body, ContentType="application/xml")
    return bucket


DECODERS = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 24),
}


@pytest.mark.parametrize("codec", ["gzip", "br", "zstd"])
def test_listing_is_compressed(server: ServerProcess, listing_bucket: str, codec: str) -> None:
    _, _, plain = request(server.port, "GET", f"/{listing_bucket}?list-type=2", {})
    status, headers, body = request(server.port, "GET", f"/{listing_bucket}?list-type=2", {"Accept-Encoding": codec})
    assert status == 200
    assert headers["content-encoding"] == codec
    assert "Accept-Encoding" in headers["vary"]
    assert len(body) < len(plain) / 3
    decoded = DECODERS[codec](body)
    assert decoded.count(b"<Key>") == 41
    # Same document apart from nothing at all: listings are deterministic.
    assert decoded == plain


def test_identity_and_preferences(server: ServerProcess, listing_bucket: str) -> None:
    path = f"/{listing_bucket}?list-type=2"
    _, headers, _ = request(server.port, "GET", path, {"Accept-Encoding": "identity"})
    assert "content-encoding" not in headers
    _, headers, _ = request(server.port, "GET", path, {})
    assert "content-encoding" not in headers
    _, headers, _ = request(server.port, "GET", path, {"Accept-Encoding": "gzip;q=1.0, br;q=0.5"})
    assert headers["content-encoding"] == "gzip"
    _, headers, _ = request(server.port, "GET", path, {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert headers["content-encoding"] == "zstd"
    _, headers, _ = request(server.port, "GET", path, {"Accept-Encoding": "gzip;q=0, br;q=0, zstd;q=0"})
    assert "content-encoding" not in headers


def test_object_bodies_are_never_compressed(server: ServerProcess, listing_bucket: str) -> None:
    status, headers, body = request(server.port, "GET", f"/{listing_bucket}/doc.xml", {"Accept-Encoding": "gzip, br"})
    assert status == 200
    assert "content-encoding" not in headers
    assert headers["content-type"] == "application/xml"
    assert body.startswith(b"<a><b>repeat</b>") and len(body) == 7 + 13 * 500


def test_small_responses_stay_plain(server: ServerProcess, bucket: str) -> None:
    # An empty listing and a NoSuchKey error are below the minimum size.
    _, headers, body = request(server.port, "GET", f"/{bucket}?list-type=2", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in headers and b"<KeyCount>0</KeyCount>" in body
    status, headers, body = request(server.port, "GET", f"/{bucket}/nope", {"Accept-Encoding": "gzip"})
    assert status == 404 and "content-encoding" not in headers and b"NoSuchKey" in body


def test_choose() -> None:
    assert compression.choose(None) is None
    assert compression.choose("") is None
    assert compression.choose("deflate") is None
    assert compression.choose("*") == "zstd"
    assert compression.choose("gzip;q=0.8, *;q=0.1") == "gzip"
    assert compression.choose("GZIP") == "gzip"
    assert compression.choose("br;q=garbage, gzip") == "gzip"
