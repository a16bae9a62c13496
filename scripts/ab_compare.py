"""A/B-compare server variants side by side: 4 KiB GET/PUT ops/s or 256 MiB GET/PUT MB/s.

Each variant is a Coffer server started with extra environment variables (for
example a setting such as COFFER_READ_CACHE_BYTES=0), or "bare" for the bare
ASGI app; all run at once and each round measures every variant in turn, so
a noisy machine moves them together. Prints the median per variant and, with
"bare" among them, each as a share of the bare app.

    .venv/bin/python scripts/ab_compare.py small \
        '{"bare": {}, "cache": {}, "nocache": {"COFFER_READ_CACHE_BYTES": "0"}}' 5
    .venv/bin/python scripts/ab_compare.py large '{"bare": {}, "coffer": {}}' 8

Two versions of the code: check the old one out in a worktree and point a
variant's PYTHONPATH at it (it then imports that tree's coffer package):

    git worktree add --detach /tmp/base <commit>
    .venv/bin/python scripts/ab_compare.py smallput '{"base": {"PYTHONPATH": "/tmp/base"}, "new": {}}' 5

A variant with {"AB_VERSIONING": "Enabled"} runs against a bucket with versioning enabled
(every PUT adds a version):

    .venv/bin/python scripts/ab_compare.py smallput '{"plain": {}, "versioned": {"AB_VERSIONING": "Enabled"}}' 5

Phases: small (GET), smallput, large (GET), largeput; "bare" takes part in GET phases only.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from coffer.bench.client import BlockingConn, Endpoint, run_load
from coffer.bench.phases import _large_body
from coffer.bench.servers import free_port

LARGE = 256 << 20
KEYS = int(os.environ.get("AB_KEYS", "128"))


def start(name: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Endpoint]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(extra_env)
    if name == "bare":
        cmd = [sys.executable, "-m", "uvicorn", "coffer.bench.bare:app", "--port", str(port)]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    else:
        cmd = [sys.executable, "-m", "coffer", "serve", "--port", str(port), "--data-dir", tempfile.mkdtemp()]
        cmd += ["--log-level", "warning", "--fsync", "never"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = Endpoint("127.0.0.1", port)
    for _ in range(200):
        try:
            conn = BlockingConn(endpoint)
            conn.request("PUT", "/bench")
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"{name} did not start")
    if name != "bare":
        status = extra_env.get("AB_VERSIONING")
        if status:
            config = f"<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>"
            conn.request("PUT", "/bench?versioning", body=config.encode())
        body = os.urandom(4096)
        for i in range(KEYS):
            conn.request("PUT", f"/bench/g/{i}", body=body)
        conn.request("PUT", "/bench/big", body_source=_large_body(LARGE), length=LARGE)
    conn.close()
    return proc, endpoint


def small(name: str, endpoint: Endpoint) -> float:
    requests = [b"GET /bench/g/%d HTTP/1.1\r\n%s\r\n" % (i, endpoint.headers) for i in range(KEYS)]
    result = run_load(endpoint, lambda _c, seq: requests[seq % KEYS], connections=32, warmup=0.3, duration=2)
    return result.rate


_SMALL_BODY = os.urandom(4096)


def smallput(name: str, endpoint: Endpoint) -> float:
    tail = b" HTTP/1.1\r\n" + endpoint.headers + b"Content-Length: 4096\r\n\r\n" + _SMALL_BODY
    result = run_load(endpoint, lambda _c, seq: b"PUT /bench/p/%d" % seq + tail, connections=32, warmup=0.3, duration=2)
    return result.rate


def largeput(name: str, endpoint: Endpoint) -> float:
    conn = BlockingConn(endpoint)
    try:
        started = time.perf_counter()
        status, body, _ = conn.request("PUT", "/bench/bigput", body_source=_large_body(LARGE), length=LARGE)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"{name}: PUT answered {status}: {body[:200]!r}")
    return LARGE / elapsed / 1e6


def large(name: str, endpoint: Endpoint) -> float:
    path = f"/bench/big?bytes={LARGE}" if name == "bare" else "/bench/big"
    conn = BlockingConn(endpoint)
    try:
        started = time.perf_counter()
        status, _, length = conn.request("GET", path, sink=True)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if status != 200 or length != LARGE:
        raise RuntimeError(f"{name}: GET answered {status} with {length} bytes")
    return LARGE / elapsed / 1e6


def main() -> None:
    phase, variants, rounds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 5
    measure = {"small": small, "smallput": smallput, "large": large, "largeput": largeput}[phase]
    servers = {name: start(name, env) for name, env in variants.items()}
    results: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(rounds):
            for name, (_proc, endpoint) in servers.items():
                results[name].append(measure(name, endpoint))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    unit = "ops/s" if phase.startswith("small") else "MB/s"
    for name, values in results.items():
        print(f"{name:12s} median {statistics.median(values):8.0f} {unit}  all {[round(v) for v in values]}")
    if "bare" in results:
        bare = statistics.median(results["bare"])
        for name, values in results.items():
            print(f"{name:12s} {100 * statistics.median(values) / bare:5.1f}% of bare")


if __name__ == "__main__":
    main()
