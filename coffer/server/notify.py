"""Handlers' side of event notifications: after a write committed, ``emit_request_event`` turns what the
request did into an ``ObjectEvent`` and queues it (coffer/events/notifier.py) before the response goes out.

A bucket without notification rules and without live-stream listeners costs one check of its cached
state (bucket_state.py), which the write already read. Work outside a request (the lifecycle worker)
calls ``emit_event``: the same rules, the same queue, with its own principal.
"""

from __future__ import annotations

import asyncio

from coffer.events.records import ObjectEvent
from coffer.server.context import Context
from coffer.server.request import Request
from coffer.storage.api import DeleteResult, ObjectInfo


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
    if notifier is None:
        return
    states = ctx.bucket_states()
    state = states.fresh(bucket) or await states.get(bucket)  # the write just read it: cached
    if not notifier.wanted(bucket, state.notification):
        return
    await notifier.emit(
        ObjectEvent(
            event,
            bucket,
            key,
            size=size,
            etag=etag,
            version_id=version_id,
            principal_id=principal_id,
            source_ip=source_ip,
            request_id=request_id,
            bucket_owner=state.info.owner,
        ),
        state.notification,
    )


async def emit_request_event(
    ctx: Context, req: Request, event: str, key: str, info: ObjectInfo | None = None, version_id: str | None = None
) -> None:
    """The event of a request's committed write: ``info`` the object it wrote (created, tagged)."""
    assert req.bucket is not None
    if ctx.notifier is None:
        return
    await emit_event(
        ctx,
        req.bucket,
        key,
        event,
        size=info.size if info is not None and event.startswith("s3:ObjectCreated:") else None,
        etag=info.etag if info is not None and event.startswith("s3:ObjectCreated:") else None,
        version_id=info.version_id if info is not None else version_id,
        principal_id=req.principal.id or "",
        source_ip=req.client_ip,
        request_id=req.request_id,
    )


async def emit_request_events(ctx: Context, req: Request, removed: list[tuple[str, str, str | None]]) -> None:
    """The events of a DeleteObjects, (event, key, version id) each: queued together, so with fsync on
    they share one fsync (the queue's group commit) instead of one each."""
    if ctx.notifier is None or not removed:
        return
    await asyncio.gather(*(emit_request_event(ctx, req, e, key, version_id=v) for e, key, v in removed))


def removed_event(requested_version: str | None, result: DeleteResult) -> str:
    """ObjectRemoved:DeleteMarkerCreated when the delete made a marker, else ObjectRemoved:Delete."""
    made_marker = requested_version is None and result.delete_marker
    return "s3:ObjectRemoved:DeleteMarkerCreated" if made_marker else "s3:ObjectRemoved:Delete"
