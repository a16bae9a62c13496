"""Virtual-hosted-style addressing: boto3 puts the bucket in the Host header.

The endpoint is http://localhost:PORT ('localhost' is a default base domain), so
boto3 sends requests to <bucket>.localhost:PORT. Not every resolver knows
*.localhost, so name resolution for it is pointed at the loopback address; the
requests themselves are exactly what boto3 sends.
"""

from __future__ import annotations

import http.client
import itertools
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.s3errors import expect_error

_n = itertools.count()


@pytest.fixture
def localhost_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def virtual(server, localhost_resolves):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{server.port}",
        aws_access_key_id="test",
        aws_secret_access_key="testsecret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
    )


def test_virtual_hosted_round_trip(virtual, s3) -> None:  # type: ignore[no-untyped-def]
    name = f"vhost-{next(_n)}"
    urls: list[str] = []
    virtual.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    created = virtual.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    virtual.head_bucket(Bucket=name)
    assert virtual.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    put = virtual.put_object(Bucket=name, Key="dir/file.txt", Body=b"virtual", ContentType="text/plain")
    got = virtual.get_object(Bucket=name, Key="dir/file.txt")
    assert got["Body"].read() == b"virtual" and got["ETag"] == put["ETag"]
    assert virtual.list_objects_v2(Bucket=name, Delimiter="/")["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert [o["Key"] for o in virtual.list_objects(Bucket=name)["Contents"]] == ["dir/file.txt"]
    # The same bucket, seen path style.
    assert s3.get_object(Bucket=name, Key="dir/file.txt")["Body"].read() == b"virtual"
    assert name in [b["Name"] for b in virtual.list_buckets()["Buckets"]]
    result = virtual.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "dir/file.txt"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["dir/file.txt"]
    expect_error(404, "NoSuchKey", virtual.get_object, Bucket=name, Key="dir/file.txt")
    virtual.delete_bucket(Bucket=name)
    expect_error(404, "NoSuchBucket", virtual.list_objects_v2, Bucket=name)
    # Besides ListBuckets and GetBucketLocation (which botocore always sends path style),
    # every request went to <bucket>.localhost with the key alone as the path.
    vhost = f"http://{name}.localhost:"
    assert len([u for u in urls if u.startswith(vhost)]) == len(urls) - 2, urls
    assert f"{vhost}{virtual.meta.endpoint_url.rsplit(':', 1)[1]}/dir/file.txt" in urls


def test_virtual_hosted_key_is_whole_path(server, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """With the bucket in Host, the first path segment is part of the key, not a bucket."""
    s3.put_object(Bucket=bucket, Key=f"{bucket}/nested", Body=b"deep")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/{bucket}/nested", headers={"Host": f"{bucket}.localhost:{server.port}"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"deep")
    # An IP-literal host is never a bucket: path style.
    conn.request("GET", f"/{bucket}/{bucket}/nested", headers={"Host": f"127.0.0.1:{server.port}"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"deep")
    conn.close()
