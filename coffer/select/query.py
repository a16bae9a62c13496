"""A checked request made ready to run: the parsed query, the object bytes to read and the work
the worker thread does (which engine runs it: docs/select.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from coffer.select import run
from coffer.select.request import CsvInput, SelectRequest
from coffer.select.sql import ast
from coffer.select.sql.parser import parse


@dataclass
class Prepared:
    request: SelectRequest
    query: ast.Query
    spool_dir: str | None = None  # where Parquet objects are spooled for random access
    # The ScanRange as byte offsets [start, end] of this object (set by byte_span).
    scan: tuple[int, int] | None = None

    def byte_span(self, size: int) -> tuple[int, int]:
        """The bytes [start, end) of the object to read: all of it, or from just before a ScanRange's
        Start (to find the first record boundary) to the end (its last record may run past End).
        AWS's ScanRange: Start alone scans from Start on; End alone, the last End bytes."""
        if self.request.scan_range is None:
            return 0, size
        start, end = self.request.scan_range
        if start is None:
            start, end = max(size - (end or 0), 0), size - 1
        self.scan = (start, size - 1 if end is None else end)
        return min(max(start - len(self._delimiter()), 0), size), size

    def _delimiter(self) -> str:
        source = self.request.input
        return source.record_delimiter if isinstance(source, CsvInput) else "\n"

    def work(self, chunks: Iterator[bytes], emit: Callable[[bytes], None], stats: run.Stats) -> None:
        offset = 0
        if self.scan is not None:
            offset = max(self.scan[0] - len(self._delimiter()), 0)
        data = run.plain_chunks(self.request, chunks, stats, offset, self.scan)
        run.execute(self.request, run.rows_of(self.request, self.query, data, self.spool_dir), stats, emit)


def prepare(request: SelectRequest, spool_dir: str | None = None) -> Prepared:
    """Parse the expression (SelectError on any fault, before anything is sent)."""
    return Prepared(request, parse(request.expression), spool_dir)
