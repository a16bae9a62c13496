"""Re-wrapping stored data keys after a key rotation (issue 12): ``rewrap_all`` over a disk and a
persistent memory engine built as the server builds them, and ``coffer kms rewrap``.

Objects are written as the server writes them (coffer/server/encryption.py: new_document and
encrypting) with a LocalKeyService in the test's data directory, and read back by decrypting.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coffer.cli import main
from coffer.config import Settings, load_settings
from coffer.encryption import rewrap as rewrap_module
from coffer.encryption.kms import SSE_S3_KEY, LocalKeyService, inspect_wrapped
from coffer.encryption.rewrap import rewrap_all
from coffer.server import encryption, sse
from coffer.server.app import build_engine
from coffer.server.runner import LOCK_NAME
from coffer.storage.api import VERSIONING_ENABLED, Engine
from tests.helpers import chunks

OWNER = "owner-1"
CUSTOMER = sse.CustomerKey(bytes(range(32)), "md5-of-the-key")
KINDS = {
    "disk": {"storage": "disk"},
    "memory-wal": {"storage": "memory", "memory_persistence": True},
}


def settings_for(data_dir: Path, kind: str) -> Settings:
    return load_settings(overrides={"data_dir": str(data_dir), "fsync": "never", **KINDS[kind]}, environ={})


async def put_sse(
    engine: Engine, keys: LocalKeyService, bucket: str, key: str, data: bytes, request: sse.SseRequest
) -> str:
    doc, data_key = encryption.new_document(lambda: keys, request, bucket, key)
    stored, encoding = encryption.encrypting(
        chunks(data, 4096), doc, data_key, algorithms=(), want_sha256=False, verify=None
    )
    info = await engine.put_object(bucket, key, stored, headers={}, encoding=encoding)
    return info.version_id


async def stored_bytes(engine: Engine, bucket: str, key: str, version_id: str) -> bytes:
    opened = await engine.open_object(bucket, key, version_id=version_id)
    try:
        return b"".join([piece async for piece in opened.stream(0, None)])
    finally:
        opened.close()


async def plaintext(engine: Engine, keys: LocalKeyService, bucket: str, key: str, version_id: str) -> bytes:
    opened = await engine.open_object(bucket, key, version_id=version_id)
    info = opened.info
    assert info.encoding is not None
    customer = CUSTOMER if info.encoding["a"] == encryption.SSE_C else None
    data_key = encryption.data_key_of(lambda: keys, info.encoding, customer, bucket, key)
    try:
        return b"".join([p async for p in encryption.decrypting(opened.stream, info, data_key, 0, info.size)])
    finally:
        opened.close()


def wrapped_of(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc["w"])


BODIES = {"s3-small": b"small body", "s3-large": bytes(range(256)) * 1500, "kms": b"kms body " * 100}


async def populate(engine: Engine, keys: LocalKeyService) -> dict[tuple[str, str, str], bytes]:
    """Versions of every kind, in two buckets; (bucket, key, version id) -> plaintext of the encrypted ones."""
    keys.create_key(alias="app")
    await engine.create_bucket("b", OWNER, "us-east-1")
    await engine.put_bucket_versioning("b", VERSIONING_ENABLED)
    await engine.create_bucket("c", OWNER, "us-east-1")
    written: dict[tuple[str, str, str], bytes] = {}
    for key in ("s3-small", "s3-large"):
        for n in range(2):  # two versions each
            data = BODIES[key] + bytes([n])
            written[("b", key, await put_sse(engine, keys, "b", key, data, sse.SseRequest(algorithm=sse.AES256)))] = (
                data
            )
    kms = sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/app", context={"team": "a"})
    written[("c", "kms", await put_sse(engine, keys, "c", "kms", BODIES["kms"], kms))] = BODIES["kms"]
    await put_sse(engine, keys, "c", "ssec", b"customer keyed", sse.SseRequest(customer=CUSTOMER))
    await engine.put_object("c", "plain", chunks(b"as sent", 10), headers={})
    await put_sse(engine, keys, "b", "gone", b"x", sse.SseRequest(algorithm=sse.AES256))
    await engine.delete_object("b", "gone")  # a delete marker above an encrypted version
    written[("b", "gone", (await engine.list_object_versions("b", prefix="gone")).entries[1].version_id)] = b"x"
    return written


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pages of two versions: the walk must page through a key's versions and across keys."""
    monkeypatch.setattr(rewrap_module, "_PAGE", 2)
    yield


def test_the_sse_c_mode_is_the_servers() -> None:
    assert rewrap_module.SSE_C == encryption.SSE_C


