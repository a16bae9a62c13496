"""The live event stream's side of the queue: who listens to which bucket, and the records they get.

A listener of this process gets this process's events as they are queued (``publish``). With several
worker processes sharing a data directory, the other workers' events are read from their queue
segments as those grow (``tail``, a poll every ``POLL_SECONDS`` while anyone listens), and the other
workers learn that a bucket has a listener from a marker file ``<events>/listeners/<bucket>``
that every listening process touches: a bucket without notification rules then still queues its events,
for the stream alone. A listener that reads too slowly misses events (``dropped`` counts them) rather
than holding memory without bound.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from coffer.events.queue import PREFIX, data_end, decode_lines, segment_paths
from coffer.events.records import ObjectEvent

POLL_SECONDS = 0.2
MARKER_REFRESH = 5.0  # a listening process touches its markers this often
MARKER_FRESH = 15.0  # a marker older than this is a listener that went away
SUBSCRIBER_BUFFER = 1000
TAIL_READ = 256 * 1024  # read of another worker's segment per poll


@dataclass(eq=False, slots=True)
class Subscription:
    bucket: str
    prefix: str
    # Stamped events; their records are made as they are sent (records.py).
    events: asyncio.Queue[ObjectEvent] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BUFFER))
    dropped: int = 0

    def offer(self, event: ObjectEvent) -> None:
        if event.bucket != self.bucket or not event.key.startswith(self.prefix):
            return
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


class StreamHub:
    def __init__(self, directory: Path | None, shared: bool) -> None:
        self.directory = directory
        # Other processes write to this directory too: tail their segments, leave markers.
        self.shared = shared and directory is not None
        self.subscriptions: set[Subscription] = set()
        self._buckets: dict[str, int] = {}
        self._markers_seen: dict[str, tuple[float, bool]] = {}  # bucket -> (checked at, fresh)
        self._offsets: dict[Path, int] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ writers ask
    def listening(self, bucket: str) -> bool:
        """Someone (here, or in another worker within MARKER_FRESH) listens to this bucket."""
        if self._buckets.get(bucket):
            return True
        if not self.shared:
            return False
        now = time.monotonic()
        seen = self._markers_seen.get(bucket)
        if seen is not None and now - seen[0] < 1.0:
            return seen[1]
        try:
            fresh = time.time() - os.stat(self._marker(bucket)).st_mtime < MARKER_FRESH
        except OSError:
            fresh = False
        if len(self._markers_seen) > 4096:
            self._markers_seen.clear()
        self._markers_seen[bucket] = (now, fresh)
        return fresh

    def publish(self, event: ObjectEvent) -> None:
        for subscription in self.subscriptions:
            subscription.offer(event)

    # ------------------------------------------------------------------ listeners
    def subscribe(self, bucket: str, prefix: str) -> Subscription:
        subscription = Subscription(bucket, prefix)
        if not self.subscriptions and self.shared:
            self._offsets = {path: data_end(path) for path in self._others()}  # from now on
        self.subscriptions.add(subscription)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
        if self.shared:
            self._touch(bucket)
            if self._task is None:
                self._task = asyncio.create_task(self._tail())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)
        left = self._buckets.get(subscription.bucket, 1) - 1
        if left > 0:
            self._buckets[subscription.bucket] = left
        else:
            self._buckets.pop(subscription.bucket, None)
        if not self.subscriptions and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # ------------------------------------------------------------------ other workers
    def _marker(self, bucket: str) -> Path:
        assert self.directory is not None
        return self.directory / "listeners" / bucket

    def _touch(self, bucket: str) -> None:
        marker = self._marker(bucket)
        try:
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.touch(mode=0o600)
            os.utime(marker)
        except OSError:
            pass

    def _others(self) -> list[Path]:
        assert self.directory is not None
        mine = f"{PREFIX}{os.getpid()}-"
        if not self.directory.is_dir():
            return []
        return [p for p in segment_paths(self.directory) if not p.name.startswith(mine)]

    async def _tail(self) -> None:
        touched = time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if time.monotonic() - touched > MARKER_REFRESH:
                touched = time.monotonic()
                for bucket in list(self._buckets):
                    self._touch(bucket)
            for path in self._others():
                offset = self._offsets.get(path, 0)  # a segment made since: from its start
                self._offsets[path] = offset
                try:
                    with open(path, "rb") as f:  # allocated whole: what was written ends at zeros
                        f.seek(offset)
                        data = f.read(TAIL_READ)
                except OSError:
                    continue
                end = offset
                for _, line_end, _, event in decode_lines(data, offset):
                    end = line_end
                    self.publish(event)
                self._offsets[path] = end
            live = set(self._others())
            for path in list(self._offsets):
                if path not in live:
                    del self._offsets[path]
