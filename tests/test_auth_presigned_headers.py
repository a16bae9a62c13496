"""Signed requests must sign Host and every x-amz-* header but the body's envelope
(docs/security.md): a presigned URL or a captured signed request cannot be turned into
another operation (CopyObject, UploadPartCopy) or store metadata, tags or a TTL its
signer never approved, nor be replayed against another host name."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.auth_support import MAIN, Reply, client, send
from tests.server_process import ServerProcess


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _missing(s3, bucket: str, key: str) -> bool:  # type: ignore[no-untyped-def]
    return not s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents")


def _refused(reply: Reply, header: str) -> None:
    assert reply.status == 403 and reply.code == "AccessDenied", (reply.status, reply.body)
    assert b"<HeadersNotSigned>" in reply.body and header.encode() in reply.body, reply.body


@pytest.mark.parametrize(
    "extra",
    [
        {"x-amz-copy-source": "/{bucket}/private/payroll.csv"},
        {"x-amz-meta-owner": "mallory"},
        {"x-amz-meta-ttl-seconds": "1"},
        {"x-amz-tagging": "stolen=yes"},
        {"x-amz-storage-class": "GLACIER"},
        {"x-amz-checksum-crc32": "AAAAAA=="},
        {"x-amz-server-side-encryption": "AES256"},
    ],
)
@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_presigned_put_refuses_unsigned_amz_headers(
    auth_server: ServerProcess,
    main_s3,  # type: ignore[no-untyped-def]
    main_bucket: str,
    extra: dict[str, str],
    version: str,
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="private/payroll.csv", Body=b"salaries")
    signer = client(auth_server, MAIN, signature_version=version)
    url = signer.generate_presigned_url("put_object", Params={"Bucket": main_bucket, "Key": "drop"}, ExpiresIn=300)
    headers = {name: value.format(bucket=main_bucket) for name, value in extra.items()}
    reply = send(auth_server, "PUT", _target(url), headers, b"upload")
    if version == "s3v4":
        _refused(reply, next(iter(headers)))
    else:  # SigV2 signs every x-amz-* header: an added one fails the signature
        assert reply.status == 403 and reply.code == "SignatureDoesNotMatch", reply.body
    assert _missing(main_s3, main_bucket, "drop")
    # The same URL without the extra header works: the signature itself is good.
    assert send(auth_server, "PUT", _target(url), {}, b"upload").status == 200
    assert main_s3.get_object(Bucket=main_bucket, Key="drop")["Body"].read() == b"upload"


def test_presigned_upload_part_cannot_become_upload_part_copy(
    auth_server: ServerProcess,
    main_s3,  # type: ignore[no-untyped-def]
    main_bucket: str,
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="private/payroll.csv", Body=b"salaries")
    upload = main_s3.create_multipart_upload(Bucket=main_bucket, Key="mp")["UploadId"]
    params = {"Bucket": main_bucket, "Key": "mp", "UploadId": upload, "PartNumber": 1}
    url = client(auth_server, MAIN, signature_version="s3v4").generate_presigned_url(
        "upload_part", Params=params, ExpiresIn=300
    )
    copy = {"x-amz-copy-source": f"/{main_bucket}/private/payroll.csv"}
    _refused(send(auth_server, "PUT", _target(url), copy, b""), "x-amz-copy-source")
    assert main_s3.list_parts(Bucket=main_bucket, Key="mp", UploadId=upload).get("Parts", []) == []
    assert send(auth_server, "PUT", _target(url), {}, b"part one").status == 200


def test_presigned_put_accepts_signed_headers_and_the_envelope(
    auth_server: ServerProcess,
    main_s3,  # type: ignore[no-untyped-def]
    main_bucket: str,
) -> None:
    params = {"Bucket": main_bucket, "Key": "meta", "Metadata": {"colour": "blue"}}
    url = client(auth_server, MAIN, signature_version="s3v4").generate_presigned_url(
        "put_object", Params=params, ExpiresIn=300
    )
    assert "x-amz-meta-colour" in url  # botocore signs the metadata header the uploader must send
    body = b"with signed metadata"
    envelope = {"x-amz-meta-colour": "blue", "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    assert send(auth_server, "PUT", _target(url), envelope, body).status == 200
    assert main_s3.head_object(Bucket=main_bucket, Key="meta")["Metadata"] == {"colour": "blue"}
    # The envelope is still checked against the bytes.
    envelope["x-amz-content-sha256"] = hashlib.sha256(b"other").hexdigest()
    assert send(auth_server, "PUT", _target(url), envelope, body).status == 400


class _NoHostHeaderSigner(S3SigV4Auth):
    def headers_to_sign(self, request):  # type: ignore[no-untyped-def]
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


class _NoHostQuerySigner(S3SigV4QueryAuth):
    def headers_to_sign(self, request):  # type: ignore[no-untyped-def]
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


def test_signatures_must_cover_host(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="k", Body=b"x")
    url = f"{auth_server.endpoint}/{main_bucket}/k"
    credentials = Credentials(MAIN.access_key, MAIN.secret_key)
    request = AWSRequest(method="GET", url=url)
    _NoHostHeaderSigner(credentials, "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert "host" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    _refused(send(auth_server, "GET", urlsplit(url).path, headers), "host")
    # Replayed under another host name (another virtual-hosted bucket) it is refused the same way.
    _refused(send(auth_server, "GET", urlsplit(url).path, dict(headers, Host="other.example")), "host")

    presigned = AWSRequest(method="GET", url=url, headers={"x-amz-request-payer": "requester"})
    _NoHostQuerySigner(credentials, "s3", "us-east-1", expires=300).add_auth(presigned)
    assert "X-Amz-SignedHeaders=x-amz-request-payer&" in presigned.url
    _refused(send(auth_server, "GET", _target(str(presigned.url)), {"x-amz-request-payer": "requester"}), "host")


class _EnvelopeUnsignedSigner(S3SigV4Auth):
    def headers_to_sign(self, request):  # type: ignore[no-untyped-def]
        headers = super().headers_to_sign(request)
        del headers["x-amz-content-sha256"]
        return headers


def test_the_envelope_may_stay_unsigned(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    url = f"{auth_server.endpoint}/{main_bucket}/envelope"
    body = b"payload hash sent but not signed"
    request = AWSRequest(method="PUT", url=url, data=body)
    _EnvelopeUnsignedSigner(Credentials(MAIN.access_key, MAIN.secret_key), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert "x-amz-content-sha256" not in headers["Authorization"]
    assert send(auth_server, "PUT", urlsplit(url).path, headers, body).status == 200
    assert main_s3.get_object(Bucket=main_bucket, Key="envelope")["Body"].read() == body
