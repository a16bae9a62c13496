"""Multipart uploads over the wire: boto3 (default checksums and when_required), the aws CLI, raw HTTP."""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from pathlib import Path

import pytest
from awscrt import checksums as crt
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess
from tests.wire import b64, digest, error_of, raw

MiB = 1024 * 1024
PART1 = os.urandom(5 * MiB)
PART2 = os.urandom(5 * MiB)
TAIL = os.urandom(100_000)


def multipart_etag(parts: list[bytes]) -> str:
    return '"' + hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f'-{len(parts)}"'


def upload_parts(s3, bucket: str, key: str, parts: list[bytes], **create: str) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        response = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **extra)
        entry = {"ETag": response["ETag"], "PartNumber": number}
        for name in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"):
            if name in response and "ChecksumAlgorithm" in create:
                entry[name] = response[name]
        done.append(entry)
    return upload_id, done


def test_roundtrip_default_checksums(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    parts = [PART1, PART2, TAIL]
    upload_id, done = upload_parts(s3, bucket, "obj", parts, ContentType="text/plain", Metadata={"a": "b"})
    result = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    assert result["ETag"] == multipart_etag(parts)
    # No algorithm declared at creation: S3 keeps a full-object CRC64NVME.
    assert result["ChecksumType"] == "FULL_OBJECT"
    assert result["ChecksumCRC64NVME"] == b64(crt.crc64nvme(whole).to_bytes(8, "big"))
    got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == whole
    assert got["ETag"] == result["ETag"] and got["ContentType"] == "text/plain" and got["Metadata"] == {"a": "b"}
    assert got["ChecksumCRC64NVME"] == result["ChecksumCRC64NVME"]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("obj", len(whole), result["ETag"])]


def test_roundtrip_when_required(s3_required, bucket: str) -> None:  # type: ignore[no-untyped-def]
    parts = [PART1, TAIL]
    upload_id, done = upload_parts(s3_required, bucket, "obj", parts)
    s3_required.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done})
    assert s3_required.get_object(Bucket=bucket, Key="obj")["Body"].read() == PART1 + TAIL


@pytest.mark.parametrize("client_name", ["s3", "s3_required"])
def test_managed_upload_and_download(request: pytest.FixtureRequest, client_name: str, bucket: str) -> None:
    client = request.getfixturevalue(client_name)
    data = PART1 + PART2 + TAIL
    path = Path(request.getfixturevalue("tmp_path")) / "file.bin"
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client.upload_file(str(path), bucket, "managed", Config=config)
    head = client.head_object(Bucket=bucket, Key="managed", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    if client_name == "s3":
        # s3transfer declares CRC32: a COMPOSITE checksum, hash of the part CRCs, "-3".
        part_crcs = b"".join(digest("CRC32", p) for p in (PART1, PART2, TAIL))
        assert head["ChecksumCRC32"] == b64(digest("CRC32", part_crcs)) + "-3"
        assert head["ChecksumType"] == "COMPOSITE"
    else:
        assert head["ChecksumType"] == "FULL_OBJECT" and "ChecksumCRC64NVME" in head
    out = path.with_suffix(".out")
    client.download_file(bucket, "managed", str(out), Config=config)  # ranged GETs in parallel
    assert out.read_bytes() == data


def test_get_and_head_part_number(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    parts = [PART1, TAIL]
    upload_id, done = upload_parts(s3, bucket, "obj", parts)
    with pytest.raises(ClientError) as exc:  # not an object before completion
        s3.get_object(Bucket=bucket, Key="obj", PartNumber=1)
    assert error_of(exc) == (404, "NoSuchKey")
    etag = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done})[
        "ETag"
    ]
    offset = 0
    for number, data in enumerate(parts, 1):
        head = s3.head_object(Bucket=bucket, Key="obj", PartNumber=number)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (head["PartsCount"], head["ETag"], head["ContentLength"]) == (2, etag, len(data))
        got = s3.get_object(Bucket=bucket, Key="obj", PartNumber=number)
        assert got["Body"].read() == data and got["PartsCount"] == 2
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{len(PART1) + len(TAIL)}"
        offset += len(data)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj", PartNumber=3)
    assert error_of(exc) == (400, "InvalidPart")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj", PartNumber=1, Range="bytes=0-1")
    assert error_of(exc) == (400, "InvalidRequest")
    s3.put_object(Bucket=bucket, Key="single", Body=b"body")
    got = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert got["Body"].read() == b"body" and "PartsCount" not in got
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=2)
    assert error_of(exc) == (400, "InvalidPart")


