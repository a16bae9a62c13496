"""Compression of generated XML/JSON responses (listings, errors, configuration).

Only bodies Coffer builds in memory are candidates: object bodies are streams
and are never touched, whatever their content type. gzip comes from the
standard library; ``br`` and ``zstd`` are offered when the optional packages
(the ``compression`` extra) are installed. The client's preference
(Accept-Encoding q-values) decides; ties go to the faster codec.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
from collections.abc import Callable
from types import ModuleType

from coffer.server.http import Response


def _optional(name: str) -> ModuleType | None:
    """A module of the optional `compression` extra, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - depends on the environment
        return None


brotli = _optional("brotli")
zstandard = _optional("zstandard")

COMPRESSIBLE_TYPES = ("application/xml", "text/xml", "application/json", "text/plain")
# Bodies above this size are compressed on a thread so the event loop keeps serving.
THREAD_THRESHOLD = 64 * 1024


def _gzip(data: bytes) -> bytes:
    # Level 5: most of level 9's ratio on XML listings at a third of its cost.
    return gzip.compress(data, compresslevel=5, mtime=0)


CODECS: dict[str, Callable[[bytes], bytes]] = {"gzip": _gzip}
if zstandard is not None:
    _zstd = zstandard.ZstdCompressor(level=3)
    CODECS["zstd"] = _zstd.compress
if brotli is not None:
    _brotli = brotli
    CODECS["br"] = lambda data: _brotli.compress(data, quality=4)
# Server preference when the client weighs several codecs equally.
PREFERENCE = ("zstd", "br", "gzip")


def choose(accept_encoding: str | None) -> str | None:
    """The codec to use for this Accept-Encoding value, or None for identity."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip()
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        weights[name] = q
    star = weights.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for codec in PREFERENCE:
        if codec not in CODECS:
            continue
        q = weights.get(codec, star)
        if q > best_q:
            best, best_q = codec, q
    return best


def _compressible(response: Response, min_size: int) -> bool:
    body = response.body
    if response.length is not None:
        return False  # object data (streamed, or a small object's bytes): never touched
    if not isinstance(body, bytes) or len(body) < min_size or response.status in (204, 304):
        return False
    content_type = b""
    for name, value in response.headers:
        if name == b"content-encoding":
            return False  # already encoded (never re-encode)
        if name == b"content-type":
            content_type = value
    ct = content_type.split(b";", 1)[0].strip().decode("latin-1").lower()
    return ct in COMPRESSIBLE_TYPES


async def compress(response: Response, accept_encoding: str | None, min_size: int) -> Response:
    """Compress ``response`` in place when worthwhile; always mark it as varying by Accept-Encoding."""
    if not _compressible(response, min_size):
        return response
    response.header("vary", "Accept-Encoding")
    codec = choose(accept_encoding)
    if codec is None:
        return response
    body = response.body
    assert isinstance(body, bytes)
    encode = CODECS[codec]
    if len(body) > THREAD_THRESHOLD:
        encoded = await asyncio.to_thread(encode, body)
    else:
        encoded = encode(body)
    if len(encoded) >= len(body):
        return response
    response.body = encoded
    response.headers = [(n, v) for n, v in response.headers if n != b"content-length"]
    response.header("content-encoding", codec)
    return response
