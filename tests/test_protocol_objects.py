"""Object operations through boto3: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.

Tests taking ``s3_modes`` run twice: boto3's default checksum settings and
``request_checksum_calculation='when_required'``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime

import pytest

from tests.s3errors import expect_error


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.mark.parametrize("size", [0, 1, 70_000, 2_500_000], ids=["empty", "one", "file", "multi-chunk"])
def test_put_get_head(s3_modes, bucket: str, size: int) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(size)
    put = s3_modes.put_object(Bucket=bucket, Key="obj", Body=data)
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ETag"] == etag
    got = s3_modes.get_object(Bucket=bucket, Key="obj")
    assert got["Body"].read() == data
    assert got["ETag"] == etag
    assert got["ContentLength"] == size
    assert got["ContentType"] == "binary/octet-stream"  # S3's default when none was given
    assert got["AcceptRanges"] == "bytes"
    assert abs((datetime.now(UTC) - got["LastModified"]).total_seconds()) < 300
    head = s3_modes.head_object(Bucket=bucket, Key="obj")
    assert (head["ETag"], head["ContentLength"], head["LastModified"]) == (etag, size, got["LastModified"])


def test_content_md5(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = b"checked body"
    s3_modes.put_object(Bucket=bucket, Key="good", Body=data, ContentMD5=md5_b64(data))
    assert s3_modes.get_object(Bucket=bucket, Key="good")["Body"].read() == data
    expect_error(400, "BadDigest", s3_modes.put_object, Bucket=bucket, Key="bad", Body=data, ContentMD5=md5_b64(b"x"))
    expect_error(400, "InvalidDigest", s3_modes.put_object, Bucket=bucket, Key="bad", Body=data, ContentMD5="nope!")
    expect_error(
        400, "InvalidDigest", s3_modes.put_object, Bucket=bucket, Key="bad", Body=data, ContentMD5="c2hvcnQ="
    )  # valid base64, not 16 bytes
    expect_error(404, "NoSuchKey", s3_modes.get_object, Bucket=bucket, Key="bad")


def test_bad_digest_keeps_previous_object(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3_modes.put_object(Bucket=bucket, Key="k", Body=b"version one")
    expect_error(
        400, "BadDigest", s3_modes.put_object, Bucket=bucket, Key="k", Body=b"version two", ContentMD5=md5_b64(b"x")
    )
    assert s3_modes.get_object(Bucket=bucket, Key="k")["Body"].read() == b"version one"


def test_stored_headers_and_metadata(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3_modes.put_object(
        Bucket=bucket,
        Key="doc.txt.gz",
        Body=b"not really gzip",
        ContentType="text/plain; charset=utf-8",
        CacheControl="max-age=60, public",
        ContentDisposition='attachment; filename="doc.txt"',
        ContentEncoding="gzip",
        ContentLanguage="de-CH",
        Expires=expires,
        StorageClass="STANDARD_IA",
        Metadata={"Colour": "blue", "multi-word": "a b  c", "empty": ""},
    )
    for call in (s3_modes.get_object, s3_modes.head_object):
        got = call(Bucket=bucket, Key="doc.txt.gz")
        assert got["ContentType"] == "text/plain; charset=utf-8"
        assert got["CacheControl"] == "max-age=60, public"
        assert got["ContentDisposition"] == 'attachment; filename="doc.txt"'
        assert got["ContentEncoding"] == "gzip"
        assert got["ContentLanguage"] == "de-CH"
        assert got["ExpiresString"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert got["StorageClass"] == "STANDARD_IA"
        assert got["Metadata"] == {"colour": "blue", "multi-word": "a b  c", "empty": ""}
    listed = s3_modes.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["StorageClass"]) for o in listed] == [("doc.txt.gz", "STANDARD_IA")]


def test_response_header_overrides(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="text/csv",
        ResponseContentDisposition="attachment",
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="identity",
        ResponseExpires=datetime(2031, 1, 1, tzinfo=UTC),
    )
    assert (got["ContentType"], got["ContentDisposition"]) == ("text/csv", "attachment")
    assert got["CacheControl"] == "no-cache"
    assert (got["ContentLanguage"], got["ContentEncoding"]) == ("fr", "identity")
    assert got["ExpiresString"] == "Wed, 01 Jan 2031 00:00:00 GMT"
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"  # stored value untouched


def test_overwrite_replaces_metadata(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3_modes.put_object(Bucket=bucket, Key="k", Body=b"1", ContentType="a/b", Metadata={"one": "1"})
    s3_modes.put_object(Bucket=bucket, Key="k", Body=b"22", Metadata={"two": "2"})
    head = s3_modes.head_object(Bucket=bucket, Key="k")
    assert head["Metadata"] == {"two": "2"}
    assert head["ContentType"] == "binary/octet-stream"
    assert head["ContentLength"] == 2
    assert "StorageClass" not in head  # STANDARD is not announced


def test_put_errors(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    expect_error(400, "InvalidStorageClass", s3_modes.put_object, Bucket=bucket, Key="k", Body=b"", StorageClass="X")
    expect_error(
        400, "MetadataTooLarge", s3_modes.put_object, Bucket=bucket, Key="k", Body=b"", Metadata={"m": "v" * 2100}
    )
    expect_error(404, "NoSuchBucket", s3_modes.put_object, Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert "Contents" not in s3_modes.list_objects_v2(Bucket=bucket)


def test_get_head_missing(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, "NoSuchKey", s3.get_object, Bucket=bucket, Key="missing/key")
    assert error.get("Key") == "missing/key"
    expect_error(404, "404", s3.head_object, Bucket=bucket, Key="missing/key")
    expect_error(404, "NoSuchBucket", s3.get_object, Bucket="no-such-bucket-here", Key="k")
    expect_error(404, "404", s3.head_object, Bucket="no-such-bucket-here", Key="k")


def test_get_range(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 400
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert got["Body"].read() == data[10:20]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=100000-")["Body"].read() == data[100000:]
    expect_error(416, "InvalidRange", s3.get_object, Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")


def test_delete_object_idempotent(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for _ in range(2):
        assert s3.delete_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    expect_error(404, "NoSuchBucket", s3.delete_object, Bucket="no-such-bucket-here", Key="k")


def test_delete_objects(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = ["a", "b/c", "x&y<z>", "é 中", "keep"]
    for key in keys:
        s3_modes.put_object(Bucket=bucket, Key=key, Body=b"x")
    doomed = [*keys[:4], "never-existed"]
    result = s3_modes.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in doomed]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(doomed)  # missing keys count as deleted
    assert "Errors" not in result
    assert [o["Key"] for o in s3_modes.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]


def test_delete_objects_quiet(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for key in ("q1", "q2"):
        s3_modes.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3_modes.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "q1"}, {"Key": "q2"}, {"Key": "q3"}], "Quiet": True}
    )
    assert "Deleted" not in result and "Errors" not in result
    assert "Contents" not in s3_modes.list_objects_v2(Bucket=bucket)


def test_delete_objects_errors(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    too_many = {"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
    expect_error(400, "MalformedXML", s3.delete_objects, Bucket=bucket, Delete=too_many)
    one = {"Objects": [{"Key": "k"}]}
    expect_error(404, "NoSuchBucket", s3.delete_objects, Bucket="no-such-bucket-here", Delete=one)
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ok"}, {"Key": "k" * 1025}]})
    assert [d["Key"] for d in result["Deleted"]] == ["ok"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("k" * 1025, "InvalidArgument")]


@pytest.mark.parametrize("key", ["k" * 1024, "é" * 512, "中" * 341 + "k"], ids=["ascii", "2-byte", "3-byte"])
def test_longest_key(s3_modes, bucket: str, key: str) -> None:  # type: ignore[no-untyped-def]
    assert len(key.encode()) == 1024
    s3_modes.put_object(Bucket=bucket, Key=key, Body=b"long")
    assert s3_modes.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"
    assert [o["Key"] for o in s3_modes.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    s3_modes.delete_object(Bucket=bucket, Key=key)


@pytest.mark.parametrize("key", ["k" * 1025, "é" * 512 + "k"], ids=["ascii", "2-byte"])
def test_key_too_long(s3_modes, bucket: str, key: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(400, "KeyTooLongError", s3_modes.put_object, Bucket=bucket, Key=key, Body=b"x")
    assert error.get("MaxSizeAllowed") == "1024"
    assert "Contents" not in s3_modes.list_objects_v2(Bucket=bucket)


ODD_KEYS = [
    "with space",
    "  leading and trailing  ",
    "unicode é 中 😀",
    "plus+sign",
    "percent%20literal%",
    "question?mark",
    "hash#tag",
    "double//slash",
    "/leading-slash",
    "trailing-slash/",
    "dots..in...names",
    ".hidden/..x/x../...",
    "amp&lt;<tag>\"quote'",
    "semi;colon=equals,comma",
    "tilde~caret^backtick`pipe|",
    "brackets[]{}()",
    "dollar$at@excl!star*",
    "back\\slash",
    "tab\tnewline\n",
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_keys(s3_modes, bucket: str, key: str) -> None:  # type: ignore[no-untyped-def]
    body = key.encode() * 3
    s3_modes.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3_modes.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3_modes.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    assert [o["Key"] for o in s3_modes.list_objects(Bucket=bucket)["Contents"]] == [key]
    assert [o["Key"] for o in s3_modes.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]] == [key]
    s3_modes.delete_object(Bucket=bucket, Key=key)
    assert "Contents" not in s3_modes.list_objects_v2(Bucket=bucket)


def test_odd_keys_side_by_side(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Keys that differ only in characters a sloppy decoder would merge stay distinct."""
    keys = ["a b", "a+b", "a%20b", "a%2Bb", "a/b", "a//b", "a%2Fb"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=str.encode)
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
