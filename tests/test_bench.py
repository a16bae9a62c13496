"""`coffer bench --quick` against a running server prints every figure (a smoke run:
nothing here asserts on speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

FIGURES = (
    "4 KiB PUT, ops/s",
    "4 KiB GET, ops/s",
    "16 MiB PUT, MB/s",
    "16 MiB GET, MB/s",
    "list 2,000 keys page by page, s",
    "one 1000-key page (median), ms",
    "delimiter listing -> 10 CommonPrefixes, ms",
)


@pytest.mark.server
def test_quick_bench_against_an_endpoint(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "coffer", "bench", "--quick", "--no-compare", "--endpoint", server.endpoint],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout
    for figure in FIGURES:
        row = next((line for line in table.splitlines() if figure in line), None)
        assert row is not None, f"{figure!r} missing from:\n{table}"
        value = row.split("|")[2].strip()
        assert re.fullmatch(r"[\d,]+(\.\d)?", value), f"{figure}: {value!r}"
    assert "error" not in table and "\n!" not in table, table
