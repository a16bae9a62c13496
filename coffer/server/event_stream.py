"""``GET /_coffer/events?bucket=<name>&prefix=<p>``: the bucket's event records as Server-Sent Events.

Each event is one SSE message ``event: s3`` whose data is ``{"Records": [record]}``, the record as a
webhook gets it (``s3.configurationId`` is ``_coffer_stream``); a comment line every
``HEARTBEAT_SECONDS`` keeps proxies from closing an idle stream and notices a client that left.
The request is signed like any S3 request (SigV4 header or presigned URL) and authorized as
``s3:GetBucketNotification`` on the bucket: the bucket owner, or whom a policy grants it.
Listening starts when the stream opens: it is live, not a replay (the webhooks have the queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from coffer.events.notifier import STREAM_CONFIGURATION_ID, Notifier
from coffer.events.records import event_record, records_body
from coffer.events.stream import Subscription
from coffer.server.auth.gate import AuthGate
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.router import EVENT_STREAM
from coffer.storage.api import Engine

NAME = "events"  # /_coffer/events
HEARTBEAT_SECONDS = 5.0


async def open_stream(req: Request, gate: AuthGate, engine: Engine, notifier: Notifier) -> Response:
    if req.method != "GET":
        raise S3Error("MethodNotAllowed")
    bucket = req.query.get("bucket", "")
    if not bucket:
        raise S3Error("InvalidArgument", "The bucket query parameter is required.", ArgumentName="bucket")
    # Authorized as an S3 request on the bucket named by the query.
    req.bucket, req.key, req.route, req.operation = bucket, None, EVENT_STREAM, EVENT_STREAM.name
    await gate.admit(req)
    await engine.get_bucket(bucket)  # NoSuchBucket (when authorization is off, the gate did not look)
    subscription = notifier.stream.subscribe(bucket, req.query.get("prefix", ""))
    response = Response(200, body=_messages(notifier, subscription))
    response.header("content-type", "text/event-stream")
    response.header("cache-control", "no-store")
    response.header("x-accel-buffering", "no")  # nginx: pass each message on at once
    return response


async def _messages(notifier: Notifier, subscription: Subscription) -> AsyncIterator[bytes]:
    try:
        yield b": coffer event stream\n\n"
        while True:
            try:
                event = await asyncio.wait_for(subscription.events.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            data = records_body([event_record(event, notifier.region, STREAM_CONFIGURATION_ID)])
            yield b"event: s3\ndata: " + data + b"\n\n"
    finally:
        notifier.stream.unsubscribe(subscription)
