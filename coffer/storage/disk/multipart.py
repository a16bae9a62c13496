"""The disk engine's multipart uploads, copies and object-part listings.

Parts are received exactly like object bodies (hashed while streamed, small
ones inline in their row, larger ones blob files published before the metadata
commit). Completing an upload moves the chosen parts' rows into the object's
manifest (``object_parts``): the object is its parts' files, never a copy of
them. A copy shares the source's file(s) or pieces in the same way; a blob file
is deleted only once no row references it (see manifest.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from coffer.storage import errors
from coffer.storage.api import (
    MAX_PART_SIZE,
    CompletedPart,
    Completion,
    ObjectInfo,
    ObjectPartsPage,
    PartInfo,
    PartsPage,
    SourceCheck,
    UploadInfo,
    UploadsPage,
    Verifier,
)
from coffer.storage.conditions import check_write
from coffer.storage.disk.blobs import BlobStore, ReceivedBody, hash_stream
from coffer.storage.disk.manifest import (
    decode_checksums,
    drop_manifest,
    encode_checksums,
    object_parts_page,
    unreferenced,
)
from coffer.storage.disk.metadata import MetadataStore
from coffer.storage.listing import list_uploads_page
from coffer.storage.multipart import FULL_OBJECT, assemble, copy_plan, new_upload_id, resolve_checksum_type
from coffer.storage.ttl import expiry_of, is_expired

if TYPE_CHECKING:
    from coffer.storage.api import BucketInfo
    from coffer.storage.disk.engine import DiskObjectBody

# A completed upload's row stays this long so a retried Complete gets the same answer.
COMPLETED_RETENTION_SECONDS = 86400
_UPLOAD_COLUMNS = "upload_id, bucket, key, initiated, storage_class, owner, extra, completed"
_LIST_BATCH = 1000


def object_extra(
    headers: dict[str, str],
    sums: dict[str, bytes],
    checksum_type: str,
    parts_count: int = 0,
    pieces: bool = False,
    tags: dict[str, str] | None = None,
) -> str:
    """The ``extra`` JSON of an objects row (``sg``: the body is pieces in object_parts; ``t``: tags)."""
    doc: dict[str, Any] = {"h": headers, "c": json.loads(encode_checksums(sums)), "ct": checksum_type}
    if tags:
        doc["t"] = tags
    if parts_count:
        doc["n"] = parts_count
    if pieces:
        doc["sg"] = 1
    return json.dumps(doc, separators=(",", ":"))


def _upload_from_row(row: tuple[Any, ...]) -> UploadInfo:
    upload_id, bucket, key, initiated, storage_class, owner, extra, _completed = row
    doc = json.loads(extra)
    return UploadInfo(
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
    )


def _part_from_row(row: tuple[Any, ...]) -> PartInfo:
    part_number, size, etag, last_modified, sums = row
    return PartInfo(part_number, size, etag, last_modified, decode_checksums(sums))


class _SourceChanged(Exception):
    """The copy source was replaced while being copied: start over."""


class MultipartMixin:
    meta: MetadataStore
    blobs: BlobStore
    default_ttl: int

    if TYPE_CHECKING:

        def _check_quota(self, conn: sqlite3.Connection, bucket: str, key: str, now: float) -> None: ...

        def _bucket_row(self, conn: sqlite3.Connection, name: str) -> BucketInfo: ...
        async def get_bucket(self, name: str) -> BucketInfo: ...
        async def open_object(self, bucket: str, key: str, *, part_number: int | None = None) -> DiskObjectBody: ...
        def _object_row(self, conn: sqlite3.Connection, bucket: str, key: str, with_data: bool) -> tuple[Any, ...]: ...

    # ------------------------------------------------------------------ uploads
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
        )
        doc: dict[str, Any] = {"h": headers, "a": checksum_algorithm, "ct": resolved}
        if tags:
            doc["t"] = tags  # the completed object's tags
        extra = json.dumps(doc, separators=(",", ":"))

        def tx(conn: sqlite3.Connection) -> UploadInfo:
            upload.owner = self._bucket_row(conn, bucket).owner
            conn.execute(
                "INSERT INTO uploads(upload_id, bucket, key, initiated, storage_class, owner, extra)"
                " VALUES (?,?,?,?,?,?,?)",
                (upload.upload_id, bucket, key.encode("utf-8"), upload.initiated, storage_class, upload.owner, extra),
            )
            return upload

        return await self.meta.write(tx)

    def _upload_row(
        self, conn: sqlite3.Connection, bucket: str, key: str, upload_id: str, *, open_only: bool = True
    ) -> tuple[Any, ...]:
        row = conn.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id=?", (upload_id,)).fetchone()
        if row is None or row[1] != bucket or bytes(row[2]) != key.encode("utf-8") or (open_only and row[7]):
            self._bucket_row(conn, bucket)
            raise errors.NoSuchUpload(upload_id=upload_id)
        return tuple(row)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return _upload_from_row(self.meta.read(lambda c: self._upload_row(c, bucket, key, upload_id)))

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
    ) -> PartInfo:
        upload = await self.get_upload(bucket, key, upload_id)  # fail fast before reading a body
        algorithms = tuple(dict.fromkeys((*checksum_algorithms, upload.effective_algorithm)))
        received = await self.blobs.receive(
            body, algorithms=algorithms, want_sha256=want_sha256, max_size=MAX_PART_SIZE
        )
        return await self._store_part(bucket, key, upload_id, part_number, received, verify)

    async def _store_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        received: ReceivedBody,
        verify: Verifier | None = None,
    ) -> PartInfo:
        try:
            digests = received.digests
            if verify is not None:
                verify(digests)
            blob = await self.blobs.publish(received) if received.temp_path is not None else None
        except BaseException:
            received.discard()
            raise
        part = PartInfo(part_number, digests.size, digests.md5.hex(), time.time(), dict(digests.checksums))

        def tx(conn: sqlite3.Connection) -> list[str]:
            self._upload_row(conn, bucket, key, upload_id)
            old = conn.execute(
                "DELETE FROM parts WHERE upload_id=? AND part_number=? RETURNING blob", (upload_id, part_number)
            ).fetchone()
            conn.execute(
                "INSERT INTO parts(upload_id, part_number, size, etag, last_modified, checksums, blob, data)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    upload_id,
                    part_number,
                    part.size,
                    part.etag,
                    part.last_modified,
                    encode_checksums(part.checksums),
                    blob,
                    received.data,
                ),
            )
            # Uploading a part number again replaces the earlier part.
            return unreferenced(conn, [old[0] if old else None])

        try:
            released = await self.meta.write(tx)
        except BaseException:
            if blob is not None:
                self.blobs.delete([blob])
            raise
        await self.blobs.reclaim(released)
        return part

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
    ) -> PartInfo:
        upload = await self.get_upload(bucket, key, upload_id)
        source = await self.open_object(src_bucket, src_key)
        try:
            if check_source is not None:
                check_source(source.info)
            size = source.info.size
            if src_range is None:
                start, end = 0, size
            else:
                first, last = src_range
                if first > last or last >= size:
                    raise errors.InvalidRange(
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
                        "and last are the zero-based offsets of the first and last bytes to copy"
                    )
                start, end = first, last + 1
            if end - start > MAX_PART_SIZE:
                raise errors.EntityTooLarge()
        except BaseException:
            source.close()
            raise
        received = await self.blobs.receive(source.stream(start, end), algorithms=(upload.effective_algorithm,))
        return await self._store_part(bucket, key, upload_id, part_number, received)

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletedPart],
        completion: Completion | None = None,
    ) -> ObjectInfo:
        completion = completion or Completion()
        kb = key.encode("utf-8")

        def tx(conn: sqlite3.Connection) -> tuple[ObjectInfo, list[str]]:
            row = self._upload_row(conn, bucket, key, upload_id, open_only=False)
            upload = _upload_from_row(row)
            if row[7]:  # already completed: a retry gets the same answer
                done = json.loads(row[7])
                return (
                    ObjectInfo(
                        bucket=bucket,
                        key=key,
                        size=done["size"],
                        etag=done["etag"],
                        last_modified=done["t"],
                        storage_class=upload.storage_class,
                        headers=upload.headers,
                        checksums=decode_checksums(json.dumps(done["c"])),
                        checksum_type=done["ct"],
                        parts_count=done["n"],
                        tags=dict(upload.tags),
                    ),
                    [],
                )
            stored = {
                r[0]: _part_from_row(r)
                for r in conn.execute(
                    "SELECT part_number, size, etag, last_modified, checksums FROM parts WHERE upload_id=?",
                    (upload_id,),
                ).fetchall()
            }
            done = assemble(upload, parts, stored, completion)
            existing = conn.execute(
                "SELECT id, etag, blob, expires FROM objects WHERE bucket=? AND key=? AND version='null'",
                (bucket, kb),
            ).fetchone()
            now = time.time()
            live = existing is not None and not is_expired(existing[3], now)
            check_write(key, existing[1] if live else None, completion.if_match, completion.if_none_match)
            if existing is None:
                self._check_quota(conn, bucket, key, now)
            info = ObjectInfo(
                bucket=bucket,
                key=key,
                size=done.size,
                etag=done.etag,
                last_modified=now,
                storage_class=upload.storage_class,
                headers=upload.headers,
                checksums={done.algorithm: done.checksum},
                checksum_type=done.checksum_type,
                parts_count=len(done.parts),
                tags=dict(upload.tags),
            )
            extra = object_extra(
                info.headers, info.checksums, info.checksum_type, len(done.parts), pieces=True, tags=info.tags
            )
            expires = expiry_of(info.headers, now, self.default_ttl)
            values = (info.size, info.etag, info.last_modified, info.storage_class, upload.owner, extra, expires)
            released: list[str | None] = []
            if existing is None:
                object_id = conn.execute(
                    "INSERT INTO objects(bucket, key, version, size, etag, last_modified, storage_class, owner,"
                    " extra, expires, blob, data) VALUES (?,?,'null',?,?,?,?,?,?,?,NULL,NULL) RETURNING id",
                    (bucket, kb, *values),
                ).fetchone()[0]
            else:
                object_id = existing[0]
                conn.execute(
                    "UPDATE objects SET size=?, etag=?, last_modified=?, storage_class=?, owner=?, extra=?,"
                    " expires=?, blob=NULL, data=NULL, is_delete_marker=0, is_latest=1 WHERE id=?",
                    (*values, object_id),
                )
                released += [existing[2], *drop_manifest(conn, object_id)]
            offset = 0
            for part in done.parts:
                # The part's row becomes a piece of the object: same file, no data copied.
                conn.execute(
                    "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data)"
                    " SELECT ?, part_number, ?, size, etag, checksums, blob, data FROM parts"
                    " WHERE upload_id=? AND part_number=?",
                    (object_id, offset, upload_id, part.part_number),
                )
                offset += part.size
            released += [
                r[0]
                for r in conn.execute("DELETE FROM parts WHERE upload_id=? RETURNING blob", (upload_id,)).fetchall()
            ]
            result = {
                "size": info.size,
                "etag": info.etag,
                "t": info.last_modified,
                "c": json.loads(encode_checksums(info.checksums)),
                "ct": info.checksum_type,
                "n": info.parts_count,
            }
            conn.execute(
                "UPDATE uploads SET completed=? WHERE upload_id=?",
                (json.dumps(result, separators=(",", ":")), upload_id),
            )
            return info, unreferenced(conn, released)

        info, released = await self.meta.write(tx)
        await self.blobs.reclaim(released)
        return info

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
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

    def sweep_uploads(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort uploads older than ``max_age_seconds`` and forget old completed ones; returns aborts."""
        now = time.time() if now is None else now
        abandoned_before = now - max_age_seconds
        completed_before = now - min(max_age_seconds, COMPLETED_RETENTION_SECONDS)

        batch = 500

        def tx(conn: sqlite3.Connection) -> tuple[int, int, list[str]]:
            rows = conn.execute(
                "SELECT upload_id, completed IS NULL FROM uploads WHERE (completed IS NULL AND initiated < ?)"
                " OR (completed IS NOT NULL AND initiated < ?) LIMIT ?",
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

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        def read(conn: sqlite3.Connection) -> PartsPage:
            conn.execute("BEGIN")
            try:
                upload = _upload_from_row(self._upload_row(conn, bucket, key, upload_id))
                rows = conn.execute(
                    "SELECT part_number, size, etag, last_modified, checksums FROM parts"
                    " WHERE upload_id=? AND part_number>? ORDER BY part_number LIMIT ?",
                    (upload_id, marker, max_parts + 1),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            parts = [_part_from_row(r) for r in rows[:max_parts]]
            return PartsPage(upload, parts, len(rows) > max_parts, parts[-1].part_number if parts else 0)

        return await self.meta.read_in_thread(read)

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        return await self.meta.read_in_thread(
            lambda c: self._list_uploads(
                c, bucket, prefix.encode(), delimiter.encode(), key_marker.encode(), upload_id_marker, max_uploads
            )
        )

    def _list_uploads(
        self,
        conn: sqlite3.Connection,
        bucket: str,
        prefix: bytes,
        delimiter: bytes,
        key_marker: bytes,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        """Uploads in (key, upload id) order, folding keys into CommonPrefixes like a listing."""
        self._bucket_row(conn, bucket)

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
                for row in rows:
                    yield bytes(row[2]), _upload_from_row(tuple(row))
                if len(rows) < _LIST_BATCH:
                    return
                after_key, after_id = bytes(rows[-1][2]), rows[-1][0]

        return list_uploads_page(
            scan,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )

    # ------------------------------------------------------------------ copies
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
    ) -> ObjectInfo:
        owner = (await self.get_bucket(bucket)).owner
        for _attempt in range(5):
            source = await self.open_object(src_bucket, src_key)
            try:
                if check_source is not None:
                    check_source(source.info)
                info, read_algorithms = copy_plan(
                    source.info, bucket, key, headers, storage_class, checksum_algorithm, tags
                )
                if read_algorithms is not None:
                    # S3 writes a copy as one object: a multipart source gets the MD5 of its
                    # content as ETag, and a checksum the source does not carry is computed.
                    digests = await hash_stream(source.stream(), read_algorithms)
                    info.etag = digests.md5.hex()
                    info.checksums = dict(digests.checksums)
            finally:
                source.close()
            try:
                return await self._commit_copy(source, src_bucket, src_key, owner, info)
            except _SourceChanged:
                await asyncio.sleep(0)
        raise errors.ConditionalRequestConflict("The copy source kept changing during the copy.", key=src_key)

    async def _commit_copy(
        self, source: DiskObjectBody, src_bucket: str, src_key: str, owner: str, info: ObjectInfo
    ) -> ObjectInfo:
        src = source.info
        pieces = source.segments is not None
        extra = object_extra(info.headers, info.checksums, info.checksum_type, 0, pieces=pieces, tags=info.tags)
        kb = info.key.encode("utf-8")

        def tx(conn: sqlite3.Connection) -> list[str]:
            current = conn.execute(
                "SELECT id, etag, last_modified, extra FROM objects WHERE bucket=? AND key=? AND version='null'"
                " AND is_delete_marker=0",
                (src_bucket, src_key.encode("utf-8")),
            ).fetchone()
            if current is None or tuple(current[:3]) != (source.object_id, src.etag, src.last_modified):
                raise _SourceChanged()
            if json.loads(current[3]).get("t", {}) != src.tags:
                raise _SourceChanged()  # retagged meanwhile: a COPY directive must carry the new tags
            self._bucket_row(conn, info.bucket)
            existing = conn.execute(
                "SELECT id, blob FROM objects WHERE bucket=? AND key=? AND version='null'", (info.bucket, kb)
            ).fetchone()
            if existing is None:
                self._check_quota(conn, info.bucket, info.key, info.last_modified)
            # The copy's TTL runs from the copy, per its own metadata.
            expires = expiry_of(info.headers, info.last_modified, self.default_ttl)
            meta = (info.etag, info.last_modified, info.storage_class, owner, extra, expires)
            if existing is not None and existing[0] == source.object_id:
                # Copy onto itself: the body stays, only the metadata changes.
                conn.execute(
                    "UPDATE objects SET etag=?, last_modified=?, storage_class=?, owner=?, extra=?, expires=?"
                    " WHERE id=?",
                    (*meta, existing[0]),
                )
                return []
            released: list[str | None] = []
            values = (info.size, *meta, source.blob, source.data if not pieces else None)
            if existing is None:
                object_id = conn.execute(
                    "INSERT INTO objects(bucket, key, version, size, etag, last_modified, storage_class, owner,"
                    " extra, expires, blob, data) VALUES (?,?,'null',?,?,?,?,?,?,?,?,?) RETURNING id",
                    (info.bucket, kb, *values),
                ).fetchone()[0]
            else:
                object_id = existing[0]
                conn.execute(
                    "UPDATE objects SET size=?, etag=?, last_modified=?, storage_class=?, owner=?, extra=?,"
                    " expires=?, blob=?, data=?, is_delete_marker=0, is_latest=1 WHERE id=?",
                    (*values, object_id),
                )
                released += [existing[1], *drop_manifest(conn, object_id)]
            if pieces:
                # Share the source's pieces: new manifest rows, the same files.
                conn.execute(
                    "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data)"
                    " SELECT ?, part_number, offset, size, etag, checksums, blob, data FROM object_parts"
                    " WHERE object_id=?",
                    (object_id, source.object_id),
                )
            return unreferenced(conn, released)

        await self.blobs.reclaim(await self.meta.write(tx))
        return info

    async def list_object_parts(
        self, bucket: str, key: str, *, marker: int = 0, max_parts: int = 1000
    ) -> ObjectPartsPage:
        from coffer.storage.disk.engine import _row_to_info

        def read(conn: sqlite3.Connection) -> ObjectPartsPage:
            conn.execute("BEGIN")
            try:
                row = self._object_row(conn, bucket, key, False)
                info = _row_to_info(bucket, row)
                if not info.parts_count:
                    return ObjectPartsPage(info, [], False, 0)
                parts, truncated = object_parts_page(conn, row[9], marker, max_parts)
            finally:
                conn.execute("COMMIT")
            return ObjectPartsPage(info, parts, truncated, parts[-1].part_number if parts else 0)

        return self.meta.read(read)


__all__ = ["MultipartMixin", "new_upload_id", "object_extra"]
