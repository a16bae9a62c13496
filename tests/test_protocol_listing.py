"""ListObjects (v1) and ListObjectsV2 through boto3: parameters, echoes, limits, encodings."""

from __future__ import annotations

import hashlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.s3errors import expect_error

_n = itertools.count()
KEYS = ["a", "a/1", "a/2", "a/b/1", "b", "b/1", "c d/1", "c+d", "é/1", "z"]


@pytest.fixture(scope="module")
def listing_bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"listing-{next(_n)}"
    s3.create_bucket(Bucket=name)
    for key in KEYS:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


@pytest.fixture(scope="module")
def big_bucket(s3) -> str:  # type: ignore[no-untyped-def]
    """More keys than one page can hold."""
    name = f"listing-big-{next(_n)}"
    s3.create_bucket(Bucket=name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=name, Key=f"k{i:04d}", Body=b""), range(1005)))
    return name


def keys(resp: dict) -> list[str]:  # type: ignore[type-arg]
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes(resp: dict) -> list[str]:  # type: ignore[type-arg]
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


@pytest.mark.parametrize("version", [1, 2])
def test_plain_listing(s3, listing_bucket: str, version: int) -> None:  # type: ignore[no-untyped-def]
    call = s3.list_objects if version == 1 else s3.list_objects_v2
    resp = call(Bucket=listing_bucket)
    assert keys(resp) == sorted(KEYS, key=str.encode)
    assert resp["IsTruncated"] is False
    assert resp["MaxKeys"] == 1000
    assert resp["Name"] == listing_bucket
    assert "Delimiter" not in resp
    first = resp["Contents"][0]
    assert first["ETag"] == f'"{hashlib.md5(b"a").hexdigest()}"'
    assert first["Size"] == 1
    assert first["StorageClass"] == "STANDARD"
    assert first["LastModified"].tzinfo is not None
    if version == 2:
        assert resp["KeyCount"] == len(KEYS)


@pytest.mark.parametrize("version", [1, 2])
def test_prefix_and_delimiter(s3, listing_bucket: str, version: int) -> None:  # type: ignore[no-untyped-def]
    call = s3.list_objects if version == 1 else s3.list_objects_v2
    resp = call(Bucket=listing_bucket, Delimiter="/")
    assert keys(resp) == ["a", "b", "c+d", "z"]
    assert prefixes(resp) == ["a/", "b/", "c d/", "é/"]
    assert resp["Delimiter"] == "/"
    resp = call(Bucket=listing_bucket, Prefix="a/", Delimiter="/")
    assert (keys(resp), prefixes(resp), resp["Prefix"]) == (["a/1", "a/2"], ["a/b/"], "a/")
    resp = call(Bucket=listing_bucket, Prefix="a/")
    assert keys(resp) == ["a/1", "a/2", "a/b/1"]
    assert "CommonPrefixes" not in resp
    resp = call(Bucket=listing_bucket, Delimiter="/1")  # multi-character delimiter
    assert prefixes(resp) == ["a/1", "a/b/1", "b/1", "c d/1", "é/1"]
    assert keys(resp) == ["a", "a/2", "b", "c+d", "z"]
    resp = call(Bucket=listing_bucket, Prefix="nothing-here")
    assert keys(resp) == [] and resp["IsTruncated"] is False
    if version == 2:
        assert resp["KeyCount"] == 0


def test_v1_markers(s3, listing_bucket: str) -> None:  # type: ignore[no-untyped-def]
    resp = s3.list_objects(Bucket=listing_bucket, Marker="b", MaxKeys=2)
    assert keys(resp) == ["b/1", "c d/1"]
    assert resp["Marker"] == "b"
    assert resp["IsTruncated"] is True
    assert "NextMarker" not in resp  # only with a delimiter; clients continue from the last key
    resp = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=3)
    assert (keys(resp), prefixes(resp)) == (["a", "b"], ["a/"])
    assert resp["NextMarker"] == "b"
    resp = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=3, Marker=resp["NextMarker"])
    assert (keys(resp), prefixes(resp)) == (["c+d"], ["b/", "c d/"])
    assert resp["NextMarker"] == "c+d"
    resp = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=3, Marker=resp["NextMarker"])
    assert (keys(resp), prefixes(resp), resp["IsTruncated"]) == (["z"], ["é/"], False)
    assert "NextMarker" not in resp


