"""Prometheus metrics after a known workload, parsed with prometheus-client's own parser,
with one worker and with two (multiprocess mode)."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.server_process import ServerProcess


def scrape(server: ServerProcess, path: str = "/_coffer/metrics", port: int | None = None) -> dict[str, list]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port or server.port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    assert response.status == 200, body
    assert response.getheader("content-type", "").startswith("text/plain")
    samples: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:  # type: ignore[type-arg]
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for sample in samples.get(name, []):
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            total += sample.value
    return total


def wait_for_workers(server: ServerProcess, count: int, attempts: int = 400) -> set[int]:
    """Health answers carry the worker pid: poll over fresh connections until ``count`` pids answered."""
    import json
    import time

    pids: set[int] = set()
    resets = 0
    for _ in range(attempts):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", "/_coffer/health")
            pids.add(json.loads(conn.getresponse().read())["pid"])
        except ConnectionResetError:
            # Seen once in a full-suite CI run with two workers, never reproduced alone
            # (docs/operations.md, "Known issues"); a load balancer's probe retries, so do we.
            resets += 1
            assert resets <= 3, f"health probes reset {resets} times; server log:\n{server.log()}"
        finally:
            conn.close()
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"only workers {pids} answered; server log:\n{server.log()}")


def workload(server: ServerProcess) -> None:
    """12 PutObject, 7 GetObject, 3 HeadObject misses (404), 2 ListObjectsV2, 1 CreateBucket, 1 bad CreateBucket."""
    s3 = server.client()
    s3.create_bucket(Bucket="metrics")
    with pytest.raises(ClientError):
        s3.create_bucket(Bucket="Bad_Name")
    for i in range(12):
        s3.put_object(Bucket="metrics", Key=f"k{i}", Body=b"x" * 1000)
    for i in range(7):
        assert s3.get_object(Bucket="metrics", Key=f"k{i}")["Body"].read() == b"x" * 1000
    for i in range(3):
        with pytest.raises(ClientError):
            s3.head_object(Bucket="metrics", Key=f"missing{i}")
    for _ in range(2):
        assert s3.list_objects_v2(Bucket="metrics")["KeyCount"] == 12


def check_workload(samples: dict[str, list], probes: bool = False) -> None:  # type: ignore[type-arg]
    requests = "coffer_http_requests_total"
    if not probes:
        assert value(samples, requests, operation="CofferHealth") == 0
    assert value(samples, requests, operation="PutObject", status_class="2xx") == 12
    assert value(samples, requests, operation="GetObject", status_class="2xx") == 7
    assert value(samples, requests, operation="HeadObject", status_class="4xx") == 3
    assert value(samples, requests, operation="HeadObject", status_class="2xx") == 0
    assert value(samples, requests, operation="ListObjectsV2", status_class="2xx") == 2
    assert value(samples, requests, operation="CreateBucket", status_class="2xx") == 1
    assert value(samples, requests, operation="CreateBucket", status_class="4xx") == 1
    # The latency histogram counts the same requests.
    assert value(samples, "coffer_http_request_duration_seconds_count", operation="PutObject") == 12
    assert value(samples, "coffer_http_request_duration_seconds_bucket", operation="GetObject", le="+Inf") == 7
    # Bodies: boto3 sends each 1000-byte body aws-chunked (framing included on the wire).
    assert value(samples, "coffer_http_received_bytes_total", operation="PutObject") >= 12 * 1000
    assert value(samples, "coffer_http_sent_bytes_total", operation="GetObject") == 7 * 1000
    # The scrape being answered is the only request in flight.
    assert value(samples, "coffer_http_requests_in_flight") == 1
    # Storage totals and engine internals.
    assert value(samples, "coffer_storage_buckets") == 1
    assert value(samples, "coffer_storage_objects") == 12
    assert value(samples, "coffer_storage_bytes") == 12 * 1000
    assert value(samples, "coffer_storage_multipart_uploads") == 0
    batches = value(samples, "coffer_engine_commit_batch_size_count")
    assert batches >= 1
    # 13 writes (bucket + 12 objects) went through group commit, however they were batched.
    assert value(samples, "coffer_engine_commit_batch_size_sum") >= 13
    assert value(samples, "coffer_engine_commit_seconds_count") == batches
    assert value(samples, "coffer_build_info") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", "--fsync", "always").start()
    yield server
    server.stop()


def test_metrics_one_worker(one_worker: ServerProcess) -> None:
    workload(one_worker)
    samples = scrape(one_worker)
    check_workload(samples)
    # Inline bodies (below the inline threshold) need no file fsync: only the WAL commits, timed above.
    assert value(samples, "coffer_engine_fsync_seconds_count", kind="file") == 0
    # The read cache: 7 first GETs and 3 HEADs of missing keys missed; a repeated GET hits.
    cache = "coffer_engine_cache_requests_total"
    assert value(samples, cache, cache="read", result="miss") == 10
    assert value(samples, cache, cache="read", result="hit") == 0
    one_worker.client().get_object(Bucket="metrics", Key="k0")["Body"].read()
    assert value(scrape(one_worker), cache, cache="read", result="hit") == 1
    # A second scrape sees the first one counted.
    again = scrape(one_worker)
    assert value(again, "coffer_http_requests_total", operation="CofferMetrics", status_class="2xx") == 2


@pytest.mark.server
def test_metrics_two_workers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2", "--log-level", "info").start()
    try:
        wait_for_workers(server, 2)
        workload(server)
        samples = scrape(server)
        check_workload(samples, probes=True)
        # Both workers report process metrics, labelled by pid.
        pids = {s.labels["pid"] for s in samples["process_resident_memory_bytes"]}
        assert len(pids) == 2
        # SIGTERM stops the parent and both workers; exit 0; the shared metrics directory is removed.
        assert server.proc is not None
        tag = hashlib.sha256(f"{os.path.abspath(server.data_dir)}:{server.port}".encode()).hexdigest()[:12]
        metrics_dir = Path(tempfile.gettempdir()) / f"coffer-metrics-{os.getuid()}-{tag}"
        assert any(metrics_dir.glob("*.db"))
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0
        assert not metrics_dir.exists()
    finally:
        server.stop()


@pytest.mark.server
def test_large_object_fsync_and_bytes(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "always", "--inline-threshold", "0").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="big")
        s3.put_object(Bucket="big", Key="obj", Body=b"y" * 300_000)
        samples = scrape(server)
        # A file-backed body: one fsync of the file and one of its directory.
        assert value(samples, "coffer_engine_fsync_seconds_count", kind="file") == 1
        assert value(samples, "coffer_engine_fsync_seconds_count", kind="dir") == 1
        assert value(samples, "coffer_storage_bytes") == 300_000
    finally:
        server.stop()


@pytest.mark.server
def test_metrics_disabled(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--metrics", "false").start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/_coffer/metrics")
        response = conn.getresponse()
        response.read()
        assert response.status == 404
        # Health still answers.
        conn.request("GET", "/_coffer/health")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        conn.close()
    finally:
        server.stop()
