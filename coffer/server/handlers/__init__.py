"""The dispatch table: S3 operation name -> handler.

Handler functions carry the AWS operation names (``async def PutObject``), so
grepping for an operation finds its code. Every public coroutine function
whose name starts with a capital letter in a handler module is an operation.
"""

from __future__ import annotations

import inspect
from types import ModuleType

from coffer.server.context import Handler
from coffer.server.handlers import (
    acl,
    attributes,
    bucket,
    bucket_access,
    bucket_config,
    bucket_encryption,
    bucket_policy,
    copy,
    cors,
    lifecycle,
    listing,
    multipart,
    notification,
    object,
    object_lock,
    post_object,
    select,
    tagging,
    versioning,
)

_MODULES: tuple[ModuleType, ...] = (
    bucket,
    bucket_config,
    bucket_policy,
    bucket_access,
    bucket_encryption,
    object,
    listing,
    cors,
    multipart,
    copy,
    attributes,
    acl,
    post_object,
    tagging,
    versioning,
    object_lock,
    select,
    lifecycle,
    notification,
)


def _build() -> dict[str, Handler]:
    table: dict[str, Handler] = {}
    for module in _MODULES:
        for name, fn in vars(module).items():
            if name[:1].isupper() and inspect.iscoroutinefunction(fn) and fn.__module__ == module.__name__:
                assert name not in table, f"two handlers for {name}"
                table[name] = fn
    return table


HANDLERS: dict[str, Handler] = _build()
