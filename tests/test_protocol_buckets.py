"""Bucket operations through boto3: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from __future__ import annotations

import http.client
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests.s3errors import expect_error

_n = itertools.count()


def fresh_name() -> str:
    return f"bkt-proto-{next(_n)}"


def test_list_buckets(s3) -> None:  # type: ignore[no-untyped-def]
    names = [fresh_name() for _ in range(3)]
    for name in names:
        s3.create_bucket(Bucket=name)
    listed = s3.list_buckets()
    mine = [b for b in listed["Buckets"] if b["Name"] in names]
    assert [b["Name"] for b in mine] == sorted(names)
    now = datetime.now(UTC)
    for b in mine:
        assert now - timedelta(minutes=5) < b["CreationDate"] <= now + timedelta(seconds=5)
    assert listed["Owner"]["ID"]
    all_names = [b["Name"] for b in listed["Buckets"]]
    assert all_names == sorted(all_names)


def test_create_head_delete(s3) -> None:  # type: ignore[no-untyped-def]
    name = fresh_name()
    created = s3.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert created["Location"] == f"/{name}"
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1 reads as null
    deleted = s3.delete_bucket(Bucket=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "404", s3.head_bucket, Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_location_constraint(s3) -> None:  # type: ignore[no-untyped-def]
    name = fresh_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"
    mine = [b for b in s3.list_buckets()["Buckets"] if b["Name"] == name]
    assert len(mine) == 1


def test_create_existing_owned(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    # us-east-1 keeps S3's legacy answer: re-creating your own bucket succeeds and changes nothing.
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    assert s3.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x"
    # Every other region answers 409.
    name = fresh_name()
    config = {"LocationConstraint": "eu-west-1"}
    s3.create_bucket(Bucket=name, CreateBucketConfiguration=config)
    expect_error(409, "BucketAlreadyOwnedByYou", s3.create_bucket, Bucket=name, CreateBucketConfiguration=config)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


def test_create_with_malformed_configuration(server) -> None:  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("PUT", f"/{fresh_name()}", body=b"<CreateBucketConfiguration><Location")
    resp = conn.getresponse()
    assert resp.status == 400
    assert b"<Code>MalformedXML</Code>" in resp.read()
    conn.close()


# Names boto3 lets through (its own check only allows [a-zA-Z0-9.\-_]{1,255}) that
# the S3 naming rules forbid for new buckets.
INVALID_NAMES = [
    "ab",  # shorter than 3
    "a" * 64,  # longer than 63
    "UpperCase",
    "under_score",
    "-leading-hyphen",
    "trailing-hyphen-",
    ".leading-dot",
    "trailing-dot.",
    "two..dots",
    "dot.-hyphen",
    "hyphen-.dot",
    "192.168.5.4",  # formatted as an IP address
    "xn--reserved-prefix",
    "sthree-reserved",
    "amzn-s3-demo-reserved",
    "reserved-s3alias",
    "reserved--ol-s3",
    "reserved.mrap",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_bucket_name(s3, name: str) -> None:  # type: ignore[no-untyped-def]
    expect_error(400, "InvalidBucketName", s3.create_bucket, Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["reserved--x-s3", "reserved--table-s3"])
def test_invalid_bucket_name_raw(server, name: str) -> None:  # type: ignore[no-untyped-def]
    """Suffixes boto3 treats specially (S3 Express), sent as plain requests."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("PUT", f"/{name}", body=b"")
    resp = conn.getresponse()
    assert resp.status == 400
    assert b"<Code>InvalidBucketName</Code>" in resp.read()
    conn.close()


@pytest.mark.parametrize("name", ["abc", "a" * 63, "0-9.a-b", "my.bucket.name", "1bucket", "bucket-192.168.5.4"])
def test_valid_bucket_names(s3, name: str) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)


def test_delete_bucket_errors(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    expect_error(409, "BucketNotEmpty", s3.delete_bucket, Bucket=bucket)
    s3.head_bucket(Bucket=bucket)  # still there
    s3.delete_object(Bucket=bucket, Key="keep")
    s3.delete_bucket(Bucket=bucket)
    error = expect_error(404, "NoSuchBucket", s3.delete_bucket, Bucket=bucket)
    assert error.get("BucketName") == bucket


def test_missing_bucket_errors(s3) -> None:  # type: ignore[no-untyped-def]
    name = fresh_name()
    expect_error(404, "404", s3.head_bucket, Bucket=name)  # HEAD: no body, boto3 reports the status
    expect_error(404, "NoSuchBucket", s3.get_bucket_location, Bucket=name)
    expect_error(404, "NoSuchBucket", s3.list_objects, Bucket=name)
    expect_error(404, "NoSuchBucket", s3.list_objects_v2, Bucket=name)
