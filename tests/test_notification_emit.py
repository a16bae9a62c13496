"""The emit API work outside a request uses (the lifecycle worker): ``emit_event`` matches the bucket's
stored rules and delivers ``s3:LifecycleExpiration:*`` records like any other event, and
``lifecycle_listener`` turns the worker's expirations into them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from coffer.config import Settings
from coffer.events.notifier import Notifier
from coffer.events.rules import CONFIG_NAME, Rule, Rules
from coffer.events.targets import parse_targets
from coffer.server.auth import DEFAULT_OWNER
from coffer.server.bucket_state import BucketStates
from coffer.server.context import Context
from coffer.server.notify import emit_event, lifecycle_listener
from coffer.storage.memory import MemoryEngine
from tests.webhook_receiver import Receiver


@dataclass(frozen=True)
class Expiration:
    """The fields the lifecycle worker's Expiration carries that the listener reads."""

    bucket: str
    key: str
    version_id: str | None
    delete_marker_created: bool
    rule_id: str = "r"


def test_lifecycle_events_through_emit_event(tmp_path: Path) -> None:
    receiver = Receiver("ok")

    async def run() -> None:
        engine = MemoryEngine(max_memory=1 << 20)
        await engine.start()
        notifier = Notifier(parse_targets({"hook": {"url": receiver.url, "linger": 0}}), tmp_path / "events")
        await notifier.start()
        try:
            await engine.create_bucket("aged", DEFAULT_OWNER.id, "us-east-1")
            rule = Rule("expiry", "Queue", "arn:coffer:sqs:us-east-1::hook", "hook", ("s3:LifecycleExpiration:*",))
            await engine.put_bucket_config("aged", CONFIG_NAME, Rules((rule,)).to_doc())
            ctx = Context(engine, Settings(), DEFAULT_OWNER, buckets=BucketStates(engine), notifier=notifier)
            await emit_event(ctx, "aged", "logs/old", "s3:LifecycleExpiration:Delete", principal_id="s3.amazonaws.com")
            await emit_event(ctx, "aged", "logs/x", "s3:ObjectRemoved:Delete")  # no rule names it
            listener = lifecycle_listener(ctx)
            listener(Expiration("aged", "logs/v", "v1", delete_marker_created=True))
            listener(Expiration("aged", "logs/gone", None, delete_marker_created=False))
            await asyncio.to_thread(receiver.wait_for, 3)
        finally:
            await notifier.close()
            await engine.close()

    try:
        asyncio.run(run())
        assert sorted(receiver.names()) == [
            ("LifecycleExpiration:Delete", "logs/gone"),
            ("LifecycleExpiration:Delete", "logs/old"),
            ("LifecycleExpiration:DeleteMarkerCreated", "logs/v"),
        ]
        by_key = {r["s3"]["object"]["key"]: r for r in receiver.records}
        assert by_key["logs/old"]["userIdentity"]["principalId"] == "s3.amazonaws.com"
        assert by_key["logs/v"]["s3"]["object"]["versionId"] == "v1"
        assert by_key["logs/v"]["userIdentity"]["principalId"] == "s3.amazonaws.com"
        assert by_key["logs/old"]["s3"]["configurationId"] == "expiry"
    finally:
        receiver.close()
