"""Storage engines behind one API. Nothing in this package knows about HTTP."""

from coffer.storage.api import (
    BucketInfo,
    Engine,
    ListPage,
    ObjectInfo,
    PutDigests,
)
from coffer.storage.errors import StorageError

__all__ = ["BucketInfo", "Engine", "ListPage", "ObjectInfo", "PutDigests", "StorageError"]