def test_rewrap_all_after_rotation(tmp_path: Path, kind: str, small_pages: None) -> None:
    settings = settings_for(tmp_path, kind)
    keys = LocalKeyService.from_settings(settings)

    async def scenario() -> None:
        engine = build_engine(settings)
        await engine.start()
        try:
            written = await populate(engine, keys)
            heads = {v: await engine.head_object(*v[:2], version_id=v[2]) for v in written}
            stored = {v: await stored_bytes(engine, *v) for v in written}
            data_keys = {
                v: keys.decrypt_data_key(wrapped_of(h.encoding or {}), (h.encoding or {})["c"])
                for v, h in heads.items()
            }
            assert {inspect_wrapped(wrapped_of(h.encoding or {})).key_version for h in heads.values()} == {1}
            ssec = (await engine.head_object("c", "ssec")).encoding

            keys.rotate()
            keys.rotate("alias/app")
            dry = await rewrap_all(engine, keys, dry_run=True)
            assert (dry.examined, dry.rewrapped, dry.current, dry.unencrypted, dry.skipped, dry.failed) == (
                8,
                6,
                0,
                1,
                1,
                0,
            )
            for v, head in heads.items():
                assert (await engine.head_object(*v[:2], version_id=v[2])).encoding == head.encoding

            seen: list[str] = []
            report = await rewrap_all(engine, keys, progress=lambda outcome, *_: seen.append(outcome))
            assert (report.examined, report.rewrapped, report.current, report.skipped, report.failed) == (8, 6, 0, 1, 0)
            assert sorted(seen) == sorted(["rewrapped"] * 6 + ["unencrypted", "skipped"])
            await check_rewrapped(engine, keys, written, heads, stored, data_keys)
            assert (await engine.head_object("c", "ssec")).encoding == ssec
            assert (
                await plaintext(engine, keys, "c", "ssec", (await engine.head_object("c", "ssec")).version_id)
                == b"customer keyed"
            )

            again = await rewrap_all(engine, keys)
            assert (again.examined, again.rewrapped, again.current, again.skipped) == (8, 0, 6, 1)
            await engine.close()

            engine = build_engine(settings)  # the new wraps are durable
            await engine.start()
            await check_rewrapped(engine, keys, written, heads, stored, data_keys)
        finally:
            await engine.close()

    asyncio.run(scenario())


async def check_rewrapped(
    engine: Engine,
    keys: LocalKeyService,
    written: dict[tuple[str, str, str], bytes],
    heads: dict[tuple[str, str, str], Any],
    stored: dict[tuple[str, str, str], bytes],
    data_keys: dict[tuple[str, str, str], bytes],
) -> None:
    for v, data in written.items():
        head = await engine.head_object(v[0], v[1], version_id=v[2])
        doc, old = head.encoding or {}, heads[v].encoding or {}
        assert inspect_wrapped(wrapped_of(doc)).key_version == 2, v
        assert {k: x for k, x in doc.items() if k != "w"} == {k: x for k, x in old.items() if k != "w"}
        assert (head.size, head.etag, head.last_modified, head.stored_size, head.checksums) == (
            heads[v].size,
            heads[v].etag,
            heads[v].last_modified,
            heads[v].stored_size,
            heads[v].checksums,
        )
        assert keys.decrypt_data_key(wrapped_of(doc), doc["c"]) == data_keys[v]
        assert await stored_bytes(engine, *v) == stored[v]
        assert await plaintext(engine, keys, *v) == data


def test_one_failing_version_does_not_stop_the_walk(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "disk")
    keys = LocalKeyService.from_settings(settings)

    async def scenario() -> None:
        engine = build_engine(settings)
        await engine.start()
        try:
            keys.create_key(alias="off")
            await engine.create_bucket("b", OWNER, "us-east-1")
            for key in ("a", "c"):
                await put_sse(engine, keys, "b", key, b"data", sse.SseRequest(algorithm=sse.AES256))
            off = sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/off")
            version = await put_sse(engine, keys, "b", "b-off", b"data", off)
            keys.rotate()
            keys.rotate("alias/off")
            keys.disable_key("alias/off")
            report = await rewrap_all(engine, keys)
            assert (report.examined, report.rewrapped, report.failed) == (3, 2, 1)
            failure = report.failures[0]
            assert (failure.bucket, failure.key, failure.version_id) == ("b", "b-off", version)
            assert failure.reason.startswith("KMS.DisabledException")
            doc = (await engine.head_object("b", "b-off")).encoding or {}
            assert inspect_wrapped(wrapped_of(doc)).key_version == 1
            assert "1 failed" in report.summary()
        finally:
            await engine.close()

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- the CLI
def rewrap_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["kms", "rewrap", *args, "--data-dir", str(data_dir)], env=env or {})
    return result.exit_code, result.output


