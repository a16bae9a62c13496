"""`coffer mirror copy / sync / verify` between two real Coffer servers, plus its pure parts.

The source server requires signatures from one key pair and the destination from another, so
every run also proves that each side is signed with its own credentials.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.cli import main
from coffer.mirror.client import Entry
from coffer.mirror.command import ByteSize
from coffer.mirror.location import LocationError, parse_s3_url, resolve_credentials
from coffer.mirror.plan import ListingOrderError, merge, up_to_date, verdict
from coffer.mirror.progress import Meter, Report
from coffer.mirror.transfer import full_object_checksum, part_size_for
from tests.helpers import self_signed_cert
from tests.server_process import ServerProcess

SRC_KEYS = ("AKIAMIRRORSOURCE", "source/secret+key")
DST_KEYS = ("AKIAMIRRORDEST00", "dest-secret-key")
MiB = 1 << 20
_names = itertools.count()


# ---------------------------------------------------------------------- servers and data
def _server(tmp: Path, keys: tuple[str, str]) -> ServerProcess:
    env = {"COFFER_ACCESS_KEY": keys[0], "COFFER_SECRET_KEY": keys[1]}
    return ServerProcess(tmp / "data", "--fsync", "never", env=env).start()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _server(tmp_path_factory.mktemp("mirror-source"), SRC_KEYS)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _server(tmp_path_factory.mktemp("mirror-dest"), DST_KEYS)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def src_s3(source: ServerProcess) -> Any:
    return source.client(*SRC_KEYS)


@pytest.fixture(scope="module")
def dst_s3(dest: ServerProcess) -> Any:
    return dest.client(*DST_KEYS)


SMALL = {
    "plain.txt": b"hello mirror",
    "empty": b"",
    "dir/with space/naïve ünïcødé 文件.bin": os.urandom(3000),
    "odd+chars=&?#%.txt": b"odd",
    "dir//double-slash": b"double",
}


def _populate(s3: Any, bucket: str) -> dict[str, bytes]:
    """Small objects with content headers, metadata and tags; a 1.5 MiB object (streamed single
    PUT at the tests' 2 MiB threshold); a 5.1 MiB source multipart object (two parts)."""
    s3.create_bucket(Bucket=bucket)
    bodies = dict(SMALL)
    for key, body in SMALL.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(
        Bucket=bucket,
        Key="headers.html",
        Body=b"<p>hi</p>",
        ContentType="text/html; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="x.html"',
        ContentLanguage="en-GB",
        CacheControl="max-age=60",
        Expires="Wed, 21 Oct 2037 07:28:00 GMT",
        Metadata={"colour": "blue", "owner": "mirror-test"},
        Tagging="team=storage&note=two words",
        StorageClass="STANDARD_IA",
    )
    bodies["headers.html"] = b"<p>hi</p>"
    bodies["mid.bin"] = os.urandom(MiB + MiB // 2)
    s3.put_object(Bucket=bucket, Key="mid.bin", Body=bodies["mid.bin"], Metadata={"size": "mid"})
    big = os.urandom(5 * MiB + 100_000)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big/multi.bin", ContentType="application/x-big")
    parts = []
    for number, start in enumerate((0, 5 * MiB), 1):
        part = s3.upload_part(
            Bucket=bucket,
            Key="big/multi.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=big[start : start + 5 * MiB],
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big/multi.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    s3.put_object_tagging(Bucket=bucket, Key="big/multi.bin", Tagging={"TagSet": [{"Key": "size", "Value": "big"}]})
    bodies["big/multi.bin"] = big
    return bodies


@pytest.fixture(scope="module")
def populated(src_s3: Any) -> dict[str, bytes]:
    return _populate(src_s3, "mirror-src")


@pytest.fixture
def dst_bucket(dst_s3: Any) -> str:
    name = f"mirror-dst-{next(_names)}"
    dst_s3.create_bucket(Bucket=name)
    return name


def mirror(source: ServerProcess, dest: ServerProcess, *args: str) -> tuple[int, dict[str, Any], str]:
    """``coffer mirror ARGS`` in-process; (exit code, JSON report, stderr)."""
    argv = [
        "mirror", *args,
        "--source-endpoint", source.endpoint, "--dest-endpoint", dest.endpoint,
        "--source-access-key", SRC_KEYS[0], "--source-secret-key", SRC_KEYS[1],
        "--dest-access-key", DST_KEYS[0], "--dest-secret-key", DST_KEYS[1],
        "--multipart-threshold", "2MiB", "--part-size", "5MiB", "--concurrency", "4",
        "--json", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, report, result.stderr


def _keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


_KEPT = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl", "Metadata")


def assert_same_object(src_s3: Any, src_bucket: str, dst_s3: Any, dst_bucket: str, key: str, dst_key: str) -> None:
    got_src = src_s3.get_object(Bucket=src_bucket, Key=key)
    got_dst = dst_s3.get_object(Bucket=dst_bucket, Key=dst_key)
    assert got_dst["Body"].read() == got_src["Body"].read(), key
    for field in _KEPT:
        assert got_dst.get(field) == got_src.get(field), (key, field)
    assert got_dst.get("ExpiresString") == got_src.get("ExpiresString"), key
    tags_src = src_s3.get_object_tagging(Bucket=src_bucket, Key=key)["TagSet"]
    tags_dst = dst_s3.get_object_tagging(Bucket=dst_bucket, Key=dst_key)["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags_dst) == sorted((t["Key"], t["Value"]) for t in tags_src), key


# ---------------------------------------------------------------------- end to end
def test_copy_preserves_bytes_headers_metadata_and_tags_then_skips_on_rerun(
    source: ServerProcess, dest: ServerProcess, src_s3: Any, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    code, report, _ = mirror(source, dest, "copy", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, report
    assert report["ok"] and report["objects"] == {"copied": len(populated), "skipped": 0, "deleted": 0, "failed": 0}
    assert report["bytes"] == sum(len(body) for body in populated.values())
    assert _keys(dst_s3, dst_bucket) == sorted(populated)
    for key in populated:
        assert_same_object(src_s3, "mirror-src", dst_s3, dst_bucket, key, key)
    # Single-PUT copies keep the source's MD5 ETag; the multipart one is re-partitioned.
    src_etag = src_s3.head_object(Bucket="mirror-src", Key="plain.txt")["ETag"]
    assert dst_s3.head_object(Bucket=dst_bucket, Key="plain.txt")["ETag"] == src_etag

    code, again, _ = mirror(source, dest, "copy", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0
    assert again["objects"] == {"copied": 0, "skipped": len(populated), "deleted": 0, "failed": 0}


def test_prefixes_map_source_keys_under_the_destination_prefix(
    source: ServerProcess, dest: ServerProcess, src_s3: Any, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    code, report, _ = mirror(source, dest, "sync", "s3://mirror-src/dir/", f"s3://{dst_bucket}/backup/")
    assert code == 0, report
    expected = sorted("backup/" + key.removeprefix("dir/") for key in populated if key.startswith("dir/"))
    assert _keys(dst_s3, dst_bucket) == expected
    key = "dir/with space/naïve ünïcødé 文件.bin"
    assert_same_object(src_s3, "mirror-src", dst_s3, dst_bucket, key, "backup/with space/naïve ünïcødé 文件.bin")


def test_missing_destination_bucket_is_created(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes]
) -> None:
    bucket = f"mirror-new-{next(_names)}"
    code, _, stderr = mirror(source, dest, "copy", "s3://no-such-source", f"s3://{bucket}")
    assert code == 1 and "404" in stderr
    assert bucket not in {b["Name"] for b in dst_s3.list_buckets()["Buckets"]}  # not created for nothing
    code, report, _ = mirror(source, dest, "copy", "s3://mirror-src/dir/", f"s3://{bucket}")
    assert code == 0, report
    assert len(_keys(dst_s3, bucket)) == sum(1 for key in populated if key.startswith("dir/"))


def test_storage_class_is_copied_on_request(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    assert mirror(source, dest, "copy", "s3://mirror-src/headers", f"s3://{dst_bucket}/plain/")[0] == 0
    assert "StorageClass" not in dst_s3.head_object(Bucket=dst_bucket, Key="plain/.html")
    assert mirror(source, dest, "copy", "--storage-class", "s3://mirror-src/headers", f"s3://{dst_bucket}/kept")[0] == 0
    assert dst_s3.head_object(Bucket=dst_bucket, Key="kept.html")["StorageClass"] == "STANDARD_IA"


def test_dry_run_changes_nothing(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    dst_s3.put_object(Bucket=dst_bucket, Key="only-here", Body=b"x")
    code, report, _ = mirror(source, dest, "sync", "--dry-run", "--delete", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, report
    assert report["dry_run"] is True
    assert sorted(report["would_copy"]) == sorted(populated)
    assert report["would_delete"] == ["only-here"]
    assert report["objects"]["copied"] == 0
    assert _keys(dst_s3, dst_bucket) == ["only-here"]


def test_sync_delete_replaces_stale_objects_and_removes_extras(
    source: ServerProcess, dest: ServerProcess, src_s3: Any, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    dst_s3.put_object(Bucket=dst_bucket, Key="plain.txt", Body=b"stale bytes!")  # same size, other bytes
    dst_s3.put_object(Bucket=dst_bucket, Key="zz-extra", Body=b"x")
    dst_s3.put_object(Bucket=dst_bucket, Key="a-extra", Body=b"x")

    code, report, _ = mirror(source, dest, "sync", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, report
    assert report["objects"]["deleted"] == 0  # no --delete: extras stay
    assert "zz-extra" in _keys(dst_s3, dst_bucket)
    assert_same_object(src_s3, "mirror-src", dst_s3, dst_bucket, "plain.txt", "plain.txt")

    code, report, _ = mirror(source, dest, "sync", "--delete", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, report
    assert report["objects"] == {"copied": 0, "skipped": len(populated), "deleted": 2, "failed": 0}
    assert _keys(dst_s3, dst_bucket) == sorted(populated)


def test_a_failed_object_is_reported_and_stops_deletions(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{dst_bucket}/mid.bin",
    }
    dst_s3.put_bucket_policy(Bucket=dst_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    dst_s3.put_object(Bucket=dst_bucket, Key="zz-extra", Body=b"x")
    code, report, _ = mirror(source, dest, "sync", "--delete", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 1
    assert report["ok"] is False
    assert report["objects"] == {"copied": len(populated) - 1, "skipped": 0, "deleted": 0, "failed": 1}
    (failure,) = report["failures"]
    assert failure["key"] == "mid.bin" and "AccessDenied" in failure["error"]
    assert "deletions skipped" in report["deletes_skipped"]
    assert "zz-extra" in _keys(dst_s3, dst_bucket)


def test_interrupted_copy_resumes_where_it_stopped(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    code, report, _ = mirror(source, dest, "copy", "--max-objects", "3", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 130
    assert report["interrupted"] is True and report["ok"] is False
    assert report["objects"]["copied"] == 3
    assert len(_keys(dst_s3, dst_bucket)) == 3

    code, report, _ = mirror(source, dest, "copy", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, report
    assert report["objects"]["copied"] == len(populated) - 3
    assert report["objects"]["skipped"] == 3
    assert _keys(dst_s3, dst_bucket) == sorted(populated)


def _mirror_process(source: ServerProcess, dest: ServerProcess, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_"))}
    env.update(
        COFFER_MIRROR_SOURCE_ACCESS_KEY=SRC_KEYS[0],
        COFFER_MIRROR_SOURCE_SECRET_KEY=SRC_KEYS[1],
        AWS_ACCESS_KEY_ID=DST_KEYS[0],  # the destination falls back to the AWS variables
        AWS_SECRET_ACCESS_KEY=DST_KEYS[1],
    )
    argv = [sys.executable, "-m", "coffer", "mirror", *args]
    argv += ["--source-endpoint", source.endpoint, "--dest-endpoint", dest.endpoint]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_aborts_the_multipart_copy_in_flight(
    source: ServerProcess, dest: ServerProcess, src_s3: Any, dst_s3: Any, dst_bucket: str
) -> None:
    """SIGINT while a multipart copy runs: exit 130, the upload aborted, a re-run completes."""
    src_s3.create_bucket(Bucket="mirror-interrupt")
    body = os.urandom(30 * MiB)
    src_s3.put_object(Bucket="mirror-interrupt", Key="large", Body=body)
    proc = _mirror_process(
        source, dest, "copy", "s3://mirror-interrupt", f"s3://{dst_bucket}",
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--concurrency", "1", "--no-progress",
    )  # fmt: skip
    try:
        while proc.poll() is None and not dst_s3.list_multipart_uploads(Bucket=dst_bucket).get("Uploads"):
            pass  # wait until the copy is under way
        if proc.poll() is not None:
            pytest.skip("the copy finished before it could be interrupted")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted: copied 0" in stderr
    assert dst_s3.list_multipart_uploads(Bucket=dst_bucket).get("Uploads", []) == []
    assert _keys(dst_s3, dst_bucket) == []
    again = _mirror_process(source, dest, "copy", "s3://mirror-interrupt", f"s3://{dst_bucket}", "--no-progress")
    assert again.wait(120) == 0
    assert dst_s3.get_object(Bucket=dst_bucket, Key="large")["Body"].read() == body


def test_verify_reports_missing_tampered_and_extra_objects(
    source: ServerProcess, dest: ServerProcess, dst_s3: Any, populated: dict[str, bytes], dst_bucket: str
) -> None:
    assert mirror(source, dest, "copy", "s3://mirror-src", f"s3://{dst_bucket}")[0] == 0
    code, clean, _ = mirror(source, dest, "verify", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0, clean
    checked = clean["verify"]
    # Plain-MD5 pairs verify by ETag; the multipart one by checksums when both sides have one.
    assert checked["verified"] + checked["size_only"] == len(populated)
    assert checked["verified"] >= len(populated) - 1
    assert checked["missing"] == checked["differs"] == checked["extra"] == []

    code, deep, _ = mirror(source, dest, "verify", "--read-back", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 0 and deep["verify"]["verified"] == len(populated)
    assert deep["bytes"] == 2 * sum(len(body) for body in populated.values())

    dst_s3.put_object(Bucket=dst_bucket, Key="plain.txt", Body=b"HELLO MIRROR")  # same size
    dst_s3.delete_object(Bucket=dst_bucket, Key="mid.bin")
    dst_s3.put_object(Bucket=dst_bucket, Key="unexpected", Body=b"?")
    code, report, _ = mirror(source, dest, "verify", "s3://mirror-src", f"s3://{dst_bucket}")
    assert code == 1
    assert report["ok"] is False
    assert report["verify"]["missing"] == ["mid.bin"]
    assert report["verify"]["differs"] == ["plain.txt"]
    assert report["verify"]["extra"] == ["unexpected"]


def test_json_report_file_and_summary_line(
    source: ServerProcess, dest: ServerProcess, populated: dict[str, bytes], dst_bucket: str, tmp_path: Path
) -> None:
    """The real entry point: summary on stderr, progress lines when stderr is not a terminal."""
    report_path = tmp_path / "report.json"
    proc = _mirror_process(source, dest, "copy", "s3://mirror-src", f"s3://{dst_bucket}", "--report", str(report_path))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout == ""
    assert f"copied {len(populated)}, skipped 0, deleted 0, failed 0" in stderr
    report = json.loads(report_path.read_text())
    assert set(report) >= {
        "command", "source", "destination", "dry_run", "ok", "interrupted", "objects", "bytes", "seconds",
        "objects_per_second", "bytes_per_second", "failures",
    }  # fmt: skip
    assert report["source"] == "s3://mirror-src/" and report["destination"] == f"s3://{dst_bucket}/"


def test_wrong_credentials_fail_with_a_message(source: ServerProcess, dest: ServerProcess, dst_bucket: str) -> None:
    argv = [
        "mirror", "copy", "s3://mirror-src", f"s3://{dst_bucket}", "--no-progress",
        "--source-endpoint", source.endpoint, "--dest-endpoint", dest.endpoint,
        "--source-access-key", SRC_KEYS[0], "--source-secret-key", "wrong",
        "--dest-access-key", DST_KEYS[0], "--dest-secret-key", DST_KEYS[1],
    ]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1
    assert "cannot read the listings" in result.stderr and "SignatureDoesNotMatch" in result.stderr


def test_a_throttling_destination_is_retried_until_everything_is_copied(
    source: ServerProcess, populated: dict[str, bytes], tmp_path: Path
) -> None:
    """A destination answering 503 SlowDown beyond 10 requests/s from our IP: the copy backs off and completes."""
    throttled = ServerProcess(
        tmp_path / "data", "--fsync", "never", "--rate-limit-per-ip", "10", "--rate-limit-burst", "2"
    ).start()
    try:
        argv = [
            "mirror", "copy", "s3://mirror-src", "s3://throttled", "--json", "--no-progress", "--concurrency", "4",
            "--source-endpoint", source.endpoint, "--dest-endpoint", throttled.endpoint,
            "--source-access-key", SRC_KEYS[0], "--source-secret-key", SRC_KEYS[1],
            "--dest-access-key", "any", "--dest-secret-key", "any",
        ]  # fmt: skip
        result = CliRunner().invoke(main, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["objects"]["copied"] == len(populated)
        with urllib.request.urlopen(f"{throttled.endpoint}/_coffer/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        slowed = [
            line for line in metrics.splitlines() if line.startswith("coffer_http_requests_total") and '"5xx"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in slowed) > 0  # the throttle did answer 503s
    finally:
        throttled.stop()


def test_https_destination_with_a_ca_bundle(
    source: ServerProcess, src_s3: Any, populated: dict[str, bytes], tmp_path: Path
) -> None:
    cert, key = self_signed_cert(tmp_path)
    tls = ServerProcess(tmp_path / "data", "--fsync", "never", "--tls-cert", cert, "--tls-key", key).start()
    try:
        https = f"https://127.0.0.1:{tls.port}"
        argv = [
            "mirror", "copy", "s3://mirror-src/dir/", "s3://over-tls/", "--json", "--no-progress",
            "--source-endpoint", source.endpoint, "--dest-endpoint", https, "--ca-bundle", cert,
            "--source-access-key", SRC_KEYS[0], "--source-secret-key", SRC_KEYS[1],
            "--dest-access-key", "any", "--dest-secret-key", "any",
        ]  # fmt: skip
        result = CliRunner().invoke(main, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        expected = sum(1 for key in populated if key.startswith("dir/"))
        assert json.loads(result.stdout)["objects"]["copied"] == expected
        untrusted = CliRunner().invoke(main, [arg for arg in argv if arg not in ("--ca-bundle", cert)])
        assert untrusted.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        tls.stop()


# ---------------------------------------------------------------------- pure parts
def test_s3_urls() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_url("s3://bucket/what?#x") == ("bucket", "what?#x")
    for bad in ("bucket/key", "http://bucket/x", "s3:///key"):
        with pytest.raises(LocationError):
            parse_s3_url(bad)


def test_credentials_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    creds_file = tmp_path / "credentials"
    creds_file.write_text("[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[other]\n"
                          "aws_access_key_id = O\naws_secret_access_key = OS\naws_session_token = T\n")  # fmt: skip
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds_file))
    assert resolve_credentials("K", "S", None, "other") is not None
    assert resolve_credentials("K", "S", None, None).access_key == "K"  # type: ignore[union-attr]
    assert resolve_credentials(None, None, None, "other").session_token == "T"  # type: ignore[union-attr]
    assert resolve_credentials(None, None, None, None).access_key == "D"  # type: ignore[union-attr]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "E")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ES")
    assert resolve_credentials(None, None, None, None).access_key == "E"  # type: ignore[union-attr]
    with pytest.raises(LocationError):
        resolve_credentials("K", None, None, None)
    with pytest.raises(LocationError):
        resolve_credentials(None, None, None, "absent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert resolve_credentials(None, None, None, None) is None  # unsigned


def _entry(key: str, size: int = 1, etag: str = "0" * 32, mtime: float = 0.0) -> Entry:
    return Entry(key, size, etag, mtime)


def test_comparison_rule() -> None:
    md5_a, md5_b, multi = "a" * 32, "b" * 32, "c" * 32 + "-2"
    assert up_to_date(_entry("k", 5, md5_a), _entry("k", 5, md5_a.upper()))
    assert not up_to_date(_entry("k", 5, md5_a), _entry("k", 5, md5_b))
    assert not up_to_date(_entry("k", 5, md5_a), _entry("k", 6, md5_a))
    # A multipart ETag on either side: not older at the destination counts as current.
    assert up_to_date(_entry("k", 5, multi, 10.0), _entry("k", 5, md5_a, 10.0))
    assert not up_to_date(_entry("k", 5, md5_a, 10.0), _entry("k", 5, multi, 9.0))
    assert verdict(merge_one(_entry("k", 5, multi), _entry("k", 5, multi))) == "unconfirmed"
    assert verdict(merge_one(_entry("k", 5, md5_a), _entry("k", 5, md5_b))) == "differs"


def merge_one(src: Entry, dst: Entry) -> Any:
    (pair,) = merge([src], [dst], "", "")
    return pair


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.text(min_size=1, max_size=4)),
    st.sets(st.text(min_size=1, max_size=4)),
)
def test_merge_pairs_every_name_once(src_names: set[str], dst_names: set[str]) -> None:
    src = [_entry("s/" + name) for name in sorted(src_names)]
    dst = [_entry("d/p/" + name) for name in sorted(dst_names)]
    pairs = list(merge(src, dst, "s/", "d/p/"))
    assert [pair.name for pair in pairs] == sorted(src_names | dst_names)
    for pair in pairs:
        assert (pair.source is not None) == (pair.name in src_names)
        assert (pair.dest is not None) == (pair.name in dst_names)


def test_a_listing_out_of_order_stops_the_merge() -> None:
    with pytest.raises(ListingOrderError, match="destination listing is not in key order"):
        list(merge([_entry("a"), _entry("b")], [_entry("b"), _entry("a")], "", ""))


def test_progress_line_and_summaries() -> None:
    out = io.StringIO()  # not a terminal: plain lines
    meter = Meter(out, interval=0.01)
    assert not meter.tty
    for size in (4 * MiB, 4 * MiB):
        meter.plan(size)
    meter.add_bytes(4 * MiB)
    meter.object_done()
    assert meter.line().startswith("1 objects (2 planned), 4.0 MiB") and "ETA listing…" in meter.line()
    meter.listing_done = True
    assert meter.line().startswith("1/2 objects, 4.0 MiB/8.0 MiB") and "objects/s, ETA " in meter.line()
    meter.start()
    while not out.getvalue():
        time.sleep(0.01)  # the meter thread draws its first line
    meter.stop()
    assert out.getvalue().splitlines()[0].startswith("1/2 objects")

    report = Report("copy", "s3://a/", "s3://b/", copied=3, skipped=2, bytes=3 * MiB, seconds=1.5)
    assert report.summary().startswith("copied 3, skipped 2, deleted 0, failed 0: 3.0 MiB in 1.5 s")
    assert report.ok and report.as_dict()["objects"] == {"copied": 3, "skipped": 2, "deleted": 0, "failed": 0}
    dry = Report("sync", "s3://a/", "s3://b/", dry_run=True, skipped=1, would_copy=["x"], would_delete=["y", "z"])
    assert dry.summary() == "dry run: would copy 1, skip 1, delete 2"
    checked = Report("verify", "s3://a/", "s3://b/", verified=4, missing=["m"], extra=["e"])
    assert not checked.ok and checked.as_dict()["verify"]["missing"] == ["m"]
    assert Report("verify", "a", "b", verified=1, extra=["e"]).ok  # extras do not fail verify


def test_sizes_checksums_and_part_sizes() -> None:
    size = ByteSize()
    assert size.convert("8MiB", None, None) == 8 * MiB
    assert size.convert("16MB", None, None) == 16_000_000
    assert size.convert("5242880", None, None) == 5 * MiB
    with pytest.raises(Exception, match="not a size"):
        size.convert("lots", None, None)
    assert full_object_checksum({"x-amz-checksum-crc32": "AAAAAA=="}) == ("x-amz-checksum-crc32", "AAAAAA==")
    assert full_object_checksum({"x-amz-checksum-crc32": "AAAAAA==-3"}) is None
    assert full_object_checksum({"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-type": "COMPOSITE"}) is None
    assert part_size_for(10 * MiB, 8 * MiB) == 8 * MiB
    assert part_size_for(100_000 * MiB, 8 * MiB) == 10 * MiB
