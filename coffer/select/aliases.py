"""SELECT-list aliases used elsewhere in the query (``SELECT int(_1) AS a1, a1 + 1 AS a2 ...
WHERE a2 > 5``), an extension of Ceph's dialect that AWS's lacks: each such name is replaced by
the expression it names before the query is planned. A name that is also a column stays the
column; a chain of aliases is followed to MAX_HOPS (and MAX_SUBSTITUTIONS in all), so a cycle is
an error, not a hang."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from coffer.select.errors import SelectError
from coffer.select.sql import ast

MAX_HOPS = 32
MAX_SUBSTITUTIONS = 4096  # aliases built from aliases could otherwise grow the query exponentially


def inline(query: ast.Query, is_column: Callable[[ast.Name], bool]) -> ast.Query:
    named = {item.alias.lower(): item.expr for item in query.items if item.alias is not None}
    if not named:
        return query

    substitutions = 0

    def rewrite(expr: ast.Expr, hops: int) -> ast.Expr:
        nonlocal substitutions
        if isinstance(expr, ast.Path) and len(expr.steps) == 1:
            step = expr.steps[0]
            target = named.get(step.name.lower()) if isinstance(step.name, str) else None
            if target is not None and not is_column(step):
                substitutions += 1
                if hops >= MAX_HOPS or substitutions > MAX_SUBSTITUTIONS:
                    raise SelectError(
                        "InvalidQuery",
                        "number of calls exceed maximum size, probably a cyclic reference to alias",
                    )
                return rewrite(target, hops + 1)
            return expr
        return _map_children(expr, lambda child: rewrite(child, hops))

    items = tuple(dataclasses.replace(item, expr=rewrite(item.expr, 0)) for item in query.items)
    where = rewrite(query.where, 0) if query.where is not None else None
    return dataclasses.replace(query, items=items, where=where)


def _map_children(expr: ast.Expr, fn: Callable[[ast.Expr], ast.Expr]) -> ast.Expr:
    """The same node over ``fn`` of each child expression."""
    if isinstance(expr, ast.Unary):
        return ast.Unary(expr.op, fn(expr.operand))
    if isinstance(expr, ast.Binary):
        return ast.Binary(expr.op, fn(expr.left), fn(expr.right))
    if isinstance(expr, ast.Like):
        escape = fn(expr.escape) if expr.escape is not None else None
        return ast.Like(fn(expr.value), fn(expr.pattern), escape, expr.negated)
    if isinstance(expr, ast.Between):
        return ast.Between(fn(expr.value), fn(expr.low), fn(expr.high), expr.negated)
    if isinstance(expr, ast.In):
        return ast.In(fn(expr.value), tuple(fn(item) for item in expr.items), expr.negated)
    if isinstance(expr, ast.Is):
        return ast.Is(fn(expr.value), expr.what, expr.negated)
    if isinstance(expr, ast.Case):
        return ast.Case(
            fn(expr.operand) if expr.operand is not None else None,
            tuple((fn(cond), fn(result)) for cond, result in expr.whens),
            fn(expr.otherwise) if expr.otherwise is not None else None,
        )
    if isinstance(expr, ast.Cast):
        return ast.Cast(fn(expr.value), expr.type)
    if isinstance(expr, ast.Call):
        return ast.Call(expr.name, tuple(fn(arg) for arg in expr.args))
    return expr  # Literal, Path, Star
