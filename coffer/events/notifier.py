"""The one entry point of event notifications: ``Notifier.emit`` after a write committed.

It matches the event against the bucket's rules (already in hand: the server keeps them in its
per-bucket state), writes one queue entry carrying every delivery it owes, hands the deliveries
to their targets' workers and offers the record to live-stream listeners. A bucket without rules
and without listeners costs one dict lookup.

The lifecycle worker (or anything else outside a request) emits the same way, e.g.::

    await notifier.emit(ObjectEvent("s3:LifecycleExpiration:Delete", bucket, key, version_id=v,
                                    principal_id="s3.amazonaws.com"), rules)

with ``rules`` the bucket's ``Rules`` (coffer/server/notify.py ``emit_event`` looks them up).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from coffer.events.delivery import DeadLetters, EventObserver, TargetWorker
from coffer.events.queue import Delivery, EventQueue, encode_line
from coffer.events.records import ObjectEvent, stamp
from coffer.events.rules import Rules
from coffer.events.stream import StreamHub
from coffer.events.targets import Target

log = logging.getLogger("coffer.events")

# The s3.configurationId of records on the live stream (which no rule fired).
STREAM_CONFIGURATION_ID = "_coffer_stream"
ORPHAN_SCAN_SECONDS = 10.0  # how often a process looks for segments a dead worker left


class Notifier:
    def __init__(
        self,
        targets: dict[str, Target],
        directory: Path | None,
        *,
        fsync: bool = True,
        region: str = "us-east-1",
        shared: bool = False,
        observer: EventObserver | None = None,
    ) -> None:
        self.targets = targets
        self.region = region
        self.observer = observer
        self.queue = EventQueue(directory, fsync)
        self.dead = DeadLetters(directory, region)
        self.workers = {name: TargetWorker(t, self.queue, self.dead, region, observer) for name, t in targets.items()}
        self.stream = StreamHub(directory, shared)
        self._scanner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for worker in self.workers.values():
            worker.start()
        self._adopt()
        if self.queue.directory is not None:
            self._scanner = asyncio.create_task(self._scan())

    async def close(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
        for worker in self.workers.values():
            await worker.stop()
        await self.stream.close()
        self.queue.close()
        self.dead.close()

    def wanted(self, bucket: str, rules: Rules | None) -> bool:
        """Does an event in this bucket cost anything at all (rules, or a live listener)?"""
        return rules is not None or self.stream.listening(bucket)

    async def emit(self, event: ObjectEvent, rules: Rules | None) -> None:
        """Queue the event durably (returns once it is written) and start its deliveries. Only the
        event's facts are written: its record is made when it is sent (records.py)."""
        destinations = rules.match(event.event, event.key) if rules is not None else ()
        if not destinations and not self.stream.listening(event.bucket):
            return
        line = encode_line(destinations, stamp(event))
        if destinations:
            # Without fsync the line is written at once (no coroutine: this runs for every write).
            placed = self.queue.append_now(line)
            segment, offset = placed if placed is not None else await self.queue.append(line)
            self.queue.owe(segment, len(destinations))
            for index, (target, rule_id) in enumerate(destinations):
                self._submit(Delivery(segment, offset, index, target, rule_id, event))
        elif self.stream.shared:
            await self.queue.append(line)  # for listeners in other workers; owes no delivery
        if self.stream.subscriptions:
            self.stream.publish(event)

    def _submit(self, delivery: Delivery) -> None:
        worker = self.workers.get(delivery.target)
        if worker is None:
            # The target was removed from the server's configuration after the rule was stored.
            self.dead.add(delivery, 0, f"no target named {delivery.target!r} is configured")
            self.queue.ack([delivery])
            if self.observer is not None:
                self.observer.queued(delivery.target, 1)
                self.observer.failed(delivery.target, 1)
            return
        worker.submit(delivery)

    def _adopt(self) -> None:
        owed = self.queue.adopt_orphans()
        if owed:
            log.info("event queue: %d undelivered event(s) left by an earlier process", len(owed))
        for delivery in owed:
            self._submit(delivery)

    async def _scan(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_SCAN_SECONDS)
            try:
                self._adopt()
            except OSError as exc:
                log.warning("event queue: cannot scan for orphaned segments: %s", exc)
