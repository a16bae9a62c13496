"""The measurements. Each phase takes a running server and returns its figures.

Requests are unsigned: the servers run without credentials.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from coffer.bench.client import BlockingConn, run_load
from coffer.bench.servers import RssSampler, Server

BUCKET = "bench"
LIST_BUCKET = "bench-list"
SMALL = 4096
MB = 1_000_000
MIB = 1 << 20
PREFIXES = 10  # the delimiter listing folds every listed key into this many CommonPrefixes

_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNCATED = re.compile(rb"<IsTruncated>true</IsTruncated>")


@dataclass(frozen=True)
class Sizes:
    warmup: float  # seconds of load before a small-object phase starts counting
    duration: float  # seconds a small-object phase counts
    large: int  # bytes of the large object
    list_keys: int  # objects listed page by page
    get_keys: int  # distinct objects the small GET phase cycles over
    repeats: int  # large transfers and restarts are repeated, best (or median) kept
    list_timeout: float  # a listing slower than this stops and is extrapolated
    connections: int = 32
    rounds: int = 1  # the PUT/GET phases take turns this many times (median kept)


FULL = Sizes(
    warmup=1.0, duration=5.0, large=256 * MIB, list_keys=100_000, get_keys=1024, repeats=2, list_timeout=300,
    rounds=3,
)  # fmt: skip
QUICK = Sizes(warmup=0.2, duration=1.0, large=16 * MIB, list_keys=2000, get_keys=128, repeats=1, list_timeout=60)

Figures = dict[str, float | int | str | None]
Log = Callable[[str], None]


def _headers(server: Server) -> bytes:
    return server.endpoint.headers


def ensure_buckets(server: Server) -> None:
    if not server.spec.s3:
        return
    conn = BlockingConn(server.endpoint)
    try:
        for name in (BUCKET, LIST_BUCKET):
            status, body, _ = conn.request("PUT", f"/{name}")
            if status not in (200, 409):
                raise RuntimeError(f"{server.spec.label}: CreateBucket {name} answered {status}: {body[:300]!r}")
    finally:
        conn.close()


def _put_request(headers: bytes, bucket: str, key: str, body: bytes) -> bytes:
    head = f"PUT /{bucket}/{quote(key)} HTTP/1.1\r\n".encode() + headers
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def seed(server: Server, bucket: str, count: int, key_of: Callable[[int], str], body: bytes, connections: int) -> float:
    """PUT ``count`` objects concurrently; returns objects per second."""
    headers = _headers(server)
    result = run_load(
        server.endpoint,
        lambda _c, seq: _put_request(headers, bucket, key_of(seq), body),
        connections=connections,
        total=count,
    )
    if result.errors:
        raise RuntimeError(f"{server.spec.label}: {result.errors} seeding PUTs failed {result.statuses}")
    return result.rate


# ---------------------------------------------------------------------- small objects


def small_put(server: Server, sizes: Sizes, log: Log, size: int = SMALL) -> Figures:
    body = os.urandom(size)
    prefix = f"PUT /{BUCKET}/p{size}/".encode()
    tail = b" HTTP/1.1\r\n" + _headers(server) + b"Content-Length: %d\r\n\r\n" % size + body
    result = run_load(
        server.endpoint,
        lambda conn, seq: prefix + b"%d" % seq + tail,
        connections=sizes.connections,
        warmup=sizes.warmup,
        duration=sizes.duration,
    )
    return {"ops": result.rate, "errors": result.errors}


def small_get(server: Server, sizes: Sizes, log: Log, size: int = SMALL) -> Figures:
    headers = _headers(server)
    count = sizes.get_keys
    if server.spec.s3:
        seed(server, BUCKET, count, lambda i: f"g{size}/{i}", os.urandom(size), sizes.connections)
    requests = [b"GET /%s/g%d/%d HTTP/1.1\r\n%s\r\n" % (BUCKET.encode(), size, i, headers) for i in range(count)]
    result = run_load(
        server.endpoint,
        lambda conn, seq: requests[seq % count],
        connections=sizes.connections,
        warmup=sizes.warmup,
        duration=sizes.duration,
    )
    return {"ops": result.rate, "errors": result.errors}


# ---------------------------------------------------------------------- large objects

_PATTERN: bytes | None = None


def _pattern() -> bytes:
    global _PATTERN
    if _PATTERN is None:
        _PATTERN = os.urandom(16 * MIB)
    return _PATTERN


def _large_body(size: int) -> Callable[[], list[memoryview]]:
    def pieces() -> list[memoryview]:
        view = memoryview(_pattern())
        out = []
        left = size
        while left > 0:
            piece = view[: min(left, len(view))]
            out.append(piece)
            left -= len(piece)
        return out

    return pieces


def large_put(server: Server, sizes: Sizes, log: Log) -> Figures:
    size = sizes.large
    best = 0.0
    conn = BlockingConn(server.endpoint)
    with RssSampler(server) as rss:
        try:
            for _ in range(sizes.repeats):
                started = time.perf_counter()
                status, body, _ = conn.request("PUT", f"/{BUCKET}/big", body_source=_large_body(size), length=size)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"{server.spec.label}: large PUT answered {status}: {body[:300]!r}")
                best = max(best, size / elapsed / MB)
        finally:
            conn.close()
    figures: Figures = {"mbps": best}
    if rss.baseline is not None and rss.peak is not None:
        figures["rss_peak_mib"] = rss.peak / MIB
        figures["rss_growth_mib"] = (rss.peak - rss.baseline) / MIB
    return figures


def large_get(server: Server, sizes: Sizes, log: Log) -> Figures:
    size = sizes.large
    path = f"/{BUCKET}/big" if server.spec.s3 else f"/{BUCKET}/big?bytes={size}"
    best = 0.0
    conn = BlockingConn(server.endpoint)
    try:
        for _ in range(sizes.repeats):
            started = time.perf_counter()
            status, _, length = conn.request("GET", path, sink=True)
            elapsed = time.perf_counter() - started
            if status != 200 or length != size:
                raise RuntimeError(f"{server.spec.label}: large GET answered {status} with {length} bytes")
            best = max(best, size / elapsed / MB)
    finally:
        conn.close()
    return {"mbps": best}


# ---------------------------------------------------------------------- listing


def list_key(i: int) -> str:
    return f"d{i % PREFIXES}/k{i:06d}"


def listing(server: Server, sizes: Sizes, log: Log) -> Figures:
    """Seed ``list_keys`` empty objects, then list them all, 1000 keys a page."""
    count = sizes.list_keys
    started = time.perf_counter()
    seed_rate = seed(server, LIST_BUCKET, count, list_key, b"", sizes.connections)
    log(f"    seeded {count} keys in {time.perf_counter() - started:.1f}s ({seed_rate:.0f}/s)")
    conn = BlockingConn(server.endpoint)
    pages: list[float] = []
    keys = 0
    token: bytes | None = None
    started = time.perf_counter()
    complete = True
    try:
        while True:
            path = f"/{LIST_BUCKET}?list-type=2&max-keys=1000"
            if token is not None:
                path += "&continuation-token=" + quote(token.decode(), safe="")
            t0 = time.perf_counter()
            status, body, _ = conn.request("GET", path)
            pages.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{server.spec.label}: ListObjectsV2 answered {status}: {body[:300]!r}")
            keys += body.count(b"<Key>")
            if not _TRUNCATED.search(body):
                break
            match = _TOKEN.search(body)
            if match is None:
                raise RuntimeError(f"{server.spec.label}: truncated page without NextContinuationToken")
            token = match.group(1)
            if time.perf_counter() - started > sizes.list_timeout:
                complete = False
                break
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    figures: Figures = {
        "seconds": elapsed if complete else elapsed * count / max(keys, 1),
        "complete": "yes" if complete else f"no: {keys} keys in {elapsed:.0f}s, extrapolated",
        "keys": keys,
        "pages": len(pages),
        "page_ms": statistics.median(pages) * 1000,
        "seed_rate": seed_rate,
    }
    if complete and keys != count:
        raise RuntimeError(f"{server.spec.label}: listed {keys} keys, expected {count}")
    return figures


def delimiter_listing(server: Server, sizes: Sizes, log: Log) -> Figures:
    """One ListObjectsV2 with delimiter '/' that folds every key into 10 CommonPrefixes."""
    conn = BlockingConn(server.endpoint)
    times = []
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            status, body, _ = conn.request("GET", f"/{LIST_BUCKET}?list-type=2&delimiter=%2F")
            times.append(time.perf_counter() - t0)
            found = body.count(b"<CommonPrefixes>")
            if status != 200 or found != PREFIXES:
                raise RuntimeError(f"{server.spec.label}: delimiter listing: {status}, {found} prefixes")
    finally:
        conn.close()
    return {"ms": statistics.median(times) * 1000}


# ---------------------------------------------------------------------- restart


def restart(server: Server, sizes: Sizes, log: Log) -> Figures:
    """Stop the server, start it again: seconds from process start to the first answered GET."""
    probe = f"/{BUCKET}/restart-probe"
    conn = BlockingConn(server.endpoint)
    status, _, _ = conn.request("PUT", probe, body=b"probe")
    conn.close()
    if status != 200:
        raise RuntimeError(f"{server.spec.label}: probe PUT answered {status}")
    times = []
    for _ in range(max(3, sizes.repeats)):
        server.stop()
        started = time.perf_counter()
        server.start_process()
        server.wait_ready(60, probe)
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "best": min(times)}
