"""Small HTTP pieces: the Response type, dates and ETag comparison."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from coffer.server.errors import S3Error

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: Headers = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    # Content-Length of object data: a streamed body, or a small object's bytes.
    # Set only for object bodies, which compression never touches.
    length: int | None = None

    def header(self, name: str, value: str) -> None:
        self.headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(epoch: float) -> str:
    """'Mon, 02 Jan 2006 15:04:05 GMT' (RFC 7231), second resolution."""
    return _http_date(int(epoch))


@lru_cache(maxsize=4096)  # every GET/HEAD formats one; objects share seconds
def _http_date(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_timestamp(raw: str, name: str) -> float:
    """The one parse of a timestamp a request carries as an argument (header or XML field):
    an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``, what SDKs send) or ISO 8601
    (``2015-10-21T07:28:00Z``, S3's XML timestamps; no zone means UTC), else 400
    InvalidArgument naming the argument."""
    text = raw.strip()
    when = parse_http_date(text) if text else None
    if when is None and text[:4].isdigit():
        try:
            parsed = datetime.fromisoformat(text)
            when = (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError, OSError):
            when = None
    if when is None:
        raise S3Error("InvalidArgument", f"Invalid value for {name}", ArgumentName=name, ArgumentValue=raw[:64])
    return when


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names this ETag ('*' matches any)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() then refuses."""
    return text.isascii() and text.isdigit()


INT32_MAX = 2**31 - 1  # S3's bound for counts and markers (max-keys, part-number-marker, ...)
INT64_MAX = 2**63 - 1  # sizes and offsets (what SQLite stores)


def parse_int(
    raw: str,
    name: str,
    low: int = 0,
    high: int = INT64_MAX,
    *,
    message: str | None = None,
    code: str = "InvalidArgument",
) -> int:
    """The one parse of an integer a request carries (query parameter, header, XML field):
    ASCII digits within ``low..high``, else 400 ``code`` naming the argument. Keeps values
    like 2**64 away from SQLite (OverflowError) and '²' away from int() (ValueError)."""
    text = raw.strip()
    if text.isascii() and text.isdigit() and len(text) <= 19:
        value = int(text)
        if low <= value <= high:
            return value
    raise S3Error(
        code,
        message or f"Argument {name} must be an integer between {low} and {high}",
        ArgumentName=name,
        ArgumentValue=raw[:64],
    )
