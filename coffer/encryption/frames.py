"""The framed AES-256-GCM body format (docs/encryption.md, "Stored format").

A plaintext body is cut into frames of `frame_size` plaintext bytes (the last one may be shorter;
an empty body is one empty frame). Each stored frame is

    nonce (12 random bytes) | ciphertext (same length as the plaintext) | GCM tag (16 bytes)

and is authenticated with associated data binding the format version, the caller's `object_id`,
the frame size, the frame's index and whether it is the body's final frame. So frames cannot be
reordered, moved between objects or parts, or dropped from the end without the tag check failing.

Sizes are pure arithmetic on (plaintext size, frame size), which is what lets a ranged GET read
and decrypt only the frames covering the range (`frame_span`).

Pure and synchronous at the core (`Encryptor`, `Decryptor`), with async stream wrappers for the
server's body iterators. No HTTP, no storage: the caller provides keys and stored bytes.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer import entropy

__all__ = [
    "DEFAULT_FRAME_SIZE",
    "FRAME_OVERHEAD",
    "KEY_SIZE",
    "MAX_FRAME_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Decryptor",
    "Encryptor",
    "FrameError",
    "FrameSpan",
    "decrypt_stream",
    "encrypt_stream",
    "encrypted_size",
    "frame_count",
    "frame_span",
    "open_whole",
    "plain_size",
    "seal_whole",
]

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12  # GCM's native nonce length
TAG_SIZE = 16  # full-length GCM tag, never truncated
FRAME_OVERHEAD = NONCE_SIZE + TAG_SIZE
# 64 KiB: measured (docs/benchmarks.md, "Encryption frames") as fast as 256 KiB and 1 MiB frames
# within the noise for whole bodies, while a small ranged GET decrypts 16x less than at 1 MiB.
DEFAULT_FRAME_SIZE = 64 * 1024
MAX_FRAME_SIZE = 64 * 1024 * 1024
# Random 96-bit nonces stay safe (collision chance < 2^-32) up to 2^32 frames under one key
# (NIST SP 800-38D 8.3); one data key per object or part is far below that (5 GiB / 64 KiB = 81,920).
MAX_FRAMES = 2**32
# cryptography (>= 47) releases the GIL inside AESGCM for inputs of 2 KiB or more. On the event
# loop, taking it back behind the metadata writer thread cost an encrypted 4 KiB PUT ~55 µs
# (py-spy, docs/benchmarks.md "Encryption") against ~1 µs of AES. Frames below SMALL_FRAME are
# sealed through the streaming GCM API in pieces short enough to keep the GIL (~5 µs a 4 KiB
# frame): the same AES-256-GCM, the same bytes. Reads keep the one-shot call: no writer thread
# competes on a GET, and there the 5 µs cost more than the handoff (measured: 68 % vs 79 %).
SMALL_FRAME = 16 * 1024
_GIL_KEPT = 2047


def _seal_small(aes: algorithms.AES, nonce: bytes, plaintext: bytes | bytearray | memoryview, ad: bytes) -> bytes:
    """nonce + AESGCM(key).encrypt(nonce, plaintext, ad) for a small plaintext, without releasing the GIL."""
    encryptor = Cipher(aes, modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(ad)
    out = [nonce]
    if len(plaintext) <= _GIL_KEPT:
        out.append(encryptor.update(plaintext))
    else:
        view = memoryview(plaintext)
        out += [encryptor.update(view[at : at + _GIL_KEPT]) for at in range(0, len(view), _GIL_KEPT)]
    encryptor.finalize()  # GCM: no bytes held back
    out.append(encryptor.tag)
    return b"".join(out)


def seal_whole(key: bytes, object_id: bytes, plaintext: bytes, frame_size: int = DEFAULT_FRAME_SIZE) -> bytes:
    """A whole body of at most one frame, sealed at once: the bytes an ``Encryptor`` fed ``plaintext``
    makes (the server's small PUTs, whose body is in hand before it is stored)."""
    _check_key(key)
    _check_frame_size(frame_size)
    if len(plaintext) > frame_size:
        raise ValueError("seal_whole takes a body of at most one frame")
    nonce = entropy.token_bytes(NONCE_SIZE)
    ad = _ad_prefix(object_id, frame_size) + _FINAL_FIRST_FRAME
    if len(plaintext) < SMALL_FRAME:
        return _seal_small(algorithms.AES(key), nonce, plaintext, ad)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


class WholeOpener:
    """Opens whole one-frame bodies of one ``object_id`` under one key (``open_whole``), with the
    cipher and associated data made once: the server keeps one per hot small object."""

    __slots__ = ("_ad", "_aead", "_frame_size")

    def __init__(self, key: bytes, object_id: bytes, frame_size: int) -> None:
        _check_key(key)
        _check_frame_size(frame_size)
        self._aead = AESGCM(key)
        self._ad = _ad_prefix(object_id, frame_size) + _FINAL_FIRST_FRAME
        self._frame_size = frame_size

    def open(self, stored: bytes | bytearray | memoryview, plain_size: int) -> bytes:
        """The plaintext of a whole body of one frame (``plain_size`` <= the frame size): what a
        ``Decryptor`` gives. FrameError as the Decryptor raises it."""
        if not 0 <= plain_size <= self._frame_size:
            raise ValueError("open_whole takes a body of at most one frame")
        view = memoryview(stored).cast("B")
        if len(view) != plain_size + FRAME_OVERHEAD:
            raise FrameError(f"frame 0 is {len(view)} bytes, expected {plain_size + FRAME_OVERHEAD}")
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], self._ad)
        except InvalidTag:
            raise FrameError("frame 0 failed authentication") from None


