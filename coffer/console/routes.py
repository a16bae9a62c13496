"""``/_coffer/console/``: the page, its assets and its small JSON API (docs/console.md).

Everything the console does to buckets and objects goes through the S3 API itself (same origin, the
session cookie plus the CSRF header standing in for a signature: see ``session_principal``), so the
auth gate authorizes it exactly as it would a signed request from the same key pair. The JSON API
covers only what S3 has no operation for: sign-in, share links, bucket totals, key pairs, metrics.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from coffer import entropy
from coffer.console.presign import MAX_EXPIRY, presigned_get
from coffer.console.session import COOKIE, CSRF_HEADER, LIFETIME, Session, SessionSigner, cookie_value
from coffer.console.stats import BucketStatsCache
from coffer.keystore import KeyFile, KeyStoreError, valid_access_key
from coffer.server.access.identity import PRESETS
from coffer.server.auth import DEFAULT_OWNER, Principal
from coffer.server.auth.ratelimit import TokenBuckets
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.probes import json_response as _json
from coffer.storage.errors import NoSuchBucket

if TYPE_CHECKING:
    from coffer.config import Settings
    from coffer.server.auth.gate import AuthGate
    from coffer.server.metrics import Metrics
    from coffer.server.request import Request
    from coffer.storage.api import Engine

log = logging.getLogger("coffer.console")

PATH = "/_coffer/console"
OPERATION = "CofferConsole"
# Failed sign-ins per client address: a burst of 5, then one every 5 seconds.
LOGIN_RATE, LOGIN_BURST = 0.2, 5
_BODY_LIMIT = 64 * 1024
_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "static/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "static/console.css": ("console.css", "text/css; charset=utf-8"),
    "static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
_SECURITY_HEADERS = (
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


def asset_bytes(name: str) -> bytes:
    """One file of coffer/console/static (package data: present in an installed wheel too)."""
    return resources.files("coffer.console").joinpath("static", name).read_bytes()


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Console:
    def __init__(self, settings: Settings, engine: Engine, gate: AuthGate, metrics: Metrics | None) -> None:
        self.settings = settings
        self.engine = engine
        self.gate = gate
        self.metrics = metrics
        self.signer = SessionSigner(settings.data_dir)
        self.stats = BucketStatsCache(engine)
        self._failures = TokenBuckets(LOGIN_RATE, LOGIN_BURST)
        self._blocked: dict[str, float] = {}  # client address -> monotonic time its sign-ins reopen
        self._assets = {path: (asset_bytes(name), kind) for path, (name, kind) in _ASSETS.items()}
        self._api: dict[tuple[str, str], Callable[[Request, Session | None], Awaitable[Response]]] = {
            ("POST", "login"): self.login,
            ("POST", "logout"): self.logout,
            ("GET", "session"): self.session_info,
            ("GET", "bucket-stats"): self.bucket_stats,
            ("POST", "presign"): self.presign,
            ("GET", "keys"): self.list_keys,
            ("POST", "keys"): self.create_key,
            ("DELETE", "keys"): self.delete_key,
            ("GET", "metrics"): self.metrics_summary,
        }

    # ------------------------------------------------------------------ sessions
    def session_of(self, req: Request) -> Session | None:
        cookie = cookie_value(req.headers.get("cookie"))
        return self.signer.verify(cookie) if cookie else None

    def principal_of(self, session: Session) -> Principal | None:
        """Who a session acts as: its key pair's user (None once the pair is gone); the owner while auth is off."""
        if not self.gate.enabled:
            return DEFAULT_OWNER
        credential = self.gate.store.lookup(session.access_key)
        return credential.principal if credential is not None else None

    def session_principal(self, req: Request) -> Principal | None:
        """The signed-in user of an S3 request sent by the console page: a valid session cookie *and*
        its CSRF token in the X-Coffer-CSRF header (which another site's page cannot set)."""
        token = req.headers.get(CSRF_HEADER)
        if token is None:
            return None
        session = self.session_of(req)
        if session is None or not self.signer.csrf_ok(session, token):
            return None
        return self.principal_of(session)

    def is_root(self, principal: Principal) -> bool:
        return principal.id == (self.settings.root_user_id or DEFAULT_OWNER.id) and principal.policy is None

    # ------------------------------------------------------------------ dispatch
    async def handle(self, req: Request) -> Response:
        assert req.key is not None and req.key.startswith("console")
        sub = req.key[len("console") :]
        if sub == "":
            response = Response(308)
            response.header("location", PATH + "/")
            return response
        sub = sub[1:]
        if not sub.startswith("api/"):
            return self._asset(req, sub)
        handler = self._api.get((req.method, sub[4:]))
        if handler is None:
            return _json({"error": "NotFound", "message": "no such console endpoint"}, 404)
        try:
            session = self.session_of(req)
            mutating = req.method != "GET" and sub != "api/login"
            if mutating and (session is None or not self.signer.csrf_ok(session, req.headers.get(CSRF_HEADER))):
                raise _ApiError(403, "CsrfRefused", "missing or wrong X-Coffer-CSRF header")
            return await handler(req, session)
        except _ApiError as exc:
            return _json({"error": exc.code, "message": exc.message}, exc.status)
        except S3Error as exc:
            return _json({"error": exc.code, "message": exc.message}, exc.status)

    def _asset(self, req: Request, sub: str) -> Response:
        found = self._assets.get(sub)
        if found is None or req.method not in ("GET", "HEAD"):
            return _json({"error": "NotFound", "message": "no such console page"}, 404)
        body, kind = found
        response = Response(200, body=body)
        response.header("content-type", kind)
        response.header("cache-control", "no-cache")
        for name, value in _SECURITY_HEADERS:
            response.header(name, value)
        return response

    def _user(self, session: Session | None) -> Principal:
        principal = self.principal_of(session) if session is not None else None
        if principal is None:
            raise _ApiError(401, "NotSignedIn", "sign in first")
        return principal

    def _root(self, session: Session | None) -> Principal:
        principal = self._user(session)
        if not self.is_root(principal):
            raise _ApiError(403, "AccessDenied", "only the root identity may do this")
        return principal

    # ------------------------------------------------------------------ sign-in
    async def login(self, req: Request, _session: Session | None) -> Response:
        ip = req.client_ip
        if self._blocked.get(ip, 0.0) > time.monotonic():
            return _slow_down()
        # Login CSRF: another site's form can post text/plain or form data, but sending
        # application/json across origins needs a CORS preflight, which this server never grants here.
        if req.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise _ApiError(415, "UnsupportedMediaType", "sign in with a JSON body (Content-Type: application/json)")
        doc = await _json_body(req)
        access_key, secret = str(doc.get("access_key", "")).strip(), str(doc.get("secret_key", ""))
        if not access_key:
            raise _ApiError(400, "InvalidArgument", "access_key is required")
        if self.gate.enabled:
            credential = self.gate.store.lookup(access_key)
            # Compare against a dummy when the key is unknown: both answers take the same time.
            expected = credential.secret_key if credential is not None else entropy.token_hex(20)
            if not hmac.compare_digest(expected.encode(), secret.encode("utf-8", "replace")) or credential is None:
                log.warning("console: failed sign-in for %s from %s", access_key[:128], ip)
                # Failed attempts spend the address's tokens; once they run out, every attempt
                # (even with the right secret) is refused until one has refilled.
                if not self._failures.allow(ip):
                    self._block(ip)
                    return _slow_down()
                raise _ApiError(403, "InvalidCredentials", "wrong access key or secret key")
        cookie, session = self.signer.issue(access_key)
        response = await self.session_info(req, session)
        secure = "; Secure" if self.settings.tls_cert else ""
        # Path=/ rather than the console's path: the page's S3 requests go to bucket paths.
        response.header(
            "set-cookie", f"{COOKIE}={cookie}; Path=/; Max-Age={LIFETIME}; HttpOnly; SameSite=Strict{secure}"
        )
        return response

    def _block(self, ip: str) -> None:
        now = time.monotonic()
        if len(self._blocked) > 10_000:
            self._blocked = {a: t for a, t in self._blocked.items() if t > now}
        self._blocked[ip] = now + 1 / LOGIN_RATE

    async def logout(self, req: Request, session: Session | None) -> Response:
        if session is not None:
            self.signer.revoke(session)
        response = _json({"signed_out": True}, 200)
        response.header("set-cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
        return response

    async def session_info(self, req: Request, session: Session | None) -> Response:
        principal = self._user(session)
        assert session is not None
        return _json(
            {
                "access_key": session.access_key,
                "user_id": principal.id,
                "display_name": principal.display_name,
                "root": self.is_root(principal),
                "auth": self.gate.enabled,
                "csrf": self.signer.csrf_token(session),
                "expires": session.expires,
                "region": self.settings.region,
                "metrics": self.metrics is not None,
            },
            200,
        )

    # ------------------------------------------------------------------ buckets and links
    async def bucket_stats(self, req: Request, session: Session | None) -> Response:
        principal = self._user(session)
        name = req.query.get("bucket", "")
        try:
            info = await self.engine.get_bucket(name)
        except NoSuchBucket:
            raise _ApiError(404, "NoSuchBucket", "no such bucket") from None
        if self.gate.enabled and info.owner != principal.id and not self.is_root(principal):
            raise _ApiError(403, "AccessDenied", "totals are shown for your own buckets")
        if req.query.get("refresh"):
            self.stats.forget(name)
        totals = await self.stats.totals(name)
        return _json({"bucket": name, "objects": totals.objects, "bytes": totals.bytes, "at": totals.computed_at}, 200)

    async def presign(self, req: Request, session: Session | None) -> Response:
        principal = self._user(session)
        assert session is not None
        doc = await _json_body(req)
        bucket, key = str(doc.get("bucket", "")), str(doc.get("key", ""))
        expires = doc.get("expires", 3600)
        if not bucket or not key:
            raise _ApiError(400, "InvalidArgument", "bucket and key are required")
        if type(expires) is not int or not 1 <= expires <= MAX_EXPIRY:  # (a JSON true is no number)
            raise _ApiError(400, "InvalidArgument", f"expires must be 1..{MAX_EXPIRY} seconds")
        extra: dict[str, str] = {}
        if doc.get("version_id"):
            extra["versionId"] = str(doc["version_id"])
        if doc.get("download"):
            filename = key.rsplit("/", 1)[-1].replace('"', "")
            extra["response-content-disposition"] = f'attachment; filename="{filename}"'
        credential = self.gate.store.lookup(session.access_key) if self.gate.enabled else None
        if self.gate.enabled and credential is None:
            raise _ApiError(401, "NotSignedIn", "the key pair of this session no longer exists")
        url = presigned_get(
            scheme="https" if self.settings.tls_cert else "http",
            host=req.headers.get("host", f"{self.settings.host}:{self.settings.port}"),
            bucket=bucket,
            key=key,
            access_key=session.access_key,
            secret_key=credential.secret_key if credential is not None else "open-mode",
            region=self.settings.region,
            expires=expires,
            extra=extra,
        )
        return _json({"url": url, "expires_at": int(time.time()) + expires, "user": principal.display_name}, 200)

    # ------------------------------------------------------------------ key pairs (root)
    async def list_keys(self, req: Request, session: Session | None) -> Response:
        self._root(session)
        keys = [
            {
                "access_key": c.access_key,
                "user_id": c.principal.id,
                "display_name": c.principal.display_name,
                "source": c.source,
                "policy": c.principal.policy is not None,
            }
            for c in self.gate.store.all()
        ]
        return _json({"keys": keys}, 200)

    async def create_key(self, req: Request, session: Session | None) -> Response:
        self._root(session)
        doc = await _json_body(req)
        access_key = str(doc.get("access_key") or "CK" + entropy.token_hex(9).upper())
        display_name = str(doc.get("display_name", ""))[:128]
        if not valid_access_key(access_key):
            raise _ApiError(400, "InvalidArgument", "access key: 3-128 letters, digits, '-', '_' or '.'")
        preset = str(doc.get("policy") or "none")
        if preset != "none" and preset not in PRESETS:  # presets only: never a path on the server
            raise _ApiError(400, "InvalidArgument", f"policy: one of none, {', '.join(PRESETS)}")
        policy = PRESETS.get(preset, "")
        secret = entropy.token_hex(20)
        taken = {c.access_key for c in self.gate.store.all() if c.source == "settings"}
        try:
            entry = KeyFile(self.settings.data_dir).add(
                access_key, secret, display_name=display_name, policy=policy, taken=taken
            )
        except (KeyStoreError, OSError) as exc:
            raise _ApiError(400, "InvalidArgument", str(exc)) from None
        self.gate.store.refresh(force=True)
        # The secret is shown this once; the key file keeps it (SigV4 needs it), the console never again.
        return _json({"access_key": entry.access_key, "secret_key": secret, "user_id": entry.user_id}, 201)

    async def delete_key(self, req: Request, session: Session | None) -> Response:
        self._root(session)
        assert session is not None
        access_key = req.query.get("access_key", "")
        if access_key == session.access_key:
            raise _ApiError(400, "InvalidArgument", "you cannot delete the key pair you are signed in with")
        credential = self.gate.store.lookup(access_key)
        if credential is not None and credential.source == "settings":
            raise _ApiError(400, "InvalidArgument", "this key pair is defined in the settings: remove it there")
        try:
            removed = KeyFile(self.settings.data_dir).remove(access_key)
        except (KeyStoreError, OSError) as exc:
            raise _ApiError(400, "InvalidArgument", str(exc)) from None
        if not removed:
            raise _ApiError(404, "NoSuchKey", "no such key pair")
        self.gate.store.refresh(force=True)
        return _json({"deleted": access_key}, 200)

    # ------------------------------------------------------------------ metrics (root)
    async def metrics_summary(self, req: Request, session: Session | None) -> Response:
        self._root(session)
        if self.metrics is None:
            raise _ApiError(404, "NoMetrics", "metrics are turned off (metrics: false)")
        from coffer.console.metrics_summary import summarize

        text, _ = await self.metrics.render(None)
        return _json(summarize(text.decode("utf-8"), time.time()), 200)


def _slow_down() -> Response:
    response = _json({"error": "SlowDown", "message": "too many failed sign-ins; wait a few seconds"}, 429)
    response.header("retry-after", str(int(1 / LOGIN_RATE)))
    return response


async def _json_body(req: Request) -> dict[str, Any]:
    body = await req.read_body(_BODY_LIMIT)
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise _ApiError(400, "MalformedJSON", "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise _ApiError(400, "MalformedJSON", "the body must be a JSON object")
    return doc
