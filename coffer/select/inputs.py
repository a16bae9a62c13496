"""Streaming readers: object bytes (an iterator of chunks) -> records, never the whole object
in memory (a record may be at most MAX_RECORD bytes, a JSON document MAX_DOCUMENT)."""

from __future__ import annotations

import bz2
import codecs
import csv
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from coffer.select.errors import SelectError
from coffer.select.request import CsvInput, JsonInput
from coffer.select.sql import ast

MAX_RECORD = 1024 * 1024  # AWS: "The maximum length of a record in the input or result is 1 MB."
MAX_DOCUMENT = 64 * 1024 * 1024  # a JSON DOCUMENT value is parsed whole (its records come from inside it)
# The csv module refuses fields over 128 KiB by default; S3 Select allows a 1 MiB record.
# (Process-wide, and nothing else in Coffer reads CSV.)
csv.field_size_limit(MAX_RECORD)


class Counter:
    """Bytes scanned (as stored) and processed (after decompression), for Stats and Progress."""

    def __init__(self) -> None:
        self.scanned = 0
        self.processed = 0


def counted(chunks: Iterable[bytes], counter: Counter, attribute: str) -> Iterator[bytes]:
    for chunk in chunks:
        setattr(counter, attribute, getattr(counter, attribute) + len(chunk))
        yield chunk


DECODE_PIECE = 1024 * 1024  # decompressed bytes produced per step: a zip bomb costs no memory


