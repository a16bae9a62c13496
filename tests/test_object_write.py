"""Object writes read their request once (coffer.server.object_write): encryption Coffer does
not build is refused (nothing stored with less protection than asked), and PutObject and a POST
form give the same answer for the same bad input."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from tests.auth_support import Reply, send
from tests.server_process import ServerProcess

SSE_C_KEY = os.urandom(32)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _empty(s3, bucket: str) -> bool:  # type: ignore[no-untyped-def]
    return "Contents" not in s3.list_objects_v2(Bucket=bucket)


DSSE = {"ServerSideEncryption": "aws:kms:dsse"}


def test_dual_layer_encryption_is_refused(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """aws:kms:dsse is not built: refused (nothing stored), never stored with one layer."""
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="secret", Body=b"plaintext", **DSSE)
    assert _code(exc) == (501, "NotImplemented")
    assert _empty(s3, bucket)
    s3.put_object(Bucket=bucket, Key="source", Body=b"source")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "source"}, **DSSE)
    assert _code(exc) == (501, "NotImplemented")
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", **DSSE)
    assert _code(exc) == (501, "NotImplemented")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["source"]


def test_parts_of_a_plain_upload_cannot_ask_for_encryption(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload,
            PartNumber=1,
            Body=b"part",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=SSE_C_KEY,
        )
    assert _code(exc) == (400, "InvalidRequest")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload).get("Parts", []) == []


def _post(server: ServerProcess, bucket: str, fields: dict[str, str], data: bytes = b"form data") -> Reply:
    boundary = "----coffer-object-write"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'.encode())
    body = b"".join(parts) + data + f"\r\n--{boundary}--\r\n".encode()
    return send(server, "POST", f"/{bucket}", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)


def _put(server: ServerProcess, bucket: str, key: str, headers: dict[str, str], data: bytes = b"form data") -> Reply:
    return send(server, "PUT", f"/{bucket}/{key}", headers, data)


def test_post_form_encryption_fields(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    reply = _post(server, bucket, {"key": "posted", "x-amz-server-side-encryption": "AES256"})
    assert reply.status == 204, reply.body
    assert reply.headers.get("x-amz-server-side-encryption") == "AES256"
    got = s3.get_object(Bucket=bucket, Key="posted")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (b"form data", "AES256")
    for name, value in (
        ("x-amz-server-side-encryption", "aws:kms:dsse"),
        ("x-amz-server-side-encryption", "DES"),
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),  # without its key
    ):
        reply = _post(server, bucket, {"key": "refused", name: value})
        assert reply.status in (400, 501), reply.body
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["posted"]


_BAD_INPUTS = {
    "ttl not a number": {"x-amz-meta-ttl-seconds": "abc"},
    "negative ttl": {"x-amz-meta-ttl-seconds": "-5"},
    "unknown storage class": {"x-amz-storage-class": "PLATINUM"},
    "metadata too large": {"x-amz-meta-big": "x" * 2100},
    "malformed checksum": {"x-amz-checksum-sha256": "bad"},
    "wrong checksum": {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()},
    "two checksums": {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    "dual-layer encryption": {"x-amz-server-side-encryption": "aws:kms:dsse"},
    "unknown encryption": {"x-amz-server-side-encryption": "DES"},
}


@pytest.mark.parametrize("bad", _BAD_INPUTS.values(), ids=_BAD_INPUTS.keys())
def test_put_and_post_answer_alike(server: ServerProcess, s3, bucket: str, bad: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    put = _put(server, bucket, "put", bad)
    post = _post(server, bucket, {"key": "post", **bad})
    assert put.status >= 400 and (put.status, put.code) == (post.status, post.code), (put.body, post.body)
    assert _empty(s3, bucket)


def test_post_tagging_and_header_tagging_share_the_limits(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    eleven = {f"k{i}": "v" for i in range(11)}
    header = "&".join(f"{k}={v}" for k, v in eleven.items())
    document = (
        "<Tagging><TagSet>"
        + "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in eleven.items())
        + "</TagSet></Tagging>"
    )
    put = _put(server, bucket, "put", {"x-amz-tagging": header})
    post = _post(server, bucket, {"key": "post", "tagging": document})
    assert (put.status, put.code) == (post.status, post.code) == (400, "InvalidTag")
    assert _empty(s3, bucket)
    # Good input is stored the same way by both.
    assert (
        _put(server, bucket, "put", {"x-amz-meta-ttl-seconds": "3600", "x-amz-storage-class": "STANDARD_IA"}).status
        == 200
    )
    assert (
        _post(
            server, bucket, {"key": "post", "x-amz-meta-ttl-seconds": "3600", "x-amz-storage-class": "STANDARD_IA"}
        ).status
        == 204
    )
    for key in ("put", "post"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"] == {"ttl-seconds": "3600"} and head["StorageClass"] == "STANDARD_IA"
