"""What object requests need to know about their bucket, without a lookup per request.

Every PutObject asks whether the bucket has Object Lock with a default retention, and
every read of a null version whether the bucket was ever versioned (S3 then reports
``x-amz-version-id: null``). Asked of the engine each time, that is a metadata read per
request (measured: about 4 % of a small GET on the disk engine); the answers change
rarely. So each process keeps them for ``TTL_SECONDS`` and forgets a bucket at once
when this process changes its versioning, its Object Lock configuration or deletes it.
The bucket policy is kept the same way, compiled once per read: the auth gate evaluates it
on every request of the bucket; so are its Block Public Access configuration (RestrictPublicBuckets
changes what the policy grants), its Object Ownership (writes with ACL headers check it),
its ACL (what it grants other users and anonymous callers), its lifecycle rules (x-amz-expiration)
and its notification rules (every write of the bucket matches them: coffer/server/notify.py).
Another worker's change reaches this one within the TTL: S3 documents bucket configuration as eventually consistent too.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from coffer.events.rules import CONFIG_NAME as NOTIFICATION_CONFIG
from coffer.events.rules import Rules
from coffer.server import acls, ownership, public_access
from coffer.server.access.acl import Acl
from coffer.server.access.policy import MalformedPolicy, Policy, parse_policy
from coffer.server.public_access import PublicAccessBlock
from coffer.server.sse import BucketEncryption
from coffer.storage import lifecycle
from coffer.storage.api import BucketInfo, Engine

log = logging.getLogger("coffer.server")

CONFIG_NAME = "object_lock"  # the bucket configuration document of the default retention (object_lock.py)
POLICY_CONFIG = "policy"  # the bucket policy document (its text), handlers/bucket_policy.py
ENCRYPTION_CONFIG = "encryption"  # the default encryption document (sse.BucketEncryption.to_doc)

TTL_SECONDS = 1.0
_MAX_ENTRIES = 4096


@dataclass(slots=True)
class BucketState:
    info: BucketInfo
    # The "object_lock" configuration document (a default retention); None without Object Lock.
    lock_config: Any
    seen: float  # time.monotonic() when read
    # The bucket policy, compiled once per read (every request of the bucket evaluates it).
    policy: BucketPolicy | None = None
    # Block Public Access in effect: the bucket's own configuration, else the server default.
    public_access_block: PublicAccessBlock | None = None
    # The ObjectOwnership of its ownership controls (None: never set).
    ownership: str | None = None
    # Its ACL (the default, private to the owner, when none was set).
    acl: Acl | None = None
    # Some object in it is owned by another user (acls.FOREIGN_CONFIG).
    foreign_objects: bool = False
    # Its default encryption (Put/GetBucketEncryption); None: none.
    encryption: BucketEncryption | None = None
    # Its lifecycle rules (every object response's x-amz-expiration); None: none.
    lifecycle: lifecycle.Configuration | None = None
    # Its event notification rules (Put/GetBucketNotificationConfiguration); None: none.
    notification: Rules | None = None


class BucketStates:
    def __init__(
        self, engine: Engine, ttl: float = TTL_SECONDS, default_block: PublicAccessBlock | None = None
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.default_block = default_block  # Settings.public_access_block, for buckets without their own
        self._states: dict[str, BucketState] = {}

    async def get(self, bucket: str) -> BucketState:
        """The bucket's state (NoSuchBucket when there is none), at most ``ttl`` seconds old."""
        state = self.fresh(bucket)
        if state is not None:
            return state
        now = time.monotonic()
        info = await self.engine.get_bucket(bucket)
        lock_config = await self.engine.get_bucket_config(bucket, CONFIG_NAME) if info.object_lock else None
        block = public_access.PublicAccessBlock.from_doc(
            await self.engine.get_bucket_config(bucket, public_access.CONFIG_NAME)
        )
        if block is None:
            block = self.default_block
        restrict = block is not None and block.restrict_public_buckets
        policy = compile_stored(bucket, await self.engine.get_bucket_config(bucket, POLICY_CONFIG), restrict)
        owned = await self.engine.get_bucket_config(bucket, ownership.CONFIG_NAME)
        acl = acls.stored_bucket_acl(await self.engine.get_bucket_config(bucket, acls.CONFIG_NAME), info.owner)
        foreign = bool(await self.engine.get_bucket_config(bucket, acls.FOREIGN_CONFIG))
        owned = owned if isinstance(owned, str) else None
        encryption = BucketEncryption.from_doc(await self.engine.get_bucket_config(bucket, ENCRYPTION_CONFIG))
        rules = lifecycle.Configuration.from_doc(await self.engine.get_bucket_config(bucket, lifecycle.CONFIG_NAME))
        notification = Rules.from_doc(await self.engine.get_bucket_config(bucket, NOTIFICATION_CONFIG))
        state = BucketState(info, lock_config, now, policy, block, owned, acl, foreign, encryption, rules, notification)
        if len(self._states) >= _MAX_ENTRIES:
            self._states.clear()
        self._states[bucket] = state
        return state

    def fresh(self, bucket: str) -> BucketState | None:
        """The bucket's state when it is cached and fresh, without awaiting anything; else None."""
        state = self._states.get(bucket)
        if state is not None and time.monotonic() - state.seen < self.ttl:
            return state
        return None

    def forget(self, bucket: str) -> None:
        """This process changed the bucket: the next request reads it again."""
        self._states.pop(bucket, None)


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    """A bucket policy compiled twice: whole, and its Deny statements alone (None: it has none).

    The bucket owner without an identity policy is allowed unless a Deny applies, so its
    requests evaluate only the Deny statements (often none at all): a policy of grants to
    others costs the owner nothing.
    """

    policy: Policy
    denies: Policy | None
    # RestrictPublicBuckets and the policy is public: its Allows reach only the bucket owner.
    restricted: bool = False


def compile_stored(bucket: str, text: Any, restrict: bool = False) -> BucketPolicy | None:
    """The stored policy of ``bucket``, compiled; None without one. ``restrict``: the bucket
    has RestrictPublicBuckets (which matters only when the policy is public)."""
    if not text:
        return None
    try:
        policy = parse_policy(str(text), bucket=bucket)
        return BucketPolicy(policy, _denies(bucket, str(text)), restrict and policy.is_public())
    except MalformedPolicy as exc:
        # Validated when stored; only a newer Coffer that accepts less could get here. Denying
        # everything would lock out the owner, who can still replace or delete the policy.
        log.error("bucket %s: stored policy no longer valid (%s): ignored", bucket, exc.reason)
        return None


def _denies(bucket: str, text: str) -> Policy | None:
    """The policy of only the Deny statements of the (valid) policy ``text``."""
    doc = json.loads(text)
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    denies = [s for s in statements if s.get("Effect") == "Deny"]
    if not denies:
        return None
    return parse_policy(json.dumps({**doc, "Statement": denies}), bucket=bucket)
