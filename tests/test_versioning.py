"""Bucket versioning on the wire, through boto3 and raw HTTP: Put/GetBucketVersioning, versionId on
reads, deletes, tagging, attributes and copy sources, the version and delete-marker headers,
ListObjectVersions (pages, markers, delimiter, encoding) and DeleteObjects with versions."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest

from tests.s3errors import expect_error
from tests.server_process import ServerProcess
from tests.wire import multipart, request

pytestmark = pytest.mark.server

VERSION_ID = re.compile(r"^[0-9a-f]{32}$")
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
ABSENT_VERSION = "0" * 32  # well formed, never made


def set_versioning(s3, bucket: str, status: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


@pytest.fixture
def versioned(s3, bucket: str) -> str:  # type: ignore[no-untyped-def]
    set_versioning(s3, bucket, "Enabled")
    return bucket


def put(s3, bucket: str, key: str, body: bytes) -> str | None:  # type: ignore[no-untyped-def]
    return s3.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")  # type: ignore[no-any-return]


def read(s3, bucket: str, key: str, version: str | None = None) -> bytes:  # type: ignore[no-untyped-def]
    args: dict[str, Any] = {"VersionId": version} if version is not None else {}
    return s3.get_object(Bucket=bucket, Key=key, **args)["Body"].read()  # type: ignore[no-any-return]


def all_versions(s3, bucket: str, **args: Any) -> list[tuple[str, str, bool, bool]]:  # type: ignore[no-untyped-def]
    """(key, version id, is latest, is delete marker) of a one-page listing, in the server's order."""
    out = s3.list_object_versions(Bucket=bucket, **args)
    assert not out["IsTruncated"]
    rows = [(v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"]) for v in out.get("Versions", [])]
    rows += [(m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"]) for m in out.get("DeleteMarkers", [])]
    # boto3 splits Versions from DeleteMarkers: the raw tests check the interleaved order.
    rows.sort(key=lambda r: (r[0], -r[4].timestamp(), r[1]))
    return [r[:4] for r in rows]


# ---------------------------------------------------------------------- bucket configuration
def test_bucket_versioning_states(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got and "MFADelete" not in got  # never configured
    set_versioning(s3, bucket, "Enabled")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    set_versioning(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    expect_error(404, "NoSuchBucket", s3.get_bucket_versioning, Bucket="no-such-bucket-versioning")
    expect_error(
        404,
        "NoSuchBucket",
        s3.put_bucket_versioning,
        Bucket="no-such-bucket-versioning",
        VersioningConfiguration={"Status": "Enabled"},
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<VersioningConfiguration><Status>Disabled</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
        b"<VersioningConfiguration></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Maybe</MfaDelete></VersioningConfiguration>",
        b"<Versioning><Status>Enabled</Status></Versioning>",
        b"<VersioningConfiguration><Status>Enabled",
        b"",
    ],
)
def test_bad_versioning_configuration(server: ServerProcess, s3, bucket: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    answer = request(server, "PUT", f"/{bucket}?versioning", body)
    assert (answer.status, answer.error["Code"]) == (400, "MalformedXML")
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_mfa_delete_is_refused(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    expect_error(
        403,
        "AccessDenied",
        s3.put_bucket_versioning,
        Bucket=bucket,
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    answer = request(server, "PUT", f"/{bucket}?versioning", body, {"x-amz-mfa": "arn:aws:iam::1:mfa/dev 123456"})
    assert (answer.status, answer.error["Code"]) == (403, "AccessDenied")
    answer = request(server, "PUT", f"/{bucket}?versioning", body, {"x-amz-mfa": "garbage"})
    assert (answer.status, answer.error["Code"], answer.error["ArgumentName"]) == (400, "InvalidArgument", "x-amz-mfa")
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_get_bucket_versioning_raw(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    set_versioning(s3, bucket, "Suspended")
    answer = request(server, "GET", f"/{bucket}?versioning")
    assert answer.status == 200
    assert b"<VersioningConfiguration" in answer.body and b"<Status>Suspended</Status>" in answer.body


# ---------------------------------------------------------------------- versions and reads
def test_enabled_bucket_keeps_every_version(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    ids = [put(s3, versioned, "k", f"body {i}".encode()) for i in range(3)]
    assert all(v is not None and VERSION_ID.match(v) for v in ids) and len(set(ids)) == 3
    for i, version in enumerate(ids):
        got = s3.get_object(Bucket=versioned, Key="k", VersionId=version)
        assert (got["Body"].read(), got["VersionId"]) == (f"body {i}".encode(), version)
        head = s3.head_object(Bucket=versioned, Key="k", VersionId=version)
        assert (head["VersionId"], head["ContentLength"]) == (version, len(f"body {i}"))
    latest = s3.get_object(Bucket=versioned, Key="k")
    assert (latest["Body"].read(), latest["VersionId"]) == (b"body 2", ids[2])
    assert all_versions(s3, versioned) == [
        ("k", ids[2], True, False),
        ("k", ids[1], False, False),
        ("k", ids[0], False, False),
    ]
    # Deleting the latest version for good makes the one before it latest again.
    deleted = s3.delete_object(Bucket=versioned, Key="k", VersionId=ids[2])
    assert deleted["VersionId"] == ids[2] and "DeleteMarker" not in deleted
    assert read(s3, versioned, "k") == b"body 1"
    assert s3.head_object(Bucket=versioned, Key="k")["VersionId"] == ids[1]


def test_unversioned_bucket_reports_no_versions(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    answer = request(server, "PUT", f"/{bucket}/k", b"data")
    assert answer.status == 200 and "x-amz-version-id" not in answer.headers
    for method in ("GET", "HEAD"):
        answer = request(server, method, f"/{bucket}/k")
        assert answer.status == 200 and "x-amz-version-id" not in answer.headers
    got = s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert got["Body"].read() == b"data"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"] == 4
    assert all_versions(s3, bucket) == [("k", "null", True, False)]
    answer = request(server, "DELETE", f"/{bucket}/k")
    assert answer.status == 204
    assert "x-amz-version-id" not in answer.headers and "x-amz-delete-marker" not in answer.headers
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    assert all_versions(s3, bucket) == []


@pytest.mark.parametrize("value", ["bogus", "NULL", "0" * 31, "A" * 32, "0" * 33, ""])
def test_invalid_version_id(server: ServerProcess, s3, bucket: str, value: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    q = f"versionId={quote(value)}"
    for method, path in [
        ("GET", f"/{bucket}/k?{q}"),
        ("DELETE", f"/{bucket}/k?{q}"),
        ("GET", f"/{bucket}/k?tagging&{q}"),
        ("DELETE", f"/{bucket}/k?tagging&{q}"),
    ]:
        answer = request(server, method, path)
        assert (answer.status, answer.error["Code"]) == (400, "InvalidArgument"), (method, path)
        assert answer.error["Message"] == "Invalid version id specified"
        assert answer.error["ArgumentName"] == "versionId"
    assert request(server, "HEAD", f"/{bucket}/k?{q}").status == 400
    assert read(s3, bucket, "k") == b"x"  # nothing was deleted


def test_absent_version_is_no_such_version(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    put(s3, versioned, "k", b"x")
    error = expect_error(404, "NoSuchVersion", s3.get_object, Bucket=versioned, Key="k", VersionId=ABSENT_VERSION)
    assert error["Key"] == "k" and error["VersionId"] == ABSENT_VERSION
    expect_error(404, "NoSuchVersion", s3.get_object, Bucket=versioned, Key="k", VersionId="null")
    expect_error(404, "NoSuchVersion", s3.get_object_tagging, Bucket=versioned, Key="k", VersionId=ABSENT_VERSION)
    expect_error(
        404,
        "NoSuchVersion",
        s3.put_object_tagging,
        Bucket=versioned,
        Key="k",
        VersionId=ABSENT_VERSION,
        Tagging={"TagSet": []},
    )
    # Deleting a version that does not exist succeeds, naming it.
    assert s3.delete_object(Bucket=versioned, Key="k", VersionId=ABSENT_VERSION)["VersionId"] == ABSENT_VERSION
    assert read(s3, versioned, "k") == b"x"


# ---------------------------------------------------------------------- delete markers
def test_delete_marker_headers(server: ServerProcess, s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "k", b"one")
    deleted = s3.delete_object(Bucket=versioned, Key="k")
    marker = deleted["VersionId"]
    assert deleted["DeleteMarker"] is True and VERSION_ID.match(marker) and marker != v1
    # The key reads as absent, saying why.
    for method in ("GET", "HEAD"):
        answer = request(server, method, f"/{versioned}/k")
        assert answer.status == 404, method
        assert answer.headers["x-amz-delete-marker"] == "true"
        assert answer.headers["x-amz-version-id"] == marker
    assert request(server, "GET", f"/{versioned}/k").error["Code"] == "NoSuchKey"
    # The marker itself cannot be read.
    for method in ("GET", "HEAD"):
        answer = request(server, method, f"/{versioned}/k?versionId={marker}")
        assert answer.status == 405, method
        assert answer.headers["x-amz-delete-marker"] == "true"
        assert answer.headers["x-amz-version-id"] == marker
        assert answer.headers["last-modified"].endswith(" GMT")
    assert request(server, "GET", f"/{versioned}/k?versionId={marker}").error["Code"] == "MethodNotAllowed"
    expect_error(405, "MethodNotAllowed", s3.get_object, Bucket=versioned, Key="k", VersionId=marker)
    # The older version is still there.
    assert read(s3, versioned, "k", v1) == b"one"
    assert all_versions(s3, versioned) == [("k", marker, True, True), ("k", v1, False, False)]
    # Removing the marker brings the key back.
    answer = request(server, "DELETE", f"/{versioned}/k?versionId={marker}")
    assert answer.status == 204
    assert (answer.headers["x-amz-version-id"], answer.headers["x-amz-delete-marker"]) == (marker, "true")
    assert read(s3, versioned, "k") == b"one"


def test_delete_markers_stack(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    put(s3, versioned, "a/b", b"x")
    markers = [s3.delete_object(Bucket=versioned, Key="a/b")["VersionId"] for _ in range(3)]
    assert len(set(markers)) == 3
    out = s3.list_object_versions(Bucket=versioned)
    assert len(out["Versions"]) == 1 and len(out["DeleteMarkers"]) == 3
    assert [m["IsLatest"] for m in out["DeleteMarkers"]] == [True, False, False]
    assert out["DeleteMarkers"][0]["VersionId"] == markers[-1]
    assert "Owner" in out["DeleteMarkers"][0] and "ETag" not in out["DeleteMarkers"][0]
    # A delete of a key that never existed adds a marker too.
    assert s3.delete_object(Bucket=versioned, Key="never")["DeleteMarker"] is True


# ---------------------------------------------------------------------- suspended buckets and null versions
def test_suspended_bucket_replaces_the_null_version(server: ServerProcess, s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "k", b"enabled")
    set_versioning(s3, versioned, "Suspended")
    answer = request(server, "PUT", f"/{versioned}/k", b"null one")
    assert answer.status == 200 and "x-amz-version-id" not in answer.headers  # a null write is not reported
    head = request(server, "HEAD", f"/{versioned}/k")
    assert head.headers["x-amz-version-id"] == "null"  # reads report it once versioning was configured
    assert put(s3, versioned, "k", b"null two") is None
    assert read(s3, versioned, "k") == b"null two"
    assert read(s3, versioned, "k", "null") == b"null two"
    assert s3.get_object(Bucket=versioned, Key="k")["VersionId"] == "null"
    assert all_versions(s3, versioned) == [("k", "null", True, False), ("k", v1, False, False)]
    # A delete writes a null delete marker, replacing the null version.
    answer = request(server, "DELETE", f"/{versioned}/k")
    assert answer.status == 204
    assert (answer.headers["x-amz-version-id"], answer.headers["x-amz-delete-marker"]) == ("null", "true")
    assert all_versions(s3, versioned) == [("k", "null", True, True), ("k", v1, False, False)]
    s3.delete_object(Bucket=versioned, Key="k")  # again: still one null marker
    assert all_versions(s3, versioned) == [("k", "null", True, True), ("k", v1, False, False)]
    assert read(s3, versioned, "k", v1) == b"enabled"
    # Removing the null marker makes the older version latest.
    assert s3.delete_object(Bucket=versioned, Key="k", VersionId="null")["DeleteMarker"] is True
    assert read(s3, versioned, "k") == b"enabled"
    # Enabled again: new versions stack on top.
    set_versioning(s3, versioned, "Enabled")
    v3 = put(s3, versioned, "k", b"enabled again")
    assert v3 is not None and VERSION_ID.match(v3)
    assert all_versions(s3, versioned) == [("k", v3, True, False), ("k", v1, False, False)]


def test_object_from_before_versioning_is_the_null_version(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "k", b"plain")
    set_versioning(s3, bucket, "Enabled")
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    v2 = put(s3, bucket, "k", b"versioned")
    assert all_versions(s3, bucket) == [("k", v2, True, False), ("k", "null", False, False)]
    assert read(s3, bucket, "k", "null") == b"plain"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert read(s3, bucket, "k") == b"plain"
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


# ---------------------------------------------------------------------- ListObjectVersions
def _raw_listing(server: ServerProcess, bucket: str, query: str) -> ElementTree.Element:
    answer = request(server, "GET", f"/{bucket}?versions&{query}")
    assert answer.status == 200, answer
    return ElementTree.fromstring(answer.body)


def _rows(root: ElementTree.Element) -> list[tuple[str, ...]]:
    """Versions, markers and prefixes of a raw page, in document order."""
    rows: list[tuple[str, ...]] = []
    for el in root:
        tag = el.tag.removeprefix(NS)
        if tag in ("Version", "DeleteMarker"):
            rows.append((tag, el.findtext(f"{NS}Key") or "", el.findtext(f"{NS}VersionId") or ""))
        elif tag == "CommonPrefixes":
            rows.append(("Prefix", el.findtext(f"{NS}Prefix") or ""))
    return rows


@pytest.fixture
def many_versions(s3, versioned: str) -> str:  # type: ignore[no-untyped-def]
    for key in ["a", "b/1", "b/2", "c", "d/x/y", "e"]:
        for i in range(3):
            put(s3, versioned, key, f"{key} {i}".encode())
    s3.delete_object(Bucket=versioned, Key="c")
    s3.delete_object(Bucket=versioned, Key="b/2")
    return versioned


def _pages(server: ServerProcess, bucket: str, max_keys: int, extra: str) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    key_marker = version_marker = ""
    for _ in range(100):
        query = f"max-keys={max_keys}&key-marker={quote(key_marker)}&version-id-marker={version_marker}{extra}"
        root = _raw_listing(server, bucket, query)
        page = _rows(root)
        assert len(page) <= max_keys
        rows += page
        if root.findtext(f"{NS}IsTruncated") != "true":
            assert root.find(f"{NS}NextKeyMarker") is None
            return rows
        key_marker = root.findtext(f"{NS}NextKeyMarker") or ""
        version_marker = root.findtext(f"{NS}NextVersionIdMarker") or ""
        assert key_marker
    raise AssertionError("the listing never ended")


@pytest.mark.parametrize("extra", ["", "&delimiter=/", "&prefix=b/", "&prefix=d&delimiter=/x"])
def test_list_versions_pages_match_full_listing(server: ServerProcess, many_versions: str, extra: str) -> None:
    def split(rows: list[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
        # A page lists its CommonPrefixes after its versions: compare each in order.
        return [r for r in rows if r[0] != "Prefix"], [r for r in rows if r[0] == "Prefix"]

    full = _rows(_raw_listing(server, many_versions, extra.lstrip("&")))
    assert full
    for max_keys in (1, 2, 3, 5, 7):
        assert split(_pages(server, many_versions, max_keys, extra)) == split(full), max_keys


def test_list_versions_order_and_fields(server: ServerProcess, s3, many_versions: str) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(_raw_listing(server, many_versions, "prefix=c"))
    assert [r[0] for r in rows] == ["DeleteMarker", "Version", "Version", "Version"]
    ids = [r[2] for r in rows]
    assert ids == sorted(ids, reverse=True)  # newest first
    root = _raw_listing(server, many_versions, "prefix=a")
    version = root.find(f"{NS}Version")
    assert version is not None
    assert version.findtext(f"{NS}ETag") == '"{}"'.format(hashlib.md5(b"a 2").hexdigest())
    assert version.findtext(f"{NS}Size") == "3" and version.findtext(f"{NS}StorageClass") == "STANDARD"
    assert version.findtext(f"{NS}IsLatest") == "true"
    assert version.find(f"{NS}Owner/{NS}ID") is not None and version.find(f"{NS}LastModified") is not None
    delimited = _rows(_raw_listing(server, many_versions, "delimiter=/"))
    assert ("Prefix", "b/") in delimited and ("Prefix", "d/") in delimited
    assert not any(r[1].startswith(("b/", "d/")) for r in delimited if r[0] != "Prefix")
    # boto3 gets the same through its own pagination.
    got = [
        (v["Key"], v["VersionId"])
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=many_versions, MaxKeys=2)
        for v in page.get("Versions", [])
    ]
    assert len(got) == 18 and len(set(got)) == 18


def test_list_versions_markers(server: ServerProcess, s3, many_versions: str) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(_raw_listing(server, many_versions, "prefix=a"))
    newest, middle, _oldest = (r[2] for r in rows)
    after = _rows(_raw_listing(server, many_versions, f"prefix=a&key-marker=a&version-id-marker={newest}"))
    assert after == rows[1:]
    assert _rows(_raw_listing(server, many_versions, "prefix=a&key-marker=a")) == []  # past every version of a
    for query, argument in [
        ("key-marker=a&version-id-marker=bogus", "version-id-marker"),
        (f"version-id-marker={middle}", "version-id-marker"),
    ]:
        answer = request(server, "GET", f"/{many_versions}?versions&{query}")
        assert (answer.status, answer.error["Code"], answer.error["ArgumentName"]) == (
            400,
            "InvalidArgument",
            argument,
        )
    expect_error(
        400, "InvalidArgument", s3.list_object_versions, Bucket=many_versions, KeyMarker="a", VersionIdMarker="bad"
    )


def test_list_versions_url_encoding(server: ServerProcess, s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    key = "dir one/k&ey ü+"
    put(s3, versioned, key, b"1")
    put(s3, versioned, key, b"2")
    got = s3.list_object_versions(Bucket=versioned)  # botocore asks for url encoding and decodes
    assert {v["Key"] for v in got["Versions"]} == {key}
    root = _raw_listing(server, versioned, f"encoding-type=url&max-keys=1&key-marker={quote(' ')}")
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert root.findtext(f"{NS}KeyMarker") == "%20"
    assert root.findtext(f"{NS}Version/{NS}Key") == quote(key, safe="/")
    assert root.findtext(f"{NS}NextKeyMarker") == quote(key, safe="/")
    root = _raw_listing(server, versioned, "encoding-type=url&delimiter=/")
    assert root.findtext(f"{NS}CommonPrefixes/{NS}Prefix") == "dir%20one/"


def test_list_versions_of_missing_bucket(s3) -> None:  # type: ignore[no-untyped-def]
    expect_error(404, "NoSuchBucket", s3.list_object_versions, Bucket="no-such-bucket-versions")


# ---------------------------------------------------------------------- DeleteObjects
def test_delete_objects_with_versions(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "k", b"1")
    v2 = put(s3, versioned, "k", b"2")
    put(s3, versioned, "other", b"o")
    marker = s3.delete_object(Bucket=versioned, Key="gone")["VersionId"]
    out = s3.delete_objects(
        Bucket=versioned,
        Delete={
            "Objects": [
                {"Key": "k", "VersionId": v1},
                {"Key": "other"},
                {"Key": "gone", "VersionId": marker},
                {"Key": "k", "VersionId": "bogus"},
                {"Key": "k", "VersionId": ABSENT_VERSION},
            ]
        },
    )
    deleted = {(d["Key"], d.get("VersionId")): d for d in out["Deleted"]}
    assert set(deleted) == {("k", v1), ("other", None), ("gone", marker), ("k", ABSENT_VERSION)}
    assert "DeleteMarker" not in deleted["k", v1]
    made = deleted["other", None]
    assert made["DeleteMarker"] is True and VERSION_ID.match(made["DeleteMarkerVersionId"])
    assert deleted["gone", marker]["DeleteMarker"] is True
    assert deleted["gone", marker]["DeleteMarkerVersionId"] == marker
    assert out["Errors"] == [
        {"Key": "k", "VersionId": "bogus", "Code": "NoSuchVersion", "Message": "The specified version does not exist."}
    ]
    assert all_versions(s3, versioned) == [
        ("k", v2, True, False),
        ("other", made["DeleteMarkerVersionId"], True, True),
        ("other", all_versions(s3, versioned, Prefix="other")[1][1], False, False),
    ]
    # Quiet: only errors come back.
    quiet = s3.delete_objects(
        Bucket=versioned,
        Delete={"Quiet": True, "Objects": [{"Key": "k", "VersionId": v2}, {"Key": "x", "VersionId": "nope"}]},
    )
    assert "Deleted" not in quiet and [e["Key"] for e in quiet["Errors"]] == ["x"]
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=versioned, Key="k")


def test_delete_objects_unversioned_and_suspended(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "k", b"1")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}, {"Key": "j", "VersionId": "null"}]})
    assert sorted(out["Deleted"], key=lambda d: d["Key"]) == [{"Key": "j", "VersionId": "null"}, {"Key": "k"}]
    set_versioning(s3, bucket, "Suspended")
    put(s3, bucket, "k", b"2")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert out["Deleted"] == [{"Key": "k", "DeleteMarker": True, "DeleteMarkerVersionId": "null"}]
    assert all_versions(s3, bucket) == [("k", "null", True, True)]


# ---------------------------------------------------------------------- copies
def test_copy_from_an_old_version(server: ServerProcess, s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    plain = f"{versioned}-plain"
    s3.create_bucket(Bucket=plain)
    v1 = put(s3, versioned, "src", b"old body")
    v2 = put(s3, versioned, "src", b"new body")
    out = s3.copy_object(Bucket=versioned, Key="dst", CopySource={"Bucket": versioned, "Key": "src", "VersionId": v1})
    assert out["CopySourceVersionId"] == v1 and VERSION_ID.match(out["VersionId"])
    assert read(s3, versioned, "dst") == b"old body"
    latest = s3.copy_object(Bucket=plain, Key="dst", CopySource={"Bucket": versioned, "Key": "src"})
    assert latest["CopySourceVersionId"] == v2 and "VersionId" not in latest
    assert read(s3, plain, "dst") == b"new body"
    # From an unversioned bucket: no version headers at all.
    back = request(server, "PUT", f"/{plain}/again", headers={"x-amz-copy-source": f"/{plain}/dst"})
    assert back.status == 200
    assert "x-amz-copy-source-version-id" not in back.headers and "x-amz-version-id" not in back.headers
    # Restoring an old version onto its own key is allowed.
    restored = s3.copy_object(
        Bucket=versioned, Key="src", CopySource={"Bucket": versioned, "Key": "src", "VersionId": v1}
    )
    assert read(s3, versioned, "src") == b"old body" and restored["VersionId"] not in (v1, v2)
    # A marker, an absent version, a bad id.
    marker = s3.delete_object(Bucket=versioned, Key="src")["VersionId"]
    source: dict[str, str] = {"Bucket": versioned, "Key": "src"}
    expect_error(404, "NoSuchKey", s3.copy_object, Bucket=plain, Key="x", CopySource=source)
    expect_error(
        400, "InvalidRequest", s3.copy_object, Bucket=plain, Key="x", CopySource={**source, "VersionId": marker}
    )
    expect_error(
        404, "NoSuchVersion", s3.copy_object, Bucket=plain, Key="x", CopySource={**source, "VersionId": ABSENT_VERSION}
    )
    answer = request(server, "PUT", f"/{plain}/x", headers={"x-amz-copy-source": f"/{versioned}/src?versionId=zzz"})
    assert (answer.status, answer.error["Code"], answer.error["Message"]) == (
        400,
        "InvalidArgument",
        "Invalid version id specified",
    )


def test_upload_part_copy_and_complete_versions(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "src", b"a" * 1000)
    put(s3, versioned, "src", b"b" * 1000)
    upload = s3.create_multipart_upload(Bucket=versioned, Key="mp")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=versioned,
        Key="mp",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": versioned, "Key": "src", "VersionId": v1},
    )
    assert part["CopySourceVersionId"] == v1
    done = s3.complete_multipart_upload(
        Bucket=versioned,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert VERSION_ID.match(done["VersionId"])
    got = s3.get_object(Bucket=versioned, Key="mp", VersionId=done["VersionId"])
    assert got["Body"].read() == b"a" * 1000


def test_multipart_in_unversioned_and_suspended_buckets_report_no_version(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for state in (None, "Suspended"):
        if state:
            set_versioning(s3, bucket, state)
        upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
        done = s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
        )
        assert "VersionId" not in done


# ---------------------------------------------------------------------- tagging and attributes
def test_tagging_by_version(server: ServerProcess, s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "k", b"1")
    v2 = put(s3, versioned, "k", b"2")
    out = s3.put_object_tagging(
        Bucket=versioned, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]}
    )
    assert out["VersionId"] == v1
    got = s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=v1)
    assert (got["TagSet"], got["VersionId"]) == ([{"Key": "a", "Value": "1"}], v1)
    latest = s3.get_object_tagging(Bucket=versioned, Key="k")
    assert (latest["TagSet"], latest["VersionId"]) == ([], v2)
    assert s3.delete_object_tagging(Bucket=versioned, Key="k", VersionId=v1)["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=v1)["TagSet"] == []
    # A key whose latest version is a delete marker has no tags to read.
    s3.delete_object(Bucket=versioned, Key="k")
    answer = request(server, "GET", f"/{versioned}/k?tagging")
    assert (answer.status, answer.error["Code"], answer.headers["x-amz-delete-marker"]) == (404, "NoSuchKey", "true")


def test_unversioned_tagging_has_no_version_header(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "k", b"1")
    answer = request(server, "GET", f"/{bucket}/k?tagging")
    assert answer.status == 200 and "x-amz-version-id" not in answer.headers
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")["TagSet"] == []


def test_object_attributes_by_version(s3, versioned: str) -> None:  # type: ignore[no-untyped-def]
    v1 = put(s3, versioned, "k", b"12345")
    put(s3, versioned, "k", b"1")
    got = s3.get_object_attributes(Bucket=versioned, Key="k", VersionId=v1, ObjectAttributes=["ObjectSize", "ETag"])
    assert (got["ObjectSize"], got["VersionId"]) == (5, v1)
    expect_error(
        400,
        "InvalidArgument",
        s3.get_object_attributes,
        Bucket=versioned,
        Key="k",
        VersionId="x",
        ObjectAttributes=["ETag"],
    )
    expect_error(
        404,
        "NoSuchVersion",
        s3.get_object_attributes,
        Bucket=versioned,
        Key="k",
        VersionId=ABSENT_VERSION,
        ObjectAttributes=["ETag"],
    )


def test_post_object_reports_the_version(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    def post(body: bytes) -> dict[str, str]:
        content_type, form = multipart([("key", "posted")], body)
        answer = request(server, "POST", f"/{bucket}", form, {"Content-Type": content_type})
        assert answer.status == 204, answer
        return answer.headers

    assert "x-amz-version-id" not in post(b"plain")
    set_versioning(s3, bucket, "Enabled")
    version = post(b"versioned")["x-amz-version-id"]
    assert VERSION_ID.match(version) and read(s3, bucket, "posted", version) == b"versioned"
    set_versioning(s3, bucket, "Suspended")
    assert "x-amz-version-id" not in post(b"suspended")
