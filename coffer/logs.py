"""Logging: human or JSON lines, an optional rotated log file, the access log and
the periodic bandwidth report. Every field is described in docs/operations.md.

Several worker processes may write one log file. Each opens it in append mode
and reopens it when it has been renamed (``WatchedFileHandler``); only the
``coffer serve`` parent process rotates it (``LogRotator``), so rotation never
races between workers. Rotated files are gzipped after a short grace period
that lets a worker finish a line it began before the rename.

The access log is written on a fast path of its own (``AccessLog``): one line
per request costs a few microseconds instead of the ~40 us of a ``logging``
record, and lines are written in batches (one append per batch, at most
``FLUSH_SECONDS`` late), which also keeps lines of several workers whole.
"""

from __future__ import annotations

import asyncio
import atexit
import gzip
import json
import logging
import logging.handlers
import os
import shutil
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from coffer.config import Settings

bandwidth_log = logging.getLogger("coffer.bandwidth")

# Loggers whose records go to the same handlers as ours (uvicorn is told not to
# configure logging itself).
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")


# json.dumps() builds a new encoder whenever an option is given: keep one.
_encode_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, plus structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return _encode_json(doc)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


def _iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


# The root handlers setup_logging installed (replaced, not added to, when it runs again).
_installed: set[logging.Handler] = set()


