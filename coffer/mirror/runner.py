"""copy, sync and verify: the listings merged (plan.py) and the work spread over a thread pool.

Resumability comes from the comparison itself, not from a state file: an object is written with
one PUT or one CompleteMultipartUpload, so it is either wholly at the destination or not at all,
and a re-run skips every object the destination already holds (same size and ETag, or not older
for multipart ETags). A state file could go stale the moment someone touches the destination;
the destination's own listing cannot, and costs one request per 1,000 keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from coffer.mirror.client import RemoteError, S3Client
from coffer.mirror.location import Location, LocationError
from coffer.mirror.plan import Pair, merge, up_to_date, verdict
from coffer.mirror.progress import Meter, Report
from coffer.mirror.transfer import (
    Copier,
    Interrupted,
    MismatchError,
    TransferOptions,
    full_object_checksum,
    hash_object,
)

COMMANDS = ("copy", "sync", "verify")
_DELETE_BATCH = 1000
_QUEUE_AHEAD = 10_000
_MAX_LISTED_FAILURES = 1000


@dataclass(frozen=True)
class MirrorOptions:
    concurrency: int = 16
    dry_run: bool = False
    delete: bool = False  # sync only: remove destination objects the source does not have
    read_back: bool = False  # verify only: hash both sides' bytes instead of trusting ETags
    retries: int = 3  # per object, on transient errors and checksum mismatches
    max_objects: int | None = None  # stop after starting this many copies (tests of resuming)
    progress: bool = True
    ca_bundle: str | None = None
    transfer: TransferOptions = field(default_factory=TransferOptions)


def check_distinct(source: Location, dest: Location) -> None:
    same_bucket = source.endpoint == dest.endpoint and source.bucket == dest.bucket
    if same_bucket and (source.prefix.startswith(dest.prefix) or dest.prefix.startswith(source.prefix)):
        raise LocationError("source and destination overlap (same endpoint, bucket and nested prefixes)")


class _Run:
    def __init__(self, command: str, source: Location, dest: Location, options: MirrorOptions) -> None:
        self.command = command
        self.source, self.dest, self.options = source, dest, options
        self.src = S3Client(source, ca_bundle=options.ca_bundle)
        self.dst = S3Client(dest, ca_bundle=options.ca_bundle)
        self.report = Report(command, source.url(), dest.url(), dry_run=options.dry_run)
        self.meter = Meter(enabled=options.progress)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # Bounds the work queued ahead of the workers (a few MB): the listing runs ahead of the
        # copying by that much, so the ETA (known once the listing ends) shows early in runs of
        # up to that many objects and for the last that many of larger ones.
        self.window = threading.BoundedSemaphore(max(options.concurrency * 4, _QUEUE_AHEAD))
        self.copier = Copier(self.src, self.dst, options.transfer, self.stop, options.concurrency)
        self.pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="mirror")
        self.to_delete: list[str] = []
        self.pending: set[Future[None]] = set()

    # ------------------------------------------------------------------ driving
    def run(self) -> Report:
        started = time.monotonic()
        self.meter.start()
        try:
            if self.command != "verify" and not self.options.dry_run:
                self._ensure_dest_bucket()
            self._walk()
            self.meter.listing_done = True
            self._drain()
            self._delete()
        except KeyboardInterrupt:
            self.report.interrupted = True
            self._wind_down()
        except BaseException:  # a listing failed mid-way: nothing more is started
            self._wind_down()
            raise
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.copier.close()
            self.src.close()
            self.dst.close()
            self.meter.stop()
            self.report.seconds = time.monotonic() - started
        return self.report

    def _wind_down(self) -> None:
        """Objects in flight finish or abort (multipart); queued ones are dropped. A second
        Ctrl-C while they wind down leaves at once."""
        self.stop.set()
        with self.lock:
            queued = list(self.pending)
        for future in queued:
            future.cancel()
        self._drain()

    def _ensure_dest_bucket(self) -> None:
        """Create the destination bucket when it does not exist (as rclone does), once the
        source bucket is known to be there: a typo in SRC must not leave an empty bucket behind."""
        try:
            self.dst.request("HEAD")
        except RemoteError as exc:
            if exc.status != 404:
                raise
            self.src.request("HEAD")
            self.dst.create_bucket()

    def _walk(self) -> None:
        pairs = merge(
            self.src.list_objects(self.source.prefix),
            self.dst.list_objects(self.dest.prefix),
            self.source.prefix,
            self.dest.prefix,
        )
        started = 0
        for pair in pairs:
            if self.command == "verify":
                self._verify_pair(pair)
                continue
            if pair.source is None:
                if self.options.delete:
                    self.to_delete.append(pair.name)
                continue
            if pair.dest is not None and up_to_date(pair.source, pair.dest):
                self.report.skipped += 1
                continue
            if self.options.dry_run:
                self.report.would_copy.append(pair.name)
                continue
            if self.options.max_objects is not None and started >= self.options.max_objects:
                self.report.interrupted = True
                return
            started += 1
            self.meter.plan(pair.source.size)
            self._submit(self._copy, pair)

    def _submit(self, task: Callable[[Pair], None], pair: Pair) -> None:
        self.window.acquire()

        def run() -> None:
            try:
                if not self.stop.is_set():
                    task(pair)
            except Exception as exc:  # a bug or an unforeseen error: counted, never lost silently
                self._fail(pair.name, f"{type(exc).__name__}: {exc}")
            finally:
                self.window.release()

        future = self.pool.submit(run)
        with self.lock:
            self.pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self.lock:
            self.pending.discard(future)

    def _drain(self) -> None:
        """Wait for the submitted work. Not ``pool.shutdown(wait=True)``: a Ctrl-C that interrupts
        Thread.join can leave the thread looking finished (CPython 3.11), and the process would
        then exit under a multipart upload it meant to abort."""
        while True:
            with self.lock:
                pending = list(self.pending)
            if not pending:
                return
            wait(pending, timeout=0.5)

    def _fail(self, name: str, error: str) -> None:
        with self.lock:
            self.report.failed += 1
            if len(self.report.failures) < _MAX_LISTED_FAILURES:
                self.report.failures.append({"key": name, "error": error})

    def _retrying(self, name: str, attempt_fn: Callable[[Callable[[int], None]], None]) -> bool:
        """Run ``attempt_fn(progress)`` until it succeeds, retries run out or the run stops;
        bytes an abandoned attempt counted are taken back off the meter."""
        counting = threading.Lock()  # the parts of one multipart copy report from several threads
        for attempt in range(self.options.retries + 1):
            counted = 0

            def progress(n: int) -> None:
                nonlocal counted
                with counting:
                    counted += n
                self.meter.add_bytes(n)

            try:
                attempt_fn(progress)
                return True
            except Interrupted:
                self.meter.add_bytes(-counted)
                return False
            except (RemoteError, MismatchError) as exc:
                self.meter.add_bytes(-counted)
                if self.stop.is_set():
                    return False
                # 412: a multipart copy's If-Match failed, the object changed mid-copy; a new
                # attempt copies the new version.
                retryable = isinstance(exc, MismatchError) or exc.retryable or exc.status == 412
                if not retryable or attempt == self.options.retries:
                    self._fail(name, str(exc))
                    return False
                time.sleep(min(0.2 * 2**attempt, 5.0))
        return False

    # ------------------------------------------------------------------ copy / sync
    def _copy(self, pair: Pair) -> None:
        assert pair.source is not None
        entry, dest_key = pair.source, self.dest.prefix + pair.name
        copied = 0

        def attempt(progress: Callable[[int], None]) -> None:
            nonlocal copied
            copied = self.copier.copy(entry, dest_key, progress)

        if self._retrying(pair.name, attempt):
            with self.lock:
                self.report.copied += 1
                self.report.bytes += copied
            self.meter.object_done()

    def _delete(self) -> None:
        if not self.to_delete:
            return
        if self.options.dry_run:
            self.report.would_delete = self.to_delete
            return
        if self.report.failed or self.report.interrupted:
            # As rclone does: a source that could not be read whole must not empty the destination.
            self.report.deletes_skipped = f"{len(self.to_delete)} deletions skipped: the copy had failures"
            return
        for start in range(0, len(self.to_delete), _DELETE_BATCH):
            names = self.to_delete[start : start + _DELETE_BATCH]
            try:
                errors = self.dst.delete_objects([self.dest.prefix + name for name in names])
            except RemoteError as exc:
                for name in names:
                    self._fail(name, f"delete: {exc}")
                continue
            failed = {key[len(self.dest.prefix) :] for key, _ in errors}
            for key, error in errors:
                self._fail(key[len(self.dest.prefix) :], f"delete: {error}")
            self.report.deleted += len(names) - len(failed)

    # ------------------------------------------------------------------ verify
    def _verify_pair(self, pair: Pair) -> None:
        state = verdict(pair)
        if state == "missing":
            self.report.missing.append(pair.name)
        elif state == "extra":
            self.report.extra.append(pair.name)
        elif state == "differs":
            self.report.differs.append(pair.name)
        elif state == "ok" and not self.options.read_back:
            self.report.verified += 1
        else:
            assert pair.source is not None
            self.meter.plan(pair.source.size * (2 if self.options.read_back else 0))
            self._submit(self._verify_deep, pair)

    def _verify_deep(self, pair: Pair) -> None:
        """Read both objects back and compare their MD5s (``--read-back``), or else compare the
        whole-object checksums both sides report (HEAD with checksum mode)."""
        assert pair.source is not None and pair.dest is not None
        src_key, dst_key = pair.source.key, pair.dest.key
        outcome = ""

        def attempt(progress: Callable[[int], None]) -> None:
            nonlocal outcome
            if self.options.read_back:
                same = hash_object(self.src, src_key, progress) == hash_object(self.dst, dst_key, progress)
                outcome = "ok" if same else "differs"
                return
            mode = {"x-amz-checksum-mode": "ENABLED"}
            theirs = full_object_checksum(self.src.head_object(src_key, mode))
            ours = full_object_checksum(self.dst.head_object(dst_key, mode))
            if theirs is None or ours is None or theirs[0] != ours[0]:
                outcome = "size_only"
            else:
                outcome = "ok" if theirs == ours else "differs"

        if not self._retrying(pair.name, attempt):
            return
        with self.lock:
            if self.options.read_back:
                self.report.bytes += pair.source.size + pair.dest.size
            if outcome == "ok":
                self.report.verified += 1
            elif outcome == "size_only":
                self.report.size_only += 1
            else:
                self.report.differs.append(pair.name)
        self.meter.object_done()


def run_mirror(command: str, source: Location, dest: Location, options: MirrorOptions) -> Report:
    """Run ``command`` (copy, sync or verify) from ``source`` to ``dest``; RemoteError when a
    listing fails (nothing can be planned), otherwise per-object failures are in the report."""
    if command not in COMMANDS:
        raise ValueError(command)
    check_distinct(source, dest)
    return _Run(command, source, dest, options).run()
