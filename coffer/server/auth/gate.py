"""The one place every request passes after classification: limits, rate limits,
authentication (who is this?) and authorization (may they touch this bucket?).

Authentication: SigV4 (header or presigned query), SigV2 (header or query), an
optional bearer token, or nothing (anonymous, denied while auth is on except
for operations that authenticate themselves, such as a browser POST upload).
Authorization: bucket policies and per-key identity policies, evaluated as AWS does
(coffer/server/access/decide.py); without either, a bucket belongs to the user who created it
and only that user may use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, unquote

from coffer.config import Settings
from coffer.server import acls, ownership, router
from coffer.server.access.acl import Acl
from coffer.server.access.decide import SERVICE_ARN, bucket_arn, object_arn
from coffer.server.access.facts import Facts, request_facts
from coffer.server.access.request_access import RequestAccess
from coffer.server.auth import sigv2, sigv4
from coffer.server.auth.credentials import Credential, CredentialStore, signatures_required
from coffer.server.auth.principal import ANONYMOUS, DEFAULT_OWNER, Principal
from coffer.server.auth.ratelimit import TokenBuckets
from coffer.server.auth.streaming import ChunkChain
from coffer.server.bucket_state import BucketState, BucketStates
from coffer.server.errors import S3Error
from coffer.server.http import parse_http_date
from coffer.server.request import Request
from coffer.storage.api import Engine, ObjectInfo
from coffer.storage.errors import NoSuchBucket, NoSuchKey, StorageError

log = logging.getLogger("coffer.auth")

_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
    "parameter or the Authorization header should be specified"
)


def parse_copy_source(header: str) -> tuple[str, str, bool] | None:
    """(bucket, key, names a version) of ``x-amz-copy-source: [/]bucket/key[?versionId=...]`` (URL-encoded)."""
    path, _, query = header.partition("?")
    bucket, sep, key = unquote(path).lstrip("/").partition("/")
    return (bucket, key, "versionId=" in query) if sep and bucket and key else None


_VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
}


# Reads whose refusal becomes 404 when the key is missing and the caller may list it.
_MISSING_IS_404 = frozenset({"GetObject", "HeadObject"})


def action_of(route: router.Route, query: Mapping[str, str]) -> str:
    """The IAM action of a request: the route's, or its version-specific form when a versionId is given."""
    if route.resource == "object" and "versionId" in query:
        return _VERSION_ACTIONS.get(route.action, route.action)
    return route.action


def _unsupported(value: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        "Unsupported Authorization Type",
        ArgumentName="Authorization",
        ArgumentValue=value.split(" ", 1)[0][:64],
    )


