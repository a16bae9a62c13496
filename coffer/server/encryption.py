"""Encrypted object bodies: what a write stores (the body through the frame encryptor, with the
digests of the plaintext as the version's size, ETag and checksums) and how a read gets the
plaintext back (the data key unwrapped, only the frames covering the range decrypted).

The protocol is coffer/server/sse.py, the format coffer/encryption/frames.py, the keys
coffer/encryption/kms.py. The engine stores the encrypted bytes and this module's document
(``ObjectInfo.encoding``) without knowing what they mean. docs/encryption.md.

The stored document (short keys: it is kept with every version)::

    v  format (1)          a  AES256 | aws:kms | SSE-C
    f  frame size          i  body id (base64, 16 random bytes): the frames' object identity
    w  wrapped data key    k  KMS key ARN (SSE-KMS)          c  the key service context
    b  bucket key flag     m  SSE-C key MD5 (S3 echoes it)   h, s  SSE-C key HMAC and its salt
    d  1: "w" wraps a bucket key (context: the bucket's ARN) and the data key is derived from it
       (``derive_data_key``); absent: "w" wraps the data key itself
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer import entropy
from coffer.encryption import frames
from coffer.encryption.kms import AWS_MANAGED_KEY, DataKey, KeyService, KeyServiceError
from coffer.server import sse
from coffer.server.errors import S3Error
from coffer.server.object_write import refuse_encryption
from coffer.server.upload import read_if_small
from coffer.storage.api import Encoding, LogicalBody, ObjectInfo, ObjectPart, PutDigests, Verifier
from coffer.storage.hashing import BodyHasher

log = logging.getLogger("coffer.server")

SSE_C = "SSE-C"
FORMAT = 1
_SSE_C_AD = b"coffer-sse-c/v1\x00"
# Encrypting a piece this large off the event loop: AES-GCM and hashing of a MiB take ~1 ms.
_THREAD_PIECE = 256 * 1024
_MD5_AHEAD = 4 * 1024 * 1024
_md5_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="coffer-md5")
_SEND_BATCH = 512 * 1024

_STORED_WITH_SSE = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)
_NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
_WRONG_KEY = "The provided customer key does not match the key the object was stored with."

# Data keys unwrapped in the last second, by wrapped key: a hot object's reads skip the key
# service. Bounded and short-lived, so a key disabled or rotated away takes effect within a second
# (as bucket configuration does, coffer/server/bucket_state.py).
_UNWRAPPED_TTL = 1.0
_UNWRAPPED_MAX = 4096
_unwrapped: dict[str | tuple[str, str, str, str], tuple[bytes, float]] = {}

_K = TypeVar("_K")
_V = TypeVar("_V")

# Openers of small one-frame bodies by (data key, body id, frame size): a hot small object's GET
# skips making its cipher and associated data (2.8 -> 1 us). Keyed by the data key itself, so only a
# request that got the key (data_key_of: a disabled key is refused within the second) finds one.
_openers: dict[tuple[bytes, str, int], frames.WholeOpener] = {}
# Bucket keys (``_bucket_key``) by (bucket, key reference), made at most once a second.
_bucket_keys: dict[tuple[str, str | None], _BucketKey] = {}
# The document's "d": its data key is derived from the unwrapped key (``derive_data_key``).
DERIVED = 1
_DERIVE = b"coffer-data-key/v1\x00"
_ARN = "aws:s3:arn"

# Called once per body that fails authentication on read: the app counts it in its metrics.
on_tampered: Callable[[], None] = lambda: None  # noqa: E731


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: Any) -> bytes:
    return binascii.a2b_base64(str(text))


def kms_error(exc: KeyServiceError) -> S3Error:
    return S3Error(exc.code, exc.message, status=exc.status)


def object_context(bucket: str, key: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The key service context of an object's data key: S3's own (the object's ARN) plus the
    caller's x-amz-server-side-encryption-context."""
    return {**(extra or {}), _ARN: _s3_arn(bucket, key)}


def _s3_arn(bucket: str, key: str | None = None) -> str:
    """The ARN of a bucket, or of an object in it."""
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


