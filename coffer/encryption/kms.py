"""The key service: data keys for server-side encryption, wrapped by named, versioned keys.

``KeyService`` is the interface the server uses (an external KMS such as Vault transit can
implement it later); ``LocalKeyService`` is the built-in one, keeping its keys in
``<data_dir>/kms/keyring.json`` (coffer/encryption/keyring.py). docs/encryption.md ("Keys").

Every object gets a fresh 32-byte data key; the service returns it with a *wrapped* copy
(stored with the object) that only the service can turn back into the key. The wrapped blob
names its key and key version, and the wrap authenticates the key id and the caller's
encryption context (e.g. {"bucket": ..., "key": ...}): it cannot be unwrapped under another
context or moved to another key.

Two keys are managed by the service itself and made on first use:
- ``SSE_S3_KEY`` (``alias/coffer/sse-s3``): the server key ring for SSE-S3 (AES256).
- ``AWS_MANAGED_KEY`` (``alias/aws/s3``): what S3 uses for SSE-KMS without a key id.
"""

from __future__ import annotations

import re
import secrets
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer import entropy
from coffer.encryption import keyring
from coffer.encryption.keyring import KeyringError, MasterKey

if TYPE_CHECKING:
    from coffer.config import Settings

# Coffer has one key service and no AWS accounts: ARNs name this fixed placeholder account.
DEFAULT_ACCOUNT = "000000000000"
SSE_S3_KEY = "alias/coffer/sse-s3"
AWS_MANAGED_KEY = "alias/aws/s3"
_MANAGED = {SSE_S3_KEY: "SSE-S3 server key ring", AWS_MANAGED_KEY: "default key for SSE-KMS (aws/s3)"}
_RESERVED_ALIAS_PREFIXES = ("alias/aws/", "alias/coffer/")

DATA_KEY_BYTES = 32
_BLOB_MAGIC = b"CKW"  # Coffer KMS Wrapped
_BLOB_FORMAT = 1
_NONCE = 12
_TAG = 16

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MRK_RE = re.compile(r"^mrk-[0-9a-fA-F]{32}$")  # AWS multi-Region key ids: valid form, never ours
_ALIAS_RE = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]*):(?P<account>\d{12}):(?P<kind>key|alias)/(?P<rest>.+)$"
)


# -------------------------------------------------------------------------------------- errors
class KeyServiceError(Exception):
    """Base of the errors a request can meet; ``code``/``status`` are what S3 answers."""

    code = "KMS.KMSInternalException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyNotFound(KeyServiceError):
    """No such key (S3: 400 KMS.NotFoundException "Key '<arn>' does not exist")."""

    code = "KMS.NotFoundException"
    status = 400


class InvalidKeyId(KeyNotFound):
    """A key id of no form KMS knows (S3 answers 400 KMS.NotFoundException "Invalid keyId ...")."""


class KeyDisabled(KeyServiceError):
    """The key is disabled: no new data keys and, as in AWS KMS, no decrypting either."""

    code = "KMS.DisabledException"
    status = 400


class InvalidCiphertext(KeyServiceError):
    """The wrapped key is damaged or used with another encryption context or key."""

    code = "KMS.InvalidCiphertextException"
    status = 400


class KeyManagementError(KeyServiceError):
    """A management request that cannot be done (alias taken or reserved, managed key, ...)."""

    code = "InvalidArgument"
    status = 400


# --------------------------------------------------------------------------------------- types
@dataclass(frozen=True, slots=True)
class DataKey:
    plaintext: bytes = field(repr=False)
    wrapped: bytes
    key_id: str  # the ARN of the key that wrapped it
    key_version: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    arn: str
    alias: str  # "alias/name" or ""
    description: str
    enabled: bool
    created: float
    managed: bool  # made by the service (SSE_S3_KEY, AWS_MANAGED_KEY): cannot be disabled
    versions: int  # versions of key material; the newest wraps new data keys


@dataclass(frozen=True, slots=True)
class WrappedInfo:
    key_id: str  # bare key id (UUID)
    key_version: int


