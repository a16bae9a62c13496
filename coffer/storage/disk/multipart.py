"""The disk engine's multipart uploads: a component ``DiskEngine`` owns and delegates to.

Parts are received exactly like object bodies (hashed while streamed, small
ones inline in their row, larger ones blobs published before the metadata
commit). Completing an upload turns the chosen parts into the pieces of the
object's record (records.py ``Pieces``): the object is its parts' blobs, never
a copy of them. A blob is deleted only once no row references it (manifest.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from coffer.storage import errors
from coffer.storage.api import (
    MAX_PART_SIZE,
    NO_LOCK,
    NULL_VERSION,
    CompletedPart,
    Completion,
    Encoding,
    ObjectInfo,
    ObjectLock,
    PartInfo,
    PartsPage,
    SourceCheck,
    UploadInfo,
    UploadsPage,
    Verifier,
)
from coffer.storage.conditions import check_write
from coffer.storage.contracts import BlobStore, MetadataStore, ReceivedBody
from coffer.storage.disk import records
from coffer.storage.disk.blobs import commit_published
from coffer.storage.disk.manifest import (
    checksums_doc,
    checksums_from_doc,
    decode_checksums,
    encode_checksums,
    unreferenced,
)
from coffer.storage.disk.metadata import bucket_info
from coffer.storage.disk.records import ObjectRecord, Pieces
from coffer.storage.listing import list_uploads_page
from coffer.storage.multipart import (
    FULL_OBJECT,
    answer_stands,
    assemble,
    completions_forgotten_before,
    new_upload_id,
    resolve_checksum_type,
)
from coffer.storage.objects import (
    accept_part,
    check_part_encoding,
    completed_object,
    copy_source_span,
    part_algorithms,
)
from coffer.storage.ttl import expiry_of
from coffer.storage.versioning import check_lock_bucket, version_for_write

_UPLOAD_COLUMNS = "upload_id, bucket, key, initiated, storage_class, owner, extra, completed"
_LIST_BATCH = 1000
# (conn, bucket, key, now): raises QuotaExceeded when a new key does not fit.
QuotaCheck = Callable[[sqlite3.Connection, str, str, float], None]


def _upload_from_row(row: tuple[Any, ...]) -> tuple[UploadInfo, str | None]:
    """An uploads row: the upload, and its completion result (JSON) once completed."""
    upload_id, bucket, key, initiated, storage_class, owner, extra, completed = row
    doc = json.loads(extra)
    info = UploadInfo(
        bucket=bucket,
        key=bytes(key).decode("utf-8"),
        upload_id=upload_id,
        initiated=initiated,
        owner=owner,
        storage_class=storage_class,
        headers=doc.get("h", {}),
        checksum_algorithm=doc.get("a"),
        checksum_type=doc.get("ct", FULL_OBJECT),
        tags=doc.get("t", {}),
        lock=records.decode_lock(doc.get("l")),
        acl=doc.get("acl"),
        encoding=doc.get("enc"),
    )
    return info, completed


_PART_COLUMNS = "part_number, size, etag, last_modified, checksums, stored_size"


def _part_from_row(row: tuple[Any, ...]) -> PartInfo:
    part_number, size, etag, last_modified, sums, stored_size = row
    return PartInfo(part_number, size, etag, last_modified, decode_checksums(sums), stored_size)


class DiskUploads:
    """Uploads, parts and completion on the engine's metadata and blob stores."""

    def __init__(
        self, meta: MetadataStore[sqlite3.Connection], blobs: BlobStore, check_quota: QuotaCheck, default_ttl: int
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self._check_quota = check_quota
        self.default_ttl = default_ttl

    async def create(
        self,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str],
        storage_class: str,
        checksum_algorithm: str | None,
        checksum_type: str | None,
        tags: dict[str, str] | None,
        lock: ObjectLock = NO_LOCK,
        owner: str | None = None,
        acl: dict[str, Any] | None = None,
        encoding: dict[str, Any] | None = None,
    ) -> UploadInfo:
        resolved = resolve_checksum_type(checksum_algorithm, checksum_type)
        upload = UploadInfo(
            bucket=bucket,
            key=key,
            upload_id=new_upload_id(),
            initiated=time.time(),
            owner="",
            storage_class=storage_class,
            headers=headers,
            checksum_algorithm=checksum_algorithm,
            checksum_type=resolved,
            tags=dict(tags or {}),
            lock=lock,
            acl=acl,
            encoding=encoding,
        )
        doc: dict[str, Any] = {"h": headers, "a": checksum_algorithm, "ct": resolved}
        if tags:
            doc["t"] = tags  # the completed object's tags
        lock_doc = records.encode_lock(lock)
        if lock_doc is not None:
            doc["l"] = lock_doc  # the completed object's Object Lock
        if acl is not None:
            doc["acl"] = acl  # the completed object's ACL ("a" is the checksum algorithm here)
        if encoding is not None:
            doc["enc"] = encoding  # parts stored transformed: the completed object's encoding document
        extra = json.dumps(doc, separators=(",", ":"))

        def tx(conn: sqlite3.Connection) -> UploadInfo:
            found = bucket_info(conn, bucket)
            check_lock_bucket(found, lock)
            upload.owner = owner if owner is not None else found.owner
            conn.execute(
                "INSERT INTO uploads(upload_id, bucket, key, initiated, storage_class, owner, extra)"
                " VALUES (?,?,?,?,?,?,?)",
                (upload.upload_id, bucket, key.encode("utf-8"), upload.initiated, storage_class, upload.owner, extra),
            )
            return upload

        return await self.meta.write(tx)

    @staticmethod
    def _upload_row(
        conn: sqlite3.Connection, bucket: str, key: str, upload_id: str, *, open_only: bool = True
    ) -> tuple[UploadInfo, str | None]:
        """The upload (open ones only unless ``open_only`` is false) and its completion, or NoSuchUpload."""
        row = conn.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id=?", (upload_id,)).fetchone()
        found = _upload_from_row(row) if row is not None else None
        if found is None or (found[0].bucket, found[0].key) != (bucket, key) or (open_only and found[1]):
            bucket_info(conn, bucket)
            raise errors.NoSuchUpload(upload_id=upload_id)
        return found

    def get(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return self.meta.read(lambda c: self._upload_row(c, bucket, key, upload_id))[0]

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        *,
        checksum_algorithms: tuple[str, ...],
        want_sha256: bool,
        verify: Verifier | None,
        encoding: Encoding | None = None,
    ) -> PartInfo:
        upload = self.get(bucket, key, upload_id)  # fail fast before reading a body
        check_part_encoding(upload, encoding)
        received = await self.blobs.receive(
            body,
            algorithms=part_algorithms(upload, checksum_algorithms, encoding),
            want_sha256=want_sha256,
            max_size=MAX_PART_SIZE,
            md5=encoding is None,
        )
        return await self._store_part(upload, part_number, received, verify, encoding)

    async def upload_part_copy(
        self,
        upload: UploadInfo,
        part_number: int,
        source: ObjectInfo,
        stream: Callable[[int, int], AsyncIterator[bytes]],
        close: Callable[[], None],
        src_range: tuple[int, int] | None,
        check_source: SourceCheck | None,
    ) -> PartInfo:
        """A part read from an opened source object (``stream``/``close`` of its body)."""
        try:
            if check_source is not None:
                check_source(source)
            start, end = copy_source_span(src_range, source.size)
        except BaseException:
            close()
            raise
        received = await self.blobs.receive(stream(start, end), algorithms=(upload.effective_algorithm,))
        return await self._store_part(upload, part_number, received)

    async def _store_part(
        self,
        upload: UploadInfo,
        part_number: int,
        received: ReceivedBody,
        verify: Verifier | None = None,
        encoding: Encoding | None = None,
    ) -> PartInfo:
        try:
            part = accept_part(part_number, received.digests, verify, encoding, time.time())
            blob = await self.blobs.publish(received) if received.data is None else None
        except BaseException:
            received.discard()
            raise
        upload_id = upload.upload_id

        def tx(conn: sqlite3.Connection) -> list[str]:
            self._upload_row(conn, upload.bucket, upload.key, upload_id)
            old = conn.execute(
                "DELETE FROM parts WHERE upload_id=? AND part_number=? RETURNING blob", (upload_id, part_number)
            ).fetchone()
            conn.execute(
                "INSERT INTO parts(upload_id, part_number, size, etag, last_modified, checksums, blob, data,"
                " stored_size) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    upload_id,
                    part_number,
                    part.size,
                    part.etag,
                    part.last_modified,
                    encode_checksums(part.checksums),
                    blob,
                    received.data,
                    part.stored_size,
                ),
            )
            # Uploading a part number again replaces the earlier part.
            return unreferenced(conn, [old[0] if old else None])

        await self.blobs.reclaim(await commit_published(self.meta, self.blobs, tx, received, blob))
        return part

    async def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletedPart],
        completion: Completion,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        def tx(conn: sqlite3.Connection) -> tuple[ObjectInfo, list[str]]:
            upload, completed = self._upload_row(conn, bucket, key, upload_id, open_only=False)
            if completed:  # already completed: a retry gets the same answer while its object stands
                answer = _completed_result(upload, json.loads(completed))
                made = records.version_slot(conn, bucket, key, answer.version_id)
                if made is None or not answer_stands(answer, made.live_etag(time.time()), made.last_modified):
                    raise errors.NoSuchUpload(upload_id=upload_id)
                return answer, []
            found = bucket_info(conn, bucket)
            stored = {
                r[0]: _part_from_row(r)
                for r in conn.execute(
                    f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id=?",
                    (upload_id,),
                ).fetchall()
            }
            done = assemble(upload, parts, stored, completion)
            now = time.time()
            version = version_for_write(found.versioning, now)
            target = records.target(conn, bucket, key, version, found.versioning, now)
            live = target.live_object
            check_write(key, live.etag if live is not None else None, completion.if_match, completion.if_none_match)
            if live is None:
                self._check_quota(conn, bucket, key, now)
            info = completed_object(upload, done, now)
            info.version_id = version
            info.lock = upload.lock
            info.acl = upload.acl
            body = Pieces(upload_id=upload_id, part_numbers=tuple(p.part_number for p in done.parts))
            # The row's owner column stays the bucket owner (as for PUT), whoever started the upload.
            record = ObjectRecord(info, found.owner, body, expiry_of(info.headers, now, self.default_ttl))
            released: list[str | None] = list(records.write(conn, record, target))
            # The chosen parts are the object's pieces now; the others go.
            released += [
                r[0]
                for r in conn.execute("DELETE FROM parts WHERE upload_id=? RETURNING blob", (upload_id,)).fetchall()
            ]
            result = {
                "size": info.size,
                "etag": info.etag,
                "t": info.last_modified,
                "c": checksums_doc(info.checksums),
                "ct": info.checksum_type,
                "n": info.parts_count,
                "v": info.version_id,
            }
            if info.stored_size is not None:
                result["z"] = info.stored_size
            conn.execute(
                "UPDATE uploads SET completed=? WHERE upload_id=?",
                (json.dumps(result, separators=(",", ":")), upload_id),
            )
            return info, unreferenced(conn, released)

        after: Callable[[tuple[ObjectInfo, list[str]]], None] | None = (
            None if committed is None else lambda answered: committed(answered[0])
        )
        info, released = await self.meta.submit(tx, after)
        await self.blobs.reclaim(released)
        return info

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> list[str]:
            self._upload_row(conn, bucket, key, upload_id)
            return self._drop_upload(conn, upload_id)

        await self.blobs.reclaim(await self.meta.write(tx))

    @staticmethod
    def _drop_upload(conn: sqlite3.Connection, upload_id: str) -> list[str]:
        released = [
            r[0] for r in conn.execute("DELETE FROM parts WHERE upload_id=? RETURNING blob", (upload_id,)).fetchall()
        ]
        conn.execute("DELETE FROM uploads WHERE upload_id=?", (upload_id,))
        return unreferenced(conn, released)

    @staticmethod
    def drop_bucket_uploads(conn: sqlite3.Connection, bucket: str) -> list[str | None]:
        """Remove a bucket's uploads and parts; returns the parts' blobs (not yet checked for other references)."""
        released: list[str | None] = [
            r[0]
            for r in conn.execute(
                "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket=?) RETURNING blob",
                (bucket,),
            ).fetchall()
        ]
        conn.execute("DELETE FROM uploads WHERE bucket=?", (bucket,))
        return released

    def sweep(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort uploads older than ``max_age_seconds`` (0: never) and forget old completed ones; returns aborts."""
        now = time.time() if now is None else now
        abandoned_before = now - max_age_seconds if max_age_seconds > 0 else float("-inf")
        completed_before = completions_forgotten_before(max_age_seconds, now)

        batch = 500

        def tx(conn: sqlite3.Connection) -> tuple[int, int, list[str]]:
            rows = conn.execute(
                "SELECT upload_id, completed IS NULL FROM uploads WHERE (completed IS NULL AND initiated < ?)"
                " OR json_extract(completed, '$.t') < ? LIMIT ?",
                (abandoned_before, completed_before, batch),
            ).fetchall()
            released: list[str] = []
            for upload_id, _open in rows:
                released += self._drop_upload(conn, upload_id)
            return len(rows), sum(1 for r in rows if r[1]), released

        aborted = 0
        while True:
            found, count, released = self.meta.write_blocking(tx)
            self.blobs.delete(released)
            aborted += count
            if found < batch:
                return aborted

    async def list_parts(self, bucket: str, key: str, upload_id: str, *, marker: int, max_parts: int) -> PartsPage:
        """``marker`` and ``max_parts`` within SQLite's integers (the engine clamps them)."""

        def read(conn: sqlite3.Connection) -> PartsPage:
            conn.execute("BEGIN")
            try:
                upload = self._upload_row(conn, bucket, key, upload_id)[0]
                rows = conn.execute(
                    f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id=? AND part_number>?"
                    " ORDER BY part_number LIMIT ?",
                    (upload_id, marker, max_parts + 1),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            parts = [_part_from_row(r) for r in rows[:max_parts]]
            return PartsPage(upload, parts, len(rows) > max_parts, parts[-1].part_number if parts else 0)

        return await self.meta.read_in_thread(read)

    async def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        return await self.meta.read_in_thread(
            lambda c: self._list_uploads(
                c, bucket, prefix.encode(), delimiter.encode(), key_marker.encode(), upload_id_marker, max_uploads
            )
        )

    @staticmethod
    def _list_uploads(
        conn: sqlite3.Connection,
        bucket: str,
        prefix: bytes,
        delimiter: bytes,
        key_marker: bytes,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        """Uploads in (key, upload id) order, folding keys into CommonPrefixes like a listing."""
        bucket_info(conn, bucket)

        def scan(after_key: bytes, after_id: str, upper: bytes | None) -> Iterator[tuple[bytes, UploadInfo]]:
            while True:
                args: list[Any] = [bucket, after_key, after_key, after_id]
                sql = (
                    f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE bucket=? AND completed IS NULL"
                    " AND (key > ? OR (key = ? AND upload_id > ?))"
                )
                if upper is not None:
                    sql += " AND key < ?"
                    args.append(upper)
                sql += " ORDER BY key, upload_id LIMIT ?"
                args.append(_LIST_BATCH)
                rows = conn.execute(sql, args).fetchall()
                upload: UploadInfo | None = None
                for row in rows:
                    upload = _upload_from_row(tuple(row))[0]
                    yield upload.key.encode("utf-8"), upload
                if len(rows) < _LIST_BATCH or upload is None:
                    return
                after_key, after_id = upload.key.encode("utf-8"), upload.upload_id

        return list_uploads_page(
            scan,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )


def _completed_result(upload: UploadInfo, done: dict[str, Any]) -> ObjectInfo:
    """What a completed upload answered, for a retried CompleteMultipartUpload."""
    return ObjectInfo(
        bucket=upload.bucket,
        key=upload.key,
        size=done["size"],
        etag=done["etag"],
        last_modified=done["t"],
        storage_class=upload.storage_class,
        headers=upload.headers,
        checksums=checksums_from_doc(done["c"]),
        checksum_type=done["ct"],
        parts_count=done["n"],
        tags=dict(upload.tags),
        version_id=done.get("v", NULL_VERSION),
        lock=upload.lock,
        acl=upload.acl,
        encoding=upload.encoding,
        stored_size=done.get("z"),
    )
