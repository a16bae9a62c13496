"""Memory engine next to the disk engine: 4 KiB PUT/GET ops/s and large PUT/GET MB/s.

Two views: over HTTP (a real server per configuration) and the engines alone
(the engine API called in-process at concurrency 32, no HTTP), which shows the
engines' own cost without the S3/HTTP path that dominates the first view.

A bounded stand-in until `coffer bench` covers engine choices: it starts one
server per configuration (tests/server_process.py), drives it over raw HTTP/1.1
keep-alive connections from asyncio (no SDK overhead in the client), and prints
a Markdown table. Every phase runs for a fixed time, so the whole run is bounded.

    .venv/bin/python scripts/bench_memory.py [--seconds 5] [--concurrency 32] [--large-mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from coffer.storage.api import Engine
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine
from tests.server_process import ServerProcess

CONFIGS: list[tuple[str, tuple[str, ...]]] = [
    ("disk, fsync always", ("--storage", "disk", "--fsync", "always")),
    ("disk, fsync never", ("--storage", "disk", "--fsync", "never")),
    ("memory", ("--storage", "memory", "--max-memory", str(2 * 1024**3))),
    (
        "memory + WAL, fsync always",
        ("--storage", "memory", "--max-memory", str(2 * 1024**3), "--memory-persistence", "true"),
    ),
    (
        "memory + WAL, fsync never",
        ("--storage", "memory", "--max-memory", str(2 * 1024**3), "--memory-persistence", "true", "--fsync", "never"),
    ),
]


ENGINES_ALONE: list[tuple[str, Callable[[Path], Engine]]] = [
    ("disk, fsync always", lambda root: DiskEngine(root, fsync=True)),
    ("disk, fsync never", lambda root: DiskEngine(root, fsync=False)),
    ("memory", lambda root: MemoryEngine(max_memory=2 * 1024**3)),
    ("memory + WAL, fsync always", lambda root: MemoryEngine(max_memory=2 * 1024**3, persistence_dir=root)),
    (
        "memory + WAL, fsync never",
        lambda root: MemoryEngine(max_memory=2 * 1024**3, persistence_dir=root, fsync=False),
    ),
]


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, int]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        return await self._response()

    async def _response(self, sink: bool = False) -> tuple[int, int]:
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        remaining = length
        while remaining:
            chunk = await self.reader.read(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("closed mid-body")
            remaining -= len(chunk)
        return status, length

    async def put_stream(self, path: str, size: int) -> int:
        self.writer.write(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode())
        block = os.urandom(1 << 20)
        sent = 0
        while sent < size:
            n = min(len(block), size - sent)
            self.writer.write(block[:n])
            await self.writer.drain()
            sent += n
        status, _ = await self._response()
        return status

    def close(self) -> None:
        self.writer.close()


async def timed_ops(port: int, concurrency: int, seconds: float, op: str, keys: int) -> float:
    body = os.urandom(4096)
    conns = [await Conn.open(port) for _ in range(concurrency)]
    done = 0
    stop = time.monotonic() + seconds

    async def worker(i: int, conn: Conn) -> None:
        nonlocal done
        n = i
        while time.monotonic() < stop:
            key = f"/bench/small-{n % keys:05d}"
            status, _ = await (conn.request("PUT", key, body) if op == "PUT" else conn.request("GET", key))
            if status != 200:
                raise RuntimeError(f"{op} {key}: HTTP {status}")
            done += 1
            n += concurrency

    started = time.monotonic()
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    elapsed = time.monotonic() - started
    for c in conns:
        c.close()
    return done / elapsed


async def large(port: int, size: int, proc: psutil.Process) -> tuple[float, float, float]:
    conn = await Conn.open(port)
    rss_before = proc.memory_info().rss
    peak = rss_before
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    status = await conn.put_stream("/bench/large", size)
    put_s = time.monotonic() - started
    running = False
    await sampler
    if status != 200:
        raise RuntimeError(f"large PUT: HTTP {status}")
    started = time.monotonic()
    status, length = await conn.request("GET", "/bench/large")
    get_s = time.monotonic() - started
    conn.close()
    if status != 200 or length != size:
        raise RuntimeError(f"large GET: HTTP {status}, {length} bytes")
    mb = size / 1e6
    return mb / put_s, mb / get_s, (peak - rss_before) / 2**20


async def bench_one(port: int, args: argparse.Namespace, proc: psutil.Process) -> dict[str, float]:
    conn = await Conn.open(port)
    await conn.request("PUT", "/bench")
    conn.close()
    put = await timed_ops(port, args.concurrency, args.seconds, "PUT", args.keys)
    get = await timed_ops(port, args.concurrency, args.seconds, "GET", args.keys)
    put_mbs, get_mbs, growth = await large(port, args.large_mib * 2**20, proc)
    return {"put": put, "get": get, "put_mbs": put_mbs, "get_mbs": get_mbs, "growth": growth}


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def engine_alone(engine: Engine, seconds: float, concurrency: int, keys: int) -> tuple[float, float]:
    await engine.start()
    try:
        await engine.create_bucket("bench", "owner", "us-east-1")
        body = os.urandom(4096)

        async def run(op: str) -> float:
            done = 0
            stop = time.monotonic() + seconds

            async def worker(i: int) -> None:
                nonlocal done
                n = i
                while time.monotonic() < stop:
                    key = f"small-{n % keys:05d}"
                    if op == "PUT":
                        await engine.put_object("bench", key, _one(body), headers={}, checksum_algorithms=("CRC32",))
                    else:
                        opened = await engine.open_object("bench", key)
                        async for _chunk in opened.stream():
                            pass
                    done += 1
                    n += concurrency

            started = time.monotonic()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            return done / (time.monotonic() - started)

        return await run("PUT"), await run("GET")
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each small-object phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1000, help="distinct 4 KiB keys written and read")
    parser.add_argument("--large-mib", type=int, default=256)
    args = parser.parse_args()
    print(f"Engines alone (in-process, concurrency {args.concurrency}, 4 KiB, CRC32):\n")
    print("| engine | PUT ops/s | GET ops/s |")
    print("|---|---:|---:|")
    for name, make in ENGINES_ALONE:
        with tempfile.TemporaryDirectory() as tmp:
            put, get = asyncio.run(engine_alone(make(Path(tmp)), args.seconds, args.concurrency, args.keys))
        print(f"| {name} | {put:.0f} | {get:.0f} |", flush=True)
    print(f"\nOver HTTP (one server per row, raw HTTP/1.1 client, concurrency {args.concurrency}):\n")
    rows = []
    for name, flags in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            server = ServerProcess(Path(tmp) / "data", *flags).start()
            try:
                assert server.proc is not None
                result = asyncio.run(bench_one(server.port, args, psutil.Process(server.proc.pid)))
            finally:
                server.stop()
        rows.append((name, result))
        print(f"{name}: {result}", file=sys.stderr, flush=True)
    print(f"| engine | 4 KiB PUT ops/s | 4 KiB GET ops/s | {args.large_mib} MiB PUT MB/s | "
          f"{args.large_mib} MiB GET MB/s | RSS growth during large PUT (MiB) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['put']:.0f} | {r['get']:.0f} | {r['put_mbs']:.0f} | {r['get_mbs']:.0f} | "
              f"{r['growth']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
