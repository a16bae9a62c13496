"""Bucket lifecycle through a real server and boto3: the configuration API and its errors, the
x-amz-expiration header, and the background worker acting for real with a one-second lifecycle
day (--lifecycle-day-seconds 1) and fast passes. Waits poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import datetime
import itertools
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth_support import send
from tests.s3errors import expect_error
from tests.server_process import ServerProcess

_names = itertools.count()
DEADLINE = 20.0  # seconds; a one-second day makes every rule here due within a few


@pytest.fixture(scope="module", params=["disk", "memory"])
def lc_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    args = ["--fsync", "never", "--lifecycle-day-seconds", "1", "--lifecycle-interval", "0.2"]
    if request.param == "memory":
        args += ["--storage", "memory"]
    proc = ServerProcess(tmp_path_factory.mktemp("lifecycle") / "data", *args).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def s3(lc_server: ServerProcess):  # type: ignore[no-untyped-def]
    return lc_server.client()


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"lc-{next(_names)}"
    s3.create_bucket(Bucket=name)
    return name


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {DEADLINE} s")
        time.sleep(0.1)


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def put_rules(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})


# ---------------------------------------------------------------------- configuration
def test_configuration_round_trip_and_delete(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    expect_error(404, "NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    assert s3.delete_bucket_lifecycle(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    rules = [
        {"ID": "test1/", "Expiration": {"Days": 31}, "Prefix": "test1/", "Status": "Enabled"},
        {
            "ID": "filtered",
            "Filter": {"And": {"Prefix": "p/", "Tags": [{"Key": "k", "Value": "v"}], "ObjectSizeGreaterThan": 5}},
            "Status": "Disabled",
            "Transitions": [{"Days": 3, "StorageClass": "GLACIER"}],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 4, "NewerNoncurrentVersions": 2},
        },
        {
            "ID": "mp",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
        },
    ]
    put_rules(s3, bucket, *rules)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules
    s3.delete_bucket_lifecycle(Bucket=bucket)
    expect_error(404, "NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket=bucket)


def test_configuration_errors(s3, bucket: str, lc_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    days0 = {"ID": "r", "Expiration": {"Days": 0}, "Prefix": "", "Status": "Enabled"}
    error = expect_error(400, "InvalidArgument", put_rules, s3, bucket, days0)
    assert error["Message"] == "'Days' for Expiration action must be a positive integer"
    same = {"ID": "r", "Expiration": {"Days": 1}, "Prefix": "", "Status": "Enabled"}
    expect_error(400, "InvalidArgument", put_rules, s3, bucket, same, same)
    expect_error(400, "InvalidArgument", put_rules, s3, bucket, {**same, "ID": "a" * 256})
    expect_error(400, "MalformedXML", put_rules, s3, bucket, {**same, "Status": "enabled"})
    reply = send(lc_server, "PUT", f"/{bucket}?lifecycle", {}, b"<LifecycleConfiguration><Rule>")
    assert (reply.status, reply.code) == (400, "MalformedXML")
    expect_error(404, "NoSuchBucket", s3.get_bucket_lifecycle_configuration, Bucket="lc-no-such-bucket")


def test_expiration_header_on_put_head_and_get(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put_rules(
        s3, bucket, {"ID": "rule1", "Filter": {"Prefix": "days1/"}, "Status": "Enabled", "Expiration": {"Days": 30}}
    )
    start = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    answers = [s3.put_object(Bucket=bucket, Key="days1/foo", Body=b"bar")]
    answers += [s3.head_object(Bucket=bucket, Key="days1/foo"), s3.get_object(Bucket=bucket, Key="days1/foo")]
    for answer in answers:
        header = answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]
        found = re.fullmatch(r'expiry-date="(.+)", rule-id="(.+)"', header)
        assert found is not None and found.group(2) == "rule1"
        expiry = datetime.datetime.strptime(found.group(1), "%a, %d %b %Y %H:%M:%S GMT")
        assert (expiry - start).days == 30 and expiry.time() == datetime.time(0)  # real days, to midnight UTC
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    assert "x-amz-expiration" not in s3.head_object(Bucket=bucket, Key="other")["ResponseMetadata"]["HTTPHeaders"]


# ---------------------------------------------------------------------- the worker
def test_expiration_by_days_and_date(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for key in ("expire1/a", "expire1/b", "keep/c", "past/d"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    put_rules(
        s3,
        bucket,
        {"ID": "days", "Prefix": "expire1/", "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "date", "Prefix": "past/", "Status": "Enabled", "Expiration": {"Date": "2015-01-01"}},
        {"ID": "later", "Prefix": "keep/", "Status": "Enabled", "Expiration": {"Days": 1000}},
    )
    wait_for(lambda: keys(s3, bucket) == ["keep/c"], "expired")


def test_noncurrent_versions_and_expired_delete_markers(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2", b"3"):
        s3.put_object(Bucket=bucket, Key="test1/a", Body=body)
    s3.put_object(Bucket=bucket, Key="test1/gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="test1/gone")
    put_rules(
        s3,
        bucket,
        {
            "ID": "nc",
            "Prefix": "test1/",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    )

    def settled() -> bool:
        listed = s3.list_object_versions(Bucket=bucket)
        return len(listed.get("Versions", [])) == 1 and not listed.get("DeleteMarkers")

    wait_for(settled, "down to the current version")
    assert s3.get_object(Bucket=bucket, Key="test1/a")["Body"].read() == b"3"


def test_current_version_expiry_in_a_versioned_bucket_adds_a_delete_marker(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    put_rules(s3, bucket, {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}})
    wait_for(lambda: bool(s3.list_object_versions(Bucket=bucket).get("DeleteMarkers")), "hidden by a marker")
    listed = s3.list_object_versions(Bucket=bucket)
    assert len(listed["Versions"]) == 1 and len(listed["DeleteMarkers"]) == 1


def test_abort_incomplete_multipart_upload(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.create_multipart_upload(Bucket=bucket, Key="test1/a")
    kept = s3.create_multipart_upload(Bucket=bucket, Key="test2/b")["UploadId"]
    put_rules(
        s3,
        bucket,
        {
            "ID": "mp",
            "Prefix": "test1/",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    )

    def aborted() -> bool:
        return [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [kept]

    wait_for(aborted, "aborted")


def test_transition_changes_the_storage_class(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="cold/a", Body=b"data")
    s3.put_object(Bucket=bucket, Key="warm/b", Body=b"data")
    put_rules(
        s3,
        bucket,
        {"ID": "t", "Prefix": "cold/", "Status": "Enabled", "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]},
    )
    wait_for(lambda: s3.head_object(Bucket=bucket, Key="cold/a").get("StorageClass") == "GLACIER", "transitioned")
    listed = {o["Key"]: o["StorageClass"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {"cold/a": "GLACIER", "warm/b": "STANDARD"}
    assert s3.get_object(Bucket=bucket, Key="cold/a")["Body"].read() == b"data"  # the data stays readable


def locked_skips(server: ServerProcess) -> float:
    text = send(server, "GET", "/_coffer/metrics", {}).body.decode()
    found = re.search(r'^coffer_lifecycle_skipped_total\{reason="locked"\} (\S+)', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_object_lock_wins_over_lifecycle(s3, lc_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    bucket = f"lc-lock-{next(_names)}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    held = s3.put_object(Bucket=bucket, Key="held", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    s3.put_object(Bucket=bucket, Key="free", Body=b"x")
    put_rules(
        s3,
        bucket,
        {
            "ID": "r",
            "Filter": {},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
    )

    def free_is_gone() -> bool:
        listed = s3.list_object_versions(Bucket=bucket)
        return not [v for v in listed.get("Versions", []) if v["Key"] == "free"]

    wait_for(free_is_gone, "expired for the unprotected key")
    # More passes find the held version due and skip it (Object Lock): it stays current.
    skipped = locked_skips(lc_server)
    wait_for(lambda: locked_skips(lc_server) >= skipped + 2, "skipped twice more")
    assert s3.head_object(Bucket=bucket, Key="held")["VersionId"] == held
    s3.put_object_legal_hold(Bucket=bucket, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
    wait_for(lambda: not s3.list_object_versions(Bucket=bucket).get("Versions"), "expired once released")


def test_lifecycle_metrics(s3, bucket: str, lc_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="m/a", Body=b"x")
    put_rules(s3, bucket, {"ID": "m", "Prefix": "m/", "Status": "Enabled", "Expiration": {"Days": 1}})
    wait_for(lambda: keys(s3, bucket) == [], "expired")
    text = send(lc_server, "GET", "/_coffer/metrics", {}).body.decode()
    assert re.search(r'^coffer_lifecycle_actions_total\{action="expiration"\} [1-9]', text, re.M), text[:2000]
    assert re.search(r"^coffer_lifecycle_scanned_total [1-9]", text, re.M)
    assert re.search(r"^coffer_lifecycle_last_pass_timestamp_seconds [1-9]", text, re.M)


@pytest.mark.server
def test_kill9_mid_pass_resumes(tmp_path: Path) -> None:
    """A server killed while a pass works through a big bucket: once restarted, the pass resumes
    from its cursor and every object is expired exactly once (one delete marker per key)."""
    args = [
        "--fsync",
        "never",
        "--lifecycle-day-seconds",
        "1",
        "--lifecycle-interval",
        "0.2",
        "--lifecycle-page-size",
        "5",
    ]
    server = ServerProcess(tmp_path / "data", "--lifecycle", "false", *args).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="big")
        s3.put_bucket_versioning(Bucket="big", VersioningConfiguration={"Status": "Enabled"})
        for i in range(300):
            s3.put_object(Bucket="big", Key=f"k{i:04d}", Body=b"x")
        put_rules(s3, "big", {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}})
        server.stop()
        time.sleep(1.0)  # every object is due
        server.args = args
        server.start()
        wait_for(lambda: bool(s3.list_object_versions(Bucket="big", MaxKeys=1000).get("DeleteMarkers")), "started")
        server.kill9()
        server.start()
        wait_for(lambda: keys(s3, "big") == [], "all expired")
        listed = s3.list_object_versions(Bucket="big", MaxKeys=1000)
        assert len(listed["DeleteMarkers"]) == 300 and len(listed["Versions"]) == 300
    finally:
        server.stop()
