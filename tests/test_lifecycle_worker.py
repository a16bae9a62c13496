"""The lifecycle worker (coffer/lifecycle/worker.py) driven directly against every engine kind, with
a clock the test moves (no sleeps): expirations, noncurrent versions, delete markers, transitions,
aborted uploads, Object Lock winning, tag filters, and a pass that stops half-way and resumes.
Also the engine operation it needs: put_object_storage_class."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from coffer.lifecycle.lease import FileLease
from coffer.lifecycle.worker import CURSOR_NAME, Expiration, LifecycleObserver, LifecycleWorker
from coffer.storage import errors
from coffer.storage import lifecycle as lc
from coffer.storage.api import NULL_VERSION, Engine, ObjectLock
from tests.engines import ENGINE_OWNER, put

DAY = 100.0  # one lifecycle "day" in these tests: the clock jumps in days


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def days(self, n: float) -> None:
        self.now += n * DAY


class Counting(LifecycleObserver):
    def __init__(self) -> None:
        self.actions: dict[str, int] = {}
        self.skips: dict[str, int] = {}

    def acted(self, action: str, count: int = 1) -> None:
        self.actions[action] = self.actions.get(action, 0) + count

    def skipped(self, reason: str, count: int = 1) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + count


def worker(engine: Engine, clock: Clock, page_size: int = 1000) -> tuple[LifecycleWorker, Counting, list[Expiration]]:
    seen = Counting()
    w = LifecycleWorker(engine, day_seconds=DAY, page_size=page_size, observer=seen, clock=clock)
    events: list[Expiration] = []
    w.add_listener(events.append)
    return w, seen, events


async def configure(engine: Engine, bucket: str, *rules: lc.Rule) -> None:
    await engine.put_bucket_config(bucket, lc.CONFIG_NAME, lc.Configuration(rules).to_doc())


async def keys(engine: Engine, bucket: str) -> list[str]:
    return [e.key for e in (await engine.list_objects(bucket)).entries]


async def versions(engine: Engine, bucket: str) -> list[tuple[str, bool, bool]]:
    page = await engine.list_object_versions(bucket)
    return [(e.key, e.is_latest, e.delete_marker) for e in page.entries]


def rule(rule_id: str = "r", prefix: str = "", **fields: Any) -> lc.Rule:
    return lc.Rule(rule_id, True, lc.Filter(prefix=prefix), **fields)


async def test_expiration_by_days_unversioned(engine: Engine, plain: str) -> None:
    clock = Clock()
    for key in ("old/a", "old/b", "keep/c"):
        await put(engine, plain, key, b"x")
    await configure(engine, plain, rule("one", "old/", expiration_days=1), rule("five", "keep/", expiration_days=5))
    w, seen, events = worker(engine, clock)
    clock.days(0.5)
    await w.run_pass()
    assert await keys(engine, plain) == ["keep/c", "old/a", "old/b"]
    clock.days(1)
    await w.run_pass()
    assert await keys(engine, plain) == ["keep/c"]
    assert seen.actions == {lc.EXPIRE: 2}
    assert {(e.key, e.version_id, e.delete_marker_created, e.rule_id) for e in events} == {
        ("old/a", None, False, "one"),
        ("old/b", None, False, "one"),
    }
    await w.run_pass()  # nothing more is due: a repeated pass does nothing
    assert seen.actions == {lc.EXPIRE: 2}
    clock.days(5)
    await w.run_pass()
    assert await keys(engine, plain) == []
    assert await engine.get_bucket_config(plain, CURSOR_NAME) is None  # finished passes leave no cursor


async def test_expiration_by_date(engine: Engine, plain: str) -> None:
    clock = Clock()
    await put(engine, plain, "past/a", b"x")
    await put(engine, plain, "future/b", b"x")
    midnight = lambda t: float(int(t // 86400) * 86400)  # noqa: E731
    await configure(
        engine,
        plain,
        rule("past", "past/", expiration_date=midnight(clock.now) - 86400),
        rule("future", "future/", expiration_date=midnight(clock.now) + 10 * 86400),
    )
    w, _, _ = worker(engine, clock)
    await w.run_pass()
    assert await keys(engine, plain) == ["future/b"]


async def test_versioned_current_expiry_makes_a_delete_marker_then_noncurrent_expiry(
    engine: Engine, versioned: str
) -> None:
    clock = Clock()
    await put(engine, versioned, "k", b"one")
    await put(engine, versioned, "k", b"two")
    await configure(engine, versioned, rule(expiration_days=1, noncurrent_days=2))
    w, seen, events = worker(engine, clock)
    clock.days(1.5)
    await w.run_pass()
    assert await versions(engine, versioned) == [("k", True, True), ("k", False, False), ("k", False, False)]
    assert [e.delete_marker_created for e in events] == [True]
    assert events[0].version_id is not None and events[0].version_id != NULL_VERSION
    await w.run_pass()  # the latest is a marker now: no second marker
    assert seen.actions == {lc.EXPIRE: 1}
    clock.days(2)
    await w.run_pass()  # both noncurrent versions are 2 days noncurrent
    assert seen.actions[lc.NONCURRENT_EXPIRE] == 2
    clock.days(1)
    await w.run_pass()  # the marker is alone: an Expiration in Days removes it too
    assert await versions(engine, versioned) == []
    assert seen.actions[lc.DELETE_MARKER] == 1


async def test_newer_noncurrent_versions_are_kept(engine: Engine, versioned: str) -> None:
    clock = Clock()
    for i in range(10):
        await put(engine, versioned, "k", b"v%d" % i)
    await configure(engine, versioned, rule(noncurrent_days=1, newer_noncurrent=5))
    w, seen, _ = worker(engine, clock, page_size=3)  # keys span pages: the per-key count carries over
    clock.days(2)
    await w.run_pass()
    assert len(await versions(engine, versioned)) == 6
    assert seen.actions == {lc.NONCURRENT_EXPIRE: 4}


async def test_expired_object_delete_marker(engine: Engine, versioned: str) -> None:
    clock = Clock()
    await put(engine, versioned, "alone", b"x")
    await engine.delete_object(versioned, "alone")
    await put(engine, versioned, "other/kept", b"x")
    await engine.delete_object(versioned, "other/kept")
    await configure(engine, versioned, rule(prefix="alone", noncurrent_days=1, expired_object_delete_marker=True))
    w, _, _ = worker(engine, clock)
    clock.days(2)
    await w.run_pass()  # the noncurrent version goes; the marker is then alone ...
    await w.run_pass()  # ... and goes on the next pass
    assert await versions(engine, versioned) == [("other/kept", True, True), ("other/kept", False, False)]


async def test_transitions_change_the_storage_class(engine: Engine, versioned: str) -> None:
    clock = Clock()
    old = await put(engine, versioned, "k", b"one")
    await put(engine, versioned, "k", b"two")
    transitions = (lc.Transition("STANDARD_IA", days=1), lc.Transition("GLACIER", days=7))
    noncurrent = (lc.Transition("ONEZONE_IA", days=1),)
    await configure(engine, versioned, rule(transitions=transitions, noncurrent_transitions=noncurrent))
    w, seen, _ = worker(engine, clock)
    await w.run_pass()
    assert (await engine.head_object(versioned, "k")).storage_class == "STANDARD"
    clock.days(2)
    await w.run_pass()
    assert (await engine.head_object(versioned, "k")).storage_class == "STANDARD_IA"
    assert (await engine.head_object(versioned, "k", version_id=old.version_id)).storage_class == "ONEZONE_IA"
    listed = (await engine.list_object_versions(versioned)).entries
    assert [e.storage_class for e in listed] == ["STANDARD_IA", "ONEZONE_IA"]
    assert (await engine.list_objects(versioned)).entries[0].storage_class == "STANDARD_IA"
    await w.run_pass()
    assert seen.actions == {lc.TRANSITION: 1, lc.NONCURRENT_TRANSITION: 1}
    clock.days(6)
    await w.run_pass()
    current = await engine.head_object(versioned, "k")
    assert (current.storage_class, current.size) == ("GLACIER", 3)


async def test_abort_incomplete_multipart_uploads(engine: Engine, plain: str) -> None:
    clock = Clock()
    await engine.create_multipart_upload(plain, "test1/a", headers={})
    kept = await engine.create_multipart_upload(plain, "test2/b", headers={})
    await configure(engine, plain, rule(prefix="test1/", abort_days=2))
    w, seen, _ = worker(engine, clock)
    clock.days(1)
    await w.run_pass()
    assert len((await engine.list_multipart_uploads(plain)).uploads) == 2
    clock.days(2)
    await w.run_pass()
    assert [u.upload_id for u in (await engine.list_multipart_uploads(plain)).uploads] == [kept.upload_id]
    assert seen.actions == {lc.ABORT_UPLOAD: 1}


async def test_object_lock_wins(engine: Engine) -> None:
    clock = Clock()
    await engine.create_bucket("locked", ENGINE_OWNER, "us-east-1", object_lock=True)
    held = await put(engine, "locked", "held", b"x", lock=ObjectLock(legal_hold=True))
    retained = ObjectLock("COMPLIANCE", clock.now + 100 * DAY)
    await put(engine, "locked", "retained", b"x", lock=retained)
    await put(engine, "locked", "retained", b"newer")
    await put(engine, "locked", "free", b"x")
    await configure(engine, "locked", rule(expiration_days=1, noncurrent_days=1))
    w, seen, _ = worker(engine, clock)
    clock.days(3)
    await w.run_pass()
    await w.run_pass()
    # The held current version keeps no marker over it; the retained noncurrent version stays;
    # the unprotected ones are hidden by a marker (and then removed, being noncurrent).
    assert (await engine.head_object("locked", "held")).version_id == held.version_id
    assert [(k, m) for k, _, m in await versions(engine, "locked") if k == "retained"] == [
        ("retained", True),
        ("retained", False),
    ]
    assert seen.skips["locked"] >= 2
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object("locked", "free")


async def test_tag_filters_read_the_version_tags(engine: Engine, plain: str) -> None:
    clock = Clock()
    await put(engine, plain, "days1/tom", b"x", tags={"tom": "sawyer"})
    await put(engine, plain, "days1/huck", b"x", tags={"tom": "sawyer", "huck": "finn"})
    await put(engine, plain, "days1/none", b"x")
    tags = (("tom", "sawyer"), ("huck", "finn"))
    await configure(engine, plain, lc.Rule("t", True, lc.Filter("days1/", tags), expiration_days=1))
    w, _, _ = worker(engine, clock)
    clock.days(2)
    await w.run_pass()
    assert await keys(engine, plain) == ["days1/none", "days1/tom"]


async def test_size_filters(engine: Engine, versioned: str) -> None:
    clock = Clock()
    await put(engine, versioned, "small", b"s" * 1000)
    await put(engine, versioned, "big", b"b" * 3000)
    await configure(engine, versioned, lc.Rule("gt", True, lc.Filter(size_gt=2000), expiration_days=1))
    w, _, _ = worker(engine, clock)
    clock.days(2)
    await w.run_pass()
    assert await keys(engine, versioned) == ["small"]


async def test_disabled_rules_and_no_configuration_do_nothing(engine: Engine, plain: str) -> None:
    clock = Clock()
    await put(engine, plain, "a", b"x")
    w, seen, _ = worker(engine, clock)
    clock.days(10)
    await w.run_pass()
    await configure(engine, plain, lc.Rule("off", False, lc.Filter(), expiration_days=1))
    await w.run_pass()
    assert await keys(engine, plain) == ["a"] and seen.actions == {}


class Crashing(Exception):
    pass


async def test_a_pass_stopped_half_way_resumes_and_repeats_nothing_harmful(engine: Engine, versioned: str) -> None:
    """A pass that dies after some pages leaves its cursor; the next pass starts there, and the page
    that was in flight is applied again harmlessly: every expired version is expired exactly once."""
    clock = Clock()
    for i in range(12):
        await put(engine, versioned, f"k{i:02d}", b"x")
    await configure(engine, versioned, rule(expiration_days=1))
    clock.days(2)
    w, seen, _ = worker(engine, clock, page_size=5)
    real_delete = engine.delete_objects
    calls = 0

    async def dying_after_two(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            await real_delete(*args, **kwargs)  # applied, but the process dies before the cursor moves
            raise Crashing
        return await real_delete(*args, **kwargs)

    w.engine = _Patched(engine, delete_objects=dying_after_two)
    with pytest.raises(Crashing):
        await w.run_bucket(versioned)
    cursor = await engine.get_bucket_config(versioned, CURSOR_NAME)
    assert cursor is not None and cursor["key"] == "k09"  # two pages of five done
    resumed, seen2, _ = worker(engine, clock, page_size=5)
    await resumed.run_pass()
    assert await keys(engine, versioned) == []
    markers = [v for v in await versions(engine, versioned) if v[2]]
    assert len(markers) == 12  # one delete marker per key, none twice
    assert seen.actions == {lc.EXPIRE: 10} and seen2.actions == {}  # the repeated page found markers
    assert await engine.get_bucket_config(versioned, CURSOR_NAME) is None


class _Patched:
    """The engine with some methods replaced (to stop a pass at a chosen point)."""

    def __init__(self, engine: Engine, **methods: Any) -> None:
        self._engine = engine
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods.get(name) or getattr(self._engine, name)


async def test_put_object_storage_class(engine: Engine, versioned: str) -> None:
    one = await put(engine, versioned, "k", b"one", tags={"a": "b"})
    await put(engine, versioned, "k", b"two")
    changed = await engine.put_object_storage_class(versioned, "k", "GLACIER", version_id=one.version_id)
    assert changed.storage_class == "GLACIER"
    again = await engine.head_object(versioned, "k", version_id=one.version_id)
    assert (again.storage_class, again.etag, again.last_modified, again.tags) == (
        "GLACIER",
        one.etag,
        one.last_modified,
        {"a": "b"},
    )
    assert (await engine.head_object(versioned, "k")).storage_class == "STANDARD"
    with pytest.raises(errors.PreconditionFailed):
        await engine.put_object_storage_class(versioned, "k", "STANDARD_IA", version_id=one.version_id, if_match="x")
    with pytest.raises(errors.NoSuchVersion):
        await engine.put_object_storage_class(versioned, "k", "STANDARD_IA", version_id="nope" * 8)


def test_one_lease_holder_per_data_directory(tmp_path: Path) -> None:
    """Workers sharing a data directory: the first to take the lease runs passes; the others
    get it only once it is released (the kernel releases it when the holder dies)."""
    first, second = FileLease(tmp_path), FileLease(tmp_path)
    assert first.acquire() and first.acquire()  # held: asking again is free
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
