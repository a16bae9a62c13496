"""Streaming ``multipart/form-data`` for browser POST uploads.

The form fields come first and are small (read into memory, bounded); the
``file`` field's content is then streamed piece by piece to whoever stores it,
never held whole. Fields after the file are ignored, as S3 ignores them.
Parsing is python-multipart's push parser (the one Starlette uses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from coffer.server.errors import S3Error

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELDS_BYTES = 20 * 1024  # S3's limit for the fields before the file
MAX_TRAILING_BYTES = 64 * 1024  # what may follow the file part (closing boundary, ignored fields)


def _malformed(detail: str = "") -> S3Error:
    message = "The body of your POST request is not well-formed multipart/form-data."
    return S3Error("MalformedPOSTRequest", f"{message} {detail}".strip())


def boundary_of(content_type: str | None) -> bytes | None:
    if not content_type:
        return None
    kind, params = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    return boundary if boundary and len(boundary) <= 70 else None


@dataclass
class FileInfo:
    filename: str
    content_type: str


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


class FormReader:
    """Read the fields of a form, then stream its file."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body
        self._events: list[tuple[str, bytes]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        callbacks: MultipartCallbacks = {
            "on_part_begin": lambda: self._events.append(("begin", b"")),
            "on_part_data": lambda data, start, end: self._events.append(("data", bytes(data[start:end]))),
            "on_part_end": lambda: self._events.append(("end", b"")),
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self._events.append(("headers", b"")),
            "on_end": lambda: self._events.append(("finish", b"")),
        }
        self._parser = MultipartParser(boundary, callbacks)
        self._pending: list[tuple[str, bytes]] = []
        self._finished = False
        self._body_done = False

    def _header_end(self) -> None:
        self._events.append(("header", bytes(self._header_name) + b"\x00" + bytes(self._header_value)))
        self._header_name.clear()
        self._header_value.clear()

    async def _next_event(self) -> tuple[str, bytes] | None:
        while not self._pending:
            if self._body_done:
                return None
            chunk = await anext(self._body, None)
            try:
                if chunk is None:
                    self._body_done = True
                    self._parser.finalize()
                else:
                    self._parser.write(chunk)
            except MultipartParseError as exc:
                raise _malformed(str(exc)[:200]) from None
            self._pending, self._events = self._events, []
        return self._pending.pop(0)

    async def read_fields(self) -> tuple[dict[str, str], FileInfo | None]:
        """Fields (names lower-cased) up to the file part; FileInfo if a file part follows."""
        fields: dict[str, str] = {}
        total = 0
        part: _Part | None = None
        while True:
            event = await self._next_event()
            if event is None:
                raise _malformed("The body ended early.")
            kind, payload = event
            if kind == "begin":
                part = _Part()
            elif kind == "header" and part is not None:
                header, _, header_value = payload.partition(b"\x00")
                part.headers[header.decode("latin-1").strip().lower()] = header_value.decode("latin-1").strip()
            elif kind == "headers" and part is not None:
                disposition, params = parse_options_header(part.headers.get("content-disposition", ""))
                raw_name = params.get(b"name")
                if disposition.lower() != b"form-data" or raw_name is None:
                    raise _malformed("A part has no form-data name.")
                field_name = raw_name.decode("utf-8", "replace").lower()
                if field_name == "file":
                    filename = params.get(b"filename", b"").decode("utf-8", "replace")
                    return fields, FileInfo(filename, part.headers.get("content-type", ""))
                part.headers["\x00name"] = field_name
            elif kind == "data" and part is not None:
                total += len(payload)
                if total > MAX_FIELDS_BYTES:
                    raise S3Error("MaxPostPreDataLengthExceededError", MaxPostPreDataLength=str(MAX_FIELDS_BYTES))
                part.data += payload
            elif kind == "end" and part is not None:
                name = part.headers.get("\x00name", "")
                try:
                    value = part.data.decode("utf-8")
                except UnicodeDecodeError:
                    raise S3Error("InvalidArgument", f"The form field {name} is not valid UTF-8.") from None
                if name in fields:
                    raise S3Error("InvalidArgument", f"The form field {name} is specified more than once.")
                fields[name] = value
                part = None
            elif kind == "finish":
                return fields, None

    async def file_data(self) -> AsyncIterator[bytes]:
        """The file's bytes; then the rest of the body is read (bounded) and checked to be well-formed."""
        while True:
            event = await self._next_event()
            if event is None:
                raise _malformed("The body ended inside the file.")
            kind, payload = event
            if kind == "data":
                if payload:
                    yield payload
            elif kind == "end":
                break
        trailing = 0
        while True:
            event = await self._next_event()
            if event is None:
                raise _malformed("The closing boundary is missing.")
            kind, payload = event
            if kind == "finish":
                return
            trailing += len(payload)
            if trailing > MAX_TRAILING_BYTES:
                raise _malformed("Too much data after the file.")
