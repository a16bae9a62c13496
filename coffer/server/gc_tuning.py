"""The cyclic garbage collector tuned for a serving process (docs/benchmarks.md, "Garbage collection").

With CPython's defaults a 4 KiB PUT paid ~10 µs of collections (gc.callbacks, 40,000 PUTs): ~2,200 young
collections of ~80 µs each and a full collection of 10-14 ms every ~2,000 requests, which walked every
object the imports and start-up made and stalled whatever request was running. After start-up the
process freezes what exists (those objects live as long as the process; the collector never walks
them again) and collects the young generation every 10,000 net allocations instead of 700: requests'
objects mostly die by reference counting, a few cycles (exceptions with tracebacks, futures) wait a
little longer. Only the server's worker processes do this, never an embedding process (tests, the
pytest plugin), whose objects are not ours to freeze.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> None:
    gc.collect()  # garbage made at start-up is freed, not frozen
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
