"""Re-wrapping stored data keys under their key's newest version (``coffer kms rewrap``).

After ``coffer kms rotate`` new objects get data keys wrapped by the new key version; objects
written before keep the wrap of the version they were written under (still readable: old
versions are kept). ``rewrap_all`` walks every stored version and replaces its wrapped data key
(the document's "w", coffer/server/encryption.py) with one wrapped by the newest version. The
data key itself does not change, so bodies are not touched: only the document is rewritten
(``Engine.put_object_encoding``).

Left as they are:
- SSE-C versions: their data key is wrapped by the customer's key, which Coffer never keeps.
- Open multipart uploads (``UploadInfo.encoding``): they keep their wrap, which stays readable;
  the object a completed upload becomes is re-wrapped by the next run.

Run it with the server stopped (the CLI takes the data directory's server lock): a version
written or re-wrapped by a server meanwhile would be missed or raced.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coffer.encryption.kms import KeyService, KeyServiceError
from coffer.storage import errors
from coffer.storage.api import Engine

# The document's mode of a customer-keyed version (coffer.server.encryption.SSE_C; storage and
# this module know nothing of the server, so the value is repeated and a test keeps them equal).
SSE_C = "SSE-C"
_PAGE = 1000

# progress(outcome, bucket, key, version_id): outcome is one of the report's counters' names.
Progress = Callable[[str, str, str, str], None]


@dataclass(frozen=True, slots=True)
class Failure:
    bucket: str
    key: str
    version_id: str
    reason: str


@dataclass(slots=True)
class RewrapReport:
    dry_run: bool = False
    examined: int = 0  # object versions looked at (delete markers are not)
    rewrapped: int = 0  # re-wrapped (dry run: would be)
    current: int = 0  # already wrapped by the newest version
    unencrypted: int = 0  # stored as sent
    skipped: int = 0  # SSE-C: wrapped by the customer's key
    failures: list[Failure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        verb = "would re-wrap" if self.dry_run else "re-wrapped"
        return (
            f"{self.examined} object version(s) examined: {verb} {self.rewrapped}, "
            f"{self.current} already current, {self.unencrypted} not encrypted, "
            f"{self.skipped} skipped (SSE-C), {self.failed} failed"
        )


def _new_document(keys: KeyService, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The document with its data key re-wrapped, or None when it already is current."""
    try:
        wrapped = base64.b64decode(str(doc["w"]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        raise ValueError("its encryption document holds no valid wrapped data key") from None
    context = doc.get("c") or {}
    rewrapped = keys.rewrap(wrapped, context)
    if rewrapped == wrapped:
        return None
    return {**doc, "w": base64.b64encode(rewrapped).decode("ascii")}


async def rewrap_all(
    engine: Engine, keys: KeyService, *, dry_run: bool = False, progress: Progress | None = None
) -> RewrapReport:
    """Re-wrap the data key of every encrypted version of every bucket under its key's newest
    version. One version failing (key disabled or missing, damaged document) is recorded in
    the report and the walk goes on."""
    report = RewrapReport(dry_run=dry_run)
    for bucket in await engine.list_buckets():
        key_marker, version_marker = "", ""
        while True:
            page = await engine.list_object_versions(
                bucket.name, key_marker=key_marker, version_id_marker=version_marker, max_keys=_PAGE
            )
            for entry in page.entries:
                if entry.delete_marker:
                    continue
                outcome = await _one(engine, keys, report, bucket.name, entry.key, entry.version_id)
                if progress is not None:
                    progress(outcome, bucket.name, entry.key, entry.version_id)
            if not page.is_truncated or page.next_key_marker is None:
                break
            key_marker, version_marker = page.next_key_marker, page.next_version_id_marker or ""
    return report


async def _one(engine: Engine, keys: KeyService, report: RewrapReport, bucket: str, key: str, version: str) -> str:
    report.examined += 1
    try:
        info = await engine.head_object(bucket, key, version_id=version)
        doc = info.encoding
        if doc is None:
            report.unencrypted += 1
            return "unencrypted"
        if doc.get("a") == SSE_C:
            report.skipped += 1
            return "skipped"
        new = _new_document(keys, doc)
        if new is None:
            report.current += 1
            return "current"
        if not report.dry_run:
            await engine.put_object_encoding(bucket, key, new, version_id=version)
        report.rewrapped += 1
        return "rewrapped"
    except KeyServiceError as exc:
        reason = f"{exc.code}: {exc.message}"
    except errors.StorageError as exc:
        reason = f"{type(exc).__name__}: {exc}"
    except (ValueError, TypeError) as exc:  # a damaged document (context values not strings, ...)
        reason = str(exc)
    report.failures.append(Failure(bucket, key, version, reason))
    return "failed"
