"""Versioning on the wire: the VersioningConfiguration document, versionId parameters and
the version headers S3 sends.

When S3 reports a version id (as AWS and clients validated against it behave):
- writes (PutObject, CopyObject, CompleteMultipartUpload, PostObject) send ``x-amz-version-id``
  only for a real version: a write in a Suspended bucket creates the null version and answers
  without the header;
- reads (GetObject, HeadObject, tagging, GetObjectAttributes) send it for every version of a
  bucket whose versioning was ever configured, ``null`` included; never for a bucket that was
  never versioned;
- deletes send what the delete did: the marker created (``null`` in a Suspended bucket) or the
  version removed, with ``x-amz-delete-marker: true`` when that is a delete marker.
"""

from __future__ import annotations

import re

from coffer.server import xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.storage.api import NULL_VERSION, VERSIONING_ENABLED, VERSIONING_SUSPENDED
from coffer.storage.versioning import is_valid_version_id

STATUSES = (VERSIONING_ENABLED, VERSIONING_SUSPENDED)
MFA_STATES = ("Enabled", "Disabled")
INVALID_VERSION = "Invalid version id specified"
# x-amz-mfa: "<device serial number> <token code>".
_MFA_HEADER = re.compile(r"^\S+ \d+$")


def check_version_id(value: str, argument: str = "versionId") -> str:
    """A version id a request names: 'null' or one this server makes, else 400 InvalidArgument."""
    if not is_valid_version_id(value):
        raise S3Error("InvalidArgument", INVALID_VERSION, ArgumentName=argument, ArgumentValue=value[:1024])
    return value


def version_param(query: dict[str, str]) -> str | None:
    """The versionId query parameter (None: the latest version)."""
    value = query.get("versionId")
    return None if value is None else check_version_id(value)


def parse_configuration(body: bytes) -> str:
    """A VersioningConfiguration document -> the status it sets (Enabled or Suspended).

    Anything but Enabled/Suspended (a missing Status included) is MalformedXML, as S3 answers;
    MfaDelete may say Disabled; Enabled needs MFA, which Coffer has no devices for.
    """
    doc = xml.parse(body)
    if doc.tag != "VersioningConfiguration":
        raise S3Error("MalformedXML")
    status = xml.child_text(doc, "Status")
    mfa = xml.child_text(doc, "MfaDelete")
    if status is None or status.strip() not in STATUSES:
        raise S3Error("MalformedXML")
    if mfa is not None and mfa.strip() not in MFA_STATES:
        raise S3Error("MalformedXML")
    if mfa is not None and mfa.strip() == "Enabled":
        raise S3Error("AccessDenied", "Mfa Authentication must be used for this request")
    return status.strip()


def check_mfa_header(value: str | None) -> None:
    """x-amz-mfa: Coffer cannot check MFA tokens, so a request that carries one is refused
    (malformed: InvalidArgument, as S3 answers; well-formed: AccessDenied, never verified)."""
    if value is None:
        return
    if not _MFA_HEADER.match(value.strip()):
        raise S3Error(
            "InvalidArgument",
            "Mfa header is invalid -- the header should be formatted as {serialNumber}(space){tokenCode}",
            ArgumentName="x-amz-mfa",
            ArgumentValue=value[:256],
        )
    raise S3Error("AccessDenied", "Mfa Authentication is not supported by this server")


def add_written_version(response: Response, version_id: str) -> None:
    """x-amz-version-id on a write: only a real version (a null write answers without it)."""
    if version_id != NULL_VERSION:
        response.header("x-amz-version-id", version_id)


async def shows_versions(ctx: Context, bucket: str, version_id: str) -> bool:
    """Whether a read reports ``version_id``: always a real one; 'null' once versioning was configured."""
    if version_id != NULL_VERSION:
        return True
    return (await ctx.bucket_states().get(bucket)).info.versioning is not None


async def add_read_version(ctx: Context, bucket: str, response: Response, version_id: str) -> None:
    if await shows_versions(ctx, bucket, version_id):
        response.header("x-amz-version-id", version_id)