class AuthGate:
    def __init__(self, settings: Settings, engine: Engine, buckets: BucketStates | None = None) -> None:
        self.settings = settings
        self.engine = engine
        # Ownership and bucket policies, cached briefly: the common request costs no metadata read.
        self.buckets = buckets if buckets is not None else BucketStates(engine)
        # aws:SecureTransport: whether this server speaks TLS itself.
        self._secure = bool(settings.tls_cert)
        self.store = CredentialStore(settings)
        self._mode = settings.auth
        # 'auto' latches on: once any credential exists the server never falls back to open mode,
        # even if every key is removed later (nor after a restart: the emptied key file remains).
        self._latched = self._mode == "on"
        burst = settings.rate_limit_burst
        self._ip_limiter = TokenBuckets(settings.rate_limit_per_ip, burst) if settings.rate_limit_per_ip else None
        self._key_limiter = TokenBuckets(settings.rate_limit_per_key, burst) if settings.rate_limit_per_key else None
        self._public_host = settings.public_hostname.strip().lower() or None
        self._body_limit = settings.max_request_size
        # The web console's session check (coffer/console): who an unsigned request from its page is.
        self.session_auth: Callable[[Request], Principal | None] | None = None

    @property
    def enabled(self) -> bool:
        if self._mode == "off":
            return False
        if not self._latched and signatures_required(self._mode, self.store):
            self._latched = True
        return self._latched

    # ------------------------------------------------------------------ the gate
    async def admit(self, req: Request) -> None:
        """Check limits, authenticate and authorize ``req`` (sets ``req.principal``); raise S3Error to refuse."""
        self._check_limits(req)
        if self._ip_limiter is not None and not self._ip_limiter.allow(req.client_ip):
            raise S3Error("SlowDown")
        principal = self.authenticate(req)
        key = principal.access_key
        if self._key_limiter is not None and key is not None and not self._key_limiter.allow(key):
            raise S3Error("SlowDown")
        req.principal = principal
        await self._authorize(req)

    def _check_limits(self, req: Request) -> None:
        headers = req.headers
        size = sum(map(len, headers)) + sum(map(len, headers.values()))
        if size > self.settings.max_header_size:
            raise S3Error(
                "RequestHeaderSectionTooLarge",
                "Your request header section exceeds the maximum allowed size.",
                MaxSizeAllowed=str(self.settings.max_header_size),
            )
        declared = req.declared_length
        if declared is not None and declared > self._body_limit:
            raise S3Error("EntityTooLarge", ProposedSize=str(declared), MaxSizeAllowed=str(self._body_limit))
        # Bodies without a Content-Length (Transfer-Encoding: chunked) are cut off while streaming;
        # the slack leaves room for aws-chunked framing around a payload of the maximum size.
        req.body_limit = self._body_limit + self._body_limit // 64 + 65536
        req.body_timeout = self.settings.body_idle_timeout or None

    async def _authorize(self, req: Request) -> None:
        route = req.route
        # A POST upload carries its signature in the form (the handler checks it and calls
        # authorize_post); a CORS preflight never carries credentials.
        if not self.enabled or route is None or route.authorizer != "gate":
            return
        principal = req.principal
        if req.bucket is None or route is router.CREATE_BUCKET:
            if principal.anonymous:
                raise S3Error("AccessDenied")
            # ListBuckets lists the caller's own; CreateBucket: the engine refuses others' names.
            access = RequestAccess(principal, None, None, self._facts_of(req))
            req.access = access
            if principal.policy is not None:
                resource = SERVICE_ARN if req.bucket is None else bucket_arn(req.bucket)
                if not access.allows(route.action, resource):
                    raise S3Error("AccessDenied")
            return
        state = await self._bucket_state(req.bucket)
        expected = req.headers.get("x-amz-expected-bucket-owner")
        if expected is not None and expected.strip() != state.info.owner:
            raise S3Error("AccessDenied")
        heads = _Heads(self.engine)  # the request's object, read at most once whatever needs it
        tags = None
        if route.resource == "object" and req.key is not None and _reads_existing_tags(state, principal):
            info = await heads.get(req.bucket, req.key, req.query.get("versionId"))
            tags = info.tags if info is not None else None
        access = self._access(req, state, tags)
        req.access = access
        if route.name == "DeleteObjects":
            # Decided per key by its handler (s3:DeleteObject on each object), as S3 does; without
            # any policy or ACL grant that could allow a stranger, refused whole as before.
            if (
                state.policy is None
                and principal.policy is None
                and principal.id != state.info.owner
                and not access.acl_allows("s3:DeleteObject", _acl(state))
            ):
                raise S3Error("AccessDenied")
        else:
            if route.resource == "object":
                assert req.key is not None
                resource = object_arn(req.bucket, req.key)
            else:
                resource = bucket_arn(req.bucket)
            action = action_of(route, req.query)
            version_id = req.query.get("versionId")
            if not access.allows(action, resource) and not await self._object_grants(
                heads, access, state, action, resource, req.bucket, req.key, version_id
            ):
                await self._refuse(req, state)
            if await self._foreign_object_refused(heads, access, state, action, req.bucket, req.key, version_id):
                raise S3Error("AccessDenied")
        if route.reads_copy_source:
            await self._authorize_copy_source(req, access, heads)

    def _access(self, req: Request, state: BucketState, tags: dict[str, str] | None = None) -> RequestAccess:
        return RequestAccess(
            req.principal,
            state.info.owner,
            state.policy,
            self._facts_of(req, tags),
            _acl(state),
            state.public_access_block,
        )

    async def _foreign_object_refused(
        self,
        heads: _Heads,
        access: RequestAccess,
        state: BucketState,
        action: str,
        bucket: str,
        key: str | None,
        version_id: str | None,
    ) -> bool:
        """Whether the bucket owner asks to read (or read/write the ACL of) an object another user
        owns, which that object's ACL does not grant it: as in S3, owning the bucket does not give
        access to what others own in it (``bucket-owner-full-control`` is how they share it). Checked
        only in buckets that have such objects (acls.FOREIGN_CONFIG), so other requests pay nothing."""
        if not state.foreign_objects or state.ownership == ownership.ENFORCED or key is None:
            return False
        principal = access.principal
        if principal.anonymous or principal.id != state.info.owner or not access.needs_object_acl(action):
            return False
        info = await heads.get(bucket, key, version_id)
        if info is None:
            return False  # the handler answers (NoSuchKey, ...)
        acl = acls.object_acl(info, state.info.owner)
        return acl.owner_id != state.info.owner and not access.acl_allows(action, acl)

    async def _object_grants(
        self,
        heads: _Heads,
        access: RequestAccess,
        state: BucketState,
        action: str,
        resource: str,
        bucket: str,
        key: str | None,
        version_id: str | None,
    ) -> bool:
        """Whether the object's own ACL grants ``action`` where only an ACL could (reads and ACL
        access by other users and anonymous callers): the one case that costs a metadata read."""
        if key is None or _acl(state) is None:
            return False
        if not access.needs_object_acl(action) or access.verdict(action, resource) != "acl":
            return False
        info = await heads.get(bucket, key, version_id)
        if info is None:
            return False  # missing, a delete marker, a bad version id: refused as any denial
        return access.acl_allows(action, acls.object_acl(info, state.info.owner))

    async def _refuse(self, req: Request, state: BucketState) -> None:
        """AccessDenied, except as S3 answers a read of a missing object: 404 NoSuchKey for a
        caller who may list the bucket under that name (s3:ListBucket, s3:prefix the key), who
        learns nothing new from it; everyone else cannot tell a missing key from a denied one."""
        route = req.route
        if route is not None and route.name in _MISSING_IS_404 and req.key is not None and req.bucket is not None:
            principal, key = req.principal, req.key
            lister = RequestAccess(
                principal,
                state.info.owner,
                state.policy,
                lambda: request_facts(req, principal, self._secure, overrides={"s3:prefix": [key]}),
                _acl(state),
                state.public_access_block,
            )
            if lister.allows("s3:ListBucket", bucket_arn(req.bucket)):
                try:
                    await self.engine.head_object(req.bucket, req.key)
                except NoSuchKey:
                    raise S3Error("NoSuchKey", Key=req.key) from None
        raise S3Error("AccessDenied")

    async def _authorize_copy_source(self, req: Request, access: RequestAccess, heads: _Heads) -> None:
        """Reading the copy source needs s3:GetObject (s3:GetObjectVersion) on it, by the same rules."""
        source = parse_copy_source(req.headers.get("x-amz-copy-source", ""))
        if source is None:
            return  # malformed: the handler answers the right error
        bucket, key, versioned = source
        action = "s3:GetObjectVersion" if versioned else "s3:GetObject"
        expected = req.headers.get("x-amz-source-expected-bucket-owner")
        state = await self._bucket_state(bucket)
        if expected is not None and expected.strip() != state.info.owner:
            raise S3Error("AccessDenied")
        if bucket != req.bucket:
            access = self._access(req, state)
        resource = object_arn(bucket, key)
        version = parse_qs(req.headers.get("x-amz-copy-source", "").partition("?")[2]).get("versionId", [None])[0]
        if not access.allows(action, resource) and not await self._object_grants(
            heads, access, state, action, resource, bucket, key, version
        ):
            raise S3Error("AccessDenied")
        if await self._foreign_object_refused(heads, access, state, action, bucket, key, version):
            raise S3Error("AccessDenied")

    def authorize_post(self, req: Request, principal: Principal, state: BucketState, key: str) -> None:
        """A browser POST upload, once its form signature was checked (or none: anonymous):
        s3:PutObject on the key."""
        if not self.enabled:
            return
        assert req.bucket is not None
        secure = self._secure
        access = RequestAccess(
            principal,
            state.info.owner,
            state.policy,
            lambda: request_facts(req, principal, secure, post_form=True),
            _acl(state),
            state.public_access_block,
        )
        req.access = access
        if not access.allows("s3:PutObject", object_arn(req.bucket, key)):
            raise S3Error("AccessDenied")

    def _facts_of(self, req: Request, existing_tags: dict[str, str] | None = None) -> Callable[[], Facts]:
        secure = self._secure
        return lambda: request_facts(req, req.principal, secure, existing_tags=existing_tags)

    async def _bucket_state(self, bucket_name: str) -> BucketState:
        """The bucket's cached state; NoSuchBucket if there is none (for anyone, anonymous included, as S3)."""
        try:
            return await self.buckets.get(bucket_name)
        except NoSuchBucket:
            raise S3Error("NoSuchBucket", BucketName=bucket_name) from None

    # ------------------------------------------------------------------ authentication
    def authenticate(self, req: Request) -> Principal:
        """Who signed ``req``: ANONYMOUS when nothing is signed (authorization then decides)."""
        if not self.enabled:
            return DEFAULT_OWNER
        if req.route is router.PREFLIGHT:
            return ANONYMOUS  # browsers never send credentials with a preflight, whatever the URL holds
        now = time.time()
        header = req.headers.get("authorization", "").strip()
        query = req.query
        presigned_v4 = "X-Amz-Algorithm" in query or "X-Amz-Credential" in query
        presigned_v2 = "AWSAccessKeyId" in query and "Signature" in query
        if header and (presigned_v4 or presigned_v2):
            raise S3Error("InvalidArgument", _ONE_MECHANISM, ArgumentName="Authorization")
        if header.startswith("AWS4-"):
            return self._v4_header(req, header, now)
        if header.startswith("AWS "):
            return self._v2_header(req, header, now)
        if header.startswith("Bearer "):
            return self._bearer(header)
        if header:
            raise _unsupported(header)
        if presigned_v4:
            return self._v4_query(req, now)
        if presigned_v2 or "AWSAccessKeyId" in query:
            return self._v2_query(req, now)
        if self.session_auth is not None:
            return self.session_auth(req) or ANONYMOUS
        return ANONYMOUS

    def lookup(self, access_key: str) -> Credential:
        credential = self.store.lookup(access_key)
        if credential is None:
            raise S3Error(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=access_key[:128],
            )
        return credential

    def _signed(self, req: Request) -> sigv4.SignedRequest:
        return sigv4.SignedRequest(req.method, req.raw_path, req.raw_query, req.headers)

    def _v4_header(self, req: Request, header: str, now: float) -> Principal:
        cred = sigv4.parse_authorization(header)
        credential = self.lookup(cred.access_key)
        timestamp, when = sigv4.header_timestamp(req.headers)
        sigv4.check_clock(when, now)
        if cred.date != timestamp[:8]:
            raise S3Error(
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; Invalid credential date. Date is not the same as X-Amz-Date.",
            )
        sigv4.check_signed_headers(req.headers, cred.signed_headers)
        payload = sigv4.payload_hash_of(req.headers, req.method)
        verified = sigv4.check_signature(
            self._signed(req), cred, credential.secret_key, timestamp, payload, public_host=self._public_host
        )
        if payload in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER):
            req.chunk_chain = ChunkChain(verified, cred.access_key, payload == sigv4.STREAMING_SIGNED_TRAILER)
        return credential.principal

    def _v4_query(self, req: Request, now: float) -> Principal:
        presigned = sigv4.parse_presigned(req.query, now)
        cred = presigned.credential
        credential = self.lookup(cred.access_key)
        sigv4.check_signed_headers(req.headers, cred.signed_headers)
        payload = req.query.get("X-Amz-Content-Sha256", sigv4.UNSIGNED_PAYLOAD)
        if payload != sigv4.UNSIGNED_PAYLOAD:
            # A signed payload hash binds the body: the header (checked against the bytes) must agree.
            declared = req.headers.setdefault("x-amz-content-sha256", payload)
            if declared.strip() != payload:
                raise S3Error("XAmzContentSHA256Mismatch")
        sigv4.check_signature(
            self._signed(req),
            cred,
            credential.secret_key,
            presigned.timestamp,
            payload,
            public_host=self._public_host,
            drop_query="X-Amz-Signature",
        )
        return credential.principal

    def _vhost_bucket(self, req: Request) -> str | None:
        return req.bucket if req.virtual_host else None

    def _v2_header(self, req: Request, header: str, now: float) -> Principal:
        access_key, signature = sigv2.parse_authorization(header)
        credential = self.lookup(access_key)
        amz_date = req.headers.get("x-amz-date")
        date = req.headers.get("date")
        raw = amz_date if amz_date is not None else date
        when = parse_http_date(raw) if raw else None
        if when is None or when < 0:
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        sigv4.check_clock(when, now)
        # The Date line is the Date header as sent; clients that also send x-amz-date may sign it empty.
        dates = [(date or "").strip(), ""] if amz_date is not None and date else [(date or "").strip()]
        candidates = [
            sigv2.string_to_sign(req.method, headers, date_line, resource)
            for headers in sigv2.header_readings(req.headers)
            for resource in sigv2.canonical_resources(req.raw_path, req.raw_query, self._vhost_bucket(req))
            for date_line in dates
        ]
        sigv2.check(access_key, credential.secret_key, signature, candidates)
        return credential.principal

    def _v2_query(self, req: Request, now: float) -> Principal:
        query = req.query
        access_key, signature, expires = query.get("AWSAccessKeyId"), query.get("Signature"), query.get("Expires")
        if not access_key or not signature or not expires:
            raise S3Error(
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
            )
        if not expires.isdigit() or not expires.isascii() or len(expires) > 12:
            raise S3Error("AccessDenied", "Invalid date (should be seconds since epoch): " + expires[:32])
        credential = self.lookup(access_key)
        if now > int(expires):
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                Expires=sigv4.amz_date(int(expires)),
                ServerTime=sigv4.amz_date(now),
            )
        # botocore moves x-amz-* headers, Content-Type and Content-MD5 into the query of a V2 presigned URL.
        headers = dict(req.headers)
        for name in ("content-type", "content-md5"):
            for key, value in query.items():
                if key.lower() == name:
                    headers.setdefault(name, value)
        extra = {k.lower(): v for k, v in query.items() if k.lower().startswith("x-amz-")}
        candidates = [
            sigv2.string_to_sign(req.method, headers, expires, resource, extra)
            for resource in sigv2.canonical_resources(req.raw_path, req.raw_query, self._vhost_bucket(req))
        ]
        sigv2.check(access_key, credential.secret_key, signature, candidates)
        return credential.principal

    def _bearer(self, header: str) -> Principal:
        if not self.settings.bearer_auth:
            raise _unsupported(header)
        principal = self.store.by_token(header[len("Bearer ") :].strip())
        if principal is None:
            raise S3Error("AccessDenied", "The bearer token is not valid.")
        return principal


