"""Key pairs added with ``coffer keys add``, kept in ``<data_dir>/keys.json``.

The file is written whole and atomically (temp file, fsync, rename) with mode
0600, under an exclusive lock so concurrent ``coffer keys`` commands cannot
lose each other's changes. A running server re-reads it when its identity
(inode, size, mtime) changes, so added and removed keys take effect without a
restart. Bearer tokens are stored as SHA-256 digests only; secret keys must be
stored as they are (HMAC signatures are computed from them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coffer.fsutil import file_identity

FILE_NAME = "keys.json"
_LOCK_NAME = "keys.lock"
_FORMAT_VERSION = 1


class KeyStoreError(ValueError):
    """The key file cannot be read or the change cannot be made."""


@dataclass(slots=True)
class StoredKey:
    access_key: str
    secret_key: str = field(repr=False)
    user_id: str
    display_name: str
    token_sha256: str = field(default="", repr=False)
    created: float = 0.0
    # The key pair's identity policy (JSON text, validated before it is stored); "" for none.
    policy: str = ""


def default_user_id(access_key: str) -> str:
    """A stable 64-hex user id for a key pair given without one (S3 canonical ids look like this)."""
    return hashlib.sha256(b"coffer-user:" + access_key.encode("utf-8")).hexdigest()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_access_key(access_key: str) -> bool:
    return 3 <= len(access_key) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in access_key)


class KeyFile:
    """The key file of one data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / FILE_NAME
        self._identity: tuple[int, int, int] | None = None
        self._keys: list[StoredKey] = []

    # ------------------------------------------------------------------ reading
    @property
    def known_identity(self) -> tuple[int, int, int] | None:
        """The file's identity when ``current`` last looked (None: there was no file)."""
        return self._identity

    def identity(self) -> tuple[int, int, int] | None:
        return file_identity(self.path)

    def read(self) -> list[StoredKey]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
            keys = [StoredKey(**entry) for entry in doc["keys"]]
        except (ValueError, KeyError, TypeError):
            raise KeyStoreError(f"{self.path} is not a valid key file") from None
        return keys

    def current(self) -> tuple[bool, list[StoredKey]]:
        """(changed since the last call, keys): cheap when nothing changed (one stat)."""
        identity = self.identity()
        if identity == self._identity:
            return False, self._keys
        keys = self.read()
        self._identity, self._keys = identity, keys
        return True, keys

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, keys: list[StoredKey]) -> None:
        doc = {"version": _FORMAT_VERSION, "keys": [asdict(k) for k in keys]}
        temp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(doc, indent=1).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def add(
        self,
        access_key: str,
        secret_key: str,
        *,
        user_id: str = "",
        display_name: str = "",
        token: str = "",
        policy: str = "",
        taken: set[str] | None = None,
        root: tuple[str, str] | None = None,
    ) -> StoredKey:
        """Add a key pair; ``taken`` holds access keys defined elsewhere (settings).

        ``root`` (user id, display name): the identity the pair gets when no ``user_id`` is
        given and no stored pair has that identity yet (decided under the lock).
        """
        if not valid_access_key(access_key):
            raise KeyStoreError("access key must be 3-128 characters of letters, digits, '-', '_' or '.'")
        if len(secret_key) < 8:
            raise KeyStoreError("secret key must be at least 8 characters")
        with self._locked():
            keys = self.read()
            if any(k.access_key == access_key for k in keys) or access_key in (taken or set()):
                raise KeyStoreError(f"access key {access_key} already exists")
            if not user_id and root is not None and all(k.user_id != root[0] for k in keys):
                user_id, display_name = root[0], display_name or root[1]
            entry = StoredKey(
                access_key=access_key,
                secret_key=secret_key,
                user_id=user_id or default_user_id(access_key),
                display_name=display_name or access_key,
                token_sha256=token_digest(token) if token else "",
                created=time.time(),
                policy=policy,
            )
            self._write([*keys, entry])
        return entry

    def set_policy(self, access_key: str, policy: str) -> bool:
        """Replace the identity policy of ``access_key`` ("" removes it); False if there is no such key."""
        with self._locked():
            keys = self.read()
            found = [k for k in keys if k.access_key == access_key]
            if not found:
                return False
            found[0].policy = policy
            self._write(keys)
        return True

    def remove(self, access_key: str) -> bool:
        with self._locked():
            keys = self.read()
            kept = [k for k in keys if k.access_key != access_key]
            if len(kept) == len(keys):
                return False
            self._write(kept)
        return True
