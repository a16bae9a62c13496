"""Storage-level failures. The server maps each class to its S3 error code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.storage.api import ObjectInfo


class StorageError(Exception):
    """Base class; ``code`` names the S3 error the server should answer with."""

    code = "InternalError"

    def __init__(self, message: str = "", **context: str) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.context = context


class NoSuchBucket(StorageError):
    """The specified bucket does not exist."""

    code = "NoSuchBucket"


class BucketAlreadyExists(StorageError):
    """The requested bucket name is not available."""

    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(StorageError):
    """Your previous request to create the named bucket succeeded and you already own it."""

    code = "BucketAlreadyOwnedByYou"


class BucketNotEmpty(StorageError):
    """The bucket you tried to delete is not empty."""

    code = "BucketNotEmpty"


class _AboutMarker(StorageError):
    """An error about a delete marker: the server answers with its headers
    (x-amz-delete-marker, x-amz-version-id, Last-Modified)."""

    def __init__(self, message: str = "", *, marker: ObjectInfo | None = None, **context: str) -> None:
        super().__init__(message, **context)
        self.marker = marker


class NoSuchKey(_AboutMarker):
    """The specified key does not exist."""

    code = "NoSuchKey"


class NoSuchVersion(StorageError):
    """The specified version does not exist."""

    code = "NoSuchVersion"


class MethodNotAllowed(_AboutMarker):
    """The specified method is not allowed against this resource."""

    code = "MethodNotAllowed"


class ObjectLocked(StorageError):
    """Object Lock (a retention or a legal hold) protects the version.

    Raised with versioning.LOCKED_MESSAGE, S3's text, which the server then sends (a message
    equal to the docstring would be replaced by the code's generic one)."""

    code = "AccessDenied"


class InvalidBucketState(StorageError):
    """The request is not valid with the current state of the bucket."""

    code = "InvalidBucketState"


class PreconditionFailed(StorageError):
    """At least one of the pre-conditions you specified did not hold."""

    code = "PreconditionFailed"


class ConditionalRequestConflict(StorageError):
    """A conflicting operation occurred. If using PutObject you can retry the request."""

    code = "ConditionalRequestConflict"


class EntityTooLarge(StorageError):
    """Your proposed upload exceeds the maximum allowed size."""

    code = "EntityTooLarge"


class ServiceUnavailable(StorageError):
    """The store is shutting down or cannot serve the request right now."""

    code = "ServiceUnavailable"


class NoSuchUpload(StorageError):
    """The specified multipart upload does not exist."""

    code = "NoSuchUpload"


class InvalidPart(StorageError):
    """One or more of the specified parts could not be found or did not match."""

    code = "InvalidPart"


class InvalidPartOrder(StorageError):
    """The list of parts was not in ascending order."""

    code = "InvalidPartOrder"


class EntityTooSmall(StorageError):
    """Your proposed upload is smaller than the minimum allowed object size."""

    code = "EntityTooSmall"


class InvalidRange(StorageError):
    """The requested range is not satisfiable."""

    code = "InvalidRange"


class InvalidRequest(StorageError):
    """The request is not valid for the current state of the resource."""

    code = "InvalidRequest"


class EncodedSource(InvalidRequest):
    """A copy source stored transformed (encrypted): the engine does not copy its bytes; the
    caller decodes and re-encodes it."""


class BadDigest(StorageError):
    """A checksum you specified did not match the calculated checksum."""

    code = "BadDigest"


class TooManyBuckets(StorageError):
    """You have attempted to create more buckets than allowed."""

    code = "TooManyBuckets"


class QuotaExceeded(StorageError):
    """The bucket holds the maximum number of objects allowed."""

    code = "QuotaExceeded"


class SlowDown(StorageError):
    """The server is out of memory for uploads in progress; retry shortly."""

    code = "SlowDown"
