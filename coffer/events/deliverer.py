"""The delivery process: one per data directory, started by a server worker (supervisor.py).

Requests only append their events to the queue (queue.py); this process reads every worker's
segments as they grow (reader.py), sends the records to their targets (delivery.py: batches,
retries, back-off, dead letters), records what was delivered, and writes its counts for the
server's /metrics (stats.py). Moving that work out of the request-serving processes gives their
event loops the time back (docs/benchmarks.md, "Event notifications").

One at a time: it holds ``<events>/delivery.lease`` while it lives (a second one exits at once).
It exits when the worker that started it goes (however it goes: ``PR_SET_PDEATHSIG``, and its
parent id is checked), and on SIGTERM, leaving what it has not delivered for the next one.

    python -m coffer.events.deliverer     (configured by the COFFER_DELIVERER environment variable)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from coffer.events.delivery import DeadLetters, Dispatcher
from coffer.events.reader import SegmentReader
from coffer.events.stats import DeliveryStats
from coffer.events.targets import parse_targets
from coffer.lifecycle.lease import FileLease

log = logging.getLogger("coffer.events")

ENV = "COFFER_DELIVERER"
LEASE_FILE = "delivery.lease"
JOB = "delivers event notifications"
POLL_MIN = 0.01  # seconds to the next read of the segments after one that found events (half a ``linger``)
POLL_IDLE = 0.1  # ... at most while reads find nothing (doubling up from POLL_MIN)
POLL_BUSY = 0.25  # ... at most while reads keep finding events (doubling up from POLL_MIN: ``next_delay``)
NICE = 10  # the delivery process's niceness (``_yield_to_requests``)
STATS_SECONDS = 0.5  # the counts file is replaced at most this often
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class DelivererConfig:
    directory: str  # <store>/events
    targets: dict[str, dict[str, Any]]  # as parse_targets reads them
    region: str
    parent: int  # the worker that started it
    log: dict[str, str] = field(default_factory=dict)  # log_level, log_file, log_format

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DelivererConfig:
        return cls(**json.loads(text))


async def serve(config: DelivererConfig) -> None:
    """Deliver until SIGTERM or the parent is gone."""
    directory = Path(config.directory)
    reader = SegmentReader(directory)
    stats = DeliveryStats()
    dead = DeadLetters(directory, config.region)
    dispatcher = Dispatcher(parse_targets(config.targets), reader, dead, config.region, stats)
    dispatcher.start()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    delay, found_before, written = POLL_MIN, False, 0.0
    try:
        while not stopping.is_set() and os.getppid() == config.parent:
            try:
                # Back-pressure: while every target is as far behind as its queue_limit, entries wait
                # in the queue on disk (read later), not in memory, and are not dead-lettered.
                room = dispatcher.room()
                owed = reader.poll(room) if room > 0 else []
            except OSError as exc:
                log.warning("event queue: cannot read the segments: %s", exc)
                owed = []
            for delivery in owed:
                dispatcher.submit(delivery)
            now = time.monotonic()
            if stats.changed and now - written >= STATS_SECONDS:
                stats.write(directory)
                written = now
            delay = next_delay(delay, bool(owed), found_before)
            found_before = bool(owed)
            await asyncio.sleep(delay)
    finally:
        await dispatcher.stop()
        stats.write(directory)
        reader.close()


def next_delay(delay: float, found: bool, found_before: bool) -> float:
    """Seconds to the next read of the queue. The first read that finds events is followed by one
    ``POLL_MIN`` later (a burst goes out within tens of milliseconds); while reads keep finding
    events the wait doubles up to ``POLL_BUSY``, so a busy queue is read a few times a second in
    large gulps, not a hundred times in small ones. Each wake-up of this process costs the serving
    process too, although it runs on another core: 4 KiB PUTs with one webhook target kept 101.8 %
    of plain's ops/s reading every 0.25 s, 98.9 % every 10 ms (docs/benchmarks.md, "Event
    notifications"). Reads that find nothing back off to ``POLL_IDLE``."""
    if not found:
        return min(delay * 2, POLL_IDLE)
    return min(delay * 2, POLL_BUSY) if found_before else POLL_MIN


def _die_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM when the parent dies (Linux), and check it did not die already."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(0)


def _yield_to_requests() -> None:
    """Delivery is background work: it never takes a core from serving requests when both want one.
    SCHED_BATCH: its wake-ups (every read of the queue, every POST's answer) do not preempt a running
    thread, such as the serving process's metadata writer; nice 10: a smaller share of busy cores
    (still about a tenth of one against a busy process, more than it needs: about 10 us a record),
    all of an idle one. Side by side, 4 KiB PUTs with one webhook target went from 96.2 to 98.9 %
    of plain ops/s (docs/benchmarks.md, "Event notifications"). Best effort (Linux)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(NICE)


def main() -> int:
    config = DelivererConfig.from_json(os.environ[ENV])
    _die_with_parent(config.parent)
    _yield_to_requests()
    from coffer.config import Settings
    from coffer.logs import setup_logging

    setup_logging(Settings(**config.log, access_log=False))  # type: ignore[arg-type]
    lease = FileLease(Path(config.directory), LEASE_FILE, JOB)
    if not lease.acquire():
        return 0  # another one delivers
    uvloop.run(serve(config))  # as the workers serve: less CPU per wake-up and per POST
    return 0


if __name__ == "__main__":
    sys.exit(main())
