"""Headless Chromium for the console tests and benchmark: Debian's ``chromium`` driven by Playwright.

Playwright's own browser downloads are never used: ``executable_path`` points at the system's
Chromium (``apt-get install chromium``; COFFER_CHROMIUM overrides the path).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    explicit = os.environ.get("COFFER_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for path in CANDIDATES:
        if os.path.exists(path):
            return path
    return shutil.which("chromium")


def why_unavailable() -> str | None:
    """None when a browser test can run here, else the reason it cannot."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install chromium, or set COFFER_CHROMIUM)"
    return None


def launch(playwright: Any) -> Any:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
