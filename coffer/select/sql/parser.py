"""Recursive-descent parser: tokens -> ``ast.Query``. Nesting is bounded (MAX_DEPTH) so no input
can exhaust the stack; every failure is a SelectError naming AWS's code, line and column."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from coffer.select.errors import SelectError
from coffer.select.sql import ast
from coffer.select.sql.lexer import Token, tokenize

MAX_DEPTH = 40  # each level is ~10 Python frames: well inside the interpreter's recursion limit
CAST_TYPES = {
    "INT": "INT",
    "INTEGER": "INT",
    "BIGINT": "INT",
    "FLOAT": "FLOAT",
    "DOUBLE": "FLOAT",
    "REAL": "FLOAT",
    "DECIMAL": "DECIMAL",
    "NUMERIC": "DECIMAL",
    "STRING": "STRING",
    "VARCHAR": "STRING",
    "CHAR": "STRING",
    "BOOL": "BOOL",
    "BOOLEAN": "BOOL",
    "TIMESTAMP": "TIMESTAMP",
}
DATE_PARTS = frozenset({"YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND", "TIMEZONE_HOUR", "TIMEZONE_MINUTE"})
# Functions and how many arguments each takes (min, max); aggregates take exactly one.
FUNCTIONS = {
    "COUNT": (1, 1),
    "SUM": (1, 1),
    "AVG": (1, 1),
    "MIN": (1, 1),
    "MAX": (1, 1),
    "CHAR_LENGTH": (1, 1),
    "CHARACTER_LENGTH": (1, 1),
    "LOWER": (1, 1),
    "UPPER": (1, 1),
    "COALESCE": (1, 64),
    "NULLIF": (2, 2),
    "TO_STRING": (2, 2),
    "TO_TIMESTAMP": (1, 1),
    "UTCNOW": (0, 0),
}
_COMPARISONS = frozenset({"=", "!=", "<>", "<", ">", "<=", ">="})


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp literal (``2007T``, ``2007-02-23T12:14:33.079-08:00``, ...)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if value.endswith("T"):
        value = value[:-1]
    if len(value) == 4 and value.isdigit():
        value += "-01-01"
    elif len(value) == 7 and value[4] == "-":
        value += "-01"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SelectError("CastFailed", f"Cannot convert '{text}' to a timestamp.") from None
    return parsed


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    # -- tokens ------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def error(self, code: str, message: str, token: Token | None = None) -> SelectError:
        at = token or self.tok
        where = f"at line {at.line}, column {at.column}"
        return SelectError(code, f"{message} {where}.", line=at.line, column=at.column)

    def advance(self) -> Token:
        token = self.tok
        if token.kind != "EOF":
            self.pos += 1
        return token

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.text in ops

    def at_kw(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.text in words

    def at_word(self, word: str) -> bool:
        """A keyword or plain identifier spelling ``word`` (FROM inside SUBSTRING, etc.)."""
        return self.tok.kind in ("KEYWORD", "IDENT") and self.tok.text.upper() == word

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            raise self.error("ParseExpectedTokenType", f"Expected '{op}' but found '{self.tok.text}'")
        return self.advance()

    def expect_kw(self, word: str) -> Token:
        if not self.at_word(word):
            raise self.error("ParseExpectedKeyword", f"Expected keyword {word} but found '{self.tok.text}'")
        return self.advance()

    # -- query -------------------------------------------------------------------------------
    def query(self) -> ast.Query:
        if not self.at_kw("SELECT"):
            raise self.error("ParseUnsupportedSelect", "The query must start with SELECT")
        self.advance()
        items = self.select_list()
        if not self.at_kw("FROM"):
            raise self.error(
                "ParseMissingFrom" if self.tok.kind == "EOF" else "ParseUnexpectedToken",
                f"Expected FROM but found '{self.tok.text}'",
            )
        self.advance()
        source, alias = self.from_clause()
        where = None
        if self.at_kw("WHERE"):
            self.advance()
            where = self.expr()
        limit = None
        if self.at_kw("LIMIT"):
            self.advance()
            if self.at_op("-"):
                raise self.error("EvaluatorNegativeLimit", "LIMIT must not be negative")
            token = self.advance()
            if token.kind != "NUMBER" or not token.text.isdigit():
                raise self.error("ParseExpectedNumber", "LIMIT expects a non-negative integer", token)
            limit = int(token.text)
        if self.at_op(";"):
            self.advance()
        if self.tok.kind != "EOF":
            raise self.error("ParseUnexpectedToken", f"Unexpected token '{self.tok.text}'")
        query = ast.Query(items, source, alias, where, limit)
        if where is not None and ast.contains_aggregate(where):
            raise SelectError("InvalidQuery", "Aggregate functions are not allowed in the WHERE clause.")
        if query.aggregate and any(not ast.contains_aggregate(i.expr) and _has_path(i.expr) for i in items):
            raise SelectError("InvalidQuery", "A SELECT list with aggregates cannot also name columns outside them.")
        return query

    def select_list(self) -> tuple[ast.SelectItem, ...]:
        if self.at_op("*"):
            self.advance()
            if self.at_op(","):
                raise self.error(
                    "ParseAsteriskIsNotAloneInSelectList", "Other expressions are not allowed in the SELECT list with *"
                )
            return (ast.SelectItem(ast.Star(), None),)
        items = [self.select_item()]
        while self.at_op(","):
            self.advance()
            items.append(self.select_item())
        return tuple(items)

    def select_item(self) -> ast.SelectItem:
        if self.tok.kind == "EOF" or self.at_kw("FROM"):
            raise self.error("ParseExpectedExpression", "Expected an expression")
        expr = self.expr()
        return ast.SelectItem(expr, self.alias())

    def from_clause(self) -> tuple[tuple[ast.Name | ast.Star, ...], str | None]:
        token = self.advance()
        if token.kind not in ("IDENT", "QIDENT") or token.text.lower() != "s3object":
            raise self.error("ParseUnexpectedToken", f"Expected S3Object but found '{token.text}'", token)
        steps: list[ast.Name | ast.Star] = []
        while True:
            if self.at_op("["):
                self.advance()
                if self.at_op("*"):
                    self.advance()
                    steps.append(ast.Star())
                else:
                    steps.append(ast.Name(self.index()))
                self.expect_op("]")
            elif self.at_op("."):
                self.advance()
                name = self.advance()
                if name.kind not in ("IDENT", "QIDENT"):
                    raise self.error("ParseExpectedIdentForAt", "Expected a name after '.'", name)
                steps.append(ast.Name(name.text, name.kind == "QIDENT"))
            else:
                break
        return tuple(steps), self.alias()

    def alias(self) -> str | None:
        """``[AS] name`` after a SELECT item or S3Object, if there is one."""
        if self.at_kw("AS"):
            self.advance()
            token = self.advance()
            if token.kind not in ("IDENT", "QIDENT"):
                raise self.error("ParseExpectedIdentForAlias", "Expected an alias after AS", token)
            return token.text
        if self.tok.kind in ("IDENT", "QIDENT"):
            return self.advance().text
        return None

    def index(self) -> int:
        token = self.advance()
        if token.kind != "NUMBER" or not token.text.isdigit():
            raise self.error("ParseExpectedNumber", "Expected an array index", token)
        return int(token.text)

    # -- expressions -------------------------------------------------------------------------
    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level deeper: bounded, so no input can exhaust the stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("ParseUnsupportedSyntax", f"The expression nests deeper than {MAX_DEPTH} levels")
        try:
            yield
        finally:
            self.depth -= 1

    def expr(self) -> ast.Expr:
        with self.nested():
            return self.or_expr()

    def left_assoc(self, operand: Callable[[], ast.Expr], keywords: tuple[str, ...], ops: tuple[str, ...]) -> ast.Expr:
        """``operand (op operand)*`` folded to the left, for the binary operators of one precedence."""
        left = operand()
        while self.at_kw(*keywords) or self.at_op(*ops):
            op = self.advance().text
            left = ast.Binary(op, left, operand())
        return left

    def or_expr(self) -> ast.Expr:
        return self.left_assoc(self.and_expr, ("OR",), ())

    def and_expr(self) -> ast.Expr:
        return self.left_assoc(self.not_expr, ("AND",), ())

    def not_expr(self) -> ast.Expr:
        if self.at_kw("NOT"):
            self.advance()
            with self.nested():
                return ast.Unary("NOT", self.not_expr())
        return self.predicate()

    def predicate(self) -> ast.Expr:
        left = self.concat()
        while True:
            if self.tok.kind == "OP" and self.tok.text in _COMPARISONS:
                op = self.advance().text
                left = ast.Binary("!=" if op == "<>" else op, left, self.concat())
                continue
            if self.at_kw("IS"):
                self.advance()
                negated = False
                if self.at_kw("NOT"):
                    self.advance()
                    negated = True
                if not self.at_kw("NULL", "MISSING", "TRUE", "FALSE"):
                    raise self.error("ParseExpectedKeyword", "Expected NULL or MISSING after IS")
                left = ast.Is(left, self.advance().text, negated)
                continue
            negated = False
            if (
                self.at_kw("NOT")
                and self.tokens[self.pos + 1].kind == "KEYWORD"
                and self.tokens[self.pos + 1].text in ("LIKE", "BETWEEN", "IN")
            ):
                self.advance()
                negated = True
            if self.at_kw("LIKE"):
                self.advance()
                pattern = self.concat()
                escape = None
                if self.at_kw("ESCAPE"):
                    self.advance()
                    escape = self.concat()
                left = ast.Like(left, pattern, escape, negated)
            elif self.at_kw("BETWEEN"):
                self.advance()
                low = self.concat()
                self.expect_kw("AND")
                left = ast.Between(left, low, self.concat(), negated)
            elif self.at_kw("IN"):
                self.advance()
                self.expect_op("(")
                items = [self.expr()]
                while self.at_op(","):
                    self.advance()
                    items.append(self.expr())
                self.expect_op(")")
                left = ast.In(left, tuple(items), negated)
            else:
                return left

    def concat(self) -> ast.Expr:
        return self.left_assoc(self.additive, (), ("||",))

    def additive(self) -> ast.Expr:
        return self.left_assoc(self.multiplicative, (), ("+", "-"))

    def multiplicative(self) -> ast.Expr:
        return self.left_assoc(self.unary, (), ("*", "/", "%"))

    def unary(self) -> ast.Expr:
        if self.at_op("-", "+"):
            op = self.advance().text
            with self.nested():
                operand = self.unary()
            if (
                op == "-"
                and isinstance(operand, ast.Literal)
                and isinstance(operand.value, (int, float, Decimal))
                and not isinstance(operand.value, bool)
            ):
                return ast.Literal(-operand.value)
            return operand if op == "+" else ast.Unary("-", operand)
        return self.postfix(self.primary())

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        if not isinstance(expr, ast.Path):
            return expr
        steps = list(expr.steps)
        while True:
            if self.at_op("."):
                self.advance()
                token = self.advance()
                if token.kind == "OP" and token.text == "*":
                    raise self.error("ParseUnsupportedSyntax", "Wildcard paths are not supported", token)
                if token.kind not in ("IDENT", "QIDENT", "KEYWORD"):
                    raise self.error("ParseExpectedIdentForAt", "Expected a name after '.'", token)
                steps.append(ast.Name(token.text, token.kind == "QIDENT"))
            elif self.at_op("["):
                self.advance()
                if self.tok.kind == "STRING":
                    steps.append(ast.Name(self.advance().text, True))
                else:
                    steps.append(ast.Name(self.index()))
                self.expect_op("]")
            else:
                return ast.Path(tuple(steps))

    def primary(self) -> ast.Expr:
        token = self.tok
        if token.kind == "NUMBER":
            self.advance()
            return ast.Literal(_number(token.text))
        if token.kind == "STRING":
            self.advance()
            return ast.Literal(token.text)
        if token.kind == "TIMESTAMP":
            self.advance()
            return ast.Literal(parse_timestamp(token.text))
        if token.kind == "KEYWORD":
            return self.keyword_primary(token)
        if token.kind == "QIDENT":
            self.advance()
            return ast.Path((ast.Name(token.text, True),))
        if token.kind == "IDENT":
            self.advance()
            if self.at_op("("):
                return self.call(token)
            return ast.Path((ast.Name(token.text),))
        if self.at_op("("):
            self.advance()
            inner = self.expr()
            self.expect_op(")")
            return inner
        if token.kind == "EOF":
            raise self.error("ParseExpectedExpression", "Expected an expression but the query ended")
        raise self.error(
            "ParseExpectedExpression" if token.kind == "OP" else "ParseUnexpectedToken",
            f"Unexpected token '{token.text}'",
        )

    def keyword_primary(self, token: Token) -> ast.Expr:
        word = token.text
        if word in ("NULL", "MISSING", "TRUE", "FALSE"):
            self.advance()
            return ast.Literal({"NULL": None, "MISSING": ast.MISSING, "TRUE": True, "FALSE": False}[word])
        if word == "CASE":
            self.advance()
            return self.case()
        if word == "CAST":
            self.advance()
            self.expect_op("(")
            value = self.expr()
            self.expect_kw("AS")
            type_token = self.advance()
            cast_type = CAST_TYPES.get(type_token.text.upper())
            if type_token.kind not in ("IDENT", "KEYWORD") or cast_type is None:
                raise self.error("ParseExpectedTypeName", f"Unsupported type '{type_token.text}' in CAST", type_token)
            self.expect_op(")")
            return ast.Cast(value, cast_type)
        raise self.error(
            "ParseUnexpectedKeyword" if word != "FROM" else "ParseExpectedExpression", f"Unexpected keyword {word}"
        )

    def case(self) -> ast.Expr:
        operand = None if self.at_kw("WHEN") else self.expr()
        whens = []
        while self.at_kw("WHEN"):
            self.advance()
            cond = self.expr()
            self.expect_kw("THEN")
            whens.append((cond, self.expr()))
        if not whens:
            raise self.error("ParseExpectedWhenClause", "CASE needs at least one WHEN")
        otherwise = None
        if self.at_kw("ELSE"):
            self.advance()
            otherwise = self.expr()
        self.expect_kw("END")
        return ast.Case(operand, tuple(whens), otherwise)

    def call(self, name_token: Token) -> ast.Expr:
        name = name_token.text.upper()
        self.expect_op("(")
        if name == "COUNT" and self.at_op("*"):
            self.advance()
            self.expect_op(")")
            return ast.Call("COUNT", (ast.Star(),))
        if name in ("INT", "FLOAT") and not self.at_op(")"):
            # Ceph RGW's dialect spells CAST(x AS INT) as int(x): accepted as the same cast.
            value = self.expr()
            self.expect_op(")")
            return ast.Cast(value, name)
        if name == "SUBSTRING":
            return self.substring()
        if name == "TRIM":
            return self.trim()
        if name == "EXTRACT":
            part = self.date_part()
            self.expect_kw("FROM")
            value = self.expr()
            self.expect_op(")")
            return ast.Call("EXTRACT", (ast.Literal(part), value))
        if name in ("DATE_ADD", "DATE_DIFF"):
            part = self.date_part()
            self.expect_op(",")
            first = self.expr()
            self.expect_op(",")
            second = self.expr()
            self.expect_op(")")
            return ast.Call(name, (ast.Literal(part), first, second))
        if name not in FUNCTIONS:
            raise self.error("ParseUnexpectedToken", f"Unknown function {name_token.text}", name_token)
        args: list[ast.Expr] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.advance()
                args.append(self.expr())
        self.expect_op(")")
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise SelectError(
                "EvaluatorInvalidArguments" if name not in ast.AGGREGATES else "IncorrectSqlFunctionArgumentType",
                f"Function {name} takes {low if low == high else f'{low} to {high}'} argument(s), not {len(args)}.",
            )
        if name == "CHARACTER_LENGTH":
            name = "CHAR_LENGTH"
        if name in ast.AGGREGATES and ast.contains_aggregate(args[0]):
            raise SelectError("InvalidQuery", "Aggregate functions cannot be nested.")
        return ast.Call(name, tuple(args))

    def date_part(self) -> str:
        token = self.advance()
        part = token.text.upper()
        if token.kind not in ("IDENT", "KEYWORD") or part not in DATE_PARTS:
            raise self.error("EvaluatorInvalidArguments", f"Invalid date part '{token.text}'", token)
        return part

    def substring(self) -> ast.Expr:
        value = self.expr()
        if self.at_word("FROM"):
            self.advance()
            start = self.expr()
            length = None
            if self.at_word("FOR"):
                self.advance()
                length = self.expr()
        else:
            self.expect_op(",")
            start = self.expr()
            length = None
            if self.at_op(","):
                self.advance()
                length = self.expr()
        self.expect_op(")")
        return ast.Call("SUBSTRING", (value, start) + ((length,) if length is not None else ()))

    def trim(self) -> ast.Expr:
        side = "BOTH"
        if self.tok.kind == "IDENT" and self.tok.text.upper() in ("LEADING", "TRAILING", "BOTH"):
            side = self.advance().text.upper()
        chars: ast.Expr | None = None
        if not self.at_word("FROM"):
            first = self.expr()
            if self.at_word("FROM"):
                self.advance()
                chars, value = first, self.expr()
            else:
                value = first
        else:
            self.advance()
            value = self.expr()
        self.expect_op(")")
        return ast.Call("TRIM", (ast.Literal(side), value) + ((chars,) if chars is not None else ()))


def _number(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return float(text)


def _has_path(expr: ast.Expr) -> bool:
    return isinstance(expr, ast.Path) or any(_has_path(child) for child in ast.children(expr))


def parse(text: str) -> ast.Query:
    """Parse a whole query; any malformed text raises SelectError."""
    return Parser(text).query()