# ---------------------------------------------------------------------- writing
def new_document(
    keys: Callable[[], KeyService], request: sse.SseRequest, bucket: str, key: str
) -> tuple[dict[str, Any], bytes]:
    """(stored document, data key) for a new encrypted body as ``request`` asks."""
    body_id = entropy.token_bytes(16)
    doc: dict[str, Any] = {"v": FORMAT, "f": frames.DEFAULT_FRAME_SIZE, "i": _b64(body_id)}
    if request.customer is not None:
        data_key = entropy.token_bytes(frames.KEY_SIZE)
        nonce = entropy.token_bytes(12)
        wrapped = AESGCM(request.customer.key).encrypt(nonce, data_key, _SSE_C_AD + body_id)
        salt = entropy.token_bytes(16)
        doc.update(
            a=SSE_C,
            w=_b64(nonce + wrapped),
            m=request.customer.md5,
            s=_b64(salt),
            h=_b64(hmac.new(salt, request.customer.key, hashlib.sha256).digest()),
        )
        return doc, data_key
    assert request.algorithm is not None
    if request.algorithm == sse.KMS_DSSE:
        # One layer stored while two are claimed would be a lie: refused until built.
        raise refuse_encryption(f"{sse.HEADER}: {sse.KMS_DSSE}")
    # Without a key id SSE-KMS uses S3's AWS-managed key, aws/s3.
    key_ref = None if request.algorithm == sse.AES256 else request.kms_key_id or AWS_MANAGED_KEY
    service = keys()
    try:
        if request.algorithm == sse.AES256 or (request.bucket_key and not request.context):
            shared = _bucket_key(service, bucket, key_ref)
            made = shared.made
            data_key = derive_data_key(made.plaintext, body_id, bucket, key)
            doc.update(a=request.algorithm, w=shared.wrapped, c={_ARN: shared.arn}, d=DERIVED)
        else:
            context = object_context(bucket, key, request.context)
            made = service.generate_data_key(key_ref, context)
            data_key = made.plaintext
            doc.update(a=request.algorithm, w=_b64(made.wrapped), c=context)
    except KeyServiceError as exc:
        raise kms_error(exc) from None
    if request.algorithm != sse.AES256:
        doc["k"] = made.key_id
        if request.bucket_key:
            doc["b"] = True
    return doc, data_key


@dataclass(frozen=True, slots=True)
class _BucketKey:
    service: KeyService  # whose key it is (a process can hold several apps, e.g. in tests)
    made: DataKey  # wrapped under the bucket's ARN as context
    wrapped: str  # made.wrapped, base64 (as the documents store it)
    arn: str  # the bucket's ARN
    until: float  # time.monotonic() after which a new one is made


def _bucket_key(service: KeyService, bucket: str, key_ref: str | None) -> _BucketKey:
    """The bucket key new objects of ``bucket`` under ``key_ref`` derive their data keys from
    (as S3 Bucket Keys): made by the key service at most once a second, so a key disabled or
    rotated takes effect within the second, as the unwrapped-key cache does on reads."""
    now = time.monotonic()
    slot = (bucket, key_ref)
    hit = _bucket_keys.get(slot)
    if hit is not None and hit.until > now and hit.service is service:
        return hit
    arn = _s3_arn(bucket)
    made = service.generate_data_key(key_ref, {_ARN: arn})
    return _keep(_bucket_keys, slot, _BucketKey(service, made, _b64(made.wrapped), arn, now + _UNWRAPPED_TTL))


def derive_data_key(bucket_key: bytes, body: bytes, bucket: str, key: str) -> bytes:
    """An object's data key from its bucket key: bound to the body id and the object's ARN, so a
    document moved to another object (or body) yields a key that opens nothing."""
    # hmac.new, not hmac.digest: the one-shot call releases the GIL whatever the size, and taking it
    # back on the event loop behind the metadata writer cost a PUT ~50 µs (docs/benchmarks.md).
    return hmac.new(bucket_key, _DERIVE + body + _s3_arn(bucket, key).encode(), hashlib.sha256).digest()


