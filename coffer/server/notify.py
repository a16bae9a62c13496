"""Handlers' side of event notifications: after a write committed, ``request_event`` hands what the
request did to the notifier, which queues it (coffer/events/notifier.py) before the response goes out.
Writes that create an object (PutObject, POST, CopyObject, CompleteMultipartUpload) hand the engine a
``CommitHook`` instead (``commit_hook``), which queues the event where the write commits (the disk
engine's metadata writer thread), at a fraction of the cost to the serving process; when it cannot
(fsync on), the handler emits after the write as above.

A bucket without notification rules and without live-stream listeners costs one check of its cached
state (bucket_state.py), which the write already read. Work outside a request (the lifecycle worker)
calls ``emit_event``: the same rules, the same queue, with its own principal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from coffer.events.notifier import Notifier
from coffer.events.records import Facts
from coffer.lifecycle.worker import Expiration
from coffer.server.bucket_state import BucketState
from coffer.server.context import Context
from coffer.server.request import Request
from coffer.storage.api import DeleteResult, ObjectInfo

log = logging.getLogger("coffer.events")

# Who lifecycle events name as the principal, as S3's do.
LIFECYCLE_PRINCIPAL = "s3.amazonaws.com"


async def emit_event(
    ctx: Context,
    bucket: str,
    key: str,
    event: str,
    *,
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    principal_id: str = "",
    source_ip: str = "",
    request_id: str = "",
) -> None:
    """Queue ``event`` ("s3:ObjectCreated:Put", "s3:LifecycleExpiration:Delete", ...) on ``bucket``/``key``
    for every matching rule and live listener; returns once it is durable."""
    notifier = ctx.notifier
    if notifier is not None:
        await _emit_looked_up(
            ctx, notifier, (event, bucket, "", key, size, etag, version_id, principal_id, source_ip, request_id)
        )


async def _emit_looked_up(ctx: Context, notifier: Notifier, facts: Facts) -> None:
    """Emit ``facts`` with the bucket's rules and owner (third, filled in here) looked up."""
    states = ctx.bucket_states()
    state = states.fresh(facts[1]) or await states.get(facts[1])  # the write just read it: cached
    event, bucket, _, key, size, etag, version_id, principal_id, source_ip, request_id = facts
    owned = (event, bucket, state.info.owner, key, size, etag, version_id, principal_id, source_ip, request_id)
    waiting = notifier.emit(state.notification, owned)
    if waiting is not None:  # fsync on: the queue's group commit
        await waiting


def _request_facts(
    req: Request, event: str, bucket: str, owner: str, key: str, info: ObjectInfo | None, version_id: str | None
) -> Facts:
    """A request's event (``info``: the object it wrote, created or tagged)."""
    created = info is not None and event.startswith("s3:ObjectCreated:")
    return (
        event,
        bucket,
        owner,
        key,
        info.size if created and info is not None else None,
        info.etag if created and info is not None else None,
        info.version_id if info is not None else version_id,
        req.principal.id or "",
        req.client_ip,
        req.request_id,
    )


def request_event(
    ctx: Context, req: Request, event: str, key: str, info: ObjectInfo | None = None, version_id: str | None = None
) -> Awaitable[None] | None:
    """The event of a request's committed write (``info`` the object it wrote: created, tagged). The
    handler awaits what this returns, if anything, before it answers::

        if (waiting := request_event(ctx, req, "s3:ObjectCreated:Put", req.key, info)) is not None:
            await waiting

    Not a coroutine: it runs for every write, and for a bucket without rules and listeners it is two
    lookups. With fsync off the event is written when it returns (None)."""
    notifier = ctx.notifier
    if notifier is None:
        return None
    bucket = req.bucket
    assert bucket is not None
    state = ctx.bucket_states().fresh(bucket)  # the write just read it: cached
    if state is None:  # not cached any more: looked up
        return _emit_looked_up(ctx, notifier, _request_facts(req, event, bucket, "", key, info, version_id))
    if state.notification is None and not notifier.stream.listening(bucket):
        return None
    return notifier.emit(
        state.notification, _request_facts(req, event, bucket, state.info.owner, key, info, version_id)
    )


