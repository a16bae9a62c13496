"""Object and bucket tags on the wire: the Tagging XML document, the x-amz-tagging header, S3's limits.

The engines store a validated ``dict[str, str]`` sorted by key (the order S3
answers in); everything a client may get wrong is refused here as InvalidTag or
MalformedXML (BadRequest for too many bucket tags) before the engine is called.
Objects and buckets share the rules for keys and values; the count, the answer
to too many tags and to an ``aws:`` key differ (``Limits``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl

from coffer.server import xml
from coffer.server.errors import S3Error

MAX_KEY_LENGTH = 128  # Unicode characters
MAX_VALUE_LENGTH = 256
RESERVED_PREFIX = "aws:"  # system tags: users may not set them
# Besides letters, numbers and spaces (any script), S3 allows these in keys and values.
_ALLOWED_PUNCTUATION = frozenset("_.:/=+-@")
TAGGING_HEADER = "x-amz-tagging"
BUCKET_CONFIG = "tagging"  # the bucket configuration document holding a bucket's tags


@dataclass(frozen=True)
class Limits:
    max_tags: int
    too_many: tuple[str, str]  # S3's code and message for a set of more than max_tags
    reserved: str  # S3's InvalidTag message for a key starting with aws:
    # Bytes of a Tagging document: max_tags full-length tags fit even with every character
    # written as a character reference (``&#x10400;``, 9 bytes).
    max_document: int


OBJECT = Limits(
    10,
    ("InvalidTag", "Object tags cannot be greater than 10"),
    "Your TagKey cannot be prefixed with aws:",
    64 * 1024,
)
BUCKET = Limits(
    50,
    ("BadRequest", "Bucket tag count cannot be greater than 50"),
    "System tags cannot be added/updated by requester",
    256 * 1024,
)


def _valid_chars(text: str) -> bool:
    return all(c in _ALLOWED_PUNCTUATION or unicodedata.category(c)[0] in "LNZ" for c in text)


def validate(pairs: list[tuple[str, str]], limits: Limits = OBJECT) -> dict[str, str]:
    """S3's rules for a tag set, in the order S3 checks them; the tags sorted by key."""
    if len(pairs) > limits.max_tags:
        raise S3Error(*limits.too_many)
    tags: dict[str, str] = {}
    for key, value in pairs:
        if len(key) > MAX_KEY_LENGTH:
            raise S3Error("InvalidTag", f"The TagKey you have provided is too long, max {MAX_KEY_LENGTH}")
        if len(value) > MAX_VALUE_LENGTH:
            raise S3Error("InvalidTag", f"The TagValue you have provided is too long, max {MAX_VALUE_LENGTH}")
        if not key or not _valid_chars(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if not _valid_chars(value):
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid", TagKey=key)
        if key.lower().startswith(RESERVED_PREFIX):
            raise S3Error("InvalidTag", limits.reserved, TagKey=key)
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    return dict(sorted(tags.items()))


def parse_document(body: bytes, limits: Limits = OBJECT) -> dict[str, str]:
    """``<Tagging><TagSet><Tag><Key>..</Key><Value>..</Value></Tag>...</TagSet></Tagging>``."""
    root = xml.parse(body)
    if root.tag != "Tagging" or len(root) != 1 or root[0].tag != "TagSet":
        raise S3Error("MalformedXML")
    pairs: list[tuple[str, str]] = []
    for tag in root[0]:
        if tag.tag != "Tag" or sorted(child.tag for child in tag) != ["Key", "Value"]:
            raise S3Error("MalformedXML")
        pairs.append((xml.child_text(tag, "Key") or "", xml.child_text(tag, "Value") or ""))
    return validate(pairs, limits)


def parse_header(value: str | None) -> dict[str, str]:
    """``x-amz-tagging: k1=v1&k2=v2`` (URL-encoded like a query string; ``k`` alone: empty value)."""
    if not value:
        return {}
    pairs = parse_qsl(value, keep_blank_values=True)
    if len({key for key, _ in pairs}) != len(pairs):
        # S3's own answer for the header form (the XML form gets InvalidTag).
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
            "without tag name duplicates.",
            ArgumentName="x-amz-tagging",
        )
    return validate(pairs)


def document(tags: dict[str, str]) -> bytes:
    inner = "".join(f"<Tag>{xml.elem('Key', k)}{xml.elem('Value', v)}</Tag>" for k, v in tags.items())
    return xml.document("Tagging", f"<TagSet>{inner}</TagSet>")
