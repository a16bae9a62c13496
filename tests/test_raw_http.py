"""Requests no SDK would send (or sends in ways boto3 over plain HTTP does not), over http.client.

Every error must come back as S3 error XML (Code, Message, RequestId) with the
request id also in the x-amz-request-id header; aws-chunked bodies must be
decoded, checked and stored without their framing.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import time
from xml.etree import ElementTree

import pytest

from tests.checksum_reference import reference_b64
from tests.wire import Answer, expect, parse_error, request


def get_body(server, bucket: str, key: str) -> bytes | None:  # type: ignore[no-untyped-def]
    answer = request(server, "GET", f"/{bucket}/{key}")
    if answer.status == 404:
        return None
    assert answer.status == 200, answer
    return answer.body


# ---------------------------------------------------------------------- operations and errors


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "/{b}?inventory", "GetBucketInventoryConfiguration"),
        ("GET", "/{b}?analytics", "GetBucketAnalyticsConfiguration"),
        ("PUT", "/{b}?intelligent-tiering", "PutBucketIntelligentTieringConfiguration"),
        ("POST", "/{b}/key?restore", "RestoreObject"),
    ],
)
def test_unknown_operation_is_not_implemented(server, bucket: str, method: str, path: str, operation: str) -> None:  # type: ignore[no-untyped-def]
    answer = request(server, method, path.format(b=bucket), body=b"<x/>")
    error = expect(answer, 501, "NotImplemented")
    assert operation in error["Message"]


def test_method_not_allowed(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    expect(request(server, "PATCH", f"/{bucket}/key"), 405, "MethodNotAllowed")
    expect(request(server, "POST", "/"), 405, "MethodNotAllowed")


def test_error_resource_and_request_ids(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    first = expect(request(server, "GET", f"/{bucket}/missing"), 404, "NoSuchKey")
    second = expect(request(server, "GET", f"/{bucket}/missing"), 404, "NoSuchKey")
    assert first["RequestId"] != second["RequestId"]
    assert first["Resource"] == f"/{bucket}/missing"
    assert first["Key"] == "missing"
    head = request(server, "HEAD", f"/{bucket}/missing")
    assert (head.status, head.body) == (404, b"")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<Delete><Object><Key>a</Key></Object>",  # unclosed
        b"not xml at all",
        b"<Wrong><Object><Key>a</Key></Object></Wrong>",
        b"<Delete><Object><NoKey/></Object></Delete>",
        b"<Delete></Delete>",
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        b' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        b' <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">\n'
        b' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
        b' <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">\n'
        b' <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">\n'
        b' <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">\n'
        b' <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">\n'
        b' <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">\n'
        b' <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">\n'
        b"]>\n<Delete><Object><Key>&lol9;</Key></Object></Delete>",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<Delete><Object><Key>&xxe;</Key></Object></Delete>",
    ],
    ids=["empty", "unclosed", "text", "wrong-root", "no-key", "no-objects", "billion-laughs", "external-entity"],
)
def test_delete_objects_malformed_xml(server, bucket: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    request(server, "PUT", f"/{bucket}/a", body=b"kept")
    answer = request(server, "POST", f"/{bucket}?delete", body=body, headers={"Content-Type": "application/xml"})
    expect(answer, 400, "MalformedXML")
    assert get_body(server, bucket, "a") == b"kept"


def test_delete_objects_raw(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    request(server, "PUT", f"/{bucket}/a&b", body=b"x")
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Object><Key>a&amp;b</Key></Object><Object><Key>gone</Key></Object></Delete>"
    )
    answer = request(server, "POST", f"/{bucket}?delete", body=body)
    assert answer.status == 200
    root = ElementTree.fromstring(answer.body)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert [d.findtext(f"{ns}Key") for d in root.findall(f"{ns}Deleted")] == ["a&b", "gone"]
    assert get_body(server, bucket, "a%26b") is None


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", " ", "0x10"])
@pytest.mark.parametrize("list_type", ["", "list-type=2&"])
def test_bad_max_keys(server, bucket: str, value: str, list_type: str) -> None:  # type: ignore[no-untyped-def]
    answer = request(server, "GET", f"/{bucket}?{list_type}max-keys={value.replace(' ', '%20')}")
    error = expect(answer, 400, "InvalidArgument")
    assert error.get("ArgumentName") == "max-keys"


def test_listing_without_encoding_escapes_xml(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    request(server, "PUT", f"/{bucket}/%3Ca%3E%26%22'", body=b"")  # key <a>&"'
    answer = request(server, "GET", f"/{bucket}?list-type=2")
    assert answer.status == 200
    root = ElementTree.fromstring(answer.body)
    assert [k.text for k in root.iter("{http://s3.amazonaws.com/doc/2006-03-01/}Key")] == ["<a>&\"'"]
    assert b"EncodingType" not in answer.body


def test_two_checksum_headers(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    sums = reference_b64(b"data")
    headers = {"x-amz-checksum-crc32": sums["CRC32"], "x-amz-checksum-sha1": sums["SHA1"]}
    error = expect(request(server, "PUT", f"/{bucket}/two", b"data", headers), 400, "InvalidRequest")
    assert error["Message"] == "Expecting a single x-amz-checksum- header"
    headers = {"x-amz-sdk-checksum-algorithm": "MD5"}
    error = expect(request(server, "PUT", f"/{bucket}/two", b"data", headers), 400, "InvalidRequest")
    assert error["Message"] == "Value for x-amz-sdk-checksum-algorithm header is invalid."
    assert get_body(server, bucket, "two") is None


# ---------------------------------------------------------------------- aws-chunked bodies

FAKE_SIG = "a" * 64


def aws_chunked(
    data: bytes, sizes: list[int] | None = None, trailers: dict[str, str] | None = None, signed: bool = False
) -> bytes:
    """Frame ``data`` as an aws-chunked body, exactly as the SDKs lay it out."""
    ext = f";chunk-signature={FAKE_SIG}".encode() if signed else b""
    out = bytearray()
    pos = 0
    for size in sizes or [65536] * (len(data) // 65536 + 1):
        piece = data[pos : pos + size]
        pos += len(piece)
        if piece:
            out += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + b"\r\n"
    assert pos == len(data)
    out += b"0" + ext + b"\r\n"
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    if signed and trailers:
        out += f"x-amz-trailer-signature:{FAKE_SIG}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def chunked_headers(
    data: bytes, trailer: str | None = "x-amz-checksum-crc32", payload: str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
) -> dict[str, str]:
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": payload,
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer:
        headers["x-amz-trailer"] = trailer
        headers["x-amz-sdk-checksum-algorithm"] = trailer.rsplit("-", 1)[1].upper()
    return headers


# Data that looks like framing, so a decoder that searches instead of counting breaks.
TRICKY = b"0\r\n\r\nx-amz-checksum-crc32:AAAAAA==\r\n" * 100 + os.urandom(150_000)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_unsigned_trailer_stored_without_framing(server, bucket: str, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    trailer = f"x-amz-checksum-{algorithm.lower()}"
    checksum = reference_b64(TRICKY[:4000])[algorithm]
    data = TRICKY[:4000]
    body = aws_chunked(data, [1000, 3000], {trailer: checksum})
    answer = request(server, "PUT", f"/{bucket}/chunked", body, chunked_headers(data, trailer))
    assert answer.status == 200, answer
    assert answer.headers[trailer] == checksum
    got = request(server, "GET", f"/{bucket}/chunked", headers={"x-amz-checksum-mode": "ENABLED"})
    assert got.body == data
    assert got.headers[trailer] == checksum
    assert "content-encoding" not in got.headers  # aws-chunked is framing, not the object's encoding


def test_large_chunked_body(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    import zlib

    data = TRICKY * 4
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    sizes = [1, 2, 65536, 3, 1_000_000, len(data)]  # the last one is cut short to what remains
    sizes[-1] = len(data) - sum(sizes[:-1])
    body = aws_chunked(data, sizes, {"x-amz-checksum-crc32": crc})
    assert request(server, "PUT", f"/{bucket}/big", body, chunked_headers(data)).status == 200
    assert get_body(server, bucket, "big") == data


def test_wrong_trailer_checksum_stores_nothing(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    request(server, "PUT", f"/{bucket}/kept", body=b"old")
    data = os.urandom(200_000)
    wrong = reference_b64(b"something else")["CRC32"]
    body = aws_chunked(data, trailers={"x-amz-checksum-crc32": wrong})
    for key in ("fresh", "kept"):
        error = expect(request(server, "PUT", f"/{bucket}/{key}", body, chunked_headers(data)), 400, "BadDigest")
        assert "CRC32" in error["Message"]
    assert get_body(server, bucket, "fresh") is None
    assert get_body(server, bucket, "kept") == b"old"


def test_declared_trailer_missing(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = b"no trailer follows"
    answer = request(server, "PUT", f"/{bucket}/t", aws_chunked(data), chunked_headers(data))
    expect(answer, 400, "InvalidRequest")
    assert get_body(server, bucket, "t") is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],  # ends mid-chunk
        lambda b: b[: b.rindex(b"0\r\n")],  # no final chunk
    ],
    ids=["mid-chunk", "no-final-chunk"],
)
def test_truncated_chunked_body(server, bucket: str, mangle) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(100_000)
    crc = reference_b64(b"")["CRC32"]
    body = mangle(aws_chunked(data, trailers={"x-amz-checksum-crc32": crc}))
    answer = request(server, "PUT", f"/{bucket}/cut", body, chunked_headers(data))
    expect(answer, 400, "IncompleteBody")
    assert get_body(server, bucket, "cut") is None


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcdef\r\n0\r\n\r\n",
        b"3;bogus=1\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["not-hex", "negative", "data-longer-than-size", "unknown-extension"],
)
def test_bad_chunk_framing(server, bucket: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    answer = request(server, "PUT", f"/{bucket}/bad", body, chunked_headers(b"abc", trailer=None))
    assert 400 <= answer.status < 500, answer
    assert answer.error["Code"] in ("InvalidRequest", "IncompleteBody")
    assert get_body(server, bucket, "bad") is None


def test_huge_chunk_size_rejected(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"
    answer = request(server, "PUT", f"/{bucket}/huge", body, chunked_headers(b"abc", trailer=None))
    assert 400 <= answer.status < 500, answer
    assert get_body(server, bucket, "huge") is None


def test_decoded_length_mismatch(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = b"twelve bytes"
    headers = chunked_headers(data, trailer=None)
    headers["x-amz-decoded-content-length"] = "13"
    expect(request(server, "PUT", f"/{bucket}/len", aws_chunked(data), headers), 400, "IncompleteBody")
    headers["x-amz-decoded-content-length"] = "twelve"
    expect(request(server, "PUT", f"/{bucket}/len", aws_chunked(data), headers), 400, "InvalidArgument")
    assert get_body(server, bucket, "len") is None


def test_signed_framing_decoded(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Chunk signatures are parsed off (verified by the auth layer, not here)."""
    data = TRICKY[:70_000]
    body = aws_chunked(data, [65536, 70_000 - 65536], signed=True)
    headers = chunked_headers(data, trailer=None, payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    assert request(server, "PUT", f"/{bucket}/signed", body, headers).status == 200
    assert get_body(server, bucket, "signed") == data

    crc = reference_b64(data)["CRC32C"]
    body = aws_chunked(data, [100, 70_000 - 100], {"x-amz-checksum-crc32c": crc}, signed=True)
    headers = chunked_headers(data, "x-amz-checksum-crc32c", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    answer = request(server, "PUT", f"/{bucket}/signed-trailer", body, headers)
    assert answer.status == 200, answer
    assert answer.headers["x-amz-checksum-crc32c"] == crc
    assert get_body(server, bucket, "signed-trailer") == data


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("aws-chunked", None), ("gzip,aws-chunked", "gzip"), ("aws-chunked, br", "br"), ("gzip, deflate", None)],
)
def test_aws_chunked_content_encoding_not_stored(server, bucket: str, sent: str, stored: str | None) -> None:  # type: ignore[no-untyped-def]
    data = b"encoded?"
    if "aws-chunked" in sent:
        headers = chunked_headers(data, trailer=None, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        body = aws_chunked(data)
    else:  # not chunked at all: every listed encoding is the object's
        headers, body, stored = {}, data, sent
    headers["Content-Encoding"] = sent
    assert request(server, "PUT", f"/{bucket}/enc", body, headers).status == 200
    got = request(server, "GET", f"/{bucket}/enc")
    assert got.body == data
    assert got.headers.get("content-encoding") == stored


# ---------------------------------------------------------------------- Content-Length


def raw_exchange(server, payload: bytes, shutdown: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    """Send bytes as they are on one connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not piece:
                break
            chunks.append(piece)
    return b"".join(chunks)


def test_content_length_shorter_than_body(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """The body is what Content-Length says; what follows is the next request, not object data."""
    head = f"PUT /{bucket}/short HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b"12345")
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        sock.sendall(b"EXTRA BYTES\r\n\r\n")  # garbage as the next request: refused, connection closed
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert get_body(server, bucket, "short") == b"12345"
    # All in one go the HTTP layer may drop the request along with the garbage, but
    # the extra bytes never become part of an object.
    raw_exchange(server, head.replace(b"short", b"short2") + b"12345EXTRA BYTES")
    assert get_body(server, bucket, "short2") in (None, b"12345")


def test_content_length_longer_than_body(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    head = f"PUT /{bucket}/long HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200000\r\n\r\n".encode()
    raw_exchange(server, head + os.urandom(100_000))  # then the client stops sending
    tmp = server.data_dir / "tmp"  # the disk engine's bodies in flight (the memory engine has none)
    for _ in range(50):  # the server notices the disconnect asynchronously
        if not tmp.exists() or not os.listdir(tmp):
            break
        time.sleep(0.1)
    assert not tmp.exists() or os.listdir(tmp) == []
    assert get_body(server, bucket, "long") is None


def test_missing_content_length(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    reply = raw_exchange(server, f"PUT /{bucket}/nolen HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 411"), reply
    assert b"<Code>MissingContentLength</Code>" in reply
    assert get_body(server, bucket, "nolen") is None


def test_server_survives_garbage(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    raw_exchange(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200))  # a TLS hello
    raw_exchange(server, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")
    assert request(server, "GET", f"/{bucket}?list-type=2").status == 200


def test_get_stops_reading_after_client_disconnect(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """A client that hangs up mid-download must not make the server read the rest of the object."""
    import psutil

    size = 32 * 1024 * 1024
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.putrequest("PUT", f"/{bucket}/large")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    block = os.urandom(1024 * 1024)
    for _ in range(size // len(block)):
        conn.send(block)
    assert conn.getresponse().status == 200
    conn.close()

    proc = psutil.Process(server.proc.pid)
    before = proc.io_counters().read_chars
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /{bucket}/large HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # Wait until the server has stopped reading (its read counter holds still), then compare.
    last, still = -1, 0
    for _ in range(300):
        now = proc.io_counters().read_chars
        still = still + 1 if now == last else 0
        if still >= 10:
            break
        last = now
        time.sleep(0.05)
    read = proc.io_counters().read_chars - before
    assert read < size // 2, read


@pytest.mark.parametrize("value", ["%0D%0AX-Injected:%201", "a%00b", "%7F"])
def test_response_override_with_control_characters(server, bucket: str, value: str) -> None:  # type: ignore[no-untyped-def]
    request(server, "PUT", f"/{bucket}/o", body=b"x")
    answer = request(server, "GET", f"/{bucket}/o?response-content-type={value}")
    error = expect(answer, 400, "InvalidArgument")
    assert error["ArgumentName"] == "response-content-type"
    assert "x-injected" not in answer.headers


def test_put_without_a_known_size_is_411_and_stores_nothing(server, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    """Transfer-Encoding: chunked without aws-chunked framing: S3 wants the size up front."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{bucket}/no-length")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"5\r\nhello\r\n0\r\n\r\n")
        resp = conn.getresponse()
        answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
    answer.error = parse_error(answer)
    expect(answer, 411, "MissingContentLength")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
