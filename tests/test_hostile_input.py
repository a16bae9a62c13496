"""Hostile requests against a real authenticated server: each gets a 4xx S3 error (or is served
correctly), nothing is written, nothing outside the data directory is touched, the server keeps serving."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.auth_support import IDLE_TIMEOUT, Reply, raw_exchange, send, sign_v4, signed
from tests.server_process import ServerProcess

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&xxe;</Key></Object></Delete>"""


def _files(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = path.stat().st_size
    return found


@pytest.fixture
def fortress(auth_server: ServerProcess, main_s3, main_bucket: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """MAIN's empty bucket; afterwards: still empty, the server still serves, nothing appeared outside data/,
    and no file inside data/ is named after anything a request sent."""
    outside = auth_server.data_dir.parent
    before = {k: v for k, v in _files(outside).items() if not k.startswith("data/") and not k.endswith(".log")}
    yield main_bucket
    assert main_s3.list_objects_v2(Bucket=main_bucket)["KeyCount"] == 0
    after = {k: v for k, v in _files(outside).items() if not k.startswith("data/") and not k.endswith(".log")}
    assert after == before
    assert not any("pwned" in name or "passwd" in name for name in _files(outside))
    assert signed(auth_server, "GET", "/").status == 200


def _put(server: ServerProcess, target: str, body: bytes = b"x", headers: dict[str, str] | None = None) -> Reply:
    return signed(server, "PUT", target, body, headers)


def _is_s3_error(reply: Reply, *statuses: int) -> bool:
    return reply.status in statuses and reply.code is not None and reply.headers.get("x-amz-request-id") is not None


def test_hostile_key_names(auth_server: ServerProcess, fortress: str) -> None:
    cases = [
        f"/{fortress}/pwned%00.txt",
        f"/{fortress}/%FF%FEpwned",
        f"/{fortress}/" + "k" * 1025,
        f"/{fortress}/" + "%C3%A9" * 513,
    ]
    for target in cases:
        reply = _put(auth_server, target)
        assert _is_s3_error(reply, 400), (target[:80], reply.status, reply.body[:200])
        get = signed(auth_server, "GET", target)
        assert 400 <= get.status < 500, (target[:80], get.status)


DOT_SEGMENT_KEYS = [
    ("../../pwned", "../../pwned"),
    ("a/../../../pwned", "a/../../../pwned"),
    ("%2E%2E/%2e%2e/pwned", "../../pwned"),
    ("./pwned", "./pwned"),
    ("a/./b", "a/./b"),
    ("..", ".."),
    ("x/..", "x/.."),
    ("..%5Cwin%5Cpwned", "..\\win\\pwned"),
]


def test_dot_segment_keys_are_refused(auth_server: ServerProcess, main_s3, fortress: str) -> None:  # type: ignore[no-untyped-def]
    """A '.' or '..' path segment in a key about to be written: 400 InvalidArgument, nothing stored."""
    for raw, key in DOT_SEGMENT_KEYS:
        reply = _put(auth_server, f"/{fortress}/{raw}", b"literal")
        assert _is_s3_error(reply, 400), (raw, reply.status, reply.body[:200])
        assert b"<Code>InvalidArgument</Code>" in reply.body, raw
        with pytest.raises(ClientError) as caught:
            main_s3.put_object(Bucket=fortress, Key=key, Body=b"literal")
        assert caught.value.response["Error"]["Code"] == "InvalidArgument", key
        with pytest.raises(ClientError) as caught:
            main_s3.create_multipart_upload(Bucket=fortress, Key=key)
        assert caught.value.response["Error"]["Code"] == "InvalidArgument", key
        assert signed(auth_server, "GET", f"/{fortress}/{raw}").status == 404
    main_s3.put_object(Bucket=fortress, Key="source", Body=b"s")
    with pytest.raises(ClientError) as caught:
        main_s3.copy_object(Bucket=fortress, Key="a/../b", CopySource={"Bucket": fortress, "Key": "source"})
    assert caught.value.response["Error"]["Code"] == "InvalidArgument"
    assert [o["Key"] for o in main_s3.list_objects_v2(Bucket=fortress)["Contents"]] == ["source"]
    main_s3.delete_object(Bucket=fortress, Key="source")
    # Look-alikes that are not path segments are ordinary keys.
    for key in ("a..b", "...", ".hidden/..x/x../..."):
        main_s3.put_object(Bucket=fortress, Key=key, Body=b"fine")
        assert main_s3.get_object(Bucket=fortress, Key=key)["Body"].read() == b"fine"
        main_s3.delete_object(Bucket=fortress, Key=key)


@pytest.mark.server
def test_dot_segment_keys_allowed_stay_keys(tmp_path: Path) -> None:
    """With dot_segment_keys: allow (AWS S3's behaviour) such keys are stored as keys, never resolved as
    paths (object bodies live under random names), so nothing can land outside the bucket."""
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--dot-segment-keys", "allow").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="dots")
        for raw, key in DOT_SEGMENT_KEYS:
            reply = send(server, "PUT", f"/dots/{raw}", {}, b"literal")
            assert reply.status == 200, (raw, reply.status, reply.body[:200])
            assert s3.get_object(Bucket="dots", Key=key)["Body"].read() == b"literal"
            assert [o["Key"] for o in s3.list_objects_v2(Bucket="dots")["Contents"]] == [key]
            assert send(server, "DELETE", f"/dots/{raw}", {}).status == 204
        assert not (tmp_path / "pwned").exists() and not (tmp_path.parent / "pwned").exists()
    finally:
        server.stop()


def test_bucket_names_that_look_like_paths(auth_server: ServerProcess, fortress: str) -> None:
    for target in (
        "/..",
        "/../pwned",
        "/%2E%2E",
        "/%2e%2e%2fpwned",
        "/.%2e/.%2e/pwned",
        "/pwned%00",
        "/PWNED",
        "/a%2Fb",
    ):
        reply = _put(auth_server, target, b"")
        assert _is_s3_error(reply, 400, 403, 404, 409), (target, reply.status, reply.body[:200])
        assert 400 <= signed(auth_server, "GET", target).status < 500
    assert not (auth_server.data_dir.parent / "pwned").exists()


@pytest.mark.parametrize(
    "document",
    [b"<Delete><Object><Key>a</Key>", b"not xml at all", b"\xff\xfe<\x00", BILLION_LAUGHS, EXTERNAL_ENTITY,
     b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>", b"<Wrong/>", b""],
)  # fmt: skip
def test_malformed_xml(auth_server: ServerProcess, fortress: str, document: bytes) -> None:
    import base64
    import hashlib

    md5 = base64.b64encode(hashlib.md5(document).digest()).decode()
    reply = signed(auth_server, "POST", f"/{fortress}?delete", document, {"Content-MD5": md5})
    assert _is_s3_error(reply, 400), reply.body[:300]
    assert b"root:" not in reply.body
    create = signed(auth_server, "PUT", "/hostile-xml-bucket", document)
    assert create.status == 400 or (document == b"" and create.status == 200), create.body[:300]
    if create.status == 200:
        assert signed(auth_server, "DELETE", "/hostile-xml-bucket").status == 204


def test_malformed_ranges(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="ranged", Body=b"0123456789")
    for value in ("bytes=abc", "bytes=5-1", "bytes=1-2,4-5", "items=0-1", "bytes=--1", "bytes=", "bytes=-",
                  "bytes=99999999999999999999999-", "bytes=-99999999999999999999", "bytes=\u00e9-1"):  # fmt: skip
        reply = signed(auth_server, "GET", f"/{main_bucket}/ranged", headers={"Range": value})
        assert reply.status in (200, 206, 416), (value, reply.status)
        if reply.status == 200:
            assert reply.body == b"0123456789"
        if reply.status == 416:
            assert reply.code == "InvalidRange"
    main_s3.delete_object(Bucket=main_bucket, Key="ranged")


def test_body_shorter_than_content_length_times_out(auth_server: ServerProcess, fortress: str) -> None:
    target = f"/{fortress}/short"
    headers = sign_v4("PUT", auth_server.endpoint + target, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{auth_server.port}\r\nContent-Length: 100\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    response = raw_exchange(auth_server, head.encode() + b"only ten b", timeout=IDLE_TIMEOUT * 10)
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b"<Code>RequestTimeout</Code>" in response


def test_body_longer_than_content_length(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    target = f"/{main_bucket}/longer"
    headers = sign_v4("PUT", auth_server.endpoint + target, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{auth_server.port}\r\nContent-Length: 5\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", auth_server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"hello, and 30 more bytes of junk\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    # The declared request is answered as sent (S3 stores what Content-Length announced), then the
    # connection is closed instead of parsing the junk as another request.
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert data.count(b"HTTP/1.1") == 1
    assert main_s3.get_object(Bucket=main_bucket, Key="longer")["Body"].read() == b"hello"
    main_s3.delete_object(Bucket=main_bucket, Key="longer")


def _chunked_put(server: ServerProcess, target: str, body: bytes, decoded: int) -> Reply:
    headers = {
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
    }
    return send(server, "PUT", target, sign_v4("PUT", server.endpoint + target, headers), body)


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b"5\r\nhello\r\n0\r\n", 10),  # truncated: the decoded length says more
        (b"a\r\nhello", 10),  # truncated inside a chunk
        (b"zz\r\nhello\r\n0\r\n\r\n", 5),  # bad hex size
        (b"-5\r\nhello\r\n0\r\n\r\n", 5),
        (b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 5),  # absurd size
        (b"5\r\nhello world\r\n0\r\n\r\n", 5),  # chunk longer than its size
        (b"5;foo=bar\r\nhello\r\n0\r\n\r\n", 5),  # unknown extension
        (b"5\r\nhello\r\n0\r\n\r\ntrailing junk", 5),
        (b"5" + b"0" * 5000 + b"\r\n", 5),  # endless size line
    ],
)
def test_malformed_aws_chunked(auth_server: ServerProcess, fortress: str, body: bytes, decoded: int) -> None:
    reply = _chunked_put(auth_server, f"/{fortress}/chunked", body, decoded)
    assert _is_s3_error(reply, 400), (body[:40], reply.status, reply.body[:200])


def test_oversized_and_malformed_heads(auth_server: ServerProcess, fortress: str) -> None:
    # Over max_header_size (16 KiB): refused while parsing, with an S3 error.
    big = raw_exchange(auth_server, f"GET / HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20000}\r\n\r\n".encode())
    assert big.startswith(b"HTTP/1.1 400") and b"RequestHeaderSectionTooLarge" in big
    many = "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(400))
    assert b"RequestHeaderSectionTooLarge" in raw_exchange(
        auth_server, f"GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()
    )
    long_url = raw_exchange(auth_server, f"GET /{'u' * 40000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert long_url.startswith(b"HTTP/1.1 400") and b"<Code>" in long_url
    # Unparseable requests get S3 error XML too.
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"\x00\x01\x02\r\n\r\n"):
        reply = raw_exchange(auth_server, garbage)
        assert reply.startswith(b"HTTP/1.1 400") and b"<Error>" in reply, (garbage, reply[:200])


def test_declared_sizes_over_the_limits(auth_server: ServerProcess, fortress: str) -> None:
    target = f"/{fortress}/huge"
    headers = sign_v4("PUT", auth_server.endpoint + target, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{auth_server.port}\r\nContent-Length: {6 * 1024**3}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    reply = raw_exchange(auth_server, head.encode() + b"start of a body that never ends")
    assert reply.startswith(b"HTTP/1.1 400") and b"<Code>EntityTooLarge</Code>" in reply