def test_ranges_across_part_boundaries(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    parts = [PART1, PART2, TAIL]
    upload_id, done = upload_parts(s3, bucket, "obj", parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    size = len(whole)
    cases = {
        f"bytes={5 * MiB - 3}-{5 * MiB + 2}": (5 * MiB - 3, 5 * MiB + 3),  # across the first boundary
        f"bytes={5 * MiB - 1}-{10 * MiB}": (5 * MiB - 1, 10 * MiB + 1),  # a whole part plus one byte each side
        f"bytes={10 * MiB}-": (10 * MiB, size),
        "bytes=-70000": (size - 70000, size),
        f"bytes=0-{size * 2}": (0, size),  # the end is clamped
    }
    for header, (start, end) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="obj", Range=header)
        assert got["Body"].read() == whole[start:end], header
        assert got["ContentRange"] == f"bytes {start}-{end - 1}/{size}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj", Range=f"bytes={size}-")
    assert error_of(exc) == (416, "InvalidRange")


def test_complete_errors(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id, done = upload_parts(s3, bucket, "obj", [TAIL, PART1])

    def complete(parts: list[dict]) -> tuple[int, str]:
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": parts})
        return error_of(exc)

    assert complete([done[1], done[0]]) == (400, "InvalidPartOrder")
    assert complete([{"ETag": '"' + "0" * 32 + '"', "PartNumber": 1}]) == (400, "InvalidPart")
    assert complete([done[0], {"ETag": done[1]["ETag"], "PartNumber": 9}]) == (400, "InvalidPart")
    assert complete(done) == (400, "EntityTooSmall")  # the 100 kB part is not last
    # Re-uploading part 1 with a full-size body replaces it; now the upload completes.
    again = s3.upload_part(Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=1, Body=PART2)
    parts = [{"ETag": again["ETag"], "PartNumber": 1}, done[1]]
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, again["ETag"], len(PART2)),
        (2, done[1]["ETag"], len(PART1)),
    ]
    s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == PART2 + PART1
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="obj")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id)
    assert complete(parts) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id)
    assert error_of(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="obj", UploadId="nonexistent", PartNumber=1, Body=b"x")
    assert error_of(exc) == (404, "NoSuchUpload")


def test_list_parts_pagination(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="obj")["UploadId"]
    for number in range(1, 8):
        s3.upload_part(Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=number, Body=b"p%d" % number)
    seen, marker = [], 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="obj", UploadId=upload_id, MaxParts=3, PartNumberMarker=marker)
        seen += [p["PartNumber"] for p in page.get("Parts", [])]
        assert page["MaxParts"] == 3
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert seen == list(range(1, 8))
    page = s3.list_parts(Bucket=bucket, Key="obj", UploadId=upload_id)
    assert page["Initiator"]["ID"] == page["Owner"]["ID"] and page["StorageClass"] == "STANDARD"


def test_list_multipart_uploads(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    ids = {}
    for key in ["a/1", "a/2", "b", "b", "c d"]:
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("a/1", ids["a/1"][0]),
        ("a/2", ids["a/2"][0]),
        ("b", ids["b"][0]),
        ("b", ids["b"][1]),
        ("c d", ids["c d"][0]),
    ]
    folded = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["a/"]
    assert [u["Key"] for u in folded["Uploads"]] == ["b", "b", "c d"]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")["Uploads"]] == ["a/1", "a/2"]
    page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=3)
    assert page["IsTruncated"] and (page["NextKeyMarker"], page["NextUploadIdMarker"]) == ("b", ids["b"][0])
    rest = s3.list_multipart_uploads(
        Bucket=bucket, KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"]
    )
    assert [(u["Key"], u["UploadId"]) for u in rest["Uploads"]] == [("b", ids["b"][1]), ("c d", ids["c d"][0])]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b")["Uploads"]] == ["c d"]
    encoded = s3.list_multipart_uploads(Bucket=bucket, Prefix="c", EncodingType="url")
    assert [u["Key"] for u in encoded["Uploads"]] == ["c%20d"]  # botocore leaves these encoded