def open_whole(
    key: bytes, object_id: bytes, stored: bytes | bytearray | memoryview, plain_size: int, frame_size: int
) -> bytes:
    """The plaintext of a whole body of one frame (``plain_size`` <= ``frame_size``), opened at once:
    what a ``Decryptor`` gives, for the server's small GETs. FrameError as the Decryptor raises it."""
    return WholeOpener(key, object_id, frame_size).open(stored, plain_size)


# Versioned so a future format is told apart by authentication, never mistaken for this one.
_MAGIC = b"coffer-sse-frame/v1\x00"
_U64 = struct.Struct(">Q")
_FRAME_AD = struct.Struct(">QB")  # frame index, final flag
_FINAL_FIRST_FRAME = _FRAME_AD.pack(0, True)


class FrameError(ValueError):
    """Stored bytes that are not an authentic framed body for this key and object id: a failed
    tag (tampering, wrong key, wrong object id, reordered or moved frame), a missing final frame
    (truncation), extra bytes after it, or a length no body can have."""


class _Assembly:
    """Bytes of one frame gathered from several input pieces, in a buffer that is reused from frame
    to frame (only the first frame grows it), so many small pieces never cost a chain of
    reallocations and copies of a growing buffer."""

    __slots__ = ("buf", "cap", "fill")

    def __init__(self, cap: int) -> None:
        self.buf = bytearray()
        self.cap = cap  # the largest frame gathered: the buffer never grows beyond it
        self.fill = 0

    def add(self, piece: memoryview) -> None:
        end = self.fill + len(piece)
        if end > len(self.buf):  # grow geometrically: a frame gathered from tiny pieces stays linear
            self.buf.extend(bytes(max(end, min(self.cap, 2 * len(self.buf))) - len(self.buf)))
        # Through a memoryview: bytearray slice assignment from a non-bytearray would copy it first.
        with memoryview(self.buf) as target:
            target[self.fill : end] = piece
        self.fill = end

    def view(self) -> memoryview:
        """The gathered bytes; release the view before the next add()."""
        return memoryview(self.buf)[: self.fill]


def _check_frame_size(frame_size: int) -> None:
    if not 1 <= frame_size <= MAX_FRAME_SIZE:
        raise ValueError(f"frame_size must be between 1 and {MAX_FRAME_SIZE}, not {frame_size}")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"the data key must be {KEY_SIZE} bytes, not {len(key)}")


def _ad_prefix(object_id: bytes, frame_size: int) -> bytes:
    # Length-prefixed object id, so no two (object_id, frame_size) pairs give the same bytes.
    return _MAGIC + _U64.pack(len(object_id)) + object_id + _U64.pack(frame_size)


