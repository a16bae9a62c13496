"""The aws CLI against the real server: high-level s3 commands and s3api calls."""

from __future__ import annotations

import filecmp
import itertools
import json
import os
from pathlib import Path

_n = itertools.count()


def keys_in(s3, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_mb_cp_ls_rm_rb(aws, s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-bucket-{next(_n)}"
    assert f"make_bucket: {name}" in aws("s3", "mb", f"s3://{name}").stdout
    assert name in aws("s3", "ls").stdout
    src = tmp_path / "hello world.txt"
    src.write_bytes(os.urandom(300_000))
    aws("s3", "cp", str(src), f"s3://{name}/dir/hello world.txt")
    assert s3.get_object(Bucket=name, Key="dir/hello world.txt")["Body"].read() == src.read_bytes()
    assert "300000 hello world.txt" in aws("s3", "ls", f"s3://{name}/dir/").stdout
    dst = tmp_path / "back.txt"
    aws("s3", "cp", f"s3://{name}/dir/hello world.txt", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    aws("s3", "rm", f"s3://{name}/dir/hello world.txt")
    assert keys_in(s3, name) == []
    aws("s3", "rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_cp_large_file_goes_multipart(aws, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "large.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024))  # above the CLI's 8 MiB multipart threshold
    aws("s3", "cp", str(src), f"s3://{bucket}/large.bin")
    dst = tmp_path / "large.back"
    aws("s3", "cp", f"s3://{bucket}/large.bin", str(dst))
    assert filecmp.cmp(src, dst, shallow=False)


def test_sync_tree(aws, s3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = tmp_path / "tree"
    files = {
        "a.txt": b"alpha",
        "sub/b.bin": os.urandom(70_000),
        "sub/deeper/c d.txt": b"with space",
        "unicodé/ü.txt": "ü".encode(),
        "empty": b"",
    }
    for rel, data in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    aws("s3", "sync", str(tree), f"s3://{bucket}/backup")
    assert keys_in(s3, bucket) == sorted((f"backup/{rel}" for rel in files), key=str.encode)
    # Sizes and LastModified tell the CLI nothing changed: a second sync uploads nothing.
    assert aws("s3", "sync", str(tree), f"s3://{bucket}/backup").stdout.strip() == ""
    restored = tmp_path / "restored"
    aws("s3", "sync", f"s3://{bucket}/backup", str(restored))
    for rel, data in files.items():
        assert (restored / rel).read_bytes() == data
    # --delete removes what is gone locally.
    (tree / "a.txt").unlink()
    aws("s3", "sync", "--delete", str(tree), f"s3://{bucket}/backup")
    assert "backup/a.txt" not in keys_in(s3, bucket)
    assert len(keys_in(s3, bucket)) == len(files) - 1


def test_s3api_calls(aws, s3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = tmp_path / "body.json"
    body.write_text('{"hello": "world"}')
    put = json.loads(
        aws(
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "docs/one.json",
            "--body",
            str(body),
            "--content-type",
            "application/json",
            "--metadata",
            "origin=cli",
        ).stdout
    )
    assert put["ETag"].strip('"')
    s3.put_object(Bucket=bucket, Key="docs/two.json", Body=b"2")
    out = tmp_path / "out.json"
    got = json.loads(aws("s3api", "get-object", "--bucket", bucket, "--key", "docs/one.json", str(out)).stdout)
    assert out.read_text() == '{"hello": "world"}'
    assert got["ContentType"] == "application/json"
    assert got["Metadata"] == {"origin": "cli"}
    assert got["ETag"] == put["ETag"]
    listed = json.loads(
        aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "docs/", "--page-size", "1").stdout
    )
    assert [o["Key"] for o in listed["Contents"]] == ["docs/one.json", "docs/two.json"]  # the CLI pages through
    deleted = json.loads(
        aws(
            "s3api",
            "delete-objects",
            "--bucket",
            bucket,
            "--delete",
            json.dumps({"Objects": [{"Key": "docs/one.json"}, {"Key": "docs/two.json"}, {"Key": "nope"}]}),
        ).stdout
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["docs/one.json", "docs/two.json", "nope"]
    assert keys_in(s3, bucket) == []


def test_s3api_versioning(aws, s3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    aws("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    assert json.loads(aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)["Status"] == "Enabled"
    body = tmp_path / "body.txt"
    ids = []
    for i in range(3):
        body.write_text(f"version {i}")
        put = json.loads(aws("s3api", "put-object", "--bucket", bucket, "--key", "dir/k", "--body", str(body)).stdout)
        ids.append(put["VersionId"])
    marker = json.loads(aws("s3api", "delete-object", "--bucket", bucket, "--key", "dir/k").stdout)
    assert marker["DeleteMarker"] is True
    # --page-size 1: the CLI follows NextKeyMarker/NextVersionIdMarker through every page.
    listed = json.loads(
        aws("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "dir/", "--page-size", "1").stdout
    )
    assert [v["VersionId"] for v in listed["Versions"]] == ids[::-1]
    assert [m["VersionId"] for m in listed["DeleteMarkers"]] == [marker["VersionId"]]
    out = tmp_path / "out.txt"
    aws("s3api", "get-object", "--bucket", bucket, "--key", "dir/k", "--version-id", ids[0], str(out))
    assert out.read_text() == "version 0"
    aws("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Suspended")
    assert json.loads(aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)["Status"] == "Suspended"
