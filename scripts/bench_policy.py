"""Cost of Policy.evaluate: evaluations per second of a 20-statement bucket policy with
conditions (IP ranges, SecureTransport, prefixes with a policy variable, tags, dates), over
a mix of requests that end in allow, deny and no decision.

    python scripts/bench_policy.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from coffer.server.access.policy import Caller, Policy, parse_policy

BUCKET = "bench"
ARN = f"arn:aws:s3:::{BUCKET}"


def policy() -> Policy:
    statements: list[dict[str, Any]] = []
    for i in range(16):  # per-team read/write grants, each confined somehow
        statements.append(
            {
                "Sid": f"team{i}",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{1000 + i}:root", f"arn:aws:iam::{2000 + i}:user/u{i}"]},
                "Action": ["s3:GetObject*", "s3:PutObject", "s3:ListBucket"],
                "Resource": [ARN, f"{ARN}/team{i}/${{aws:username}}/*"],
                "Condition": {
                    "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
                    "StringLikeIfExists": {"s3:prefix": [f"team{i}/${{aws:username}}/*"]},
                    "DateLessThan": {"aws:CurrentTime": "2040-01-01T00:00:00Z"},
                },
            }
        )
    statements += [
        {
            "Sid": "public-read",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"{ARN}/public/*",
            "Condition": {"StringEquals": {"s3:ExistingObjectTag/visibility": "public"}},
        },
        {
            "Sid": "https-only",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [ARN, f"{ARN}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "no-public-acl",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:PutObject", "s3:PutObjectAcl"],
            "Resource": f"{ARN}/*",
            "Condition": {"StringEquals": {"s3:x-amz-acl": ["public-read", "public-read-write"]}},
        },
        {
            "Sid": "tag-keys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{ARN}/*",
            "Condition": {"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["secret", "internal"]}},
        },
    ]
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}), bucket=BUCKET)


def requests() -> list[tuple[Caller, str, str, dict[str, list[str]]]]:
    user = Caller(frozenset({"arn:aws:iam::1011:root", "arn:aws:iam::2011:user/u11", "1011"}), False)
    anon = Caller(frozenset(), True)
    base = {
        "aws:sourceip": ["10.1.2.3"],
        "aws:securetransport": ["true"],
        "aws:currenttime": ["2026-12-02T12:00:00Z"],
        "aws:username": ["u11"],
    }
    return [
        (user, "s3:GetObject", f"{ARN}/team11/u11/report.csv", base),  # allow (last team statement-ish)
        (user, "s3:PutObject", f"{ARN}/team11/u11/x", {**base, "s3:requestobjecttagkeys": ["a", "b"]}),  # allow
        (user, "s3:GetObject", f"{ARN}/team11/u12/x", base),  # no decision: someone else's prefix
        (anon, "s3:GetObject", f"{ARN}/public/logo.png", {**base, "s3:existingobjecttag/visibility": ["public"]}),
        (anon, "s3:GetObject", f"{ARN}/x", {**base, "aws:securetransport": ["false"]}),  # deny
        (user, "s3:ListBucket", ARN, {**base, "s3:prefix": ["team11/u11/"]}),  # allow
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    p = policy()
    cases = requests()
    print("decisions:", [p.evaluate(*c) for c in cases])
    start = time.perf_counter()
    parse_rounds = 0
    while time.perf_counter() - start < args.seconds / 4:
        policy()
        parse_rounds += 1
    parse_us = (time.perf_counter() - start) / parse_rounds * 1e6
    n = 0
    evaluate = p.evaluate
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < args.seconds:
        for c in cases * 100:
            evaluate(*c)
        n += len(cases) * 100
    print(f"parse + compile (20 statements): {parse_us:,.0f} us")
    print(f"evaluate: {n / elapsed:,.0f} evaluations/s ({elapsed / n * 1e6:.2f} us each, mix of {len(cases)} requests)")


if __name__ == "__main__":
    main()
