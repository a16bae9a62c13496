"""The route table: one typed entry per S3 operation (coffer/server/router.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from coffer.server import router
from coffer.server.handlers import HANDLERS
from coffer.server.request import Request

_ACTION = re.compile(r"s3:[A-Z][A-Za-z]+")


def test_every_route_has_an_iam_action_and_a_unique_name() -> None:
    names = [route.name for route in router.ROUTES]
    assert len(names) == len(set(names))
    for route in router.ROUTES:
        if route.authorizer == "none":  # a CORS preflight: never signed, never evaluated by IAM
            assert route.action == ""
        else:
            assert _ACTION.fullmatch(route.action), route
        assert route.resource in ("service", "bucket", "object")
        assert route.access in ("read", "write", "owner")


def test_every_handler_resolves_to_a_route() -> None:
    routed = {route.name for route in router.ROUTES}
    assert set(HANDLERS) <= routed, set(HANDLERS) - routed


def _request(method: str, path: str, query: bytes = b"", headers: dict[str, str] | None = None) -> Request:
    scope: dict[str, Any] = {
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    return Request(scope, receive, ())


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "name", "action"),
    [
        ("GET", "/", b"", {}, "ListBuckets", "s3:ListAllMyBuckets"),
        ("PUT", "/b", b"", {}, "CreateBucket", "s3:CreateBucket"),
        ("GET", "/b", b"list-type=2", {}, "ListObjectsV2", "s3:ListBucket"),
        ("GET", "/b", b"uploads", {}, "ListMultipartUploads", "s3:ListBucketMultipartUploads"),
        ("PUT", "/b/k", b"", {}, "PutObject", "s3:PutObject"),
        ("PUT", "/b/k", b"", {"x-amz-copy-source": "/b/x"}, "CopyObject", "s3:PutObject"),
        ("PUT", "/b/k", b"uploadId=u&partNumber=1", {"x-amz-copy-source": "/b/x"}, "UploadPartCopy", "s3:PutObject"),
        ("PUT", "/b/k", b"tagging", {"x-amz-copy-source": "/b/x"}, "PutObjectTagging", "s3:PutObjectTagging"),
        ("DELETE", "/b/k", b"uploadId=u", {}, "AbortMultipartUpload", "s3:AbortMultipartUpload"),
        ("OPTIONS", "/b/k", b"", {}, "PreflightRequest", ""),
    ],
)
def test_classify(method: str, path: str, query: bytes, headers: dict[str, str], name: str, action: str) -> None:
    route = router.classify(_request(method, path, query, headers))
    assert route is not None and (route.name, route.action) == (name, action)


def test_copy_routes_read_their_source() -> None:
    assert {r.name for r in router.ROUTES if r.reads_copy_source} == {"CopyObject", "UploadPartCopy"}
    assert router.classify(_request("PATCH", "/b/k")) is None
