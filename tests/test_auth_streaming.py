"""Signed aws-chunked uploads: every chunk's signature is checked in the chain, and the trailer's.

The seed signature comes from botocore's signer; the chunk signatures are
computed here as the SigV4 streaming specification defines them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import pytest
from botocore.exceptions import ClientError

from tests.auth_support import MAIN, Reply, send, sign_v4
from tests.server_process import ServerProcess

EMPTY = hashlib.sha256(b"").hexdigest()
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def stream_put(
    server: ServerProcess,
    path: str,
    chunks: list[bytes],
    mode: str,
    *,
    tamper: str | None = None,
) -> Reply:
    """PUT ``chunks`` as an aws-chunked body in ``mode``; ``tamper`` names what to break after signing."""
    payload = b"".join(chunks)
    headers = {
        "X-Amz-Content-SHA256": mode,
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
    }
    if mode != SIGNED:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    signed = sign_v4("PUT", server.endpoint + path, headers)
    timestamp = signed["X-Amz-Date"]
    scope = f"{timestamp[:8]}/us-east-1/s3/aws4_request"
    previous = signed["Authorization"].rsplit("Signature=", 1)[1]
    key = _hmac(("AWS4" + MAIN.secret_key).encode(), timestamp[:8])
    for part in ("us-east-1", "s3", "aws4_request"):
        key = _hmac(key, part)
    body = bytearray()
    for index, chunk in enumerate([*chunks, b""]):
        if mode == UNSIGNED_TRAILER:
            body += f"{len(chunk):x}\r\n".encode()
        else:
            sts = "\n".join(
                ["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, EMPTY, hashlib.sha256(chunk).hexdigest()]
            )
            previous = _hmac(key, sts).hex()
            ext = "" if tamper == "no-chunk-signature" and index == 0 else f";chunk-signature={previous}"
            body += f"{len(chunk):x}{ext}\r\n".encode()
        if chunk:
            data = bytearray(chunk)
            if (tamper == "first-chunk" and index == 0) or (tamper == "last-chunk" and index == len(chunks) - 1):
                data[len(data) // 2] ^= 0x01
            body += bytes(data) + b"\r\n"
    if mode == SIGNED:
        body += b"\r\n"
    else:
        checksum = _crc32(payload)
        trailer = f"x-amz-checksum-crc32:{checksum}\n"
        sent = trailer if tamper != "trailer-value" else f"x-amz-checksum-crc32:{_crc32(b'other')}\n"
        body += sent.replace("\n", "\r\n").encode()
        if mode == SIGNED_TRAILER and tamper != "no-trailer-signature":
            sts = "\n".join(
                ["AWS4-HMAC-SHA256-TRAILER", timestamp, scope, previous, hashlib.sha256(trailer.encode()).hexdigest()]
            )
            signature = _hmac(key, sts).hex()
            if tamper == "trailer-signature":
                signature = signature[::-1]
            body += f"x-amz-trailer-signature:{signature}\r\n".encode()
        body += b"\r\n"
    return send(server, "PUT", path, signed, bytes(body))


CHUNKS = [b"a" * 65536, bytes(range(256)) * 256, b"tail end"]


@pytest.mark.parametrize("mode", [SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER])
def test_streaming_upload_verifies(auth_server: ServerProcess, main_s3, main_bucket: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    reply = stream_put(auth_server, f"/{main_bucket}/streamed", CHUNKS, mode)
    assert reply.status == 200, reply.body
    got = main_s3.get_object(Bucket=main_bucket, Key="streamed", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(CHUNKS)
    if mode != SIGNED:
        assert got["ChecksumCRC32"] == _crc32(b"".join(CHUNKS))


@pytest.mark.parametrize(
    ("mode", "tamper"),
    [
        (SIGNED, "first-chunk"),
        (SIGNED, "last-chunk"),
        (SIGNED, "no-chunk-signature"),
        (SIGNED_TRAILER, "last-chunk"),
        (SIGNED_TRAILER, "trailer-signature"),
        (SIGNED_TRAILER, "trailer-value"),
        (SIGNED_TRAILER, "no-trailer-signature"),
    ],
)
def test_tampered_stream_is_rejected_and_nothing_stored(
    auth_server: ServerProcess,
    main_s3,  # type: ignore[no-untyped-def]
    main_bucket: str,
    mode: str,
    tamper: str,
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="existing", Body=b"previous version")
    for key in ("fresh", "existing"):
        reply = stream_put(auth_server, f"/{main_bucket}/{key}", CHUNKS, mode, tamper=tamper)
        assert reply.status == 403, reply.body
        assert reply.code == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        main_s3.head_object(Bucket=main_bucket, Key="fresh")
    assert exc.value.response["Error"]["Code"] == "404"
    assert main_s3.get_object(Bucket=main_bucket, Key="existing")["Body"].read() == b"previous version"
    assert [o["Key"] for o in main_s3.list_objects_v2(Bucket=main_bucket)["Contents"]] == ["existing"]


def test_unsigned_trailer_needs_no_trailer_signature(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    reply = stream_put(auth_server, f"/{main_bucket}/u", [b"x" * 1000], UNSIGNED_TRAILER)
    assert reply.status == 200, reply.body
    reply = stream_put(auth_server, f"/{main_bucket}/u", [b"x" * 1000], UNSIGNED_TRAILER, tamper="trailer-value")
    assert reply.status == 400 and reply.code == "BadDigest"


def test_boto3_default_uploads_with_auth(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    """boto3's default (aws-chunked, unsigned payload, CRC trailer) with a multi-chunk body."""
    body = bytes(range(256)) * 8192  # 2 MiB
    main_s3.put_object(Bucket=main_bucket, Key="big", Body=body)
    assert main_s3.get_object(Bucket=main_bucket, Key="big")["Body"].read() == body
