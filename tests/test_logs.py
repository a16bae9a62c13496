"""Logs: JSON and human formats, the access log, rotation with retention and gzip,
several workers sharing one log file, and the periodic bandwidth report."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import time
from pathlib import Path

import pytest

from coffer.logs import AccessLog, JsonFormatter, LogRotator, access_key_id
from tests.server_process import ServerProcess


def read_all_lines(log_file: Path) -> list[str]:
    """Every line of the log and its rotated, gzipped predecessors."""
    lines: list[str] = []
    for rotated in sorted(log_file.parent.glob(log_file.name + ".*.gz")):
        lines += gzip.decompress(rotated.read_bytes()).decode().splitlines()
    if log_file.exists():
        lines += log_file.read_text().splitlines()
    return lines


def test_rotator_keeps_count_and_gzips(tmp_path: Path) -> None:
    path = tmp_path / "coffer.log"
    rotator = LogRotator(str(path), max_bytes=100, keep=2, grace=0)
    for generation in range(4):
        path.write_text(f"generation {generation}\n" * 10)
        assert rotator.check()
        assert not path.exists()
    assert not rotator.check()  # nothing to rotate
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["coffer.log.1.gz", "coffer.log.2.gz"]
    assert gzip.decompress((tmp_path / "coffer.log.1.gz").read_bytes()).startswith(b"generation 3\n")
    assert gzip.decompress((tmp_path / "coffer.log.2.gz").read_bytes()).startswith(b"generation 2\n")
    # Below the size limit nothing happens.
    path.write_text("short\n")
    assert not rotator.check()
    assert path.read_text() == "short\n"


def test_json_formatter_fields() -> None:
    record = logging.LogRecord("coffer.access", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"status": 200, "key": "a/b"}  # type: ignore[attr-defined]
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "hello world"
    assert doc["level"] == "info"
    assert doc["logger"] == "coffer.access"
    assert doc["status"] == 200 and doc["key"] == "a/b"
    assert doc["time"].endswith("Z")


def test_access_log_batches_and_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "access.log"

    async def scenario() -> None:
        log = AccessLog(str(path), as_json=False)
        log.log("GET", "b", "a key/é", {}, "RID1", "GetObject", 200, 0, 5, 0.0012, "127.0.0.1:1", "AK")
        assert not path.exists() or path.read_text() == ""  # batched: not written yet
        await asyncio.sleep(AccessLog.FLUSH_SECONDS * 3)
        first = path.read_text()
        expected = f" INFO coffer.access[{log.pid}]: 127.0.0.1:1 GET GetObject b/a%20key/%C3%A9 200 in=0 out=5 "
        assert first.endswith(expected + "1.2ms id=RID1 key_id=AK\n")
        path.rename(tmp_path / "access.log.1")  # what the rotator does
        log.log("PUT", "b", "k", {}, "RID2", "PutObject", 200, 5, 0, 0.001, "127.0.0.1:1")
        log.close()  # flushes
        assert "id=RID2" in path.read_text() and "id=RID2" not in (tmp_path / "access.log.1").read_text()

    asyncio.run(scenario())


def test_access_key_id_never_the_secret() -> None:
    v4 = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abcdef0123"
    )
    assert access_key_id({"authorization": v4}, {}) == "AKIDEXAMPLE"
    assert access_key_id({"authorization": "AWS AKID2:c2lnbmF0dXJl"}, {}) == "AKID2"
    assert access_key_id({}, {"X-Amz-Credential": "AKID3/20240101/us-east-1/s3/aws4_request"}) == "AKID3"
    assert access_key_id({}, {"AWSAccessKeyId": "AKID4", "Signature": "x"}) == "AKID4"
    assert access_key_id({}, {}) == "-"


@pytest.mark.server
def test_access_log_json_and_rotation_with_two_workers(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "coffer.log"
    server = ServerProcess(
        tmp_path / "data",
        "--workers", "2",
        "--log-level", "info",
        "--log-format", "json",
        "--log-file", str(log_file),
        "--log-file-max-bytes", "8192",
        "--log-file-count", "100",
    ).start()  # fmt: skip
    sent = resets = 0
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="logged")
        s3.put_object(Bucket="logged", Key="dir/a b.txt", Body=b"hello")
        deadline = time.monotonic() + 60
        # Keep logging until the file has been rotated at least twice.
        while time.monotonic() < deadline and len(list(log_file.parent.glob("coffer.log.*.gz"))) < 2:
            for _ in range(20):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                try:
                    conn.request("GET", "/logged/dir/a%20b.txt", headers={"User-Agent": "rotation-test"})
                    response = conn.getresponse()
                    assert response.read() == b"hello"
                    sent += 1
                except ConnectionResetError:
                    # Seen twice in full-suite CI runs with two workers, never reproduced alone
                    # (docs/operations.md, "Known issues"); a client retries, so do we.
                    resets += 1
                    assert resets <= 3, _server_events(log_file)
                finally:
                    conn.close()
            time.sleep(0.1)
    finally:
        server.stop()
    assert len(list(log_file.parent.glob("coffer.log.*.gz"))) >= 2
    lines = read_all_lines(log_file)
    docs = [json.loads(line) for line in lines]  # every line, rotated or not, is one JSON object
    gets = [d for d in docs if d["logger"] == "coffer.access" and d.get("user_agent") == "rotation-test"]
    # No line lost or duplicated across rotations and workers (a reset request may have been served).
    assert sent <= len(gets) <= sent + resets
    assert len({d["request_id"] for d in gets}) == len(gets)
    first = gets[0]
    assert first["operation"] == "GetObject"
    assert first["method"] == "GET"
    assert first["bucket"] == "logged" and first["key"] == "dir/a b.txt"
    assert first["status"] == 200
    assert first["bytes_out"] == 5 and first["bytes_in"] == 0
    assert first["latency_ms"] >= 0
    assert first["client"].startswith("127.0.0.1:")
    assert first["access_key_id"] == "-"  # unsigned request
    assert {d["pid"] for d in gets} and all(isinstance(d["pid"], int) for d in gets)
    puts = [d for d in docs if d.get("operation") == "PutObject"]
    assert len(puts) == 1 and puts[0]["access_key_id"] == "test" and puts[0]["bytes_in"] >= 5
    assert "testsecret" not in "\n".join(lines)


@pytest.mark.server
def test_human_format_bandwidth_report_and_access_log_off(tmp_path: Path) -> None:
    log_file = tmp_path / "coffer.log"
    server = ServerProcess(
        tmp_path / "data",
        "--log-level", "info",
        "--log-file", str(log_file),
        "--access-log", "false",
        "--bandwidth-report-seconds", "1",
    ).start()  # fmt: skip
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bandwidth")
        s3.put_object(Bucket="bandwidth", Key="k", Body=b"z" * 5000)
        assert s3.get_object(Bucket="bandwidth", Key="k")["Body"].read() == b"z" * 5000
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "totals received" not in log_file.read_text():
            time.sleep(0.2)
    finally:
        server.stop()
    text = log_file.read_text()
    reports = [line for line in text.splitlines() if "coffer.bandwidth" in line]
    assert reports, text
    # Totals include the 5000-byte upload and download (plus framing and XML).
    last = reports[-1]
    assert "totals received" in last and "sent" in last
    assert " INFO coffer.bandwidth[" in last  # the human format: time level logger[pid]: message
    assert "coffer.access" not in text  # access log switched off


def _server_events(log_file: Path) -> str:
    """The server's own log lines (not the access log): worker starts, deaths, signals."""
    lines = [line for line in read_all_lines(log_file) if '"coffer.access"' not in line]
    return "\n".join(lines[-40:])
