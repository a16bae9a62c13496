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
    out: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue(maxsize=QUEUE_DEPTH)  # (message, last)
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

    def emit(message: bytes, last: bool = False) -> None:
        while True:
            if cancelled.is_set():
                raise _Cancelled
            future = asyncio.run_coroutine_threadsafe(out.put((message, last)), loop)
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if not future.cancel():
                    return  # it went in after all

    def worker() -> None:
        # The last message (Stats and End, or an error event) goes with the mark that ends the
        # stream, so nothing (not even a keep-alive) can follow it.
        last = b""
        try:
            work(chunks(), emit, stats)
            figures = stats.figures()
            last = (eventstream.progress(*figures) if progress else b"") + eventstream.stats(*figures)
            last += eventstream.end()
        except _Cancelled:
            pass
        except SelectError as exc:
            last = eventstream.error(exc.code, exc.message)
        except Exception:
            log.exception("select query failed")
            last = eventstream.error("InternalError", "We encountered an internal error. Please try again.")
        finally:
            try:
                emit(last, True)
            except _Cancelled:
                pass
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
        reported = loop.time()
        while True:
            try:
                message, last = await asyncio.wait_for(out.get(), TICK)
            except TimeoutError:
                message, last = b"", False
            if message:
                yield message
            if last:
                break
            if loop.time() - reported >= TICK:
                # Progress every TICK when asked for (Records flowing or not), else Cont when idle.
                if progress:
                    yield eventstream.progress(*stats.figures())
                elif not message:
                    yield eventstream.cont()
                reported = loop.time()
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
