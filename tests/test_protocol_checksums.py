"""Integrity checksums through boto3: every algorithm sent, validated, stored and returned."""

from __future__ import annotations

import os

import pytest

from tests.checksum_reference import reference_b64
from tests.s3errors import expect_error

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
DATA = os.urandom(3000)
EXPECTED = reference_b64(DATA)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_algorithm_round_trip(s3_modes, bucket: str, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    field = f"Checksum{algorithm}"
    put = s3_modes.put_object(Bucket=bucket, Key="c", Body=DATA, ChecksumAlgorithm=algorithm)
    assert put[field] == EXPECTED[algorithm]
    got = s3_modes.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["Body"].read() == DATA  # botocore also validates the returned checksum itself
    assert got[field] == EXPECTED[algorithm]
    assert got["ChecksumType"] == "FULL_OBJECT"
    head = s3_modes.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head[field] == EXPECTED[algorithm]
    # Only on request.
    plain = s3_modes.head_object(Bucket=bucket, Key="c")
    assert not [k for k in plain if k.startswith("Checksum")]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_precomputed_checksum(s3_modes, bucket: str, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    field = f"Checksum{algorithm}"
    put = s3_modes.put_object(Bucket=bucket, Key="p", Body=DATA, **{field: EXPECTED[algorithm]})
    assert put[field] == EXPECTED[algorithm]
    head = s3_modes.head_object(Bucket=bucket, Key="p", ChecksumMode="ENABLED")
    assert head[field] == EXPECTED[algorithm]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_checksum_is_bad_digest(s3_modes, bucket: str, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    field = f"Checksum{algorithm}"
    s3_modes.put_object(Bucket=bucket, Key="w", Body=b"previous")
    wrong = reference_b64(b"other data")[algorithm]
    error = expect_error(400, "BadDigest", s3_modes.put_object, Bucket=bucket, Key="w", Body=DATA, **{field: wrong})
    assert algorithm in error["Message"]
    assert s3_modes.get_object(Bucket=bucket, Key="w")["Body"].read() == b"previous"


@pytest.mark.parametrize(
    ("field", "value"), [("ChecksumCRC32", "!!"), ("ChecksumSHA1", "AAAAAA=="), ("ChecksumSHA256", "bad")]
)
def test_malformed_checksum_value(s3_modes, bucket: str, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """A value that is no digest of the algorithm (bad base64, wrong length) is a mismatch like any other."""
    expect_error(400, "BadDigest", s3_modes.put_object, Bucket=bucket, Key="m", Body=DATA, **{field: value})
    assert "Contents" not in s3_modes.list_objects_v2(Bucket=bucket)


def test_default_checksums(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """boto3 sends CRC32 by default; with when_required it sends none and the server computes CRC64NVME."""
    default = server.client()
    put = default.put_object(Bucket=bucket, Key="d", Body=DATA)
    assert put["ChecksumCRC32"] == EXPECTED["CRC32"]
    got = default.get_object(Bucket=bucket, Key="d", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == EXPECTED["CRC32"]

    required = server.client(request_checksum_calculation="when_required")
    put = required.put_object(Bucket=bucket, Key="r", Body=DATA)
    assert not [k for k in put if k.startswith("Checksum")]  # nothing was sent, nothing is echoed
    head = required.head_object(Bucket=bucket, Key="r", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == EXPECTED["CRC64NVME"]
    assert required.get_object(Bucket=bucket, Key="r", ChecksumMode="ENABLED")["Body"].read() == DATA


def test_checksum_of_empty_object(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=bucket, Key="e", Body=b"", ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == reference_b64(b"")["SHA256"]
    # The CRC32 of an empty body sent with data is a mismatch, as on S3.
    expect_error(400, "BadDigest", s3.put_object, Bucket=bucket, Key="e2", Body=b"data", ChecksumCRC32="AAAAAA==")