@pytest.fixture
def no_coffer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("COFFER_")]:
        monkeypatch.delenv(name)


def env_of(kind: str) -> dict[str, str]:
    env = {"COFFER_FSYNC": "never", "COFFER_STORAGE": KINDS[kind]["storage"]}
    if KINDS[kind].get("memory_persistence"):
        env["COFFER_MEMORY_PERSISTENCE"] = "true"
    return env


def test_cli_rewraps_and_refuses_while_a_server_holds_the_directory(
    tmp_path: Path, kind: str, no_coffer_env: None
) -> None:
    settings = settings_for(tmp_path, kind)
    keys = LocalKeyService.from_settings(settings)

    async def write() -> str:
        engine = build_engine(settings)
        await engine.start()
        try:
            await engine.create_bucket("b", OWNER, "us-east-1")
            await put_sse(engine, keys, "b", "k", b"body", sse.SseRequest(algorithm=sse.AES256))
            await put_sse(engine, keys, "b", "ssec", b"body", sse.SseRequest(customer=CUSTOMER))
            return str((await engine.head_object("b", "k")).encoding)
        finally:
            await engine.close()

    async def wrap_version() -> int:
        engine = build_engine(settings)
        await engine.start()
        try:
            return inspect_wrapped(wrapped_of((await engine.head_object("b", "k")).encoding or {})).key_version
        finally:
            await engine.close()

    asyncio.run(write())
    keys.rotate(SSE_S3_KEY)
    env = env_of(kind)

    store = settings.store_dir()
    assert store is not None
    fd = os.open(os.path.join(store, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as a running server's processes hold it
        os.pwrite(fd, b"4242\n", 0)
        code, out = rewrap_cli(tmp_path, env=env)
        assert code != 0 and "in use by another coffer server (PID 4242)" in out, out
        assert len(out.strip().splitlines()) == 1
    finally:
        os.close(fd)
    assert asyncio.run(wrap_version()) == 1

    code, out = rewrap_cli(tmp_path, "--dry-run", env=env)
    assert code == 0, out
    assert "dry run: 2 object version(s) examined: would re-wrap 1, 0 already current" in out
    assert "1 skipped (SSE-C), 0 failed" in out
    assert asyncio.run(wrap_version()) == 1

    code, out = rewrap_cli(tmp_path, env=env)
    assert code == 0 and "2 object version(s) examined: re-wrapped 1, 0 already current" in out, out
    assert asyncio.run(wrap_version()) == 2
    code, out = rewrap_cli(tmp_path, env=env)
    assert code == 0 and "re-wrapped 0, 1 already current" in out, out

    # The lock is free again once the command is done: a server could take it.
    fd = os.open(os.path.join(store, LOCK_NAME), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_cli_failures_exit_non_zero(tmp_path: Path, no_coffer_env: None) -> None:
    settings = settings_for(tmp_path, "disk")
    keys = LocalKeyService.from_settings(settings)

    async def write() -> None:
        engine = build_engine(settings)
        await engine.start()
        try:
            keys.create_key(alias="off")
            await engine.create_bucket("b", OWNER, "us-east-1")
            await put_sse(engine, keys, "b", "k", b"body", sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/off"))
        finally:
            await engine.close()

    asyncio.run(write())
    keys.rotate("alias/off")
    keys.disable_key("alias/off")
    code, out = rewrap_cli(tmp_path, env=env_of("disk"))
    assert code == 1, out
    assert "failed: b/k version null: KMS.DisabledException" in out
    assert "re-wrapped 0" in out and "1 failed" in out


def test_cli_with_nothing_to_rewrap(tmp_path: Path, no_coffer_env: None) -> None:
    code, out = rewrap_cli(tmp_path / "missing")
    assert code != 0 and "does not exist" in out
    code, out = rewrap_cli(tmp_path, env={"COFFER_STORAGE": "memory"})
    assert code == 0 and "memory storage without persistence" in out and "nothing to re-wrap" in out
    code, out = rewrap_cli(tmp_path, env={"COFFER_STORAGE": "memory", "COFFER_MEMORY_PERSISTENCE": "true"})
    assert code == 0 and "no stored data" in out
    code, out = rewrap_cli(tmp_path)  # disk, but no key service was ever used here
    assert code == 0 and "key service was never used" in out