class _Heads:
    """The objects one request's authorization reads (its ACL, its tags), each read once."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._seen: dict[tuple[str, str, str | None], ObjectInfo | None] = {}

    async def get(self, bucket: str, key: str, version_id: str | None) -> ObjectInfo | None:
        """The version's metadata; None when it cannot be read (missing, a delete marker, a bad id)."""
        name = (bucket, key, version_id)
        if name not in self._seen:
            try:
                self._seen[name] = await self._engine.head_object(bucket, key, version_id=version_id)
            except (StorageError, ValueError):
                self._seen[name] = None
        return self._seen[name]


def _reads_existing_tags(state: BucketState, principal: Principal) -> bool:
    """Whether a policy that decides this request conditions on the object's existing tags."""
    if state.policy is not None and state.policy.policy.reads_existing_tags:
        return True
    return principal.policy is not None and principal.policy.reads_existing_tags


def _acl(state: BucketState) -> Acl | None:
    """The bucket's ACL as it grants; None when its ownership controls disable ACLs."""
    return None if state.ownership == ownership.ENFORCED else state.acl


def startup_message(settings: Settings) -> tuple[int, str, str]:
    """(log level, mode, detail) of the authentication mode, for the server's start-up banner.

    mode: 'off' (auth: off), 'open' (no key pairs: development mode), 'closed' (auth on, no key
    pairs: every request refused) or 'keys' (signed requests required).
    """
    if settings.auth == "off":
        return (
            logging.WARNING,
            "off",
            (
                "AUTHENTICATION IS OFF (--auth off): anyone who can reach this port can read, write and delete "
                "everything. Development use only."
            ),
        )
    store = CredentialStore(settings)
    count = store.count()
    if not signatures_required(settings.auth, store):
        return (
            logging.WARNING,
            "open",
            (
                "NO CREDENTIALS CONFIGURED: the server runs OPEN (development mode); anyone who can reach this port "
                "can read, write and delete everything. Set COFFER_ACCESS_KEY/COFFER_SECRET_KEY or run "
                "`coffer keys add` to require signed requests (a running server switches on its own); "
                "either key pair becomes the root user, who owns the buckets created while open."
            ),
        )
    if count == 0:
        return (
            logging.WARNING,
            "closed",
            ("authentication on with NO key pairs: every request is refused until `coffer keys add` adds one"),
        )
    return logging.INFO, "keys", f"signed requests required, {count} key pair(s) configured"
