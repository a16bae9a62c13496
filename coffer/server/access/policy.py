"""The IAM policy language of S3 bucket policies and Coffer's per-key identity policies.

INTERFACE STUB (being implemented): parse + validate once when stored (MalformedPolicy with
a reason, as S3 answers), compile to matchers, evaluate per request without re-parsing.

Request facts are condition-key values: keys lower-cased ("aws:sourceip",
"s3:prefix", "s3:existingobjecttag/<key>" keeps the tag key's case after the slash),
each a list of strings (multi-valued keys such as s3:RequestObjectTagKeys have several).
A key absent from the facts is absent for the Null operator and the ...IfExists forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MAX_POLICY_BYTES = 20 * 1024  # S3's bucket policy size limit

Decision = Literal["allow", "deny"] | None  # None: the policy says nothing (implicit deny)


class MalformedPolicy(Exception):
    """400 MalformedPolicy; ``reason`` is the message S3 gives (e.g. "Policies must be valid JSON
    and the first byte must be '{'", "Policy has invalid action", "Policy has invalid resource")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the request, as policy Principal elements name it.

    ``ids``: every identifier a Principal {"AWS": ...} entry may use for this caller: its
    canonical user id, "arn:aws:iam::<user id>:user/<display name>", "arn:aws:iam::<user id>:root",
    the bare user id; empty for an anonymous caller (who only "*" / {"AWS": "*"} matches).
    """

    ids: frozenset[str]
    anonymous: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated and compiled policy document."""

    text: str  # the document as stored and returned by GetBucketPolicy

    def evaluate(self, caller: Caller | None, action: str, resource: str, facts: Mapping[str, list[str]]) -> Decision:
        """ "deny" when a Deny statement applies, else "allow" when an Allow applies, else None.

        ``caller``: None for an identity policy (no Principal element: it applies to its key's user);
        ``action``: "s3:GetObject"; ``resource``: "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key".
        """
        raise NotImplementedError

    def is_public(self) -> bool:
        """Whether the policy grants access to everyone (AWS's definition: an Allow whose
        Principal is "*" without a condition that fixes who, e.g. aws:SourceIp, aws:userid)."""
        raise NotImplementedError


def parse_policy(text: str | bytes, *, bucket: str | None = None) -> Policy:
    """Validate and compile ``text``; MalformedPolicy otherwise.

    ``bucket``: a bucket policy's bucket (its Resource ARNs must name that bucket, and a
    Principal is required); None for an identity policy (no Principal allowed).
    """
    raise NotImplementedError