def encrypting(
    body: AsyncIterator[bytes],
    doc: dict[str, Any],
    data_key: bytes,
    *,
    algorithms: tuple[str, ...],
    want_sha256: bool,
    verify: Verifier | None,
    part_number: int | None = None,
) -> tuple[AsyncIterator[bytes], Encoding]:
    """The stored (encrypted) form of ``body`` and the Encoding that tells the engine what the
    version reports: the plaintext's size and checksums (verified against what the client
    declared, as an unencrypted write is), and an ETag that is the plaintext's MD5 for SSE-S3
    and, as S3, not for SSE-KMS and SSE-C (a keyed digest of it under the data key). ``part_number``: one
    part of a multipart upload (framed as its own body, bound to its number)."""
    hasher = BodyHasher(algorithms, want_sha256, md5=False)
    md5 = _BackgroundMd5()
    encryptor = frames.Encryptor(data_key, body_id(doc, part_number), doc["f"])

    def step(chunk: bytes) -> list[bytes]:
        hasher.update(chunk)
        return list(encryptor.frames(chunk))

    async def stored() -> AsyncIterator[bytes]:
        async for chunk in body:
            await md5.add(chunk)
            out = await asyncio.to_thread(step, chunk) if len(chunk) >= _THREAD_PIECE else step(chunk)
            for frame in out:
                yield frame
        await md5.finish()
        yield encryptor.finish()

    def logical(digests: PutDigests) -> LogicalBody:
        plain = hasher.digests()
        plain.md5 = md5.digest()
        return _logical(plain, doc, data_key, verify)

    return stored(), Encoding(doc, logical)


