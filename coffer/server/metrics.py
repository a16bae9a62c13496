"""Prometheus metrics: requests by S3 operation, bytes, storage totals, engine internals.

With several worker processes (``--workers`` > 1) the runner points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start;
prometheus-client then keeps every worker's values in memory-mapped files there
and a scrape, answered by any one worker, adds them up. Every metric and label
is described in docs/operations.md.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import prometheus_client
import prometheus_client.multiprocess
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from coffer import __version__
from coffer.events.stats import Counts
from coffer.lifecycle.worker import LifecycleObserver
from coffer.storage.api import EngineObserver, StorageStats

if TYPE_CHECKING:
    from coffer.storage.api import Engine

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# prometheus-client leaves these unannotated: typed once here so every call is checked.
disable_created_metrics: Callable[[], None] = prometheus_client.disable_created_metrics
mark_process_dead: Callable[[int, str], None] = prometheus_client.multiprocess.mark_process_dead
MultiProcessCollector: Callable[..., object] = prometheus_client.multiprocess.MultiProcessCollector

# *_created series double the output and multiprocess mode cannot produce them:
# leave them out so both modes expose the same series.
disable_created_metrics()

# Seconds. S3 latencies range from sub-millisecond cached GETs to minutes-long uploads.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class _Observer(EngineObserver):
    """Turns the engine's neutral callbacks into histogram observations."""

    def __init__(self, metrics: Metrics) -> None:
        self._batch = metrics.commit_batch_size
        self._commit = metrics.commit_seconds
        self._fsync_family = metrics.fsync_seconds
        self._fsync = {k: metrics.fsync_seconds.labels(kind=k) for k in ("file", "dir")}
        self._cache = metrics.cache_requests
        self._cache_children: dict[tuple[str, bool], Any] = {}
        self._evicted_objects = metrics.evicted_objects
        self._evicted_bytes = metrics.evicted_bytes
        self._expired = metrics.expired_objects
        self._compactions = metrics.journal_compactions
        self._compacted_bytes = metrics.journal_compacted_bytes

    def committed(self, operations: int, seconds: float) -> None:
        self._batch.observe(operations)
        self._commit.observe(seconds)

    def synced(self, what: str, seconds: float) -> None:
        hist = self._fsync.get(what)
        if hist is None:
            hist = self._fsync[what] = self._fsync_family.labels(kind=what)
        hist.observe(seconds)

    def cache(self, name: str, hit: bool) -> None:
        # Once per GET/HEAD: keep the labelled children instead of looking them up each time.
        child = self._cache_children.get((name, hit))
        if child is None:
            child = self._cache_children[(name, hit)] = self._cache.labels(cache=name, result="hit" if hit else "miss")
        child.inc()

    def evicted(self, objects: int, nbytes: int) -> None:
        self._evicted_objects.inc(objects)
        self._evicted_bytes.inc(nbytes)

    def expired(self, objects: int) -> None:
        self._expired.inc(objects)

    def journal_compacted(self, before: int, after: int, seconds: float) -> None:
        self._compactions.inc()
        self._compacted_bytes.inc(max(0, before - after))


