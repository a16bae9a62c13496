"""A disk store with every kind of object, built through a real server, and what S3 shows of it
(for fsck and rebuild-index tests: the state before and after must be identical)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
PLAIN, VERSIONED = "plain", "versioned"


def populate(s3: Any) -> None:
    """Plain, tagged, with metadata and ACL, checksummed, multipart, copied, SSE-S3, versioned
    with delete markers, bucket configuration documents."""
    s3.create_bucket(Bucket=PLAIN)
    s3.put_bucket_tagging(Bucket=PLAIN, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    s3.put_object(Bucket=PLAIN, Key="small", Body=b"tiny body", ContentType="text/plain", Metadata={"a": "1"})
    s3.put_object(Bucket=PLAIN, Key="big", Body=b"b" * 200_000, ChecksumAlgorithm="CRC32")
    s3.put_object(Bucket=PLAIN, Key="tagged", Body=b"t" * 70_000, Tagging="colour=blue&size=large")
    s3.put_object(Bucket=PLAIN, Key="public", Body=b"p" * 100, ACL="public-read")
    s3.put_object(Bucket=PLAIN, Key="secret", Body=b"s" * 100_000, ServerSideEncryption="AES256")
    s3.put_object(Bucket=PLAIN, Key="secret-small", Body=b"x" * 1000, ServerSideEncryption="AES256")
    s3.put_object(Bucket=PLAIN, Key="dir/ünïcode key", Body=b"u" * 10)
    upload = s3.create_multipart_upload(Bucket=PLAIN, Key="multi", ContentType="application/x-multi")
    parts = []
    for number, body in ((1, b"1" * (5 * MiB)), (2, b"2" * 100_000)):
        done = s3.upload_part(Bucket=PLAIN, Key="multi", UploadId=upload["UploadId"], PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": done["ETag"]})
    s3.complete_multipart_upload(
        Bucket=PLAIN, Key="multi", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    s3.copy_object(Bucket=PLAIN, Key="multi-copy", CopySource={"Bucket": PLAIN, "Key": "multi"})
    s3.create_bucket(Bucket=VERSIONED)
    s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=VERSIONED, Key="v", Body=b"first" * 20_000)
    s3.put_object(Bucket=VERSIONED, Key="v", Body=b"second" * 20_000)
    s3.delete_object(Bucket=VERSIONED, Key="v")
    s3.put_object(Bucket=VERSIONED, Key="w", Body=b"w")
    s3.put_object_tagging(Bucket=VERSIONED, Key="w", Tagging={"TagSet": [{"Key": "later", "Value": "yes"}]})
    s3.put_object(Bucket=VERSIONED, Key="gone", Body=b"g")
    s3.delete_object(Bucket=VERSIONED, Key="gone", VersionId=_latest_version(s3, VERSIONED, "gone"))


def _latest_version(s3: Any, bucket: str, key: str) -> str:
    return str(s3.head_object(Bucket=bucket, Key=key)["VersionId"])


_HEAD_FIELDS = ("ContentLength", "ContentType", "ETag", "LastModified", "Metadata", "ServerSideEncryption", "VersionId")


def state(s3: Any) -> dict[str, Any]:
    """What S3 shows of every bucket and version: listings, HEAD, bodies, tags, ACLs, bucket config."""
    out: dict[str, Any] = {"buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"])}
    for bucket in out["buckets"]:
        listed = s3.list_object_versions(Bucket=bucket)
        versions = [{k: v[k] for k in ("Key", "VersionId", "ETag", "Size", "IsLatest", "LastModified")}
                    for v in listed.get("Versions", [])]  # fmt: skip
        markers = [{k: m[k] for k in ("Key", "VersionId", "IsLatest")} for m in listed.get("DeleteMarkers", [])]
        objects: dict[str, Any] = {}
        for v in versions:
            args = {"Bucket": bucket, "Key": v["Key"], "VersionId": v["VersionId"]}
            head = s3.head_object(**args)
            body = s3.get_object(**args)["Body"].read()
            objects[f"{v['Key']}@{v['VersionId']}"] = {
                "head": {k: head.get(k) for k in _HEAD_FIELDS},
                "md5": hashlib.md5(body).hexdigest(),
                "tags": s3.get_object_tagging(**args)["TagSet"],
                "acl": s3.get_object_acl(**args)["Grants"],
            }
        out[bucket] = {
            "versions": versions,
            "markers": markers,
            "objects": objects,
            "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
            "tagging": _bucket_tags(s3, bucket),
        }
    return out


def _bucket_tags(s3: Any, bucket: str) -> list[dict[str, str]]:
    try:
        return list(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
    except s3.exceptions.ClientError:
        return []


def blob_of(data_dir: Path, bucket: str, key: str, latest: bool = True) -> Path:
    """The blob file of a key's latest (or oldest noncurrent) version, or of its first piece."""
    conn = sqlite3.connect(data_dir / "metadata.sqlite3")
    try:
        row = conn.execute(
            "SELECT id, blob FROM objects WHERE bucket=? AND key=? AND is_latest=? ORDER BY seq LIMIT 1",
            (bucket, key.encode(), int(latest)),
        ).fetchone()
        object_id, blob = row
        if blob is None:
            blob = conn.execute(
                "SELECT blob FROM object_parts WHERE object_id=? ORDER BY part_number LIMIT 1", (object_id,)
            ).fetchone()[0]
    finally:
        conn.close()
    return data_dir / "blobs" / blob[:2] / blob
