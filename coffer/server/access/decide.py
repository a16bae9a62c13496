"""How a request is authorized: AWS's evaluation of bucket policies and identity policies,
with each key pair's user as its own account (docs/security.md, "How authorization decides").

1. An explicit Deny in the bucket policy or in the caller's identity policy refuses
   (the bucket owner too; only the owner's management of the bucket policy itself is exempt
   from the bucket policy, as AWS never locks the owning account's root out of it).
2. The bucket owner is allowed when it has no identity policy (a key pair without one is like
   an account root user), or when its identity policy or the bucket policy allows.
3. Anyone else (another user, anonymous) needs the bucket policy to allow; a user with an
   identity policy needs that to allow too (as across AWS accounts: both sides must agree).
   With RestrictPublicBuckets and a public bucket policy, that policy's Allows reach nobody
   but the owner (its Denies still apply to everyone).
"""

from __future__ import annotations

from collections.abc import Callable

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


def allowed(
    principal: Principal,
    owner: str | None,
    compiled: BucketPolicy | None,
    action: str,
    resource: str,
    facts: Callable[[], Facts],
) -> bool:
    """Whether ``principal`` may do ``action`` on ``resource`` of a bucket owned by ``owner``
    (None: not a bucket's resource, e.g. ListBuckets). ``facts`` gives the condition-key
    values, called only when a policy is evaluated."""
    identity = principal.policy
    is_owner = owner is not None and not principal.anonymous and principal.id == owner
    if identity is None and (is_owner or owner is None):
        # Like an account root in its own account: only an explicit Deny refuses.
        if compiled is None or compiled.denies is None or action in POLICY_MANAGEMENT:
            return True
        return compiled.denies.evaluate(principal.caller(), action, resource, facts()) != "deny"
    if identity is None and compiled is None:
        return False  # a stranger, and no policy could allow it
    bucket_policy = compiled.policy if compiled is not None else None
    values = facts()
    from_identity = identity.evaluate(None, action, resource, values) if identity is not None else None
    if from_identity == "deny":
        return False
    from_bucket = None
    if bucket_policy is not None and not (is_owner and action in POLICY_MANAGEMENT):
        from_bucket = bucket_policy.evaluate(principal.caller(), action, resource, values)
        if from_bucket == "deny":
            return False
        if compiled is not None and compiled.restricted and not is_owner:
            from_bucket = None  # RestrictPublicBuckets: a public policy grants strangers nothing
    if is_owner or owner is None:
        return identity is None or from_identity == "allow" or from_bucket == "allow"
    return from_bucket == "allow" and (identity is None or from_identity == "allow")
