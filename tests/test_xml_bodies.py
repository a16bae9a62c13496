"""Every operation that reads an XML body refuses an encoding declaration other than
UTF-8 with MalformedXML (never a 500 from the parser's LookupError), checked against a
real server with hypothesis choosing the declared encoding."""

from __future__ import annotations

import itertools
import os
import string
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth_support import Reply, send
from tests.server_process import ServerProcess

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "25"))
ACCEPTED = {"utf-8", "utf8", "us-ascii", "ascii"}
_names = itertools.count()

encodings = st.one_of(
    st.sampled_from(
        [
            "EBCDIC-US",
            "cp037",
            "UTF-16",
            "utf-32",
            "latin-1",
            "ISO-8859-1",
            "utf-7",
            "shift_jis",
            "big5",
            "UTF-8",
            "us-ascii",
        ]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.:+ ", max_size=24),
    st.text(max_size=8).filter(lambda t: '"' not in t),
)

DOCUMENTS: dict[str, str] = {
    "CreateBucket": "<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint>"
    "</CreateBucketConfiguration>",
    "DeleteObjects": "<Delete><Object><Key>k</Key></Object></Delete>",
    "PutBucketCors": "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
    "</CORSRule></CORSConfiguration>",
    "PutObjectTagging": "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    "PutBucketTagging": "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    "CompleteMultipartUpload": "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
    "</CompleteMultipartUpload>",
    "PutBucketLifecycleConfiguration": "<LifecycleConfiguration><Rule><Filter/><Status>Enabled</Status>"
    "<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
    "PostObject": "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
}


def _post_form(server: ServerProcess, bucket: str, tagging: bytes) -> Reply:
    boundary = "----coffer-xml-boundary"
    parts = []
    for name, value in (("key", b"posted"), ("tagging", tagging)):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'.encode() + b"data\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return send(server, "POST", f"/{bucket}", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)


@pytest.mark.parametrize("operation", sorted(DOCUMENTS))
def test_declared_encoding_is_checked(server: ServerProcess, s3, operation: str) -> None:  # type: ignore[no-untyped-def]
    bucket = f"xml-encoding-{operation.lower()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    requests: dict[str, Callable[[bytes], Reply]] = {
        "CreateBucket": lambda body: send(server, "PUT", f"/xml-new-{next(_names)}", {}, body),
        "DeleteObjects": lambda body: send(server, "POST", f"/{bucket}?delete", {}, body),
        "PutBucketCors": lambda body: send(server, "PUT", f"/{bucket}?cors", {}, body),
        "PutObjectTagging": lambda body: send(server, "PUT", f"/{bucket}/k?tagging", {}, body),
        "PutBucketTagging": lambda body: send(server, "PUT", f"/{bucket}?tagging", {}, body),
        "PutBucketLifecycleConfiguration": lambda body: send(server, "PUT", f"/{bucket}?lifecycle", {}, body),
        "CompleteMultipartUpload": lambda body: send(server, "POST", f"/{bucket}/mp?uploadId={upload}", {}, body),
        "PostObject": lambda body: _post_form(server, bucket, body),
    }

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(encoding=encodings)
    def check(encoding: str) -> None:
        body = f'<?xml version="1.0" encoding="{encoding}"?>{DOCUMENTS[operation]}'.encode()
        reply = requests[operation](body)
        assert reply.status < 500, (encoding, reply.status, reply.body)
        if encoding.lower() not in ACCEPTED:
            assert reply.status == 400 and reply.code == "MalformedXML", (encoding, reply.body)

    check()
    # The declaration S3 clients send is accepted.
    reply = requests[operation](f'<?xml version="1.0" encoding="UTF-8"?>{DOCUMENTS[operation]}'.encode())
    assert reply.code != "MalformedXML", reply.body
