"""One object copied from source to destination, with its headers, metadata and tags.

Up to the multipart threshold: one GET streamed into one PUT (bodies up to 1 MiB are read whole,
larger ones stream through in 64 KiB blocks). Above it: a multipart upload whose parts are ranged
GETs (``If-Match`` the first part's ETag, so every part comes from the same object version),
copied in parallel by a shared part pool with a bounded number of part buffers. Every body is
hashed on the way through: with a plain-MD5 source ETag the destination is sent it as
``Content-MD5`` (single PUT) and the copy fails on a mismatch.
"""

from __future__ import annotations

import hashlib
import math
import threading
from base64 import b64encode
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlencode

from coffer.mirror.client import Entry, RemoteError, S3Client
from coffer.mirror.plan import is_plain_md5

# The headers an object keeps (PutObject / CreateMultipartUpload take them as they come back on GET).
CONTENT_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-amz-website-redirect-location",
)
_READ_WHOLE = 1 << 20
_BLOCK = 64 * 1024
MAX_PARTS = 10_000
_CHECKSUM_PREFIX = "x-amz-checksum-"


class MismatchError(Exception):
    """The bytes read do not hash to what the source or the destination says they are."""


class Interrupted(Exception):
    """The run is stopping (Ctrl-C): a copy in flight gives up at its next block or part."""


@dataclass(frozen=True)
class TransferOptions:
    multipart_threshold: int = 16 << 20
    part_size: int = 8 << 20
    storage_class: bool = False  # also copy x-amz-storage-class


Progress = Callable[[int], None]


def write_headers(src: S3Client, key: str, got: dict[str, str], options: TransferOptions) -> dict[str, str]:
    """The destination PUT's headers from the source GET's response: content headers, user
    metadata, tags (fetched only when ``x-amz-tagging-count`` says there are some)."""
    headers = {name: got[name] for name in CONTENT_HEADERS if name in got}
    headers.update((name, value) for name, value in got.items() if name.startswith("x-amz-meta-"))
    if options.storage_class and "x-amz-storage-class" in got:
        headers["x-amz-storage-class"] = got["x-amz-storage-class"]
    if int(got.get("x-amz-tagging-count", "0") or 0) > 0:
        tags = src.get_tags(key)
        if tags:
            headers["x-amz-tagging"] = urlencode(tags)
    return headers


def full_object_checksum(got: dict[str, str]) -> tuple[str, str] | None:
    """The (header, value) of a whole-object checksum the source returned; composite checksums
    of multipart objects (``…-N``) depend on the part layout and are not forwarded."""
    if got.get("x-amz-checksum-type", "FULL_OBJECT").upper() != "FULL_OBJECT":
        return None
    for name, value in got.items():
        is_value = name.startswith(_CHECKSUM_PREFIX) and name not in ("x-amz-checksum-type", "x-amz-checksum-mode")
        if is_value and "-" not in value:
            return name, value
    return None


class _HashingReader:
    """The source response as a file for http.client to send from, hashed as it goes."""

    def __init__(self, resp: object, length: int, progress: Progress, stop: threading.Event) -> None:
        self._resp = resp
        self._left = length
        self.md5 = hashlib.md5()
        self._progress = progress
        self._stop = stop

    def read(self, amount: int = _BLOCK) -> bytes:
        if self._left <= 0:
            return b""
        if self._stop.is_set():
            raise Interrupted()
        data = self._resp.read(min(max(amount, _BLOCK), self._left))  # type: ignore[attr-defined]
        if not data:
            raise MismatchError(f"source body ended {self._left} bytes early")
        self._left -= len(data)
        self.md5.update(data)
        self._progress(len(data))
        return data  # type: ignore[no-any-return]


def _check_md5(digest: str, source_etag: str, key: str) -> None:
    if is_plain_md5(source_etag) and digest != source_etag.lower():
        raise MismatchError(f"{key}: read MD5 {digest} but the source ETag is {source_etag}")


