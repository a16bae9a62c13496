"""What a mirror run counts, how it shows it while running, and its summary and JSON report."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Report:
    """The outcome of one run; ``as_dict`` is the JSON report (docs/mirror.md lists its fields)."""

    command: str
    source: str
    destination: str
    dry_run: bool = False
    copied: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    # verify: the relative keys found in each state ("ok" and "size_only" are counted, not listed).
    verified: int = 0
    size_only: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    # dry run: what would be done.
    would_copy: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    deletes_skipped: str = ""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.interrupted or self.missing or self.differs)

    def as_dict(self) -> dict[str, Any]:
        seconds = max(self.seconds, 1e-9)
        out: dict[str, Any] = {
            "command": self.command,
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "objects": {"copied": self.copied, "skipped": self.skipped, "deleted": self.deleted, "failed": self.failed},
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "objects_per_second": round((self.copied + self.deleted) / seconds, 1),
            "bytes_per_second": round(self.bytes / seconds),
            "failures": self.failures,
        }
        if self.command == "verify":
            out["verify"] = {
                "verified": self.verified,
                "size_only": self.size_only,
                "missing": self.missing,
                "extra": self.extra,
                "differs": self.differs,
            }
        if self.dry_run:
            out["would_copy"] = self.would_copy
            out["would_delete"] = self.would_delete
        if self.deletes_skipped:
            out["deletes_skipped"] = self.deletes_skipped
        return out

    def summary(self) -> str:
        rate = self.bytes / max(self.seconds, 1e-9)
        done = (self.copied + self.deleted) / max(self.seconds, 1e-9)
        head = "dry run: " if self.dry_run else ("interrupted: " if self.interrupted else "")
        if self.command == "verify":
            return (
                f"{head}verified {self.verified}, size only {self.size_only}, missing {len(self.missing)}, "
                f"differ {len(self.differs)}, extra {len(self.extra)}, failed {self.failed} "
                f"in {self.seconds:.1f} s ({_size(self.bytes)} read back)"
            )
        if self.dry_run:
            return f"{head}would copy {len(self.would_copy)}, skip {self.skipped}, delete {len(self.would_delete)}"
        return (
            f"{head}copied {self.copied}, skipped {self.skipped}, deleted {self.deleted}, failed {self.failed}: "
            f"{_size(self.bytes)} in {self.seconds:.1f} s ({_size(rate)}/s, {done:.0f} objects/s)"
        )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Meter:
    """Thread-safe running totals, drawn on ``out`` by a background thread: one rewritten line on a
    terminal (twice a second), a plain line every ``interval`` seconds otherwise."""

    def __init__(self, out: TextIO | None = None, enabled: bool = True, interval: float = 10.0) -> None:
        self.out = out or sys.stderr
        self.enabled = enabled
        self.tty = self.out.isatty()
        self.interval = 0.5 if self.tty else interval
        self.started = time.monotonic()
        self.planned_objects = 0
        self.planned_bytes = 0
        self.listing_done = False
        self.objects = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plan(self, size: int) -> None:
        with self._lock:
            self.planned_objects += 1
            self.planned_bytes += size

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n

    def object_done(self) -> None:
        with self._lock:
            self.objects += 1

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="mirror-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self.tty:
                self.out.write("\r\x1b[K")
                self.out.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes / elapsed
        objects_rate = self.objects / elapsed
        if self.listing_done:
            # Small objects cost requests, large ones bytes: the slower of the two estimates.
            estimates = [
                left / per_second
                for left, per_second in (
                    (self.planned_bytes - self.bytes, rate),
                    (self.planned_objects - self.objects, objects_rate),
                )
                if left > 0 and per_second > 0
            ]
            eta = _eta(max(estimates)) if estimates else "0s"
            total = f"/{self.planned_objects} objects, {_size(self.bytes)}/{_size(self.planned_bytes)}"
        else:
            eta, total = "listing…", f" objects ({self.planned_objects} planned), {_size(self.bytes)}"
        return f"{self.objects}{total}, {_size(rate)}/s, {objects_rate:.0f} objects/s, ETA {eta}"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.tty:
                self.out.write("\r\x1b[K" + self.line())
            else:
                self.out.write(self.line() + "\n")
            self.out.flush()


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
