"""Object count and bytes of one bucket, for the console's bucket list.

The engines keep no per-bucket counters, so a bucket's totals are computed by listing it (1,000 keys
a page, current versions only) when the console asks, then cached per worker for a time in
proportion to what the count cost (``COST_FACTOR`` times as long, at most ``MAX_TTL``): a small
bucket's totals (counted in under ``CHEAP_SECONDS``) are always fresh, a million-key bucket is
listed at most every few minutes. One computation runs per bucket at a time; the console asks for
each bucket separately, so a large bucket never holds up the list.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from coffer.storage.api import Engine

COST_FACTOR = 100.0
MAX_TTL = 600.0
CHEAP_SECONDS = 0.05  # counts quicker than this are not cached at all
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class BucketTotals:
    objects: int
    bytes: int
    computed_at: float
    fresh_until: float


class BucketStatsCache:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[str, BucketTotals] = {}
        self._running: dict[str, asyncio.Task[BucketTotals]] = {}

    async def totals(self, bucket: str) -> BucketTotals:
        cached = self._cache.get(bucket)
        if cached is not None and time.time() < cached.fresh_until:
            return cached
        task = self._running.get(bucket)
        if task is None:
            task = self._running[bucket] = asyncio.ensure_future(self._count(bucket))
            task.add_done_callback(lambda _t: self._running.pop(bucket, None))
        totals = await asyncio.shield(task)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[bucket] = totals
        return totals

    def forget(self, bucket: str) -> None:
        self._cache.pop(bucket, None)

    async def _count(self, bucket: str) -> BucketTotals:
        objects = size = 0
        after = ""
        started = time.time()
        while True:
            page = await self._engine.list_objects(bucket, after=after, max_keys=_PAGE)
            objects += len(page.entries)
            size += sum(entry.size for entry in page.entries)
            if not page.is_truncated or page.next_marker is None:
                now = time.time()
                cost = now - started
                ttl = 0.0 if cost < CHEAP_SECONDS else min(MAX_TTL, COST_FACTOR * cost)
                return BucketTotals(objects, size, now, now + ttl)
            after = page.next_marker
