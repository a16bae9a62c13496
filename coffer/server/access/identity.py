"""Identity policies of key pairs: the presets, and turning a ``--policy`` argument into a document.

A key pair's policy is an IAM identity policy (no Principal element): it bounds what the key
may do, in its own buckets and in others' (where a bucket policy must also allow it, as
across AWS accounts). A key pair without one is like an account root user.
"""

from __future__ import annotations

import json
from pathlib import Path

from coffer.server.access.policy import MalformedPolicy, Policy, parse_policy

_ALL = "arn:aws:s3:::*"


def _doc(*actions: str) -> str:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": [_ALL]}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


PRESETS: dict[str, str] = {
    # Everything that reads: objects, listings, bucket configuration.
    "readonly": _doc("s3:Get*", "s3:List*"),
    # Everything, like no policy for the key's own buckets, but also bounding it elsewhere.
    "readwrite": _doc("s3:*"),
    # Uploads (single and multipart, resumable) without reading, listing or deleting anything:
    # a leaked backup key can then neither read nor destroy what it wrote.
    "writeonly": _doc(
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucketMultipartUploads",
        "s3:GetBucketLocation",
    ),
}


class PolicySourceError(ValueError):
    """A ``--policy`` argument that names neither a preset nor a readable valid policy file."""


def compile_identity_policy(text: str) -> Policy:
    """MalformedPolicy unless ``text`` is a valid identity policy."""
    return parse_policy(text, bucket=None)


def resolve_policy(source: str) -> str:
    """The policy text of a preset name or a JSON file, validated; "" for "none"."""
    if source == "none":
        return ""
    if source in PRESETS:
        return PRESETS[source]
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicySourceError(
            f"--policy {source}: not a preset ({', '.join(PRESETS)}, none) nor a readable file ({exc.strerror})"
        ) from None
    try:
        compile_identity_policy(text)
    except MalformedPolicy as exc:
        raise PolicySourceError(f"policy file {source} is not a valid identity policy: {exc.reason}") from None
    return text
