"""GetObjectAttributes: ETag (unquoted), Checksum, ObjectParts with pagination, StorageClass, ObjectSize."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess
from tests.test_multipart import PART1, PART2, TAIL
from tests.wire import b64, digest, error_of, raw

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_single_object(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"A" * 1024, ChecksumSHA256=b64(digest("SHA256", b"A" * 1024)))
    got = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=ALL)
    assert got["ETag"] == put["ETag"].strip('"')  # unquoted, unlike every other response
    assert got["ObjectSize"] == 1024 and got["StorageClass"] == "STANDARD"
    assert got["Checksum"] == {"ChecksumSHA256": put["ChecksumSHA256"], "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in got
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == 1024 and "ETag" not in only and "Checksum" not in only


def test_multipart_object_with_composite_checksum(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    parts = [PART1, PART2, TAIL]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        response = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data, ChecksumAlgorithm="SHA256"
        )
        done.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": response["ChecksumSHA256"]})
    result = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done})
    composite = b64(digest("SHA256", b"".join(digest("SHA256", p) for p in parts)))
    assert result["ChecksumSHA256"] == composite + "-3"
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ETag"] == result["ETag"].strip('"') and got["ETag"].endswith("-3")
    # GetObjectAttributes gives the composite value without its "-N" suffix.
    assert got["Checksum"] == {"ChecksumSHA256": composite, "ChecksumType": "COMPOSITE"}
    object_parts = got["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3 and not object_parts["IsTruncated"]
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in object_parts["Parts"]] == [
        (n, len(d), b64(digest("SHA256", d))) for n, d in enumerate(parts, 1)
    ]
    assert got["ObjectSize"] == sum(len(p) for p in parts)
    # Pagination of the parts.
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=1)
    assert page["ObjectParts"]["IsTruncated"] and page["ObjectParts"]["NextPartNumberMarker"] == 1
    assert [p["PartNumber"] for p in page["ObjectParts"]["Parts"]] == [1]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=5, PartNumberMarker=1
    )
    assert not page["ObjectParts"]["IsTruncated"] and page["ObjectParts"]["PartNumberMarker"] == 1
    assert [p["PartNumber"] for p in page["ObjectParts"]["Parts"]] == [2, 3]


def test_multipart_object_without_declared_checksum(s3_required, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3_required.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3_required.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=TAIL)["ETag"]
    s3_required.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    got = s3_required.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ETag"] == hashlib.md5(hashlib.md5(TAIL).digest()).hexdigest() + "-1"
    assert got["Checksum"]["ChecksumType"] == "FULL_OBJECT" and "ChecksumCRC64NVME" in got["Checksum"]
    assert [(p["PartNumber"], p["Size"]) for p in got["ObjectParts"]["Parts"]] == [(1, len(TAIL))]


def test_errors(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert error_of(exc) == (404, "NoSuchKey")
    status, body, _ = raw(server, "GET", f"/{bucket}/k?attributes")
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
    status, body, _ = raw(server, "GET", f"/{bucket}/k?attributes", headers={"x-amz-object-attributes": "ETag,Bogus"})
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
    status, body, _ = raw(
        server, "GET", f"/{bucket}/k?attributes", headers={"x-amz-object-attributes": "ETag", "x-amz-max-parts": "x"}
    )
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
