"""Who a request acts as."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from coffer.server.access.policy import Caller, Policy


@dataclass(frozen=True, slots=True)
class Principal:
    """A user: the id and display name S3 reports as Owner, the access key the request used,
    and the key pair's identity policy (None: like an account root, full access to what it owns)."""

    id: str
    display_name: str
    access_key: str | None = None
    policy: Policy | None = field(default=None, compare=False, repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.id

    def caller(self) -> Caller:
        """The caller as bucket policy Principal elements name it (made once per user)."""
        if not self.id:
            return _ANONYMOUS_CALLER
        key = (self.id, self.display_name)
        caller = _callers.get(key)
        if caller is None:
            ids = frozenset(
                (
                    self.id,
                    f"arn:aws:iam::{self.id}:root",
                    f"arn:aws:iam::{self.id}:user/{self.display_name}",
                )
            )
            caller = Caller(ids, anonymous=False)
            if len(_callers) >= 4096:
                _callers.clear()
            _callers[key] = caller
        return caller


_ANONYMOUS_CALLER = Caller(frozenset(), anonymous=True)
_callers: dict[tuple[str, str], Caller] = {}

# The identity that owns everything while the server runs open (no credentials);
# also the default identity of the root key pair, so buckets created in open
# mode stay with the root user once authentication is turned on.
DEFAULT_OWNER = Principal(id=hashlib.sha256(b"coffer").hexdigest(), display_name="coffer")

# An unsigned request while authentication is on.
ANONYMOUS = Principal(id="", display_name="anonymous")
