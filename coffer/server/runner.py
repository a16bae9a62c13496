"""Run the ASGI app under uvicorn (uvloop + httptools): chosen by measurement,
see docs/benchmarks.md.

Start-up (docs/operations.md): every setting that can fail at start is checked
before a socket is bound -- the data directory (created if missing, locked
against a second server), the key file, the TLS files, the log file, the
ports -- and a failure is one line on stderr and a non-zero exit.

Shutdown: on SIGTERM or SIGINT uvicorn stops accepting connections, lets
in-flight requests finish for up to ``shutdown_timeout`` seconds, then runs
the app's lifespan shutdown, which flushes the engine. The process then exits 0.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import logging
import os
import resource
import shutil
import signal
import socket
import ssl
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors import Multiprocess

from coffer import __version__
from coffer.config import Settings
from coffer.keystore import KeyFile, KeyStoreError
from coffer.logs import LogRotator, setup_logging
from coffer.server.protocol import CofferHttpToolsProtocol
from coffer.storage.api import DATA_MODES

if TYPE_CHECKING:
    from coffer.server.app import CofferApp

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


class StartupError(Exception):
    """The server cannot start with these settings here: one line for the operator, no traceback."""


LOCK_NAME = "server.lock"
# File descriptors kept aside for SQLite, logs and the like, beside two per connection
# (a connection's request may hold an object file open).
_FD_RESERVE = 128


class DirLock:
    """One server per data directory: a ``flock`` on ``<dir>/server.lock``, which holds the PID
    of the server that took it.

    The server claims the directory with an exclusive lock (refused while any process of
    another server holds it), then turns it into a shared lock that its worker processes
    join (``worker_app``): the directory stays claimed while any process of the server
    lives, so workers left running after their parent was killed still keep a new
    server out. The kernel drops the lock of a process that dies, however it dies.
    """

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot write to data directory {self.directory}: {exc.strerror}") from None

    def _in_use(self, fd: int) -> StartupError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        return StartupError(
            f"data directory {self.directory} is in use by another coffer server (PID {holder}) or its "
            "worker processes; stop it first or choose another --data-dir"
        )

    def acquire(self, *, share: bool = True) -> None:
        """Claim the directory for this server (the parent process). ``share`` False keeps the
        lock exclusive: an offline tool (``coffer kms rewrap``) that no worker may join."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            if share:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # not atomic: another server may win here
        except OSError as exc:
            error = (
                self._in_use(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
                else StartupError(f"cannot lock data directory {self.directory}: {exc.strerror}")
            )
            os.close(fd)
            raise error from None
        self._fd = fd

    def join(self) -> None:
        """Share the claim of the server this worker process belongs to."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            error = self._in_use(fd)
            os.close(fd)
            raise error from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: removing it could race with the next server's open
            self._fd = None


_worker_lock: DirLock | None = None


def worker_app() -> CofferApp:
    """uvicorn's app factory, run in every worker: join the data directory's lock, build the app."""
    global _worker_lock
    from coffer.server.app import app_from_env

    store = Settings.from_json(os.environ["COFFER_SETTINGS_JSON"]).store_dir()
    if store is not None and _worker_lock is None:
        _worker_lock = DirLock(store)
        _worker_lock.join()  # held until the process exits
    app = app_from_env()
    app.tune_gc = True  # a serving process: gc_tuning after start-up
    return app


def _check_data_dirs(settings: Settings) -> DirLock | None:
    """Check the data directory, create and lock the one holding stored data (None: memory only)."""
    data_dir = os.path.abspath(settings.data_dir)
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise StartupError(f"data directory {data_dir} is not a directory")
    store = settings.store_dir()
    if store is None:
        return None
    store = os.path.abspath(store)
    if os.path.exists(store) and not os.path.isdir(store):
        raise StartupError(f"data directory {store} is not a directory")
    try:
        if not os.path.exists(data_dir):  # one we create is as private as what the engine stores in it
            os.makedirs(data_dir, mode=DATA_MODES[settings.data_mode][0])
        os.makedirs(store, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {store}: {exc.strerror}") from None
    lock = DirLock(store)
    lock.acquire()
    return lock


def _check_key_service(settings: Settings) -> None:
    """A data directory whose key service was used: its keyring must open with the configured
    master key (else encrypted objects would fail one by one), and a master key kept beside the
    data is warned about at every start. A server that never encrypted has nothing to check."""
    from coffer.encryption import keyring
    from coffer.encryption.kms import LocalKeyService

    if not keyring.kms_dir(settings.data_dir).is_dir():
        return
    try:
        service = LocalKeyService.from_settings(settings)
        service.check()
    except keyring.KeyringError as exc:
        raise StartupError(f"the key service cannot open its keyring: {exc}") from None
    warning = service.master_key_warning()
    if warning:
        log.warning("%s", warning)


def _check_keys(settings: Settings) -> None:
    if os.path.isdir(settings.data_dir):
        try:
            KeyFile(settings.data_dir).read()
        except KeyStoreError as exc:
            raise StartupError(str(exc)) from None


def _check_tls(settings: Settings) -> None:
    if settings.tls_cert:
        for name in ("tls_cert", "tls_key"):
            path = getattr(settings, name)
            try:
                Path(path).open("rb").close()
            except OSError as exc:
                raise StartupError(f"cannot read {name} {os.path.abspath(path)}: {exc.strerror}") from None
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert, settings.tls_key)
        except (ssl.SSLError, ValueError) as exc:
            raise StartupError(
                f"tls_cert {os.path.abspath(settings.tls_cert)} and tls_key {os.path.abspath(settings.tls_key)} "
                f"are not a usable PEM certificate and private key: {exc}"
            ) from None


def _connection_cap(settings: Settings) -> int:
    """max_connections, lowered when the open-files limit cannot hold that many (after raising it)."""
    cap = settings.max_connections
    if not cap:
        return 0
    need = 2 * cap + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(hard, need)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
        if soft < need:
            lowered = max(1, (soft - _FD_RESERVE) // 2)
            log.warning(
                "max_connections %d needs about %d open files but the limit is %d (ulimit -n): "
                "capping connections at %d per worker",
                cap,
                need,
                soft,
                lowered,
            )
            return lowered
    return cap


def run(settings: Settings) -> int:
    """Serve until stopped; raises StartupError (nothing bound, nothing started) when it cannot start."""
    try:
        setup_logging(settings)
    except OSError as exc:
        raise StartupError(f"cannot open log_file {os.path.abspath(settings.log_file)}: {exc.strerror}") from None
    _check_tls(settings)
    lock = _check_data_dirs(settings)
    try:
        return _serve(settings)
    finally:
        if lock is not None:
            lock.release()


def _serve(settings: Settings) -> int:
    from coffer.server.auth.gate import startup_message

    _check_keys(settings)
    _check_key_service(settings)
    settings.max_connections = _connection_cap(settings)
    # Worker processes rebuild the app from this (uvicorn spawns them by import string).
    os.environ["COFFER_SETTINGS_JSON"] = settings.to_json()
    auth = startup_message(settings)
    sockets = [_bind(settings.host, settings.port)]
    try:
        if settings.admin_port:
            sockets.append(_bind(settings.admin_host, settings.admin_port))
    except StartupError:
        sockets[0].close()
        raise
    try:
        own_metrics_dir = _prepare_metrics_dir(settings)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(f"cannot prepare the metrics directory {exc.filename}: {exc.strerror}") from None
    rotator = None
    if settings.log_file:
        rotator = LogRotator(settings.log_file, settings.log_file_max_bytes, settings.log_file_count).start()
    log.log(auth[0], banner(settings, sockets[0].getsockname()[1], auth[1], auth[2]))
    config = uvicorn.Config(
        "coffer.server.runner:worker_app",
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
        # Idle connections; the request-head deadline and the connection cap are in protocol.py.
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # uvicorn's supervisor kills a worker that misses one 5 s ping; a busy 2-core host can
        # starve the ping thread that long, and the kill resets that worker's open connections.
        timeout_worker_healthcheck=30,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    previous = {sig: signal.signal(sig, _exit_quietly) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
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


def client_url(scheme: str, host: str, port: int) -> str:
    """The URL a client on this machine reaches a server listening on host:port at."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def banner(settings: Settings, port: int, auth_mode: str, auth_detail: str) -> str:
    """The one start-up message: where it listens, what it stores, who may use it, what to try."""
    scheme = "https" if settings.tls_cert else "http"
    listen = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = client_url(scheme, settings.host, port)
    admin = f" (admin: http://{settings.admin_host}:{settings.admin_port})" if settings.admin_port else ""
    workers = f"{settings.workers} worker{'' if settings.workers == 1 else 's'}"
    # The web console (docs/console.md): on the admin port when there is one, else beside S3.
    console_base = f"http://{settings.admin_host}:{settings.admin_port}" if settings.admin_port else url
    console = f"{console_base}/_coffer/console/"
    if auth_mode == "closed":
        data = os.path.abspath(settings.data_dir)
        try_next = f"coffer keys add --data-dir {data} --access-key <key id>"
    else:
        keys = "" if auth_mode == "keys" else "any "
        try_next = (
            f"AWS_ACCESS_KEY_ID=<{keys}key id> AWS_SECRET_ACCESS_KEY=<{keys}secret> "
            f"AWS_DEFAULT_REGION={settings.region} aws --endpoint-url {url} s3 mb s3://my-bucket"
        )
    lines = [
        f"coffer {__version__} serving on {scheme}://{listen}:{port}{admin}",
        f"  data directory: {os.path.abspath(settings.data_dir)}",
        f"  engine:         {settings.storage} (fsync {settings.fsync}, {workers})",
        f"  auth:           {auth_mode}: {auth_detail}",
        f"  console:        {console}",
        f"  try:            {try_next}",
        f"  status:         coffer status --endpoint {url}",
    ]
    return "\n".join(lines)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
