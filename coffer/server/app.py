"""The ASGI application: parse, classify, dispatch, answer (errors as S3 XML)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coffer import __version__, logs
from coffer.config import Settings
from coffer.console.routes import OPERATION as CONSOLE_OPERATION
from coffer.console.routes import Console
from coffer.events.notifier import Notifier
from coffer.events.targets import parse_targets
from coffer.lifecycle.lease import FileLease
from coffer.lifecycle.worker import LifecycleWorker
from coffer.server import compression, event_stream, gc_tuning, notify, public_access, xml
from coffer.server.auth import DEFAULT_OWNER
from coffer.server.auth.gate import AuthGate
from coffer.server.bucket_state import BucketStates
from coffer.server.context import Context, Handler
from coffer.server.cors import Cors
from coffer.server.errors import S3Error, from_storage
from coffer.server.http import Response
from coffer.server.probes import PREFIX as PROBE_PREFIX
from coffer.server.probes import Probes
from coffer.server.request import ClientDisconnected, Request, new_request_id, request_has_body
from coffer.server.router import classify
from coffer.storage.api import Engine
from coffer.storage.errors import StorageError

if TYPE_CHECKING:
    from coffer.server.metrics import Metrics

log = logging.getLogger("coffer.server")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def build_engine(settings: Settings) -> Engine:
    if settings.storage == "memory":
        from coffer.storage.memory import MemoryEngine

        return MemoryEngine(
            max_memory=settings.max_memory,
            max_object_size=settings.max_object_size,
            max_buckets=settings.max_buckets,
            max_objects_per_bucket=settings.max_objects_per_bucket,
            default_ttl=settings.default_ttl_seconds,
            reaper_interval=settings.ttl_reaper_interval,
            persistence_dir=settings.store_dir(),  # None: nothing persisted
            fsync=settings.fsync == "always",
            wal_batch_max=settings.wal_batch_max,
            wal_batch_interval=settings.wal_batch_interval_ms / 1000,
            snapshot_interval=settings.snapshot_interval,
            upload_max_age_seconds=settings.multipart_upload_max_age,
        )

    from coffer.storage.disk import DiskEngine

    return DiskEngine(
        settings.data_dir,
        fsync=settings.fsync == "always",
        inline_threshold=settings.inline_threshold,
        # Another worker's commits would not invalidate this process's cache.
        read_cache_bytes=settings.read_cache_bytes if settings.workers == 1 else 0,
        max_object_size=settings.max_object_size,
        orphan_grace_seconds=settings.orphan_grace_seconds,
        upload_max_age_seconds=settings.multipart_upload_max_age,
        max_buckets=settings.max_buckets,
        max_objects_per_bucket=settings.max_objects_per_bucket,
        default_ttl=settings.default_ttl_seconds,
        reaper_interval=settings.ttl_reaper_interval,
        data_mode=settings.data_mode,
        journal_compact_min_bytes=settings.journal_compact_min_bytes,
    )


def lifecycle_worker(settings: Settings, engine: Engine, metrics: Metrics | None) -> LifecycleWorker | None:
    """The lifecycle worker of this process (None: lifecycle off). With several workers sharing a
    data directory, a lease file there makes exactly one of them run passes (coffer/lifecycle/lease.py)."""
    if not settings.lifecycle:
        return None
    lease = FileLease(Path(settings.data_dir)) if settings.workers > 1 else None
    return LifecycleWorker(
        engine,
        day_seconds=settings.lifecycle_day_seconds,
        interval=settings.lifecycle_interval,
        page_size=settings.lifecycle_page_size,
        observer=metrics.lifecycle_observer if metrics is not None else None,
        lease=lease,
    )


def build_notifier(settings: Settings) -> Notifier:
    """Event notifications: the queue lives in <store>/events, read by a delivery process (without a
    store directory nothing is kept and deliveries run in this process)."""
    store = settings.store_dir()
    return Notifier(
        parse_targets(settings.notification_targets),
        Path(store) / "events" if store is not None else None,
        fsync=settings.fsync == "always",
        region=settings.region,
        shared=settings.workers > 1,
        log_settings={
            "log_level": settings.log_level,
            "log_file": settings.log_file,
            "log_format": settings.log_format,
        },
    )


def error_response(err: S3Error, request: Request | None, resource: str = "") -> Response:
    if err.status == 304:
        # Not Modified never has a body (a client would read it as the next response).
        return Response(304, list(err.headers), b"")
    request_id = request.request_id if request is not None else new_request_id()
    inner = [xml.elem("Code", err.code), xml.elem("Message", err.message)]
    inner += [xml.elem(k, v) for k, v in err.fields.items()]
    inner += [xml.elem("Resource", resource), xml.elem("RequestId", request_id), xml.elem("HostId", request_id)]
    response = Response(err.status, list(err.headers), xml.document("Error", "".join(inner), namespace=False))
    response.header("content-type", "application/xml")
    return response


class CofferApp:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        from coffer.server.handlers import HANDLERS
        from coffer.tracing import setup_tracing

        self.settings = settings
        self.engine = engine if engine is not None else build_engine(settings)
        # Operability (docs/operations.md): metrics, tracing, probes, CORS, traffic totals.
        self.metrics = None
        if settings.metrics:
            from coffer.server.metrics import Metrics

            self.metrics = Metrics(self.engine)
            self.engine.observer = self.metrics.observer
            from coffer.server import encryption

            encryption.on_tampered = self.metrics.encryption_failures.inc
        self.tracing = setup_tracing()
        if self.tracing is not None:
            self.engine = self.tracing.wrap_engine(self.engine)
        self.traffic = logs.Traffic()
        self.probes = Probes(settings, self.engine, self.traffic, self.metrics)
        self.cors = Cors(self.engine, settings.cors_allow_all)
        buckets = BucketStates(self.engine, default_block=public_access.DEFAULTS[settings.public_access_block])
        self.auth = AuthGate(settings, self.engine, buckets)
        # The web console (docs/console.md); its page's S3 requests sign in with the session cookie.
        self.console = Console(settings, self.engine, self.auth, self.metrics)
        self.auth.session_auth = self.console.session_principal
        self.notifier = build_notifier(settings)
        if self.metrics is not None:
            self.metrics.events.source = self.notifier.delivery_counts
        self.context = Context(self.engine, settings, DEFAULT_OWNER, self.auth, buckets, notifier=self.notifier)
        self.handlers: dict[str, Handler] = HANDLERS
        self.base_domains = tuple(d.lower().strip(".") for d in settings.base_domains if d)
        self._started = False
        self.tune_gc = False  # set by the server's worker factory (runner.py): gc_tuning at start-up
        self._background: list[asyncio.Task[None]] = []
        # Lifecycle rules run here (add_listener: the hook for s3:LifecycleExpiration:* events).
        self.lifecycle = lifecycle_worker(settings, self.engine, self.metrics)
        if self.lifecycle is not None:
            self.lifecycle.add_listener(notify.lifecycle_listener(self.context))

    async def startup(self) -> None:
        if not self._started:
            await self.engine.start()
            await self.notifier.start()  # after the engine: deliveries left by an earlier process resume
            self._started = True
            if self.settings.bandwidth_report_seconds:
                every = self.settings.bandwidth_report_seconds
                self._background.append(asyncio.create_task(logs.report_bandwidth(self.traffic, every)))
            if self.lifecycle is not None:
                self._background.append(asyncio.create_task(self.lifecycle.run_forever(), name="coffer-lifecycle"))
            if self.tune_gc:
                gc_tuning.tune_for_serving()

    async def shutdown(self) -> None:
        if self._started:
            for task in self._background:
                task.cancel()
            self._background.clear()
            if self.lifecycle is not None and self.lifecycle.lease is not None:
                self.lifecycle.lease.release()
            await self.notifier.close()
            await self.engine.close()  # commits every write accepted so far
            self._started = False
            if self.metrics is not None:
                self.metrics.worker_exiting()
            if self.tracing is not None:
                self.tracing.shutdown()
            logs.flush_access_log()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        span = None
        if self.tracing is not None:
            span = self.tracing.start_request(scope["method"], scope["path"], _headers(scope), _client(scope))
        request: Request | None = None
        status = 499  # no answer was sent: the client left, or shutdown cancelled the request (nginx's 499)
        sent = 0
        try:
            try:
                request = Request(scope, receive, self.base_domains)
            except S3Error as err:
                response: Response | None = error_response(err, None, _resource(scope))
            else:
                response = await self._respond(scope, request)
            if response is not None:
                if request is not None and "origin" in request.headers and request.operation != "PreflightRequest":
                    await self.cors.decorate(request, response)
                if self.settings.compression and scope["method"] != "HEAD":
                    accept = request.headers.get("accept-encoding") if request is not None else None
                    response = await compression.compress(response, accept, self.settings.compression_min_size)
                status = response.status
                sent = await self._send(scope, send, response, request, receive)
        finally:
            self._finished(scope, request, status, sent, time.perf_counter() - started, span)

    def _finished(
        self, scope: dict[str, Any], request: Request | None, status: int, sent: int, seconds: float, span: Any
    ) -> None:
        """Metrics, access log, traffic totals and trace span for one finished request."""
        operation = request.operation if request is not None else "Unknown"
        received = request.bytes_in if request is not None else 0
        self.traffic.add(received, sent)
        if self.metrics is not None:
            self.metrics.in_flight.dec()
            self.metrics.request_done(operation, status, received, sent, seconds)
        if span is not None:
            span.finish(operation, request.bucket if request else None, request.key if request else None, status)
        access = logs.access
        if access is None:
            return
        if request is None:
            access.log(scope["method"], None, None, None, "-", operation, status, 0, sent, seconds, _client(scope))
            return
        if request.bucket == PROBE_PREFIX and not logging.getLogger().isEnabledFor(logging.DEBUG):
            return  # probes and scrapes are logged only at debug level
        access.log(
            scope["method"],
            request.bucket,
            request.key,
            request.headers,
            request.request_id,
            operation,
            status,
            received,
            sent,
            seconds,
            request.client,
            logs.access_key_id(request.headers, request.query),
        )

    async def _respond(self, scope: dict[str, Any], request: Request) -> Response | None:
        """Classify and run the handler; errors become S3 error responses; None when the client left."""
        try:
            admin_only = _admin_only(scope, self.settings)
            if request.bucket == PROBE_PREFIX and request.key == event_stream.NAME and not admin_only:
                return await event_stream.open_stream(request, self.auth, self.engine, self.notifier)
            if request.bucket == PROBE_PREFIX and (request.key or "").partition("/")[0] == "console":
                request.operation = CONSOLE_OPERATION
                return await self.console.handle(request)
            if request.bucket == PROBE_PREFIX or (admin_only and self.console.session_principal(request) is None):
                # Health, readiness and metrics: never a bucket (names cannot contain '_').
                name = request.key if request.bucket == PROBE_PREFIX else None
                request.operation = self.probes.operation(name) or "CofferNotFound"
                return await self.probes.handle(name, request.method, request.headers.get("accept"))
            route = classify(request)
            if route is None:
                raise S3Error("MethodNotAllowed")
            request.route = route
            request.operation = route.name
            await self.auth.admit(request)
            handler = self.handlers.get(route.name)
            if handler is None:
                raise S3Error("NotImplemented", f"{route.name} is not implemented by Coffer yet.")
            response = await handler(self.context, request)
        except S3Error as err:
            response = error_response(err, request, _resource(scope))
        except StorageError as exc:
            response = error_response(from_storage(exc), request, _resource(scope))
        except ClientDisconnected:
            return None
        except Exception:
            log.exception("internal error handling %s %s", scope.get("method"), scope.get("path"))
            response = error_response(S3Error("InternalError"), request, _resource(scope))
        return response

    async def _send(
        self, scope: dict[str, Any], send: Send, response: Response, request: Request | None, receive: Receive
    ) -> int:
        """Send the response; returns the body bytes sent."""
        headers = response.headers
        request_id = (request.request_id if request is not None else new_request_id()).encode()
        headers.append((b"x-amz-request-id", request_id))
        headers.append((b"x-amz-id-2", request_id))
        if request.body_pending() if request is not None else request_has_body(_headers(scope)):
            # The unread body (or, after Expect: 100-continue, a body the client will
            # never send) would be parsed as the next request: close the connection.
            headers.append((b"connection", b"close"))
        body = response.body
        head = scope["method"] == "HEAD"
        if response.length is not None:
            headers.append((b"content-length", b"%d" % response.length))
        elif isinstance(body, bytes) and not any(name == b"content-length" for name, _ in headers):
            headers.append((b"content-length", b"%d" % len(body)))
        if isinstance(body, bytes):
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else body})
            return 0 if head else len(body)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if head:
            await _close(body)
            await send({"type": "http.response.body", "body": b""})
            return 0
        # uvicorn's send() silently drops data once the client is gone: without a
        # watcher a hung-up download would still read the whole object from disk.
        # Bodies of one chunk or less have nothing left to save; an unread request
        # body owns receive() (never the case for GET).
        watcher = None
        long_body = response.length is None or response.length > STREAM_WATCH_THRESHOLD
        if long_body and request is not None and not request.body_pending():
            watcher = asyncio.ensure_future(_wait_disconnect(receive))
        sent = 0
        try:
            async for chunk in body:
                if watcher is not None and watcher.done():
                    return sent
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
        finally:
            if watcher is not None:
                watcher.cancel()
            await _close(body)
        await send({"type": "http.response.body", "body": b""})
        return sent


STREAM_WATCH_THRESHOLD = 1024 * 1024


async def _wait_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected (or the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _close(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


def _resource(scope: dict[str, Any]) -> str:
    return str(scope.get("path", ""))


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _admin_only(scope: dict[str, Any], settings: Settings) -> bool:
    """Requests that arrived on the admin port reach only the probes."""
    server = scope.get("server")
    return bool(settings.admin_port) and server is not None and server[1] == settings.admin_port


def app_from_env() -> CofferApp:
    """Factory for ASGI servers that start worker processes by import string."""
    settings = Settings.from_json(os.environ["COFFER_SETTINGS_JSON"])
    logs.setup_logging(settings)
    return CofferApp(settings)


__all__ = ["DEFAULT_OWNER", "CofferApp", "__version__", "app_from_env", "error_response"]
