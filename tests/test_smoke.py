"""The basic round trip every client does, with boto3's default checksums."""

from __future__ import annotations


def test_put_get_list_delete(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello", ContentType="text/plain")
    assert put["ETag"] == '"5d41402abc4b2a76b9719d911017c592"'
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain"
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]
    s3.delete_object(Bucket=bucket, Key="dir/hello.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