class KeyService(Protocol):
    """What the server needs from a key service. Key ids are accepted as AWS clients send them
    (id, alias/name, key or alias ARN); ``None`` means the SSE-S3 key (``default_key_id``)."""

    @property
    def default_key_id(self) -> str: ...

    def generate_data_key(self, key_id: str | None, context: Mapping[str, str]) -> DataKey: ...

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...

    def describe_key(self, key_id: str) -> KeyInfo: ...

    def create_key(self, *, alias: str = "", description: str = "") -> KeyInfo: ...

    def list_keys(self) -> list[KeyInfo]: ...

    def disable_key(self, key_id: str) -> KeyInfo: ...

    def enable_key(self, key_id: str) -> KeyInfo: ...

    def rotate(self, key_id: str | None = None) -> KeyInfo: ...

    def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...


# ------------------------------------------------------------------------- wrapped blob format
_U32 = struct.Struct(">I")
_ARN_NAME = "aws:s3:arn"
_ARN_PREFIX = _U32.pack(len(_ARN_NAME)) + _ARN_NAME.encode("ascii")


def _canonical_context(context: Mapping[str, str]) -> bytes:
    """The context as associated data: sorted, length-prefixed (no escaping ambiguity)."""
    if len(context) == 1:  # S3's own (the object's ARN) alone, the usual case
        ((name, value),) = context.items()
        if name == _ARN_NAME and isinstance(value, str):
            raw_value = value.encode("utf-8")
            return _ARN_PREFIX + _U32.pack(len(raw_value)) + raw_value
    out = bytearray()
    for name in sorted(context):
        value = context[name]
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("encryption context keys and values must be strings")
        for part in (name.encode("utf-8"), value.encode("utf-8")):
            out += _U32.pack(len(part)) + part
    return bytes(out)


def _blob_header(key_id: str, version: int) -> bytes:
    raw_id = key_id.encode("ascii")
    return _BLOB_MAGIC + bytes([_BLOB_FORMAT, len(raw_id)]) + raw_id + struct.pack(">I", version)


