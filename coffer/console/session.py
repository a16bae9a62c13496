"""Console sessions: stateless signed cookies any worker accepts, CSRF tokens, revocation on logout.

A session cookie is ``v1.<access key, base64url>.<expiry epoch>.<nonce>.<HMAC-SHA256>``, signed with
a 32-byte key kept in ``<data_dir>/console.key`` (mode 0600, made once by whichever worker comes
first). Every worker reads the same key, so ``--workers N`` needs no shared session table. The
cookie carries no secret: it names the key pair, and the session ends when that pair is removed.

Logout revokes the session's nonce: it is appended to ``<data_dir>/console-revoked`` (with its
expiry, so the list only holds live sessions) and every worker re-reads that file when it changes.

CSRF: the page reads its token from ``GET api/session`` (same-origin only) and sends it in the
``X-Coffer-CSRF`` header on every API call and every S3 request it makes with the cookie. The token
is an HMAC of the nonce, so it needs no storage either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from coffer import entropy
from coffer.fsutil import file_identity

log = logging.getLogger("coffer.console")

COOKIE = "coffer_console"
CSRF_HEADER = "x-coffer-csrf"
LIFETIME = 8 * 3600  # seconds a sign-in lasts (not extended by use)
KEY_FILE = "console.key"
REVOKED_FILE = "console-revoked"
RECHECK_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Session:
    access_key: str
    expires: int
    nonce: str


class SessionSigner:
    """Issues, checks and revokes session cookies for one data directory (or one process)."""

    def __init__(self, data_dir: str | None) -> None:
        self._dir = Path(data_dir) if data_dir else None
        self._key = self._load_key()
        self._revoked: dict[str, int] = {}
        self._revoked_identity: tuple[int, int, int] | None = None
        self._checked = -1.0

    # ------------------------------------------------------------------ key
    def _load_key(self) -> bytes:
        """The signing key: shared through the data directory; a per-process key if there is none."""
        if self._dir is None or not self._dir.is_dir():
            log.warning("console: no data directory; sessions are valid in this process only")
            return entropy.token_bytes(32)
        try:
            return self._shared_key(self._dir / KEY_FILE)
        except OSError as exc:
            # A read-only data directory must not stop the server: the console still works, per worker.
            log.warning(
                "console: cannot keep the session key in %s (%s); sessions are valid in this process only",
                self._dir,
                exc,
            )
            return entropy.token_bytes(32)

    def _shared_key(self, path: Path) -> bytes:
        assert self._dir is not None
        try:
            return _read_key(path)
        except FileNotFoundError:
            pass
        temp = self._dir / f".{KEY_FILE}.{os.getpid()}.{entropy.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, entropy.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # atomic, and refuses to replace a key another worker made first
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        return _read_key(path)

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ cookies
    def issue(self, access_key: str, now: float | None = None) -> tuple[str, Session]:
        now = time.time() if now is None else now
        session = Session(access_key, int(now) + LIFETIME, entropy.token_hex(16))
        ak = base64.urlsafe_b64encode(access_key.encode("utf-8")).decode("ascii").rstrip("=")
        body = f"v1.{ak}.{session.expires}.{session.nonce}"
        return f"{body}.{self._mac(body)}", session

    def verify(self, cookie: str, now: float | None = None) -> Session | None:
        """The session of a cookie value, or None when it is forged, expired or revoked."""
        parts = cookie.split(".")
        if len(parts) != 5 or parts[0] != "v1" or len(cookie) > 1024:
            return None
        body, mac = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode("utf-8", "replace")):
            return None
        _, ak, expires, nonce = parts[:4]
        now = time.time() if now is None else now
        if not expires.isdigit() or int(expires) < now:
            return None
        self._refresh_revoked()
        if nonce in self._revoked:
            return None
        try:
            access_key = base64.urlsafe_b64decode(ak + "=" * (-len(ak) % 4)).decode("utf-8")
        except ValueError:
            return None
        return Session(access_key, int(expires), nonce)

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf:" + session.nonce)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session).encode(), token.encode("latin-1"))

    # ------------------------------------------------------------------ revocation
    def revoke(self, session: Session) -> None:
        self._revoked[session.nonce] = session.expires
        if self._dir is None or not self._dir.is_dir():
            return
        # One short line appended with O_APPEND: concurrent workers never interleave it.
        line = f"{session.nonce} {session.expires}\n".encode()
        try:
            fd = os.open(self._dir / REVOKED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("console: sign-out recorded in this worker only (%s)", exc)

    def _refresh_revoked(self) -> None:
        """Re-read the revocation file when it changed (one stat at most every RECHECK_SECONDS)."""
        if self._dir is None:
            return
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        path = self._dir / REVOKED_FILE
        identity = file_identity(path)
        if identity is None or identity == self._revoked_identity:
            return
        self._revoked_identity = identity
        alive = time.time()
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            nonce, _, expires = line.partition(" ")
            if expires.isdigit() and int(expires) >= alive:
                self._revoked[nonce] = int(expires)
        self._revoked = {n: e for n, e in self._revoked.items() if e >= alive}


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path} is damaged (shorter than 32 bytes): delete it to sign everyone out")
    return key


def cookie_value(header: str | None) -> str | None:
    """The console cookie's value from a Cookie header."""
    if not header:
        return None
    for item in header.split(";"):
        name, _, value = item.strip().partition("=")
        if name == COOKIE:
            return value
    return None
