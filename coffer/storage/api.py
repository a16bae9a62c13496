"""The engine contract: buckets, objects, listing pages and body streams.

An engine stores bytes and metadata; the server decides what they mean on the
wire. Every method is async; engines move blocking work off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class BucketInfo:
    name: str
    created: float  # epoch seconds
    owner: str
    region: str


@dataclass(slots=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # hex md5 (or md5-of-md5s-N), without quotes
    last_modified: float  # epoch seconds
    version_id: str = "null"
    storage_class: str = "STANDARD"
    # Wire-level attributes the engine keeps opaque: content-type, cache-control,
    # user metadata, ... as (lower-case header name, value) pairs.
    headers: dict[str, str] = field(default_factory=dict)
    # Algorithm -> raw digest of the whole object (e.g. {"CRC32": b"..."}).
    checksums: dict[str, bytes] = field(default_factory=dict)
    checksum_type: str = "FULL_OBJECT"


@dataclass(slots=True)
class PutDigests:
    """What the engine computed while streaming a body in, handed to ``verify``."""

    size: int
    md5: bytes
    checksums: dict[str, bytes]
    sha256: bytes | None = None


# Called once the whole body is on disk but before it becomes visible; raising
# aborts the write with nothing stored (BadDigest, checksum trailers, ...).
Verifier = Callable[[PutDigests], None]


@dataclass(slots=True)
class ListEntry:
    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str
    owner: str


@dataclass(slots=True)
class ListPage:
    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: where the next page starts.
    next_marker: str | None


@dataclass(slots=True)
class StorageStats:
    """What the store holds, for metrics and health."""

    buckets: int
    objects: int
    bytes: int
    multipart_uploads: int
    computed_at: float  # epoch seconds


@dataclass(slots=True)
class ProbeResult:
    """The engine's own view of its health, for readiness probes."""

    readable: bool
    writable: bool
    free_bytes: int | None  # free space where the data lives; None when not applicable
    total_bytes: int | None
    detail: str = ""


class EngineObserver:
    """Receives engine internals (commit batches, fsync timings, cache use).

    The engine calls these from whatever thread does the work; the default does
    nothing. The server plugs in a subclass that feeds its metrics, so storage
    never imports a metrics library.
    """

    def committed(self, operations: int, seconds: float) -> None:
        """One metadata transaction committed ``operations`` queued writes in ``seconds``."""

    def synced(self, what: str, seconds: float) -> None:
        """One fsync of ``what`` ("file" or "dir") took ``seconds``."""

    def cache(self, name: str, hit: bool) -> None:
        """A lookup in the engine cache ``name`` hit or missed."""


class ObjectBody(Protocol):
    """An open object: metadata plus a stream over (a range of) its bytes."""

    info: ObjectInfo

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the object, in chunks, read lazily."""
        ...


class Engine(Protocol):
    # Engine internals are reported here; the server may replace it before start().
    observer: EngineObserver

    async def start(self) -> None: ...
    async def close(self) -> None:
        """Finish every accepted write (flush), then release resources."""
        ...

    # health
    async def storage_stats(self) -> StorageStats:
        """Counts of buckets, objects, bytes and open multipart uploads; cheap enough to call per scrape."""
        ...

    async def probe(self) -> ProbeResult:
        """Check the store can be read and written; report free space."""
        ...

    # buckets
    async def create_bucket(self, name: str, owner: str, region: str) -> BucketInfo: ...
    async def get_bucket(self, name: str) -> BucketInfo: ...
    async def list_buckets(self, owner: str | None = None) -> list[BucketInfo]: ...
    async def delete_bucket(self, name: str) -> None: ...

    # Bucket configuration documents (cors, ...): JSON-compatible values the
    # server defines; the engine only stores them. None deletes / means absent.
    async def get_bucket_config(self, bucket: str, name: str) -> Any: ...
    async def put_bucket_config(self, bucket: str, name: str, document: Any) -> None: ...

    # objects
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        headers: dict[str, str],
        checksum_algorithms: tuple[str, ...] = (),
        want_sha256: bool = False,
        verify: Verifier | None = None,
        storage_class: str = "STANDARD",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo: ...

    async def head_object(self, bucket: str, key: str) -> ObjectInfo: ...
    async def open_object(self, bucket: str, key: str) -> ObjectBody: ...
    async def delete_object(self, bucket: str, key: str) -> None: ...
    async def delete_objects(self, bucket: str, keys: list[str]) -> list[Exception | None]: ...

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListPage: ...
