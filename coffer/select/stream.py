"""The bridge between the event loop and the query's worker thread.

The query runs in its own thread (the engines are synchronous and CPU-bound; the loop must never
wait on them). It pulls object chunks from the async body one at a time and pushes event-stream
messages into a bounded queue, so at most a few chunks and QUEUE_DEPTH messages are in memory
whatever the object's size. While the worker has nothing to send, the loop sends Progress (when
asked for) or Cont keep-alives every TICK seconds. Closing the generator (the client went away)
stops the worker at its next chunk or message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from coffer.select import eventstream
from coffer.select.errors import SelectError
from coffer.select.run import Stats

log = logging.getLogger("coffer.select")

QUEUE_DEPTH = 8
# Queries scanning at once in this process; more wait their turn (sending keep-alives), so
# memory stays bounded however many clients ask at the same time.
MAX_RUNNING = 4
_running = threading.BoundedSemaphore(MAX_RUNNING)
TICK = 1.0  # seconds between keep-alives (Cont, or Progress when requested) while nothing is sent
_DONE = b""  # the worker's last message


class _Cancelled(Exception):
    """The client went away: the worker stops."""


Work = Callable[[Iterator[bytes], Callable[[bytes], None], Stats], None]


async def _next(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await body.__anext__()
    except StopAsyncIteration:
        return None


async def select_events(body: AsyncIterator[bytes], work: Work, *, progress: bool) -> AsyncIterator[bytes]:
    """Event-stream messages of one query: ``work(chunks, emit, stats)`` runs in a thread, reading
    ``chunks`` (the object's bytes) and calling ``emit`` with Records messages; then Stats and End
    (or an error event when it raises SelectError)."""
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_DEPTH)
    cancelled = threading.Event()
    finished: asyncio.Future[None] = loop.create_future()
    stats = Stats()

    def chunks() -> Iterator[bytes]:
        while True:
            if cancelled.is_set():
                raise _Cancelled
            chunk = asyncio.run_coroutine_threadsafe(_next(body), loop).result()
            if chunk is None:
                return
            if chunk:
                yield chunk

    def emit(message: bytes) -> None:
        while True:
            if cancelled.is_set():
                raise _Cancelled
            future = asyncio.run_coroutine_threadsafe(out.put(message), loop)
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if not future.cancel():
                    return  # it went in after all

    def worker() -> None:
        try:
            work(chunks(), emit, stats)
            emit(
                eventstream.stats(*stats.figures())
                if not progress
                else eventstream.progress(*stats.figures()) + eventstream.stats(*stats.figures())
            )
            emit(eventstream.end())
        except _Cancelled:
            pass
        except SelectError as exc:
            _try(emit, eventstream.error(exc.code, exc.message))
        except Exception:
            log.exception("select query failed")
            _try(emit, eventstream.error("InternalError", "We encountered an internal error. Please try again."))
        finally:
            _try(emit, _DONE)
            loop.call_soon_threadsafe(_resolve, finished)

    acquired = started = False
    try:
        # The slot is taken inside the generator: a response never iterated holds none.
        while not _running.acquire(blocking=False):
            yield eventstream.progress(0, 0, 0) if progress else eventstream.cont()
            await asyncio.sleep(TICK)
        acquired = True
        threading.Thread(target=worker, name="coffer-select", daemon=True).start()
        started = True
        while True:
            try:
                message = await asyncio.wait_for(out.get(), TICK)
            except TimeoutError:
                yield eventstream.progress(*stats.figures()) if progress else eventstream.cont()
                continue
            if message == _DONE:
                break
            yield message
    finally:
        cancelled.set()
        while started and not finished.done():
            # Let a worker blocked on a full queue see the cancellation.
            while not out.empty():
                out.get_nowait()
            await asyncio.wait([finished], timeout=0.1)
        if acquired:
            _running.release()
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _try(emit: Callable[[bytes], None], message: bytes) -> Any:
    try:
        emit(message)
    except _Cancelled:
        pass
