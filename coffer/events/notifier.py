"""The entry point of event notifications: ``Notifier.emit`` after a write committed, on the event
loop, or ``Notifier.emit_committed`` from where the write commits (the disk engine's metadata writer
thread: coffer/server/notify.py ``CommitHook``).

It matches the event against the bucket's rules (already in hand: the server keeps them in its
per-bucket state), writes one queue entry holding the event's facts and every delivery it owes,
and offers the event to live-stream listeners. A bucket without rules and without listeners costs
one dict lookup. Delivery runs elsewhere: in the data directory's delivery process
(deliverer.py, kept running by supervisor.py), which reads the queue; only without a queue on disk
(the memory engine without persistence) does it run in this process.

The lifecycle worker (or anything else outside a request) emits the same way, e.g.::

    facts = ("s3:LifecycleExpiration:Delete", bucket, owner, key, None, None, v, "s3.amazonaws.com", "", "")
    waiting = notifier.emit(rules, facts)
    if waiting is not None:
        await waiting

with ``rules`` the bucket's ``Rules`` (coffer/server/notify.py ``emit_event`` looks them up).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from coffer.events.deliverer import DelivererConfig
from coffer.events.delivery import DeadLetters, Dispatcher, NoAcks
from coffer.events.queue import EventQueue, encode_line
from coffer.events.reader import Delivery
from coffer.events.records import Facts, event_of, next_tag
from coffer.events.rules import Rules
from coffer.events.stats import Counts, DeliveryStats, read_stats
from coffer.events.stream import StreamHub
from coffer.events.supervisor import Supervisor
from coffer.events.targets import Target

# The s3.configurationId of records on the live stream (which no rule fired).
STREAM_CONFIGURATION_ID = "_coffer_stream"


class Notifier:
    def __init__(
        self,
        targets: dict[str, Target],
        directory: Path | None,
        *,
        fsync: bool = True,
        region: str = "us-east-1",
        shared: bool = False,
        log_settings: dict[str, str] | None = None,
    ) -> None:
        """``directory`` None: no queue on disk, deliveries run in this process."""
        self.targets = targets
        self.directory = directory
        self.region = region
        self.stream = StreamHub(directory, shared)
        self.queue: EventQueue | None = None
        self.supervisor: Supervisor | None = None
        self.dispatcher: Dispatcher | None = None
        self.stats: DeliveryStats | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once started
        self._loop_thread = 0
        if directory is not None:
            raw = {name: _raw_target(t) for name, t in targets.items()}
            self.supervisor = Supervisor(DelivererConfig(str(directory), raw, region, 0, log_settings or {}))
            self.queue = EventQueue(directory, fsync, on_new_segment=self._segment_made)
        else:
            self.stats = DeliveryStats()
            self.dispatcher = Dispatcher(targets, NoAcks(), DeadLetters(None, region), region, self.stats)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self.supervisor is not None:
            self.supervisor.start()
        if self.dispatcher is not None:
            self.dispatcher.start()

    def _segment_made(self) -> None:
        """The queue made a segment: the delivery process must run (started from the loop, whichever
        thread wrote the line)."""
        assert self.supervisor is not None
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self.supervisor.ensure()
        else:
            loop.call_soon_threadsafe(self.supervisor.ensure)

    async def close(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.stream.close()
        if self.queue is not None:
            self.queue.close()

    def emit(self, rules: Rules | None, facts: Facts) -> Awaitable[None] | None:
        """Queue an event ("s3:ObjectCreated:Put", ...: ``records.Facts``) for every rule of ``rules``
        it matches and offer it to live listeners (on the event loop). Without fsync it is written
        when this returns (None); with fsync, await what it returns before answering (the queue's
        group commit). Only the event's facts are written: its record is made when it is sent
        (records.py). No coroutine: every write of a bucket with rules runs this."""
        line = self._line(None, rules, facts)
        if line is None:
            return None
        assert self.queue is not None
        return self.queue.put(line)

    def emit_committed(self, rules: Rules | None, facts: Facts) -> bool:
        """``emit`` where a write commits, in any thread: the disk engine's metadata writer runs it for
        the writes of a batch one after another, once they committed and before they are answered
        (coffer/server/notify.py ``CommitHook``). There the event costs the serving process a
        fraction of what it costs on the loop between other requests' work (docs/benchmarks.md).
        False when it cannot be queued here (fsync on: its group commit waits on the loop; no queue
        on disk; not started): the caller emits it after the write, on the loop."""
        queue, loop = self.queue, self._loop
        if queue is None or queue.fsync or loop is None:
            return False
        line = self._line(loop, rules, facts)
        if line is not None:
            queue.put(line)
        return True

    def _line(self, loop: asyncio.AbstractEventLoop | None, rules: Rules | None, facts: Facts) -> bytes | None:
        """The queue line of an event (None: nothing to write), after offering it to live listeners
        (through ``loop`` when called off it) or, without a queue, handing it to this process's
        deliveries."""
        event, bucket, key = facts[0], facts[1], facts[3]
        destinations = rules.match(event, key) if rules is not None else ()
        stream = self.stream
        if not destinations and not stream.listening(bucket):
            return None
        time_ns, tag = time.time_ns(), next_tag()
        queue = self.queue
        if stream.subscriptions or queue is None:
            stamped = event_of(facts, time_ns, tag)
            if stream.subscriptions:
                if loop is None:
                    stream.publish(stamped)
                else:
                    loop.call_soon_threadsafe(stream.publish, stamped)
            if queue is None:
                assert self.dispatcher is not None and loop is None
                for index, (target, rule_id) in enumerate(destinations):
                    self.dispatcher.submit(Delivery(None, 0, index, target, rule_id, stamped))
                return None
        if not destinations and not stream.shared:
            return None  # for listeners in this process only, who have it
        # Without destinations it is for listeners in other workers (they read this segment).
        return encode_line(destinations, time_ns, tag, facts)

    def delivery_counts(self) -> Counts:
        """Deliveries queued, delivered, failed, retried and waiting per target (stats.py FIELDS)."""
        if self.stats is not None:
            return self.stats.counts
        assert self.directory is not None
        return read_stats(self.directory)


def _raw_target(target: Target) -> dict[str, Any]:
    """A target as the setting that made it (parse_targets reads it back in the delivery process)."""
    fields = asdict(target)
    del fields["name"]
    return fields
