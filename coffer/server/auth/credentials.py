"""Every key pair the server accepts: the root pair and ``credentials:`` list from
the settings, plus the pairs in the data directory's key file (``coffer keys``).

Lookups re-check the key file (one ``stat``, at most every ``RECHECK_SECONDS``),
so keys added or removed by ``coffer keys`` apply to a running server within a
fraction of a second, in every worker.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field

from coffer.config import Settings
from coffer.keystore import KeyFile, KeyStoreError, default_user_id, token_digest
from coffer.server.access.identity import compile_identity_policy
from coffer.server.access.policy import MalformedPolicy, Policy
from coffer.server.auth.principal import DEFAULT_OWNER, Principal

log = logging.getLogger("coffer.auth")

RECHECK_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    secret_key: str = field(repr=False)
    principal: Principal
    source: str  # "settings" or "keys.json": where to change it


def settings_credentials(settings: Settings) -> list[tuple[Credential, str]]:
    """(credential, token) pairs defined by the settings (token may be empty)."""
    found: list[tuple[Credential, str]] = []
    if settings.access_key:
        principal = Principal(
            settings.root_user_id or DEFAULT_OWNER.id,
            settings.root_display_name or DEFAULT_OWNER.display_name,
            settings.access_key,
        )
        found.append((Credential(settings.access_key, settings.secret_key, principal, "settings"), ""))
    for entry in settings.credentials:
        ak = entry["access_key"]
        # Validated when the settings were loaded: a bad policy never gets this far.
        policy = compile_identity_policy(entry["policy"]) if entry.get("policy") else None
        principal = Principal(entry.get("user_id") or default_user_id(ak), entry.get("display_name") or ak, ak, policy)
        found.append((Credential(ak, entry["secret_key"], principal, "settings"), entry.get("token", "")))
    return found


def signatures_required(mode: str, store: CredentialStore) -> bool:
    """Whether a server with auth ``mode`` and these keys requires signed requests.

    'auto' requires them as soon as any key pair exists, and keeps requiring them once
    ``coffer keys`` has written the key file, even after its last key was removed:
    removing a key never opens the server. ``coffer keys list`` reports the same answer.
    """
    if mode == "off":
        return False
    return mode == "on" or store.count() > 0 or store.key_file_present


class CredentialStore:
    def __init__(self, settings: Settings) -> None:
        self._static: dict[str, Credential] = {}
        self._static_tokens: dict[str, Principal] = {}
        self._emails = {
            str(entry["email"]).strip().lower(): entry.get("user_id") or default_user_id(entry["access_key"])
            for entry in settings.credentials
            if entry.get("email")
        }
        for cred, token in settings_credentials(settings):
            if cred.access_key in self._static:
                log.warning("access key %s is defined twice in the settings; the first one is used", cred.access_key)
                continue
            self._static[cred.access_key] = cred
            if token:
                self._static_tokens[token_digest(token)] = cred.principal
        self._file = KeyFile(settings.data_dir)
        self._dynamic: dict[str, Credential] = {}
        self._dynamic_tokens: dict[str, Principal] = {}
        self._names: dict[str, str] = {}
        self._checked = -1.0
        self._rebuild_names()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Pick up changes to the key file (cheap when it did not change)."""
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            changed, stored = self._file.current()
        except KeyStoreError as exc:
            log.error("%s; keeping the keys loaded before", exc)
            return
        if not changed:
            return
        dynamic: dict[str, Credential] = {}
        tokens: dict[str, Principal] = {}
        for key in stored:
            if key.access_key in self._static:
                continue  # the settings win; `coffer keys add` refuses such duplicates anyway
            policy: Policy | None = None
            if key.policy:
                try:
                    policy = compile_identity_policy(key.policy)
                except MalformedPolicy as exc:
                    # Never load the key with less restriction than its owner meant: leave it out.
                    log.error(
                        "key %s in %s has an invalid policy (%s): key disabled",
                        key.access_key,
                        self._file.path,
                        exc.reason,
                    )
                    continue
            principal = Principal(key.user_id, key.display_name, key.access_key, policy)
            dynamic[key.access_key] = Credential(key.access_key, key.secret_key, principal, "keys.json")
            if key.token_sha256:
                tokens[key.token_sha256] = principal
        self._dynamic, self._dynamic_tokens = dynamic, tokens
        self._rebuild_names()
        log.info("loaded %d key pair(s) from %s", len(dynamic), self._file.path)

    def _rebuild_names(self) -> None:
        names = {DEFAULT_OWNER.id: DEFAULT_OWNER.display_name}
        for cred in (*self._static.values(), *self._dynamic.values()):
            names.setdefault(cred.principal.id, cred.principal.display_name)
        self._names = names

    def lookup(self, access_key: str) -> Credential | None:
        self.refresh()
        return self._static.get(access_key) or self._dynamic.get(access_key)

    def by_token(self, token: str) -> Principal | None:
        """The user of a bearer token. Looked up by digest, so timing reveals nothing about tokens."""
        self.refresh()
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for table in (self._static_tokens, self._dynamic_tokens):
            for known, principal in table.items():
                if hmac.compare_digest(known, digest):
                    return principal
        return None

    def count(self) -> int:
        self.refresh()
        return len(self._static) + len(self._dynamic)

    @property
    def key_file_present(self) -> bool:
        """Whether ``coffer keys`` ever wrote this data directory's key file (even if now empty)."""
        self.refresh()
        return self._file.known_identity is not None

    def display_name(self, user_id: str) -> str:
        return self._names.get(user_id, user_id)

    def emails(self) -> dict[str, str]:
        """E-mail address (lower case) -> user id, of the settings' credentials that give one."""
        return self._emails

    def names(self) -> dict[str, str]:
        """Every known user id -> its display name (ACL grants may name only these)."""
        self.refresh()
        return self._names

    def all(self) -> list[Credential]:
        self.refresh()
        return [*self._static.values(), *self._dynamic.values()]
