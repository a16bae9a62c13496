"""CPU cost of one event notification, in process: queuing it (match, queue line, write), what a
request pays, and delivering it (the delivery process: reading the queue, the records, batched POSTs
to a local webhook sink, acknowledgements), per event.

CPU time (not wall time): of this process for queuing, of the delivery process (a child, counted
once it exited) for delivering, so a busy machine moves them little; the sink runs as a separate
process (coffer.bench.webhook_sink). Events are emitted 32 at a time, as concurrent PUTs would,
with a short pause between groups.

    python scripts/bench_events.py [--events 20000] [--fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coffer.bench.servers import free_port
from coffer.events.notifier import Notifier
from coffer.events.rules import Rule, Rules
from coffer.events.targets import parse_targets

RULES = Rules((Rule("bench", "Queue", "arn:coffer:sqs:us-east-1::sink", "sink", ("s3:ObjectCreated:*",)),))
GROUP = 32
ETAG = "0123456789abcdef0123456789abcdef"


async def emit_all(notifier: Notifier, events: int) -> None:
    owner = "0" * 64

    async def one(n: int) -> None:
        # As a PUT's request_event calls it (coffer/server/notify.py).
        facts = ("s3:ObjectCreated:Put", "bench", owner, f"p/{n}", 4096, ETAG, None, owner, "127.0.0.1", "ABCDEF0123")
        waiting = notifier.emit(RULES, facts)
        if waiting is not None:
            await waiting

    for first in range(0, events, GROUP):
        await asyncio.gather(*(one(first + i) for i in range(GROUP)))
        await asyncio.sleep(0.0005)


async def run(port: int, events: int, fsync: bool) -> tuple[float, float]:
    """CPU microseconds per event: queuing it here, delivering it in the delivery process."""
    url = f"http://127.0.0.1:{port}/events"
    directory = Path(tempfile.mkdtemp())
    notifier = Notifier(parse_targets({"sink": {"url": url, "queue_limit": 10**7}}), directory, fsync=fsync)
    started = time.process_time()
    await emit_all(notifier, events)
    queued = (time.process_time() - started) / events * 1e6
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    await notifier.start()  # the delivery process reads what was queued
    while sum(c[1] for c in notifier.delivery_counts().values()) < events:
        await asyncio.sleep(0.05)
    await notifier.close()  # it exits: its CPU time is counted in RUSAGE_CHILDREN
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    shutil.rmtree(directory, ignore_errors=True)
    return queued, spent / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--fsync", action="store_true", help="fsync the queue (the default of a server)")
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "coffer.bench.webhook_sink", str(port)])
    try:
        time.sleep(0.5)
        baseline = asyncio.run(_gather_only(args.events))
        queued, delivered = asyncio.run(run(port, args.events, args.fsync))
    finally:
        sink.terminate()
        sink.wait()
    print(f"harness (tasks, no events): {baseline:6.1f} us/event")
    print(f"queued:                     {queued - baseline:6.1f} us/event  (match, queue line, write)")
    print(f"delivery process:           {delivered:6.1f} us/event  (read, records, POSTs, acks; start-up included)")


async def _gather_only(events: int) -> float:
    """What the harness itself costs: the tasks and pauses without an event."""

    async def nothing() -> None:
        return None

    started = time.process_time()
    for _ in range(0, events, GROUP):
        await asyncio.gather(*(nothing() for _ in range(GROUP)))
        await asyncio.sleep(0.0005)
    return (time.process_time() - started) / events * 1e6


if __name__ == "__main__":
    main()
