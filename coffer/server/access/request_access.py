"""The authorization state of one request, kept on it by the auth gate for the decisions
handlers still make: DeleteObjects decides per key, and x-amz-bypass-governance-retention
needs s3:BypassGovernanceRetention (coffer/server/object_lock.py)."""

from __future__ import annotations

from collections.abc import Callable

from coffer.server.access.decide import allowed
from coffer.server.access.facts import Facts
from coffer.server.auth.principal import Principal
from coffer.server.bucket_state import BucketPolicy


class RequestAccess:
    __slots__ = ("_build", "_facts", "owner", "policy", "principal")

    def __init__(
        self, principal: Principal, owner: str | None, policy: BucketPolicy | None, build: Callable[[], Facts]
    ) -> None:
        self.principal = principal
        self.owner = owner  # the owner of the request's bucket (None: no bucket)
        self.policy = policy  # that bucket's policy
        self._build = build
        self._facts: Facts | None = None

    def facts(self) -> Facts:
        """The request's condition-key values, built on first use."""
        if self._facts is None:
            self._facts = self._build()
        return self._facts

    def allows(self, action: str, resource: str) -> bool:
        """Whether the caller may do ``action`` on ``resource`` of the request's bucket."""
        return allowed(self.principal, self.owner, self.policy, action, resource, self.facts)
