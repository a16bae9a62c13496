"""How a request is authorized: AWS's evaluation of bucket policies and identity policies,
with each key pair's user as its own account (docs/security.md, "How authorization decides").

1. An explicit Deny in the bucket policy or in the caller's identity policy refuses
   (the bucket owner too; only the owner's management of the bucket policy itself is exempt
   from the bucket policy, as AWS never locks the owning account's root out of it).
2. The bucket owner is allowed when it has no identity policy (a key pair without one is like
   an account root user), or when its identity policy or the bucket policy allows.
3. Anyone else (another user, anonymous) needs the bucket policy or an ACL grant (of the
   bucket, or of the object for object reads and ACL access) to allow; a user with an identity
   policy needs that to allow too (as across AWS accounts: both sides must agree).
   With RestrictPublicBuckets and a public bucket policy, that policy's Allows reach nobody
   but the owner (its Denies still apply to everyone).

``verdict`` says which: "allow", "refuse", or "acl" (only an ACL grant can still allow; the
caller checks the ACL, coffer/server/access/request_access.py, since an object's ACL costs a
metadata read that only such requests should pay).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from coffer.server.access.facts import Facts
from coffer.server.auth.principal import Principal
from coffer.server.bucket_state import BucketPolicy

# The owner may always manage the bucket policy, whatever the bucket policy says.
POLICY_MANAGEMENT = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})

SERVICE_ARN = "arn:aws:s3:::*"


def bucket_arn(bucket: str) -> str:
    return "arn:aws:s3:::" + bucket


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


Verdict = Literal["allow", "refuse", "acl"]


def allowed(
    principal: Principal,
    owner: str | None,
    compiled: BucketPolicy | None,
    action: str,
    resource: str,
    facts: Callable[[], Facts],
) -> bool:
    """Whether policies alone let ``principal`` do ``action`` on ``resource`` (no ACL consulted)."""
    return verdict(principal, owner, compiled, action, resource, facts) == "allow"


def verdict(
    principal: Principal,
    owner: str | None,
    compiled: BucketPolicy | None,
    action: str,
    resource: str,
    facts: Callable[[], Facts],
) -> Verdict:
    """Whether ``principal`` may do ``action`` on ``resource`` of a bucket owned by ``owner``
    (None: not a bucket's resource, e.g. ListBuckets): "acl" when only an ACL grant could still
    allow it. ``facts`` gives the condition-key values, called only when a policy is evaluated."""
    identity = principal.policy
    is_owner = owner is not None and not principal.anonymous and principal.id == owner
    if identity is None and (is_owner or owner is None):
        # Like an account root in its own account: only an explicit Deny refuses.
        if compiled is None or compiled.denies is None or action in POLICY_MANAGEMENT:
            return "allow"
        return (
            "refuse" if compiled.denies.evaluate(principal.caller(), action, resource, facts()) == "deny" else "allow"
        )
    if identity is None and compiled is None:
        return "acl"  # a stranger, and no policy could allow it
    bucket_policy = compiled.policy if compiled is not None else None
    values = facts()
    from_identity = identity.evaluate(None, action, resource, values) if identity is not None else None
    if from_identity == "deny":
        return "refuse"
    from_bucket = None
    if bucket_policy is not None and not (is_owner and action in POLICY_MANAGEMENT):
        from_bucket = bucket_policy.evaluate(principal.caller(), action, resource, values)
        if from_bucket == "deny":
            return "refuse"
        if compiled is not None and compiled.restricted and not is_owner:
            from_bucket = None  # RestrictPublicBuckets: a public policy grants strangers nothing
    if is_owner or owner is None:
        # A user with an identity policy in its own bucket: ACL grants to its account do not
        # reach it (as IAM users of the owning account need an identity policy).
        ok = identity is None or from_identity == "allow" or from_bucket == "allow"
        return "allow" if ok else "refuse"
    if identity is not None and from_identity != "allow":
        return "refuse"
    return "allow" if from_bucket == "allow" else "acl"
