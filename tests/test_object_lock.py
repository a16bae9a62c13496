"""Object Lock: the documents and headers (in-process), then the wire through boto3, raw HTTP and the aws CLI.

Locked versions cannot be deleted, so the buckets here are never deleted: the session server's data
directory is thrown away with it (COMPLIANCE dates lie far ahead). Tests that delete a version by id
need the x-amz-version-id of PutObject (the versioning wire side); without it they are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coffer.server import object_lock
from coffer.server.errors import S3Error
from coffer.server.object_lock import DefaultRetention, parse_configuration, parse_retention, requested_lock
from coffer.storage.api import ObjectLock
from tests.s3errors import expect_error
from tests.server_process import ServerProcess
from tests.wire import b64, digest, multipart, request

FAR = datetime(2099, 1, 1, tzinfo=UTC)
NEAR = datetime(2098, 1, 1, tzinfo=UTC)
NOW = 1_700_000_000.0
_names = itertools.count()


def _config(inner: str, enabled: str | None = "Enabled") -> bytes:
    head = f"<ObjectLockEnabled>{enabled}</ObjectLockEnabled>" if enabled is not None else ""
    return f'<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{head}{inner}</ObjectLockConfiguration>'.encode()


def _rule(inner: str) -> str:
    return f"<Rule><DefaultRetention>{inner}</DefaultRetention></Rule>"


def _error(call: Any, *args: Any) -> tuple[str, int]:
    with pytest.raises(S3Error) as info:
        call(*args)
    return info.value.code, info.value.status


# ---------------------------------------------------------------------- documents and headers (in-process)
def test_configuration_document() -> None:
    assert parse_configuration(_config("")) is None
    days = parse_configuration(_config(_rule("<Mode>GOVERNANCE</Mode><Days>7</Days>")))
    assert days == DefaultRetention("GOVERNANCE", days=7)
    years = parse_configuration(_config(_rule("<Mode>COMPLIANCE</Mode><Years> 2 </Years>")))
    assert years == DefaultRetention("COMPLIANCE", years=2)
    for rule in (None, days, years):
        assert parse_configuration(object_lock.configuration_document(rule)) == rule
        assert DefaultRetention.from_document(rule.document() if rule else {}) == rule


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_config("", enabled="Disabled"), "MalformedXML"),
        (_config("", enabled=None), "MalformedXML"),
        (_config(_rule("<Mode>governance</Mode><Days>1</Days>")), "MalformedXML"),
        (_config(_rule("<Mode>abc</Mode><Days>1</Days>")), "MalformedXML"),
        (_config(_rule("<Days>1</Days>")), "MalformedXML"),
        (_config(_rule("<Mode>GOVERNANCE</Mode>")), "MalformedXML"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>")), "MalformedXML"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Days>1.5</Days>")), "MalformedXML"),
        (_config("<Rule></Rule>"), "MalformedXML"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Days>0</Days>")), "InvalidRetentionPeriod"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Years>-1</Years>")), "InvalidRetentionPeriod"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Days>36501</Days>")), "InvalidRetentionPeriod"),
        (_config(_rule("<Mode>GOVERNANCE</Mode><Years>101</Years>")), "InvalidRetentionPeriod"),
        (b"<Retention/>", "MalformedXML"),
        (b"not xml", "MalformedXML"),
    ],
)
def test_configuration_errors(body: bytes, code: str) -> None:
    assert _error(parse_configuration, body) == (code, 400)


def test_default_retention_dates() -> None:
    start = datetime(2024, 2, 29, 12, 0, tzinfo=UTC).timestamp()
    assert DefaultRetention("GOVERNANCE", days=2).until(start) == start + 2 * 86400
    # Years are calendar years; 29 February becomes 28 February in a common year.
    assert DefaultRetention("GOVERNANCE", years=1).until(start) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC).timestamp()
    assert DefaultRetention("GOVERNANCE", years=4).until(start) == datetime(2028, 2, 29, 12, 0, tzinfo=UTC).timestamp()


def test_retention_document() -> None:
    body = b"<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>"
    until = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retention(body, NOW) == ("COMPLIANCE", until)
    assert parse_retention(b"<Retention/>", NOW) == (None, None)  # removes the retention
    written = object_lock.retention_document(ObjectLock("COMPLIANCE", until))
    assert b"<RetainUntilDate>2030-01-01T00:00:00.000Z</RetainUntilDate>" in written
    assert parse_retention(written, NOW) == ("COMPLIANCE", until)
    past = b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2020-01-01T00:00:00Z</RetainUntilDate></Retention>"
    assert _error(parse_retention, past, NOW) == ("InvalidArgument", 400)
    for bad in (
        b"<Retention><Mode>governance</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
        b"<Retention><Mode>GOVERNANCE</Mode></Retention>",
        b"<Retention><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
        b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>tomorrow</RetainUntilDate></Retention>",
        b"<LegalHold><Status>ON</Status></LegalHold>",
    ):
        assert _error(parse_retention, bad, NOW) == ("MalformedXML", 400)


def test_legal_hold_document() -> None:
    assert object_lock.parse_legal_hold(b"<LegalHold><Status>ON</Status></LegalHold>") is True
    assert object_lock.parse_legal_hold(object_lock.legal_hold_document(False)) is False
    for bad in (b"<LegalHold><Status>on</Status></LegalHold>", b"<LegalHold/>", b"<Retention/>"):
        assert _error(object_lock.parse_legal_hold, bad) == ("MalformedXML", 400)


def test_iso8601_dates() -> None:
    expected = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    for text in (
        "2030-01-01T00:00:00Z",
        "2030-01-01T00:00:00.000Z",
        "2030-01-01T01:00:00+01:00",
        "2030-01-01T00:00:00",
    ):
        assert object_lock.parse_iso8601(text) == expected, text
    assert object_lock.parse_iso8601("2030-01-01T00:00:00.123456789Z") == pytest.approx(expected + 0.123456)
    for text in ("Tue, 01 Jan 2030 00:00:00 GMT", "2030-01-01", "2030-13-01T00:00:00Z", "", "x" * 100):
        assert object_lock.parse_iso8601(text) is None, text
    assert object_lock.format_date(expected) == "2030-01-01T00:00:00.000Z"


def test_requested_lock_headers() -> None:
    mode, until, hold = object_lock.MODE_HEADER, object_lock.UNTIL_HEADER, object_lock.HOLD_HEADER
    assert requested_lock({}, NOW) is None
    assert requested_lock({hold: "OFF"}, NOW) == ObjectLock(legal_hold=False)
    assert requested_lock({mode: "COMPLIANCE", until: "2030-01-01T00:00:00Z", hold: "ON"}, NOW) == ObjectLock(
        "COMPLIANCE", datetime(2030, 1, 1, tzinfo=UTC).timestamp(), True
    )
    for headers in (
        {mode: "GOVERNANCE"},
        {until: "2030-01-01T00:00:00Z"},
        {mode: "governance", until: "2030-01-01T00:00:00Z"},
        {mode: "GOVERNANCE", until: "1 January 2030"},
        {mode: "GOVERNANCE", until: "2020-01-01T00:00:00Z"},
        {hold: "on"},
    ):
        assert _error(requested_lock, headers, NOW) == ("InvalidArgument", 400), headers


# ---------------------------------------------------------------------- the wire
@pytest.fixture
def locked(s3) -> str:  # type: ignore[no-untyped-def]
    """A bucket created with Object Lock on (and so versioning Enabled)."""
    name = f"lock-bucket-{next(_names)}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _version(put: dict[str, Any]) -> str:
    version = put.get("VersionId")
    if version is None:
        pytest.skip("needs x-amz-version-id on PutObject (the versioning wire side)")
    return version


def _retention(s3, bucket: str, key: str, **kwargs: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return s3.get_object_retention(Bucket=bucket, Key=key, **kwargs)["Retention"]


def test_configuration_round_trip(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    assert s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"
    }
    for conf in (
        {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}},
        {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}},
        {"ObjectLockEnabled": "Enabled"},  # no Rule: the default retention is gone
    ):
        s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=conf)
        assert s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"] == conf


@pytest.mark.parametrize(
    ("conf", "code"),
    [
        ({"ObjectLockEnabled": "Disabled"}, "MalformedXML"),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "abc", "Days": 1}}}, "MalformedXML"),
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "governance", "Days": 1}}},
            "MalformedXML",
        ),
        (
            {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}},
            },
            "MalformedXML",
        ),
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}},
            "InvalidRetentionPeriod",
        ),
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": -1}}},
            "InvalidRetentionPeriod",
        ),
    ],
)
def test_configuration_refused(s3, locked: str, conf: dict[str, Any], code: str) -> None:  # type: ignore[no-untyped-def]
    expect_error(400, code, s3.put_object_lock_configuration, Bucket=locked, ObjectLockConfiguration=conf)


def test_bucket_without_lock(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    expect_error(404, "ObjectLockConfigurationNotFoundError", s3.get_object_lock_configuration, Bucket=bucket)
    expect_error(
        409, "InvalidBucketState", s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration=conf
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": FAR}
    for call, kwargs in (
        (s3.put_object_retention, {"Retention": retention}),
        (s3.get_object_retention, {}),
        (s3.put_object_legal_hold, {"LegalHold": {"Status": "ON"}}),
        (s3.get_object_legal_hold, {}),
    ):
        error = expect_error(400, "InvalidRequest", call, Bucket=bucket, Key="k", **kwargs)
        assert error["Message"] == "Bucket is missing Object Lock Configuration"
    # Lock headers on a write to a bucket without Object Lock.
    lock_args = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": FAR}
    expect_error(400, "InvalidRequest", s3.put_object, Bucket=bucket, Key="k2", Body=b"x", **lock_args)
    expect_error(400, "InvalidRequest", s3.create_multipart_upload, Bucket=bucket, Key="k2", **lock_args)
    expect_error(
        400,
        "InvalidRequest",
        s3.copy_object,
        Bucket=bucket,
        Key="k2",
        CopySource={"Bucket": bucket, "Key": "k"},
        **lock_args,
    )
    expect_error(
        400, "InvalidRequest", s3.put_object, Bucket=bucket, Key="k2", Body=b"x", ObjectLockLegalHoldStatus="ON"
    )
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=bucket, Key="k2")


def test_enable_lock_on_a_versioned_bucket(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    try:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "NotImplemented":
            pytest.skip("needs PutBucketVersioning (the versioning wire side)")
        raise
    expect_error(
        409, "InvalidBucketState", s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration=conf
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=conf)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == conf
    # Object Lock keeps versioning Enabled.
    expect_error(
        409,
        "InvalidBucketState",
        s3.put_bucket_versioning,
        Bucket=bucket,
        VersioningConfiguration={"Status": "Suspended"},
    )


def test_governance_retention(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=locked, Key="k", Body=b"abc")
    expect_error(404, "NoSuchObjectLockConfiguration", s3.get_object_retention, Bucket=locked, Key="k")
    s3.put_object_retention(Bucket=locked, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": NEAR})
    assert _retention(s3, locked, "k") == {"Mode": "GOVERNANCE", "RetainUntilDate": NEAR}
    head = s3.head_object(Bucket=locked, Key="k")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", NEAR)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-object-lock-retain-until-date"] == "2098-01-01T00:00:00.000Z"
    assert "ObjectLockLegalHoldStatus" not in head
    got = s3.get_object(Bucket=locked, Key="k")
    assert (got["ObjectLockMode"], got["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", NEAR)
    # Extending is always allowed; shortening, removing or switching modes need the bypass.
    s3.put_object_retention(Bucket=locked, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
    for retention in ({"Mode": "GOVERNANCE", "RetainUntilDate": NEAR}, {}):
        error = expect_error(403, "AccessDenied", s3.put_object_retention, Bucket=locked, Key="k", Retention=retention)
        assert "object lock" in error["Message"]
    assert _retention(s3, locked, "k") == {"Mode": "GOVERNANCE", "RetainUntilDate": FAR}
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": NEAR}
    s3.put_object_retention(Bucket=locked, Key="k", Retention=retention, BypassGovernanceRetention=True)
    assert _retention(s3, locked, "k") == retention
    s3.put_object_retention(Bucket=locked, Key="k", Retention={}, BypassGovernanceRetention=True)
    expect_error(404, "NoSuchObjectLockConfiguration", s3.get_object_retention, Bucket=locked, Key="k")
    assert "ObjectLockMode" not in s3.head_object(Bucket=locked, Key="k")


def test_retention_errors(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=locked, Key="k", Body=b"abc")
    for mode in ("governance", "abc"):
        expect_error(
            400,
            "MalformedXML",
            s3.put_object_retention,
            Bucket=locked,
            Key="k",
            Retention={"Mode": mode, "RetainUntilDate": FAR},
        )
    past = datetime(2020, 1, 1, tzinfo=UTC)
    error = expect_error(
        400,
        "InvalidArgument",
        s3.put_object_retention,
        Bucket=locked,
        Key="k",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": past},
    )
    assert error["Message"] == "The retain until date must be in the future!"
    expect_error(404, "NoSuchKey", s3.get_object_retention, Bucket=locked, Key="missing")
    expect_error(
        404,
        "NoSuchKey",
        s3.put_object_retention,
        Bucket=locked,
        Key="missing",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR},
    )
    expect_error(400, "InvalidArgument", s3.get_object_retention, Bucket=locked, Key="k", VersionId="not-a-version")
    expect_error(404, "NoSuchBucket", s3.get_object_retention, Bucket="no-such-bucket-here", Key="k")
    expect_error(400, "MalformedXML", s3.put_object_legal_hold, Bucket=locked, Key="k", LegalHold={"Status": "abc"})


def test_compliance_retention(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(
        Bucket=locked, Key="k", Body=b"abc", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=NEAR
    )
    assert _retention(s3, locked, "k") == {"Mode": "COMPLIANCE", "RetainUntilDate": NEAR}
    for retention in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": NEAR - timedelta(days=1)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": FAR},
        {},
    ):
        for bypass in (False, True):  # the bypass is for GOVERNANCE only
            expect_error(
                403,
                "AccessDenied",
                s3.put_object_retention,
                Bucket=locked,
                Key="k",
                Retention=retention,
                BypassGovernanceRetention=bypass,
            )
    s3.put_object_retention(Bucket=locked, Key="k", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": FAR})
    assert _retention(s3, locked, "k") == {"Mode": "COMPLIANCE", "RetainUntilDate": FAR}
    # Deleting the key (a delete marker) is allowed; the locked version stays.
    assert s3.delete_object(Bucket=locked, Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    version = _version(put)
    for bypass in (False, True):
        expect_error(
            403,
            "AccessDenied",
            s3.delete_object,
            Bucket=locked,
            Key="k",
            VersionId=version,
            BypassGovernanceRetention=bypass,
        )
    assert s3.get_object(Bucket=locked, Key="k", VersionId=version)["Body"].read() == b"abc"


def test_governance_version_delete_needs_bypass(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=locked, Key="k", Body=b"abc", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=FAR)
    version = _version(put)
    expect_error(403, "AccessDenied", s3.delete_object, Bucket=locked, Key="k", VersionId=version)
    s3.delete_object(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=True)
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=locked, Key="k")


def test_legal_hold(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=locked, Key="k", Body=b"abc")
    # A version never given a hold has none to read, as S3 answers; none shows on HEAD.
    expect_error(404, "NoSuchObjectLockConfiguration", s3.get_object_legal_hold, Bucket=locked, Key="k")
    assert "ObjectLockLegalHoldStatus" not in s3.head_object(Bucket=locked, Key="k")
    s3.put_object_legal_hold(Bucket=locked, Key="k", LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="k")["LegalHold"] == {"Status": "ON"}
    assert s3.head_object(Bucket=locked, Key="k")["ObjectLockLegalHoldStatus"] == "ON"
    # A hold has no date: nothing else shows.
    expect_error(404, "NoSuchObjectLockConfiguration", s3.get_object_retention, Bucket=locked, Key="k")
    version = _version(put)
    for bypass in (False, True):  # the bypass does not lift a legal hold
        expect_error(
            403,
            "AccessDenied",
            s3.delete_object,
            Bucket=locked,
            Key="k",
            VersionId=version,
            BypassGovernanceRetention=bypass,
        )
    s3.put_object_legal_hold(Bucket=locked, Key="k", VersionId=version, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=version)["LegalHold"] == {"Status": "OFF"}
    assert s3.head_object(Bucket=locked, Key="k")["ObjectLockLegalHoldStatus"] == "OFF"  # removed, as S3 shows
    s3.delete_object(Bucket=locked, Key="k", VersionId=version)
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=locked, Key="k")


def test_delete_marker_over_held_version(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=locked, Key="k", Body=b"abc", ObjectLockLegalHoldStatus="ON")
    assert s3.delete_object(Bucket=locked, Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=locked, Key="k")


def test_lock_headers_on_put(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(
        Bucket=locked,
        Key="k",
        Body=b"abc",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=FAR,
        ObjectLockLegalHoldStatus="ON",
    )
    head = s3.head_object(Bucket=locked, Key="k")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE",
        FAR,
        "ON",
    )
    expect_error(400, "InvalidArgument", s3.put_object, Bucket=locked, Key="k2", Body=b"x", ObjectLockMode="GOVERNANCE")
    error = expect_error(
        400, "InvalidArgument", s3.put_object, Bucket=locked, Key="k2", Body=b"x", ObjectLockRetainUntilDate=FAR
    )
    assert error["Message"] == "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
    error = expect_error(
        400,
        "InvalidArgument",
        s3.put_object,
        Bucket=locked,
        Key="k2",
        Body=b"x",
        ObjectLockMode="governance",
        ObjectLockRetainUntilDate=FAR,
    )
    assert error["Message"] == "Unknown wormMode directive."
    error = expect_error(
        400,
        "InvalidArgument",
        s3.put_object,
        Bucket=locked,
        Key="k2",
        Body=b"x",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert error["Message"] == "The retain until date must be in the future!"
    expect_error(
        400, "InvalidArgument", s3.put_object, Bucket=locked, Key="k2", Body=b"x", ObjectLockLegalHoldStatus="on"
    )
    expect_error(404, "NoSuchKey", s3.get_object, Bucket=locked, Key="k2")


def _raw_put(server: ServerProcess, bucket: str, key: str, body: bytes, headers: dict[str, str]) -> Any:
    return request(server, "PUT", f"/{bucket}/{key}", body, {"content-length": str(len(body)), **headers})


def test_checksum_required_with_lock_parameters(server: ServerProcess, s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    body = b"locked body"
    lock = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2099-01-01T00:00:00Z"}
    for headers in (lock, {"x-amz-object-lock-legal-hold": "OFF"}):
        answer = _raw_put(server, locked, "k", body, headers)
        assert (answer.status, answer.error["Code"]) == (400, "InvalidRequest")
        assert answer.error["Message"] == object_lock.CHECKSUM_REQUIRED.format("Put Object")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert _raw_put(server, locked, "md5", body, {**lock, "content-md5": md5}).status == 200
    crc = {"x-amz-checksum-crc32": b64(digest("CRC32", body))}
    assert _raw_put(server, locked, "crc", body, {**lock, **crc}).status == 200
    assert s3.head_object(Bucket=locked, Key="crc")["ObjectLockMode"] == "GOVERNANCE"
    # Without lock parameters (and no default retention) no checksum is needed.
    assert _raw_put(server, locked, "plain", body, {}).status == 200
    # A default retention is a lock parameter too.
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=conf)
    assert _raw_put(server, locked, "plain", body, {}).status == 400
    assert _raw_put(server, locked, "plain", body, {"content-md5": md5}).status == 200
    # A part of an upload whose object will be locked likewise.
    upload = s3.create_multipart_upload(Bucket=locked, Key="mp")["UploadId"]
    answer = _raw_put(server, locked, f"mp?uploadId={upload}&partNumber=1", body, {})
    assert (answer.status, answer.error["Code"]) == (400, "InvalidRequest")
    assert _raw_put(server, locked, f"mp?uploadId={upload}&partNumber=1", body, {"content-md5": md5}).status == 200


def test_raw_header_errors(server: ServerProcess, locked: str) -> None:
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    for headers, name in (
        (
            {
                "x-amz-object-lock-mode": "GOVERNANCE",
                "x-amz-object-lock-retain-until-date": "Tue, 01 Jan 2099 00:00:00 GMT",
            },
            object_lock.UNTIL_HEADER,
        ),
        (
            {"x-amz-object-lock-mode": "FOREVER", "x-amz-object-lock-retain-until-date": "2099-01-01T00:00:00Z"},
            object_lock.MODE_HEADER,
        ),
        ({"x-amz-object-lock-legal-hold": "YES"}, object_lock.HOLD_HEADER),
    ):
        answer = _raw_put(server, locked, "k", b"x", {**headers, "content-md5": md5})
        assert (answer.status, answer.error["Code"], answer.error.get("ArgumentName")) == (400, "InvalidArgument", name)


def test_default_retention(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}}
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=conf)
    before = datetime.now(UTC)
    s3.put_object(Bucket=locked, Key="k", Body=b"abc", ObjectLockLegalHoldStatus="ON")
    head = s3.head_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    until = head["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=2) - timedelta(seconds=1) <= until <= datetime.now(UTC) + timedelta(days=2)
    # Headers in the request win over the default.
    s3.put_object(Bucket=locked, Key="k2", Body=b"abc", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=NEAR)
    assert _retention(s3, locked, "k2") == {"Mode": "COMPLIANCE", "RetainUntilDate": NEAR}
    # Copies and multipart uploads get it too.
    s3.copy_object(Bucket=locked, Key="copy", CopySource={"Bucket": locked, "Key": "k2"})
    assert _retention(s3, locked, "copy")["Mode"] == "GOVERNANCE"
    upload = s3.create_multipart_upload(Bucket=locked, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=locked, Key="mp", UploadId=upload, PartNumber=1, Body=b"abc")
    s3.complete_multipart_upload(
        Bucket=locked, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    )
    assert _retention(s3, locked, "mp")["Mode"] == "GOVERNANCE"


def test_multipart_with_lock_headers(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    upload = s3.create_multipart_upload(
        Bucket=locked,
        Key="mp",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=FAR,
        ObjectLockLegalHoldStatus="ON",
    )["UploadId"]
    # Nothing is locked before the upload completes.
    expect_error(404, "NoSuchKey", s3.get_object_retention, Bucket=locked, Key="mp")
    part = s3.upload_part(Bucket=locked, Key="mp", UploadId=upload, PartNumber=1, Body=b"abc")
    done = s3.complete_multipart_upload(
        Bucket=locked, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    )
    head = s3.head_object(Bucket=locked, Key="mp")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE",
        FAR,
        "ON",
    )
    version = _version(done)
    expect_error(
        403,
        "AccessDenied",
        s3.delete_object,
        Bucket=locked,
        Key="mp",
        VersionId=version,
        BypassGovernanceRetention=True,
    )
    s3.put_object_legal_hold(Bucket=locked, Key="mp", LegalHold={"Status": "OFF"})
    expect_error(403, "AccessDenied", s3.delete_object, Bucket=locked, Key="mp", VersionId=version)
    s3.delete_object(Bucket=locked, Key="mp", VersionId=version, BypassGovernanceRetention=True)


def test_copy_with_lock_headers(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=locked, Key="src", Body=b"abc", ObjectLockLegalHoldStatus="ON")
    s3.copy_object(
        Bucket=locked,
        Key="dst",
        CopySource={"Bucket": locked, "Key": "src"},
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=NEAR,
    )
    head = s3.head_object(Bucket=locked, Key="dst")
    # The copy has the lock its request asked for; the source's hold is not copied.
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", NEAR)
    assert "ObjectLockLegalHoldStatus" not in head
    s3.copy_object(Bucket=locked, Key="plain", CopySource={"Bucket": locked, "Key": "src"})
    assert "ObjectLockLegalHoldStatus" not in s3.head_object(Bucket=locked, Key="plain")
    expect_error(
        400,
        "InvalidArgument",
        s3.copy_object,
        Bucket=locked,
        Key="dst2",
        CopySource={"Bucket": locked, "Key": "src"},
        ObjectLockMode="GOVERNANCE",
    )


def test_aws_cli(aws, s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = f"lock-cli-{next(_names)}"
    aws("s3api", "create-bucket", "--bucket", name, "--object-lock-enabled-for-bucket")
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}}
    aws("s3api", "put-object-lock-configuration", "--bucket", name, "--object-lock-configuration", json.dumps(conf))
    got = json.loads(aws("s3api", "get-object-lock-configuration", "--bucket", name).stdout)
    assert got["ObjectLockConfiguration"] == conf
    body = tmp_path / "body.txt"
    body.write_text("kept")
    aws(
        "s3api", "put-object", "--bucket", name, "--key", "k", "--body", str(body),
        "--object-lock-mode", "COMPLIANCE", "--object-lock-retain-until-date", "2099-01-01T00:00:00Z",
        "--object-lock-legal-hold-status", "ON",
    )  # fmt: skip
    retention = json.loads(aws("s3api", "get-object-retention", "--bucket", name, "--key", "k").stdout)["Retention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"].startswith("2099-01-01T00:00:00")
    hold = json.loads(aws("s3api", "get-object-legal-hold", "--bucket", name, "--key", "k").stdout)
    assert hold == {"LegalHold": {"Status": "ON"}}
    aws("s3api", "put-object-legal-hold", "--bucket", name, "--key", "k", "--legal-hold", "Status=OFF")
    failed = aws(
        "s3api", "put-object-retention", "--bucket", name, "--key", "k", "--bypass-governance-retention",
        "--retention", '{"Mode": "GOVERNANCE", "RetainUntilDate": "2099-01-01T00:00:00Z"}',
        check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "AccessDenied" in failed.stderr
    # The CLI's upload command sends a checksum, so the default retention is accepted.
    aws("s3", "cp", str(body), f"s3://{name}/by-cp")
    assert s3.head_object(Bucket=name, Key="by-cp")["ObjectLockMode"] == "GOVERNANCE"


def test_retention_dates_keep_milliseconds(s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=locked, Key="k", Body=b"abc")
    when = datetime.now(UTC).replace(microsecond=123000) + timedelta(days=365)
    s3.put_object_retention(Bucket=locked, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": when})
    assert _retention(s3, locked, "k")["RetainUntilDate"] == when
    header = s3.head_object(Bucket=locked, Key="k")["ResponseMetadata"]["HTTPHeaders"][
        "x-amz-object-lock-retain-until-date"
    ]
    assert header.endswith(".123Z") and object_lock.parse_iso8601(header) == pytest.approx(when.timestamp())


def test_post_object_lock_fields(server: ServerProcess, s3, locked: str) -> None:  # type: ignore[no-untyped-def]
    fields = [
        ("key", "form"),
        ("x-amz-object-lock-mode", "GOVERNANCE"),
        ("x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z"),
        ("x-amz-object-lock-legal-hold", "ON"),
    ]
    content_type, body = multipart(fields, b"form body")
    answer = request(server, "POST", f"/{locked}", body, {"content-type": content_type})
    assert answer.status == 204, answer
    head = s3.head_object(Bucket=locked, Key="form")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE",
        FAR,
        "ON",
    )
    content_type, body = multipart([("key", "bad"), ("x-amz-object-lock-mode", "GOVERNANCE")], b"x")
    answer = request(server, "POST", f"/{locked}", body, {"content-type": content_type})
    assert (answer.status, answer.error["Code"]) == (400, "InvalidArgument")
