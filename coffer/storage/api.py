"""The engine contract: buckets, objects, listing pages and body streams.

An engine stores bytes and metadata; the server decides what they mean on the
wire. Every method is async; engines move blocking work off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_CHECKSUM_ALGORITHM = "CRC64NVME"  # what S3 keeps when a client sends none
MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last (S3's limit)
MAX_PART_NUMBER = 10000
MAX_PART_SIZE = 5 * 1024**3
# data_mode -> (directory mode, file mode) of everything under the data directory.
DATA_MODES = {"private": (0o700, 0o600), "shared": (0o750, 0o640)}
# The version id of objects written while versioning is off or suspended.
NULL_VERSION = "null"
# Bucket versioning states (BucketInfo.versioning; None: never configured).
VERSIONING_ENABLED = "Enabled"
VERSIONING_SUSPENDED = "Suspended"
# Object Lock retention modes.
GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"


@dataclass(slots=True)
class BucketInfo:
    name: str
    created: float  # epoch seconds
    owner: str
    region: str
    # None (never configured), VERSIONING_ENABLED or VERSIONING_SUSPENDED.
    versioning: str | None = None
    # Object Lock is on (set at creation or enabled later; never turned off).
    object_lock: bool = False


@dataclass(frozen=True, slots=True)
class ObjectLock:
    """The Object Lock state of one object version (all unset: not locked)."""

    mode: str | None = None  # GOVERNANCE or COMPLIANCE (with retain_until)
    retain_until: float | None = None  # epoch seconds
    # None: never placed (GetObjectLegalHold answers 404 then, as S3); False: removed.
    legal_hold: bool | None = None

    def __bool__(self) -> bool:
        """Whether the version is protected (a retention, or a legal hold that is on)."""
        return self.mode is not None or bool(self.legal_hold)

    def recorded(self) -> bool:
        """Whether there is anything to store (a removed hold is remembered as OFF)."""
        return self.mode is not None or self.retain_until is not None or self.legal_hold is not None


NO_LOCK = ObjectLock()


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
    # Number of parts when the object was completed from a multipart upload (0 otherwise).
    parts_count: int = 0
    # Set by a read that asked for one part (GetObject/HeadObject ?partNumber=N).
    part: ObjectPart | None = None
    # Object tags (key -> value, sorted by key); the server validates them, the engine stores them.
    tags: dict[str, str] = field(default_factory=dict)
    # A delete marker: a version with no body (size 0, etag "") that hides the versions before it.
    delete_marker: bool = False
    lock: ObjectLock = NO_LOCK
    # The version's access control list as the server's JSON-able document (the engine stores it
    # opaquely); None: the default, owned by the bucket owner with no grants to anyone else.
    acl: dict[str, Any] | None = None
    # A body stored transformed (encrypted, coffer/encryption): the document the server gave
    # (``Encoding.document``, kept opaquely) and the length of the bytes as stored; ``size``,
    # ``etag`` and ``checksums`` describe the body as the client sent it. None: stored as sent.
    encoding: dict[str, Any] | None = None
    stored_size: int | None = None


@dataclass(slots=True)
class ObjectPart:
    """One part of a completed multipart object, where it lies in the object."""

    part_number: int
    offset: int
    size: int
    etag: str
    checksums: dict[str, bytes] = field(default_factory=dict)
    # An object stored transformed (``ObjectInfo.encoding``): where this part's stored bytes lie
    # in the object's stored bytes, and how many (None for objects stored as sent).
    stored_offset: int | None = None
    stored_size: int | None = None


@dataclass(slots=True)
class ObjectPartsPage:
    """A page of a multipart object's parts (GetObjectAttributes ObjectParts)."""

    info: ObjectInfo
    parts: list[ObjectPart]
    is_truncated: bool
    next_marker: int  # the last part number returned (0 when none)


@dataclass(slots=True)
class UploadInfo:
    """A multipart upload in progress."""

    bucket: str
    key: str
    upload_id: str
    initiated: float  # epoch seconds
    owner: str
    storage_class: str = "STANDARD"
    headers: dict[str, str] = field(default_factory=dict)
    # The algorithm the client declared at creation (None: none, S3 then keeps CRC64NVME).
    checksum_algorithm: str | None = None
    checksum_type: str = "FULL_OBJECT"  # COMPOSITE or FULL_OBJECT
    tags: dict[str, str] = field(default_factory=dict)  # given to the object at completion
    lock: ObjectLock = NO_LOCK  # given to the object at completion
    acl: dict[str, Any] | None = None  # given to the object at completion (ObjectInfo.acl)
    # Parts stored transformed (encrypted): the document the object gets at completion
    # (ObjectInfo.encoding); every part must then be uploaded with an Encoding.
    encoding: dict[str, Any] | None = None

    @property
    def effective_algorithm(self) -> str:
        """The algorithm every part is checksummed with and the object ends up with."""
        return self.checksum_algorithm or DEFAULT_CHECKSUM_ALGORITHM


