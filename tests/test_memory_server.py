"""`coffer serve --storage memory` driven by boto3: the protocol, limits, TTL, crash recovery."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess
from tests.wire import error_of

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("memory") / "data", "--storage", "memory").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("limited") / "data",
        "--storage", "memory",
        "--max-memory", str(2 * MiB),
        "--max-buckets", "3",
        "--max-objects-per-bucket", "4",
        "--ttl-reaper-interval", "0.2",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def test_round_trip_with_default_checksums(memory_server: ServerProcess) -> None:
    s3 = memory_server.client()
    s3.create_bucket(Bucket="round-trip")
    body = os.urandom(3 * MiB + 17)
    put = s3.put_object(Bucket="round-trip", Key="dir/big.bin", Body=body, Metadata={"color": "blue"})
    s3.put_object(Bucket="round-trip", Key="dir/small.txt", Body=b"hello", ContentType="text/plain")
    s3.put_object(Bucket="round-trip", Key="top", Body=b"")
    got = s3.get_object(Bucket="round-trip", Key="dir/big.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert got["Metadata"] == {"color": "blue"}
    ranged = s3.get_object(Bucket="round-trip", Key="dir/big.bin", Range="bytes=1048570-2097160")
    assert ranged["Body"].read() == body[1048570:2097161]
    head = s3.head_object(Bucket="round-trip", Key="dir/small.txt")
    assert (head["ContentLength"], head["ContentType"]) == (5, "text/plain")
    listed = s3.list_objects_v2(Bucket="round-trip", Delimiter="/")
    assert [c["Key"] for c in listed["Contents"]] == ["top"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]
    v1 = s3.list_objects(Bucket="round-trip", Prefix="dir/", MaxKeys=1)
    assert [c["Key"] for c in v1["Contents"]] == ["dir/big.bin"] and v1["IsTruncated"]
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="round-trip", Key="top", Body=b"x", IfNoneMatch="*")
    assert error_of(caught)[1] == "PreconditionFailed"
    deleted = s3.delete_objects(
        Bucket="round-trip", Delete={"Objects": [{"Key": "top"}, {"Key": "dir/small.txt"}, {"Key": "missing"}]}
    )
    assert len(deleted["Deleted"]) == 3
    with pytest.raises(ClientError) as caught:
        s3.delete_bucket(Bucket="round-trip")
    assert error_of(caught)[1] == "BucketNotEmpty"
    s3.delete_object(Bucket="round-trip", Key="dir/big.bin")
    s3.delete_bucket(Bucket="round-trip")
    with pytest.raises(ClientError) as caught:
        s3.head_bucket(Bucket="round-trip")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_paginated_listing(memory_server: ServerProcess) -> None:
    s3 = memory_server.client()
    s3.create_bucket(Bucket="pages")
    keys = [f"k/{i:03d}" for i in range(45)] + ["é", "z"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="pages", Key=k, Body=k.encode()), keys))
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="pages", PaginationConfig={"PageSize": 7}):
        seen += [c["Key"] for c in page.get("Contents", [])]
    assert seen == sorted(keys, key=lambda k: k.encode())
    folded = s3.list_objects_v2(Bucket="pages", Delimiter="/")
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["k/"]
    assert [c["Key"] for c in folded["Contents"]] == ["z", "é"]


def test_aws_cli_copy(memory_server: ServerProcess, tmp_path: Path) -> None:
    s3 = memory_server.client()
    s3.create_bucket(Bucket="cli")
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(MiB + 5))
    memory_server.aws("s3", "cp", str(source), "s3://cli/file.bin")
    back = tmp_path / "back.bin"
    memory_server.aws("s3", "cp", "s3://cli/file.bin", str(back))
    assert back.read_bytes() == source.read_bytes()


def test_put_larger_than_max_memory_is_refused(limited_server: ServerProcess) -> None:
    s3 = limited_server.client()
    s3.create_bucket(Bucket="too-large")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="too-large", Key="huge", Body=b"x" * (3 * MiB))
    assert error_of(caught)[1] == "EntityTooLarge"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    s3.put_object(Bucket="too-large", Key="fine", Body=b"ok")  # the server is fine
    assert s3.get_object(Bucket="too-large", Key="fine")["Body"].read() == b"ok"
    s3.delete_object(Bucket="too-large", Key="fine")
    s3.delete_bucket(Bucket="too-large")


def test_lru_eviction_over_http(limited_server: ServerProcess) -> None:
    s3 = limited_server.client()
    s3.create_bucket(Bucket="evict")
    s3.put_object(Bucket="evict", Key="first", Body=b"1" * (700 * 1024))
    s3.put_object(Bucket="evict", Key="second", Body=b"2" * (700 * 1024))
    s3.head_object(Bucket="evict", Key="first")  # now "second" is the least recently used
    s3.put_object(Bucket="evict", Key="third", Body=b"3" * (700 * 1024))
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket="evict", Key="second")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.get_object(Bucket="evict", Key="first")["Body"].read() == b"1" * (700 * 1024)
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="evict")["Contents"]] == ["first", "third"]
    # Counted in the metrics too.
    conn = http.client.HTTPConnection("127.0.0.1", limited_server.port, timeout=30)
    conn.request("GET", "/_coffer/metrics")
    scrape = conn.getresponse().read().decode()
    conn.close()
    evicted = [line for line in scrape.splitlines() if line.startswith("coffer_engine_evicted_objects_total ")]
    assert evicted and float(evicted[0].split()[1]) >= 1
    s3.delete_objects(Bucket="evict", Delete={"Objects": [{"Key": "first"}, {"Key": "third"}]})
    s3.delete_bucket(Bucket="evict")


def test_bucket_and_object_count_limits(limited_server: ServerProcess) -> None:
    s3 = limited_server.client()
    for name in ("lim-a", "lim-b", "lim-c"):
        s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as caught:
        s3.create_bucket(Bucket="lim-d")
    assert error_of(caught)[1] == "TooManyBuckets"
    for i in range(4):
        s3.put_object(Bucket="lim-a", Key=f"k{i}", Body=b"v")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="lim-a", Key="k4", Body=b"v")
    assert error_of(caught)[1] == "QuotaExceeded"
    assert "max_objects_per_bucket" in caught.value.response["Error"]["Message"]
    s3.put_object(Bucket="lim-a", Key="k0", Body=b"overwrites are fine")
    for i in range(4):
        s3.delete_object(Bucket="lim-a", Key=f"k{i}")
    for name in ("lim-a", "lim-b", "lim-c"):
        s3.delete_bucket(Bucket=name)


def test_ttl_metadata(limited_server: ServerProcess) -> None:
    s3 = limited_server.client()
    s3.create_bucket(Bucket="ttl")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="ttl", Key="bad", Body=b"x", Metadata={"ttl-seconds": "soon"})
    assert error_of(caught)[1] == "InvalidArgument"
    s3.put_object(Bucket="ttl", Key="brief", Body=b"x", Metadata={"ttl-seconds": "1"})
    s3.put_object(Bucket="ttl", Key="stays", Body=b"y")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            s3.head_object(Bucket="ttl", Key="brief")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            break
        time.sleep(0.2)
    else:
        pytest.fail("the object never expired")
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="ttl")["Contents"]] == ["stays"]
    s3.delete_object(Bucket="ttl", Key="stays")
    s3.delete_bucket(Bucket="ttl")


def test_memory_engine_refuses_several_workers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env["COFFER_STORAGE"] = "memory"
    result = subprocess.run(
        [sys.executable, "-m", "coffer", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "workers must be 1" in result.stderr


@pytest.mark.server
def test_kill9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    args = ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "0.5")
    server = ServerProcess(tmp_path / "data", *args).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="durable")
        bodies = {f"obj-{i:03d}": os.urandom(100 + i * 997) for i in range(60)}
        bodies["large"] = os.urandom(2 * MiB + 1)

        def put(item: tuple[str, bytes]) -> str:
            s3.put_object(Bucket="durable", Key=item[0], Body=item[1])
            return item[0]

        with ThreadPoolExecutor(8) as pool:
            acknowledged = list(pool.map(put, list(bodies.items())[:30]))
            time.sleep(1.0)  # let a periodic snapshot happen between the two halves
            acknowledged += list(pool.map(put, list(bodies.items())[30:]))
        for key in ("obj-000", "obj-031"):
            s3.delete_object(Bucket="durable", Key=key)
            del bodies[key]
        assert len(acknowledged) == 61
        server.kill9()
        assert list((tmp_path / "data" / "memory").glob("snapshot-*.snap"))

        server.start()
        s3 = server.client()
        listed = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="durable"):
            listed += [c["Key"] for c in page.get("Contents", [])]
        assert listed == sorted(bodies)
        for key, body in bodies.items():
            assert s3.get_object(Bucket="durable", Key=key)["Body"].read() == body
        s3.put_object(Bucket="durable", Key="after-restart", Body=b"new")
        server.stop()  # graceful: shutdown snapshot

        server.start()
        s3 = server.client()
        assert s3.get_object(Bucket="durable", Key="after-restart")["Body"].read() == b"new"
        assert s3.list_objects_v2(Bucket="durable")["KeyCount"] == len(bodies) + 1
    finally:
        server.stop()


def test_multipart_and_copy(memory_server: ServerProcess) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = memory_server.client()
    s3.create_bucket(Bucket="mpu")
    body = os.urandom(11 * MiB + 7)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(io.BytesIO(body), "mpu", "big.bin", Config=config, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    head = s3.head_object(Bucket="mpu", Key="big.bin", PartNumber=3, ChecksumMode="ENABLED")
    assert head["PartsCount"] == 3 and head["ContentLength"] == MiB + 7
    assert head["ETag"].endswith('-3"')
    got = s3.get_object(Bucket="mpu", Key="big.bin", PartNumber=2)
    assert got["Body"].read() == body[5 * MiB : 10 * MiB]
    assert s3.get_object(Bucket="mpu", Key="big.bin")["Body"].read() == body
    copied = s3.copy_object(Bucket="mpu", Key="copy.bin", CopySource={"Bucket": "mpu", "Key": "big.bin"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket="mpu", Key="copy.bin", Range="bytes=-5")["Body"].read() == body[-5:]
    pending = s3.create_multipart_upload(Bucket="mpu", Key="pending")
    s3.upload_part_copy(
        Bucket="mpu",
        Key="pending",
        UploadId=pending["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": "mpu", "Key": "big.bin"},
        CopySourceRange="bytes=0-99",
    )
    uploads = s3.list_multipart_uploads(Bucket="mpu")["Uploads"]
    assert [u["Key"] for u in uploads] == ["pending"]
    parts = s3.list_parts(Bucket="mpu", Key="pending", UploadId=pending["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 100)]
    s3.abort_multipart_upload(Bucket="mpu", Key="pending", UploadId=pending["UploadId"])
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="mpu")
