"""The decisions: one merge of the two sorted listings into copy / skip / delete (and, for verify,
ok / missing / extra / differs / unconfirmed), without holding either listing in memory.

The comparison rule (docs/mirror.md): sizes must match; when both ETags are plain MD5s (32 hex
digits: a single PUT) they must be equal; when either is a multipart ETag (``…-N``, whose value
depends on the part layout) the destination is current if it is not older than the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from coffer.mirror.client import Entry

_PLAIN_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def is_plain_md5(etag: str) -> bool:
    return _PLAIN_MD5.fullmatch(etag) is not None


@dataclass(frozen=True, slots=True)
class Pair:
    """A relative key (after each side's prefix) and its object on each side, if any."""

    name: str
    source: Entry | None
    dest: Entry | None


class ListingOrderError(ValueError):
    """A listing is not in ascending key order: pairing it up would take present keys for
    missing ones (and --delete would remove them), so the run stops instead."""


def _ordered(entries: Iterable[Entry], side: str) -> Iterator[Entry]:
    previous: str | None = None
    for entry in entries:
        if previous is not None and entry.key <= previous:
            raise ListingOrderError(f"the {side} listing is not in key order ({entry.key!r} after {previous!r})")
        previous = entry.key
        yield entry


def merge(source: Iterable[Entry], dest: Iterable[Entry], source_prefix: str, dest_prefix: str) -> Iterator[Pair]:
    """Both listings walked together. S3 lists keys in UTF-8 byte order, which is Python's str
    order; stripping a common prefix keeps that order, so a single pass pairs them up (each
    listing's order is checked as it goes)."""
    src_iter, dst_iter = _ordered(source, "source"), _ordered(dest, "destination")
    src, dst = next(src_iter, None), next(dst_iter, None)
    while src is not None or dst is not None:
        src_name = src.key[len(source_prefix) :] if src is not None else None
        dst_name = dst.key[len(dest_prefix) :] if dst is not None else None
        if dst_name is None or (src_name is not None and src_name < dst_name):
            yield Pair(src_name or "", src, None)
            src = next(src_iter, None)
        elif src_name is None or dst_name < src_name:
            yield Pair(dst_name, None, dst)
            dst = next(dst_iter, None)
        else:
            yield Pair(src_name, src, dst)
            src, dst = next(src_iter, None), next(dst_iter, None)


def up_to_date(source: Entry, dest: Entry) -> bool:
    """Whether copy/sync may skip this object (the rule in the module docstring)."""
    if source.size != dest.size:
        return False
    if is_plain_md5(source.etag) and is_plain_md5(dest.etag):
        return source.etag.lower() == dest.etag.lower()
    return dest.last_modified >= source.last_modified


def verdict(pair: Pair) -> str:
    """verify's first look: ``missing``, ``extra``, ``differs``, ``ok``, or ``unconfirmed`` when
    sizes match but an ETag is multipart (settled by checksums or read-back in the worker)."""
    if pair.dest is None:
        return "missing"
    if pair.source is None:
        return "extra"
    if pair.source.size != pair.dest.size:
        return "differs"
    if is_plain_md5(pair.source.etag) and is_plain_md5(pair.dest.etag):
        return "ok" if pair.source.etag.lower() == pair.dest.etag.lower() else "differs"
    return "unconfirmed"