@dataclass(slots=True)
class PartInfo:
    """An uploaded part of a multipart upload in progress."""

    part_number: int
    size: int
    etag: str  # hex md5 of the part, without quotes
    last_modified: float
    checksums: dict[str, bytes] = field(default_factory=dict)
    stored_size: int | None = None  # a part stored transformed: the length of its stored bytes


@dataclass(slots=True)
class PartsPage:
    upload: UploadInfo
    parts: list[PartInfo]
    is_truncated: bool
    next_marker: int  # the last part number returned (0 when none)


@dataclass(slots=True)
class UploadsPage:
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(slots=True)
class CompletedPart:
    """One entry of a CompleteMultipartUpload request, as the client sent it."""

    part_number: int
    etag: str  # without quotes
    # Algorithm -> base64 value the client listed for this part (checked against the stored part).
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Completion:
    """What a CompleteMultipartUpload must also check besides its parts."""

    # (algorithm, base64 value, optionally with "-N") from an x-amz-checksum-* header.
    expected_checksum: tuple[str, str] | None = None
    expected_type: str | None = None  # x-amz-checksum-type
    expected_size: int | None = None  # x-amz-mp-object-size
    # Raw If-None-Match ('*' or ETags) and If-Match (ETags or '*') header values.
    if_none_match: str | None = None
    if_match: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteCondition:
    """What a conditional delete asks of the key's current object; None: not asked.

    Checked by the engine atomically with the delete (coffer/storage/conditions.py).
    """

    if_match: str | None = None  # raw If-Match / <ETag>: ETags or '*'
    last_modified: float | None = None  # epoch seconds, compared at whole seconds (Last-Modified's resolution)
    size: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """One key of DeleteObjects: its version (None: the key, which may create a delete marker)
    and its condition."""

    key: str
    version_id: str | None = None
    condition: DeleteCondition | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What a delete did. ``version_id``: the delete marker created, or the version removed
    (None when the bucket was never versioned and no version was named); ``delete_marker``:
    a marker was created, or the version removed was one."""

    version_id: str | None = None
    delete_marker: bool = False


@dataclass(slots=True)
class PutDigests:
    """What the engine computed while streaming a body in, handed to ``verify``. For a body
    stored transformed (``Encoding``) only the size and the checksums asked for: ``md5`` is
    empty (the caller digests the original)."""

    size: int
    md5: bytes
    checksums: dict[str, bytes]
    sha256: bytes | None = None


# Called once the whole body is on disk but before it becomes visible; raising
# aborts the write with nothing stored (BadDigest, checksum trailers, ...).
Verifier = Callable[[PutDigests], None]


@dataclass(frozen=True, slots=True)
class LogicalBody:
    """What a version stored transformed reports: the size, ETag (hex, no quotes) and checksums
    of the body as the client sent it, computed by the caller while it transformed the body."""

    size: int
    etag: str
    checksums: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class Encoding:
    """A body the caller transformed (encrypted) before handing it to the engine.

    The engine stores the bytes it receives (``ObjectInfo.stored_size`` is their length), keeps
    ``document`` opaquely (``ObjectInfo.encoding``) and reports ``logical(digests)``: called with
    the stored bytes' size (``PutDigests``, no MD5: nobody reads it) once they have all arrived,
    before the version becomes visible; raising aborts the write with nothing stored (as ``Verifier``)."""

    document: dict[str, Any]
    logical: Callable[[PutDigests], LogicalBody]


# Called with the source object of a copy before anything is written; raising
# (e.g. PreconditionFailed for x-amz-copy-source-if-*) aborts the copy.
SourceCheck = Callable[[ObjectInfo], None]


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
class VersionEntry:
    """One row of ListObjectVersions: an object version or a delete marker."""

    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str
    last_modified: float
    storage_class: str
    owner: str


@dataclass(slots=True)
class VersionsPage:
    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # Where the next page starts (set when truncated): after this key, and after this
    # version of it (None: the page ended with a CommonPrefix, so after the whole key).
    next_key_marker: str | None
    next_version_id_marker: str | None


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

    def evicted(self, objects: int, nbytes: int) -> None:
        """``objects`` objects holding ``nbytes`` bytes were evicted to stay under a memory limit."""

    def expired(self, objects: int) -> None:
        """The TTL reaper reclaimed ``objects`` expired objects."""

    def journal_compacted(self, before: int, after: int, seconds: float) -> None:
        """The metadata journal was compacted from ``before`` to ``after`` bytes in ``seconds``."""


class ObjectBody(Protocol):
    """An open object: metadata plus a stream over (a range of) its bytes."""

    info: ObjectInfo

    @property
    def data(self) -> bytes | None:
        """The whole body when the engine already holds it in memory (small objects
        stored inline), so the server can answer in one piece; None: use stream()."""
        ...

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
    async def create_bucket(self, name: str, owner: str, region: str, *, object_lock: bool = False) -> BucketInfo:
        """``object_lock``: the bucket is created with Object Lock on and versioning Enabled."""
        ...

    async def put_bucket_versioning(self, name: str, status: str) -> BucketInfo:
        """Set versioning to VERSIONING_ENABLED or VERSIONING_SUSPENDED (never back to None).

        InvalidBucketState when suspending a bucket with Object Lock on.
        """
        ...

    async def enable_object_lock(self, name: str) -> BucketInfo:
        """Turn Object Lock on for an existing bucket; InvalidBucketState unless versioning is Enabled."""
        ...

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
        if_none_match: bool | str = False,
        if_match: str | None = None,
        tags: dict[str, str] | None = None,
        lock: ObjectLock = NO_LOCK,
        acl: dict[str, Any] | None = None,
        encoding: Encoding | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        """Store a new version of the key; the answer carries its version id (NULL_VERSION unless
        the bucket's versioning is Enabled; a null version replaces the key's previous null one).

        ``if_none_match``/``if_match``: conditional write (True means '*') against the latest
        version (a delete marker counts as absent), checked atomically.

        ``committed(info)`` runs once the write committed, before this returns, where the engine
        commits: the disk engine's metadata writer thread (contracts.MetadataStore ``submit``'s
        ``after``), the memory engine's loop. What the server must do before it answers and costs
        less done there (queuing the write's event notification: coffer/server/notify.py).
        """
        ...

    async def put_object_tagging(
        self, bucket: str, key: str, tags: dict[str, str], *, version_id: str | None = None
    ) -> ObjectInfo:
        """Replace the tags of a version (None: the latest; {} removes them) in one atomic update.

        The body, ETag and Last-Modified stay as they are; errors as for ``head_object``.
        """
        ...

    async def put_object_acl(
        self, bucket: str, key: str, acl: dict[str, Any] | None, *, version_id: str | None = None
    ) -> ObjectInfo:
        """Replace the ACL document of a version (None: the latest) in one atomic update (``acl``
        None: back to the default). Body, ETag and Last-Modified stay; errors as for ``head_object``."""
        ...

    async def put_object_encoding(
        self, bucket: str, key: str, document: dict[str, Any], *, version_id: str
    ) -> ObjectInfo:
        """Replace the encoding document (``ObjectInfo.encoding``) of a version stored transformed,
        in one atomic update: the server re-wraps a data key this way (``coffer kms rewrap``).
        Body, size, ETag, checksums, ``stored_size``, Last-Modified, tags, ACL and lock stay.
        InvalidRequest when the version has no document (stored as sent); errors as for ``head_object``."""
        ...

    async def put_object_storage_class(
        self, bucket: str, key: str, storage_class: str, *, version_id: str, if_match: str | None = None
    ) -> ObjectInfo:
        """Replace the storage class of a version in one atomic update (a lifecycle transition);
        ``if_match``: only while the version's ETag is still this one (PreconditionFailed otherwise).
        Body, ETag, Last-Modified, tags, ACL and lock stay; errors as for ``head_object``."""
        ...

    async def head_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> ObjectInfo:
        """Metadata of a version (None: the latest); with ``part_number`` also ``info.part``
        (InvalidPart when there is no such part).

        No version_id and the latest version is a delete marker: NoSuchKey with ``marker`` set.
        A version_id that does not exist: NoSuchVersion; one that is a delete marker:
        MethodNotAllowed with ``marker`` set.
        """
        ...

    async def open_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> ObjectBody:
        """``head_object`` plus the body. For a version stored transformed (``info.encoding``) the
        body's ``stream(start, end)`` is in stored bytes, ``end`` at most ``info.stored_size``."""
        ...

    async def delete_object(
        self,
        bucket: str,
        key: str,
        condition: DeleteCondition | None = None,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
    ) -> DeleteResult:
        """Without ``version_id``: delete the key: remove its null version when versioning was never
        configured, else add a delete marker (a new version id when Enabled, the null version when
        Suspended, replacing the old null version). With ``version_id``: remove that version for good
        (the next newest becomes latest); refused with ObjectLocked while Object Lock protects it
        (a GOVERNANCE retention only unless ``bypass_governance``). Deleting what does not exist
        succeeds. ``condition`` is checked atomically against the latest version (or the one named).
        """
        ...

    async def delete_objects(
        self, bucket: str, requests: list[DeleteRequest], *, bypass_governance: bool = False
    ) -> list[DeleteResult | Exception]:
        """``delete_object`` for each request, one outcome per request, in order."""
        ...

    async def list_object_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionsPage:
        """Versions and delete markers ordered by key, then newest first, after the markers:
        with a version-id marker, the versions of ``key_marker`` older than it come first."""
        ...

    async def put_object_retention(
        self,
        bucket: str,
        key: str,
        mode: str | None,
        retain_until: float | None,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
    ) -> ObjectInfo:
        """Set (mode and date) or remove (both None) a version's retention, atomically checked by
        ``coffer.storage.locks.check_retention_change``. InvalidRequest when the bucket has no
        Object Lock; errors as for ``head_object`` otherwise."""
        ...

    async def put_object_legal_hold(
        self, bucket: str, key: str, on: bool, *, version_id: str | None = None
    ) -> ObjectInfo:
        """Place or remove a version's legal hold; InvalidRequest when the bucket has no Object Lock."""
        ...

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListPage: ...

    # copies
    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str] | None,
        storage_class: str | None = None,
        checksum_algorithm: str | None = None,
        check_source: SourceCheck | None = None,
        tags: dict[str, str] | None = None,
        src_version_id: str | None = None,
        lock: ObjectLock = NO_LOCK,
        acl: dict[str, Any] | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        """Copy a version (None: the latest) to a new version of the destination, as ``put_object``
        stores one; ``headers``/``storage_class``/``tags`` None keep the source's; the lock and the
        ACL are never copied (the copy gets ``acl``). ``check_source`` sees the source version (its
        version id included). Never whole in memory. A source stored transformed (``encoding``) is
        refused with InvalidRequest: its stored bytes are bound to it, the caller re-encodes.
        ``committed``: as for ``put_object``, once (a copy retried because its source changed
        meanwhile reports only the write that committed)."""
        ...

    async def list_object_parts(
        self, bucket: str, key: str, *, marker: int = 0, max_parts: int = 1000, version_id: str | None = None
    ) -> ObjectPartsPage: ...

    # multipart uploads
    async def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str],
        storage_class: str = "STANDARD",
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
        tags: dict[str, str] | None = None,
        lock: ObjectLock = NO_LOCK,
        owner: str | None = None,
        acl: dict[str, Any] | None = None,
        encoding: dict[str, Any] | None = None,
    ) -> UploadInfo:
        """InvalidRequest for an algorithm/type combination S3 refuses. ``lock`` and ``acl`` go to
        the object. ``owner``: the upload's owner (ListParts, ListMultipartUploads); None: the bucket owner."""
        ...

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo: ...

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        *,
        checksum_algorithms: tuple[str, ...] = (),
        want_sha256: bool = False,
        verify: Verifier | None = None,
        encoding: Encoding | None = None,
    ) -> PartInfo:
        """``encoding``: the part is stored transformed, as ``put_object`` stores a body (its
        ``document`` is ignored: the upload's ``encoding`` is the object's). The part reports the
        logical size, ETag and checksums (which the completed object composes as usual) and its
        ``stored_size``; the object's parts keep ``stored_offset``/``stored_size`` and its
        ``stored_size`` is their sum."""
        ...

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        src_range: tuple[int, int] | None = None,
        check_source: SourceCheck | None = None,
        src_version_id: str | None = None,
    ) -> PartInfo:
        """``src_range`` is (first, last) inclusive; InvalidRange when it lies beyond the source."""
        ...

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletedPart],
        completion: Completion | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        """The object is a new version of the key, as ``put_object`` stores one. ``committed``: as
        for ``put_object``; a retried Complete of a completed upload, answered the same while its
        object stands, reports it again (each successful Complete is one ``ObjectCreated`` event,
        as before this hook)."""
        ...

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> PartsPage: ...

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage: ...
