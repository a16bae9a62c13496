"""Who a request acts as."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """A user: the id and display name S3 reports as Owner, and the access key the request used."""

    id: str
    display_name: str
    access_key: str | None = None

    @property
    def anonymous(self) -> bool:
        return not self.id


# The identity that owns everything while the server runs open (no credentials);
# also the default identity of the root key pair, so buckets created in open
# mode stay with the root user once authentication is turned on.
DEFAULT_OWNER = Principal(id=hashlib.sha256(b"coffer").hexdigest(), display_name="coffer")

# An unsigned request while authentication is on.
ANONYMOUS = Principal(id="", display_name="anonymous")
