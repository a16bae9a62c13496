"""Errors of S3 Select, named as AWS names them."""

from __future__ import annotations


class SelectError(Exception):
    """An S3 Select error: before the answer starts it becomes an HTTP 400 error document, once the
    event stream has started an error event (``code`` and ``message`` either way)."""

    def __init__(self, code: str, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.column = column

    @property
    def details(self) -> dict[str, str]:
        """Where in the expression, as AWS adds it to parse errors."""
        if self.line is None or self.column is None:
            return {}
        return {"LineNumber": str(self.line), "ColumnNumber": str(self.column)}
