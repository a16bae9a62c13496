"""SigV4 presigned GET URLs for share links and downloads, signed with the session user's secret.

The URL is verified by the ordinary auth gate when it is used, so it grants exactly what the key
pair may do (its policy and bucket policies still apply) and stops working when the pair is removed.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from coffer.server.auth import sigv4

MAX_EXPIRY = 7 * 24 * 3600  # what SigV4 allows


def presigned_get(
    *,
    scheme: str,
    host: str,
    bucket: str,
    key: str,
    access_key: str,
    secret_key: str,
    region: str,
    expires: int,
    extra: dict[str, str] | None = None,
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    timestamp = sigv4.amz_date(now)
    date = timestamp[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    path = "/" + quote(bucket, safe="") + "/" + quote(key, safe="/~")
    params = {
        "X-Amz-Algorithm": sigv4.ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": timestamp,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
        **(extra or {}),
    }
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))
    canonical = sigv4.canonical_request(
        "GET",
        sigv4.canonical_uri(path.encode("ascii")),
        sigv4.canonical_query(query.encode("ascii")),
        sigv4.canonical_headers({}, ("host",), host=host),
        ("host",),
        sigv4.UNSIGNED_PAYLOAD,
    )
    signature = sigv4.sign(
        sigv4.signing_key(access_key, secret_key, date, region),
        sigv4.string_to_sign(timestamp, scope, canonical),
    )
    return f"{scheme}://{host}{path}?{query}&X-Amz-Signature={signature}"
