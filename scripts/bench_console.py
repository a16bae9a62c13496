"""How fast the web console's bucket browser renders a 1,000-key page of a very large bucket.

Seeds a bucket of N empty objects through the disk engine's API (HTTP seeding of a million keys
would take longer than the measurement deserves), starts ``coffer serve`` on that data directory,
signs in to the console in headless Chromium (Debian's ``chromium`` through Playwright) and opens
the bucket. For each page it reads what the page itself measured (``window.cofferLastPage``:
from the ListObjectsV2 request to the rows laid out) and prints the median and worst of the first
page, the following pages (Next), and a page deep in the bucket reached by the prefix filter.

    python scripts/bench_console.py --keys 1000000

Results and the command: docs/benchmarks.md ("Web console").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coffer.server.auth import DEFAULT_OWNER
from coffer.storage.disk import DiskEngine
from tests.console_browser import launch, why_unavailable
from tests.server_process import ServerProcess

BUCKET = "big"


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def seed(data_dir: Path, keys: int) -> float:
    started = time.perf_counter()
    engine = DiskEngine(data_dir, fsync=False)
    await engine.start()
    try:
        # Owned by the open-mode owner: the server below runs without credentials.
        await engine.create_bucket(BUCKET, DEFAULT_OWNER.id, "us-east-1")
        for first in range(0, keys, 1000):
            await asyncio.gather(
                *(
                    engine.put_object(BUCKET, f"photos/img-{i:08d}.jpg", _empty(), headers={})
                    for i in range(first, min(first + 1000, keys))
                )
            )
            if first and first % 100_000 == 0:
                print(f"  seeded {first:,} keys ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        await engine.close()
    return time.perf_counter() - started


def measure(endpoint: str, keys: int, pages: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {"first": [], "next": [], "deep": [], "fetch": [], "build": []}
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(endpoint + "/_coffer/console/")
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#login-ak", "bench")
        page.fill("#login-sk", "bench")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#view-buckets:not([hidden])")

        def last() -> dict[str, float]:
            """What the page measured for the page it rendered after the last reset()."""
            while True:
                found = page.evaluate("window.cofferLastPage")
                if found and found["rows"] >= 1000:
                    return dict(found)
                page.wait_for_timeout(5)

        def reset() -> None:
            page.evaluate("window.cofferLastPage = null")

        for _ in range(3):  # the first page, opened afresh each time
            page.goto(endpoint + "/_coffer/console/#/buckets")
            page.wait_for_selector(f"#bucket-table tr[data-bucket={BUCKET}]")
            page.click(f"#bucket-table a:has-text('{BUCKET}')")
            page.wait_for_selector("#object-table a.folder")
            reset()
            page.click("#object-table a.folder")
            results["first"].append(last()["totalMs"])
        for _ in range(pages):
            reset()
            page.click("#next-page")
            measured = last()
            results["next"].append(measured["totalMs"])
            results["fetch"].append(measured["fetchMs"])
            results["build"].append(measured["buildMs"])
        for n in (keys // 2, keys - 2000):  # jump deep through the filter: the middle and the end
            page.fill("#filter", f"img-{n // 1000:05d}")
            reset()
            page.press("#filter", "Enter")
            results["deep"].append(last()["totalMs"])
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--dir", help="keep the seeded data here (reused when it exists)")
    args = parser.parse_args()
    reason = why_unavailable()
    if reason:
        sys.exit(reason)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="coffer-console-bench-"))
    data = root / "data"
    if not data.exists():
        print(f"seeding {args.keys:,} keys in {data} ...", flush=True)
        print(f"seeded in {asyncio.run(seed(data, args.keys)):.0f} s", flush=True)
    server = ServerProcess(data, "--auth", "off").start()
    try:
        results = measure(server.endpoint, args.keys, args.pages)
    finally:
        server.stop()
    print(f"bucket of {args.keys:,} keys, pages of 1,000 keys, disk engine, headless Chromium")
    for name, label in (
        ("first", "first page (bucket opened)"),
        ("next", f"next page x{args.pages}"),
        ("fetch", "  of which ListObjectsV2"),
        ("build", "  of which building the rows"),
        ("deep", "deep page via prefix filter"),
    ):
        values = results[name]
        print(f"  {label:32s} median {statistics.median(values):6.1f} ms   worst {max(values):6.1f} ms")


if __name__ == "__main__":
    main()
