"""The collector tuning a serving process applies after start-up (coffer/server/gc_tuning.py).

Run in a child interpreter: freezing is for the whole process, and the test process's objects are
not the server's to freeze."""

from __future__ import annotations

import json
import subprocess
import sys

from coffer.server import gc_tuning


def test_serving_process_freezes_start_up_objects_and_collects_young_less_often() -> None:
    code = (
        "import gc, json\n"
        "from coffer.server import gc_tuning\n"
        "before = gc.get_freeze_count()\n"
        "gc_tuning.tune_for_serving()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, threshold = json.loads(out)
    assert before == 0 and after > 1000  # the imports' objects are frozen
    assert threshold[0] == gc_tuning.YOUNG_THRESHOLD


def test_an_embedding_process_is_left_alone() -> None:
    """CofferApp built outside the server's worker factory (tests, the pytest plugin) keeps the defaults."""
    from coffer.config import Settings
    from coffer.server.app import CofferApp

    assert CofferApp(Settings(data_dir="unused-not-created", storage="memory")).tune_gc is False
