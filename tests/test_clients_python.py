"""Third-party Python S3 clients against the real server: minio, s3fs, pyarrow, boto3's s3transfer.

Each client speaks S3 through its own stack (MinIO's SDK, aiobotocore, the AWS SDK for
C++, botocore's transfer manager), so each finds different mistakes. A client that is
not installed skips its tests (``pip install -e '.[clients]'`` brings them all;
docs/clients.md).

``COFFER_CLIENTS_ENDPOINT`` points the tests at an already running server instead of
starting one (scripts/client_matrix.sh uses it).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import ServerProcess

# The endpoint fixture starts the shared server through getfixturevalue, which collection cannot see.
pytestmark = pytest.mark.server

ACCESS_KEY = "clients-test"
SECRET_KEY = "clients-test-secret"
MiB = 1024 * 1024

_names = itertools.count()


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> str:
    external = os.environ.get("COFFER_CLIENTS_ENDPOINT")
    if external:
        return external.rstrip("/")
    server: ServerProcess = request.getfixturevalue("server")
    return server.endpoint


@pytest.fixture(scope="module")
def boto(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def bucket_name(boto) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket name (created by the test through its client, or here by boto3)."""
    return f"clients-{os.getpid()}-{next(_names)}"


@pytest.fixture
def made_bucket(boto, bucket_name: str) -> str:  # type: ignore[no-untyped-def]
    boto.create_bucket(Bucket=bucket_name)
    return bucket_name


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-enough bytes (no two 256-byte blocks alike)."""
    block = bytes((i * 7 + seed) % 251 for i in range(4093))
    return (block * (size // len(block) + 1))[:size]


def keys_of(boto, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [o["Key"] for o in boto.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --------------------------------------------------------------------------- minio


@pytest.fixture(scope="module")
def mc(endpoint: str):  # type: ignore[no-untyped-def]
    minio = pytest.importorskip("minio")
    host = endpoint.split("://", 1)[1]
    # No region: minio discovers each bucket's region with GetBucketLocation, as it does by default.
    return minio.Minio(host, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)


def test_minio_bucket_lifecycle(mc, bucket_name: str) -> None:  # type: ignore[no-untyped-def]
    assert not mc.bucket_exists(bucket_name)
    mc.make_bucket(bucket_name)
    assert mc.bucket_exists(bucket_name)
    assert bucket_name in [b.name for b in mc.list_buckets()]
    assert mc.get_bucket_versioning(bucket_name).status is None  # never configured
    mc.remove_bucket(bucket_name)
    assert not mc.bucket_exists(bucket_name)


def test_minio_objects(mc, made_bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    body = payload(100_000)
    put = mc.put_object(
        made_bucket, "dir/obj.bin", io.BytesIO(body), len(body), content_type="application/x-test", metadata={"k": "v"}
    )
    stat = mc.stat_object(made_bucket, "dir/obj.bin")
    assert (stat.size, stat.etag, stat.content_type) == (len(body), put.etag, "application/x-test")
    assert stat.metadata["x-amz-meta-k"] == "v"
    assert mc.get_object(made_bucket, "dir/obj.bin").read() == body
    assert mc.get_object(made_bucket, "dir/obj.bin", offset=10, length=20).read() == body[10:30]
    # Unknown length, smaller than one part: minio streams it as a single PutObject.
    mc.put_object(made_bucket, "dir/stream", io.BytesIO(b"s" * 1000), length=-1, part_size=5 * MiB)
    assert mc.stat_object(made_bucket, "dir/stream").size == 1000
    src = tmp_path / "up.bin"
    src.write_bytes(payload(300_000, seed=1))
    mc.fput_object(made_bucket, "file.bin", str(src))
    mc.fget_object(made_bucket, "file.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()

    assert sorted(o.object_name for o in mc.list_objects(made_bucket)) == ["dir/", "file.bin"]
    recursive = ["dir/obj.bin", "dir/stream", "file.bin"]
    assert [o.object_name for o in mc.list_objects(made_bucket, recursive=True)] == recursive
    assert [o.object_name for o in mc.list_objects(made_bucket, recursive=True, use_api_v1=True)] == recursive
    versions = list(mc.list_objects(made_bucket, recursive=True, include_version=True))
    assert [(o.object_name, o.version_id) for o in versions] == [(k, "null") for k in recursive]

    with pytest.raises(S3Error) as missing:
        mc.stat_object(made_bucket, "nope")
    assert missing.value.code == "NoSuchKey"
    mc.remove_object(made_bucket, "nope")  # idempotent
    errors = list(mc.remove_objects(made_bucket, [DeleteObject(k) for k in recursive]))
    assert errors == []
    assert list(mc.list_objects(made_bucket, recursive=True)) == []


def test_minio_presigned_get(mc, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    mc.put_object(made_bucket, "shared name.txt", io.BytesIO(b"shared"), 6)
    url = mc.presigned_get_object(made_bucket, "shared name.txt")
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"shared"


def test_minio_multipart(mc, made_bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "big.bin"
    src.write_bytes(payload(6 * MiB + 123, seed=2))
    result = mc.fput_object(made_bucket, "big.bin", str(src), part_size=5 * MiB)
    assert result.etag.endswith("-2")
    assert mc.get_object(made_bucket, "big.bin").read() == src.read_bytes()


def test_minio_copy(mc, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    from minio.commonconfig import CopySource

    mc.put_object(made_bucket, "src", io.BytesIO(b"copy me"), 7)
    mc.copy_object(made_bucket, "dst", CopySource(made_bucket, "src"))
    assert mc.get_object(made_bucket, "dst").read() == b"copy me"


# --------------------------------------------------------------------------- s3fs


@pytest.fixture
def s3fs_fs(endpoint: str):  # type: ignore[no-untyped-def]
    s3fs = pytest.importorskip("s3fs")
    # A fresh instance per test (skip_instance_cache), so listings are never served from a cache.
    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        endpoint_url=endpoint,
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    return fs


def test_s3fs_files_and_directories(s3fs_fs, bucket_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fs = s3fs_fs
    fs.mkdir(bucket_name)
    assert fs.exists(bucket_name)
    with fs.open(f"{bucket_name}/dir/a.txt", "wb") as f:
        f.write(b"hello world")
    fs.pipe(f"{bucket_name}/dir/sub/b.bin", payload(1000))
    fs.touch(f"{bucket_name}/empty")
    assert fs.ls(bucket_name, detail=False) == [f"{bucket_name}/dir", f"{bucket_name}/empty"]
    assert sorted(fs.ls(f"{bucket_name}/dir", detail=False)) == [f"{bucket_name}/dir/a.txt", f"{bucket_name}/dir/sub"]
    assert fs.find(bucket_name) == [f"{bucket_name}/dir/a.txt", f"{bucket_name}/dir/sub/b.bin", f"{bucket_name}/empty"]
    assert fs.info(f"{bucket_name}/dir")["type"] == "directory"
    info = fs.info(f"{bucket_name}/dir/a.txt")
    assert (info["type"], info["size"]) == ("file", 11)
    assert fs.isdir(f"{bucket_name}/dir/sub") and not fs.exists(f"{bucket_name}/nope")
    assert fs.glob(f"{bucket_name}/**/*.bin") == [f"{bucket_name}/dir/sub/b.bin"]
    assert fs.du(bucket_name) == 1011
    assert fs.cat(f"{bucket_name}/dir/a.txt") == b"hello world"
    assert fs.cat_file(f"{bucket_name}/dir/a.txt", start=6, end=11) == b"world"
    with fs.open(f"{bucket_name}/dir/sub/b.bin", "rb", block_size=256) as f:
        f.seek(500)
        assert f.read(300) == payload(1000)[500:800]

    src = tmp_path / "local.bin"
    src.write_bytes(payload(200_000, seed=3))
    fs.put(str(src), f"{bucket_name}/up/local.bin")
    fs.get(f"{bucket_name}/up/local.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()

    fs.rm(f"{bucket_name}/dir", recursive=True)
    assert fs.find(bucket_name) == [f"{bucket_name}/empty", f"{bucket_name}/up/local.bin"]
    # Removing the bucket itself asks for its versioning state first, then bulk-deletes.
    fs.rm(bucket_name, recursive=True)
    assert not fs.exists(bucket_name)


def test_s3fs_multipart_write(s3fs_fs, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = payload(6 * MiB, seed=4)
    with s3fs_fs.open(f"{made_bucket}/big.bin", "wb", block_size=5 * MiB) as f:
        f.write(body)
    assert s3fs_fs.cat(f"{made_bucket}/big.bin") == body


def test_s3fs_copy_and_move(s3fs_fs, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3fs_fs.pipe(f"{made_bucket}/a", b"content")
    s3fs_fs.copy(f"{made_bucket}/a", f"{made_bucket}/b")
    s3fs_fs.mv(f"{made_bucket}/b", f"{made_bucket}/c")
    assert s3fs_fs.find(made_bucket) == [f"{made_bucket}/a", f"{made_bucket}/c"]
    assert s3fs_fs.cat(f"{made_bucket}/c") == b"content"


# --------------------------------------------------------------------------- pyarrow


def _arrow_fs(endpoint: str, **options: Any):  # type: ignore[no-untyped-def]
    pafs = pytest.importorskip("pyarrow.fs")
    scheme, host = endpoint.split("://", 1)
    return pafs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=host,
        scheme=scheme,
        region="us-east-1",
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        **options,
    )


def _table():  # type: ignore[no-untyped-def]
    pa = pytest.importorskip("pyarrow")
    n = 3000
    return pa.table({"id": list(range(n)), "part": [i % 3 for i in range(n)], "name": [f"row-{i}" for i in range(n)]})


def test_pyarrow_parquet_dataset(endpoint: str, bucket_name: str) -> None:
    # allow_delayed_open: a file smaller than one part is written with a single PutObject
    # (without it Arrow always starts a multipart upload; see the test below).
    fs = _arrow_fs(endpoint, allow_delayed_open=True)
    pafs = pytest.importorskip("pyarrow.fs")
    pq = pytest.importorskip("pyarrow.parquet")
    ds = pytest.importorskip("pyarrow.dataset")
    table = _table()
    fs.create_dir(bucket_name)
    pq.write_table(table, f"{bucket_name}/single.parquet", filesystem=fs)
    assert pq.read_table(f"{bucket_name}/single.parquet", filesystem=fs).equals(table)

    ds.write_dataset(table, f"{bucket_name}/ds", format="parquet", partitioning=["part"], filesystem=fs)
    listed = fs.get_file_info(pafs.FileSelector(f"{bucket_name}/ds", recursive=True))
    files = sorted(i.path for i in listed if i.type == pafs.FileType.File)
    assert files == [f"{bucket_name}/ds/{p}/part-0.parquet" for p in range(3)]
    dirs = sorted(i.path for i in listed if i.type == pafs.FileType.Directory)
    assert dirs == [f"{bucket_name}/ds/{p}" for p in range(3)]
    dataset = ds.dataset(f"{bucket_name}/ds", format="parquet", partitioning=["part"], filesystem=fs)
    back = dataset.to_table().sort_by("id")
    assert back.column("id").to_pylist() == table.column("id").to_pylist()
    assert back.column("name").to_pylist() == table.column("name").to_pylist()
    # A filtered read only opens one partition's file.
    only = dataset.to_table(filter=ds.field("part") == 1)
    assert only.num_rows == 1000 and set(only.column("part").to_pylist()) == {1}

    # Directory markers ("dir/" objects), random access reads, deletes.
    fs.create_dir(f"{bucket_name}/empty/deeper")
    assert fs.get_file_info(f"{bucket_name}/empty/deeper").type == pafs.FileType.Directory
    assert fs.get_file_info(f"{bucket_name}/missing").type == pafs.FileType.NotFound
    with fs.open_output_stream(f"{bucket_name}/raw.txt") as out:
        out.write(b"abcdef")
    with fs.open_input_file(f"{bucket_name}/raw.txt") as f:
        assert f.size() == 6 and f.read_at(3, 2) == b"cde"
    fs.delete_dir(f"{bucket_name}/ds")
    fs.delete_file(f"{bucket_name}/raw.txt")
    remaining = fs.get_file_info(pafs.FileSelector(bucket_name, recursive=True))
    assert sorted(i.path for i in remaining) == [
        f"{bucket_name}/empty",
        f"{bucket_name}/empty/deeper",
        f"{bucket_name}/single.parquet",
    ]
    fs.delete_dir(bucket_name)
    assert fs.get_file_info(bucket_name).type == pafs.FileType.NotFound


def test_pyarrow_default_writes_use_multipart(endpoint: str, made_bucket: str) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    fs = _arrow_fs(endpoint)
    table = _table()
    pq.write_table(table, f"{made_bucket}/t.parquet", filesystem=fs)
    assert pq.read_table(f"{made_bucket}/t.parquet", filesystem=fs).equals(table)


def test_pyarrow_move(endpoint: str, made_bucket: str) -> None:
    pafs = pytest.importorskip("pyarrow.fs")
    fs = _arrow_fs(endpoint, allow_delayed_open=True)
    with fs.open_output_stream(f"{made_bucket}/a.txt") as out:
        out.write(b"moving")
    fs.move(f"{made_bucket}/a.txt", f"{made_bucket}/b.txt")
    assert fs.get_file_info(f"{made_bucket}/a.txt").type == pafs.FileType.NotFound
    with fs.open_input_stream(f"{made_bucket}/b.txt") as f:
        assert f.read() == b"moving"


# --------------------------------------------------------------------------- s3transfer (boto3)


def _transfer(**kwargs: Any):  # type: ignore[no-untyped-def]
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(**kwargs)


@pytest.fixture
def local_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "one.bin"
    path.write_bytes(payload(MiB + 17, seed=5))
    yield path


def test_s3transfer_single_upload_and_ranged_download(boto, made_bucket: str, local_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Below the multipart threshold: one PutObject (with boto3's default CRC32, aws-chunked).
    boto.upload_file(str(local_file), made_bucket, "one.bin", Config=_transfer(multipart_threshold=8 * MiB))
    head = boto.head_object(Bucket=made_bucket, Key="one.bin")
    assert head["ContentLength"] == local_file.stat().st_size
    # Above the download threshold: HeadObject, then concurrent ranged GETs with If-Match.
    config = _transfer(multipart_threshold=256 * 1024, multipart_chunksize=256 * 1024, max_concurrency=4)
    boto.download_file(made_bucket, "one.bin", str(tmp_path / "back.bin"), Config=config)
    assert (tmp_path / "back.bin").read_bytes() == local_file.read_bytes()
    buffer = io.BytesIO()
    boto.download_fileobj(made_bucket, "one.bin", buffer, Config=config)
    assert buffer.getvalue() == local_file.read_bytes()


def test_s3transfer_non_seekable_upload(boto, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    class Pipe(io.RawIOBase):
        """A stream that can only be read forward, like a pipe or a socket."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._data.readinto(buffer)

    body = payload(300_000, seed=6)
    boto.upload_fileobj(Pipe(body), made_bucket, "piped", Config=_transfer(multipart_threshold=8 * MiB))
    assert boto.get_object(Bucket=made_bucket, Key="piped")["Body"].read() == body


def test_s3transfer_multipart_upload(boto, made_bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.bin"
    path.write_bytes(payload(11 * MiB, seed=7))
    config = _transfer(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    boto.upload_file(str(path), made_bucket, "big.bin", Config=config)
    head = boto.head_object(Bucket=made_bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    boto.download_file(made_bucket, "big.bin", str(tmp_path / "back.bin"), Config=config)
    assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()


def test_s3transfer_managed_copy(boto, made_bucket: str) -> None:  # type: ignore[no-untyped-def]
    boto.put_object(Bucket=made_bucket, Key="src", Body=b"managed copy")
    boto.copy({"Bucket": made_bucket, "Key": "src"}, made_bucket, "dst")
    assert boto.get_object(Bucket=made_bucket, Key="dst")["Body"].read() == b"managed copy"
