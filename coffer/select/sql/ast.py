"""The AST of an S3 Select query. Every node is immutable; engines translate or evaluate it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Union


class _Missing:
    """The MISSING value (an absent JSON field or CSV column), distinct from NULL."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

Value = Union[None, bool, int, float, Decimal, str, datetime, list[Any], dict[str, Any], _Missing]  # noqa: UP007


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Name:
    """One step of a path: a field name (``quoted``: matched case-sensitively) or an index."""

    name: str | int
    quoted: bool = False


@dataclass(frozen=True)
class Path:
    """A column or nested path: ``_3``, ``price``, ``s.a.b[0]`` (the alias already removed)."""

    steps: tuple[Name, ...]


@dataclass(frozen=True)
class Star:
    """``*`` in a SELECT list or COUNT(*)."""


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "NOT"
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / % || = != < > <= >= AND OR
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Like:
    value: Expr
    pattern: Expr
    escape: Expr | None
    negated: bool


@dataclass(frozen=True)
class Between:
    value: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True)
class In:
    value: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True)
class Is:
    value: Expr
    what: str  # NULL / MISSING / TRUE / FALSE
    negated: bool


@dataclass(frozen=True)
class Case:
    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr | None


@dataclass(frozen=True)
class Cast:
    value: Expr
    type: str  # INT, FLOAT, DECIMAL, STRING, BOOL, TIMESTAMP


@dataclass(frozen=True)
class Call:
    """A function call; date parts (DATE_ADD, EXTRACT, ...) and TRIM's side are string literals
    among the arguments, SUBSTRING's FROM/FOR become its 2nd and 3rd arguments."""

    name: str
    args: tuple[Expr, ...]


Expr = Union[Literal, Path, Star, Unary, Binary, Like, Between, In, Is, Case, Cast, Call]  # noqa: UP007

AGGREGATES = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX"})


@dataclass(frozen=True)
class SelectItem:
    expr: Expr
    alias: str | None


@dataclass(frozen=True)
class Query:
    items: tuple[SelectItem, ...]  # one SelectItem(Star()) for SELECT *
    source: tuple[Name | Star, ...]  # the FROM path after S3Object: [*], .root, ...
    alias: str | None
    where: Expr | None
    limit: int | None

    @property
    def aggregate(self) -> bool:
        return any(contains_aggregate(item.expr) for item in self.items)


def children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Like):
        return (expr.value, expr.pattern) + ((expr.escape,) if expr.escape is not None else ())
    if isinstance(expr, Between):
        return (expr.value, expr.low, expr.high)
    if isinstance(expr, In):
        return (expr.value, *expr.items)
    if isinstance(expr, Is):
        return (expr.value,)
    if isinstance(expr, Case):
        out: list[Expr] = [] if expr.operand is None else [expr.operand]
        for cond, result in expr.whens:
            out += [cond, result]
        if expr.otherwise is not None:
            out.append(expr.otherwise)
        return tuple(out)
    if isinstance(expr, Cast):
        return (expr.value,)
    if isinstance(expr, Call):
        return expr.args
    return ()


def contains_aggregate(expr: Expr) -> bool:
    if isinstance(expr, Call) and expr.name in AGGREGATES:
        return True
    return any(contains_aggregate(child) for child in children(expr))
