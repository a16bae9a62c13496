"""One query run, synchronously, in a worker thread: object chunks in, event-stream messages out.

The caller (coffer/select/stream.py) feeds the chunks and carries the messages to the client;
here the records are read, evaluated and serialized, and Records are flushed often enough that
the first ones leave before the scan ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from coffer.select import eventstream, inputs, vector
from coffer.select.evaluate import Plan, Row, Schema
from coffer.select.outputs import writer_for
from coffer.select.parquet import ParquetSource
from coffer.select.request import CsvInput, JsonInput, ParquetInput, SelectRequest
from coffer.select.sql import ast

FLUSH_BYTES = 256 * 1024
FLUSH_SECONDS = 0.2


class Stats:
    def __init__(self) -> None:
        self.counter = inputs.Counter()
        self.returned = 0

    def figures(self) -> tuple[int, int, int]:
        return self.counter.scanned, self.counter.processed, self.returned


def plain_chunks(
    request: SelectRequest, chunks: Iterable[bytes], stats: Stats, offset: int, scan: tuple[int, int] | None
) -> Iterator[bytes]:
    """Decompressed, counted bytes of the object (starting at ``offset``), trimmed to the records
    of the ScanRange ``scan`` (start and end byte, inclusive)."""
    data = inputs.counted(chunks, stats.counter, "scanned")
    data = inputs.counted(inputs.decompressed(data, request.compression), stats.counter, "processed")
    if scan is not None:
        start, end = scan
        delimiter = request.input.record_delimiter if isinstance(request.input, CsvInput) else "\n"
        data = inputs.scan_range(data, delimiter.encode(), offset, start, end)
    return data


def rows_of(
    request: SelectRequest, query: ast.Query, data: Iterable[bytes], spool_dir: str | None = None
) -> Iterator[Row]:
    """The query's result rows: pyarrow compute over CSV or Parquet batches when the query
    translates (vector.py), else the row evaluator over the records."""
    source = request.input
    batch_source: vector.CsvSource | ParquetSource | None = None
    if isinstance(source, CsvInput) and vector.csv_eligible(source):
        batch_source = vector.CsvSource(data, source)
    elif isinstance(source, ParquetInput):
        batch_source = ParquetSource(data, spool_dir)
    if batch_source is not None:
        schema = Schema(csv=True, header=batch_source.header)
        try:
            plan = vector.VectorPlan(query, schema)
        except vector.NotVectorizable:
            return Plan(query, schema).run(_batch_rows(batch_source.batches()))
        # Only the columns the query names are read (all of them for SELECT *).
        return plan.run(batch_source.batches(None if plan.star else plan.translator.columns or {0}))
    if isinstance(source, CsvInput):
        reader = inputs.CsvRecords(data, source)
        return Plan(query, Schema(csv=True, header=reader.header)).run(reader)
    assert isinstance(source, JsonInput)
    return Plan(query, Schema(csv=False)).run(inputs.json_records(data, source, query.source))


def _batch_rows(batches: Iterable[Any]) -> Iterator[list[str]]:
    for batch in batches:
        yield from (list(row) for row in zip(*[column.to_pylist() for column in batch.columns], strict=True))


def execute(request: SelectRequest, rows: Iterable[Row], stats: Stats, emit: Callable[[bytes], None]) -> None:
    """Serialize the result rows, emitting Records messages as they accumulate (often enough that
    the first leave long before a large scan ends)."""
    writer = writer_for(request.output)
    last_flush = time.monotonic()
    for n, row in enumerate(rows, 1):
        writer.write(row)
        if n % 64 == 0 and (writer.size() >= FLUSH_BYTES or time.monotonic() - last_flush >= FLUSH_SECONDS):
            _send_records(writer.take(), stats, emit)
            last_flush = time.monotonic()
    chunk = writer.take()
    if chunk:
        _send_records(chunk, stats, emit)


def _send_records(chunk: bytes, stats: Stats, emit: Callable[[bytes], None]) -> None:
    stats.returned += len(chunk)
    emit(eventstream.records(chunk))
