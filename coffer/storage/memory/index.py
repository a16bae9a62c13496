"""A bucket's key index, and the marks of changes not yet durable.

``KeyIndex``: objects by UTF-8 key in byte order (S3's listing order).
``sortedcontainers.SortedDict`` gives an O(log n) seek to any key and in-order
iteration from there, which is all ``coffer.storage.listing.list_page`` needs to
build a page at a cost proportional to the page.

``Marks``: what changes logged but not yet durable will make of some keys. The
engine's state holds only durable changes (what readers see); the checks of a
later write (conditions, limits, existence) look at the marks first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from sortedcontainers import SortedDict

K = TypeVar("K")
T = TypeVar("T")


class KeyIndex(Generic[T]):
    """Keys are UTF-8 bytes, or tuples starting with them (multipart uploads: (key, upload id))."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> T | None:
        value: T | None = self._items.get(key)
        return value

    def set(self, key: Any, value: T) -> None:
        self._items[key] = value

    def pop(self, key: Any) -> T | None:
        value: T | None = self._items.pop(key, None)
        return value

    def key_list(self) -> list[Any]:
        """A copy of the keys in order (safe to iterate while the index changes)."""
        return list(self._items.keys())

    def values(self) -> list[T]:
        """A copy of the values in key order (safe to iterate while the index changes)."""
        return list(self._items.values())

    def scan(self, lower: Any, inclusive: bool, upper: Any | None) -> Iterator[tuple[Any, T]]:
        """(key, value) from ``lower`` (inclusive or not) up to ``upper`` (exclusive), in order."""
        items = self._items
        for key in items.irange(lower, upper, inclusive=(inclusive, False)):
            yield key, items[key]


class Marks(Generic[K, T]):
    """The latest value pending changes give each key; a key is marked until its last change settles."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[K, list[Any]] = {}  # key -> [latest value, changes pending]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K, default: T) -> T:
        entry = self._items.get(key)
        if entry is None:
            return default
        value: T = entry[0]
        return value

    def items(self) -> Iterator[tuple[K, T]]:
        for key, entry in self._items.items():
            yield key, entry[0]

    def mark(self, key: K, value: T) -> Callable[[], None]:
        """Record a pending change; call the result once it settles (applied or failed)."""
        entry = self._items.get(key)
        if entry is None:
            entry = self._items[key] = [value, 0]
        entry[0] = value
        entry[1] += 1

        def unmark() -> None:
            entry[1] -= 1
            if entry[1] == 0 and self._items.get(key) is entry:
                del self._items[key]

        return unmark
