"""CopyObject and UploadPartCopy: directives, copy-source conditionals, encoded keys, large copies."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess
from tests.wire import b64, digest, error_of, raw

MiB = 1024 * 1024


def blob_count(server: ServerProcess) -> int:
    return sum(1 for p in (server.data_dir / "blobs").rglob("*") if p.is_file())


def test_copy_keeps_or_replaces_metadata(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"hello", ContentType="text/plain", Metadata={"a": "1"}, CacheControl="no-cache"
    )
    result = s3.copy_object(Bucket=bucket, Key="same-meta", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == '"' + hashlib.md5(b"hello").hexdigest() + '"'
    assert isinstance(result["CopyObjectResult"]["LastModified"], datetime)
    got = s3.get_object(Bucket=bucket, Key="same-meta")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"], got["CacheControl"]) == (
        b"hello",
        "text/plain",
        {"a": "1"},
        "no-cache",
    )
    s3.copy_object(
        Bucket=bucket,
        Key="new-meta",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="image/png",
        Metadata={"b": "2"},
    )
    got = s3.head_object(Bucket=bucket, Key="new-meta")
    assert (got["ContentType"], got["Metadata"], got.get("CacheControl")) == ("image/png", {"b": "2"}, None)
    # COPY ignores the metadata sent with the request.
    s3.copy_object(Bucket=bucket, Key="ignored", CopySource={"Bucket": bucket, "Key": "src"}, Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="ignored")["Metadata"] == {"a": "1"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src", MetadataDirective="MERGE")
    assert error_of(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src", TaggingDirective="MERGE")
    assert error_of(exc) == (400, "InvalidArgument")


def test_copy_onto_itself(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="me", Body=b"body", Metadata={"v": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="me", CopySource={"Bucket": bucket, "Key": "me"})
    assert error_of(exc) == (400, "InvalidRequest")
    s3.copy_object(
        Bucket=bucket,
        Key="me",
        CopySource={"Bucket": bucket, "Key": "me"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="me")
    assert got["Metadata"] == {"v": "2"} and got["Body"].read() == b"body"
    # Changing only the storage class is a legitimate self-copy too.
    s3.copy_object(Bucket=bucket, Key="me", CopySource={"Bucket": bucket, "Key": "me"}, StorageClass="STANDARD_IA")
    got = s3.head_object(Bucket=bucket, Key="me")
    assert got["StorageClass"] == "STANDARD_IA" and got["Metadata"] == {"v": "2"}


@pytest.mark.parametrize("key", ["with space", "ünïcödé/ключ", "question?versionId", "percent%25.txt", "a+b&c=d"])
def test_copy_source_keys_are_url_decoded(s3, bucket: str, key: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == key.encode()


def test_copy_source_version_and_errors(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="src", Body=b"v")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": "null"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": "v123"})
    assert error_of(exc) == (400, "InvalidArgument")  # not a version id at all
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": "0" * 32})
    assert error_of(exc) == (404, "NoSuchVersion")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "missing"})
    assert error_of(exc) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": "no-such-bucket-copy", "Key": "src"})
    assert error_of(exc) == (404, "NoSuchBucket")
    for source in ("nokey", "/", f"{bucket}/"):
        status, body, _ = raw(server, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": source})
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, source
    status, body, _ = raw(server, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": f"/{bucket}/src"})
    assert status == 200 and b"<CopyObjectResult" in body


def test_copy_source_conditionals(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"data")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    before, after = modified - timedelta(days=1), modified + timedelta(days=1)

    def copy(**conditions: object) -> int | str:
        try:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, **conditions)
            return 200
        except ClientError as exc:
            return f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {exc.response['Error']['Code']}"

    failed = "412 PreconditionFailed"
    assert copy(CopySourceIfMatch=etag) == 200
    assert copy(CopySourceIfMatch='"nope"') == failed
    assert copy(CopySourceIfNoneMatch='"nope"') == 200
    assert copy(CopySourceIfNoneMatch=etag) == failed
    assert copy(CopySourceIfModifiedSince=before) == 200
    assert copy(CopySourceIfModifiedSince=after) == failed
    assert copy(CopySourceIfUnmodifiedSince=after) == 200
    assert copy(CopySourceIfUnmodifiedSince=before) == failed
    # S3's precedence: a true if-match wins over a false if-unmodified-since ...
    assert copy(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=before) == 200
    # ... and a false if-none-match fails even when if-modified-since is true.
    assert copy(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=before) == failed


def test_copy_checksums(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(10_000)
    put = s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="SHA256")
    result = s3.copy_object(Bucket=bucket, Key="carried", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    result = s3.copy_object(
        Bucket=bucket, Key="recomputed", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC32C"
    )
    assert result["CopyObjectResult"]["ChecksumCRC32C"] == b64(digest("CRC32C", data))
    head = s3.head_object(Bucket=bucket, Key="recomputed", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == b64(digest("CRC32C", data)) and head["ChecksumType"] == "FULL_OBJECT"


def test_large_copy_shares_files(server: ServerProcess, s3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(3 * 5 * MiB + 12345)
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    before = blob_count(server)
    s3.upload_file(str(path), bucket, "big", Config=config)
    files = blob_count(server)
    result = s3.copy_object(Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"})
    assert blob_count(server) == files  # the copy is a new manifest over the same files
    # S3 writes a copy as one object: the MD5 of the content, no "-N", no parts.
    assert result["CopyObjectResult"]["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    # A composite CRC32 cannot describe the copy: it gets the CRC32 of the whole object.
    assert result["CopyObjectResult"]["ChecksumCRC32"] == b64(digest("CRC32", data))
    s3.delete_object(Bucket=bucket, Key="big")
    got = s3.get_object(Bucket=bucket, Key="big-copy", ChecksumMode="ENABLED")
    assert hashlib.md5(got["Body"].read()).digest() == hashlib.md5(data).digest()
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key="big-copy", PartNumber=1)
    s3.delete_object(Bucket=bucket, Key="big-copy")
    assert blob_count(server) == before  # the last reference gone: the files go too


def test_managed_copy_uses_upload_part_copy(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(11 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.copy({"Bucket": bucket, "Key": "src"}, bucket, "dst", Config=config)
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_upload_part_copy(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst", ChecksumAlgorithm="SHA256")["UploadId"]
    source = {"Bucket": bucket, "Key": "src"}
    first = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=source, CopySourceRange="bytes=0-5242879"
    )["CopyPartResult"]
    second = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=2, CopySource=source)[
        "CopyPartResult"
    ]  # no range: the whole source
    assert first["ETag"] == '"' + hashlib.md5(data[: 5 * MiB]).hexdigest() + '"'
    assert first["ChecksumSHA256"] == b64(digest("SHA256", data[: 5 * MiB]))
    for bad in ("0-10", "bytes=0", "bytes=x-y", "bytes=5-1", "bytes=0-1,2-3"):
        with pytest.raises(ClientError) as exc:
            s3.upload_part_copy(
                Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=3, CopySource=source, CopySourceRange=bad
            )
        assert error_of(exc) == (400, "InvalidArgument"), bad
    with pytest.raises(ClientError) as exc:  # beyond the end of the source
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=3,
            CopySource=source,
            CopySourceRange=f"bytes=0-{len(data)}",
        )
    assert error_of(exc)[1] == "InvalidRange"
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(
            Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=3, CopySource=source, CopySourceIfMatch='"x"'
        )
    assert error_of(exc) == (412, "PreconditionFailed")
    parts = [
        {"PartNumber": 1, "ETag": first["ETag"], "ChecksumSHA256": first["ChecksumSHA256"]},
        {"PartNumber": 2, "ETag": second["ETag"], "ChecksumSHA256": second["ChecksumSHA256"]},
    ]
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data[: 5 * MiB] + data


def test_copy_dates_are_http_dates(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    future = datetime.now(UTC) + timedelta(days=3)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfModifiedSince=future
        )
    assert error_of(exc) == (412, "PreconditionFailed")
