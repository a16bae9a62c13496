"""The built-in key service's files: the master key and the keyring, in ``<data_dir>/kms/``.

- ``master.key``: the master key (base64 of 32 bytes), generated on first use when none is
  configured (setting/env ``kms_master_key`` or a key file ``kms_master_key_file``). It only
  encrypts the key material held in the keyring, never object data keys directly.
- ``keyring.json``: the named keys, each with versions of key material encrypted under the
  master key (AES-256-GCM, the key id and version as associated data), plus a check value
  that tells a wrong master key apart from a damaged file. The file alone is useless.

Both files are 0600 in a 0700 directory and written whole and atomically (temp file, fsync,
rename) under an exclusive ``flock`` on ``keyring.lock``, as coffer/keystore.py does for
keys.json, so ``coffer kms`` commands and several server workers cannot lose changes.
Readers notice a changed keyring by its identity (inode, size, mtime).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.fsutil import file_identity, fsync_dir

DIR_NAME = "kms"
KEYRING_NAME = "keyring.json"
MASTER_KEY_NAME = "master.key"
_LOCK_NAME = "keyring.lock"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_CHECK_AAD = b"coffer-kms/1 master-check"
_CHECK_PLAIN = b"coffer-kms master key"


class KeyringError(Exception):
    """The master key or the keyring cannot be used (missing, malformed, or the wrong master key).

    A configuration problem of the server, not of a request: the server should refuse to start
    (``LocalKeyService.check``) rather than answer requests with it.
    """

    code = "InternalError"
    status = 500


def kms_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / DIR_NAME


# ---------------------------------------------------------------------------------- master key
@dataclass(frozen=True, slots=True)
class MasterKey:
    key: bytes
    # "setting" (kms_master_key / COFFER_KMS_MASTER_KEY), "file" (kms_master_key_file),
    # "data-dir" (the generated <data>/kms/master.key, found again) or "generated" (just made).
    source: str
    path: Path | None = None

    def __repr__(self) -> str:  # never print the key
        return f"MasterKey(source={self.source!r}, path={self.path!r})"

    @property
    def beside_data(self) -> bool:
        """True when the key is stored in the data directory (the start-up warning's case)."""
        return self.source in ("data-dir", "generated")


MASTER_KEY_WARNING = (
    "the KMS master key is stored beside the data ({path}): it protects encrypted objects only "
    "against someone who gets the object files without that key file (a stolen disk's data files, "
    "a copied blob directory), not against anyone holding the whole data directory. Set "
    "kms_master_key (COFFER_KMS_MASTER_KEY) or kms_master_key_file to a key kept elsewhere "
    "(keep using this key: objects encrypted so far need it)."
)


def master_key_warning(master: MasterKey) -> str | None:
    """The start-up warning for a master key kept in the data directory, else None."""
    if not master.beside_data:
        return None
    return MASTER_KEY_WARNING.format(path=master.path)


def decode_master_key(raw: bytes | str, where: str) -> bytes:
    """A master key given as base64 text of 32 bytes (or, from a file, the 32 raw bytes)."""
    if isinstance(raw, bytes) and len(raw) == KEY_BYTES:
        return raw
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: not base64 text of a 32-byte key") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{where}: the key must be 32 bytes (got {len(key)})")
    return key


def new_master_key_text() -> str:
    """Base64 of 32 random bytes, as kms_master_key takes it (e.g. for a key kept elsewhere)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def load_master_key(
    data_dir: str | os.PathLike[str], *, value: str = "", key_file: str | os.PathLike[str] = ""
) -> MasterKey:
    """The master key, in order: ``value`` (base64), ``key_file``, else ``<data>/kms/master.key``,
    generated (0600) when it does not exist yet."""
    if value:
        return MasterKey(decode_master_key(value, "kms_master_key"), "setting")
    if key_file:
        path = Path(key_file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise KeyringError(f"cannot read kms_master_key_file {path}: {exc.strerror}") from None
        return MasterKey(decode_master_key(raw, str(path)), "file", path)
    directory = kms_dir(data_dir)
    path = directory / MASTER_KEY_NAME
    _ensure_dir(directory)
    with contextlib.suppress(FileNotFoundError):
        return MasterKey(decode_master_key(path.read_bytes(), str(path)), "data-dir", path)
    if (directory / KEYRING_NAME).exists():
        # A keyring without its key: a new key would open nothing (and hide the loss). Say so.
        raise KeyringError(
            f"{path} is missing but {directory / KEYRING_NAME} exists: restore the master key "
            "(or set kms_master_key / kms_master_key_file to it); nothing was changed"
        )
    temp = directory / f".{MASTER_KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    _write_file(temp, (new_master_key_text() + "\n").encode("ascii"))
    try:
        # link() fails if another process made the file meanwhile: then both use that one.
        os.link(temp, path)
        generated = True
    except FileExistsError:
        generated = False
    finally:
        os.unlink(temp)
    fsync_dir(directory)
    key = decode_master_key(path.read_bytes(), str(path))
    return MasterKey(key, "generated" if generated else "data-dir", path)


# ------------------------------------------------------------------------------------ keyring
def _ensure_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        os.chmod(directory, 0o700)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(master: bytes, plaintext: bytes, aad: bytes) -> str:
    """Encrypt key material under the master key: base64(nonce + ciphertext + tag)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(master).encrypt(nonce, plaintext, aad)).decode("ascii")


def unseal(master: bytes, sealed: str, aad: bytes) -> bytes:
    """The inverse of ``seal``; KeyringError when the master key or the data is not the right one."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        return AESGCM(master).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except (InvalidTag, binascii.Error, ValueError):
        raise KeyringError("keyring entry cannot be decrypted with this master key") from None


class KeyringFile:
    """``keyring.json`` of one kms directory: a JSON document read and written whole."""

    def __init__(self, directory: Path, master: bytes) -> None:
        self.dir = directory
        self.path = directory / KEYRING_NAME
        self._master = master

    def identity(self) -> tuple[int, int, int] | None:
        return file_identity(self.path)

    def read(self) -> dict[str, Any]:
        """The document ({"format", "check", "keys": [...]}), checked against the master key."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": FORMAT_VERSION, "keys": []}
        except OSError as exc:
            raise KeyringError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc: dict[str, Any] = json.loads(text)
            valid = isinstance(doc, dict) and isinstance(doc["keys"], list) and isinstance(doc["check"], str)
        except (ValueError, KeyError):
            valid = False
        if not valid:
            raise KeyringError(f"{self.path} is not a valid keyring")
        if doc.get("format") != FORMAT_VERSION:
            raise KeyringError(f"{self.path}: unknown keyring format {doc.get('format')!r}")
        try:
            unseal(self._master, doc["check"], _CHECK_AAD)
        except KeyringError:
            raise KeyringError(
                f"{self.path} was written with another master key than the one configured "
                "(kms_master_key / kms_master_key_file / kms/master.key)"
            ) from None
        return doc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        _ensure_dir(self.dir)
        fd = os.open(self.dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write(self, doc: dict[str, Any]) -> None:
        """Replace the file atomically; call under ``locked``."""
        doc = {**doc, "format": FORMAT_VERSION, "check": seal(self._master, _CHECK_PLAIN, _CHECK_AAD)}
        temp = self.dir / f".{KEYRING_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        _write_file(temp, json.dumps(doc, indent=1).encode("utf-8"))
        os.replace(temp, self.path)
        fsync_dir(self.dir)