class _StorageCollector:
    """Storage totals from the engine's statistics, read at scrape time."""

    def __init__(self) -> None:
        self.stats: StorageStats | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None:
            return
        for name, doc, value in (
            ("coffer_storage_buckets", "Buckets in the store.", stats.buckets),
            ("coffer_storage_objects", "Objects stored (every version, not delete markers).", stats.objects),
            ("coffer_storage_bytes", "Bytes of object data stored.", stats.bytes),
            ("coffer_storage_multipart_uploads", "Multipart uploads in progress.", stats.multipart_uploads),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


class _WorkersProcessCollector:
    """Standard process_* metrics for every live worker, labelled by pid (multiprocess mode)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def live_pids(self) -> list[int]:
        pids: set[int] = set()
        for name in glob.glob(os.path.join(self.path, "gauge_live*_*.db")):
            match = _LIVE_FILE.search(name)
            if match:
                pids.add(int(match.group(1)))
        alive = []
        for pid in sorted(pids):
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                # A worker that died without cleaning up: drop its in-flight count.
                mark_process_dead(pid, self.path)
            except PermissionError:
                alive.append(pid)
        return alive

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.live_pids():
            for family in ProcessCollector(pid=_returning(pid), registry=None).collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type)
                for sample in family.samples:
                    merged.samples.append(sample._replace(labels={**sample.labels, "pid": str(pid)}))
        yield from families.values()


class _LifecycleMetrics(LifecycleObserver):
    """Turns the lifecycle worker's progress into counters and gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def scanned(self, versions: int) -> None:
        self._m.lifecycle_scanned.inc(versions)

    def acted(self, action: str, count: int = 1) -> None:
        self._m.lifecycle_actions.labels(action=action).inc(count)

    def skipped(self, reason: str, count: int = 1) -> None:
        self._m.lifecycle_skipped.labels(reason=reason).inc(count)

    def pass_done(self, seconds: float, finished_at: float) -> None:
        self._m.lifecycle_pass_seconds.observe(seconds)
        self._m.lifecycle_last_pass.set(finished_at)


class Metrics:
    """Every metric Coffer exposes, plus the code that renders a scrape."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.multiproc_path = multiprocess_dir()
        multi = self.multiproc_path is not None
        # A private registry: several apps in one process (tests) must not collide.
        # In multiprocess mode values live in files and a scrape reads those instead.
        self.registry = CollectorRegistry()
        reg = None if multi else self.registry
        self.requests = Counter(
            "coffer_http_requests_total",
            "S3 requests answered, by operation and status class.",
            ["operation", "status_class"],
            registry=reg,
        )
        self.latency = Histogram(
            "coffer_http_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "coffer_http_requests_in_flight",
            "Requests being processed right now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.received = Counter(
            "coffer_http_received_bytes",
            "Request body bytes received (as sent on the wire), by operation.",
            ["operation"],
            registry=reg,
        )
        self.sent = Counter(
            "coffer_http_sent_bytes",
            "Response body bytes sent, by operation.",
            ["operation"],
            registry=reg,
        )
        self.commit_batch_size = Histogram(
            "coffer_engine_commit_batch_size",
            "Metadata writes committed together in one transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self.commit_seconds = Histogram(
            "coffer_engine_commit_seconds",
            "Duration of one metadata COMMIT, including the WAL fsync when fsync is 'always'.",
            buckets=FSYNC_BUCKETS,
            registry=reg,
        )
        self.fsync_seconds = Histogram(
            "coffer_engine_fsync_seconds",
            "Duration of one fsync of an object file or its directory.",
            ["kind"],
            buckets=FSYNC_BUCKETS,
            registry=reg,
        )
        self.cache_requests = Counter(
            "coffer_engine_cache_requests",
            "Engine cache lookups by cache and result (hit/miss).",
            ["cache", "result"],
            registry=reg,
        )
        self.evicted_objects = Counter(
            "coffer_engine_evicted_objects",
            "Objects the memory engine evicted (least recently used first) to stay under max_memory.",
            registry=reg,
        )
        self.evicted_bytes = Counter(
            "coffer_engine_evicted_bytes",
            "Bytes of object data evicted to stay under max_memory.",
            registry=reg,
        )
        self.expired_objects = Counter(
            "coffer_engine_expired_objects",
            "Expired objects (TTL) reclaimed by the reaper.",
            registry=reg,
        )
        self.lifecycle_actions = Counter(
            "coffer_lifecycle_actions",
            "Lifecycle actions applied, by action (expiration, noncurrent_expiration, "
            "delete_marker_expiration, transition, noncurrent_transition, abort_multipart_upload).",
            ["action"],
            registry=reg,
        )
        self.lifecycle_skipped = Counter(
            "coffer_lifecycle_skipped",
            "Due lifecycle actions not applied: reason 'locked' (Object Lock) or 'changed' (the version changed).",
            ["reason"],
            registry=reg,
        )
        self.lifecycle_scanned = Counter(
            "coffer_lifecycle_scanned",
            "Object versions and multipart uploads lifecycle passes examined.",
            registry=reg,
        )
        self.lifecycle_pass_seconds = Histogram(
            "coffer_lifecycle_pass_seconds",
            "Duration of one lifecycle pass over every bucket.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.lifecycle_last_pass = Gauge(
            "coffer_lifecycle_last_pass_timestamp_seconds",
            "When the last lifecycle pass finished (Unix time; 0: none yet in this run).",
            registry=reg,
            multiprocess_mode="max",
        )
        self.journal_compactions = Counter(
            "coffer_engine_journal_compactions",
            "Online compactions of the disk engine's metadata journal.",
            registry=reg,
        )
        self.journal_compacted_bytes = Counter(
            "coffer_engine_journal_compacted_bytes",
            "Bytes by which journal compactions shrank the metadata journal.",
            registry=reg,
        )
        self.encryption_failures = Counter(
            "coffer_encryption_failures",
            "Encrypted body frames that failed authentication on read (corruption or tampering at rest).",
            registry=reg,
        )
        self.build_info = Gauge(
            "coffer_build_info",
            "Always 1; the version label says which Coffer runs.",
            ["version"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.build_info.labels(version=__version__).set(1)
        self.observer = _Observer(self)
        self.lifecycle_observer = _LifecycleMetrics(self)
        self.events = _EventsCollector()
        self.storage = _StorageCollector()
        self._children: dict[tuple[str, int], tuple[Counter, Histogram, Counter, Counter]] = {}
        if multi:
            assert self.multiproc_path is not None
            self.scrape_registry = CollectorRegistry()
            MultiProcessCollector(self.scrape_registry, path=self.multiproc_path)
            self.scrape_registry.register(_WorkersProcessCollector(self.multiproc_path))
        else:
            self.scrape_registry = self.registry
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.scrape_registry.register(self.storage)
        self.scrape_registry.register(self.events)

    def request_done(self, operation: str, status: int, received: int, sent: int, seconds: float) -> None:
        key = (operation, status // 100)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a tuple: do it once per (operation, status class).
            children = self._children[key] = (
                self.requests.labels(operation, _STATUS_CLASSES.get(status // 100, "other")),
                self.latency.labels(operation),
                self.received.labels(operation),
                self.sent.labels(operation),
            )
        count, latency, rx, tx = children
        count.inc()
        latency.observe(seconds)
        if received:
            rx.inc(received)
        if sent:
            tx.inc(sent)

    async def render(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape body and its content type (OpenMetrics when the scraper asks for it)."""
        if self.engine is not None:
            try:
                self.storage.stats = await self.engine.storage_stats()
            except Exception:
                self.storage.stats = None  # the storage gauges go missing rather than failing the scrape
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.scrape_registry), content_type

    def worker_exiting(self) -> None:
        """Drop this worker's live gauges (in-flight) from the shared files."""
        if self.multiproc_path is not None:
            mark_process_dead(os.getpid(), self.multiproc_path)


