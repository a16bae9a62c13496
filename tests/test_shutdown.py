"""Graceful shutdown: SIGTERM during uploads. Every acknowledged upload is intact after a
restart, nothing unacknowledged is visible, and the process exits 0."""

from __future__ import annotations

import hashlib
import http.client
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.server_process import ServerProcess


def body_for(key: str, size: int) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Uploader(threading.Thread):
    """PUTs keys one after another until the server stops answering; records what was acknowledged."""

    def __init__(self, port: int, name: str, size: int, chunk: int, pause: float, limit: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.prefix = name
        self.size = size
        self.chunk = chunk
        self.pause = pause
        self.limit = limit
        self.attempted: list[str] = []
        self.acked: list[str] = []
        self.spans: dict[str, tuple[float, float]] = {}  # acknowledged key -> (start, end), monotonic
        self.started_one = threading.Event()

    def run(self) -> None:
        for i in range(self.limit):
            key = f"{self.prefix}/{i:04d}"
            data = body_for(key, self.size)
            self.attempted.append(key)
            began = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.putrequest("PUT", f"/graceful/{key}")
                conn.putheader("Content-Length", str(len(data)))
                conn.endheaders()
                self.started_one.set()
                for at in range(0, len(data), self.chunk):
                    conn.send(data[at : at + self.chunk])
                    if self.pause:
                        time.sleep(self.pause)
                response = conn.getresponse()
                response.read()
                conn.close()
            except OSError:
                return  # refused or reset: the server is going away
            if response.status != 200:
                return
            self.acked.append(key)
            self.spans[key] = (began, time.monotonic())


def run_sigterm_during_uploads(
    tmp_path: Path, shutdown_timeout: int, slow_pause: float
) -> tuple[list[Uploader], float]:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, "--fsync", "always", "--shutdown-timeout", str(shutdown_timeout)).start()
    server.client().create_bucket(Bucket="graceful")
    fast = [Uploader(server.port, f"fast{n}", 150_000, 1 << 20, 0.0, 400) for n in range(4)]
    # Slow uploads: 20 chunks of 16 KiB with a pause after each, so some are mid-body at SIGTERM.
    slow = [Uploader(server.port, f"slow{n}", 320_000, 16_384, slow_pause, 50) for n in range(3)]
    threads = fast + slow
    for t in threads:
        t.start()
    for t in slow:
        assert t.started_one.wait(30)
    time.sleep(0.8)
    assert server.proc is not None
    sigterm_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    returncode = server.proc.wait(120)
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    assert returncode == 0, server.log()

    restarted = ServerProcess(data_dir, "--fsync", "always")
    restarted.port = server.port
    restarted.start()
    try:
        s3 = restarted.client()
        visible: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="graceful"):
            visible |= {o["Key"] for o in page.get("Contents", [])}
        acked = [k for t in threads for k in t.acked]
        assert acked, "no upload finished before SIGTERM"
        for key in acked:
            size = 150_000 if key.startswith("fast") else 320_000
            assert s3.get_object(Bucket="graceful", Key=key)["Body"].read() == body_for(key, size), key
        # Unacknowledged uploads (refused, reset or cancelled) left nothing visible.
        assert visible == set(acked), f"visible but not acknowledged: {sorted(visible - set(acked))}"
        return threads, sigterm_at
    finally:
        restarted.stop()


@pytest.mark.server
def test_sigterm_lets_in_flight_uploads_finish(tmp_path: Path) -> None:
    threads, sigterm_at = run_sigterm_during_uploads(tmp_path, shutdown_timeout=30, slow_pause=0.02)
    # Uploads that were mid-body when SIGTERM arrived were allowed to finish and were acknowledged.
    straddling = [k for t in threads for k, (b, e) in t.spans.items() if b < sigterm_at < e]
    assert straddling


@pytest.mark.server
def test_sigterm_timeout_cancels_slow_uploads_cleanly(tmp_path: Path) -> None:
    # Each slow upload needs ~20 s, far beyond the 1 s grace: it is cancelled, and nothing of it remains.
    threads, _ = run_sigterm_during_uploads(tmp_path, shutdown_timeout=1, slow_pause=1.0)
    slow = [t for t in threads if t.prefix.startswith("slow")]
    assert all(t.attempted and not t.acked for t in slow)


@pytest.mark.server
def test_sigint_exits_zero_and_store_reopens(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    s3 = server.client()
    s3.create_bucket(Bucket="interrupted")
    s3.put_object(Bucket="interrupted", Key="k", Body=b"kept")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(60) == 0
    assert "Traceback" not in server.log()
    again = ServerProcess(tmp_path / "data").start()
    try:
        assert again.client().get_object(Bucket="interrupted", Key="k")["Body"].read() == b"kept"
    finally:
        again.stop()