def frame_count(plain_size: int, frame_size: int = DEFAULT_FRAME_SIZE) -> int:
    """Frames in a body of `plain_size` bytes: at least one (an empty body is one empty frame)."""
    _check_frame_size(frame_size)
    if plain_size < 0:
        raise ValueError("plain_size must not be negative")
    return max(1, -(-plain_size // frame_size))


def encrypted_size(plain_size: int, frame_size: int = DEFAULT_FRAME_SIZE) -> int:
    """Stored size of a body of `plain_size` plaintext bytes."""
    return plain_size + FRAME_OVERHEAD * frame_count(plain_size, frame_size)


def plain_size(encrypted_size: int, frame_size: int = DEFAULT_FRAME_SIZE) -> int:
    """Plaintext size of a stored body of `encrypted_size` bytes; FrameError if no body has it."""
    _check_frame_size(frame_size)
    stride = frame_size + FRAME_OVERHEAD
    full, rest = divmod(encrypted_size, stride)
    if encrypted_size < FRAME_OVERHEAD:
        raise FrameError(f"{encrypted_size} bytes cannot be a framed body")
    if rest == 0:  # only full frames (full >= 1 here)
        return full * frame_size
    if full == 0 and rest == FRAME_OVERHEAD:  # the empty body
        return 0
    if rest > FRAME_OVERHEAD:  # full frames, then a shorter non-empty last one
        return full * frame_size + rest - FRAME_OVERHEAD
    raise FrameError(f"{encrypted_size} bytes cannot be a framed body with {frame_size}-byte frames")


@dataclass(frozen=True, slots=True)
class FrameSpan:
    """What to read to serve plaintext bytes [start, end] of a body.

    The stored bytes [enc_start, enc_end) are frames first_frame..last_frame; decrypting them
    gives plaintext from byte first_frame * frame_size, of which the first `skip` bytes are
    dropped and the next `take` bytes are the range."""

    first_frame: int
    last_frame: int
    enc_start: int
    enc_end: int
    skip: int
    take: int


def frame_span(
    plain_size: int, start: int = 0, end: int | None = None, frame_size: int = DEFAULT_FRAME_SIZE
) -> FrameSpan:
    """The frames covering plaintext bytes [start, end] inclusive (end None: to the end of the body).

    The range must be satisfiable (0 <= start <= end < plain_size); an empty body has only the
    whole-body span (start 0, end None), which still reads and authenticates its one frame.
    Resolving HTTP Range headers against the size (416 and so on) is the caller's job."""
    count = frame_count(plain_size, frame_size)
    last = plain_size - 1 if end is None else end
    if plain_size == 0 and start == 0 and end is None:
        return FrameSpan(0, 0, 0, FRAME_OVERHEAD, 0, 0)
    if not 0 <= start <= last < plain_size:
        raise ValueError(f"range [{start}, {end}] is not within a body of {plain_size} bytes")
    stride = frame_size + FRAME_OVERHEAD
    first_frame = start // frame_size
    last_frame = last // frame_size
    enc_end = encrypted_size(plain_size, frame_size) if last_frame == count - 1 else (last_frame + 1) * stride
    return FrameSpan(
        first_frame=first_frame,
        last_frame=last_frame,
        enc_start=first_frame * stride,
        enc_end=enc_end,
        skip=start - first_frame * frame_size,
        take=last - start + 1,
    )


class Encryptor:
    """Push-style encryption of one body: feed() plaintext in any pieces, then finish() once.

    Holds at most one frame of plaintext: a frame is only encrypted once the next byte arrives
    (or finish() is called), because its associated data says whether it is the final one."""

    def __init__(self, key: bytes, object_id: bytes, frame_size: int = DEFAULT_FRAME_SIZE) -> None:
        _check_key(key)
        _check_frame_size(frame_size)
        self._key = key
        self._aead: AESGCM | None = None  # made for the first frame of SMALL_FRAME bytes or more
        self._aes = algorithms.AES(key)
        self._prefix = _ad_prefix(object_id, frame_size)
        self._frame_size = frame_size
        self._pending = _Assembly(frame_size)  # plaintext not yet encrypted, at most frame_size bytes
        # A body's first piece, when it fits in a frame, is kept as given rather than copied into
        # ``_pending``: a small body arrives in one piece and is sealed straight from it.
        self._held: bytes | None = None
        self._index = 0
        self._finished = False

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._index >= MAX_FRAMES:
            raise ValueError("too many frames under one data key")
        nonce = entropy.token_bytes(NONCE_SIZE)
        ad = self._prefix + _FRAME_AD.pack(self._index, final)
        self._index += 1
        if len(plaintext) < SMALL_FRAME:
            return _seal_small(self._aes, nonce, plaintext, ad)
        if self._aead is None:
            self._aead = AESGCM(self._key)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def frames(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        """Encrypted frames completed by `data`, one at a time (consume them all before the next
        call). Frames wholly inside `data` are encrypted straight from it, without a copy."""
        if self._finished:
            raise ValueError("the body is already finished")
        size = self._frame_size
        if self._held is not None:  # a second piece: the first one joins the frame being gathered
            held, self._held = self._held, None
            self._pending.add(memoryview(held))
        elif self._index == 0 and not self._pending.fill and type(data) is bytes and len(data) <= size:
            self._held = data
            return
        view = memoryview(data).cast("B")
        pos = 0
        pending = self._pending
        if pending.fill:
            # Top up the pending frame; it is complete only if more bytes follow it.
            need = size - pending.fill
            if len(view) <= need:
                pending.add(view)
                return
            pending.add(view[:need])
            pos = need
            with pending.view() as frame:
                sealed = self._seal(frame, final=False)
            pending.fill = 0
            yield sealed
        # Strictly more than a frame left: that frame is not the final one.
        while len(view) - pos > size:
            yield self._seal(view[pos : pos + size], final=False)
            pos += size
        pending.add(view[pos:])

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypted frames completed by `data`, concatenated (possibly empty)."""
        return b"".join(self.frames(data))

    def finish(self) -> bytes:
        """The final frame (an empty body's one empty frame too). The encryptor is then done."""
        if self._finished:
            raise ValueError("the body is already finished")
        self._finished = True
        if self._held is not None:
            sealed = self._seal(self._held, final=True)
            self._held = None
            return sealed
        with self._pending.view() as frame:
            sealed = self._seal(frame, final=True)
        self._pending = _Assembly(0)
        return sealed


class Decryptor:
    """Decryption of frames first_frame..last_frame of one body, one stored frame at a time.

    The caller knows the body's plaintext size (from metadata), so every frame's stored length
    and which frame is final follow from it; a stored final frame claimed at another index, or a
    non-final one where the final should be, fails its tag."""

    def __init__(
        self,
        key: bytes,
        object_id: bytes,
        plain_size: int,
        frame_size: int = DEFAULT_FRAME_SIZE,
        first_frame: int = 0,
    ) -> None:
        _check_key(key)
        self._count = frame_count(plain_size, frame_size)
        if not 0 <= first_frame < self._count:
            raise ValueError(f"frame {first_frame} is not in a body of {self._count} frames")
        self._aead = AESGCM(key)
        self._prefix = _ad_prefix(object_id, frame_size)
        self._frame_size = frame_size
        self._plain_size = plain_size
        self._index = first_frame

    @property
    def index(self) -> int:
        """The index of the next frame to decrypt."""
        return self._index

    def next_frame_size(self) -> int:
        """Stored length of the next frame."""
        start = self._index * self._frame_size
        return min(self._frame_size, self._plain_size - start) + FRAME_OVERHEAD

    def open(self, frame: bytes | bytearray | memoryview) -> bytes:
        """Authenticate and decrypt the next frame (exactly next_frame_size() bytes)."""
        if self._index >= self._count:
            raise FrameError("bytes after the final frame")
        view = memoryview(frame).cast("B")
        if len(view) != self.next_frame_size():
            raise FrameError(f"frame {self._index} is {len(view)} bytes, expected {self.next_frame_size()}")
        final = self._index == self._count - 1
        ad = self._prefix + _FRAME_AD.pack(self._index, final)
        try:
            plaintext = self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], ad)
        except InvalidTag:
            raise FrameError(f"frame {self._index} failed authentication") from None
        self._index += 1
        return plaintext


async def encrypt_stream(
    chunks: AsyncIterable[bytes], key: bytes, object_id: bytes, frame_size: int = DEFAULT_FRAME_SIZE
) -> AsyncIterator[bytes]:
    """The stored form of the body `chunks` yields, one encrypted frame at a time.

    Memory: one frame of pending plaintext, the current input chunk and one output frame."""
    encryptor = Encryptor(key, object_id, frame_size)
    async for chunk in chunks:
        for frame in encryptor.frames(chunk):
            yield frame
    yield encryptor.finish()


async def decrypt_stream(
    chunks: AsyncIterable[bytes],
    key: bytes,
    object_id: bytes,
    frame_size: int,
    plain_size: int,
    start: int = 0,
    end: int | None = None,
) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end] (inclusive; end None: to the end) of a body of `plain_size`
    bytes, from `chunks`: exactly the stored bytes frame_span(plain_size, start, end, frame_size)
    names, in any pieces. FrameError on any failed frame, missing bytes or extra bytes.

    Plaintext is only yielded from frames that authenticated; a failure surfaces when the bad frame
    is reached, so a streaming caller may already have sent earlier (authentic) frames."""
    span = frame_span(plain_size, start, end, frame_size)
    decryptor = Decryptor(key, object_id, plain_size, frame_size, span.first_frame)
    skip, left = span.skip, span.take
    split = _Assembly(frame_size + FRAME_OVERHEAD)  # a frame split across chunks is gathered here
    done = False  # every frame of the span has been decrypted

    def emit(plaintext: bytes) -> bytes:
        nonlocal skip, left
        piece = plaintext[skip : skip + left] if skip or left < len(plaintext) else plaintext
        skip = 0
        left -= len(piece)
        return piece

    async for chunk in chunks:
        view = memoryview(chunk).cast("B")
        pos = 0
        while pos < len(view):
            if done:
                raise FrameError("bytes after the last frame of the range")
            need = decryptor.next_frame_size()
            if not split.fill and len(view) - pos >= need:
                # The whole frame is in this chunk: decrypt it in place.
                plaintext = decryptor.open(view[pos : pos + need])
                pos += need
            else:
                take = min(need - split.fill, len(view) - pos)
                split.add(view[pos : pos + take])
                pos += take
                if split.fill < need:
                    continue
                with split.view() as frame:
                    plaintext = decryptor.open(frame)
                split.fill = 0
            done = decryptor.index > span.last_frame
            piece = emit(plaintext)
            if piece:
                yield piece
    if not done:
        raise FrameError(f"stored body ends before frame {decryptor.index} is complete")
