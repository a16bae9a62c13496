"""pytest fixtures for code that talks to S3: a real Coffer server (docs/testing.md).

Registered as the ``coffer`` plugin (entry point group ``pytest11``) so installing Coffer is
enough; ``-p no:coffer`` turns it off. Nothing happens at import or collection: the server
starts when a test first asks for ``coffer_server`` (directly or through ``coffer_bucket``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from coffer.testing.server import CofferServer

_STORAGES = ("memory", "disk")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("coffer", "Coffer S3 server fixtures")
    group.addoption(
        "--coffer-storage",
        dest="coffer_storage",
        choices=_STORAGES,
        default=None,
        help="Storage engine of the coffer_server fixture: memory (default) or disk (in a temporary directory).",
    )
    parser.addini(
        "coffer_storage",
        "Storage engine of the coffer_server fixture: memory (default) or disk. --coffer-storage wins.",
        default="memory",
    )


def _storage(config: pytest.Config) -> str:
    storage = config.getoption("coffer_storage") or str(config.getini("coffer_storage")).strip()
    if storage not in _STORAGES:
        raise pytest.UsageError(f"coffer_storage must be one of {', '.join(_STORAGES)}, not {storage!r}")
    return storage


@pytest.fixture(scope="session")
def coffer_server(request: pytest.FixtureRequest) -> Iterator[CofferServer]:
    """A Coffer server for the whole session, on a free loopback port, requiring signed requests.

    Yields a CofferServer: ``endpoint``, ``access_key``, ``secret_key``, ``region`` and
    ``client()`` for a ready boto3 client.
    """
    from coffer.testing.server import serve

    with serve(_storage(request.config)) as server:
        yield server


@pytest.fixture(scope="session")
def _coffer_s3(coffer_server: CofferServer) -> Any:
    """One client for creating and removing the test buckets (clients are slow to build)."""
    return coffer_server.client()


@pytest.fixture
def coffer_bucket(_coffer_s3: Any) -> Iterator[str]:
    """The name of a new, empty bucket on ``coffer_server``; emptied and deleted after the test."""
    s3 = _coffer_s3
    name = f"test-{secrets.token_hex(8)}"
    s3.create_bucket(Bucket=name)
    yield name
    try:
        # Unfinished multipart uploads go with the bucket (docs/multipart.md).
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass  # the test deleted it