def inspect_wrapped(wrapped: bytes) -> WrappedInfo:
    """Which key and version wrapped this blob (not authenticated: decrypting checks it)."""
    if len(wrapped) < 5 or wrapped[:3] != _BLOB_MAGIC or wrapped[3] != _BLOB_FORMAT:
        raise InvalidCiphertext("the wrapped data key is not in a format this key service knows")
    id_len = wrapped[4]
    end = 5 + id_len + 4
    if len(wrapped) != end + _NONCE + DATA_KEY_BYTES + _TAG:
        raise InvalidCiphertext("the wrapped data key has the wrong length")
    try:
        key_id = wrapped[5 : 5 + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCiphertext("the wrapped data key names no valid key") from None
    (version,) = struct.unpack(">I", wrapped[5 + id_len : end])
    return WrappedInfo(key_id, version)


# ----------------------------------------------------------------------------------- key ids
@dataclass(frozen=True, slots=True)
class _Ref:
    key_id: str = ""  # bare id, lower case
    alias: str = ""  # "alias/name"


def parse_key_ref(ref: str, account: str = DEFAULT_ACCOUNT) -> _Ref:
    """A key id as AWS clients send it; InvalidKeyId when it has no known form, KeyNotFound for
    an ARN of another account (Coffer's keys live in ``account``; any region is accepted)."""
    text = ref.strip()
    match = _ARN_RE.match(text)
    if match:
        if match["account"] != account:
            raise KeyNotFound(f"Key '{text}' does not exist")
        rest = match["rest"]
        text = rest if match["kind"] == "key" else "alias/" + rest
    if _UUID_RE.match(text):
        return _Ref(key_id=text.lower())
    if _ALIAS_RE.match(text):
        return _Ref(alias=text)
    if _MRK_RE.match(text):
        raise KeyNotFound(f"Key '{ref}' does not exist")
    raise InvalidKeyId(f"Invalid keyId {ref}")


def valid_alias(alias: str) -> bool:
    return bool(_ALIAS_RE.match(alias)) and not alias.startswith(_RESERVED_ALIAS_PREFIXES) and "//" not in alias


# ----------------------------------------------------------------------------- built-in service
@dataclass(slots=True)
class _Key:
    key_id: str
    alias: str
    description: str
    enabled: bool
    created: float
    managed: bool
    materials: dict[int, bytes] = field(repr=False)  # version -> 32-byte wrapping key
    # What wrapping under the newest version needs, made once per keyring read (a data key per
    # object: rebuilding the cipher and header for each cost an encrypted 4 KiB PUT ~2 µs).
    _sealer: tuple[int, bytes, AESGCM] | None = field(default=None, repr=False, compare=False)

    @property
    def newest(self) -> int:
        return max(self.materials)

    def sealer(self) -> tuple[int, bytes, AESGCM]:
        """(newest version, its blob header, its cipher)."""
        if self._sealer is None:
            version = self.newest
            self._sealer = (version, _blob_header(self.key_id, version), AESGCM(self.materials[version]))
        return self._sealer


def _material_aad(key_id: str, version: int) -> bytes:
    return f"coffer-kms/1 material {key_id} {version}".encode("ascii")


class LocalKeyService:
    """The built-in key service over one kms directory (``<data_dir>/kms``).

    ``master`` encrypts the key material in the keyring; build it with
    ``keyring.load_master_key`` or use ``from_settings``. Safe to share a directory between
    processes: management calls notice keyring changes with one stat, the per-object calls
    (generate and decrypt a data key) within ``recheck`` seconds.
    """

    def __init__(
        self,
        directory: Path,
        master: MasterKey | bytes,
        *,
        region: str = "us-east-1",
        account: str = DEFAULT_ACCOUNT,
        recheck: float = 1.0,
    ) -> None:
        self.master = master if isinstance(master, MasterKey) else MasterKey(master, "setting")
        if len(self.master.key) != keyring.KEY_BYTES:
            raise KeyringError("the master key must be 32 bytes")
        self.dir = Path(directory)
        self.region = region
        self.account = account
        self._file = keyring.KeyringFile(self.dir, self.master.key)
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        self._keys: dict[str, _Key] = {}
        self._loaded = False
        self.recheck = recheck
        # key reference as sent -> (the keyring read it was found in, the key): parsing an ARN and
        # searching aliases once per reference, not per object
        self._resolved: dict[str | None, tuple[dict[str, _Key], _Key]] = {}
        self._next_check = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKeyService:
        master = keyring.load_master_key(
            settings.data_dir, value=settings.kms_master_key, key_file=settings.kms_master_key_file
        )
        return cls(keyring.kms_dir(settings.data_dir), master, region=settings.region)

    # ------------------------------------------------------------------------------ reading
    def check(self) -> None:
        """Read the keyring now: KeyringError when the master key is not the one it was written with."""
        self._current()

    def master_key_warning(self) -> str | None:
        return keyring.master_key_warning(self.master)

    def _parse(self, doc: dict[str, Any]) -> dict[str, _Key]:
        keys: dict[str, _Key] = {}
        try:
            for entry in doc["keys"]:
                key_id = entry["id"]
                materials = {
                    int(v["version"]): keyring.unseal(
                        self.master.key, v["material"], _material_aad(key_id, int(v["version"]))
                    )
                    for v in entry["versions"]
                }
                if not materials:
                    raise KeyringError(f"{self._file.path}: key {key_id} has no key material")
                keys[key_id] = _Key(
                    key_id,
                    entry.get("alias", ""),
                    entry.get("description", ""),
                    bool(entry["enabled"]),
                    float(entry["created"]),
                    bool(entry.get("managed", False)),
                    materials,
                )
        except (KeyError, TypeError, ValueError):
            raise KeyringError(f"{self._file.path} is not a valid keyring") from None
        return keys

    def _current(self, *, fresh: bool = True) -> dict[str, _Key]:
        """The keyring, re-read when its file changed. ``fresh=False`` (the per-object calls) looks
        at the file at most every ``recheck`` seconds: a stat releases the GIL, and taking it back
        behind the metadata writer thread cost an encrypted 4 KiB PUT ~50 µs (docs/benchmarks.md).
        A key another process disabled or rotated is thus honoured within a second, as a bucket's
        configuration is (coffer/server/bucket_state.py)."""
        now = time.monotonic()
        with self._lock:
            if self._loaded and not fresh and now < self._next_check:
                return self._keys
            identity = self._file.identity()
            if not self._loaded or identity != self._identity:
                self._keys = self._parse(self._file.read())
                self._identity, self._loaded = identity, True
            self._next_check = now + self.recheck
            return self._keys

    def _arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def _info(self, key: _Key) -> KeyInfo:
        return KeyInfo(
            key.key_id,
            self._arn(key.key_id),
            key.alias,
            key.description,
            key.enabled,
            key.created,
            key.managed,
            len(key.materials),
        )

    def _find(self, keys: Mapping[str, _Key], ref: _Ref) -> _Key | None:
        if ref.key_id:
            return keys.get(ref.key_id)
        return next((k for k in keys.values() if k.alias == ref.alias), None)

    def _resolve(self, key_id: str | None, *, fresh: bool = True) -> _Key:
        """The key a reference names; the managed keys are made on first use. ``fresh``: see
        ``_current`` (a key not found is looked up again in a fresh read)."""
        keys = self._current(fresh=fresh)
        memo = self._resolved.get(key_id)
        if memo is not None and memo[0] is keys:  # the same reference into the same keyring read
            return memo[1]
        ref = parse_key_ref(SSE_S3_KEY if key_id is None else key_id, self.account)
        key = self._find(keys, ref)
        if key is not None:
            if len(self._resolved) >= 1024:
                self._resolved.clear()
            self._resolved[key_id] = (keys, key)
        if key is None and not fresh:
            key = self._find(self._current(), ref)
        if key is None and ref.alias in _MANAGED:
            with self._file.locked():
                doc = self._file.read()
                keys = self._parse(doc)
                key = self._find(keys, ref)
                if key is None:
                    self._append_key(doc, ref.alias, _MANAGED[ref.alias], managed=True)
                    self._file.write(doc)
            key = self._find(self._current(), ref)
        if key is None:
            shown = self._arn(ref.key_id) if ref.key_id else key_id
            raise KeyNotFound(f"Key '{shown}' does not exist")
        return key

    @property
    def default_key_id(self) -> str:
        return SSE_S3_KEY

    # ------------------------------------------------------------------------------ data keys
    def _wrap(self, key: _Key, plaintext: bytes, context: Mapping[str, str], nonce: bytes | None = None) -> bytes:
        _, header, aead = key.sealer()
        if nonce is None:
            nonce = entropy.token_bytes(_NONCE)
        sealed = aead.encrypt(nonce, plaintext, header + _canonical_context(context))
        return header + nonce + sealed

    def generate_data_key(self, key_id: str | None, context: Mapping[str, str]) -> DataKey:
        key = self._resolve(key_id, fresh=False)
        if not key.enabled:
            raise KeyDisabled(f"{self._arn(key.key_id)} is disabled.")
        fresh = entropy.token_bytes(DATA_KEY_BYTES + _NONCE)  # the data key and its wrapping nonce
        plaintext = fresh[:DATA_KEY_BYTES]
        wrapped = self._wrap(key, plaintext, context, fresh[DATA_KEY_BYTES:])
        return DataKey(plaintext, wrapped, self._arn(key.key_id), key.sealer()[0])

    def _unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> tuple[_Key, bytes]:
        info = inspect_wrapped(wrapped)
        if not _UUID_RE.match(info.key_id):
            raise InvalidCiphertext("the wrapped data key names no valid key")
        key = self._current(fresh=False).get(info.key_id)
        if key is None or info.key_version not in key.materials:  # made or rotated elsewhere just now
            key = self._current().get(info.key_id)
        if key is None:
            raise KeyNotFound(f"Key '{self._arn(info.key_id)}' does not exist")
        if not key.enabled:
            raise KeyDisabled(f"{self._arn(key.key_id)} is disabled.")
        material = key.materials.get(info.key_version)
        if material is None:
            raise InvalidCiphertext("the wrapped data key names a key version that does not exist")
        split = len(wrapped) - _NONCE - DATA_KEY_BYTES - _TAG
        header, nonce, sealed = wrapped[:split], wrapped[split : split + _NONCE], wrapped[split + _NONCE :]
        try:
            return key, AESGCM(material).decrypt(nonce, sealed, header + _canonical_context(context))
        except InvalidTag:
            raise InvalidCiphertext(
                "the wrapped data key does not match its key or encryption context (or was altered)"
            ) from None

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return self._unwrap(wrapped, context)[1]

    def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """The data key wrapped under its key's newest version; ``wrapped`` itself when it already is.

        Bodies are untouched (the data key does not change). ``coffer kms rewrap``
        (coffer/encryption/rewrap.py) walks all objects to re-wrap them."""
        key, plaintext = self._unwrap(wrapped, context)
        if inspect_wrapped(wrapped).key_version == key.newest:
            return wrapped
        return self._wrap(key, plaintext, context)

    # ----------------------------------------------------------------------------- management
    def describe_key(self, key_id: str) -> KeyInfo:
        return self._info(self._resolve(key_id))

    def list_keys(self) -> list[KeyInfo]:
        return sorted((self._info(k) for k in self._current().values()), key=lambda i: (i.created, i.key_id))

    def _append_key(self, doc: dict[str, Any], alias: str, description: str, *, managed: bool = False) -> str:
        key_id = str(uuid.uuid4())
        now = time.time()
        material = keyring.seal(self.master.key, secrets.token_bytes(32), _material_aad(key_id, 1))
        doc["keys"].append(
            {
                "id": key_id,
                "alias": alias,
                "description": description,
                "enabled": True,
                "created": now,
                "managed": managed,
                "versions": [{"version": 1, "created": now, "material": material}],
            }
        )
        return key_id

    def create_key(self, *, alias: str = "", description: str = "") -> KeyInfo:
        if alias and not alias.startswith("alias/"):
            alias = "alias/" + alias
        if alias and not valid_alias(alias):
            raise KeyManagementError(
                f"invalid alias {alias!r}: alias/ then 1-250 letters, digits, '/', '_' or '-' "
                "(alias/aws/ and alias/coffer/ are reserved)"
            )
        with self._file.locked():
            doc = self._file.read()
            if alias and any(entry.get("alias") == alias for entry in doc["keys"]):
                raise KeyManagementError(f"alias {alias} already exists")
            key_id = self._append_key(doc, alias, description)
            self._file.write(doc)
        return self.describe_key(key_id)

    def _change(self, key_id: str | None, change: str) -> KeyInfo:
        target = self._resolve(key_id).key_id
        with self._file.locked():
            doc = self._file.read()
            entry = next((e for e in doc["keys"] if e["id"] == target), None)
            if entry is None:  # removed meanwhile (keys are never removed today)
                raise KeyNotFound(f"Key '{self._arn(target)}' does not exist")
            if change in ("disable", "enable"):
                if entry.get("managed") and change == "disable":
                    raise KeyManagementError(f"{entry['alias']} is managed by Coffer and cannot be disabled")
                entry["enabled"] = change == "enable"
            else:
                version = max(int(v["version"]) for v in entry["versions"]) + 1
                material = keyring.seal(self.master.key, secrets.token_bytes(32), _material_aad(target, version))
                entry["versions"].append({"version": version, "created": time.time(), "material": material})
            self._file.write(doc)
        return self.describe_key(target)

    def disable_key(self, key_id: str) -> KeyInfo:
        return self._change(key_id, "disable")

    def enable_key(self, key_id: str) -> KeyInfo:
        return self._change(key_id, "enable")

    def rotate(self, key_id: str | None = None) -> KeyInfo:
        """A new version of the key's material (default: the SSE-S3 key): new data keys are
        wrapped with it; older versions stay to unwrap what they wrapped (see ``rewrap``)."""
        return self._change(key_id, "rotate")