@pytest.mark.parametrize(
    ("algorithm", "checksum_type"),
    [
        ("SHA256", None),
        ("SHA1", None),
        ("CRC32", None),
        ("CRC32C", "COMPOSITE"),
        ("CRC32", "FULL_OBJECT"),
        ("CRC32C", "FULL_OBJECT"),
        ("CRC64NVME", None),
    ],
)
def test_declared_checksums(s3, bucket: str, algorithm: str, checksum_type: str | None) -> None:  # type: ignore[no-untyped-def]
    create = {"ChecksumAlgorithm": algorithm}
    if checksum_type:
        create["ChecksumType"] = checksum_type
    created = s3.create_multipart_upload(Bucket=bucket, Key="obj", **create)
    assert created["ChecksumAlgorithm"] == algorithm
    parts = [PART1, TAIL]
    upload_id = created["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        response = s3.upload_part(
            Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=number, Body=data, ChecksumAlgorithm=algorithm
        )
        assert response[f"Checksum{algorithm}"] == b64(digest(algorithm, data))
        done.append(
            {"ETag": response["ETag"], "PartNumber": number, f"Checksum{algorithm}": b64(digest(algorithm, data))}
        )
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=upload_id)
    assert [p[f"Checksum{algorithm}"] for p in listed["Parts"]] == [d[f"Checksum{algorithm}"] for d in done]
    result = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done})
    expected_type = "COMPOSITE" if algorithm in ("SHA1", "SHA256") else (checksum_type or "COMPOSITE")
    if algorithm == "CRC64NVME":
        expected_type = "FULL_OBJECT"
    if expected_type == "COMPOSITE":
        value = b64(digest(algorithm, b"".join(digest(algorithm, p) for p in parts))) + "-2"
    else:
        value = b64(digest(algorithm, PART1 + TAIL))
    assert (result[f"Checksum{algorithm}"], result["ChecksumType"]) == (value, expected_type)
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (value, expected_type)
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="DISABLED")
    part = s3.get_object(Bucket=bucket, Key="obj", PartNumber=2, ChecksumMode="ENABLED")
    assert part[f"Checksum{algorithm}"] == b64(digest(algorithm, TAIL))  # the part's own checksum
    assert part["Body"].read() == TAIL


def test_checksum_rule_violations(s3, s3_required, bucket: str) -> None:  # type: ignore[no-untyped-def]
    def create_error(**kwargs: str) -> tuple[int, str]:
        with pytest.raises(ClientError) as exc:
            s3.create_multipart_upload(Bucket=bucket, Key="obj", **kwargs)
        return error_of(exc)

    assert create_error(ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT") == (400, "InvalidRequest")
    assert create_error(ChecksumAlgorithm="SHA1", ChecksumType="FULL_OBJECT") == (400, "InvalidRequest")
    assert create_error(ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE") == (400, "InvalidRequest")
    assert create_error(ChecksumType="FULL_OBJECT") == (400, "InvalidRequest")  # a type needs an algorithm
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="obj", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as exc:  # CRC32 part for a SHA256 upload
        s3.upload_part(Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=1, Body=b"x", ChecksumAlgorithm="CRC32")
    assert error_of(exc) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:  # no checksum at all for a SHA256 upload
        s3_required.upload_part(Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert error_of(exc) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:  # a wrong part checksum is caught on upload
        s3.upload_part(
            Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=1, Body=b"x", ChecksumSHA256=b64(b"\0" * 32)
        )
    assert error_of(exc) == (400, "BadDigest")
    response = s3.upload_part(
        Bucket=bucket, Key="obj", UploadId=upload_id, PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA256"
    )
    part = {"ETag": response["ETag"], "PartNumber": 1}
    with pytest.raises(ClientError) as exc:  # composite completion without the part checksums
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": [part]})
    assert error_of(exc) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:  # a part checksum that does not match the stored part
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="obj",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{**part, "ChecksumSHA256": b64(b"\1" * 32)}]},
        )
    assert error_of(exc) == (400, "InvalidPart")
    good = {**part, "ChecksumSHA256": response["ChecksumSHA256"]}
    with pytest.raises(ClientError) as exc:  # the object checksum given does not match
        s3.complete_multipart_upload(
            Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": [good]}, ChecksumSHA256="bad"
        )
    assert error_of(exc) == (400, "BadDigest")
    composite = b64(digest("SHA256", digest("SHA256", b"x"))) + "-1"
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": [good]}, ChecksumSHA256=composite
    )
    assert result["ChecksumSHA256"] == composite
    # A retried Complete (the first answer got lost) gets the same answer.
    retry = s3.complete_multipart_upload(
        Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": [good]}
    )
    assert (retry["ETag"], retry["ChecksumSHA256"]) == (result["ETag"], result["ChecksumSHA256"])


