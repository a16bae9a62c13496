"""The authorization state of one request, kept on it by the auth gate for the decisions
handlers still make: DeleteObjects decides per key, and x-amz-bypass-governance-retention
needs s3:BypassGovernanceRetention (coffer/server/object_lock.py)."""

from __future__ import annotations

from collections.abc import Callable

from coffer.server import acls
from coffer.server.access.acl import Acl, action_permission, owner_implicit, permits
from coffer.server.access.decide import Verdict, verdict
from coffer.server.access.facts import Facts
from coffer.server.auth.principal import Principal
from coffer.server.bucket_state import BucketPolicy
from coffer.server.public_access import PublicAccessBlock


class RequestAccess:
    __slots__ = ("_build", "_facts", "block", "bucket_acl", "owner", "policy", "principal")

    def __init__(
        self,
        principal: Principal,
        owner: str | None,
        policy: BucketPolicy | None,
        build: Callable[[], Facts],
        bucket_acl: Acl | None = None,
        block: PublicAccessBlock | None = None,
    ) -> None:
        self.principal = principal
        self.owner = owner  # the owner of the request's bucket (None: no bucket)
        self.policy = policy  # that bucket's policy
        self.bucket_acl = bucket_acl  # that bucket's ACL (None: no bucket)
        self.block = block  # its Block Public Access (IgnorePublicAcls)
        self._build = build
        self._facts: Facts | None = None

    def facts(self) -> Facts:
        """The request's condition-key values, built on first use."""
        if self._facts is None:
            self._facts = self._build()
        return self._facts

    def verdict(self, action: str, resource: str) -> Verdict:
        """What the policies say (coffer/server/access/decide.py); "acl": only an ACL can allow."""
        return verdict(self.principal, self.owner, self.policy, action, resource, self.facts)

    def allows(self, action: str, resource: str) -> bool:
        """Whether the caller may do ``action`` on ``resource`` of the request's bucket, by the
        policies or the bucket's ACL (an object's own ACL is the gate's: ``object_acl_allows``)."""
        decided = self.verdict(action, resource)
        if decided != "acl":
            return decided == "allow"
        needed = action_permission(action)
        return needed is not None and needed[0] == "bucket" and self.acl_allows(action, self.bucket_acl)

    def needs_object_acl(self, action: str) -> bool:
        """Whether ``action`` is granted by an object's ACL (reads, ACL access), not the bucket's."""
        needed = action_permission(action)
        return needed is not None and needed[0] == "object"

    def acl_allows(self, action: str, acl: Acl | None) -> bool:
        """Whether ``acl`` (of the resource ``action`` is on) grants it to the caller."""
        needed = action_permission(action)
        if acl is None or needed is None:
            return False
        acl = acls.effective(acl, self.block)
        caller = None if self.principal.anonymous else self.principal.id
        permission = needed[1]
        return permits(acl, caller, caller is not None, permission) or owner_implicit(acl, caller, permission)
