"""A bucket's key index: objects by UTF-8 key in byte order (S3's listing order).

``sortedcontainers.SortedDict`` gives an O(log n) seek to any key and in-order
iteration from there, which is all ``coffer.storage.listing.list_page`` needs to
build a page at a cost proportional to the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from sortedcontainers import SortedDict

T = TypeVar("T")


class KeyIndex(Generic[T]):
    """Keys are UTF-8 bytes, or tuples starting with them (multipart uploads: (key, upload id))."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> T | None:
        return self._items.get(key)  # type: ignore[no-any-return]

    def set(self, key: Any, value: T) -> None:
        self._items[key] = value

    def pop(self, key: Any) -> T | None:
        return self._items.pop(key, None)  # type: ignore[no-any-return]

    def values(self) -> list[T]:
        """A copy of the values in key order (safe to iterate while the index changes)."""
        return list(self._items.values())

    def scan(self, lower: Any, inclusive: bool, upper: Any | None) -> Iterator[tuple[Any, T]]:
        """(key, value) from ``lower`` (inclusive or not) up to ``upper`` (exclusive), in order."""
        items = self._items
        for key in items.irange(lower, upper, inclusive=(inclusive, False)):
            yield key, items[key]
