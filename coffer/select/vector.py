"""The vectorized engine: queries over CSV (and Parquet) record batches with pyarrow compute.

A query qualifies when every expression it holds translates here (columns, literals, CAST to
INT/FLOAT/DECIMAL/STRING, arithmetic, comparisons, AND/OR/NOT, LIKE, BETWEEN, IN of literals,
IS [NOT] NULL, CASE with literal results of one type, LOWER/UPPER/CHAR_LENGTH/SUBSTRING/TRIM,
COALESCE and the five aggregates);
anything else runs on the row evaluator (evaluate.py), which has the same semantics. There is
no SQL text anywhere on this path: the AST becomes calls of pyarrow compute kernels, which
read nothing but the batches given to them. Why pyarrow and not DuckDB: docs/select.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from coffer.select import aliases, like, values
from coffer.select.errors import SelectError
from coffer.select.evaluate import Accumulator, Compiler, Row, Schema, output_name
from coffer.select.inputs import MAX_RECORD, csv_dialect
from coffer.select.request import CsvInput
from coffer.select.sql import ast

Vec = Callable[[pa.RecordBatch], Any]  # an Array, or a Scalar for constants
BLOCK_SIZE = 1024 * 1024


class NotVectorizable(Exception):
    """The query needs the row evaluator."""


class ChunkFile(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what pyarrow's CSV reader reads)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.rest = b""
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Fill the whole buffer (pyarrow asks for a block at a time; short reads make tiny batches).
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self.offset >= len(self.rest):
                try:
                    self.rest, self.offset = next(self.chunks), 0
                except StopIteration:
                    break
            size = min(len(view) - filled, len(self.rest) - self.offset)
            view[filled : filled + size] = self.rest[self.offset : self.offset + size]
            filled += size
            self.offset += size
        return filled

    def peek_line(self, limit: int) -> bytes:
        """The bytes up to and including the first newline (kept for the reader to read again;
        at most ``limit`` bytes are gathered looking for it)."""
        parts, held = [self.rest[self.offset :]], len(self.rest) - self.offset
        while b"\n" not in parts[-1] and held <= limit:
            try:
                parts.append(next(self.chunks))
            except StopIteration:
                break
            held += len(parts[-1])
        self.rest, self.offset = b"".join(parts), 0
        head = self.rest
        end = head.find(b"\n")
        return head if end < 0 else head[: end + 1]


def csv_eligible(spec: CsvInput) -> bool:
    """pyarrow's reader knows \\n and \\r\\n records, one-character quote and escape, no comments."""
    return spec.record_delimiter in ("\n", "\r\n") and spec.comments is None and len(spec.field_delimiter) == 1


