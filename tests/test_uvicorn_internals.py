"""coffer/server/protocol.py builds on uvicorn internals: fail loudly when they change.

pyproject.toml caps uvicorn at the minor version these tests (and the raw-HTTP
tests) were run against; raise the cap only once they pass on the new one.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from coffer.server.protocol import CofferHttpToolsProtocol, _CoalescingCycle

# What protocol.py overrides or reads, by class.
PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "send_400_response",
    "timeout_keep_alive_handler",
)
PROTOCOL_ATTRIBUTES = (
    "cycle",
    "connections",
    "flow",
    "loop",
    "transport",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
)
CYCLE_ATTRIBUTES = ("transport", "response_started", "response_complete", "more_body", "disconnected", "keep_alive")


def test_installed_uvicorn_is_in_the_declared_range() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    declared = next(Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("uvicorn"))
    installed = Version(importlib.metadata.version("uvicorn"))
    assert installed in declared.specifier, (
        f"uvicorn {installed} is outside {declared}: protocol.py relies on uvicorn internals tested only in that range"
    )
    assert any(spec.operator == "<" for spec in declared.specifier), "uvicorn must be capped (see pyproject.toml)"


def test_overridden_callbacks_exist_in_uvicorn() -> None:
    for name in PROTOCOL_METHODS:
        assert callable(getattr(HttpToolsProtocol, name, None)), f"uvicorn's HttpToolsProtocol has no {name}"
    assert callable(getattr(RequestResponseCycle, "send", None))


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_protocol_serves_a_request_through_the_internals_it_uses() -> None:
    loop = asyncio.get_running_loop()
    config = Config(_app, http=CofferHttpToolsProtocol, lifespan="off", log_config=None)
    config.load()
    protocol = CofferHttpToolsProtocol(config, ServerState(), {}, loop)
    for name in PROTOCOL_ATTRIBUTES:
        assert hasattr(protocol, name), f"uvicorn's HttpToolsProtocol no longer sets {name}"
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        await loop.connect_accepted_socket(lambda: protocol, server_end)
        # protocol.py arms uvicorn's idle timer on connect (uvicorn arms it only after a response).
        assert isinstance(protocol.timeout_keep_alive_task, asyncio.TimerHandle)
        client_end.setblocking(False)
        await loop.sock_sendall(client_end, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"hello"):
            reply += await asyncio.wait_for(loop.sock_recv(client_end, 65536), 30)
        # The cycle got head coalescing by class (no factory to override in uvicorn).
        assert type(protocol.cycle) is _CoalescingCycle
        for name in CYCLE_ATTRIBUTES:
            assert hasattr(protocol.cycle, name), f"uvicorn's RequestResponseCycle no longer sets {name}"
        assert reply.startswith(b"HTTP/1.1 200") and protocol.cycle.response_complete
        protocol.transport.close()
        await asyncio.sleep(0)
