"""Block Public Access on the wire: the PublicAccessBlockConfiguration document and the
server-wide default (``public_access_block`` in coffer/config.py) for buckets without one.

Enforced now: BlockPublicPolicy (PutBucketPolicy of a public policy is refused) and
RestrictPublicBuckets (a public bucket policy's Allows reach only the bucket owner,
coffer/server/access/decide.py). BlockPublicAcls and IgnorePublicAcls are stored and
returned; they take effect once Coffer has ACLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coffer.server import xml
from coffer.server.errors import S3Error

CONFIG_NAME = "public_access_block"  # the bucket configuration document
MAX_DOCUMENT = 16 * 1024
FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True, slots=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def values(self) -> tuple[bool, bool, bool, bool]:
        return (self.block_public_acls, self.ignore_public_acls, self.block_public_policy, self.restrict_public_buckets)

    def to_doc(self) -> dict[str, bool]:
        return dict(zip(FIELDS, self.values(), strict=True))

    @classmethod
    def from_doc(cls, doc: Any) -> PublicAccessBlock | None:
        """The stored document; None without one (or an unreadable one)."""
        if not isinstance(doc, dict):
            return None
        return cls(*(bool(doc.get(name, False)) for name in FIELDS))


ALL = PublicAccessBlock(True, True, True, True)
# The server-wide default setting -> the configuration of buckets without their own.
DEFAULTS: dict[str, PublicAccessBlock | None] = {"none": None, "all": ALL}


def parse_configuration(body: bytes) -> PublicAccessBlock:
    """A PublicAccessBlockConfiguration document. A missing element is false (as S3);
    anything but true/false, an unknown or repeated element, another root: MalformedXML."""
    doc = xml.parse(body)
    if doc.tag != "PublicAccessBlockConfiguration":
        raise S3Error("MalformedXML")
    seen: dict[str, bool] = {}
    for child in doc:
        if child.tag not in FIELDS or child.tag in seen or len(child):
            raise S3Error("MalformedXML")
        value = (child.text or "").strip().lower()
        if value not in ("true", "false"):
            raise S3Error("MalformedXML")
        seen[child.tag] = value == "true"
    return PublicAccessBlock(*(seen.get(name, False) for name in FIELDS))


def render(block: PublicAccessBlock) -> bytes:
    inner = "".join(
        xml.elem(name, "true" if value else "false") for name, value in zip(FIELDS, block.values(), strict=True)
    )
    return xml.document("PublicAccessBlockConfiguration", inner)
