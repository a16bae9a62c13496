"""Helpers the in-process tests share: request bodies as the server hands them over, and running a coroutine.

Engine-level helpers (put, read, ...) live in tests/engines.py, HTTP-level ones in tests/wire.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop (a test's synchronous entry point)."""
    return asyncio.run(coro)


async def chunks(
    data: bytes, size: int = 65536, *, pause: bool = False, sent: list[int] | None = None
) -> AsyncIterator[bytes]:
    """A request body as the server would hand it over: ``size``-byte pieces (none for an empty body).

    ``pause`` yields to the event loop before each piece, so concurrent writers interleave;
    ``sent`` records each piece's size as it is taken (to see how far a consumer read).
    """
    for i in range(0, len(data), size):
        if pause:
            await asyncio.sleep(0)
        if sent is not None:
            sent.append(min(size, len(data) - i))
        yield data[i : i + size]


async def pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    """``data`` as the network might deliver it: split at ``cuts`` (taken modulo its length), empty pieces included."""
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[last:cut]
        last = cut
    yield data[last:]
