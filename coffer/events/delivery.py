"""Delivery to webhook targets: bounded concurrency, timeouts, retries with exponential back-off,
a dead-letter log. Runs as asyncio tasks in the delivery process (deliverer.py), which reads the
queue the requests wrote (reader.py), or beside the requests when there is no queue on disk
(the memory engine without persistence): either way a request never waits for a delivery."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Protocol

from coffer.events.reader import Delivery
from coffer.events.records import event_record, records_body
from coffer.events.targets import Target
from coffer.events.webhook import Connection, WebhookError
from coffer.fsutil import append_all, open_private, private_dir

log = logging.getLogger("coffer.events")

MAX_BACKOFF = 60.0
DEAD_LETTER = "dead-letter.jsonl"


class EventObserver(Protocol):
    """Where delivery counts go (coffer/server/metrics.py)."""

    def queued(self, target: str, count: int) -> None: ...
    def delivered(self, target: str, count: int) -> None: ...
    def failed(self, target: str, count: int) -> None: ...
    def retried(self, target: str, count: int) -> None: ...
    def depth(self, target: str, value: int) -> None: ...


class Acks(Protocol):
    """Where deliveries done (or given up) are recorded (reader.py ``SegmentReader.ack``)."""

    def ack(self, deliveries: list[Delivery]) -> None: ...


class NoAcks:
    """In-process delivery without a queue on disk: nothing to record."""

    def ack(self, deliveries: list[Delivery]) -> None:
        return None


class DeadLetters:
    """Deliveries given up, as JSON lines (``<events>/dead-letter.jsonl``); only logged in memory mode."""

    def __init__(self, directory: Path | None, region: str) -> None:
        self.path = directory / DEAD_LETTER if directory is not None else None
        self.region = region
        self._fd = -1
        self._logged = 0.0  # a flood (a target down, its queue full) is logged once a second
        self._unlogged = 0

    def add(self, delivery: Delivery, attempts: int, reason: str) -> None:
        entry = {"time": time.time(), "target": delivery.target, "attempts": attempts, "reason": reason}
        head = json.dumps(entry, separators=(",", ":")).encode()
        line = head[:-1] + b',"record":' + event_record(delivery.event, self.region, delivery.configuration_id) + b"}\n"
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged >= 1.0:
            log.warning(
                "%d event(s) dead-lettered; the last for %s after %d attempt(s): %s",
                self._unlogged,
                delivery.target,
                attempts,
                reason,
            )
            self._logged, self._unlogged = now, 0
        if self.path is None:
            return
        try:
            if self._fd < 0:
                private_dir(self.path.parent)
                self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            append_all(self._fd, line)  # one O_APPEND write: lines of several workers never interleave
        except OSError as exc:
            log.error("cannot write the dead-letter log %s: %s", self.path, exc)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class TargetWorker:
    def __init__(
        self,
        target: Target,
        acks: Acks,
        dead: DeadLetters,
        region: str,
        observer: EventObserver | None = None,
    ) -> None:
        self.target = target
        self.region = region
        self.acks = acks
        self.dead = dead
        self.observer = observer
        self.pending: deque[tuple[Delivery, int]] = deque()  # (delivery, attempts so far)
        self.retrying = 0  # waiting out a back-off
        self.in_flight = 0
        self._wake = asyncio.Event()
        self._gathering = False  # a worker is gathering or sending a partial batch
        self._unreported = 0  # deliveries queued and not yet counted in the metrics
        self._tasks: list[asyncio.Task[None]] = []

    def depth(self) -> int:
        return len(self.pending) + self.retrying + self.in_flight

    def submit(self, delivery: Delivery) -> None:
        self._unreported += 1  # counted as queued even when the queue limit turns it away
        if self.depth() >= self.target.queue_limit:
            self._give_up([delivery], 0, f"queue limit {self.target.queue_limit} reached")
            return
        self.pending.append((delivery, 0))
        # While a worker gathers a partial batch the others wait for a full one: waking them for
        # every event would cost more than the POSTs.
        if not self._wake.is_set() and (not self._gathering or len(self.pending) >= self.target.batch_max):
            self._wake.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.target.concurrency)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        connection = Connection(self.target.endpoint(), self.target.auth_header)
        try:
            while True:
                if not self.pending:
                    self._report_depth()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self.pending) < self.target.batch_max:
                    # Less than a full POST's worth: one worker gathers it for ``linger`` and sends it,
                    # and while that POST is out the others wait for a full batch. Partial POSTs
                    # never overlap, so a busy bucket's events go out in few, large POSTs (each POST
                    # costs the server about as much as a small PUT).
                    if self._gathering:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    self._gathering = True
                    try:
                        await asyncio.sleep(self.target.linger)
                        batch = self._take()
                        if batch:
                            await self._deliver(connection, batch)
                    finally:
                        self._gathering = False
                    if self.pending:
                        self._wake.set()  # what came in meanwhile
                    continue
                await self._deliver(connection, self._take())
        finally:
            connection.close()

    def _take(self) -> list[tuple[Delivery, int]]:
        batch: list[tuple[Delivery, int]] = []
        while self.pending and len(batch) < self.target.batch_max:
            batch.append(self.pending.popleft())
        if len(self.pending) >= self.target.batch_max:
            self._wake.set()  # another full POST's worth: another worker takes it
        return batch

    async def _deliver(self, connection: Connection, batch: list[tuple[Delivery, int]]) -> None:
        self.in_flight += len(batch)
        try:
            reason = await self._send(connection, [d for d, _ in batch])
        finally:
            self.in_flight -= len(batch)
        if reason is None:
            self.acks.ack([d for d, _ in batch])
            if self.observer is not None:
                self.observer.delivered(self.target.name, len(batch))
        else:
            self._failed(batch, reason)
        self._report_depth()  # once per POST, not per event

    async def _send(self, connection: Connection, deliveries: list[Delivery]) -> str | None:
        """None when the receiver took the records (2xx), else why not."""
        region = self.region
        body = records_body([event_record(d.event, region, d.configuration_id) for d in deliveries])
        try:
            status = await connection.post(body, self.target.timeout)
        except TimeoutError:
            return f"no answer within {self.target.timeout:g} s"
        except WebhookError as exc:
            return str(exc)
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _failed(self, batch: list[tuple[Delivery, int]], reason: str) -> None:
        if self.observer is not None:
            self.observer.retried(self.target.name, len(batch))
        give_up = [d for d, attempts in batch if attempts + 1 >= self.target.max_attempts]
        if give_up:
            self._give_up(give_up, self.target.max_attempts, reason)
        again = [(d, attempts + 1) for d, attempts in batch if attempts + 1 < self.target.max_attempts]
        if not again:
            return
        attempts = min(a for _, a in again)
        delay = min(self.target.retry_seconds * 2 ** (attempts - 1), MAX_BACKOFF)
        self.retrying += len(again)
        asyncio.get_running_loop().call_later(delay, self._retry, again)

    def _retry(self, items: list[tuple[Delivery, int]]) -> None:
        self.retrying -= len(items)
        self.pending.extend(items)
        self._wake.set()

    def _give_up(self, deliveries: list[Delivery], attempts: int, reason: str) -> None:
        for delivery in deliveries:
            self.dead.add(delivery, attempts, reason)
        self.acks.ack(deliveries)
        if self.observer is not None:
            self.observer.failed(self.target.name, len(deliveries))
        self._report_depth()

    def _report_depth(self) -> None:
        """Depth and deliveries queued since the last report: once per POST, not per event."""
        if self.observer is not None:
            if self._unreported:
                self.observer.queued(self.target.name, self._unreported)
            self.observer.depth(self.target.name, self.depth())
        self._unreported = 0


class Dispatcher:
    """Every target's worker, and where a delivery to a target no longer configured goes."""

    def __init__(
        self, targets: dict[str, Target], acks: Acks, dead: DeadLetters, region: str, observer: EventObserver | None
    ) -> None:
        self.acks = acks
        self.dead = dead
        self.observer = observer
        self.workers = {name: TargetWorker(t, acks, dead, region, observer) for name, t in targets.items()}

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()
        self.dead.close()

    def submit(self, delivery: Delivery) -> None:
        worker = self.workers.get(delivery.target)
        if worker is None:
            # The target was removed from the server's configuration after the rule was stored.
            self.dead.add(delivery, 0, f"no target named {delivery.target!r} is configured")
            self.acks.ack([delivery])
            if self.observer is not None:
                self.observer.queued(delivery.target, 1)
                self.observer.failed(delivery.target, 1)
            return
        worker.submit(delivery)

    def depth(self) -> int:
        return sum(worker.depth() for worker in self.workers.values())

    def room(self) -> int:
        """How many more queue entries to read before every target is as far behind as its
        ``queue_limit`` (an entry owes a target at most one delivery). The most room of any target,
        not the least: one broken target must not hold back the others' deliveries (its own beyond
        its limit are dead-lettered, as ``queue_limit`` says); when all are behind (the delivery
        process starved of CPU, say) the entries wait in the queue on disk."""
        return max((w.target.queue_limit - w.depth() for w in self.workers.values()), default=1 << 30)
