"""The worker's side of the delivery process (coffer/events/supervisor.py): it starts one only when
there is a queue to read, with the server's own code (not a ``coffer`` package in the current
directory), and stops it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from coffer.events.deliverer import NICE, POLL_BUSY, POLL_IDLE, POLL_MIN, DelivererConfig, next_delay
from coffer.events.queue import EventQueue, event_line
from coffer.events.records import ObjectEvent, stamp
from coffer.events.stats import STATS_FILE
from coffer.events.supervisor import Supervisor


def test_started_with_the_servers_code_only_when_there_is_a_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events"
    events.mkdir()
    # A checkout of something else in the current directory must not be what the child imports.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "coffer").mkdir()
    (tmp_path / "coffer" / "__init__.py").write_text("raise SystemExit('the wrong coffer')\n")

    async def run() -> None:
        supervisor = Supervisor(DelivererConfig(str(events), {}, "us-east-1", 0))
        supervisor.start()
        assert supervisor.child is None  # nothing queued: no process
        await supervisor.stop()
        (events / "seg-1-abc.log").write_bytes(b"")
        supervisor.start()
        child = supervisor.child
        assert child is not None
        deadline = time.monotonic() + 20
        while not (events / "delivery.lease").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert child.poll() is None, "the delivery process exited"
        # Background work: its wake-ups never preempt request serving, and it yields busy cores.
        assert os.sched_getscheduler(child.pid) == os.SCHED_BATCH
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + NICE, 19)
        await supervisor.stop()
        assert child.returncode == 0
        assert (events / STATS_FILE).exists()  # written by its serve loop as it stopped

    asyncio.run(run())


def test_started_as_soon_as_the_queue_makes_a_segment(tmp_path: Path) -> None:
    """The first events of a server do not wait for the next periodic check."""
    events = tmp_path / "events"

    async def run() -> None:
        supervisor = Supervisor(DelivererConfig(str(events), {}, "us-east-1", 0))
        queue = EventQueue(events, False, on_new_segment=supervisor.ensure)
        assert supervisor.child is None
        await queue.append(event_line((("hook", "r"),), stamp(ObjectEvent("s3:ObjectCreated:Put", "b", "k"))))
        assert supervisor.child is not None and supervisor.child.poll() is None
        await supervisor.stop()
        queue.close()

    asyncio.run(run())


def test_a_busy_queue_is_read_in_gulps_and_a_quiet_one_promptly() -> None:
    """The delivery process reads the queue soon after the first events of a burst, then less and less
    often while events keep coming (each wake-up costs the serving process: docs/benchmarks.md), and
    backs off when there are none."""
    delays = [POLL_IDLE]
    found_before = False
    for found in [True] * 8:
        delays.append(next_delay(delays[-1], found, found_before))
        found_before = found
    assert delays[1] == POLL_MIN  # the first events of a burst: read again soon
    assert delays[1:] == sorted(delays[1:]) and delays[-1] == POLL_BUSY  # then in gulps, bounded
    assert next_delay(POLL_BUSY, False, True) == POLL_IDLE  # quiet again: idle back-off
    assert next_delay(POLL_MIN, False, False) == 2 * POLL_MIN
    assert next_delay(POLL_IDLE, False, False) == POLL_IDLE
    assert next_delay(POLL_IDLE, True, False) == POLL_MIN  # after a quiet spell: prompt again
