"""Every integer a request carries (query parameters, headers, XML fields) is range-checked
by one parser (coffer.server.http.parse_int): out-of-range, negative or non-ASCII-digit
values answer 400 with S3's code, never a 500 (2**64 used to reach SQLite as an OverflowError)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.auth_support import send
from tests.server_process import ServerProcess

BAD_VALUES = ["18446744073709551616", "99999999999999999999999", "-1", "\u00b2", "1e3", "0x10"]


@dataclass(frozen=True)
class Case:
    operation: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    code: str = "InvalidArgument"


CASES = [
    Case("ListObjects max-keys", "GET", "/{b}?max-keys={v}"),
    Case("ListObjectsV2 max-keys", "GET", "/{b}?list-type=2&max-keys={v}"),
    Case("ListObjectVersions max-keys", "GET", "/{b}?versions&max-keys={v}"),
    Case("ListMultipartUploads max-uploads", "GET", "/{b}?uploads&max-uploads={v}"),
    Case("ListBuckets max-buckets", "GET", "/?max-buckets={v}"),
    Case("ListParts max-parts", "GET", "/{b}/mp?uploadId={u}&max-parts={v}"),
    Case("ListParts part-number-marker", "GET", "/{b}/mp?uploadId={u}&part-number-marker={v}"),
    Case("GetObject partNumber", "GET", "/{b}/k?partNumber={v}"),
    Case("HeadObject partNumber", "HEAD", "/{b}/k?partNumber={v}"),
    Case("UploadPart partNumber", "PUT", "/{b}/mp?uploadId={u}&partNumber={v}", body="part"),
    Case(
        "UploadPartCopy partNumber",
        "PUT",
        "/{b}/mp?uploadId={u}&partNumber={v}",
        (("x-amz-copy-source", "/{b}/k"),),
    ),
    Case(
        "UploadPartCopy x-amz-copy-source-range",
        "PUT",
        "/{b}/mp?uploadId={u}&partNumber=1",
        (("x-amz-copy-source", "/{b}/k"), ("x-amz-copy-source-range", "bytes=0-{v}")),
    ),
    Case(
        "GetObjectAttributes x-amz-max-parts",
        "GET",
        "/{b}/k?attributes",
        (("x-amz-object-attributes", "ObjectParts"), ("x-amz-max-parts", "{v}")),
    ),
    Case(
        "GetObjectAttributes x-amz-part-number-marker",
        "GET",
        "/{b}/k?attributes",
        (("x-amz-object-attributes", "ObjectParts"), ("x-amz-part-number-marker", "{v}")),
    ),
    Case(
        "CompleteMultipartUpload x-amz-mp-object-size",
        "POST",
        "/{b}/mp?uploadId={u}",
        (("x-amz-mp-object-size", "{v}"),),
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
        "InvalidRequest",
    ),
    Case(
        "CompleteMultipartUpload PartNumber",
        "POST",
        "/{b}/mp?uploadId={u}",
        (),
        "<CompleteMultipartUpload><Part><PartNumber>{v}</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
        "MalformedXML",
    ),
    Case(
        "PutBucketCors MaxAgeSeconds",
        "PUT",
        "/{b}?cors",
        (),
        "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
        "<MaxAgeSeconds>{v}</MaxAgeSeconds></CORSRule></CORSConfiguration>",
        "MalformedXML",
    ),
    Case("DeleteObject x-amz-if-match-size", "DELETE", "/{b}/k", (("x-amz-if-match-size", "{v}"),)),
    Case(
        "DeleteObjects Size",
        "POST",
        "/{b}?delete",
        (),
        "<Delete><Object><Key>k</Key><Size>{v}</Size></Object></Delete>",
    ),
    Case(
        "PutObject x-amz-decoded-content-length",
        "PUT",
        "/{b}/chunked",
        (("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", "{v}")),
        "4\r\ndata\r\n0\r\n\r\n",
    ),
    Case(
        "UploadPart x-amz-decoded-content-length",
        "PUT",
        "/{b}/mp?uploadId={u}&partNumber=1",
        (("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", "{v}")),
        "4\r\ndata\r\n0\r\n\r\n",
    ),
]


@pytest.fixture(scope="module")
def target(s3) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    bucket = "integer-params"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"object")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    return bucket, upload


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("case", CASES, ids=[c.operation for c in CASES])
def test_out_of_range_integers_answer_400(
    server: ServerProcess, target: tuple[str, str], case: Case, value: str
) -> None:
    bucket, upload = target
    fill = {"b": bucket, "u": upload, "v": value}
    if case.headers or "{v}" in case.body:
        path = case.target.format(**fill)
    else:
        path = case.target.format(**dict(fill, v=quote(value)))
    headers = {name: text.format(**fill).encode("utf-8").decode("latin-1") for name, text in case.headers}
    reply = send(server, case.method, path.replace("\u00b2", "%C2%B2"), headers, case.body.format(**fill).encode())
    assert reply.status == 400, (reply.status, reply.body)
    if case.method != "HEAD":
        assert reply.code == case.code, reply.body
    # Nothing was written or deleted: the upload still has no parts, no chunked object exists, k is there.
    assert send(server, "GET", f"/{bucket}/k", {}).status == 200
    assert send(server, "GET", f"/{bucket}/chunked", {}).status == 404
    listing = send(server, "GET", f"/{bucket}/mp?uploadId={upload}", {})
    assert listing.status == 200 and b"<Part>" not in listing.body


def test_values_in_range_still_work(server: ServerProcess, target: tuple[str, str]) -> None:
    bucket, upload = target
    assert send(server, "GET", f"/{bucket}?max-keys=2147483647", {}).status == 200
    assert send(server, "GET", f"/{bucket}/mp?uploadId={upload}&part-number-marker=2147483647", {}).status == 200
    assert send(server, "GET", f"/{bucket}/k?partNumber=1", {}).status == 200
