"""What every handler receives besides the request, and the handler type itself.

Apart from ``app.py`` so handler modules import it without importing the
application (which imports the handler table).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coffer.config import Settings
from coffer.server.acls import Users
from coffer.server.auth.principal import Principal
from coffer.server.bucket_state import BucketStates
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.storage.api import Engine

if TYPE_CHECKING:
    from coffer.encryption.kms import KeyService
    from coffer.events.notifier import Notifier
    from coffer.server.auth.gate import AuthGate

# Who a request acts as is ``req.principal`` (set by the auth gate); DEFAULT_OWNER
# owns everything while the server runs open.
Owner = Principal


@dataclass(slots=True)
class Context:
    """What every handler receives besides the request."""

    engine: Engine
    settings: Settings
    owner: Owner
    # Authentication state (credential lookups for handlers that authenticate themselves, e.g. PostObject).
    auth: AuthGate | None = None
    # Bucket versioning and Object Lock state, cached briefly (bucket_state.py).
    buckets: BucketStates | None = None
    # The key service of server-side encryption, made on first use (``keys``).
    kms: KeyService | None = None
    # Event notifications (coffer/events); None: an app built without one (tests of handlers alone).
    notifier: Notifier | None = None

    def keys(self) -> KeyService:
        """The key service, opened on first use: a server that never encrypts makes no key files."""
        if self.kms is None:
            from coffer.encryption.kms import LocalKeyService

            service = LocalKeyService.from_settings(self.settings)
            service.check()  # a wrong master key fails here, not as garbage later
            warning = service.master_key_warning()
            if warning:
                logging.getLogger("coffer.server").warning("%s", warning)
            self.kms = service
        return self.kms

    def users(self) -> Users:
        """The users ACLs may name, with their display names."""
        if self.auth is not None and self.auth.enabled:
            return Users(self.auth.store.names(), self.auth.store.emails())
        return Users({self.owner.id: self.owner.display_name})

    def bucket_states(self) -> BucketStates:
        if self.buckets is None:
            self.buckets = BucketStates(self.engine)
        return self.buckets


Handler = Callable[[Context, Request], Awaitable[Response]]