class Copier:
    """Copies objects from ``src`` to ``dst`` (one instance shared by the workers); ``stop`` set
    makes a copy in flight give up at its next block or part (a multipart upload is aborted)."""

    def __init__(
        self, src: S3Client, dst: S3Client, options: TransferOptions, stop: threading.Event, concurrency: int
    ) -> None:
        self.src, self.dst, self.options, self.stop = src, dst, options, stop
        self._parts = ThreadPoolExecutor(concurrency, thread_name_prefix="mirror-part")
        self._buffers = threading.BoundedSemaphore(concurrency)

    def copy(self, entry: Entry, dest_key: str, progress: Progress) -> int:
        """Copy ``entry`` to ``dest_key``; the bytes copied. Raises RemoteError or MismatchError."""
        if entry.size > self.options.multipart_threshold:
            return self._copy_multipart(entry, dest_key, progress)
        resp = self.src.get_object(entry.key, {"x-amz-checksum-mode": "ENABLED"})
        try:
            got = resp.headers
            length = int(got.get("content-length", "0"))
            headers = write_headers(self.src, entry.key, got, self.options)
            checksum = full_object_checksum(got)
            if checksum is not None:
                headers[checksum[0]] = checksum[1]  # the destination checks the body against it too
            etag = got.get("etag", "").strip('"')
            if length <= _READ_WHOLE:
                data = resp.read()
                if len(data) != length:
                    raise MismatchError(f"{entry.key}: read {len(data)} of {length} bytes")
                digest = hashlib.md5(data)
                _check_md5(digest.hexdigest(), etag, entry.key)
                headers["content-md5"] = b64encode(digest.digest()).decode()
                put = self.dst.put_object(dest_key, data, headers)
                progress(length)
                md5 = digest.hexdigest()
            else:
                if is_plain_md5(etag):
                    headers["content-md5"] = b64encode(bytes.fromhex(etag)).decode()
                headers["content-length"] = str(length)
                reader = _HashingReader(resp, length, progress, self.stop)
                put = self.dst.put_object(dest_key, reader, headers)  # type: ignore[arg-type]
                md5 = reader.md5.hexdigest()
                _check_md5(md5, etag, entry.key)
        finally:
            resp.close()
        _check_md5(md5, put.get("etag", "").strip('"'), dest_key)
        return length

    def _copy_multipart(self, entry: Entry, dest_key: str, progress: Progress) -> int:
        """The first part is read here (its response carries the headers the upload is created
        with); every part is then uploaded by the shared part pool, so one large object moves as
        fast as many small ones. A part holds a buffer slot from before its read until its
        upload is done: at most ``concurrency`` part buffers exist across all objects."""
        src, dst = self.src, self.dst
        part_size = part_size_for(entry.size, self.options.part_size)
        self._buffers.acquire()
        try:
            got, data = _read_range(src, entry.key, 0, min(part_size, entry.size), None)
            etag = got.get("etag", "")
            total = int(got.get("content-range", "/0").rpartition("/")[2] or 0)
            upload_id = dst.create_multipart(dest_key, write_headers(src, entry.key, got, self.options))
        except BaseException:
            self._buffers.release()
            raise
        upload = _Upload(entry.key, dest_key, upload_id, etag)
        futures = [self._submit_part(upload, 1, 0, len(data), data, progress)]
        try:
            for offset in range(len(data), total, part_size):
                self._buffers.acquire()
                if self.stop.is_set() or upload.failed:
                    self._buffers.release()
                    break
                length = min(part_size, total - offset)
                futures.append(self._submit_part(upload, len(futures) + 1, offset, length, None, progress))
            if self.stop.is_set():
                raise Interrupted()
            etags = [future.result() for future in futures]
            dst.complete_multipart(dest_key, upload_id, etags)
        except BaseException:
            upload.fail()
            for future in futures:
                future.cancel()
            wait(futures)  # no part may land after the abort
            try:
                dst.abort_multipart(dest_key, upload_id)
            except RemoteError:
                pass  # the error being raised says more; a bucket lifecycle rule cleans the rest
            raise
        if upload.md5 is not None:
            _check_md5(upload.md5.hexdigest(), etag.strip('"'), entry.key)
        return total

    def _submit_part(
        self, upload: _Upload, number: int, offset: int, length: int, data: bytes | None, progress: Progress
    ) -> Future[str]:
        future = self._parts.submit(self._copy_part, upload, number, offset, length, data, progress)
        future.add_done_callback(lambda _: self._buffers.release())  # also when cancelled unrun
        return future

    def _copy_part(
        self, upload: _Upload, number: int, offset: int, length: int, data: bytes | None, progress: Progress
    ) -> str:
        try:
            if upload.failed or self.stop.is_set():
                raise Interrupted()
            if data is None:
                data = _read_range(self.src, upload.source_key, offset, length, upload.source_etag)[1]
            part_md5 = b64encode(hashlib.md5(data).digest()).decode()
            etag = self.dst.upload_part(upload.dest_key, upload.upload_id, number, data, {"content-md5": part_md5})
            progress(len(data))
            upload.hash_in_order(number, data)
            return etag
        except BaseException:
            upload.fail()
            raise

    def close(self) -> None:
        self._parts.shutdown(wait=False, cancel_futures=True)


class _Upload:
    """One multipart copy in flight: its ids, and the MD5 of the whole object, fed part by part
    in order (a part that finishes early waits for its turn; a failure releases every waiter)."""

    def __init__(self, source_key: str, dest_key: str, upload_id: str, source_etag: str) -> None:
        self.source_key, self.dest_key, self.upload_id, self.source_etag = source_key, dest_key, upload_id, source_etag
        # Only worth computing when there is a plain MD5 ETag to check it against.
        self.md5 = hashlib.md5() if is_plain_md5(source_etag.strip('"')) else None
        self.failed = False
        self._next = 1
        self._turn = threading.Condition()

    def hash_in_order(self, number: int, data: bytes) -> None:
        if self.md5 is None:
            return
        with self._turn:
            self._turn.wait_for(lambda: self._next == number or self.failed)
            if self.failed:
                return
            self.md5.update(data)
            self._next += 1
            self._turn.notify_all()

    def fail(self) -> None:
        with self._turn:
            self.failed = True
            self._turn.notify_all()


def part_size_for(size: int, wanted: int) -> int:
    """``wanted``, raised so that the object fits in 10,000 parts."""
    return max(wanted, math.ceil(size / MAX_PARTS))


def _read_range(src: S3Client, key: str, offset: int, length: int, etag: str | None) -> tuple[dict[str, str], bytes]:
    headers = {"range": f"bytes={offset}-{offset + length - 1}"}
    if etag:
        headers["if-match"] = etag  # every part from the version the first part came from
    resp = src.get_object(key, headers)
    try:
        data = resp.read()
    finally:
        resp.close()
    if len(data) != length and resp.status == 206:
        raise MismatchError(f"{key}: range at {offset} gave {len(data)} of {length} bytes")
    if resp.status == 200:  # a server without ranges sent everything: not a mirror we can stream
        raise MismatchError(f"{key}: the source ignored the Range header")
    return resp.headers, data


def hash_object(client: S3Client, key: str, progress: Progress) -> str:
    """The MD5 of an object's bytes, read back in blocks (verify --read-back)."""
    resp = client.get_object(key)
    md5 = hashlib.md5()
    try:
        while block := resp.read(_BLOCK):
            md5.update(block)
            progress(len(block))
    finally:
        resp.close()
    return md5.hexdigest()
