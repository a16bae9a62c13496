from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the protocol tests (fsync never: test data is throwaway)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data", "--fsync", "never").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def s3(server: ServerProcess):  # type: ignore[no-untyped-def]
    return server.client()


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"test-bucket-{next(_names)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
