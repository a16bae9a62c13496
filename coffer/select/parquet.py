"""Parquet input. A Parquet file is read from its footer backwards, so it needs random access:
the object is spooled to an unnamed temporary file (in the data directory's tmp area when there
is one), which costs disk the size of the object, never memory; its row groups are then read as
record batches of only the columns the query names."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from coffer.select.errors import SelectError

BATCH_ROWS = 64 * 1024


class ParquetSource:
    def __init__(self, chunks: Iterable[bytes], spool_dir: str | None) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=spool_dir, prefix="select-")  # noqa: SIM115 - closed by batches()
        for chunk in chunks:
            self.file.write(chunk)
        self.file.seek(0)
        try:
            self.parquet = pq.ParquetFile(self.file)
        except (pa.ArrowInvalid, OSError) as exc:
            self.file.close()
            raise SelectError("ParquetParsingError", f"The object is not a valid Parquet file: {exc}") from None
        # Columns are addressed by position (_N) and by name; batches carry the positional names.
        self.header = list(self.parquet.schema_arrow.names)
        self.names = [f"_{i + 1}" for i in range(len(self.header))]

    def batches(self, columns: set[int] | None = None) -> Iterator[pa.RecordBatch]:
        try:
            wanted = None if columns is None else [self.header[i] for i in sorted(columns) if i < len(self.header)]
            for batch in self.parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted or None):
                names = [self.names[self.header.index(name)] for name in batch.schema.names]
                yield pa.RecordBatch.from_arrays(batch.columns, names=names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SelectError("ParquetParsingError", f"The Parquet object cannot be read: {exc}") from None
        finally:
            self.file.close()
