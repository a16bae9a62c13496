"""The two interfaces an engine is composed of: a metadata store and a blob store.

Neither carries a SQLite or filesystem type across it: the metadata store is
generic over its transaction handle (a ``sqlite3.Connection`` for the SQLite
store, a PostgreSQL connection for a PostgreSQL one), blobs are named by opaque
string ids and read through ``OpenBlob`` handles. A PostgreSQL metadata store or
an S3-compatible data tier implements these unchanged; docs/architecture.md
("Storage contracts") states what each promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from coffer.storage.api import EngineObserver, PutDigests

T = TypeVar("T")
Tx = TypeVar("Tx", covariant=True)


class MetadataStore(Protocol[Tx]):
    """Transactions over the metadata; the record layer runs inside them.

    - ``write(fn)`` runs ``fn(tx)`` in one transaction (all of it or nothing), in
      a serial order with every other write; returns once it is durable.
      ``submit(fn)`` is the same as a future.
    - ``read(fn)`` runs ``fn(tx)`` on a consistent snapshot of committed data.
    - ``generation`` changes after every commit (read caches key off it).
    """

    generation: int
    observer: EngineObserver

    def open(self) -> None: ...
    def close(self) -> None: ...
    def read(self, fn: Callable[[Tx], T]) -> T: ...
    async def read_in_thread(self, fn: Callable[[Tx], T]) -> T: ...
    async def write(self, fn: Callable[[Tx], T]) -> T: ...
    def submit(self, fn: Callable[[Tx], T], after: Callable[[T], None] | None = None) -> asyncio.Future[T]:
        """``write`` as a future; once submitted the write happens even if the future is cancelled.
        ``after`` runs with what ``fn`` returned once the write committed, before the future settles,
        where the store commits (the disk store: its writer thread, one write's ``after`` behind
        another's): work the write's caller needs done before it answers and that costs the event loop
        less done there in bulk (event notifications). It must not block, and what it raises is
        logged, not the write's error (the write committed)."""

    def write_blocking(self, fn: Callable[[Tx], T]) -> T: ...


class ReceivedBody(Protocol):
    """A body the blob store has taken in whole: small ones as ``data``, others pending publication."""

    digests: PutDigests
    data: bytes | None  # the whole body when small enough to live in the metadata record

    def release(self) -> None:
        """After the commit that references the published blob: it is no longer in flight."""

    def discard(self) -> None:
        """Drop an unpublished body."""


class OpenBlob(Protocol):
    """A blob opened for reading; stays readable if the blob is deleted meanwhile."""

    def stream(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end); takes the handle over (closes it when done)."""

    async def read(self, size: int, offset: int) -> bytes: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Segment:
    """One piece of an object body made of several: a blob or inline bytes."""

    offset: int  # where the piece starts in the object
    size: int
    blob: str | None
    data: bytes | None


class BlobStore(Protocol):
    """Immutable blobs named by opaque ids.

    A blob is written whole and published before the metadata commit that makes
    it visible; until its writer calls ``release`` it is in flight and no sweep
    may take it. Blobs are reclaimed by reference (the metadata says nothing uses
    them), never by age alone.
    """

    inline_threshold: int
    observer: EngineObserver

    def open(self) -> None: ...
    async def receive(
        self,
        body: AsyncIterator[bytes],
        *,
        algorithms: Iterable[str] = (),
        want_sha256: bool = False,
        max_size: int | None = None,
        md5: bool = True,
    ) -> ReceivedBody: ...
    async def publish(self, received: ReceivedBody) -> str: ...
    def open_blob(self, blob: str) -> OpenBlob: ...
    def open_ahead(self, segments: list[Segment], first: int, blobs: dict[int, OpenBlob]) -> None: ...
    def stream_segments(
        self, segments: list[Segment], blobs: dict[int, OpenBlob], start: int, end: int
    ) -> AsyncIterator[bytes]: ...
    def delete(self, blobs: Iterable[str]) -> None: ...
    async def reclaim(self, blobs: list[str]) -> None: ...
    def sweep_orphans(self, is_referenced: Callable[[str], bool], grace_seconds: float) -> int: ...
    def check_writable(self) -> None: ...
