"""ListObjects (v1) and ListObjectsV2 through the real server, checked against a model.

The model is a sorted collection of keys and the S3 rules written out plainly:
keys sort by their UTF-8 bytes; with a delimiter, every key whose remainder
after the prefix contains it folds into the common prefix ending at its first
occurrence; an item (key or common prefix) is returned only if it sorts after
the marker; max-keys counts keys and common prefixes together. Every page of
every walk must match the model exactly.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server.request import _DOT_SEGMENT

# Few distinct characters, so keys share prefixes and delimiters occur often;
# multi-byte ones (2, 3 and 4 bytes in UTF-8); U+FFFD sorts before the emoji in
# UTF-8 (and code points) but after it in UTF-16. (U+FFFF would be the sharper
# edge but is not an XML character, so DeleteObjects could not name it.)
ALPHABET = ["a", "b", "/", "-", ".", " ", "+", "%", "~", "é", "中", "😀", "\ufffd"]
texts = st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=5)

_bucket_names = itertools.count()


def utf8(value: str) -> bytes:
    return value.encode("utf-8")


def model_items(keys: set[str], prefix: str, delimiter: str, after: str) -> list[tuple[str, bool]]:
    """(item, is_common_prefix) in listing order, everything after the marker."""
    items: dict[str, bool] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            items[key[: cut + len(delimiter)]] = True
        else:
            items[key] = False
    return [(item, items[item]) for item in sorted(items, key=utf8) if utf8(item) > utf8(after)]


def split(page: list[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    return [i for i, cp in page if not cp], [i for i, cp in page if cp]


@dataclass
class Query:
    prefix: str
    delimiter: str
    marker: str
    max_keys: int


# Path-like keys share prefixes and delimiters; free-form keys find the odd corners.
segments = st.sampled_from(["a", "b", "é", "中", "😀", "a.b", "x y", "+%", "\ufffd", "--"])
path_keys = st.lists(segments, min_size=1, max_size=4).map("/".join)
# Keys with '.'/'..' path segments are refused on write (dot_segment_keys: reject, tested in
# test_hostile_input.py); every other key must list exactly as the model says.
keys_st = st.one_of(path_keys, texts, st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=12)).filter(
    lambda key: not _DOT_SEGMENT.search(key)
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[set[str], list[Query]]:
    keys = set(draw(st.lists(keys_st, min_size=draw(st.integers(1, 30)), max_size=30)))
    pool = sorted(keys)
    key = st.sampled_from(pool)
    cut_of_key = st.builds(lambda k, n: k[:n], key, st.integers(0, 6))
    piece_of_key = st.builds(lambda k, i, n: k[i : i + n] or "/", key, st.integers(0, 6), st.integers(1, 3))
    queries = draw(
        st.lists(
            st.builds(
                Query,
                # Mostly a real prefix: random text rarely matches anything.
                prefix=st.one_of(st.just(""), st.just(""), cut_of_key, cut_of_key, texts),
                delimiter=st.one_of(st.just(""), st.just("/"), st.sampled_from(ALPHABET), piece_of_key, texts),
                marker=st.one_of(st.just(""), st.just(""), key, cut_of_key, texts),
                max_keys=st.one_of(st.integers(1, 3), st.integers(1, len(keys) + 1)),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return keys, queries


@pytest.fixture(scope="module")
def model_bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"listing-model-{next(_bucket_names)}"
    s3.create_bucket(Bucket=name)
    return name


def load(s3, bucket: str, keys: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Make the bucket hold exactly ``keys``."""
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    if stored:
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stored], "Quiet": True})
        assert not result.get("Errors")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))


def optional(**params: object) -> dict[str, object]:
    return {k: v for k, v in params.items() if v != ""}


def walk_v1(s3, bucket: str, keys: set[str], q: Query) -> None:  # type: ignore[no-untyped-def]
    marker = q.marker
    for _page in range(len(keys) + 2):
        expected = model_items(keys, q.prefix, q.delimiter, marker)
        page = expected[: q.max_keys]
        resp = s3.list_objects(
            Bucket=bucket, MaxKeys=q.max_keys, **optional(Prefix=q.prefix, Delimiter=q.delimiter, Marker=marker)
        )
        got_keys = [o["Key"] for o in resp.get("Contents", [])]
        got_prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        assert (got_keys, got_prefixes) == split(page), (q, marker)
        truncated = len(expected) > q.max_keys
        assert resp["IsTruncated"] is truncated, (q, marker)
        assert resp.get("Marker", "") == marker
        if not truncated:
            assert "NextMarker" not in resp
            return
        if q.delimiter:
            assert resp["NextMarker"] == page[-1][0]
            marker = resp["NextMarker"]
        else:
            assert "NextMarker" not in resp  # V1 clients then continue from the last key
            marker = got_keys[-1]
    pytest.fail(f"v1 listing did not end: {q}")


def walk_v2(s3, bucket: str, keys: set[str], q: Query) -> None:  # type: ignore[no-untyped-def]
    after = q.marker
    token = ""
    for _page in range(len(keys) + 2):
        expected = model_items(keys, q.prefix, q.delimiter, after)
        page = expected[: q.max_keys]
        # StartAfter is sent on every page, as paginators do; the token takes precedence.
        resp = s3.list_objects_v2(
            Bucket=bucket,
            MaxKeys=q.max_keys,
            **optional(Prefix=q.prefix, Delimiter=q.delimiter, StartAfter=q.marker, ContinuationToken=token),
        )
        got_keys = [o["Key"] for o in resp.get("Contents", [])]
        got_prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        assert (got_keys, got_prefixes) == split(page), (q, after)
        assert resp["KeyCount"] == len(page)
        truncated = len(expected) > q.max_keys
        assert resp["IsTruncated"] is truncated, (q, after)
        if not truncated:
            assert "NextContinuationToken" not in resp
            return
        token = resp["NextContinuationToken"]
        after = page[-1][0]
    pytest.fail(f"v2 listing did not end: {q}")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_listing_matches_model(s3, model_bucket: str, scenario: tuple[set[str], list[Query]]) -> None:  # type: ignore[no-untyped-def]
    keys, queries = scenario
    load(s3, model_bucket, keys)
    for q in queries:
        walk_v1(s3, model_bucket, keys, q)
        walk_v2(s3, model_bucket, keys, q)


def test_model_examples() -> None:
    """The model itself, on cases worked out by hand."""
    keys = {"a/b", "a/c", "a-b", "b", "é", "😀", "\ufffd"}
    assert model_items(keys, "", "/", "") == [
        ("a-b", False),
        ("a/", True),
        ("b", False),
        ("é", False),
        ("\ufffd", False),
        ("😀", False),
    ]
    assert model_items(keys, "a", "/", "a/b") == []  # the marker lies inside a/
    assert model_items(keys, "a/", "/", "") == [("a/b", False), ("a/c", False)]
    assert model_items({"x--y--z", "x--w"}, "x--", "--", "") == [("x--w", False), ("x--y--", True)]