def test_v2_tokens(s3, listing_bucket: str) -> None:  # type: ignore[no-untyped-def]
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="b", MaxKeys=2)
    assert keys(resp) == ["b/1", "c d/1"]
    assert resp["StartAfter"] == "b"
    assert (resp["IsTruncated"], resp["KeyCount"]) == (True, 2)
    token = resp["NextContinuationToken"]
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="b", MaxKeys=2, ContinuationToken=token)
    assert keys(resp) == ["c+d", "z"]
    assert resp["ContinuationToken"] == token
    resp = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2, ContinuationToken=resp["NextContinuationToken"])
    assert (keys(resp), resp["IsTruncated"]) == (["é/1"], False)
    assert "NextContinuationToken" not in resp
    # The paginator walks everything, prefixes and all.
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=listing_bucket, Delimiter="/", PaginationConfig={"PageSize": 1}
    )
    got = [(keys(p), prefixes(p)) for p in pages]
    assert [x for k, c in got for x in k + c] == ["a", "a/", "b", "b/", "c d/", "c+d", "z", "é/"]
    expect_error(400, "InvalidArgument", s3.list_objects_v2, Bucket=listing_bucket, ContinuationToken="garbage!")
    # An empty token asks for the first page.
    resp = s3.list_objects_v2(Bucket=listing_bucket, ContinuationToken="", StartAfter="b", MaxKeys=2)
    assert (resp["ContinuationToken"], keys(resp)) == ("", ["b/1", "c d/1"])


@pytest.mark.parametrize("version", [1, 2])
def test_max_keys_zero(s3, listing_bucket: str, version: int) -> None:  # type: ignore[no-untyped-def]
    call = s3.list_objects if version == 1 else s3.list_objects_v2
    resp = call(Bucket=listing_bucket, MaxKeys=0)
    assert keys(resp) == [] and prefixes(resp) == []
    assert resp["MaxKeys"] == 0
    assert resp["IsTruncated"] is False


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("max_keys", [None, 1000, 1001, 5000])
def test_max_keys_capped(s3, big_bucket: str, version: int, max_keys: int | None) -> None:  # type: ignore[no-untyped-def]
    call = s3.list_objects if version == 1 else s3.list_objects_v2
    resp = call(Bucket=big_bucket, **({} if max_keys is None else {"MaxKeys": max_keys}))
    assert resp["MaxKeys"] == 1000
    assert keys(resp) == [f"k{i:04d}" for i in range(1000)]
    assert resp["IsTruncated"] is True


def test_paginators_walk_past_one_page(s3, big_bucket: str) -> None:  # type: ignore[no-untyped-def]
    expected = [f"k{i:04d}" for i in range(1005)]
    for operation in ("list_objects", "list_objects_v2"):
        pages = list(s3.get_paginator(operation).paginate(Bucket=big_bucket))
        assert len(pages) == 2
        assert [k for p in pages for k in keys(p)] == expected


def test_encoding_type_url(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    weird = ["a b/1", "a+b", "é/x", "100%", "q?x#y", "amp&", "ctl\x01"]
    for key in weird:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    # Asked explicitly, boto3 leaves the values as the server encoded them.
    v1 = s3.list_objects(Bucket=bucket, EncodingType="url", Delimiter="/", Prefix="", MaxKeys=3)
    assert v1["EncodingType"] == "url"
    assert keys(v1) == ["100%25", "a%2Bb"]
    assert prefixes(v1) == ["a%20b/"]
    v1 = s3.list_objects(Bucket=bucket, EncodingType="url", Delimiter="/", Marker="a+b", Prefix="")
    assert v1["Marker"] == "a%2Bb"
    assert keys(v1) == ["amp%26", "ctl%01", "q%3Fx%23y"]
    assert prefixes(v1) == ["%C3%A9/"]
    v2 = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Prefix="é", Delimiter="/", StartAfter="a b")
    assert (v2["Prefix"], v2["Delimiter"], v2["StartAfter"]) == ("%C3%A9", "/", "a%20b")
    assert prefixes(v2) == ["%C3%A9/"]
    # Left to itself boto3 asks for url encoding and decodes: every key comes back intact.
    assert sorted(keys(s3.list_objects(Bucket=bucket))) == sorted(weird)
    assert sorted(keys(s3.list_objects_v2(Bucket=bucket))) == sorted(weird)
    expect_error(400, "InvalidArgument", s3.list_objects_v2, Bucket=bucket, EncodingType="base64")


def test_fetch_owner(s3, listing_bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert "Owner" not in s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=1)["Contents"][0]
    owned = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=1, FetchOwner=True)["Contents"][0]
    bucket_owner = s3.list_buckets()["Owner"]
    assert owned["Owner"]["ID"] == bucket_owner["ID"]
    assert owned["Owner"]["DisplayName"] == bucket_owner["DisplayName"]
    assert s3.list_objects(Bucket=listing_bucket, MaxKeys=1)["Contents"][0]["Owner"]["ID"] == bucket_owner["ID"]
