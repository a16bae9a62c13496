"""``coffer fsck``: every stored body checked against the digests its row holds.

What each version is checked against (docs/fsck.md):

- a body stored as sent, in one piece (inline or one blob file): its size, the MD5 its ETag
  is (a 32-hex ETag) and every ``x-amz-checksum-*`` value stored with it;
- a multipart object (or a copy sharing its pieces): every piece's size and MD5 (the part's
  ETag) and the part's stored checksums;
- a body stored encrypted (SSE): only the stored length (the digests are of the plaintext,
  which needs the key; a tampered frame is caught by AES-GCM when the object is read).

Problems: ``missing`` (a row references a blob file that does not exist), ``corrupt`` (size
or digest differs), ``orphan`` (a blob file no row references, older than the grace).
``repair`` moves corrupt blob files to ``quarantine/`` (with a JSON note of what referenced
them), removes the versions whose body is corrupt or missing (the next newest version of
the key becomes latest; through the metadata store, so the change is journaled) and deletes
orphans.

Resumable: after every page of rows the cursor (last row id and the findings so far) is
saved to ``fsck.cursor`` in the data directory; a run that finds one continues after it. A
complete pass removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coffer.checksums import Hasher, new_hasher
from coffer.storage.disk import records
from coffer.storage.disk.blobs import FANOUT, READ_CHUNK, FileBlobStore
from coffer.storage.disk.manifest import blob_in_use, checksums_from_doc, decode_checksums
from coffer.storage.disk.metadata import SQLiteMetadataStore

CURSOR_NAME = "fsck.cursor"
QUARANTINE = "quarantine"
PAGE = 256  # rows per page (and per cursor save)
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
# Bodies are verified on a few threads: hashlib and the CRC library release the GIL.
_WORKERS = 4
_buffers = threading.local()


@dataclass
class Problem:
    kind: str  # missing | corrupt | orphan
    blob: str | None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    detail: str = ""
    repaired: bool = False


@dataclass
class FsckReport:
    versions: int = 0  # rows checked (delete markers included)
    bytes: int = 0  # stored bytes read
    size_only: int = 0  # encrypted versions: only their stored length was checked
    problems: list[Problem] = field(default_factory=list)
    complete: bool = False  # the pass reached the last row (orphans are looked for then)
    resumed_from: int = 0

    def summary(self) -> str:
        kinds = {k: sum(1 for p in self.problems if p.kind == k) for k in ("corrupt", "missing", "orphan")}
        state = "complete" if self.complete else "interrupted (run again to resume)"
        return (
            f"fsck {state}: {self.versions} versions, {self.bytes} bytes verified"
            f" ({self.size_only} encrypted: length only); {kinds['corrupt']} corrupt, {kinds['missing']} missing,"
            f" {kinds['orphan']} orphan; {sum(p.repaired for p in self.problems)} repaired"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Body:
    """One stored byte sequence to check: a blob file or inline bytes."""

    blob: str | None
    data: bytes | None
    size: int  # expected stored length
    md5: str | None  # expected hex MD5 (None: not checkable)
    checksums: dict[str, bytes]


@dataclass
class _Version:
    id: int
    bucket: str
    key: str
    version_id: str
    bodies: list[_Body]
    encrypted: bool


_ROWS = (
    "SELECT id, bucket, key, version, is_delete_marker, size, etag, extra, blob, data FROM objects"
    " WHERE id > ? ORDER BY id LIMIT ?"
)


def _versions(conn: Any, after: int) -> list[_Version | int]:
    """The next page of rows after id ``after``: versions with bodies, or bare ids (markers)."""
    out: list[_Version | int] = []
    for object_id, bucket, key, version, marker, size, etag, extra, blob, data in conn.execute(_ROWS, (after, PAGE)):
        if marker:
            out.append(object_id)
            continue
        doc = json.loads(extra)
        encrypted = "e" in doc
        bodies: list[_Body] = []
        if doc.get("sg"):
            for psize, petag, sums, pblob, pdata, stored in conn.execute(
                "SELECT size, etag, checksums, blob, data, stored_size FROM object_parts"
                " WHERE object_id=? ORDER BY part_number",
                (object_id,),
            ):
                bodies.append(
                    _Body(
                        pblob,
                        bytes(pdata) if pdata is not None else None,
                        stored if stored is not None else psize,
                        None if encrypted or not _MD5_ETAG.fullmatch(petag) else petag,
                        {} if encrypted else decode_checksums(sums),
                    )
                )
        else:
            checkable = not encrypted and doc.get("ct", "FULL_OBJECT") != "COMPOSITE"
            bodies.append(
                _Body(
                    blob,
                    bytes(data) if data is not None else None,
                    doc["z"] if encrypted else size,
                    etag if checkable and _MD5_ETAG.fullmatch(etag) else None,
                    checksums_from_doc(doc.get("c", {})) if checkable else {},
                )
            )
        out.append(_Version(object_id, bucket, bytes(key).decode("utf-8"), version, bodies, encrypted))
    return out


# A flipped or lost byte changes any of these as surely as the MD5, at several times its speed.
_FAST = ("CRC32C", "CRC64NVME", "CRC32")


def _one_digest(body: _Body) -> _Body:
    """``body`` with one digest left to compare: a stored CRC when there is one, else the MD5,
    else the stored checksums (SHA)."""
    fast = next((a for a in _FAST if a in body.checksums), None)
    if fast is not None:
        return _Body(body.blob, body.data, body.size, None, {fast: body.checksums[fast]})
    if body.md5 is not None:
        return _Body(body.blob, body.data, body.size, body.md5, {})
    return body


def _check_body(store: FileBlobStore, body: _Body) -> tuple[str | None, str, int]:
    """(problem kind or None, detail, bytes read)."""
    # Only the digests to compare (BodyHasher would always add an MD5).
    hashers: dict[str, Hasher] = {a: new_hasher(a) for a in body.checksums}
    if body.md5 is not None:
        hashers["MD5"] = hashlib.md5()
    if body.blob is None:
        data = body.data or b""
        for h in hashers.values():
            h.update(data)
        read = len(data)
    else:
        try:
            fd = os.open(store.path_of(body.blob), os.O_RDONLY)
        except FileNotFoundError:
            return "missing", "blob file does not exist", 0
        try:
            read = 0
            if not hashers:
                read = os.fstat(fd).st_size
            else:
                # One buffer per thread, reused: a fresh 2 MiB bytes per read costs page faults.
                buffer = _buffers.__dict__.setdefault("buffer", memoryview(bytearray(READ_CHUNK)))
                while count := os.readv(fd, [buffer]):
                    for h in hashers.values():
                        h.update(buffer[:count])
                    read += count
        finally:
            os.close(fd)
    if read != body.size:
        return "corrupt", f"stored length {read}, recorded {body.size}", read
    if body.md5 is not None and hashers["MD5"].digest().hex() != body.md5:
        return "corrupt", f"MD5 {hashers['MD5'].digest().hex()}, recorded {body.md5}", read
    for algorithm, want in body.checksums.items():
        if hashers[algorithm].digest() != want:
            return "corrupt", f"{algorithm} differs from the recorded value", read
    return None, "", read if hashers else 0


class Fsck:
    def __init__(
        self,
        root: Path,
        *,
        repair: bool = False,
        resume: bool = True,
        orphan_grace: float = 3600.0,
        limit: int | None = None,
        all_digests: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.root = root
        self.repair = repair
        self.resume = resume
        self.orphan_grace = orphan_grace
        self.limit = limit  # stop after this many rows (the cursor stays: a later run resumes)
        self.all_digests = all_digests  # MD5 and every stored checksum, not just the fastest
        self.progress = progress or (lambda _n: None)
        self.cursor_path = root / CURSOR_NAME
        self.store = FileBlobStore(root, fsync=True, inline_threshold=0)
        self.meta = SQLiteMetadataStore(root / "metadata.sqlite3")

    def total_bytes(self) -> int:
        """Stored bytes still to read (for a progress bar): an estimate from the rows' sizes."""
        after = self._load_cursor()[0]
        row = (
            self.meta.reader()
            .execute("SELECT COALESCE(SUM(size), 0) FROM objects WHERE id > ? AND is_delete_marker=0", (after,))
            .fetchone()
        )
        return int(row[0])

    def _load_cursor(self) -> tuple[int, FsckReport]:
        if not self.resume:
            return 0, FsckReport()
        try:
            doc = json.loads(self.cursor_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0, FsckReport()
        report = FsckReport(versions=doc["versions"], bytes=doc["bytes"], size_only=doc["size_only"])
        report.problems = [Problem(**p) for p in doc["problems"]]
        report.resumed_from = doc["after"]
        return int(doc["after"]), report

    def _save_cursor(self, after: int, report: FsckReport) -> None:
        doc = {
            "after": after,
            "versions": report.versions,
            "bytes": report.bytes,
            "size_only": report.size_only,
            "problems": [asdict(p) for p in report.problems],
        }
        temp = self.cursor_path.with_suffix(".tmp")
        temp.write_text(json.dumps(doc))
        os.replace(temp, self.cursor_path)

    def open(self) -> None:
        self.meta.open()

    def close(self) -> None:
        self.meta.close()

    def run(self) -> FsckReport:
        after, report = self._load_cursor()
        checked = 0
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="coffer-fsck") as pool:
            while True:
                page = _versions(self.meta.reader(), after)
                if not page:
                    report.complete = True
                    break
                if self.limit is not None and checked + len(page) > self.limit:
                    page = page[: self.limit - checked]
                for entry, findings in zip(page, pool.map(self._check_version, page), strict=True):
                    report.versions += 1
                    after = entry if isinstance(entry, int) else entry.id
                    for problem, read in findings:
                        report.bytes += read
                        self.progress(read)
                        if problem is not None:
                            report.problems.append(problem)
                    if isinstance(entry, _Version) and entry.encrypted:
                        report.size_only += 1
                checked += len(page)
                self._save_cursor(after, report)
                if self.limit is not None and checked >= self.limit:
                    break
        if report.complete:
            report.problems += list(self._orphans())
            if self.repair:
                self._repair(report)
            self.cursor_path.unlink(missing_ok=True)
        return report

    def _check_version(self, entry: _Version | int) -> list[tuple[Problem | None, int]]:
        if isinstance(entry, int):
            return []
        out: list[tuple[Problem | None, int]] = []
        for body in entry.bodies:
            kind, detail, read = _check_body(self.store, body if self.all_digests else _one_digest(body))
            problem = None
            if kind is not None:
                problem = Problem(kind, body.blob, entry.bucket, entry.key, entry.version_id, detail)
            out.append((problem, read))
        return out

    def _orphans(self) -> Iterator[Problem]:
        conn = self.meta.reader()
        cutoff = time.time() - self.orphan_grace
        for sub in FANOUT:
            try:
                entries = list(os.scandir(self.store.blob_dir / sub))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    if entry.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if not blob_in_use(conn, entry.name):
                    yield Problem("orphan", entry.name, detail="no row references this blob file")

    # ------------------------------------------------------------------ repair
    def _repair(self, report: FsckReport) -> None:
        quarantine = self.root / QUARANTINE
        for problem in report.problems:
            if problem.repaired:
                continue
            if problem.kind == "orphan":
                assert problem.blob is not None
                problem.repaired = FileBlobStore._remove_if_orphan(
                    str(self.store.path_of(problem.blob)), problem.blob, lambda name: False
                )
                continue
            if problem.kind == "corrupt" and problem.blob is not None:
                path = self.store.path_of(problem.blob)
                if path.exists():
                    quarantine.mkdir(mode=0o700, exist_ok=True)
                    os.rename(path, quarantine / problem.blob)
                    note = {k: v for k, v in asdict(problem).items() if k != "repaired"}
                    (quarantine / f"{problem.blob}.json").write_text(json.dumps(note, indent=1))
            problem.repaired = self._remove_version(problem)

    def _remove_version(self, problem: Problem) -> bool:
        """Remove the version whose body is bad (journaled, like any write)."""
        assert problem.bucket is not None and problem.key is not None and problem.version_id is not None
        bucket, key, version_id = problem.bucket, problem.key, problem.version_id

        def tx(conn: Any) -> list[str]:
            slot = records.version_slot(conn, bucket, key, version_id)
            if slot is None:
                return []  # already removed (another of its pieces was bad)
            return records.remove(conn, bucket, key, slot)

        released = self.meta.write_blocking(tx)
        self.store.delete(released)
        return True
