"""Run the ASGI app under uvicorn (uvloop + httptools): chosen by measurement,
see docs/benchmarks.md.

Shutdown (docs/operations.md): on SIGTERM or SIGINT uvicorn stops accepting
connections, lets in-flight requests finish for up to ``shutdown_timeout``
seconds, then runs the app's lifespan shutdown, which flushes the engine. The
process then exits 0.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess

from coffer.config import Settings
from coffer.logs import LogRotator, setup_logging
from coffer.server.protocol import CofferHttpToolsProtocol

log = logging.getLogger("coffer")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_metrics_dir(settings: Settings) -> str | None:
    """Several workers share metrics through files; start from an empty directory."""
    if not settings.metrics or settings.workers < 2:
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        # The operator's directory: clear only what prometheus-client writes there.
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.unlink(stale)
        return None  # not ours to remove at exit
    tag = hashlib.sha256(f"{os.path.abspath(settings.data_dir)}:{settings.port}".encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"coffer-metrics-{os.getuid()}-{tag}")
    shutil.rmtree(path, ignore_errors=True)  # a previous run's values must not be added to ours
    os.makedirs(path, mode=0o700)
    os.environ[MULTIPROC_ENV] = path
    return path


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the signal it shut down for; by then the work is done and we exit 0."""


def run(settings: Settings) -> int:
    from coffer.server.auth.gate import startup_message

    setup_logging(settings)
    # Worker processes rebuild the app from this (uvicorn spawns them by import string).
    os.environ["COFFER_SETTINGS_JSON"] = settings.to_json()
    level, message = startup_message(settings)
    log.log(level, message)
    own_metrics_dir = _prepare_metrics_dir(settings)
    rotator = None
    if settings.log_file:
        rotator = LogRotator(settings.log_file, settings.log_file_max_bytes, settings.log_file_count).start()
    log.info(
        "coffer serving %s storage at %s on %s://%s:%d (%d worker%s, fsync %s)%s",
        settings.storage,
        os.path.abspath(settings.data_dir),
        "https" if settings.tls_cert else "http",
        settings.host,
        settings.port,
        settings.workers,
        "" if settings.workers == 1 else "s",
        settings.fsync,
        f", admin on http://{settings.admin_host}:{settings.admin_port}" if settings.admin_port else "",
    )
    config = uvicorn.Config(
        "coffer.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=CofferHttpToolsProtocol,  # httptools, with hostile-input hardening (coffer/server/protocol.py)
        lifespan="on",
        log_config=None,  # our handlers and format (coffer.logs) apply to uvicorn's loggers too
        log_level=settings.log_level,
        access_log=False,  # Coffer writes its own access log (with the S3 operation)
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # uvicorn's supervisor kills a worker that misses one 5 s ping; a busy 2-core host can
        # starve the ping thread that long, and the kill resets that worker's open connections.
        timeout_worker_healthcheck=30,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    previous = {sig: signal.signal(sig, _exit_quietly) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sockets = [config.bind_socket()]
        if settings.admin_port:
            sockets.append(_bind(settings.admin_host, settings.admin_port))
        if settings.workers > 1:
            Multiprocess(config, sockets=sockets).run()
            return 0
        server = uvicorn.Server(config)
        server.run(sockets=sockets)
        return 0 if server.started else 3  # 3: uvicorn's "startup failed"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if rotator is not None:
            rotator.stop()
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
        log.info("coffer stopped")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
