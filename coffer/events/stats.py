"""Delivery counts per target, kept where deliveries run and read by the server's /metrics.

The delivery process is not a server worker (it answers no scrape), so it writes its counts to
``<events>/delivery-stats.json`` (a few times a second at most, replaced whole) and whichever worker
answers a scrape reads that file (coffer/server/metrics.py). In-process delivery (no queue on disk)
is read directly.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from coffer.fsutil import open_private

log = logging.getLogger("coffer.events")

STATS_FILE = "delivery-stats.json"
# The counts of one target, in this order; the last is a gauge, the others count up.
FIELDS = ("queued", "delivered", "failed", "retried", "depth")

Counts = dict[str, list[int]]  # target -> one value per FIELDS


class DeliveryStats:
    """An EventObserver (delivery.py) that keeps the counts."""

    def __init__(self) -> None:
        self.counts: Counts = {}
        self.changed = False

    def _of(self, target: str) -> list[int]:
        self.changed = True
        counts = self.counts.get(target)
        if counts is None:
            counts = self.counts[target] = [0] * len(FIELDS)
        return counts

    def queued(self, target: str, count: int) -> None:
        self._of(target)[0] += count

    def delivered(self, target: str, count: int) -> None:
        self._of(target)[1] += count

    def failed(self, target: str, count: int) -> None:
        self._of(target)[2] += count

    def retried(self, target: str, count: int) -> None:
        self._of(target)[3] += count

    def depth(self, target: str, value: int) -> None:
        self._of(target)[4] = value

    def write(self, directory: Path) -> None:
        """Replace the stats file with the counts (a reader never sees half of it)."""
        temp = directory / f".{STATS_FILE}.{os.getpid()}"
        try:
            fd = open_private(temp, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(self.counts).encode())
            os.replace(temp, directory / STATS_FILE)
            self.changed = False
        except OSError as exc:
            log.warning("cannot write delivery counts to %s: %s", directory / STATS_FILE, exc)


def read_stats(directory: Path) -> Counts:
    """The counts the delivery process last wrote (none yet: empty)."""
    try:
        counts = json.loads((directory / STATS_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(counts, dict):
        return {}
    return {str(k): [int(x) for x in v] for k, v in counts.items() if isinstance(v, list) and len(v) == len(FIELDS)}
