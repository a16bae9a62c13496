"""The ceiling: a bare ASGI app that does no work at all.

GET answers a constant 4 KiB body (or ``?bytes=N`` streamed in 1 MiB chunks,
for the large-GET ceiling); PUT/POST read the body and discard it. Served by
the same ASGI server and worker count as Coffer, it shows what Python plus
that server can reach on this machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

SMALL = b"x" * 4096
CHUNK = b"x" * (1 << 20)
_SMALL_HEADERS = [(b"content-type", b"binary/octet-stream"), (b"content-length", b"4096")]
_EMPTY_HEADERS = [(b"content-length", b"0")]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    method = scope["method"]
    if method in ("PUT", "POST"):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": _EMPTY_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return
    query = scope.get("query_string", b"")
    if query.startswith(b"bytes="):
        size = int(query[6:])
        headers = [(b"content-type", b"binary/octet-stream"), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        while size > 0:
            piece = CHUNK if size >= len(CHUNK) else CHUNK[:size]
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SMALL_HEADERS})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else SMALL})
