"""Small HTTP pieces: the Response type, dates and ETag comparison."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: Headers = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    # Length of a streamed body (Content-Length is always sent for S3 responses).
    length: int | None = None

    def header(self, name: str, value: str) -> None:
        self.headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))


def http_date(epoch: float) -> str:
    """'Mon, 02 Jan 2006 15:04:05 GMT' (RFC 7231), second resolution."""
    return formatdate(int(epoch), usegmt=True)


def parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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