def setup_logging(settings: Settings | str) -> None:
    """Configure the root logger (idempotent: replaces handlers it installed before)."""
    if isinstance(settings, str):  # a bare level, for scripts and tests
        from coffer.config import Settings

        settings = Settings(log_level=settings)
    root = logging.getLogger()
    for installed in list(root.handlers):
        if installed in _installed:
            root.removeHandler(installed)
            installed.close()
    _installed.clear()
    handler: logging.Handler
    if settings.log_file:
        os.makedirs(os.path.dirname(os.path.abspath(settings.log_file)), exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(settings.log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else HumanFormatter())
    _installed.add(handler)
    root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn's access lines lack the S3 operation; coffer.access replaces them.
    logging.getLogger("uvicorn.access").disabled = True
    bandwidth_log.setLevel(logging.INFO)
    global access
    if access is not None:
        access.close()
    # The access log is independent of the level: on or off by its own setting.
    access = AccessLog(settings.log_file or None, settings.log_format == "json") if settings.access_log else None


# ---------------------------------------------------------------------- rotation
class LogRotator:
    """Rotates a log file by size from one process: file -> file.1.gz ... file.N.gz."""

    def __init__(self, path: str, max_bytes: int, keep: int, interval: float = 1.0, grace: float = 1.0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.interval = interval
        self.grace = grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LogRotator:
        if self.max_bytes > 0:
            self._thread = threading.Thread(target=self._run, name="coffer-log-rotator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except OSError as exc:
                logging.getLogger("coffer.logs").warning("log rotation failed: %s", exc)

    def check(self) -> bool:
        """Rotate if the file has reached its size limit; True when it did."""
        try:
            if os.stat(self.path).st_size < self.max_bytes:
                return False
        except FileNotFoundError:
            return False
        self.rotate()
        return True

    def rotate(self) -> None:
        base = self.path
        # Shift file.N.gz -> file.N+1.gz, dropping what falls past the retention count.
        for index in range(max(self.keep, 1), 0, -1):
            src = f"{base}.{index}.gz"
            if not os.path.exists(src):
                continue
            if index >= self.keep:
                os.unlink(src)
            else:
                os.replace(src, f"{base}.{index + 1}.gz")
        if self.keep == 0:
            os.unlink(base)
            return
        rotated = f"{base}.1"
        os.replace(base, rotated)
        # Writers notice the rename at their next line and reopen `base`; one that
        # was mid-line finishes it in `rotated` within the grace period.
        self._stop.wait(self.grace)
        with open(rotated, "rb") as src_file, gzip.open(rotated + ".gz.tmp", "wb") as dst:
            shutil.copyfileobj(src_file, dst)
        os.replace(rotated + ".gz.tmp", rotated + ".gz")
        os.unlink(rotated)


# ---------------------------------------------------------------------- access log
def access_key_id(headers: dict[str, str], query: dict[str, str]) -> str:
    """The access key id a request was signed with (never the secret, never the signature)."""
    auth = headers.get("authorization")
    if auth:
        if auth.startswith("AWS4-"):
            at = auth.find("Credential=")
            if at >= 0:
                return auth[at + 11 :].split("/", 1)[0].strip()
        elif auth.startswith("AWS "):
            return auth[4:].split(":", 1)[0].strip()
        return "-"
    credential = query.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0]
    return query.get("AWSAccessKeyId", "-")


class AccessLog:
    """Formats access-log lines and appends them to the log destination in batches."""

    FLUSH_SECONDS = 0.2
    FLUSH_BYTES = 64 * 1024

    def __init__(self, path: str | None, as_json: bool) -> None:
        self.path = path
        self.as_json = as_json
        self.pid = os.getpid()
        self._lines: list[str] = []
        self._size = 0
        self._flush_scheduled = False
        self._fd = -1
        self._lock = threading.Lock()
        self._second = self._iso_second = -1
        self._stamp = self._iso = ""
        atexit.register(self.flush)

    def log(
        self,
        method: str,
        bucket: str | None,
        key: str | None,
        headers: dict[str, str] | None,
        request_id: str,
        operation: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
        client: str,
        access_key: str = "-",
    ) -> None:
        now = time.time()
        latency_ms = round(seconds * 1000, 3)
        target = f"{bucket}/{quote(key, safe='/')}" if key is not None else (bucket or "/")
        message = (
            f"{client} {method} {operation} {target} {status} in={bytes_in} out={bytes_out} "
            f"{latency_ms:.1f}ms id={request_id} key_id={access_key}"
        )
        if self.as_json:
            doc = {
                "time": f"{self._iso_stamp(now)}.{int(now % 1 * 1000):03d}Z",
                "level": "info",
                "logger": "coffer.access",
                "message": message,
                "pid": self.pid,
                "request_id": request_id,
                "operation": operation,
                "method": method,
                "bucket": bucket,
                "key": key,
                "status": status,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "latency_ms": latency_ms,
                "client": client,
                "access_key_id": access_key,
                "user_agent": headers.get("user-agent", "-") if headers else "-",
            }
            line = _encode_json(doc) + "\n"
        else:
            line = f"{self._human_stamp(now)},{int(now % 1 * 1000):03d} INFO coffer.access[{self.pid}]: {message}\n"
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if self._size >= self.FLUSH_BYTES:
                self._flush_locked()
                return
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        try:
            asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
        except RuntimeError:  # no event loop (scripts, tests): write now
            self.flush()

    def _human_stamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # strftime once per second, not once per line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return self._stamp

    def _iso_stamp(self, now: float) -> str:
        second = int(now)
        if second != self._iso_second:
            self._iso_second = second
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._iso

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._flush_scheduled = False
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "replace")
        self._lines.clear()
        self._size = 0
        try:
            os.write(self._target(), data)  # O_APPEND: one batch lands whole, even with several writers
        except OSError:
            pass  # a full disk must not take requests down with it

    def _target(self) -> int:
        if self.path is None:
            return 2  # stderr
        # Reopen when the rotator renamed the file (checked per batch, not per line).
        if self._fd >= 0:
            try:
                current = os.stat(self.path)
                opened = os.fstat(self._fd)
                if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# The process's access log; None when switched off (set by setup_logging).
access: AccessLog | None = None


def flush_access_log() -> None:
    if access is not None:
        access.flush()


# ---------------------------------------------------------------------- bandwidth
class Traffic:
    """This worker's request and byte totals since it started."""

    __slots__ = ("bytes_in", "bytes_out", "requests", "started")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.started = time.time()

    def add(self, bytes_in: int, bytes_out: int) -> None:
        self.requests += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


async def report_bandwidth(traffic: Traffic, every: float) -> None:
    """Log received/sent totals and rates every ``every`` seconds, until cancelled."""
    last = (time.monotonic(), traffic.bytes_in, traffic.bytes_out, traffic.requests)
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        elapsed = max(now - last[0], 1e-9)
        d_in, d_out = traffic.bytes_in - last[1], traffic.bytes_out - last[2]
        d_req = traffic.requests - last[3]
        last = (now, traffic.bytes_in, traffic.bytes_out, traffic.requests)
        bandwidth_log.info(
            "bandwidth over %.0fs: received %s (%s/s), sent %s (%s/s), %d requests; totals received %s, sent %s",
            elapsed,
            _human_bytes(d_in),
            _human_bytes(d_in / elapsed),
            _human_bytes(d_out),
            _human_bytes(d_out / elapsed),
            d_req,
            _human_bytes(traffic.bytes_in),
            _human_bytes(traffic.bytes_out),
            extra={
                "fields": {
                    "interval_seconds": round(elapsed, 3),
                    "bytes_in": d_in,
                    "bytes_out": d_out,
                    "bytes_in_per_second": round(d_in / elapsed, 1),
                    "bytes_out_per_second": round(d_out / elapsed, 1),
                    "requests": d_req,
                    "total_bytes_in": traffic.bytes_in,
                    "total_bytes_out": traffic.bytes_out,
                    "total_requests": traffic.requests,
                }
            },
        )
