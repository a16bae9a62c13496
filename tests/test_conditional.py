"""Conditional reads (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since), response
overrides, ranges, conditional writes and deletes under concurrent racers."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess
from tests.wire import error_of, expect, raw, request

RACERS = 24
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def status_of(call) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(call()["ResponseMetadata"]["HTTPStatusCode"])
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_conditional_get_and_head(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"data")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    before, after = modified - timedelta(days=1), modified + timedelta(days=1)
    cases = [
        ({"IfMatch": etag}, 200),
        ({"IfMatch": '"other"'}, 412),
        ({"IfMatch": "*"}, 200),
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": '"other"'}, 200),
        ({"IfModifiedSince": before}, 200),
        ({"IfModifiedSince": after}, 304),
        ({"IfUnmodifiedSince": after}, 200),
        ({"IfUnmodifiedSince": before}, 412),
        # S3's precedence: If-Match true beats If-Unmodified-Since false ...
        ({"IfMatch": etag, "IfUnmodifiedSince": before}, 200),
        # ... If-None-Match false (it matches) gives 304 whatever If-Modified-Since says ...
        ({"IfNoneMatch": etag, "IfModifiedSince": before}, 304),
        # ... If-None-Match true beats If-Modified-Since false ...
        ({"IfNoneMatch": '"other"', "IfModifiedSince": after}, 200),
        # ... and a failed If-Match is 412 before any 304.
        ({"IfMatch": '"other"', "IfNoneMatch": etag}, 412),
    ]
    for conditions, expected in cases:
        assert status_of(lambda c=conditions: s3.get_object(Bucket=bucket, Key="k", **c)) == expected, conditions
        assert status_of(lambda c=conditions: s3.head_object(Bucket=bucket, Key="k", **c)) == expected, conditions


def test_not_modified_keeps_the_connection_usable(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"data")["ETag"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", f"/{bucket}/k", headers={"If-None-Match": etag})
        response = conn.getresponse()
        assert (response.status, response.read()) == (304, b"")
        assert response.getheader("ETag") == etag
        conn.request("GET", f"/{bucket}/k")  # same connection: nothing left over from the 304
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"data")
    finally:
        conn.close()
    last_modified = s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    status, _, _ = raw(server, "GET", f"/{bucket}/k", headers={"If-Modified-Since": last_modified})
    assert status == 304
    status, _, _ = raw(server, "GET", f"/{bucket}/k", headers={"If-Modified-Since": "not a date"})
    assert status == 200  # an unparsable date is ignored


def test_response_overrides(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentType="text/plain", CacheControl="no-cache")
    got = s3.get_object(
        Bucket=bucket,
        Key="k",
        ResponseContentType="application/json",
        ResponseContentDisposition='attachment; filename="x.json"',
        ResponseCacheControl="max-age=60",
        ResponseContentEncoding="identity",
        ResponseContentLanguage="fr",
        ResponseExpires="Wed, 21 Oct 2099 07:28:00 GMT",
    )
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert headers["content-disposition"] == 'attachment; filename="x.json"'
    assert headers["cache-control"] == "max-age=60"
    assert headers["content-encoding"] == "identity"
    assert headers["content-language"] == "fr"
    assert headers["expires"] == "Wed, 21 Oct 2099 07:28:00 GMT"
    assert got["Body"].read() == b"data"
    # Overrides answer only that request: the stored metadata is unchanged.
    assert s3.head_object(Bucket=bucket, Key="k")["ContentType"] == "text/plain"


def test_ranges(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    for header, (start, end) in {
        "bytes=0-0": (0, 1),
        "bytes=10-19": (10, 20),
        "bytes=99990-": (99990, 100_000),
        "bytes=-5": (99_995, 100_000),
        "bytes=-200000": (0, 100_000),
        "bytes=50000-999999": (50_000, 100_000),
    }.items():
        got = s3.get_object(Bucket=bucket, Key="k", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{end - 1}/100000", header
        assert got["Body"].read() == data[start:end]
    for header in ("bytes=100000-", "bytes=200000-300000", "bytes=-0"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="k", Range=header)
        assert error_of(exc) == (416, "InvalidRange"), header
        assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */100000"
    # Invalid syntax: the whole object. '\xb2' is '²' once decoded as latin-1.
    for ignored in ("bytes=5-1", "bytes=a-b", "items=0-1", "bytes=0-1,5-6", "bytes=\xb2-"):
        status, body, _ = raw(server, "GET", f"/{bucket}/k", headers={"Range": ignored})
        assert (status, body) == (200, data), ignored
    head = s3.head_object(Bucket=bucket, Key="k", Range="bytes=10-19")
    assert head["ContentLength"] == 10 and head["ResponseMetadata"]["HTTPStatusCode"] == 206
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-")
    assert error_of(exc) == (416, "InvalidRange")


def test_put_if_match_and_if_none_match(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    def put(**conditions: str) -> int:
        return status_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"v", **conditions))

    assert put(IfMatch='"x"') == 404  # If-Match on a missing key: NoSuchKey
    assert put(IfMatch="*") == 404
    assert put(IfNoneMatch="*") == 200
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    assert put(IfNoneMatch="*") == 412
    assert put(IfNoneMatch=etag) == 412
    assert put(IfNoneMatch='"other"') == 200
    assert put(IfMatch='"other"') == 412
    assert put(IfMatch=etag) == 200
    assert put(IfMatch="*") == 200


def _race(bodies: list[bytes], send) -> list[int]:  # type: ignore[no-untyped-def]
    """Run ``send(index, body)`` for every body at once; returns the statuses."""
    barrier = threading.Barrier(len(bodies))
    statuses = [0] * len(bodies)

    def worker(index: int) -> None:
        barrier.wait()
        statuses[index] = send(index, bodies[index])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return statuses


def _put(server: ServerProcess, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("PUT", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("size", [100, 300_000])  # inline rows and blob files
def test_concurrent_if_none_match_puts_have_one_winner(server: ServerProcess, s3, bucket: str, size: int) -> None:  # type: ignore[no-untyped-def]
    for round_ in range(3):
        key = f"race-{size}-{round_}"
        bodies = [os.urandom(size) for _ in range(RACERS)]
        path = f"/{bucket}/{key}"
        statuses = _race(bodies, lambda i, body, path=path: _put(server, path, body, {"If-None-Match": "*"}))
        winners = [i for i, s in enumerate(statuses) if s == 200]
        assert len(winners) == 1, statuses
        assert all(s in (412, 409) for i, s in enumerate(statuses) if i not in winners), statuses
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == bodies[winners[0]]


def test_concurrent_if_match_puts_compare_and_swap(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"v0")["ETag"]
    bodies = [b"v%d" % i for i in range(1, RACERS + 1)]
    statuses = _race(bodies, lambda i, body: _put(server, f"/{bucket}/cas", body, {"If-Match": etag}))
    winners = [i for i, s in enumerate(statuses) if s == 200]
    assert len(winners) == 1 and all(s in (412, 409) for s in statuses if s != 200), statuses
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == bodies[winners[0]]


def test_concurrent_conditional_completes_have_one_winner(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    uploads = []
    for i in range(RACERS):
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp-race")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="mp-race", UploadId=upload_id, PartNumber=1, Body=b"part %d" % i)[
            "ETag"
        ]
        uploads.append((upload_id, etag))
    documents = [
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
        "</CompleteMultipartUpload>".encode()
        for _, etag in uploads
    ]

    def complete(index: int, document: bytes) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            conn.request(
                "POST", f"/{bucket}/mp-race?uploadId={uploads[index][0]}", body=document, headers={"If-None-Match": "*"}
            )
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    statuses = _race(documents, complete)
    winners = [i for i, s in enumerate(statuses) if s == 200]
    assert len(winners) == 1 and all(s in (412, 409) for s in statuses if s != 200), statuses
    body = s3.get_object(Bucket=bucket, Key="mp-race")["Body"].read()
    assert body == b"part %d" % winners[0]
    expected = hashlib.md5(hashlib.md5(body).digest()).hexdigest() + "-1"
    assert s3.head_object(Bucket=bucket, Key="mp-race")["ETag"] == f'"{expected}"'


def test_conditional_delete_object(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    def delete(key: str, **conditions: object) -> int:
        return status_of(lambda: s3.delete_object(Bucket=bucket, Key=key, **conditions))

    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"12345")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    for failing in (
        {"IfMatch": '"0123"'},
        {"IfMatchSize": 4},
        {"IfMatchLastModifiedTime": modified - timedelta(seconds=1)},
        {"IfMatch": etag, "IfMatchSize": 5, "IfMatchLastModifiedTime": modified + timedelta(seconds=1)},
    ):
        assert delete("k", **failing) == 412, failing
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"12345"
    assert delete("k", IfMatch=etag, IfMatchSize=5, IfMatchLastModifiedTime=modified) == 204
    assert status_of(lambda: s3.head_object(Bucket=bucket, Key="k")) == 404
    for holds in ({"IfMatch": "*"}, {"IfMatchSize": 5}, {"IfMatchLastModifiedTime": None}):
        s3.put_object(Bucket=bucket, Key="k", Body=b"12345")
        if "IfMatchLastModifiedTime" in holds:  # this object's own time (the put may land in a later second)
            holds = {"IfMatchLastModifiedTime": s3.head_object(Bucket=bucket, Key="k")["LastModified"]}
        assert delete("k", **holds) == 204, holds
        assert status_of(lambda: s3.head_object(Bucket=bucket, Key="k")) == 404
    # A missing key: If-Match is 404 NoSuchKey (as S3); size and time alone are a 204 no-op.
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert error_of(exc) == (404, "NoSuchKey")
    assert delete("k", IfMatchSize=9) == 204
    assert delete("k", IfMatchLastModifiedTime=modified) == 204


def test_conditional_delete_objects(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    etags = {key: s3.put_object(Bucket=bucket, Key=key, Body=b"123")["ETag"] for key in "abcdef"}
    modified = s3.head_object(Bucket=bucket, Key="e")["LastModified"]
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "ETag": etags["a"]},
                {"Key": "b", "ETag": '"0123"'},
                {"Key": "c", "Size": 3},
                {"Key": "d", "Size": 4},
                {"Key": "e", "LastModifiedTime": modified},
                {"Key": "f", "LastModifiedTime": modified - timedelta(days=1)},
                {"Key": "missing", "ETag": "*"},
                {"Key": "missing-too", "Size": 3},
            ]
        },
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["a", "c", "e", "missing-too"]
    assert sorted((e["Key"], e["Code"]) for e in answer["Errors"]) == [
        ("b", "PreconditionFailed"),
        ("d", "PreconditionFailed"),
        ("f", "PreconditionFailed"),
        ("missing", "NoSuchKey"),
    ]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["b", "d", "f"]


def test_conditional_delete_objects_raw(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Hand-written XML: an ISO 8601 time and an HTTP date both work; quiet mode still lists the failures."""
    etag = s3.put_object(Bucket=bucket, Key="x", Body=b"data")["ETag"]
    for key in ("y", "z"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"data")
    head = s3.head_object(Bucket=bucket, Key="y")
    iso = head["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    http_date = head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    body = (
        "<Delete><Quiet>true</Quiet>"
        f"<Object><Key>x</Key><ETag>{etag}</ETag><Size>5</Size></Object>"
        f"<Object><Key>y</Key><LastModifiedTime>{iso}</LastModifiedTime><Size>4</Size></Object>"
        f"<Object><Key>z</Key><ETag>W/{etag}</ETag><LastModifiedTime>{http_date}</LastModifiedTime></Object>"
        "</Delete>"
    ).encode()
    status, answer, _ = raw(server, "POST", f"/{bucket}?delete", body=body)
    assert status == 200, answer
    root = ElementTree.fromstring(answer)
    assert [(e.findtext(f"{NS}Key"), e.findtext(f"{NS}Code")) for e in root] == [("x", "PreconditionFailed")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["x"]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-amz-if-match-size", "abc"),
        ("x-amz-if-match-size", "-1"),
        ("x-amz-if-match-size", "1.5"),
        ("x-amz-if-match-size", "99999999999999999999"),
        ("x-amz-if-match-last-modified-time", "yesterday"),
        ("x-amz-if-match-last-modified-time", "Wed, 32 Oct 2015 07:28:00 GMT"),
        ("x-amz-if-match-last-modified-time", "1700000000"),
    ],
)
def test_conditional_delete_bad_values(server: ServerProcess, s3, bucket: str, header: str, value: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="kept", Body=b"data")
    answer = request(server, "DELETE", f"/{bucket}/kept", headers={header: value})
    assert expect(answer, 400, "InvalidArgument")["ArgumentName"] == header
    field, text = ("Size", value) if header.endswith("size") else ("LastModifiedTime", value)
    body = f"<Delete><Object><Key>kept</Key><{field}>{text}</{field}></Object></Delete>".encode()
    answer = request(server, "POST", f"/{bucket}?delete", body=body)
    assert expect(answer, 400, "InvalidArgument")["ArgumentName"] == field
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"data"


def test_concurrent_conditional_deletes_and_puts_have_one_winner(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Half the racers delete, half overwrite, all If-Match the same ETag: exactly one succeeds."""
    for round_ in range(3):
        key = f"del-race-{round_}"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"v0")["ETag"]
        bodies = [b"v%d" % i for i in range(1, RACERS + 1)]

        def send(i: int, body: bytes, key: str = key, etag: str = etag) -> int:
            if i % 2:
                return raw(server, "DELETE", f"/{bucket}/{key}", headers={"If-Match": etag})[0]
            return _put(server, f"/{bucket}/{key}", body, {"If-Match": etag})

        statuses = _race(bodies, send)
        winners = [i for i, s in enumerate(statuses) if s in (200, 204)]
        assert len(winners) == 1 and all(s in (404, 409, 412) for s in statuses if s not in (200, 204)), statuses
        if winners[0] % 2:
            assert status_of(lambda key=key: s3.head_object(Bucket=bucket, Key=key)) == 404
        else:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == bodies[winners[0]]
