"""The per-process cache of bucket versioning / Object Lock state (coffer/server/bucket_state.py)."""

from __future__ import annotations

import pytest

from coffer.server.bucket_state import CONFIG_NAME, BucketStates
from coffer.storage import errors
from coffer.storage.api import VERSIONING_ENABLED
from coffer.storage.memory import MemoryEngine


async def test_cached_until_forgotten_or_stale() -> None:
    engine = MemoryEngine(max_memory=1 << 20)
    await engine.start()
    try:
        await engine.create_bucket("b", "owner", "us-east-1")
        states = BucketStates(engine, ttl=3600)
        assert (await states.get("b")).info.versioning is None
        await engine.put_bucket_versioning("b", VERSIONING_ENABLED)
        assert (await states.get("b")).info.versioning is None  # cached: another process's change, within the TTL
        states.forget("b")  # this process's change
        assert (await states.get("b")).info.versioning == VERSIONING_ENABLED
        # The default retention is read only for buckets with Object Lock.
        assert (await states.get("b")).lock_config is None
        await engine.enable_object_lock("b")
        await engine.put_bucket_config("b", CONFIG_NAME, {"mode": "GOVERNANCE", "days": 1})
        fresh = BucketStates(engine, ttl=0)  # every lookup reads again
        assert (await fresh.get("b")).lock_config == {"mode": "GOVERNANCE", "days": 1}
        with pytest.raises(errors.NoSuchBucket):
            await states.get("missing")
    finally:
        await engine.close()
