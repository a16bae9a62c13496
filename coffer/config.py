"""The one typed definition of every Coffer setting.

Defaults, validation, the documented ``config.yaml`` written by ``coffer init``
and the ``COFFER_*`` environment variable names all come from ``SETTINGS``.
Precedence: command-line flags > environment > config file > defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A setting has a value Coffer cannot use."""


def _meta(help: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"help": help, "choices": choices}


# Keys a `credentials:` entry may carry (see Settings.credentials).
CREDENTIAL_FIELDS = ("access_key", "secret_key", "user_id", "display_name", "email", "token", "policy")


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata=_meta("Address to listen on."))
    port: int = field(default=9000, metadata=_meta("TCP port to listen on."))
    data_dir: str = field(
        default="./coffer-data",
        metadata=_meta("Directory holding all data (SQLite metadata and object files)."),
    )
    data_mode: str = field(
        default="private",
        metadata=_meta(
            "Permissions of what the disk engine creates under data_dir, whatever the umask. 'private': "
            "directories 0700, files 0600 (only the server's user reads stored data). 'shared': 0750/0640, "
            "readable by the data directory's group (e.g. a backup user).",
            ("private", "shared"),
        ),
    )
    workers: int = field(
        default=1,
        metadata=_meta("Worker processes serving requests (the disk engine supports several)."),
    )
    log_level: str = field(
        default="info",
        metadata=_meta("Log verbosity.", ("debug", "info", "warning", "error")),
    )
    storage: str = field(
        default="disk",
        metadata=_meta(
            "Storage engine. 'disk': durable SQLite metadata + files under data_dir. 'memory': everything "
            "in RAM (one process), with LRU eviction, TTLs and optional snapshot+WAL persistence.",
            ("disk", "memory"),
        ),
    )
    fsync: str = field(
        default="always",
        metadata=_meta(
            "'always': every acknowledged write is on stable storage (group commit keeps it fast). "
            "'never': skip fsync; only for throwaway dev/CI data, a power loss can lose recent writes.",
            ("always", "never"),
        ),
    )
    region: str = field(
        default="us-east-1", metadata=_meta("Region reported by GetBucketLocation and accepted in requests.")
    )
    base_domains: list[str] = field(
        default_factory=lambda: ["localhost"],
        metadata=_meta(
            "Domains for virtual-hosted-style addressing: a request to "
            "'<bucket>.<domain>[:port]' addresses <bucket>. Any other Host means path style."
        ),
    )
    inline_threshold: int = field(
        default=65536,
        metadata=_meta(
            "Objects up to this many bytes are stored inside the metadata row instead of a file "
            "(see docs/benchmarks.md for the measurement behind the default). 0 disables."
        ),
    )
    dot_segment_keys: str = field(
        default="reject",
        metadata=_meta(
            "Object keys with a '.' or '..' path segment ('a/../b', './x'): 'reject' answers 400 "
            "InvalidArgument to writes of them (they become path traversals when a client mirrors a bucket "
            "to disk); 'allow' stores them as ordinary keys, as AWS S3 does.",
            ("reject", "allow"),
        ),
    )
    read_cache_bytes: int = field(
        default=32 * 1024**2,
        metadata=_meta(
            "Disk engine: bytes of recently read object metadata and inline bodies kept in memory, so "
            "repeated GETs of hot small objects skip SQLite. Any committed write invalidates it; used "
            "only with one worker (other workers' writes would not be seen). 0 disables."
        ),
    )
    journal_compact_min_bytes: int = field(
        default=64 * 1024**2,
        metadata=_meta(
            "Disk engine: the metadata journal (metadata.journal) is compacted online once it is longer "
            "than this many bytes and twice its length after the last compaction (docs/durability.md)."
        ),
    )
    max_object_size: int = field(
        default=5 * 1024**4,
        metadata=_meta("Largest object accepted by a single PUT, in bytes (S3: 5 TiB)."),
    )
    max_buckets: int = field(
        default=0,
        metadata=_meta("Most buckets the server holds; CreateBucket beyond it answers TooManyBuckets. 0: no limit."),
    )
    max_objects_per_bucket: int = field(
        default=0,
        metadata=_meta(
            "Most objects one bucket holds; a PUT of a new key beyond it answers QuotaExceeded. 0: no limit."
        ),
    )
    default_ttl_seconds: int = field(
        default=0,
        metadata=_meta(
            "Objects expire this many seconds after they are written unless their x-amz-meta-ttl-seconds "
            "metadata says otherwise. Expired objects are invisible at once and reclaimed by the reaper. "
            "0: objects never expire by default."
        ),
    )
    ttl_reaper_interval: float = field(
        default=10.0,
        metadata=_meta("Seconds between two runs of the background reaper that deletes expired objects."),
    )
    lifecycle: bool = field(
        default=True,
        metadata=_meta("Run bucket lifecycle rules (expirations, transitions, aborts) in the background."),
    )
    lifecycle_day_seconds: float = field(
        default=86400.0,
        metadata=_meta(
            "Length of one lifecycle 'day' in seconds. 86400 (a real day, due times rounded up to midnight "
            "UTC as AWS does); a few seconds makes Days rules act at once, for tests and demos (as Ceph's "
            "rgw_lc_debug_interval)."
        ),
    )
    lifecycle_interval: float = field(
        default=600.0,
        metadata=_meta("Seconds between the starts of two lifecycle passes over every bucket."),
    )
    lifecycle_page_size: int = field(
        default=1000,
        metadata=_meta("Object versions a lifecycle pass examines (and acts on in one batch) per step."),
    )
    max_memory: int = field(
        default=1024**3,
        metadata=_meta(
            "Memory engine: bytes of object data and metadata kept in RAM. Beyond it the least recently "
            "used objects are evicted; a single PUT larger than this is refused with EntityTooLarge."
        ),
    )
    memory_persistence: bool = field(
        default=False,
        metadata=_meta(
            "Memory engine: log every mutation to a write-ahead log (fsynced per the fsync setting before "
            "the write is acknowledged) and snapshot periodically, so a restart recovers the data."
        ),
    )
    memory_persistence_dir: str = field(
        default="",
        metadata=_meta("Memory engine: where the snapshot and WAL live. Empty: <data_dir>/memory."),
    )
    wal_batch_max: int = field(
        default=512,
        metadata=_meta("Memory engine: most WAL records written and fsynced together (group commit)."),
    )
    wal_batch_interval_ms: float = field(
        default=0.0,
        metadata=_meta(
            "Memory engine: after the first record of a batch, wait up to this many milliseconds for more "
            "before writing (0: write at once; records queued during an fsync still share the next one)."
        ),
    )
    snapshot_interval: float = field(
        default=300.0,
        metadata=_meta(
            "Memory engine with persistence: seconds between snapshots (each one lets the WAL before it "
            "go). A snapshot is also written on shutdown. 0: only on shutdown."
        ),
    )
    orphan_grace_seconds: int = field(
        default=3600,
        metadata=_meta(
            "Object files older than this (seconds, >= 0) that no object references are deleted by the "
            "background sweep (crash leftovers). A file whose write has not committed yet is never taken."
        ),
    )
    multipart_upload_max_age: int = field(
        default=7 * 86400,
        metadata=_meta(
            "Seconds after which a multipart upload that was neither completed nor aborted is aborted by "
            "the background sweep and its parts deleted. 0 keeps abandoned uploads forever."
        ),
    )

    # ------------------------------------------------------------------ operability
    log_format: str = field(
        default="human",
        metadata=_meta(
            "Log line format: 'human' (one readable line) or 'json' (one JSON object per line).", ("human", "json")
        ),
    )
    log_file: str = field(
        default="",
        metadata=_meta("Write logs to this file instead of stderr (rotated by size, see log_file_max_bytes)."),
    )
    log_file_max_bytes: int = field(
        default=100 * 1024 * 1024,
        metadata=_meta("Rotate the log file once it reaches this size; rotated files are gzipped."),
    )
    log_file_count: int = field(
        default=10,
        metadata=_meta("How many rotated (gzipped) log files to keep; older ones are deleted."),
    )
    access_log: bool = field(
        default=True,
        metadata=_meta("Log one line per request: request id, operation, bucket, key, status, bytes, latency, client."),
    )
    bandwidth_report_seconds: int = field(
        default=300,
        metadata=_meta("Every this many seconds each worker logs bytes received/sent and rates. 0 disables."),
    )
    metrics: bool = field(
        default=True,
        metadata=_meta("Collect Prometheus metrics and serve them at /_coffer/metrics."),
    )
    admin_port: int = field(
        default=0,
        metadata=_meta(
            "Also serve /_coffer/health, /_coffer/ready, /_coffer/metrics and the web console "
            "(/_coffer/console/) on this port (nothing else). 0 disables."
        ),
    )
    admin_host: str = field(default="127.0.0.1", metadata=_meta("Address the admin port listens on."))
    ready_min_free_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata=_meta("/_coffer/ready reports not ready when the data directory has less free space than this."),
    )
    shutdown_timeout: int = field(
        default=30,
        metadata=_meta(
            "On SIGTERM/SIGINT, seconds to let in-flight requests finish before they are cancelled; "
            "the store is flushed either way."
        ),
    )
    cors_allow_all: bool = field(
        default=False,
        metadata=_meta(
            "Development convenience: answer CORS requests from any origin for buckets without a CORS "
            "configuration of their own (and for requests outside buckets)."
        ),
    )
    public_access_block: str = field(
        default="none",
        metadata=_meta(
            "Block Public Access for buckets without a PublicAccessBlock configuration of their own. 'none': "
            "nothing blocked (bucket policies may make a bucket public). 'all': all four settings on "
            "(BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets), as S3 sets on new "
            "buckets; a bucket owner may still loosen its own bucket with PutPublicAccessBlock.",
            ("none", "all"),
        ),
    )
    compression: bool = field(
        default=True,
        metadata=_meta(
            "Compress XML/JSON responses (listings, errors) when the client accepts gzip, br or zstd. "
            "Object bodies are never altered."
        ),
    )
    compression_min_size: int = field(
        default=1024,
        metadata=_meta("Responses smaller than this many bytes are sent uncompressed."),
    )
    # ------------------------------------------------------------------ security (docs/security.md)
    auth: str = field(
        default="auto",
        metadata=_meta(
            "'auto': requests must be signed as soon as any credentials exist (settings, credentials list or "
            "`coffer keys add`), otherwise the server runs open (development mode, warned about at start). "
            "'on': always require signatures. 'off': never check them (open, development only).",
            ("auto", "on", "off"),
        ),
    )
    access_key: str = field(default="", metadata=_meta("Access key id of the root key pair (enables authentication)."))
    secret_key: str = field(
        default="", repr=False, metadata=_meta("Secret key of the root key pair; never printed or logged.")
    )
    root_user_id: str = field(
        default="",
        metadata=_meta(
            "User id (Owner ID) of the root key pair. Empty: the id that owns buckets created in open mode."
        ),
    )
    root_display_name: str = field(
        default="", metadata=_meta("Display name (Owner DisplayName) of the root key pair. Empty: 'coffer'.")
    )
    credentials: list[Any] = field(
        default_factory=list,
        repr=False,
        metadata=_meta(
            "More key pairs: a list of {access_key, secret_key, user_id, display_name, email, token, policy} "
            "mappings (user_id and display_name default to values derived from the access key; email lets ACL "
            "grants name the user by e-mail address (emailAddress=...); token is an optional "
            "bearer token; policy an optional identity policy: a JSON document or a preset name, "
            "see docs/security.md). As an environment variable or flag: the same list in JSON."
        ),
    )
    bearer_auth: bool = field(
        default=False,
        metadata=_meta(
            "Also accept 'Authorization: Bearer <token>' (tokens from the credentials list or "
            "`coffer keys add --token`); use it only over TLS."
        ),
    )
    public_hostname: str = field(
        default="",
        metadata=_meta(
            "Host (and :port) clients use to reach this server when a proxy rewrites the Host header: "
            "signatures, including presigned URLs, also verify against it."
        ),
    )
    max_request_size: int = field(
        default=5 * 1024**3,
        metadata=_meta(
            "Largest request body in bytes (one PUT, UploadPart or POST upload; S3: 5 GiB). "
            "Larger requests get EntityTooLarge."
        ),
    )
    max_header_size: int = field(
        default=16384,
        metadata=_meta("Largest total size of a request's header names and values, in bytes (400 beyond)."),
    )
    body_idle_timeout: int = field(
        default=60,
        metadata=_meta(
            "Seconds a request body may stall (no bytes arriving) before the request fails with "
            "RequestTimeout; 0 waits forever."
        ),
    )
    request_head_timeout: int = field(
        default=30,
        metadata=_meta(
            "Seconds a client has, from the first byte of a request, to send its whole request line and "
            "headers; then it gets RequestTimeout and the connection is closed (sending slowly does not "
            "extend it). 0: no limit."
        ),
    )
    keep_alive_timeout: int = field(
        default=30,
        metadata=_meta(
            "Seconds a connection may stay idle (no byte of a request) after connecting or between requests "
            "before the server closes it."
        ),
    )
    max_connections: int = field(
        default=1024,
        metadata=_meta(
            "Most open client connections per worker process; a connection beyond it is answered 503 SlowDown "
            "and closed at once (logged). Also bounded by the open-files limit. 0: no cap."
        ),
    )
    rate_limit_per_ip: int = field(
        default=0,
        metadata=_meta("Requests per second allowed from one client IP (503 SlowDown beyond); 0 disables."),
    )
    rate_limit_per_key: int = field(
        default=0,
        metadata=_meta("Requests per second allowed for one access key (503 SlowDown beyond); 0 disables."),
    )
    rate_limit_burst: int = field(
        default=0,
        metadata=_meta(
            "Requests a client may send at once above its rate (token bucket size); 0 means twice the rate."
        ),
    )
    tls_cert: str = field(
        default="", metadata=_meta("PEM certificate (chain) file: serve HTTPS instead of HTTP. Needs tls_key.")
    )
    tls_key: str = field(default="", metadata=_meta("PEM private key file of tls_cert."))
    kms_master_key: str = field(
        default="",
        repr=False,
        metadata=_meta(
            "Master key of the built-in key service (server-side encryption, docs/encryption.md, Keys): "
            "base64 of 32 random bytes (`openssl rand -base64 32`). It encrypts the keys in "
            "<data_dir>/kms/keyring.json. Empty: kms_master_key_file, else <data_dir>/kms/master.key, "
            "generated on first start (warned about: beside the data it protects less). Never printed."
        ),
    )
    kms_master_key_file: str = field(
        default="",
        metadata=_meta(
            "File holding the key service's master key (base64 of 32 bytes, or the 32 raw bytes), "
            "used when kms_master_key is empty; keep it outside the data directory, mode 0600."
        ),
    )
    sse_c_over_http: bool = field(
        default=False,
        metadata=_meta(
            "Accept SSE-C keys (x-amz-server-side-encryption-customer-key) over plain HTTP from any "
            "client. S3 refuses them without TLS, and so does Coffer except from the loopback "
            "interface; turn this on only for development behind a trusted network."
        ),
    )
    notification_targets: dict[str, Any] = field(
        default_factory=dict,
        repr=False,
        metadata=_meta(
            "Webhook targets of bucket event notifications (docs/notifications.md): a mapping of target "
            "name to {url, auth_header, queue_limit, max_attempts, timeout, retry_seconds, concurrency, "
            "batch_max}; a bucket's QueueConfiguration names one as arn:coffer:sqs:<region>::<name> "
            "(TopicConfiguration: arn:coffer:sns:...). As an environment variable or flag: the same mapping in JSON."
        ),
    )

    # ------------------------------------------------------------------ helpers
    def validate(self) -> Settings:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)} (got {value!r})")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535 (got {self.port})")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.inline_threshold < 0:
            raise ConfigError("inline_threshold must be >= 0")
        if self.journal_compact_min_bytes < 0:
            raise ConfigError("journal_compact_min_bytes must be >= 0")
        if self.read_cache_bytes < 0:
            raise ConfigError("read_cache_bytes must be >= 0")
        if not 0 <= self.admin_port <= 65535:
            raise ConfigError(f"admin_port must be 0..65535 (got {self.admin_port})")
        if self.admin_port and self.admin_port == self.port:
            raise ConfigError("admin_port must differ from port")
        for name in ("log_file_max_bytes", "log_file_count", "bandwidth_report_seconds", "shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.orphan_grace_seconds < 0:
            raise ConfigError(f"orphan_grace_seconds must be >= 0 (got {self.orphan_grace_seconds})")
        if self.multipart_upload_max_age < 0:
            raise ConfigError("multipart_upload_max_age must be >= 0")
        if self.storage == "memory" and self.workers != 1:
            raise ConfigError(
                "storage 'memory' keeps all data inside one process: workers must be 1 "
                f"(got {self.workers}); use storage 'disk' for several workers"
            )
        for name in ("max_buckets", "max_objects_per_bucket", "default_ttl_seconds", "wal_batch_interval_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.max_memory < 1:
            raise ConfigError("max_memory must be at least 1 byte")
        if self.lifecycle_day_seconds <= 0 or self.lifecycle_interval <= 0:
            raise ConfigError("lifecycle_day_seconds and lifecycle_interval must be > 0")
        if not 1 <= self.lifecycle_page_size <= 10000:
            raise ConfigError("lifecycle_page_size must be between 1 and 10000")
        if self.ttl_reaper_interval <= 0:
            raise ConfigError("ttl_reaper_interval must be > 0")
        if self.wal_batch_max < 1:
            raise ConfigError("wal_batch_max must be at least 1")
        if self.snapshot_interval < 0:
            raise ConfigError("snapshot_interval must be >= 0")
        if bool(self.access_key) != bool(self.secret_key):
            raise ConfigError("access_key and secret_key must be given together")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.kms_master_key:
            from coffer.encryption.keyring import KeyringError, decode_master_key

            try:
                decode_master_key(self.kms_master_key, "kms_master_key")
            except KeyringError as exc:
                raise ConfigError(str(exc)) from None
        for name in (
            "max_request_size",
            "max_header_size",
            "body_idle_timeout",
            "request_head_timeout",
            "max_connections",
            "rate_limit_per_ip",
            "rate_limit_per_key",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.keep_alive_timeout < 1:
            raise ConfigError("keep_alive_timeout must be at least 1")
        if self.rate_limit_burst < 0:
            raise ConfigError("rate_limit_burst must be >= 0")
        self.credentials = [_check_credential(i, entry) for i, entry in enumerate(self.credentials)]
        from coffer.events.targets import TargetError, parse_targets

        try:
            parse_targets(self.notification_targets)
        except TargetError as exc:
            raise ConfigError(str(exc)) from None
        return self

    def store_dir(self) -> str | None:
        """The directory holding the stored data (locked by a running server), or None (memory only)."""
        if self.storage == "disk":
            return self.data_dir
        if self.memory_persistence:
            return self.memory_persistence_dir or os.path.join(self.data_dir, "memory")
        return None

    def max_put_size(self) -> int:
        """Largest body one PUT may carry: the memory engine cannot hold more than max_memory."""
        if self.storage == "memory":
            return min(self.max_object_size, self.max_memory)
        return self.max_object_size

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text)).validate()


def _check_credential(index: int, entry: Any) -> dict[str, str]:
    where = f"credentials[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with access_key and secret_key")
    unknown = set(entry) - set(CREDENTIAL_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    policy = entry.get("policy")
    checked = {str(k): str(v) for k, v in entry.items() if v is not None and k != "policy"}
    for required in ("access_key", "secret_key"):
        if not checked.get(required):
            raise ConfigError(f"{where}: {required} is required")
    if policy is not None:
        checked["policy"] = _check_policy(where, policy)
    return checked


def _check_policy(where: str, policy: Any) -> str:
    """A credential's identity policy: a JSON string, or the document as a YAML mapping; "" for none."""
    from coffer.server.access.identity import PRESETS, compile_identity_policy
    from coffer.server.access.policy import MalformedPolicy

    if isinstance(policy, dict):
        text = json.dumps(policy)
    elif isinstance(policy, str):
        text = PRESETS.get(policy.strip(), policy)
    else:
        raise ConfigError(f"{where}.policy: expected a policy document (mapping or JSON string) or a preset name")
    if policy in ("", "none"):
        return ""
    try:
        compile_identity_policy(text)
    except MalformedPolicy as exc:
        raise ConfigError(f"{where}.policy: not a valid identity policy: {exc.reason}") from None
    return text


def env_name(name: str) -> str:
    return "COFFER_" + name.upper()


def _coerce(name: str, raw: Any, target: Any) -> Any:
    """Turn a file or env value into the type of the setting's default."""
    try:
        if isinstance(target, bool):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if isinstance(target, int):
            return int(raw)
        if isinstance(target, float):
            return float(raw)
        if isinstance(target, dict):
            if isinstance(raw, str):
                raw = yaml.safe_load(raw) or {}  # a JSON/YAML mapping (e.g. COFFER_NOTIFICATION_TARGETS)
            if not isinstance(raw, dict):
                raise ValueError("expected a mapping")
            return raw
        if isinstance(target, list):
            if isinstance(raw, str) and raw.strip().startswith("["):
                raw = yaml.safe_load(raw)  # a JSON/YAML list (e.g. COFFER_CREDENTIALS)
            if isinstance(raw, list):
                return [x if isinstance(x, dict) else str(x) for x in raw]
            return [x.strip() for x in str(raw).split(",") if x.strip()]
        return str(raw)
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{name}: cannot use this value: {exc}") from None


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build settings: defaults < config file < ``COFFER_*`` env < explicit overrides (flags)."""
    environ = dict(os.environ) if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    config_file = config_file or environ.get("COFFER_CONFIG")
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping of settings")
        known = {f.name for f in fields(Settings)}
        for key, raw in loaded.items():
            if key not in known:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, getattr(defaults, key))
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.name, raw, getattr(defaults, f.name))
    for key, raw in (overrides or {}).items():
        if raw is not None:
            values[key] = _coerce(key, raw, getattr(defaults, key))
    return Settings(**{**{f.name: getattr(defaults, f.name) for f in fields(Settings)}, **values}).validate()


def render_config_yaml() -> str:
    """A fully commented config.yaml holding every setting at its default."""
    lines = [
        "# Coffer configuration. Every setting is shown at its default.",
        "# Precedence: command-line flags > COFFER_* environment variables > this file > defaults.",
        "",
    ]
    defaults = Settings()
    for f in fields(Settings):
        lines.append(f"# {f.metadata['help']}")
        if f.metadata.get("choices"):
            lines.append(f"# One of: {', '.join(f.metadata['choices'])}.")
        lines.append(f"# Environment: {env_name(f.name)}")
        dumped = yaml.safe_dump({f.name: getattr(defaults, f.name)}, default_flow_style=True, width=1000)
        lines.append(dumped.strip().strip("{}"))
        lines.append("")
    return "\n".join(lines)


def settings_help() -> list[tuple[str, str]]:
    return [(f.name, str(f.metadata["help"])) for f in fields(Settings)]
