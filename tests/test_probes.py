"""/_coffer/health and /_coffer/ready as JSON, the admin port, and no bucket shadowing."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, free_port


def get(port: int, path: str, host: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host} if host else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_health_and_ready(server: ServerProcess, s3) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket="probe-counts")
    s3.put_object(Bucket="probe-counts", Key="a", Body=b"12345")
    status, headers, body = get(server.port, "/_coffer/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert "x-amz-request-id" in headers
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert doc["version"]
    assert doc["uptime_seconds"] >= 0
    assert doc["requests"] >= 2
    assert doc["storage"]["buckets"] >= 1
    assert doc["storage"]["objects"] >= 1
    assert doc["storage"]["bytes"] >= 5

    status, headers, body = get(server.port, "/_coffer/ready")
    assert status == 200
    doc = json.loads(body)
    assert doc["ready"] is True
    assert doc["checks"] == {"readable": True, "writable": True, "disk_space": True}
    assert doc["free_bytes"] >= doc["min_free_bytes"]

    status, headers, _ = get(server.port, "/_coffer/ready", method="HEAD")
    assert status == 200

    status, _, body = get(server.port, "/_coffer/nothing")
    assert status == 404
    assert "/_coffer/health" in json.loads(body)["endpoints"]


@pytest.mark.server
def test_not_ready_when_disk_space_below_threshold(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--ready-min-free-bytes", str(1 << 62)).start()
    try:
        status, _, body = get(server.port, "/_coffer/ready")
        assert status == 503
        doc = json.loads(body)
        assert doc["ready"] is False
        assert doc["checks"]["disk_space"] is False
        assert doc["checks"]["readable"] is True and doc["checks"]["writable"] is True
        assert "below" in doc["detail"]
        # Liveness is unaffected: the process is fine, only not ready.
        assert get(server.port, "/_coffer/health")[0] == 200
    finally:
        server.stop()


def test_probe_path_is_an_object_key_under_virtual_hosting(server: ServerProcess, s3) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket="vhost-probe")
    s3.put_object(Bucket="vhost-probe", Key="_coffer/health", Body=b"just an object")
    status, _, body = get(server.port, "/_coffer/health", host=f"vhost-probe.localhost:{server.port}")
    assert status == 200
    assert body == b"just an object"


@pytest.mark.server
def test_admin_port_serves_probes_only(tmp_path: Path) -> None:
    admin = free_port()
    server = ServerProcess(tmp_path / "data", "--admin-port", str(admin)).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="admin-test")
        status, _, body = get(admin, "/_coffer/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, _, body = get(admin, "/_coffer/metrics")
        assert status == 200 and b"coffer_http_requests_total" in body
        assert get(admin, "/_coffer/ready")[0] == 200
        # S3 is not reachable through the admin port.
        status, _, body = get(admin, "/admin-test")
        assert status == 404
        assert b"ListBucketResult" not in body
        # The probes stay on the main port too.
        assert get(server.port, "/_coffer/health")[0] == 200
    finally:
        server.stop()