def test_complete_conditional_writes(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    def attempt(**conditions: str) -> tuple[int, str] | dict:
        upload_id, done = upload_parts(s3, bucket, "obj", [TAIL])
        try:
            return s3.complete_multipart_upload(
                Bucket=bucket, Key="obj", UploadId=upload_id, MultipartUpload={"Parts": done}, **conditions
            )
        except ClientError as exc:
            return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]

    assert attempt(IfMatch='"whatever"') == (404, "NoSuchKey")
    first = attempt(IfNoneMatch="*")
    assert isinstance(first, dict)
    assert attempt(IfNoneMatch="*") == (412, "PreconditionFailed")
    assert attempt(IfMatch='"0123"') == (412, "PreconditionFailed")
    second = attempt(IfMatch=first["ETag"])
    assert isinstance(second, dict)


@pytest.mark.server
def test_abandoned_uploads_are_swept(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--multipart-upload-max-age", "2").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="sweep")
        upload_id = s3.create_multipart_upload(Bucket="sweep", Key="k")["UploadId"]
        s3.upload_part(Bucket="sweep", Key="k", UploadId=upload_id, PartNumber=1, Body=PART1)
        assert list((tmp_path / "data" / "blobs").rglob("*-*")) == []  # sanity: names have no dashes
        deadline = time.monotonic() + 60
        while s3.list_multipart_uploads(Bucket="sweep").get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Uploads" not in s3.list_multipart_uploads(Bucket="sweep")
        assert [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()] == []
        with pytest.raises(ClientError) as exc:
            s3.list_parts(Bucket="sweep", Key="k", UploadId=upload_id)
        assert error_of(exc) == (404, "NoSuchUpload")
    finally:
        server.stop()


# ---------------------------------------------------------------------- aws CLI
def aws(server: ServerProcess, *args: str, env: dict[str, str] | None = None) -> str:
    return server.aws(*args, env=env).stdout


@pytest.mark.parametrize("checksums_setting", ["when_supported", "when_required"])
def test_aws_cli_cp_goes_multipart(
    server: ServerProcess,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
    checksums_setting: str,
) -> None:
    data = os.urandom(20 * MiB)  # over the CLI's 8 MiB multipart threshold: 3 parts
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    env = {"AWS_REQUEST_CHECKSUM_CALCULATION": checksums_setting}
    aws(server, "s3", "cp", str(source), f"s3://{bucket}/big.bin", env=env)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    if checksums_setting == "when_required":
        assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data
        return
    # s3 -> s3 copy of a multipart-sized object: the CLI uses UploadPartCopy, then reads it back.
    aws(server, "s3", "cp", f"s3://{bucket}/big.bin", f"s3://{bucket}/copy.bin", env=env)
    target = tmp_path / "back.bin"
    aws(server, "s3", "cp", f"s3://{bucket}/copy.bin", str(target), env=env)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_aws_cli_s3api_multipart(server: ServerProcess, bucket: str, tmp_path: Path) -> None:
    import json

    part = tmp_path / "part.bin"
    part.write_bytes(TAIL)
    created = json.loads(aws(server, "s3api", "create-multipart-upload", "--bucket", bucket, "--key", "cli"))
    upload_id = created["UploadId"]
    uploaded = json.loads(
        aws(
            server,
            "s3api",
            "upload-part",
            "--bucket",
            bucket,
            "--key",
            "cli",
            "--upload-id",
            upload_id,
            "--part-number",
            "1",
            "--body",
            str(part),
        )
    )
    parts = json.loads(aws(server, "s3api", "list-parts", "--bucket", bucket, "--key", "cli", "--upload-id", upload_id))
    assert [p["ETag"] for p in parts["Parts"]] == [uploaded["ETag"]]
    layout = json.dumps({"Parts": [{"ETag": uploaded["ETag"], "PartNumber": 1}]})
    done = json.loads(
        aws(
            server,
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            bucket,
            "--key",
            "cli",
            "--upload-id",
            upload_id,
            "--multipart-upload",
            layout,
        )
    )
    assert done["ETag"] == multipart_etag([TAIL])
    attributes = json.loads(
        aws(
            server,
            "s3api",
            "get-object-attributes",
            "--bucket",
            bucket,
            "--key",
            "cli",
            "--object-attributes",
            "ETag",
            "ObjectParts",
            "ObjectSize",
        )
    )
    assert attributes["ObjectSize"] == len(TAIL) and attributes["ObjectParts"]["TotalPartsCount"] == 1


# ---------------------------------------------------------------------- raw HTTP edge cases
def test_raw_http_edge_cases(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    base = f"/{bucket}/k?uploadId={upload_id}"
    for number in ("0", "10001", "abc", "-1", "%C2%B2"):  # the last: '²', a digit to str.isdigit()
        status, body, _ = raw(server, "PUT", f"{base}&partNumber={number}", b"data")
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (number, body)
    for document in (
        b"",
        b"not xml",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        b'<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>',
    ):
        status, body, _ = raw(server, "POST", base, document)
        assert status == 400 and b"<Code>MalformedXML</Code>" in body, (document, body)
    status, body, _ = raw(server, "PUT", f"{base}&partNumber=1", b"x" * 10, {"Content-MD5": b64(b"\0" * 16)})
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    status, body, headers = raw(server, "PUT", f"{base}&partNumber=1", b"x" * 10)
    assert status == 200 and headers["etag"] == '"' + hashlib.md5(b"x" * 10).hexdigest() + '"'
    status, body, _ = raw(server, "GET", f"/{bucket}/k?partNumber=1")
    assert status == 404 and b"<Code>NoSuchKey</Code>" in body
    status, body, _ = raw(server, "GET", f"/{bucket}?uploads&max-uploads=abc")
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
    status, body, _ = raw(server, "GET", f"{base}&part-number-marker=x")
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
    status, body, _ = raw(server, "DELETE", f"/{bucket}/k?uploadId={upload_id}")
    assert status == 204
    status, body, _ = raw(server, "GET", "/nosuchbucket-mp?uploads")
    assert status == 404 and b"<Code>NoSuchBucket</Code>" in body


@pytest.mark.server
def test_kill_9_mid_part_and_after_complete(tmp_path: Path) -> None:
    """A part cut off by a crash never appears; an acknowledged Complete survives one."""
    server = ServerProcess(tmp_path / "data", "--fsync", "always").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="crash")
        upload_id = s3.create_multipart_upload(Bucket="crash", Key="k")["UploadId"]
        first = s3.upload_part(Bucket="crash", Key="k", UploadId=upload_id, PartNumber=1, Body=PART1)["ETag"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.putrequest("PUT", f"/crash/k?uploadId={upload_id}&partNumber=2")
        conn.putheader("Content-Length", str(len(PART2)))
        conn.endheaders()
        conn.send(PART2[: len(PART2) // 2])  # half a part, then the server dies
        time.sleep(0.5)
        server.kill9()
        conn.close()
        server.start()
        parts = s3.list_parts(Bucket="crash", Key="k", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, first)]
        done = s3.complete_multipart_upload(
            Bucket="crash", Key="k", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first}]}
        )
        server.kill9()  # right after the acknowledgement
        server.start()
        got = s3.get_object(Bucket="crash", Key="k")
        assert got["ETag"] == done["ETag"] and got["Body"].read() == PART1
        assert "Uploads" not in s3.list_multipart_uploads(Bucket="crash")
    finally:
        server.stop()
