"""Run the ASGI app under uvicorn (uvloop + httptools): chosen by measurement,
see docs/benchmarks.md."""

from __future__ import annotations

import logging
import os

import uvicorn

from coffer.config import Settings
from coffer.logs import setup_logging

log = logging.getLogger("coffer")


def run(settings: Settings) -> int:
    setup_logging(settings.log_level)
    # Worker processes rebuild the app from this (uvicorn spawns them by import string).
    os.environ["COFFER_SETTINGS_JSON"] = settings.to_json()
    log.info(
        "coffer serving %s storage at %s on http://%s:%d (%d worker%s, fsync %s)",
        settings.storage,
        os.path.abspath(settings.data_dir),
        settings.host,
        settings.port,
        settings.workers,
        "" if settings.workers == 1 else "s",
        settings.fsync,
    )
    uvicorn.run(
        "coffer.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=30,
    )
    return 0
