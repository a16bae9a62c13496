"""The memory engine lists exactly like the disk engine (and like a plain sorted model).

Random keys (multi-byte UTF-8 included, so byte order differs from code-point
order), prefixes, delimiters, markers and page sizes; every page of both
engines is compared, and the pages walked to the end are checked against a
model computed from a sorted list.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.storage.api import ListPage
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine

ALPHABET = ["a", "b", "/", "-", "é", "\U0001f600", "z"]
keys_st = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=6), min_size=0, max_size=40, unique=True)
query_st = st.tuples(
    st.text(alphabet=ALPHABET, max_size=2),  # prefix
    st.sampled_from(["", "/", "-", "b/", "\U0001f600"]),  # delimiter
    st.text(alphabet=ALPHABET, max_size=4),  # marker / start-after
    st.integers(min_value=0, max_value=7),  # max keys
)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def model(keys: list[str], prefix: str, delimiter: str, after: str) -> list[tuple[str, str]]:
    """Every item ('key' or 'prefix', value) a full walk must return, in order."""
    items: list[tuple[str, str]] = []
    seen: set[str] = set()
    enc = after.encode()
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common.encode() > enc and common not in seen:
                seen.add(common)
                items.append(("prefix", common))
        elif key.encode() > enc:
            items.append(("key", key))
    return items


def flatten(page: ListPage) -> list[tuple[str, str]]:
    items = [("key", e.key) for e in page.entries] + [("prefix", p) for p in page.common_prefixes]
    return sorted(items, key=lambda item: item[1].encode())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=keys_st, queries=st.lists(query_st, min_size=1, max_size=5))
def test_memory_lists_like_disk(keys: list[str], queries: list[tuple[str, str, str, int]]) -> None:
    async def scenario(directory: str) -> None:
        disk = DiskEngine(directory, fsync=False)
        memory = MemoryEngine(max_memory=1 << 30)
        engines = (disk, memory)
        for engine in engines:
            await engine.start()
        try:
            for engine in engines:
                await engine.create_bucket("bkt", "owner", "us-east-1")
                for key in keys:
                    await engine.put_object("bkt", key, _one(key.encode()), headers={})
            for prefix, delimiter, after, max_keys in queries:
                pages = []
                for engine in engines:
                    page = await engine.list_objects(
                        "bkt", prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys
                    )
                    pages.append(
                        (
                            [(e.key, e.size, e.etag) for e in page.entries],
                            page.common_prefixes,
                            page.is_truncated,
                            page.next_marker,
                        )
                    )
                assert pages[0] == pages[1], (prefix, delimiter, after, max_keys)
                if max_keys == 0:
                    continue
                # Walk the memory engine to the end: exactly the model's items, in order, once each.
                walked: list[tuple[str, str]] = []
                marker = after
                for _ in range(len(keys) + 2):
                    page = await memory.list_objects(
                        "bkt", prefix=prefix, delimiter=delimiter, after=marker, max_keys=max_keys
                    )
                    walked += flatten(page)
                    if not page.is_truncated:
                        break
                    assert page.next_marker is not None
                    marker = page.next_marker
                assert walked == model(keys, prefix, delimiter, after)
        finally:
            for engine in engines:
                await engine.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(directory))