class CommitHook:
    """A write's ``s3:ObjectCreated:*`` event, queued where the engine commits the write: the engine's
    ``put_object``, ``copy_object`` or ``complete_multipart_upload`` calls it with the object once
    committed (``committed``; the disk engine in its metadata writer thread, one write after another
    of a batch). Queued there, an event costs the serving process a fraction of what
    ``request_event`` costs it on the loop, where each one comes between other requests' work
    (docs/benchmarks.md, "Event notifications"). When it could not be queued there (fsync on, no
    queue on disk, the bucket's rules not at hand), ``done`` stays False and the handler emits it
    after the write (``event_after_write``)::

        event = commit_hook(ctx, req, "s3:ObjectCreated:Put", req.key)
        info = await ctx.engine.put_object(..., committed=event)
        if (waiting := event_after_write(event, info)) is not None:
            await waiting
    """

    __slots__ = ("bucket", "ctx", "done", "event", "key", "req", "state")

    def __init__(
        self, ctx: Context, req: Request, event: str, bucket: str, key: str, state: BucketState | None
    ) -> None:
        self.ctx, self.req, self.event, self.bucket, self.key, self.state = ctx, req, event, bucket, key, state
        self.done = False

    def __call__(self, info: ObjectInfo) -> None:
        state, notifier = self.state, self.ctx.notifier
        if state is None or notifier is None:
            return
        self.done = notifier.emit_committed(
            state.notification,
            _request_facts(self.req, self.event, self.bucket, state.info.owner, self.key, info, None),
        )


def event_after_write(event: CommitHook | None, info: ObjectInfo) -> Awaitable[None] | None:
    """A ``CommitHook``'s event emitted on the loop after the write (``request_event``) when it was not
    queued where the write committed; None when it was, or when there is none."""
    if event is None or event.done:
        return None
    return request_event(event.ctx, event.req, event.event, event.key, info)


def commit_hook(ctx: Context, req: Request, event: str, key: str) -> CommitHook | None:
    """The ``committed`` callback that queues a write's event (``CommitHook``); None when there is no
    event to queue (no notifier, or a bucket without rules and live listeners: two lookups)."""
    notifier = ctx.notifier
    if notifier is None:
        return None
    bucket = req.bucket
    assert bucket is not None
    state = ctx.bucket_states().fresh(bucket)  # the handler just read it: cached
    if state is not None and state.notification is None and not notifier.stream.listening(bucket):
        return None
    return CommitHook(ctx, req, event, bucket, key, state)


async def request_events(ctx: Context, req: Request, removed: list[tuple[str, str, str | None]]) -> None:
    """The events of a DeleteObjects, (event, key, version id) each: queued together, so with fsync on
    they share one fsync (the queue's group commit) instead of one each."""
    if ctx.notifier is None or not removed:
        return
    waiting = [request_event(ctx, req, e, key, version_id=v) for e, key, v in removed]
    await asyncio.gather(*(w for w in waiting if w is not None))


def removed_event(requested_version: str | None, result: DeleteResult) -> str:
    """ObjectRemoved:DeleteMarkerCreated when the delete made a marker, else ObjectRemoved:Delete."""
    made_marker = requested_version is None and result.delete_marker
    return "s3:ObjectRemoved:DeleteMarkerCreated" if made_marker else "s3:ObjectRemoved:Delete"


def lifecycle_listener(ctx: Context) -> Callable[[Expiration], None]:
    """A listener for ``LifecycleWorker.add_listener``: every expiration applied becomes an
    ``s3:LifecycleExpiration:Delete`` (or ``:DeleteMarkerCreated``) event. The listener runs on the
    loop and must not block, so each event is queued by a task of its own; a crash between the
    lifecycle change and that task loses the event (the change itself answered nobody)."""
    pending: set[asyncio.Task[None]] = set()

    def done(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("lifecycle event not queued: %s", task.exception())

    def listener(expired: Expiration) -> None:
        suffix = "DeleteMarkerCreated" if expired.delete_marker_created else "Delete"
        emit = emit_event(
            ctx,
            expired.bucket,
            expired.key,
            f"s3:LifecycleExpiration:{suffix}",
            version_id=expired.version_id,
            principal_id=LIFECYCLE_PRINCIPAL,
        )
        task = asyncio.get_running_loop().create_task(emit)
        pending.add(task)  # a task nobody references may be collected before it ran
        task.add_done_callback(done)

    return listener