class _BackgroundMd5:
    """The plaintext MD5 of a streamed body, computed in a pool thread while the event loop
    encrypts (hashlib releases the GIL): an unencrypted PUT hashes in the blob store's writer
    thread, and on the event loop the MD5 capped a 256 MiB encrypted PUT near 400 MB/s. Pieces go
    in batches of _THREAD_PIECE bytes, one batch at a time (in order); a body waits for the thread
    only when _MD5_AHEAD bytes are queued. A body shorter than a batch is hashed on the loop."""

    __slots__ = ("_md5", "_pending", "_queued", "_running")

    def __init__(self) -> None:
        self._md5 = BodyHasher((), False)  # MD5 only, hashed as BodyHasher does on the loop too
        self._pending: list[bytes] = []
        self._queued = 0
        self._running: concurrent.futures.Future[None] | None = None

    def _hash(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._md5.update(piece)

    async def add(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._queued += len(piece)
        if self._queued < _THREAD_PIECE:
            return
        if self._running is not None and not self._running.done():
            if self._queued < _MD5_AHEAD:
                return
            await asyncio.wrap_future(self._running)
        self._submit()

    def _submit(self) -> None:
        if self._running is not None:
            self._running.result()  # a failure surfaces here
        pieces, self._pending, self._queued = self._pending, [], 0
        self._running = _md5_pool.submit(self._hash, pieces)

    async def finish(self) -> None:
        if self._running is not None:
            await asyncio.wrap_future(self._running)  # raises what the batch raised
            self._running = None
        self._hash(self._pending)
        self._pending, self._queued = [], 0

    def digest(self) -> bytes:
        return self._md5.digests().md5


async def encrypted(
    body: AsyncIterator[bytes],
    doc: dict[str, Any],
    data_key: bytes,
    *,
    declared_length: int | None,
    algorithms: tuple[str, ...],
    want_sha256: bool,
    verify: Verifier | None,
) -> tuple[AsyncIterator[bytes], Encoding]:
    """``encrypting``, and for a body announced to fit one frame (most small PUTs) read first and
    sealed at once: one frame, no streaming machinery, its digests checked before the engine is
    called. A body longer than announced goes the streaming way (``read_if_small``). Sealing here,
    on the event loop, measured faster than in the metadata writer's commit (docs/benchmarks.md)."""
    frame_size: int = doc["f"]
    if declared_length is not None and declared_length <= frame_size:
        whole, body = await read_if_small(body, frame_size)
        if whole is not None:
            hasher = BodyHasher(algorithms, want_sha256)
            hasher.update(whole)
            logical = _logical(hasher.digests(), doc, data_key, verify)
            stored = frames.seal_whole(data_key, body_id(doc), whole, frame_size)
            return _one(stored), Encoding(doc, lambda _digests: logical)
    return encrypting(body, doc, data_key, algorithms=algorithms, want_sha256=want_sha256, verify=verify)


def _logical(plain: PutDigests, doc: dict[str, Any], data_key: bytes, verify: Verifier | None) -> LogicalBody:
    """What an encrypted version reports, from its plaintext's digests (checked first: Content-MD5,
    x-amz-checksum-*, x-amz-content-sha256 are of the plaintext). The ETag is the plaintext's MD5
    for SSE-S3; for SSE-KMS and SSE-C not (it would tell about the content), yet the same for the
    same bytes under the same data key: a part uploaded twice keeps its ETag, as in S3."""
    if verify is not None:
        verify(plain)
    if doc["a"] == sse.AES256:
        etag = plain.md5.hex()
    else:
        etag = hmac.new(data_key, b"coffer-etag/v1\x00" + plain.md5, hashlib.sha256).digest()[:16].hex()
    return LogicalBody(plain.size, etag, plain.checksums)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


# ---------------------------------------------------------------------- reading
def body_id(doc: dict[str, Any], part_number: int | None = None) -> bytes:
    """The identity the frames of a body are bound to: the body's random id, and for a part of a
    multipart upload its number (so parts cannot be swapped or reordered)."""
    base = _unb64(doc["i"])
    return base if part_number is None else base + b"/part/" + part_number.to_bytes(4, "big")


def data_key_of(
    keys: Callable[[], KeyService], doc: dict[str, Any], customer: sse.CustomerKey | None, bucket: str, key: str
) -> bytes:
    """The data key of an encrypted version or upload (its document) of ``bucket``/``key``, for a
    request that gave ``customer`` (its SSE-C key headers): S3's 400 errors for a missing,
    needless or wrong key."""
    check_read_key(doc, customer)
    if customer is not None:  # an SSE-C body, and the key the request gave is its own
        sealed = _unb64(doc["w"])
        try:
            return AESGCM(customer.key).decrypt(sealed[:12], sealed[12:], _SSE_C_AD + _unb64(doc["i"]))
        except InvalidTag:
            raise S3Error("InvalidArgument", _WRONG_KEY) from None
    wrapped = str(doc["w"])
    now = time.monotonic()
    derived = doc.get("d") == DERIVED
    # A derived key is kept under everything it is made of: the bucket key and the object.
    slot: str | tuple[str, str, str, str] = (wrapped, str(doc["i"]), bucket, key) if derived else wrapped
    cached = _unwrapped.get(slot)
    if cached is not None and cached[1] > now:
        return cached[0]
    unwrapped = _unwrap(keys, wrapped, doc, now)
    if not derived:
        return unwrapped
    data_key = derive_data_key(unwrapped, body_id(doc), bucket, key)
    _keep(_unwrapped, slot, (data_key, now + _UNWRAPPED_TTL))
    return data_key


def _unwrap(keys: Callable[[], KeyService], wrapped: str, doc: dict[str, Any], now: float) -> bytes:
    """The key ``wrapped`` wraps (a data key or a bucket key), from the key service or kept."""
    cached = _unwrapped.get(wrapped)
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        unwrapped = keys().decrypt_data_key(_unb64(wrapped), doc.get("c") or {})
    except KeyServiceError as exc:
        raise kms_error(exc) from None
    _keep(_unwrapped, wrapped, (unwrapped, now + _UNWRAPPED_TTL))
    return unwrapped


def _keep(cache: dict[_K, _V], slot: _K, value: _V) -> _V:
    """``value`` into one of this module's caches, bounded: emptied when full (hot entries come back)."""
    if len(cache) >= _UNWRAPPED_MAX:
        cache.clear()
    cache[slot] = value
    return value


def check_read_key(doc: dict[str, Any] | None, customer: sse.CustomerKey | None) -> None:
    """The SSE-C key rule of a request on a version or upload (its document; None: not
    encrypted): an SSE-C body needs its key, given and right; any other body takes none."""
    if doc is None or doc.get("a") != SSE_C:
        if customer is not None:
            raise S3Error("InvalidRequest", _NOT_APPLICABLE)
        return
    if customer is None:
        raise S3Error("InvalidRequest", _STORED_WITH_SSE)
    if not hmac.compare_digest(hmac.new(_unb64(doc["s"]), customer.key, hashlib.sha256).digest(), _unb64(doc["h"])):
        raise S3Error("InvalidArgument", _WRONG_KEY)


def decrypting(
    stream: Callable[[int, int], AsyncIterator[bytes]],
    info: ObjectInfo,
    data_key: bytes,
    start: int,
    end: int,
    parts: list[ObjectPart] | None = None,
) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end) of an encrypted version; ``stream(s, e)`` reads its stored
    bytes [s, e). Only the frames covering the range are read and decrypted. ``parts``: the parts
    of a multipart object (each its own framed body); the range's parts lie back to back in the
    stored bytes, so one stored range is read and cut at the parts' boundaries."""
    doc = info.encoding
    assert doc is not None
    frame_size = int(doc["f"])
    if not parts:
        span = _span(info.size, start, end, frame_size)
        last = None if info.size == 0 else end - 1
        chunks = stream(span.enc_start, span.enc_end)
        return _decrypt(chunks, data_key, body_id(doc), frame_size, info.size, start, last)
    pieces: list[tuple[ObjectPart, int, int, int, int]] = []  # part, plain start/last, stored start/end
    for part in parts:
        lo, hi = max(start, part.offset), min(end, part.offset + part.size)
        if hi <= lo:
            continue  # outside the range (or an empty part: nothing to send)
        assert part.stored_offset is not None
        span = _span(part.size, lo - part.offset, hi - part.offset, frame_size)
        pieces.append(
            (
                part,
                lo - part.offset,
                hi - part.offset - 1,
                part.stored_offset + span.enc_start,
                part.stored_offset + span.enc_end,
            )
        )
    if not pieces:
        return _empty()
    chunks = stream(pieces[0][3], pieces[-1][4])
    return _decrypt_parts(chunks, data_key, doc, frame_size, pieces)


def decrypt_whole(stored: bytes, info: ObjectInfo, data_key: bytes) -> bytes | None:
    """The plaintext of a small single-part body the engine holds in memory, decrypted at once
    (no stream: most small GETs); None when it is not one frame."""
    doc = info.encoding
    assert doc is not None
    frame_size = int(doc["f"])
    if info.parts_count or info.size > frame_size:
        return None
    slot = (data_key, str(doc["i"]), frame_size)
    opener = _openers.get(slot) or _keep(_openers, slot, frames.WholeOpener(data_key, body_id(doc), frame_size))
    try:
        return opener.open(stored, info.size)
    except frames.FrameError:
        _tampered(body_id(doc))
        raise S3Error("InternalError", "The object's stored data failed its integrity check.") from None


def _span(size: int, start: int, end: int, frame_size: int) -> frames.FrameSpan:
    if size == 0:
        return frames.frame_span(0, 0, None, frame_size)
    return frames.frame_span(size, start, end - 1, frame_size)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _decrypt_parts(
    chunks: AsyncIterator[bytes],
    key: bytes,
    doc: dict[str, Any],
    frame_size: int,
    pieces: list[tuple[ObjectPart, int, int, int, int]],
) -> AsyncIterator[bytes]:
    """Cut one stored stream into the parts' stored ranges and decrypt each with its own identity."""
    source = chunks.__aiter__()
    leftover = b""
    for part, first, last, stored_start, stored_end in pieces:
        need = stored_end - stored_start

        async def take(need: int = need) -> AsyncIterator[bytes]:
            nonlocal leftover
            while need > 0:
                if not leftover:
                    try:
                        leftover = await source.__anext__()
                    except StopAsyncIteration:
                        raise frames.FrameError("stored bytes end early") from None
                piece, leftover = leftover[:need], leftover[need:]
                need -= len(piece)
                yield piece

        last_byte = None if part.size == 0 else last
        async for plain in _decrypt(
            take(), key, body_id(doc, part.part_number), frame_size, part.size, first, last_byte
        ):
            yield plain


async def _decrypt(
    chunks: AsyncIterator[bytes], key: bytes, body_id: bytes, frame_size: int, size: int, start: int, last: int | None
) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    batched = 0
    try:
        async for piece in frames.decrypt_stream(chunks, key, body_id, frame_size, size, start, last):
            # Frames come out 64 KiB at a time; sent in batches, the response costs fewer writes.
            batch.append(piece)
            batched += len(piece)
            if batched >= _SEND_BATCH:
                yield b"".join(batch)
                batch, batched = [], 0
        if batch:
            yield b"".join(batch)
    except frames.FrameError:
        # The response has started: the connection is cut rather than sending wrong bytes.
        _tampered(body_id)
        raise


def _tampered(identity: bytes) -> None:
    """Stored bytes that no longer authenticate: corruption (or tampering) at rest."""
    log.error("encrypted body %s failed authentication: corrupted or tampered at rest", identity.hex())
    on_tampered()


def response_headers(doc: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The x-amz-server-side-encryption* headers S3 sends with a version or upload (its document):
    PUT, GET, HEAD, copies, multipart."""
    if doc is None:
        return []
    algorithm = doc.get("a")
    if algorithm == SSE_C:
        return [
            ("x-amz-server-side-encryption-customer-algorithm", sse.AES256),
            ("x-amz-server-side-encryption-customer-key-md5", str(doc.get("m", ""))),
        ]
    headers = [(sse.HEADER, str(algorithm))]
    if algorithm != sse.AES256:
        headers.append((sse.KMS_KEY_HEADER, str(doc.get("k", ""))))
        if doc.get("b"):
            headers.append((sse.BUCKET_KEY_HEADER, "true"))
    return headers
