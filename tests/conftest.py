from __future__ import annotations

import asyncio
import inspect
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coffer.storage.api import VERSIONING_ENABLED, Engine
from tests import server_process
from tests.engines import ENGINE_OWNER, ENGINES, EngineKind
from tests.server_process import ServerProcess

# Fixtures for an authenticated server (auth_server, main_s3, alt_s3, main_bucket).
pytest_plugins = ["tests.auth_support"]

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the protocol tests (fsync never: test data is throwaway).

    COFFER_TEST_STORAGE=memory runs them against the memory engine (with its write-ahead log)
    instead of the disk engine: ``COFFER_TEST_STORAGE=memory pytest tests/test_versioning.py``.
    """
    storage = os.environ.get("COFFER_TEST_STORAGE", "disk")
    args = ("--storage", "memory", "--memory-persistence", "true") if storage == "memory" else ()
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data", "--fsync", "never", *args).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def s3(server: ServerProcess):  # type: ignore[no-untyped-def]
    return server.client()


@pytest.fixture(scope="session", params=["when_supported", "when_required"])
def s3_modes(server: ServerProcess, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """boto3 with its default checksum settings, then with request checksums only when required."""
    if request.param == "when_supported":
        return server.client()
    return server.client(request_checksum_calculation="when_required")


@pytest.fixture(scope="session")
def s3_required(server: ServerProcess):  # type: ignore[no-untyped-def]
    """A client that sends checksums only where an operation requires one (the other SDK default)."""
    return server.client(request_checksum_calculation="when_required", response_checksum_validation="when_required")


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"test-bucket-{next(_names)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def aws(server: ServerProcess):  # type: ignore[no-untyped-def]
    """The aws CLI against the shared server: ``aws("s3", "ls")`` (ServerProcess.aws)."""
    return server.aws


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=sorted(ENGINES))
def engine_kind(request: pytest.FixtureRequest) -> EngineKind:
    """Each storage engine kind in turn (tests/engines.py): a test using it runs once per engine."""
    return ENGINES[request.param]


@pytest.fixture
def engine_root(tmp_path: Path) -> Path:
    return tmp_path / "engine"


@pytest.fixture
def engine(engine_kind: EngineKind, engine_root: Path, aio: asyncio.Runner) -> Iterator[Engine]:
    """A started engine of each kind in turn (``engine_kind``) on ``engine_root``, closed after the test."""
    eng = engine_kind.make(engine_root)
    aio.run(eng.start())
    yield eng
    aio.run(eng.close())


@pytest.fixture
def plain(engine: Engine, aio: asyncio.Runner) -> str:
    """A bucket of ``engine`` whose versioning was never configured."""
    aio.run(engine.create_bucket("plain", ENGINE_OWNER, "us-east-1"))
    return "plain"


@pytest.fixture
def versioned(engine: Engine, aio: asyncio.Runner) -> str:
    """A bucket of ``engine`` with versioning enabled."""
    aio.run(engine.create_bucket("versioned", ENGINE_OWNER, "us-east-1"))
    aio.run(engine.put_bucket_versioning("versioned", VERSIONING_ENABLED))
    return "versioned"


@pytest.fixture
def aio() -> Iterator[asyncio.Runner]:
    """One event loop for an async test and the fixtures it uses (engines are bound to it)."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on the ``aio`` loop when they use it, else on a fresh one."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    runner = pyfuncitem.funcargs.get("aio")
    if isinstance(runner, asyncio.Runner):
        runner.run(pyfuncitem.obj(**kwargs))
    else:
        asyncio.run(pyfuncitem.obj(**kwargs))
    return True


def _yields_server(fixturedef: pytest.FixtureDef[object]) -> bool:
    """A fixture annotated to return (or yield) a ServerProcess starts a server."""
    return "ServerProcess" in str(inspect.signature(fixturedef.func).return_annotation)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``server`` every test that uses a server fixture, directly or through another fixture.

    ``pytest -m "not server"`` then runs the in-process tests only. A test that starts a server
    itself carries the mark explicitly (``ServerProcess.start`` refuses to run in an unmarked test).
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("server"):
            continue
        if any(_yields_server(defs[-1]) for defs in info.name2fixturedefs.values() if defs):
            item.add_marker(pytest.mark.server)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Tell ``ServerProcess.start`` which test runs (setup, call, teardown) and whether it is marked ``server``."""
    server_process.current_test = (item.nodeid, item.get_closest_marker("server") is not None)
    try:
        return (yield)
    finally:
        server_process.current_test = None
