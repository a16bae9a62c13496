"""The row evaluator: an AST compiled once into Python closures, run on each record.

Records are what the input readers yield: for CSV a list of field strings, for JSON the parsed
value. ``Schema`` resolves a column path against them (CSV: ``_N`` or a header name; JSON: a walk
through objects and arrays). NULL and MISSING propagate as in AWS; WHERE keeps a record only when
its condition is TRUE.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from coffer.select import aliases, functions, like, values
from coffer.select.errors import SelectError
from coffer.select.sql import ast
from coffer.select.sql.ast import MISSING

Fn = Callable[[Any], Any]


@dataclass
class Schema:
    """How column names resolve: CSV header names (``None`` for JSON records)."""

    csv: bool
    header: list[str] | None = None

    def resolver(self, steps: tuple[ast.Name, ...]) -> Fn:
        return self._csv(steps) if self.csv else _json_path(steps)

    def _csv(self, steps: tuple[ast.Name, ...]) -> Fn:
        index = self.column_index(steps[0])
        if len(steps) > 1 or index is None:
            return lambda row: MISSING

        def get(row: Any) -> Any:
            return row[index] if index < len(row) else MISSING

        return get

    def is_column(self, step: ast.Name) -> bool:
        """Whether a name is a column of the input (JSON: a field may be anything, so no)."""
        return self.csv and self.column_index(step) is not None

    def column_index(self, step: ast.Name) -> int | None:
        name = step.name
        if isinstance(name, int):
            return None
        if self.header is not None:
            for i, column in enumerate(self.header):
                if column == name or (not step.quoted and column.lower() == name.lower()):
                    return i
        if name.startswith("_") and name[1:].isdigit():
            position = int(name[1:])
            if position < 1:
                raise SelectError("InvalidColumnIndex", f"The column index {name} is invalid: columns start at _1.")
            return position - 1
        return None


def _json_path(steps: tuple[ast.Name, ...]) -> Fn:
    def get(row: Any) -> Any:
        value = row
        for position, step in enumerate(steps):
            name = step.name
            if isinstance(name, int):
                value = value[name] if isinstance(value, list) and 0 <= name < len(value) else MISSING
            elif isinstance(value, dict):
                if name in value:
                    value = value[name]
                elif not step.quoted and (found := _fold(value, name)) is not MISSING:
                    value = found
                elif position == 0 and name == "_1":
                    continue  # Ceph's ``_1.field``: the record itself
                else:
                    return MISSING
            else:
                return MISSING
        return value

    return get


def _fold(record: dict[str, Any], name: str) -> Any:
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return MISSING


def _truth(value: Any) -> bool | None:
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SelectError("EvaluatorInvalidArguments", "A condition must be a boolean.")


_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if values.is_absent(left) or values.is_absent(right):
        return None
    pair = values.comparable(left, right)
    if pair is None:
        if op in ("=", "!="):
            return op == "!="
        raise SelectError(
            "EvaluatorInvalidArguments", f"Cannot compare {values.text_of(left)!r} and {values.text_of(right)!r}."
        )
    return bool(_COMPARE[op](*pair))


def _arith(op: str, left: Any, right: Any) -> Any:
    if values.is_absent(left) or values.is_absent(right):
        return None
    a, b = values.number(left), values.number(right)
    if a is None or b is None:
        raise SelectError("EvaluatorInvalidArguments", f"Operator {op} needs numbers.")
    if op in ("+", "-", "*"):
        result = a + b if op == "+" else a - b if op == "-" else a * b
        if isinstance(result, int) and not -(2**63) <= result < 2**63:
            # 64-bit integers as in AWS (and no unbounded big-number work per record).
            raise SelectError("EvaluatorInvalidArguments", f"Integer overflow in {op}.")
        return result
    if b == 0:
        raise SelectError("EvaluatorDivisionByZero", "Division by zero.")
    if op == "/":
        return a // b if isinstance(a, int) and isinstance(b, int) else a / b
    return a % b


class Compiler:
    """Compiles expressions; aggregate calls become reads of ``Aggregates`` results."""

    def __init__(self, schema: Schema, alias: str | None) -> None:
        self.schema = schema
        self.alias = alias
        self.aggregates: list[tuple[ast.Call, Fn | None]] = []
        self.results: list[Any] = []

    def path(self, expr: ast.Path) -> Fn:
        steps = expr.steps
        first = steps[0].name
        if self.alias is not None and isinstance(first, str) and first.lower() == self.alias.lower():
            steps = steps[1:]
            if not steps:
                return lambda row: row
        return self.schema.resolver(steps)

    def compile(self, expr: ast.Expr) -> Fn:
        if isinstance(expr, ast.Literal):
            constant = expr.value
            return lambda row: constant
        if isinstance(expr, ast.Path):
            return self.path(expr)
        if isinstance(expr, ast.Star):
            return lambda row: row
        if isinstance(expr, ast.Unary):
            operand = self.compile(expr.operand)
            if expr.op == "NOT":

                def negate(row: Any) -> Any:
                    truth = _truth(operand(row))
                    return None if truth is None else not truth

                return negate
            return lambda row: _arith("-", 0, operand(row))
        if isinstance(expr, ast.Binary):
            return self.binary(expr)
        if isinstance(expr, ast.Like):
            return self.like(expr)
        if isinstance(expr, ast.Between):
            value, low, high = self.compile(expr.value), self.compile(expr.low), self.compile(expr.high)

            def between(row: Any) -> Any:
                v = value(row)
                above, below = _compare(">=", v, low(row)), _compare("<=", v, high(row))
                result = _and(above, below)
                return result if result is None or not expr.negated else not result

            return between
        if isinstance(expr, ast.In):
            value = self.compile(expr.value)
            items = [self.compile(item) for item in expr.items]

            def within(row: Any) -> Any:
                v = value(row)
                if values.is_absent(v):
                    return None
                found = any(_compare("=", v, item(row)) for item in items)
                return found != expr.negated

            return within
        if isinstance(expr, ast.Is):
            value = self.compile(expr.value)
            what, negated = expr.what, expr.negated

            def test(row: Any) -> Any:
                v = value(row)
                if what == "NULL":
                    result = v is None or v is MISSING
                elif what == "MISSING":
                    result = v is MISSING
                else:
                    result = v is (what == "TRUE")
                return result != negated

            return test
        if isinstance(expr, ast.Case):
            return self.case(expr)
        if isinstance(expr, ast.Cast):
            value, kind = self.compile(expr.value), expr.type
            return lambda row: values.cast(value(row), kind)
        assert isinstance(expr, ast.Call)
        return self.call(expr)

    def binary(self, expr: ast.Binary) -> Fn:
        left, right, op = self.compile(expr.left), self.compile(expr.right), expr.op
        if op == "AND":
            return lambda row: _and(_truth(left(row)), _truth(right(row)))
        if op == "OR":
            return lambda row: _or(_truth(left(row)), _truth(right(row)))
        if op in _COMPARE:
            return lambda row: _compare(op, left(row), right(row))
        if op == "||":

            def concat(row: Any) -> Any:
                a, b = left(row), right(row)
                if values.is_absent(a) or values.is_absent(b):
                    return None
                return values.text_of(a) + values.text_of(b)

            return concat
        return lambda row: _arith(op, left(row), right(row))

    def like(self, expr: ast.Like) -> Fn:
        value = self.compile(expr.value)
        negated = expr.negated
        if isinstance(expr.pattern, ast.Literal) and (expr.escape is None or isinstance(expr.escape, ast.Literal)):
            pattern_value, escape_value = expr.pattern.value, None if expr.escape is None else expr.escape.value
            if not isinstance(pattern_value, str) or (escape_value is not None and not isinstance(escape_value, str)):
                raise SelectError("EvaluatorInvalidArguments", "LIKE needs string arguments.")
            matches = like.matcher(pattern_value, escape_value)

            def fixed(row: Any) -> Any:
                v = value(row)
                if values.is_absent(v):
                    return None
                if not isinstance(v, str):
                    raise SelectError("EvaluatorInvalidArguments", "LIKE needs a string value.")
                return matches(v) != negated

            return fixed
        pattern = self.compile(expr.pattern)
        escape = self.compile(expr.escape) if expr.escape is not None else None

        def dynamic(row: Any) -> Any:
            v, p = value(row), pattern(row)
            e = escape(row) if escape is not None else None
            if values.is_absent(v) or values.is_absent(p):
                return None
            if not isinstance(v, str) or not isinstance(p, str):
                raise SelectError("EvaluatorInvalidArguments", "LIKE needs string arguments.")
            return like.matcher(p, e)(v) != negated

        return dynamic

    def case(self, expr: ast.Case) -> Fn:
        operand = self.compile(expr.operand) if expr.operand is not None else None
        whens = [(self.compile(cond), self.compile(result)) for cond, result in expr.whens]
        otherwise = self.compile(expr.otherwise) if expr.otherwise is not None else (lambda row: None)

        def choose(row: Any) -> Any:
            subject = operand(row) if operand is not None else None
            for cond, result in whens:
                hit = _compare("=", subject, cond(row)) if operand is not None else _truth(cond(row))
                if hit:
                    return result(row)
            return otherwise(row)

        return choose

    def call(self, expr: ast.Call) -> Fn:
        name = expr.name
        if name in ast.AGGREGATES:
            arg = expr.args[0]
            slot = len(self.aggregates)
            self.aggregates.append((expr, None if isinstance(arg, ast.Star) else self.compile(arg)))
            return lambda row: self.results[slot]
        args = [self.compile(arg) for arg in expr.args]
        if name == "COALESCE":

            def coalesce(row: Any) -> Any:
                for arg in args:
                    v = arg(row)
                    if not values.is_absent(v):
                        return v
                return None

            return coalesce
        if name == "NULLIF":

            def nullif(row: Any) -> Any:
                a, b = args[0](row), args[1](row)
                return None if _compare("=", a, b) else a

            return nullif
        scalar = functions.SCALARS[name]
        first_part = name in ("DATE_ADD", "DATE_DIFF", "EXTRACT", "TRIM")

        def invoke(row: Any) -> Any:
            actual = [arg(row) for arg in args]
            if any(values.is_absent(v) for v in actual[1 if first_part else 0 :]):
                return None
            return scalar(actual)

        return invoke


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


class Accumulator:
    """One aggregate's running value (COUNT, SUM, AVG, MIN, MAX)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total: Any = 0
        self.best: Any = None

    def add(self, value: Any) -> None:
        if self.name == "COUNT":
            if not values.is_absent(value):
                self.count += 1
            return
        if values.is_absent(value):
            return
        if self.name in ("SUM", "AVG"):
            number = values.number(value)
            if number is None:
                raise SelectError("EvaluatorInvalidArguments", f"{self.name} needs numbers.")
            self.total += number
            self.count += 1
            return
        candidate = values.number(value) if isinstance(value, str) else value
        if candidate is None:
            candidate = value
        if self.best is None:
            self.best = candidate
            return
        pair = values.comparable(candidate, self.best)
        if pair is None:
            raise SelectError("EvaluatorInvalidArguments", f"{self.name} cannot compare its values.")
        if (pair[0] < pair[1]) == (self.name == "MIN") and pair[0] != pair[1]:
            self.best = candidate

    def result(self) -> Any:
        if self.name == "COUNT":
            return self.count
        if self.name == "SUM":
            return self.total if self.count else None
        if self.name == "AVG":
            return self.total / self.count if self.count else None
        return self.best


