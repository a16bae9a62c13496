"""kill -9 the server while it writes, restart it on the same data, check what survived.

Promises under test (fsync: always): every PUT that was answered 200 is there,
byte for byte, after a restart; nothing partially written is ever visible; the
temporary directory is empty after a restart; unreferenced blob files are swept.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coffer.storage.disk import DiskEngine
from tests.server_process import ServerProcess

BUCKET = "crash"


@pytest.fixture
def crashable(data_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, "--fsync", "always").start()
    yield server
    server.stop()


def put(server: ServerProcess, key: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("PUT", f"/{BUCKET}/{key}" if key else f"/{BUCKET}", body=body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def get(server: ServerProcess, key: str) -> bytes | None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", f"/{BUCKET}/{key}")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status == 404:
        return None
    assert resp.status == 200, body
    return body


def listed_keys(server: ServerProcess) -> list[str]:
    client = server.client()
    return [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def wait_for(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_kill_mid_large_upload(crashable: ServerProcess) -> None:
    server = crashable
    assert put(server, "", b"") == 200
    previous = os.urandom(3 * 1024 * 1024)
    assert put(server, "big", previous) == 200

    total = 48 * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    tmp_dir = server.data_dir / "tmp"
    for key in ("big", "big-new"):  # overwriting an object, and creating one
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.putrequest("PUT", f"/{BUCKET}/{key}")
        conn.putheader("Content-Length", str(total))
        conn.endheaders()
        for _ in range(20):
            conn.send(piece)
        # The server is writing the body to its temp file: crash now.
        assert wait_for(lambda: any(p.stat().st_size >= 8 * 1024 * 1024 for p in files_under(tmp_dir)))
        server.kill9()
        conn.close()
        assert files_under(tmp_dir)  # the crash left a partial body behind

        server.start()
        assert files_under(tmp_dir) == []  # cleared at start
        assert get(server, "big") == previous  # the acknowledged version, whole
        assert get(server, "big-new") is None  # the partial one is nowhere
        assert listed_keys(server) == ["big"]


_DEFAULT_SSE = (
    b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
    b"<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
    b"</ServerSideEncryptionConfiguration>"
)


@pytest.mark.parametrize(("rounds", "encrypted"), [(2, False), (1, True)], ids=["plain", "encrypted"])
def test_kill_mid_batch_of_small_puts(crashable: ServerProcess, rounds: int, encrypted: bool) -> None:
    server = crashable
    assert put(server, "", b"") == 200
    if encrypted:  # bucket default encryption: every write below is encrypted (SSE-S3)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("PUT", f"/{BUCKET}?encryption", body=_DEFAULT_SSE)
        assert conn.getresponse().status == 200
        conn.close()
    acked: dict[str, bytes] = {}
    attempted: dict[str, list[bytes]] = {}
    for round_ in range(rounds):
        crash_batch(server, f"r{round_}", acked, attempted)
        server.start()
        assert files_under(server.data_dir / "tmp") == []
        keys = listed_keys(server)
        assert set(keys) <= set(attempted)  # nothing appears that was never written
        assert {k for k in acked if not k.endswith("shared")} <= set(keys)  # nothing acknowledged is lost
        for key in keys:
            body = get(server, key)
            if key in acked and not key.endswith("shared"):
                assert body == acked[key]  # byte-identical
            else:
                # Unacknowledged, or raced by several writers: one whole body, never a partial one.
                assert body in attempted[key]


def crash_batch(server: ServerProcess, prefix: str, acked: dict[str, bytes], attempted: dict[str, list[bytes]]) -> None:
    """Many threads PUT small objects; kill -9 the server while they are at it."""
    lock = threading.Lock()
    stop = threading.Event()
    answered = [0]

    def writer(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        n = 0
        while not stop.is_set():
            # Distinct keys, a few overwrites of one shared key, sizes on both sides of the inline threshold.
            key = f"{prefix}/shared" if n % 7 == 3 else f"{prefix}/w{worker:02d}/k{n:05d}"
            body = os.urandom((n * 7919 + worker * 104729) % 150_000)
            with lock:
                attempted.setdefault(key, []).append(body)
            try:
                conn.request("PUT", f"/{BUCKET}/{key}", body=body)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            if resp.status == 200:
                with lock:
                    acked[key] = body
                    answered[0] += 1
            n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: answered[0] >= 150, timeout=60)
        server.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    sent = sum(len(v) for k, v in attempted.items() if k.startswith(prefix + "/"))
    assert sent > answered[0]  # some writes were cut off by the crash


def test_orphan_sweep(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path / "d", fsync=False, inline_threshold=1024)
        await engine.start()
        try:
            await engine.create_bucket("b", "owner", "us-east-1")

            async def body(data: bytes):  # type: ignore[no-untyped-def]
                yield data

            kept = os.urandom(10_000)
            await engine.put_object("b", "file", body(kept), headers={})
            await engine.put_object("b", "inline", body(b"tiny"), headers={})
            referenced = files_under(tmp_path / "d" / "blobs")
            assert len(referenced) == 1
            # What a crash between publishing a body and committing its row leaves behind.
            orphans = []
            for name in (hashlib.md5(str(i).encode()).hexdigest() for i in range(3)):
                path = tmp_path / "d" / "blobs" / name[:2] / name
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(b"orphan")
                orphans.append(path)
            assert engine.sweep_orphans(3600) == 0  # too young: might be a write in progress
            assert engine.sweep_orphans(0) == 3
            assert files_under(tmp_path / "d" / "blobs") == referenced
            opened = await engine.open_object("b", "file")
            assert b"".join([p async for p in opened.stream()]) == kept
            assert engine.sweep_orphans(0) == 0
        finally:
            await engine.close()

    asyncio.run(scenario())


@pytest.mark.server
def test_rolling_restart_keeps_uploads_in_flight(data_dir: Path) -> None:
    """With several workers, a replacement worker starting up must not take other workers' temp files."""
    import signal

    import psutil

    server = ServerProcess(data_dir, "--workers", "2", "--fsync", "never").start()
    try:
        assert put(server, "", b"") == 200
        supervisor = psutil.Process(server.proc.pid)  # type: ignore[union-attr]

        def workers() -> set[int]:
            return {
                c.pid for c in supervisor.children() if any(f.path.endswith("metadata.sqlite3") for f in _open_files(c))
            }

        assert wait_for(lambda: len(workers()) == 2)
        before = workers()
        data = os.urandom(8 * 1024 * 1024)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.putrequest("PUT", f"/{BUCKET}/in-flight")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        conn.send(data[: len(data) // 2])
        assert wait_for(lambda: bool(files_under(server.data_dir / "tmp")))
        supervisor.send_signal(signal.SIGHUP)  # uvicorn replaces its workers one by one
        # A replacement is serving (its engine has started) while our upload is half done.
        assert wait_for(lambda: bool(workers() - before))
        conn.send(data[len(data) // 2 :])
        resp = conn.getresponse()
        assert (resp.status, resp.read()[:300]) == (200, b"")
        conn.close()
        assert get(server, "in-flight") == data
    finally:
        server.stop()


def _open_files(proc):  # type: ignore[no-untyped-def]
    import psutil

    try:
        return proc.open_files()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
