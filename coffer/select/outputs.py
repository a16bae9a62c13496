"""Output serialization of result rows: CSV (QuoteFields, delimiters, quote and escape) or JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from coffer.select import values
from coffer.select.evaluate import Row
from coffer.select.request import CsvOutput, JsonOutput
from coffer.select.sql.ast import MISSING


class CsvWriter:
    def __init__(self, spec: CsvOutput) -> None:
        self.buffer = io.StringIO()
        self.delimiter = spec.record_delimiter
        options: dict[str, Any] = {
            "delimiter": spec.field_delimiter,
            "lineterminator": spec.record_delimiter,
            "quotechar": spec.quote,
            "quoting": csv.QUOTE_ALL if spec.quote_fields == "ALWAYS" else csv.QUOTE_MINIMAL,
        }
        if spec.escape and spec.escape != spec.quote:
            options["escapechar"] = spec.escape
            options["doublequote"] = False
        self.writer = csv.writer(self.buffer, **options)

    def write(self, row: Row) -> None:
        fields: list[Any] = row.values
        if len(fields) == 1 and isinstance(fields[0], dict):
            fields = list(fields[0].values())
        texts = [values.text_of(value) for value in fields]
        if texts == [""]:
            self.buffer.write(self.delimiter)  # csv would write '""' for one empty field
            return
        self.writer.writerow(texts)

    def size(self) -> int:
        return self.buffer.tell()

    def take(self) -> bytes:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return values.timestamp_text(value)
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not MISSING}
    if isinstance(value, list):
        return [None if v is MISSING else _clean(v) for v in value]
    return value


class JsonWriter:
    def __init__(self, spec: JsonOutput) -> None:
        self.delimiter = spec.record_delimiter
        self.parts: list[str] = []
        self.length = 0

    def write(self, row: Row) -> None:
        if len(row.values) == 1 and isinstance(row.values[0], dict) and row.names == ["_1"]:
            record = _clean(row.values[0])
        else:
            record = {
                name: _clean(value) for name, value in zip(row.names, row.values, strict=True) if value is not MISSING
            }
        self.parts.append(json.dumps(record, separators=(",", ":"), default=_json_default, ensure_ascii=False))
        self.parts.append(self.delimiter)
        self.length += len(self.parts[-2]) + len(self.delimiter)

    def size(self) -> int:
        return self.length

    def take(self) -> bytes:
        text = "".join(self.parts)
        self.parts.clear()
        self.length = 0
        return text.encode()


def writer_for(spec: CsvOutput | JsonOutput) -> CsvWriter | JsonWriter:
    return CsvWriter(spec) if isinstance(spec, CsvOutput) else JsonWriter(spec)
