"""The ASGI application: parse, classify, dispatch, answer (errors as S3 XML)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from coffer import __version__
from coffer.config import Settings
from coffer.server import xml
from coffer.server.errors import S3Error, from_storage
from coffer.server.http import Response
from coffer.server.request import ClientDisconnected, Request
from coffer.server.router import classify
from coffer.storage.api import Engine
from coffer.storage.errors import StorageError

log = logging.getLogger("coffer.server")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Owner:
    id: str
    display_name: str


# The identity that owns everything while the server runs without credentials.
DEFAULT_OWNER = Owner(id=hashlib.sha256(b"coffer").hexdigest(), display_name="coffer")


@dataclass(slots=True)
class Context:
    """What every handler receives besides the request."""

    engine: Engine
    settings: Settings
    owner: Owner


Handler = Callable[[Context, Request], Awaitable[Response]]


def build_engine(settings: Settings) -> Engine:
    from coffer.storage.disk import DiskEngine

    return DiskEngine(
        settings.data_dir,
        fsync=settings.fsync == "always",
        inline_threshold=settings.inline_threshold,
        max_object_size=settings.max_object_size,
        orphan_grace_seconds=settings.orphan_grace_seconds,
    )


def error_response(err: S3Error, request: Request | None, resource: str = "") -> Response:
    request_id = request.request_id if request is not None else os.urandom(8).hex().upper()
    inner = [xml.elem("Code", err.code), xml.elem("Message", err.message)]
    inner += [xml.elem(k, v) for k, v in err.fields.items()]
    inner += [xml.elem("Resource", resource), xml.elem("RequestId", request_id), xml.elem("HostId", request_id)]
    response = Response(err.status, list(err.headers), xml.document("Error", "".join(inner), namespace=False))
    response.header("content-type", "application/xml")
    return response


class CofferApp:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        from coffer.server.handlers import HANDLERS

        self.settings = settings
        self.engine = engine if engine is not None else build_engine(settings)
        self.context = Context(self.engine, settings, DEFAULT_OWNER)
        self.handlers: dict[str, Handler] = HANDLERS
        self.base_domains = tuple(d.lower().strip(".") for d in settings.base_domains if d)
        self._started = False

    async def startup(self) -> None:
        if not self._started:
            await self.engine.start()
            self._started = True

    async def shutdown(self) -> None:
        if self._started:
            await self.engine.close()
            self._started = False

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
        request: Request | None = None
        try:
            request = Request(scope, receive, self.base_domains)
            operation = classify(request)
            if operation is None:
                raise S3Error("MethodNotAllowed")
            request.operation = operation
            handler = self.handlers.get(operation)
            if handler is None:
                raise S3Error("NotImplemented", f"{operation} is not implemented by Coffer yet.")
            response = await handler(self.context, request)
        except S3Error as err:
            response = error_response(err, request, _resource(scope))
        except StorageError as exc:
            response = error_response(from_storage(exc), request, _resource(scope))
        except ClientDisconnected:
            return
        except Exception:
            log.exception("internal error handling %s %s", scope.get("method"), scope.get("path"))
            response = error_response(S3Error("InternalError"), request, _resource(scope))
        await self._send(scope, send, response, request)

    async def _send(self, scope: dict[str, Any], send: Send, response: Response, request: Request | None) -> None:
        headers = response.headers
        request_id = request.request_id if request is not None else os.urandom(8).hex().upper()
        headers.append((b"x-amz-request-id", request_id.encode()))
        headers.append((b"x-amz-id-2", request_id.encode()))
        body = response.body
        head = scope["method"] == "HEAD"
        if isinstance(body, bytes):
            if not any(name == b"content-length" for name, _ in headers):
                headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        if response.length is not None:
            headers.append((b"content-length", str(response.length).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if head:
            await _close(body)
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await _close(body)
        await send({"type": "http.response.body", "body": b""})


async def _close(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


def _resource(scope: dict[str, Any]) -> str:
    return str(scope.get("path", ""))


def app_from_env() -> CofferApp:
    """Factory for ASGI servers that start worker processes by import string."""
    settings = Settings.from_json(os.environ["COFFER_SETTINGS_JSON"])
    from coffer.logs import setup_logging

    setup_logging(settings.log_level)
    return CofferApp(settings)


__all__ = ["CofferApp", "Context", "Owner", "__version__", "app_from_env", "error_response"]
