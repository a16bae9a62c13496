"""CPU cost of one event notification, in process: queuing it (match, record, queue line, write)
and delivering it (batched POSTs to a local webhook sink, acknowledgements), per event.

CPU time (not wall time) of this process only, so a busy machine moves it little; the sink runs as
a separate process (coffer.bench.webhook_sink). Events are emitted 32 at a time, as concurrent
PUTs would, with a short pause between groups.

    python scripts/bench_events.py [--events 20000] [--fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coffer.bench.servers import free_port
from coffer.events.notifier import Notifier
from coffer.events.records import ObjectEvent
from coffer.events.rules import Rule, Rules
from coffer.events.targets import parse_targets

RULES = Rules((Rule("bench", "Queue", "arn:coffer:sqs:us-east-1::sink", "sink", ("s3:ObjectCreated:*",)),))
GROUP = 32


def event(n: int) -> ObjectEvent:
    return ObjectEvent(
        "s3:ObjectCreated:Put",
        "bench",
        f"p/{n}",
        size=4096,
        etag="0123456789abcdef0123456789abcdef",
        principal_id="0" * 64,
        source_ip="127.0.0.1",
        request_id="ABCDEF0123456789",
        bucket_owner="0" * 64,
    )


async def run(port: int, events: int, fsync: bool, deliver: bool) -> float:
    """CPU microseconds per event: queued only, or queued and delivered."""
    url = f"http://127.0.0.1:{port}/events"
    notifier = Notifier(
        parse_targets({"sink": {"url": url, "queue_limit": 10**7}}), Path(tempfile.mkdtemp()), fsync=fsync
    )
    if deliver:
        await notifier.start()
    started = time.process_time()
    for first in range(0, events, GROUP):
        await asyncio.gather(*(notifier.emit(event(first + i), RULES) for i in range(GROUP)))
        await asyncio.sleep(0.0005)
    worker = notifier.workers["sink"]
    while deliver and worker.depth():
        await asyncio.sleep(0.01)
    spent = time.process_time() - started
    await notifier.close()
    return spent / events * 1e6


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
        queued = asyncio.run(run(port, args.events, args.fsync, deliver=False))
        delivered = asyncio.run(run(port, args.events, args.fsync, deliver=True))
    finally:
        sink.terminate()
        sink.wait()
    print(f"harness (tasks, no events): {baseline:6.1f} us/event")
    print(f"queued:                     {queued - baseline:6.1f} us/event  (match, record, queue line, write)")
    print(f"queued and delivered:       {delivered - baseline:6.1f} us/event  (plus POSTs and acks)")


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
