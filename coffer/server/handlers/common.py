"""Pieces shared by several handler modules."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from coffer.server import acls, sse, xml
from coffer.server.context import Context, Owner
from coffer.server.errors import S3Error
from coffer.server.http import INT32_MAX, Response, parse_int
from coffer.server.request import Request

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> None:
    """S3's naming rules for new buckets (general purpose buckets)."""
    if (
        not _BUCKET_RE.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _IP_RE.match(name)
        or name.startswith(_RESERVED_PREFIXES)
        or name.endswith(_RESERVED_SUFFIXES)
    ):
        raise S3Error("InvalidBucketName", BucketName=name)


def owner_xml(owner_id: str, display_name: str, tag: str = "Owner") -> str:
    return f"<{tag}>{xml.elem('ID', owner_id)}{xml.elem('DisplayName', display_name)}</{tag}>"


def owner_of(owner: Owner) -> str:
    return owner_xml(owner.id, owner.display_name)


def display_name(ctx: Context, req: Request, user_id: str) -> str:
    """The display name of a user id kept in metadata (the id itself for unknown users)."""
    if user_id == req.principal.id:
        return req.principal.display_name
    if ctx.auth is not None:
        return ctx.auth.store.display_name(user_id)
    return ctx.owner.display_name if user_id == ctx.owner.id else user_id


def stored_owner_xml(ctx: Context, req: Request, user_id: str) -> str:
    """Owner XML for an owner id kept in metadata, with that user's display name."""
    return owner_xml(user_id, display_name(ctx, req, user_id))


def parse_max(value: str | None, name: str, default: int, cap: int) -> int:
    """max-keys / max-uploads / max-parts: an integer >= 0, capped at ``cap``."""
    if value is None or value == "":
        return default
    if value.strip().startswith("-"):
        return parse_int(value, name, 0, INT32_MAX)  # S3's message for a negative count
    return min(
        parse_int(value, name, 0, INT32_MAX, message=f"Provided {name} not an integer or within integer range"), cap
    )


def xml_response(body: bytes, status: int = 200) -> Response:
    response = Response(status, body=body)
    response.header("content-type", "application/xml")
    return response


async def store_bucket_config(ctx: Context, bucket: str, name: str, document: Any) -> None:
    """Store a bucket configuration document (None: delete it) and drop this process's cached
    state of the bucket, which holds the compiled configuration (coffer/server/bucket_state.py)."""
    await ctx.engine.put_bucket_config(bucket, name, document)
    ctx.bucket_states().forget(bucket)


async def delete_bucket_config(ctx: Context, req: Request, name: str) -> Response:
    """A DeleteBucket<Configuration>: 204, whether or not there was one (NoSuchBucket first)."""
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)
    await store_bucket_config(ctx, req.bucket, name, None)
    return Response(204)


def key_encoder(req: Request) -> Callable[[str], str]:
    """How listings write keys and prefixes: XML-escaped, URL-encoded first with encoding-type=url."""
    encoding = req.query.get("encoding-type")
    if encoding is None:
        return xml.esc
    if encoding.lower() != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=encoding,
        )
    return lambda value: xml.esc(quote(value, safe="/"))


async def acl_for_write(
    ctx: Context, req: Request, fields: Mapping[str, str] | None = None, writer: str | None = None
) -> tuple[str, Any]:
    """(owner, ACL document) of the object a write creates, from its ACL headers (``fields``: a
    POST form's, as header names; ``writer``: who signed the form) and the bucket's ownership
    controls (coffer/server/acls.py). The first object another user owns marks the bucket
    (``acls.FOREIGN_CONFIG``), before the object exists, so the owner's reads check ownership."""
    assert req.bucket is not None
    states = ctx.bucket_states()
    state = await states.get(req.bucket)  # NoSuchBucket first
    owner, acl = acls.for_new_object(
        req.headers if fields is None else fields,
        req.principal.id if writer is None else writer,
        state.info.owner,
        state.ownership,
        state.public_access_block,
        ctx.users,
    )
    if owner != state.info.owner and not state.foreign_objects:
        await ctx.engine.put_bucket_config(req.bucket, acls.FOREIGN_CONFIG, True)
        states.forget(req.bucket)
    return owner, acl


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_transport(ctx: Context, req: Request, customer: sse.CustomerKey | None) -> None:
    if customer is not None:  # the address is parsed only for the rare SSE-C request
        secure = bool(ctx.settings.tls_cert)
        sse.check_transport(customer, secure, _loopback(req.client_ip), ctx.settings.sse_c_over_http)


def customer_key(ctx: Context, req: Request, prefix: str = sse.CUSTOMER_PREFIX) -> sse.CustomerKey | None:
    """The request's SSE-C key (``prefix``: a copy source's), refused over plain HTTP as S3 does
    (except from loopback, or with the ``sse_c_over_http`` setting)."""
    customer = sse.parse_customer(req.headers, prefix)
    _check_transport(ctx, req, customer)
    return customer


async def encryption_for_write(ctx: Context, req: Request, fields: Mapping[str, str] | None = None) -> sse.SseRequest:
    """The encryption a write asks for (headers, or a POST form's ``fields``), else its bucket's default."""
    assert req.bucket is not None
    request = sse.parse_write(req.headers if fields is None else fields)
    _check_transport(ctx, req, request.customer)
    return sse.with_default(request, (await ctx.bucket_states().get(req.bucket)).encryption)
