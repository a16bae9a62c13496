"""Lifecycle worker cost on the disk engine: how fast it expires, and what its passes cost requests.

1. expire:  seeds N objects (engine API, no HTTP) under a rule that makes them all due, then times
            one worker pass over the bucket: expirations per second (unversioned bucket: each one
            a conditional delete; versioned: each one a delete marker).
2. latency: seeds M objects into a server data directory with a rule covering all of them but due
            in 100 years (nothing to do: the pass only scans), starts a real server with passes
            back to back (--lifecycle-interval 0.01), and times sequential HEAD requests over HTTP
            for --seconds, against the same server with lifecycle off. Prints p50 / p99 / p99.9 / max
            latency of both and how many versions the passes scanned meanwhile.

Results and the command: docs/benchmarks.md.

    python scripts/bench_lifecycle.py --expire 100000 --scan 1000000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coffer.config import Settings
from coffer.lifecycle.worker import LifecycleObserver, LifecycleWorker
from coffer.server.app import build_engine
from coffer.storage import lifecycle as lc
from coffer.storage.api import VERSIONING_ENABLED, Engine
from coffer.storage.disk import DiskEngine
from tests.server_process import ServerProcess

BATCH = 500


async def _body() -> AsyncIterator[bytes]:
    yield b"x" * 100


async def seed(engine: Engine, bucket: str, count: int) -> float:
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        names = (f"d{i % 16:02d}/key-{i:08d}" for i in range(first, min(count, first + BATCH)))
        await asyncio.gather(*(engine.put_object(bucket, n, _body(), headers={}) for n in names))
        if first and first % 100_000 == 0:
            print(f"  seeded {first:,} ({first / (time.perf_counter() - started):,.0f}/s)", flush=True)
    return time.perf_counter() - started


class Count(LifecycleObserver):
    def __init__(self) -> None:
        self.actions = 0

    def acted(self, action: str, count: int = 1) -> None:
        self.actions += count


async def expire(count: int, versioned: bool, fsync: bool, page: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = DiskEngine(Path(tmp) / "data", fsync=fsync)
        await engine.start()
        await engine.create_bucket("b", "owner", "us-east-1")
        if versioned:
            await engine.put_bucket_versioning("b", VERSIONING_ENABLED)
        seconds = await seed(engine, "b", count)
        print(f"seeded {count:,} objects in {seconds:.1f} s")
        rule = lc.Rule("all", True, lc.Filter(), expiration_days=1)
        await engine.put_bucket_config("b", lc.CONFIG_NAME, lc.Configuration((rule,)).to_doc())
        seen = Count()
        later = time.time() + 10 * lc.DAY
        worker = LifecycleWorker(engine, page_size=page, observer=seen, clock=lambda: later)
        started, cpu = time.perf_counter(), time.process_time()
        await worker.run_bucket("b")
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        kind = "versioned (delete markers)" if versioned else "unversioned (deletes)"
        # CPU seconds of the whole process (event loop + SQLite writer/reader threads): the figure
        # that does not depend on what else the (shared) machine runs meanwhile.
        print(
            f"expire {kind}, fsync={'always' if fsync else 'never'}, page {page}: "
            f"{seen.actions:,} expirations in {took:.2f} s = {seen.actions / took:,.0f}/s "
            f"({cpu:.2f} CPU s = {seen.actions / cpu:,.0f} per CPU second; load {os.getloadavg()[0]:.1f})"
        )
        assert seen.actions == count
        await engine.close()


def _heads(port: int, seconds: float, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        n = (i * 7919) % count  # spread over the whole bucket
        key = f"d{n % 16:02d}/key-{n:08d}"
        started = time.perf_counter()
        conn.request("HEAD", f"/b/{key}")
        reply = conn.getresponse()
        reply.read()
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status == 200, reply.status
        i += 1
    conn.close()
    return times


def _scanned(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_coffer/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    found = re.search(r"^coffer_lifecycle_scanned_total (\S+)", text, re.M)
    return float(found.group(1)) if found else 0.0


def _summary(name: str, times: list[float]) -> str:
    q = statistics.quantiles(times, n=1000)
    return (
        f"{name:<14} {len(times):>7,} HEADs  p50 {statistics.median(times):6.2f} ms  p99 {q[989]:6.2f} ms  "
        f"p99.9 {q[998]:6.2f} ms  max {max(times):7.2f} ms"
    )


def latency(count: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"

        async def prepare() -> None:
            engine = build_engine(Settings(data_dir=str(data), fsync="never"))
            await engine.start()
            await engine.create_bucket("b", "owner", "us-east-1")
            took = await seed(engine, "b", count)
            print(f"seeded {count:,} objects in {took:.1f} s")
            rule = lc.Rule("not-yet", True, lc.Filter(), expiration_days=36500)
            await engine.put_bucket_config("b", lc.CONFIG_NAME, lc.Configuration((rule,)).to_doc())
            await engine.close()

        asyncio.run(prepare())
        results = {}
        for name, flags in (("lifecycle off", ["--lifecycle", "false"]), ("passes running", [])):
            server = ServerProcess(data, "--fsync", "never", "--lifecycle-interval", "0.01", *flags).start()
            try:
                _heads(server.port, 1.0, count)  # warm up
                before = _scanned(server.port)
                results[name] = _heads(server.port, seconds, count)
                scanned = _scanned(server.port) - before
            finally:
                server.stop()
            print(_summary(name, results[name]) + (f"  ({scanned:,.0f} versions scanned meanwhile)" if scanned else ""))
        off, on = results["lifecycle off"], results["passes running"]
        print(
            f"extra latency: p50 {statistics.median(on) - statistics.median(off):+.2f} ms, "
            f"p99 {statistics.quantiles(on, n=100)[98] - statistics.quantiles(off, n=100)[98]:+.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expire", type=int, default=100_000, help="objects to expire (0: skip)")
    parser.add_argument("--scan", type=int, default=200_000, help="objects in the scanned bucket (0: skip)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of HEADs per latency run")
    parser.add_argument("--page", type=int, default=1000, help="lifecycle page size")
    args = parser.parse_args()
    if args.expire:
        for versioned in (False, True):
            for fsync in (True, False):
                asyncio.run(expire(args.expire, versioned, fsync, args.page))
    if args.scan:
        latency(args.scan, args.seconds)


if __name__ == "__main__":
    main()