def _returning(pid: int) -> Callable[[], int]:
    return lambda: pid


class _EventsCollector:
    """Event notification counts per target, read at scrape time from where deliveries run (the
    delivery process's counts file, or this process: coffer/events/stats.py)."""

    def __init__(self) -> None:
        self.source: Callable[[], Counts] | None = None

    def collect(self) -> Iterator[Metric]:
        counts = self.source() if self.source is not None else {}
        families: list[CounterMetricFamily | GaugeMetricFamily] = [
            CounterMetricFamily(
                "coffer_events_queued",
                "Event notification deliveries queued (one per event and matching rule), by target.",
                labels=["target"],
            ),
            CounterMetricFamily(
                "coffer_events_delivered",
                "Event notification deliveries the target accepted (2xx), by target.",
                labels=["target"],
            ),
            CounterMetricFamily(
                "coffer_events_failed",
                "Event notification deliveries given up and written to the dead-letter log, by target.",
                labels=["target"],
            ),
            CounterMetricFamily(
                "coffer_events_retried",
                "Event notification delivery attempts that failed (timeout, error, non-2xx) and were retried "
                "or given up, by target.",
                labels=["target"],
            ),
            GaugeMetricFamily(
                "coffer_events_queue_depth",
                "Event notification deliveries waiting, in flight or backing off, by target.",
                labels=["target"],
            ),
        ]
        for target, values in sorted(counts.items()):
            for family, value in zip(families, values, strict=True):
                family.add_metric([target], value)
        yield from families