@dataclass
class Row:
    """One output record: its values and their names."""

    names: list[str]
    values: list[Any]


class Plan:
    """A query compiled against a schema: ``run`` turns records into output rows."""

    def __init__(self, query: ast.Query, schema: Schema) -> None:
        query = aliases.inline(query, schema.is_column)
        self.query = query
        self.compiler = Compiler(schema, query.alias)
        self.where = self.compiler.compile(query.where) if query.where is not None else None
        self.star = len(query.items) == 1 and isinstance(query.items[0].expr, ast.Star)
        self.items = [self.compiler.compile(item.expr) for item in query.items]
        self.names = [output_name(item, i, schema) for i, item in enumerate(query.items)]
        self.schema = schema

    def run(self, records: Iterable[Any]) -> Iterator[Row]:
        limit = self.query.limit
        if self.query.aggregate:
            yield from self._aggregate(records, limit)
            return
        if limit == 0:
            return
        sent = 0
        where = self.where
        for record in records:
            if where is not None and _truth(where(record)) is not True:
                continue
            yield self.project(record)
            sent += 1
            if limit is not None and sent >= limit:
                return

    def project(self, record: Any) -> Row:
        if self.star:
            if isinstance(record, list) and self.schema.csv:
                names = self.schema.header or [f"_{i + 1}" for i in range(len(record))]
                return Row(
                    list(names[: len(record)]) + [f"_{i + 1}" for i in range(len(names), len(record))], list(record)
                )
            return Row(["_1"], [record])
        return Row(self.names, [item(record) for item in self.items])

    def _aggregate(self, records: Iterable[Any], limit: int | None) -> Iterator[Row]:
        accumulators = [(Accumulator(call.name), arg) for call, arg in self.compiler.aggregates]
        where = self.where
        seen = 0
        for record in records:
            if where is not None and _truth(where(record)) is not True:
                continue
            seen += 1
            for accumulator, arg in accumulators:
                accumulator.add(True if arg is None else arg(record))
        self.compiler.results = [accumulator.result() for accumulator, _ in accumulators]
        if limit != 0:
            yield Row(self.names, [item(None) for item in self.items])


def output_name(item: ast.SelectItem, index: int, schema: Schema) -> str:
    if item.alias is not None:
        return item.alias
    expr = item.expr
    if isinstance(expr, ast.Path) and isinstance(expr.steps[-1].name, str):
        return expr.steps[-1].name
    return f"_{index + 1}"