class CsvSource:
    """A CSV object about to be read: its first record is peeked to learn the number of columns
    (and the header's names); ``batches`` then reads record batches whose columns are named
    _1.._n and are all text, as S3 Select's CSV fields are (pyarrow would infer types)."""

    def __init__(self, chunks: Iterable[bytes], spec: CsvInput) -> None:
        self.spec = spec
        self.file = ChunkFile(chunks)
        line = self.file.peek_line(MAX_RECORD)
        if len(line) > MAX_RECORD:
            raise _csv_error(ValueError("straddling"))
        first = line.decode("utf-8", "replace").rstrip("\r\n").removeprefix("\ufeff")  # a byte order mark
        self.empty = not first and not self.file.rest
        fields = _fields(first, spec) if first else []
        self.header = [name.strip() for name in fields] if spec.header == "USE" else None
        self.names = [f"_{i + 1}" for i in range(max(len(fields), 1))]
        self.ragged: list[str] = []

    def batches(self, columns: set[int] | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches holding only ``columns`` (positions; None: all of them)."""
        if self.empty:
            return
        spec = self.spec
        parse = pcsv.ParseOptions(
            delimiter=spec.field_delimiter,
            quote_char=spec.quote or False,
            double_quote=spec.escape is None or spec.escape == spec.quote,
            escape_char=spec.escape if spec.escape is not None and spec.escape != spec.quote else False,
            newlines_in_values=spec.quoted_record_delimiter,
            invalid_row_handler=self._ragged,
        )
        read = pcsv.ReadOptions(
            block_size=BLOCK_SIZE, column_names=self.names, skip_rows=1 if spec.header in ("USE", "IGNORE") else 0
        )
        wanted = self.names if columns is None else [self.names[i] for i in sorted(columns) if i < len(self.names)]
        convert = pcsv.ConvertOptions(
            column_types={name: pa.string() for name in self.names},
            include_columns=wanted,
            strings_can_be_null=False,
            auto_dict_encode=False,
        )
        try:
            reader = pcsv.open_csv(self.file, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise _csv_error(exc) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            except pa.ArrowInvalid as exc:
                raise _csv_error(exc) from None
            if batch is not None:
                yield batch
            if self.ragged:
                yield self._ragged_batch(wanted)
            if batch is None:
                return

    def _ragged(self, row: Any) -> str:
        """pyarrow met a record with more or fewer fields than the first: it is kept aside and
        read here (missing fields NULL, extra ones dropped), after the batch it was found in."""
        if len(self.ragged) >= 1_000_000:
            return "error"
        self.ragged.append(row.text)
        return "skip"

    def _ragged_batch(self, wanted: list[str]) -> pa.RecordBatch:
        texts, self.ragged = self.ragged, []
        width = len(self.names)
        rows: list[list[str | None]] = [[*_fields(text, self.spec), *[None] * width][:width] for text in texts]
        positions = [self.names.index(name) for name in wanted]
        arrays = [pa.array([row[i] for row in rows], pa.string()) for i in positions]
        return pa.RecordBatch.from_arrays(arrays, names=wanted)


def _fields(text: str, spec: CsvInput) -> list[str]:
    try:
        return next(csv.reader([text], **csv_dialect(spec)), [])
    except csv.Error as exc:
        raise SelectError("CSVParsingError", f"The CSV input cannot be parsed: {exc}") from None


def _csv_error(exc: Exception) -> SelectError:
    text = str(exc)
    if "straddling" in text or "block size" in text:
        return SelectError(
            "OverMaxRecordSize",
            f"The character number in one record is more than our max threshold, maxCharsPerRecord: {MAX_RECORD:,}",
        )
    return SelectError("CSVParsingError", f"The CSV input cannot be parsed: {text.splitlines()[0]}")


# -- translation ------------------------------------------------------------------------------

_NUMERIC = (pa.int64(), pa.float64())


def _is_string(value: Any) -> bool:
    return getattr(value, "type", None) in (pa.string(), pa.large_string())


def _numeric(value: Any) -> Any:
    """A value used as a number: text is read as integers when all of it is, else as floats."""
    if not _is_string(value):
        if isinstance(value, pa.Scalar) and value.type == pa.null():
            return pa.scalar(None, pa.float64())
        if pa.types.is_boolean(value.type):
            raise SelectError("EvaluatorInvalidArguments", "A boolean cannot be used as a number.")
        return value
    try:
        return pc.cast(pc.utf8_trim_whitespace(value), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pc.cast(pc.utf8_trim_whitespace(value), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SelectError("EvaluatorInvalidArguments", "A value used as a number is not one.") from None


def _blank_as_null(text: Any) -> Any:
    """An empty CSV field converts to NULL, not a failure (the row evaluator's rule too)."""
    if isinstance(text, pa.Scalar):
        return text if text.as_py() else pa.scalar(None, pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _cast(value: Any, kind: str) -> Any:
    if kind in ("INT", "FLOAT", "DECIMAL") and _is_string(value):
        # Clean text converts in one kernel call; blanks, padding and "12.5" as INT take the long way.
        try:
            return pc.cast(value, pa.int64() if kind == "INT" else pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            value = _blank_as_null(pc.utf8_trim_whitespace(value))
    try:
        if kind == "INT":
            if _is_string(value):
                try:
                    return pc.cast(value, pa.int64())
                except pa.ArrowInvalid:
                    return pc.cast(pc.trunc(pc.cast(value, pa.float64())), pa.int64())
            if pa.types.is_floating(value.type):
                return pc.cast(pc.trunc(value), pa.int64())
            return pc.cast(value, pa.int64())
        if kind in ("FLOAT", "DECIMAL"):
            return pc.cast(value, pa.float64())
        return pc.cast(value, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SelectError("CastFailed", f"Attempt to convert from one data type to another failed: {exc}.") from None


def _align(left: Any, right: Any) -> tuple[Any, Any]:
    """Operands of a comparison: text against a number compares as numbers."""
    left_text, right_text = _is_string(left), _is_string(right)
    if left_text and not right_text and _is_number(right):
        return _numeric(left), right
    if right_text and not left_text and _is_number(left):
        return left, _numeric(right)
    return left, right


def _is_number(value: Any) -> bool:
    kind = getattr(value, "type", None)
    return kind is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind))


_COMPARE = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    ">": pc.greater,
    "<=": pc.less_equal,
    ">=": pc.greater_equal,
}
_ARITH = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}


class Translator:
    def __init__(self, schema: Schema, alias: str | None) -> None:
        self.schema = schema
        self.alias = alias
        self.columns: set[int] = set()

    def column(self, expr: ast.Path) -> Vec:
        steps = expr.steps
        first = steps[0].name
        if self.alias is not None and isinstance(first, str) and first.lower() == self.alias.lower():
            steps = steps[1:]
        if len(steps) != 1:
            raise NotVectorizable
        index = self.schema.column_index(steps[0])
        if index is None:
            raise NotVectorizable
        self.columns.add(index)

        name = f"_{index + 1}"

        def get(batch: pa.RecordBatch) -> Any:
            column = batch.schema.get_field_index(name)
            if column < 0:  # no such column: MISSING, as NULL here
                return pa.nulls(batch.num_rows, pa.string())
            return batch.column(column)

        return get

    def vec(self, expr: ast.Expr) -> Vec:
        if isinstance(expr, ast.Literal):
            constant = expr.value
            if constant is ast.MISSING or isinstance(constant, list | dict) or hasattr(constant, "isoformat"):
                raise NotVectorizable
            scalar = pa.scalar(constant)
            return lambda batch: scalar
        if isinstance(expr, ast.Path):
            return self.column(expr)
        if isinstance(expr, ast.Cast):
            if expr.type not in ("INT", "FLOAT", "DECIMAL", "STRING"):
                raise NotVectorizable
            inner, kind = self.vec(expr.value), expr.type
            return lambda batch: _cast(inner(batch), kind)
        if isinstance(expr, ast.Unary):
            operand = self.vec(expr.operand)
            if expr.op == "NOT":
                return lambda batch: pc.invert(operand(batch))
            return lambda batch: pc.negate_checked(_numeric(operand(batch)))
        if isinstance(expr, ast.Binary):
            return self.binary(expr)
        if isinstance(expr, ast.Between):
            value, low, high = self.vec(expr.value), self.vec(expr.low), self.vec(expr.high)

            def between(batch: pa.RecordBatch) -> Any:
                v = value(batch)
                inside = pc.and_kleene(pc.greater_equal(*_align(v, low(batch))), pc.less_equal(*_align(v, high(batch))))
                return pc.invert(inside) if expr.negated else inside

            return between
        if isinstance(expr, ast.In):
            return self.within(expr)
        if isinstance(expr, ast.Is):
            if expr.what != "NULL":
                raise NotVectorizable
            value = self.vec(expr.value)
            return lambda batch: pc.is_valid(value(batch)) if expr.negated else pc.is_null(value(batch))
        if isinstance(expr, ast.Like):
            return self.like(expr)
        if isinstance(expr, ast.Case):
            return self.case(expr)
        if isinstance(expr, ast.Call):
            return self.call(expr)
        raise NotVectorizable

    def binary(self, expr: ast.Binary) -> Vec:
        left, right, op = self.vec(expr.left), self.vec(expr.right), expr.op
        if op == "AND":
            return lambda batch: pc.and_kleene(left(batch), right(batch))
        if op == "OR":
            return lambda batch: pc.or_kleene(left(batch), right(batch))
        if op in _COMPARE:
            compare = _COMPARE[op]

            def comparison(batch: pa.RecordBatch) -> Any:
                try:
                    return compare(*_align(left(batch), right(batch)))
                except pa.ArrowNotImplementedError:
                    raise SelectError("EvaluatorInvalidArguments", f"Cannot compare these values with {op}.") from None

            return comparison
        if op in _ARITH:
            kernel = _ARITH[op]

            def arithmetic(batch: pa.RecordBatch) -> Any:
                try:
                    return kernel(_numeric(left(batch)), _numeric(right(batch)))
                except pa.ArrowInvalid as exc:
                    raise SelectError("EvaluatorInvalidArguments", f"Arithmetic failed: {exc}.") from None

            return arithmetic
        if op == "/":

            def divide(batch: pa.RecordBatch) -> Any:
                try:
                    return pc.divide_checked(_numeric(left(batch)), _numeric(right(batch)))
                except pa.ArrowInvalid as exc:
                    if "zero" in str(exc):
                        raise SelectError("EvaluatorDivisionByZero", "Division by zero.") from None
                    raise SelectError("EvaluatorInvalidArguments", f"Arithmetic failed: {exc}.") from None

            return divide
        if op == "||":
            return lambda batch: pc.binary_join_element_wise(
                _cast(left(batch), "STRING"), _cast(right(batch), "STRING"), ""
            )
        raise NotVectorizable

    def case(self, expr: ast.Case) -> Vec:
        """CASE whose results are literals of one type (the common labelling use); others run on
        the row evaluator, whose results may mix types."""
        results = [result for _, result in expr.whens] + ([expr.otherwise] if expr.otherwise is not None else [])
        constants = [r.value for r in results if isinstance(r, ast.Literal)]
        if len(constants) != len(results) or len({type(c) for c in constants if c is not None}) != 1:
            raise NotVectorizable
        kind = pa.scalar(next(c for c in constants if c is not None)).type
        if kind not in (pa.int64(), pa.float64(), pa.string(), pa.bool_()):
            raise NotVectorizable
        values_ = [pa.scalar(c, kind) for c in constants]
        if expr.otherwise is None:
            values_.append(pa.scalar(None, kind))
        operand = self.vec(expr.operand) if expr.operand is not None else None
        conditions = [self.vec(cond) for cond, _ in expr.whens]

        def choose(batch: pa.RecordBatch) -> Any:
            tests = []
            for cond in conditions:
                test = pc.equal(*_align(operand(batch), cond(batch))) if operand is not None else cond(batch)
                if isinstance(test, pa.Scalar):
                    test = pa.array([test.as_py()] * batch.num_rows, pa.bool_())
                if not pa.types.is_boolean(test.type):
                    raise SelectError("EvaluatorInvalidArguments", "A CASE condition must be a boolean.")
                tests.append(pc.fill_null(test, False))
            names = [f"c{i}" for i in range(len(tests))]
            return pc.case_when(pa.StructArray.from_arrays(tests, names=names), *values_)

        return choose

    def within(self, expr: ast.In) -> Vec:
        if not all(isinstance(item, ast.Literal) for item in expr.items):
            raise NotVectorizable
        literals = [item.value for item in expr.items if isinstance(item, ast.Literal)]
        if any(
            v is None or v is ast.MISSING or isinstance(v, bool) or not isinstance(v, int | float | str)
            for v in literals
        ):
            raise NotVectorizable
        numeric = all(isinstance(v, int | float) for v in literals)
        if not numeric and not all(isinstance(v, str) for v in literals):
            raise NotVectorizable
        value = self.vec(expr.value)
        members = pa.array([float(v) for v in literals if isinstance(v, int | float)] if numeric else literals)

        def contains(batch: pa.RecordBatch) -> Any:
            v = value(batch)
            if numeric:
                v = pc.cast(_numeric(v), pa.float64())
            elif not _is_string(v):
                v = _cast(v, "STRING")
            found = pc.is_in(v, value_set=members)
            found = pc.if_else(pc.is_null(v), pa.scalar(None, pa.bool_()), found)
            return pc.invert(found) if expr.negated else found

        return contains

    def like(self, expr: ast.Like) -> Vec:
        if not isinstance(expr.pattern, ast.Literal) or not isinstance(expr.pattern.value, str):
            raise NotVectorizable
        escape = None
        if expr.escape is not None:
            if not isinstance(expr.escape, ast.Literal) or not isinstance(expr.escape.value, str):
                raise NotVectorizable
            escape = expr.escape.value
            if len(escape) != 1:
                raise SelectError("EvaluatorInvalidArguments", "The ESCAPE character must be a single character.")
        regex = like.re2(expr.pattern.value, escape)
        value = self.vec(expr.value)

        def matches(batch: pa.RecordBatch) -> Any:
            v = value(batch)
            if not _is_string(v):
                raise SelectError("EvaluatorInvalidArguments", "LIKE needs a string value.")
            found = pc.match_substring_regex(v, regex)
            return pc.invert(found) if expr.negated else found

        return matches

    def call(self, expr: ast.Call) -> Vec:
        name = expr.name
        if name in ast.AGGREGATES:
            raise NotVectorizable  # aggregates are collected by VectorPlan, never nested in scalars
        args = [self.vec(arg) for arg in expr.args]
        if name in ("LOWER", "UPPER", "CHAR_LENGTH"):
            kernel = {"LOWER": pc.utf8_lower, "UPPER": pc.utf8_upper, "CHAR_LENGTH": pc.utf8_length}[name]
            return lambda batch: kernel(_text(args[0](batch), name))
        if name == "SUBSTRING":
            bounds = [b.value for b in expr.args[1:] if isinstance(b, ast.Literal) and type(b.value) is int]
            if len(bounds) != len(expr.args) - 1:
                raise NotVectorizable
            start = int(bounds[0])
            length = int(bounds[1]) if len(bounds) > 1 else None
            if length is not None and length < 0:
                raise SelectError("EvaluatorInvalidArguments", "SUBSTRING's length cannot be negative.")
            first = max(start, 1) - 1
            stop = None if length is None else max(start + length - 1, 0)
            if stop is not None and stop < first:
                stop = first
            return lambda batch: pc.utf8_slice_codeunits(_text(args[0](batch), name), first, stop)
        if name == "TRIM":
            side = expr.args[0].value if isinstance(expr.args[0], ast.Literal) else "BOTH"
            chars = " "
            if len(expr.args) > 2:
                if not isinstance(expr.args[2], ast.Literal) or not isinstance(expr.args[2].value, str):
                    raise NotVectorizable
                chars = expr.args[2].value
            trim = {"LEADING": pc.utf8_ltrim, "TRAILING": pc.utf8_rtrim}.get(str(side), pc.utf8_trim)
            return lambda batch: trim(_text(args[1](batch), name), characters=chars)
        if name == "COALESCE":

            def coalesce(batch: pa.RecordBatch) -> Any:
                try:
                    return pc.coalesce(*[arg(batch) for arg in args])
                except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                    raise SelectError("EvaluatorInvalidArguments", "COALESCE's arguments differ in type.") from None

            return coalesce
        raise NotVectorizable


def _text(value: Any, name: str) -> Any:
    if _is_string(value):
        return value
    if _is_number(value):
        return pc.cast(value, pa.string())
    raise SelectError("EvaluatorInvalidArguments", f"Function {name} expects a string argument.")


# -- running ----------------------------------------------------------------------------------


class _Partial(Accumulator):
    """One aggregate's running value over the batches."""

    def __init__(self, call: ast.Call, arg: Vec | None) -> None:
        super().__init__(call.name)
        self.arg = arg

    def add(self, batch: pa.RecordBatch) -> None:
        if self.arg is None:
            self.count += batch.num_rows
            return
        value = self.arg(batch)
        if isinstance(value, pa.Scalar):
            value = pa.array([value.as_py()] * batch.num_rows, type=value.type)
        if self.name == "COUNT":
            self.count += len(value) - value.null_count
            return
        if _is_string(value):
            try:
                value = _numeric(value)
            except SelectError:
                if self.name in ("SUM", "AVG"):
                    raise
        if self.name in ("SUM", "AVG"):
            if not _is_number(value):
                raise SelectError("EvaluatorInvalidArguments", f"{self.name} needs numbers.")
            total = pc.sum(value).as_py()
            if total is not None:
                self.total += total
                self.count += len(value) - value.null_count
            return
        extreme = (pc.min if self.name == "MIN" else pc.max)(value).as_py()
        if extreme is None:
            return
        if self.best is None:
            self.best = extreme
        else:
            pair = values.comparable(extreme, self.best)
            if pair is not None and ((pair[0] < pair[1]) if self.name == "MIN" else (pair[0] > pair[1])):
                self.best = extreme


class VectorPlan:
    """A query translated to pyarrow compute (NotVectorizable when it cannot be)."""

    def __init__(self, query: ast.Query, schema: Schema) -> None:
        query = aliases.inline(query, schema.is_column)
        self.query = query
        self.schema = schema
        translator = self.translator = Translator(schema, query.alias)
        self.where = translator.vec(query.where) if query.where is not None else None
        self.star = len(query.items) == 1 and isinstance(query.items[0].expr, ast.Star)
        self.names = [output_name(item, i, schema) for i, item in enumerate(query.items)]
        self.partials: list[_Partial] = []
        self.compiler: Compiler | None = None
        if query.aggregate:
            # The items are evaluated once at the end by the row compiler, reading the partials.
            self.compiler = Compiler(schema, query.alias)
            self.finals = [self.compiler.compile(item.expr) for item in query.items]
            for call, _ in self.compiler.aggregates:
                arg = call.args[0]
                self.partials.append(_Partial(call, None if isinstance(arg, ast.Star) else translator.vec(arg)))
            self.items: list[Vec] = []
        elif not self.star:
            self.items = [translator.vec(item.expr) for item in query.items]

    def run(self, batches: Iterable[pa.RecordBatch]) -> Iterator[Row]:
        limit = self.query.limit
        sent = 0
        if limit == 0 and not self.partials and self.compiler is None:
            return
        for batch in batches:
            if self.where is not None:
                mask = self.where(batch)
                if isinstance(mask, pa.Scalar):
                    if not mask.is_valid or not mask.as_py():
                        continue
                else:
                    if not pa.types.is_boolean(mask.type):
                        raise SelectError("EvaluatorInvalidArguments", "A condition must be a boolean.")
                    batch = batch.filter(pc.fill_null(mask, False))
            if not batch.num_rows:
                continue
            if self.compiler is not None:
                for partial in self.partials:
                    partial.add(batch)
                continue
            if limit is not None:
                batch = batch.slice(0, limit - sent)
            yield from self._rows(batch)
            sent += batch.num_rows
            if limit is not None and sent >= limit:
                return
        if self.compiler is not None:
            self.compiler.results = [partial.result() for partial in self.partials]
            if limit != 0:
                yield Row(self.names, [final(None) for final in self.finals])

    def _rows(self, batch: pa.RecordBatch) -> Iterator[Row]:
        if self.star:
            header = self.schema.header
            names = list(header) if header is not None else [f"_{i + 1}" for i in range(batch.num_columns)]
            for record in zip(*[column.to_pylist() for column in batch.columns], strict=True):
                yield Row(names, list(record))
            return
        columns = []
        for item in self.items:
            value = item(batch)
            if isinstance(value, pa.Scalar):
                columns.append([value.as_py()] * batch.num_rows)
            else:
                columns.append(value.to_pylist())
        for record in zip(*columns, strict=True):
            yield Row(self.names, list(record))