def decompressed(chunks: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """The decompressed bytes, in pieces of at most DECODE_PIECE. Several compressed streams one
    after another (``gzip -c a b``, pbzip2) are decoded in turn."""
    if compression == "NONE":
        yield from chunks
        return
    source = iter(chunks)
    pending = b""  # compressed bytes not yet given to a decoder
    try:
        while True:
            decoder: Any = zlib.decompressobj(wbits=47) if compression == "GZIP" else bz2.BZ2Decompressor()
            while not decoder.eof:
                if compression == "BZIP2" and not decoder.needs_input:
                    piece = decoder.decompress(b"", DECODE_PIECE)  # more from the input it holds
                else:
                    if not pending:
                        pending = next(source, b"")
                        if not pending:
                            raise SelectError(
                                "InvalidCompressionFormat", "The compressed object ends before its stream does."
                            )
                    piece = decoder.decompress(pending, DECODE_PIECE)
                    # zlib hands back the input it did not use; bz2 keeps it (needs_input False).
                    pending = bytes(decoder.unconsumed_tail) if compression == "GZIP" else b""
                if piece:
                    yield piece
            pending = decoder.unused_data
            if not pending.strip(b"\x00"):
                pending = next(source, b"")
                if not pending.strip(b"\x00"):
                    for _ in source:  # read through trailing padding so it is counted
                        pass
                    return
    except (zlib.error, OSError, EOFError, ValueError):
        raise SelectError("InvalidCompressionFormat", "The file is not in a supported compression format.") from None


def scan_range(chunks: Iterable[bytes], delimiter: bytes, offset: int, start: int, end: int | None) -> Iterator[bytes]:
    """Bytes of the records that start within [start, end] (AWS's ScanRange: a record belongs to
    the range its first byte is in). ``chunks`` begin at ``offset`` (start minus the delimiter's
    length, or 0) so the record boundary at ``start`` can be seen."""
    position = offset
    skipping = start > 0
    pending = b""
    for chunk in chunks:
        data = pending + chunk
        base = position - len(pending)
        position += len(chunk)
        pending = b""
        if skipping:
            found = data.find(delimiter)
            if found < 0:
                pending = data[-(len(delimiter) - 1) :] if len(delimiter) > 1 else b""
                continue
            data = data[found + len(delimiter) :]
            base += found + len(delimiter)
            skipping = False
        if end is not None and base + len(data) > end:
            # The record that holds byte `end` is the last one: cut after its delimiter.
            search_from = max(end - base - len(delimiter) + 1, 0)
            found = data.find(delimiter, search_from)
            if found >= 0:
                yield data[: found + len(delimiter)]
                return
            yield data
            # keep reading to the end of that record
            end = base + len(data)
            continue
        yield data


def _text(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")  # a leading byte order mark dropped
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def split_records(texts: Iterable[str], delimiter: str) -> Iterator[str]:
    """Records separated by ``delimiter`` (a trailing delimiter ends the last one). A record's
    pieces are only joined once its end arrives, so a long record costs linear time."""
    parts: list[str] = []
    held = 0
    overlap = len(delimiter) - 1
    for text in texts:
        tail = parts[-1][-overlap:] if overlap and parts else ""
        if delimiter not in tail + text:
            parts.append(text)
            held += len(text)
            if held > MAX_RECORD:
                raise _too_long()
            continue
        pieces = ("".join(parts) + text).split(delimiter)
        last = pieces.pop()
        yield from pieces
        parts, held = ([last], len(last)) if last else ([], 0)
    if parts:
        rest = "".join(parts)
        if rest:
            yield rest


def _too_long() -> SelectError:
    return SelectError(
        "OverMaxRecordSize",
        f"The character number in one record is more than our max threshold, maxCharsPerRecord: {MAX_RECORD:,}",
    )


def _lines_keeping_ends(texts: Iterable[str]) -> Iterator[str]:
    rest = ""
    for text in texts:
        lines = (rest + text).splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        if len(rest) > MAX_RECORD:
            raise SelectError(
                "OverMaxRecordSize",
                "The character number in one record is more than our max threshold, maxCharsPerRecord: 1,048,576",
            )
        yield from lines
    if rest:
        yield rest


def csv_dialect(spec: CsvInput) -> dict[str, Any]:
    options: dict[str, Any] = {"delimiter": spec.field_delimiter, "strict": False}
    if not spec.quote:
        options["quoting"] = csv.QUOTE_NONE
        return options
    options["quotechar"] = spec.quote
    if spec.escape is not None and spec.escape != spec.quote:
        options["escapechar"] = spec.escape
    return options


class CsvRecords:
    """Records (lists of field strings) of a CSV stream, and its header when FileHeaderInfo=USE."""

    def __init__(self, chunks: Iterable[bytes], spec: CsvInput) -> None:
        self.spec = spec
        texts = _text(chunks)
        delimiter = spec.record_delimiter
        if spec.quoted_record_delimiter and delimiter in ("\n", "\r\n"):
            lines: Iterator[str] = _lines_keeping_ends(texts)
        else:
            lines = split_records(texts, delimiter)
            if delimiter == "\n":
                lines = (line[:-1] if line.endswith("\r") else line for line in lines)
        if spec.comments:
            comment = spec.comments
            lines = (line for line in lines if not line.startswith(comment))
        try:
            self.reader = csv.reader(lines, **csv_dialect(spec))
        except (TypeError, csv.Error) as exc:
            raise SelectError("InvalidRequestParameter", f"The CSV input settings are invalid: {exc}") from None
        self.header: list[str] | None = None
        if spec.header in ("USE", "IGNORE"):
            first = self._next()
            if spec.header == "USE" and first is not None:
                self.header = [name.strip() for name in first]

    def _next(self) -> list[str] | None:
        try:
            return next(self.reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise SelectError("CSVParsingError", f"The CSV input cannot be parsed: {exc}") from None

    def __iter__(self) -> Iterator[list[str]]:
        reader = self.reader
        while True:
            try:
                for record in reader:
                    if record:
                        yield record
                return
            except csv.Error as exc:
                raise SelectError("CSVParsingError", f"The CSV input cannot be parsed: {exc}") from None


_SPACE = re.compile(r"\s*")


def _json_documents(texts: Iterable[str]) -> Iterator[Any]:
    """Top-level JSON values one after another (whitespace between them). A value is decoded in
    place (no copy of the rest per value); an incomplete one waits for more text, retried each
    time the text held has doubled, so one large value costs linear time too."""
    decoder = json.JSONDecoder()
    buffer, pos = "", 0
    tried_at = 0
    exhausted = False
    source = iter(texts)
    while True:
        pos = _SPACE.match(buffer, pos).end()  # type: ignore[union-attr]
        if pos < len(buffer) and (exhausted or len(buffer) - pos >= 2 * tried_at):
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except RecursionError:
                raise SelectError("JSONParsingError", "The JSON input nests too deeply.") from None
            except json.JSONDecodeError as exc:
                if exhausted or (exc.pos < len(buffer) - 1 and not _incomplete(exc)):
                    raise SelectError("JSONParsingError", f"The JSON input cannot be parsed: {exc.msg}.") from None
                tried_at = len(buffer) - pos
            else:
                # A number (or true/false/null) that ends where the text does may go on in the next piece.
                if exhausted or end < len(buffer) or buffer[end - 1] in '}]"':
                    pos, tried_at = end, 0
                    yield value
                    continue
                tried_at = len(buffer) - pos
        if pos >= len(buffer) and exhausted:
            return
        if len(buffer) - pos > MAX_DOCUMENT:
            raise SelectError("OverMaxRecordSize", "A JSON document is larger than the maximum record size.")
        try:
            piece = next(source)
        except StopIteration:
            exhausted = True
            continue
        buffer, pos = buffer[pos:] + piece, 0


def _incomplete(exc: json.JSONDecodeError) -> bool:
    # raw_decode reports the end of a truncated document as one of these.
    return exc.msg.startswith(("Unterminated", "Expecting", "Invalid control", "Invalid \\escape"))


def _json_lines(texts: Iterable[str]) -> Iterator[Any]:
    for line in split_records(texts, "\n"):
        if line.strip():
            try:
                yield json.loads(line)
            except RecursionError:
                raise SelectError("JSONParsingError", "The JSON input nests too deeply.") from None
            except json.JSONDecodeError as exc:
                raise SelectError("JSONParsingError", f"The JSON input cannot be parsed: {exc.msg}.") from None


def json_records(chunks: Iterable[bytes], spec: JsonInput, source: tuple[ast.Name | ast.Star, ...]) -> Iterator[Any]:
    """Records of a JSON object: each top-level value, walked along the FROM path
    (``S3Object[*].a.b``: field a, then b; arrays along the way yield each element)."""
    texts = _text(chunks)
    documents = _json_lines(texts) if spec.type == "LINES" else _json_documents(texts)
    steps = list(source)
    if steps and isinstance(steps[0], ast.Star):
        steps = steps[1:]
    for document in documents:
        yield from _walk(document, steps)


def _walk(value: Any, steps: list[ast.Name | ast.Star]) -> Iterator[Any]:
    if not steps:
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    step, rest = steps[0], steps[1:]
    if isinstance(step, ast.Star):
        if isinstance(value, list):
            for item in value:
                yield from _walk(item, rest)
        return
    if isinstance(step.name, int):
        if isinstance(value, list) and step.name < len(value):
            yield from _walk(value[step.name], rest)
        return
    if isinstance(value, dict):
        if step.name in value:
            yield from _walk(value[step.name], rest)
        elif not step.quoted:
            for key, item in value.items():
                if key.lower() == step.name.lower():
                    yield from _walk(item, rest)
                    return
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, steps)
