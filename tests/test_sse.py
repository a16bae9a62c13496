"""Server-side encryption on a real server, both engines: SSE-S3, SSE-KMS (built-in key service),
SSE-C, bucket default encryption, ranges, copies between modes, multipart, and what is on disk."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

STORAGES = {
    "disk": (),
    "memory": ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "3600"),
}
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=list(STORAGES))
def sse_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp(f"sse-{request.param}")
    proc = ServerProcess(root / "data", "--fsync", "never", *STORAGES[request.param]).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def s3(sse_server: ServerProcess):  # type: ignore[no-untyped-def]
    return sse_server.client()


_names = iter(range(10**6))


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"sse-bucket-{next(_names)}"
    s3.create_bucket(Bucket=name)
    return name


def error(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"], exc.value.response["Error"]["Code"]


def customer() -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}


def stored_files(server: ServerProcess) -> list[Path]:
    return [p for p in server.data_dir.rglob("*") if p.is_file()]


def plaintext_on_disk(server: ServerProcess, needle: bytes) -> bool:
    return any(needle in p.read_bytes() for p in stored_files(server) if p.stat().st_size < 64 * MiB)


def test_sse_s3_round_trip_ranges_and_listing(s3, sse_server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(300_000)
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    data = marker + data
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'  # SSE-S3: the plaintext's MD5, as S3
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == data and got["ServerSideEncryption"] == "AES256"
    assert got["ContentLength"] == len(data)
    for first, last in ((0, 0), (65535, 65536), (70000, 200000), (len(data) - 5, len(data) - 1)):
        ranged = s3.get_object(Bucket=bucket, Key="k", Range=f"bytes={first}-{last}")
        assert ranged["Body"].read() == data[first : last + 1]
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=-10")["Body"].read() == data[-10:]
    head = s3.head_object(Bucket=bucket, Key="k")
    assert (head["ContentLength"], head["ServerSideEncryption"]) == (len(data), "AES256")
    assert [(o["Key"], o["Size"]) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [("k", len(data))]
    assert not plaintext_on_disk(sse_server, marker)


def test_checksums_are_of_the_plaintext(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = b"checksummed " * 1000
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ServerSideEncryption="AES256", ChecksumAlgorithm="SHA256")
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert put["ChecksumSHA256"] == expected
    assert s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["ChecksumSHA256"] == expected
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket,
            Key="bad",
            Body=data,
            ServerSideEncryption="AES256",
            ContentMD5=base64.b64encode(b"x" * 16).decode(),
        )
    assert exc.value.response["Error"]["Code"] == "BadDigest"
    assert error(s3.head_object, Bucket=bucket, Key="bad")[0] == 404


def test_sse_kms_with_named_and_default_keys(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"kms data", ServerSideEncryption="aws:kms")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"].startswith("arn:aws:kms:")
    assert put["ETag"] != f'"{hashlib.md5(b"kms data").hexdigest()}"'  # not the plaintext's MD5, as S3
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kms data"
    assert s3.head_object(Bucket=bucket, Key="k")["SSEKMSKeyId"] == put["SSEKMSKeyId"]
    assert error(
        s3.put_object, Bucket=bucket, Key="x", Body=b"", ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/no-such-key"
    ) == (400, "KMS.NotFoundException")
    assert error(
        s3.put_object, Bucket=bucket, Key="x", Body=b"", ServerSideEncryption="aws:kms", SSEKMSKeyId="not a key id!"
    ) == (400, "KMS.NotFoundException")


def test_sse_c(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    key = customer()
    data = os.urandom(150_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, **key)
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(key["SSECustomerKey"]).digest()).decode()
    assert s3.get_object(Bucket=bucket, Key="k", **key)["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=100-70000", **key)["Body"].read() == data[100:70001]
    assert s3.head_object(Bucket=bucket, Key="k", **key)["ContentLength"] == len(data)
    assert error(s3.get_object, Bucket=bucket, Key="k")[0] == 400  # the key is needed
    assert error(s3.head_object, Bucket=bucket, Key="k")[0] == 400
    assert error(s3.get_object, Bucket=bucket, Key="k", **customer())[0] == 400  # another key
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert error(s3.get_object, Bucket=bucket, Key="plain", **key)[0] == 400  # not applicable


def test_copies_between_modes(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    key, other = customer(), customer()
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="plain", Body=data)
    s3.copy_object(
        Bucket=bucket, Key="s3", CopySource={"Bucket": bucket, "Key": "plain"}, ServerSideEncryption="AES256"
    )
    assert s3.head_object(Bucket=bucket, Key="s3")["ServerSideEncryption"] == "AES256"
    copy_c = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key["SSECustomerKey"]}
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "s3"}, **key)
    s3.copy_object(
        Bucket=bucket, Key="kms", CopySource={"Bucket": bucket, "Key": "c"}, ServerSideEncryption="aws:kms", **copy_c
    )
    # A key change in place.
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "c"}, **copy_c, **other)
    assert s3.get_object(Bucket=bucket, Key="c", **other)["Body"].read() == data
    s3.copy_object(Bucket=bucket, Key="back", CopySource={"Bucket": bucket, "Key": "kms"})
    back = s3.get_object(Bucket=bucket, Key="back")
    assert "ServerSideEncryption" not in back and back["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == data
    assert error(s3.copy_object, Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "c"})[0] == 400


def test_bucket_default_encryption(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert error(s3.get_bucket_encryption, Bucket=bucket) == (404, "ServerSideEncryptionConfigurationNotFoundError")
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert got["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms" and got["BucketKeyEnabled"]
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"by default")
    assert put["ServerSideEncryption"] == "aws:kms" and put["BucketKeyEnabled"] is True
    asked = s3.put_object(Bucket=bucket, Key="s3", Body=b"x", ServerSideEncryption="AES256")
    assert asked["ServerSideEncryption"] == "AES256"
    bad = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/missing"}}
    assert error(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [bad]})[1] == (
        "KMS.NotFoundException"
    )
    s3.delete_bucket_encryption(Bucket=bucket)
    assert "ServerSideEncryption" not in s3.put_object(Bucket=bucket, Key="p", Body=b"plain")


@pytest.mark.parametrize("mode", ["AES256", "aws:kms", "SSE-C"])
def test_multipart(s3, bucket: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    args: dict[str, Any] = customer() if mode == "SSE-C" else {"ServerSideEncryption": mode}
    part_args = args if mode == "SSE-C" else {}
    parts = [os.urandom(5 * MiB + 123), os.urandom(5 * MiB), os.urandom(77_777)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **args)
    done = []
    for number, data in enumerate(parts, 1):
        etag = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=number, Body=data, **part_args
        )["ETag"]
        done.append({"ETag": etag, "PartNumber": number})
    if mode == "SSE-C":  # completing an SSE-C upload needs its key too, as in S3
        no_key = {"Bucket": bucket, "Key": "mp", "UploadId": upload["UploadId"], "MultipartUpload": {"Parts": done}}
        assert error(s3.complete_multipart_upload, **no_key)[0] == 400
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": done}, **part_args
    )
    whole = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key="mp", **part_args)
    assert got["Body"].read() == whole and got["ContentLength"] == len(whole)
    assert got["ETag"].endswith('-3"')
    for first, last in (
        (0, 10),
        (5 * MiB, 5 * MiB + 200),
        (5 * MiB + 100, 10 * MiB + 500),
        (len(whole) - 3, len(whole) - 1),
    ):
        ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={first}-{last}", **part_args)
        assert ranged["Body"].read() == whole[first : last + 1]
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, **part_args)["Body"].read() == parts[1]
    # A part copied from an encrypted source into an encrypted upload.
    upload2 = s3.create_multipart_upload(Bucket=bucket, Key="mp2", **args)
    source_args = {("CopySource" + k): v for k, v in part_args.items()}
    copied = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp2",
        UploadId=upload2["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "mp"},
        CopySourceRange="bytes=10-5242890",
        **source_args,
        **part_args,
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp2",
        UploadId=upload2["UploadId"],
        MultipartUpload={"Parts": [{"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": 1}]},
        **part_args,
    )
    assert s3.get_object(Bucket=bucket, Key="mp2", **part_args)["Body"].read() == whole[10:5242891]


def test_upload_with_transfer_manager(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(20 * MiB + 5)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big", ExtraArgs={"ServerSideEncryption": "AES256"})
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big", out)
    assert out.getvalue() == data


def test_survives_a_restart(s3, sse_server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    key = customer()
    s3.put_object(Bucket=bucket, Key="s3", Body=b"one", ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="kms", Body=b"two", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=bucket, Key="c", Body=b"three", **key)
    sse_server.kill9()
    sse_server.start()
    assert s3.get_object(Bucket=bucket, Key="s3")["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="c", **key)["Body"].read() == b"three"


def test_malformed_encryption_requests(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert error(s3.put_object, Bucket=bucket, Key="k", Body=b"", ServerSideEncryption="AES512")[0] == 400
    assert error(
        s3.put_bucket_encryption,
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "DES"}}]},
    ) == (400, "MalformedXML")
    assert error(s3.head_object, Bucket=bucket, Key="k")[0] == 404  # nothing was stored


def test_tampered_stored_bytes_are_never_served(s3, sse_server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """A flipped byte in an encrypted body fails its frame's authentication: the response is cut,
    never completed with wrong bytes (disk engine: the body is a file of its own)."""
    if "--storage" in sse_server.args:
        pytest.skip("the memory engine keeps bodies in memory")
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="k", Body=data, ServerSideEncryption="AES256")
    from coffer.encryption.frames import encrypted_size

    # The body's file: exactly the stored frames' length (the data plus 28 bytes a frame).
    (blob,) = [p for p in stored_files(sse_server) if p.stat().st_size == encrypted_size(len(data))]
    raw = bytearray(blob.read_bytes())
    raw[2 * MiB] ^= 0x01
    blob.write_bytes(bytes(raw))
    with pytest.raises(Exception) as exc:  # botocore's streaming error: the connection was cut
        s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert "ClientError" not in type(exc.value).__name__  # cut mid-body, not an error answer
    metrics = urllib.request.urlopen(f"{sse_server.endpoint}/_coffer/metrics", timeout=10).read().decode()
    assert "coffer_encryption_failures_total 1.0" in metrics
    # A range before the damaged frame is still served, and correct.
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-1000")["Body"].read() == data[:1001]
