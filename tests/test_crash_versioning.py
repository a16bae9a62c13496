"""kill -9 the server during versioned writes, deletes and lock changes; restart; check what survived.

Promises under test, for the disk engine (fsync always) and the memory engine with its
write-ahead log: every acknowledged version is there byte for byte under its version id;
every acknowledged delete marker is there; no version id appears twice; every version
listed was written by some request; every acknowledged lock (legal hold, retention) holds.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

BUCKET = "crashv"
LOCKED = "crashlock"
# Whole milliseconds: what the retain-until date header carries.
RETAIN_UNTIL = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).replace(microsecond=0)

ENGINES = {
    "disk": ("--fsync", "always"),
    "memory-wal": ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "1"),
}


@pytest.fixture(params=sorted(ENGINES))
def crashable(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, *ENGINES[request.param]).start()
    yield server
    server.stop()


def one_shot(server: ServerProcess) -> Any:
    """A client that tries once: an answer it gets is the server's acknowledgement."""
    return server.client(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)


class Ledger:
    """What the writers were told (acknowledged) and what they tried."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.versions: dict[str, tuple[str, bytes]] = {}  # version id -> (key, body), acknowledged
        self.markers: dict[str, str] = {}  # delete marker version id -> key, acknowledged
        self.held: dict[str, str] = {}  # version id -> key: legal hold ON acknowledged
        self.retained: dict[str, str] = {}  # version id -> key: retention acknowledged
        self.bodies: dict[str, list[bytes]] = {}  # key -> every body attempted
        self.answered = 0


def writer(server: ServerProcess, worker: int, ledger: Ledger, stop: threading.Event) -> None:
    s3 = one_shot(server)
    n = 0
    while not stop.is_set():
        key = f"w{worker}/k{n % 5}"  # few keys: many versions of each
        body = os.urandom((n * 7919 + worker * 104729) % 100_000)
        with ledger.lock:
            ledger.bodies.setdefault(key, []).append(body)
        try:
            if n % 4 == 3:
                marker = s3.delete_object(Bucket=BUCKET, Key=key)
                with ledger.lock:
                    ledger.markers[marker["VersionId"]] = key
            elif n % 6 == 5:
                put = s3.put_object(Bucket=LOCKED, Key=key, Body=body, ObjectLockLegalHoldStatus="ON")
                with ledger.lock:
                    ledger.versions[put["VersionId"]] = (f"{LOCKED}/{key}", body)
                    ledger.held[put["VersionId"]] = key
                s3.put_object_retention(
                    Bucket=LOCKED,
                    Key=key,
                    VersionId=put["VersionId"],
                    Retention={"Mode": "GOVERNANCE", "RetainUntilDate": RETAIN_UNTIL},
                )
                with ledger.lock:
                    ledger.retained[put["VersionId"]] = key
            else:
                put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                with ledger.lock:
                    ledger.versions[put["VersionId"]] = (f"{BUCKET}/{key}", body)
        except (ClientError, BotoCoreError, OSError):
            return  # the server is gone
        with ledger.lock:
            ledger.answered += 1
        n += 1


def all_versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found += [{**v, "Marker": False} for v in page.get("Versions", [])]
        found += [{**m, "Marker": True} for m in page.get("DeleteMarkers", [])]
    return found


def test_kill_during_versioned_writes(crashable: ServerProcess) -> None:
    server = crashable
    s3 = server.client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)
    ledger = Ledger()
    for round_ in range(2):
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(server, i + 10 * round_, ledger, stop)) for i in range(8)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 60
            start = ledger.answered
            while ledger.answered < start + 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ledger.answered >= start + 200
            server.kill9()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        server.start()
        check(server, ledger)
    # Every kind of change was acknowledged before some crash (so check() had something to check).
    assert ledger.versions and ledger.markers and ledger.held and ledger.retained


def check(server: ServerProcess, ledger: Ledger) -> None:
    s3 = server.client()
    listed = {bucket: all_versions(s3, bucket) for bucket in (BUCKET, LOCKED)}
    ids = [v["VersionId"] for rows in listed.values() for v in rows]
    assert len(ids) == len(set(ids))  # no version id twice
    by_id = {v["VersionId"]: (bucket, v) for bucket, rows in listed.items() for v in rows}
    for version_id, (where, body) in ledger.versions.items():
        bucket, key = where.split("/", 1)
        assert version_id in by_id, f"acknowledged version {version_id} of {where} lost"
        got = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
        assert got == body  # byte-identical
    for version_id, key in ledger.markers.items():
        assert version_id in by_id and by_id[version_id][1]["Marker"] and by_id[version_id][1]["Key"] == key
    for bucket, rows in listed.items():
        for row in rows:
            assert row["Key"] in ledger.bodies  # nothing appears that was never written
            if not row["Marker"] and row["VersionId"] not in ledger.versions:
                # Unacknowledged: one whole body that some request sent, never a partial one.
                got = s3.get_object(Bucket=bucket, Key=row["Key"], VersionId=row["VersionId"])["Body"].read()
                assert got in ledger.bodies[row["Key"]]
        # Exactly one latest version per key.
        latest = [r["Key"] for r in rows if r["IsLatest"]]
        assert sorted(latest) == sorted({r["Key"] for r in rows})
    for version_id, key in ledger.held.items():
        head = s3.head_object(Bucket=LOCKED, Key=key, VersionId=version_id)
        assert head["ObjectLockLegalHoldStatus"] == "ON"
    for version_id, key in ledger.retained.items():
        head = s3.head_object(Bucket=LOCKED, Key=key, VersionId=version_id)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] == RETAIN_UNTIL.replace(
            microsecond=RETAIN_UNTIL.microsecond // 1000 * 1000
        )
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=LOCKED, Key=key, VersionId=version_id)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
