"""The lifecycle worker: passes over every bucket with lifecycle rules, acting on what is due.

A pass over one bucket walks ListObjectVersions pages (``page_size`` versions under the rules'
common prefix), decides per version with coffer.storage.lifecycle, and applies a page's deletes in
one ``delete_objects`` call (one transaction on the disk engine), then its transitions; then it
walks the multipart uploads the same way. Between pages it yields to the event loop.

Resumable and idempotent: after each page a cursor (the bucket document ``lifecycle_cursor``:
where the next page starts and what the pass knows of the key it is in) is stored; a crash
repeats at most the page in flight, and every action is safe to repeat: a version is removed by
its id (removing what is gone succeeds), the current version is expired only while it is still
the one the pass saw (a delete condition on its ETag and Last-Modified), a transition only while
the version keeps its ETag, an abort of an upload already gone is ignored.

Object Lock wins: the engine refuses to remove a protected version (the pass skips it), and the
pass does not hide a protected current version behind a delete marker either.

Nothing here knows HTTP or SQL: only the Engine API (coffer/storage/api.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coffer.lifecycle.lease import FileLease
from coffer.storage import errors
from coffer.storage import lifecycle as lc
from coffer.storage.api import BucketInfo, DeleteCondition, DeleteRequest, DeleteResult, Engine, VersionEntry

log = logging.getLogger("coffer.lifecycle")

CURSOR_NAME = "lifecycle_cursor"  # the bucket document holding a pass's progress
_VERSIONS, _UPLOADS = "versions", "uploads"
# Versions decided between two yields to the event loop (about 1 ms of work on this machine).
_DECISIONS_PER_YIELD = 100


@dataclass(frozen=True, slots=True)
class Expiration:
    """One object version expired by a lifecycle rule: what an ``s3:LifecycleExpiration:*`` event
    reports. ``delete_marker_created``: the current version was hidden by a new delete marker
    (``version_id`` is the marker's; DeleteMarkerCreated), else a version (or a delete marker) was
    removed for good (``version_id`` None: the object of a never-versioned bucket; Delete)."""

    bucket: str
    key: str
    version_id: str | None
    delete_marker_created: bool
    rule_id: str


class LifecycleObserver:
    """Receives the worker's progress; the default does nothing. The server plugs in metrics."""

    def scanned(self, versions: int) -> None:
        """A page of ``versions`` object versions (or uploads) was examined."""

    def acted(self, action: str, count: int = 1) -> None:
        """``count`` actions of kind ``action`` (coffer.storage.lifecycle.ACTIONS) were applied."""

    def skipped(self, reason: str, count: int = 1) -> None:
        """Due actions not applied: ``locked`` (Object Lock) or ``changed`` (the version changed)."""

    def bucket_done(self, bucket: str, seconds: float) -> None:
        """The pass over ``bucket`` finished."""

    def pass_done(self, seconds: float, finished_at: float) -> None:
        """A pass over every bucket finished."""


Listener = Callable[[Expiration], None]


@dataclass(slots=True)
class _KeyState:
    """What the pass knows of the key it is in (versions come newest first)."""

    key: str = ""
    seen: int = 0  # versions of the key seen so far
    newer_modified: float = 0.0  # Last-Modified of the version before (newer than) the next one
    noncurrent: int = 0  # noncurrent versions (not delete markers) seen so far
    marker_version: str | None = None  # the latest version is this delete marker
    marker_modified: float = 0.0


@dataclass(slots=True)
class _Plan:
    """One page's actions: deletes go to the engine together."""

    deletes: list[tuple[DeleteRequest, lc.Action]] = field(default_factory=list)
    transitions: list[tuple[VersionEntry, lc.Action]] = field(default_factory=list)


class LifecycleWorker:
    def __init__(
        self,
        engine: Engine,
        *,
        day_seconds: float = lc.DAY,
        interval: float = 600.0,
        page_size: int = 1000,
        observer: LifecycleObserver | None = None,
        clock: Callable[[], float] = time.time,
        lease: FileLease | None = None,
    ) -> None:
        self.engine = engine
        self.day = day_seconds
        self.interval = interval
        self.page_size = page_size
        self.observer = observer or LifecycleObserver()
        self.clock = clock
        self.lease = lease
        self.listeners: list[Listener] = []
        self._acted: dict[str, int] = {}  # actions of the bucket pass in progress, for its log line

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every Expiration applied (the hook for lifecycle event notifications).
        It runs on the event loop, after the change is committed: it must not block (queue the
        event, or start a task); an exception it raises is logged and does not stop the pass."""
        self.listeners.append(listener)

    # ------------------------------------------------------------------ scheduling
    async def run_forever(self) -> None:
        while True:
            started = time.monotonic()
            if self.lease is None or self.lease.acquire():
                try:
                    await self.run_pass()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("lifecycle pass failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def run_pass(self) -> None:
        """One pass over every bucket."""
        started = time.monotonic()
        for bucket in await self.engine.list_buckets():
            try:
                await self.run_bucket(bucket.name)
            except errors.NoSuchBucket:
                continue  # deleted meanwhile
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle pass over bucket %s failed", bucket.name)
        self.observer.pass_done(time.monotonic() - started, self.clock())

    async def run_bucket(self, bucket: str) -> None:
        """One pass over ``bucket`` (resuming where a pass that did not finish stopped)."""
        self._acted.clear()
        config = lc.Configuration.from_doc(await self.engine.get_bucket_config(bucket, lc.CONFIG_NAME))
        cursor = await self.engine.get_bucket_config(bucket, CURSOR_NAME)
        if config is None or not config.active:
            if cursor is not None:
                await self.engine.put_bucket_config(bucket, CURSOR_NAME, None)
            return
        started = time.monotonic()
        info = await self.engine.get_bucket(bucket)
        cursor = cursor if isinstance(cursor, dict) else {}
        if cursor.get("phase", _VERSIONS) == _VERSIONS:
            await self._versions(info, config, cursor)
            cursor = {"phase": _UPLOADS}
            await self.engine.put_bucket_config(bucket, CURSOR_NAME, cursor)
        if any(r.abort_days is not None for r in config.active):
            await self._uploads(bucket, config, cursor)
        await self.engine.put_bucket_config(bucket, CURSOR_NAME, None)
        seconds = time.monotonic() - started
        if self._acted:
            done = ", ".join(f"{n} {kind}" for kind, n in sorted(self._acted.items()))
            log.info("lifecycle pass over bucket %s: %s (%.2f s)", bucket, done, seconds)
            self._acted.clear()
        self.observer.bucket_done(bucket, seconds)

    # ------------------------------------------------------------------ object versions
    async def _versions(self, info: BucketInfo, config: lc.Configuration, cursor: dict[str, Any]) -> None:
        prefix = config.scan_prefix()
        key_marker = str(cursor.get("key") or "")
        version_marker = str(cursor.get("version") or "")
        state = _KeyState(**cursor["state"]) if isinstance(cursor.get("state"), dict) else _KeyState()
        # The removal of a page's last version waits for the next page: that version is where the
        # next listing starts (a marker that no longer exists would skip the rest of its key).
        # Kept in the cursor too, so a pass resumed after a crash applies it.
        held = [(DeleteRequest(k, v), lc.Action(kind, rule_id)) for k, v, kind, rule_id in cursor.get("held", [])]
        while True:
            page = await self.engine.list_object_versions(
                info.name,
                prefix=prefix,
                key_marker=key_marker,
                version_id_marker=version_marker,
                max_keys=self.page_size,
            )
            now = self.clock()
            plan = _Plan(deletes=held)
            for i, entry in enumerate(page.entries):
                if i % _DECISIONS_PER_YIELD == _DECISIONS_PER_YIELD - 1:
                    await asyncio.sleep(0)  # deciding a whole page at once would hold the loop for ms
                if entry.key != state.key:
                    self._finish_key(config, state, plan, now)
                    state = _KeyState(entry.key)
                await self._decide(info, config, entry, state, plan, now)
            held = []
            if not page.is_truncated:
                self._finish_key(config, state, plan, now)
            elif plan.deletes and page.entries:
                last, (request, _) = page.entries[-1], plan.deletes[-1]
                if (request.key, request.version_id) == (last.key, last.version_id):
                    held = [plan.deletes.pop()]
            await self._apply(info.name, plan)
            self.observer.scanned(len(page.entries))
            if not page.is_truncated or page.next_key_marker is None:
                return
            key_marker, version_marker = page.next_key_marker, page.next_version_id_marker or ""
            progress: dict[str, Any] = {"phase": _VERSIONS, "key": key_marker, "version": version_marker}
            progress["state"] = dataclasses.asdict(state)
            progress["held"] = [(r.key, r.version_id, a.kind, a.rule_id) for r, a in held]
            await self.engine.put_bucket_config(info.name, CURSOR_NAME, progress)
            await asyncio.sleep(0)  # requests first

    async def _decide(
        self,
        info: BucketInfo,
        config: lc.Configuration,
        entry: VersionEntry,
        state: _KeyState,
        plan: _Plan,
        now: float,
    ) -> None:
        version = lc.Version(entry.key, entry.size, entry.last_modified, entry.storage_class)
        newer_noncurrent, since = state.noncurrent, state.newer_modified
        state.seen += 1
        state.newer_modified = entry.last_modified
        if entry.is_latest and entry.delete_marker:
            state.marker_version, state.marker_modified = entry.version_id, entry.last_modified
            return
        if not entry.is_latest and not entry.delete_marker:
            state.noncurrent += 1
        if entry.delete_marker:
            version.tags = {}
        decide: Callable[[], lc.Action | None]
        if entry.is_latest:
            decide = lambda: lc.current_action(config, version, now, self.day)  # noqa: E731
        else:
            decide = lambda: lc.noncurrent_action(config, version, since, newer_noncurrent, now, self.day)  # noqa: E731
        action = decide()
        protected = False
        if action is lc.NEEDS_TAGS or (action is not None and action.kind == lc.EXPIRE and info.object_lock):
            # Read the version itself: its tags, and its lock (a protected current version keeps no
            # delete marker over it: Object Lock wins over lifecycle).
            try:
                head = await self.engine.head_object(info.name, entry.key, version_id=entry.version_id)
            except errors.StorageError:
                return  # gone or changed since the listing: the next pass sees it as it is
            version.tags = head.tags
            protected = bool(head.lock.legal_hold) or (
                head.lock.mode is not None and head.lock.retain_until is not None and head.lock.retain_until > now
            )
            action = decide()
        if action is None or action is lc.NEEDS_TAGS:
            return
        if action.kind == lc.EXPIRE:
            if protected:
                self.observer.skipped("locked")
                return
            # Only while it is still the version seen: a repeated or late pass expires nothing newer.
            condition = DeleteCondition(if_match=f'"{entry.etag}"', last_modified=entry.last_modified, size=entry.size)
            plan.deletes.append((DeleteRequest(entry.key, None, condition), action))
        elif action.kind == lc.NONCURRENT_EXPIRE:
            plan.deletes.append((DeleteRequest(entry.key, entry.version_id), action))
        else:
            plan.transitions.append((entry, action))

    def _finish_key(self, config: lc.Configuration, state: _KeyState, plan: _Plan, now: float) -> None:
        """A key whose only version is a delete marker: remove the marker when a rule says so."""
        if state.marker_version is None or state.seen != 1:
            return
        marker = lc.Version(state.key, 0, state.marker_modified, tags={})
        action = lc.marker_action(config, marker, now, self.day)
        if action is not None and action is not lc.NEEDS_TAGS:
            plan.deletes.append((DeleteRequest(state.key, state.marker_version), action))

    async def _apply(self, bucket: str, plan: _Plan) -> None:
        if plan.deletes:
            outcomes = await self.engine.delete_objects(bucket, [request for request, _ in plan.deletes])
            for (request, action), outcome in zip(plan.deletes, outcomes, strict=True):
                self._deleted(bucket, request, action, outcome)
        for entry, action in plan.transitions:
            assert action.storage_class is not None
            try:
                await self.engine.put_object_storage_class(
                    bucket, entry.key, action.storage_class, version_id=entry.version_id, if_match=entry.etag
                )
            except errors.StorageError:
                self.observer.skipped("changed")
                continue
            self._count(action.kind)
            log.debug(
                "lifecycle %s %s/%s %s -> %s", action.rule_id, bucket, entry.key, entry.version_id, action.storage_class
            )

    def _deleted(
        self, bucket: str, request: DeleteRequest, action: lc.Action, outcome: DeleteResult | Exception
    ) -> None:
        if isinstance(outcome, Exception):
            self.observer.skipped("locked" if isinstance(outcome, errors.ObjectLocked) else "changed")
            return
        self._count(action.kind)
        created = action.kind == lc.EXPIRE and outcome.delete_marker
        version = outcome.version_id if created or request.version_id is None else request.version_id
        log.debug("lifecycle %s %s: %s/%s %s", action.rule_id, action.kind, bucket, request.key, version)
        event = Expiration(bucket, request.key, version, created, action.rule_id)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("lifecycle expiration listener failed")

    def _count(self, kind: str) -> None:
        self._acted[kind] = self._acted.get(kind, 0) + 1
        self.observer.acted(kind)

    # ------------------------------------------------------------------ multipart uploads
    async def _uploads(self, bucket: str, config: lc.Configuration, cursor: dict[str, Any]) -> None:
        key_marker = str(cursor.get("key") or "")
        upload_marker = str(cursor.get("upload") or "")
        while True:
            page = await self.engine.list_multipart_uploads(
                bucket, key_marker=key_marker, upload_id_marker=upload_marker, max_uploads=self.page_size
            )
            now = self.clock()
            for upload in page.uploads:
                action = lc.upload_action(config, upload.key, upload.initiated, now, self.day)
                if action is None:
                    continue
                try:
                    await self.engine.abort_multipart_upload(bucket, upload.key, upload.upload_id)
                except errors.NoSuchUpload:
                    continue  # completed or aborted meanwhile
                self._count(action.kind)
            self.observer.scanned(len(page.uploads))
            if not page.is_truncated or page.next_key_marker is None:
                return
            key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker or ""
            progress = {"phase": _UPLOADS, "key": key_marker, "upload": upload_marker}
            await self.engine.put_bucket_config(bucket, CURSOR_NAME, progress)
            await asyncio.sleep(0)
