"""Object and bucket tagging over the wire: boto3, raw HTTP and the aws CLI against the real server."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.s3errors import expect_error
from tests.server_process import ServerProcess
from tests.wire import b64, digest, error_of, expect, multipart, request


def tagset(**tags: str) -> dict[str, list[dict[str, str]]]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3, bucket: str, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_put_get_delete_object_tagging(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"body")
    head = s3.head_object(Bucket=bucket, Key="k")
    assert "x-amz-tagging-count" not in head["ResponseMetadata"]["HTTPHeaders"]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []

    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(b="2", a="1", c=""))
    # S3 answers in key order.
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tagset(a="1", b="2", c="")["TagSet"]
    after = s3.head_object(Bucket=bucket, Key="k")
    assert after["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    # The body, ETag and Last-Modified stay as they were.
    assert (after["ETag"], after["LastModified"]) == (head["ETag"], head["LastModified"])
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 3 and got["Body"].read() == b"body"

    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(only="one"))
    assert tags_of(s3, bucket, "k") == {"only": "one"}
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")


def test_tagging_missing_object_or_bucket(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for call, kwargs in (
        (s3.get_object_tagging, {}),
        (s3.put_object_tagging, {"Tagging": tagset(a="1")}),
        (s3.delete_object_tagging, {}),
    ):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="missing", **kwargs)
        assert error_of(exc) == (404, "NoSuchKey")
        with pytest.raises(ClientError) as exc:
            call(Bucket="no-such-bucket-tagging", Key="k", **kwargs)
        assert error_of(exc) == (404, "NoSuchBucket")


def test_put_object_with_tagging_header(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="foo=bar&bare&sp%20ace=a%2Bb%3Dc")
    assert "x-amz-tagging" not in put["ResponseMetadata"]["HTTPHeaders"]
    assert tags_of(s3, bucket, "k") == {"bare": "", "foo": "bar", "sp ace": "a+b=c"}
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 3
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert "x-amz-tagging" not in headers
    assert got["Metadata"] == {}  # tags are not user metadata
    # A new put replaces the object's tags with its own (none here).
    s3.put_object(Bucket=bucket, Key="k", Body=b"y")
    assert tags_of(s3, bucket, "k") == {}


def test_tags_of_any_script(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    tags = {"ключ": "значение", "キー": "値 1", "a_b.c:d/e=f+g-h@i": ""}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=urlencode(tags))
    assert tags_of(s3, bucket, "k") == tags
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(**{"é": "ü"}))
    assert tags_of(s3, bucket, "k") == {"é": "ü"}


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({f"k{i}": "v" for i in range(11)}, "cannot be greater than 10"),
        ({"k" * 129: "v"}, "TagKey you have provided is too long"),
        ({"k": "v" * 257}, "TagValue you have provided is too long"),
        ({"aws:system": "v"}, "prefixed with aws:"),
        ({"AWS:x": "v"}, "prefixed with aws:"),
        ({"k#": "v"}, "TagKey you have provided is invalid"),
        ({"k": "v\u2603"}, "TagValue you have provided is invalid"),
    ],
)
def test_tag_limits(s3, bucket: str, tags: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(**tags))
    assert error_of(exc) == (400, "InvalidTag")
    assert message in exc.value.response["Error"]["Message"]
    assert tags_of(s3, bucket, "k") == {"keep": "me"}  # nothing changed
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="new", Body=b"x", Tagging=urlencode(tags))
    assert error_of(exc) == (400, "InvalidTag")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="new")  # nothing stored


def test_limits_at_their_maximum(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    tags = {f"{i}{'k' * 127}": "v" * 256 for i in range(10)}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(**tags))
    assert tags_of(s3, bucket, "k") == tags


def test_duplicate_keys(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    doubled = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=doubled)
    assert error_of(exc) == (400, "InvalidTag")
    with pytest.raises(ClientError) as exc:  # the header form: S3 answers InvalidArgument
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&a=2")
    assert error_of(exc) == (400, "InvalidArgument")


MALFORMED_DOCUMENTS = [
    b"",
    b"not xml",
    b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
    b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",  # no Key
    b"<Tagging></Tagging>",  # no TagSet
    b"<Other><TagSet/></Other>",
    b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value><Extra/></Tag></TagSet></Tagging>",
    b"<Tagging><TagSet><Item/></TagSet></Tagging>",
    b'<!DOCTYPE x [<!ENTITY e "boom">]><Tagging><TagSet/></Tagging>',
]


@pytest.mark.parametrize("body", MALFORMED_DOCUMENTS)
def test_malformed_tagging_document(server, s3, bucket: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    expect(request(server, "PUT", f"/{bucket}/k?tagging", body=body), 400, "MalformedXML")


def test_raw_tagging_document_and_headers(server, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    body = (
        b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
        b"<Tag><Key>a:b</Key><Value>v=1/2</Value></Tag><Tag><Key>e</Key><Value></Value></Tag>"
        b"</TagSet></Tagging>"
    )
    assert request(server, "PUT", f"/{bucket}/k?tagging", body=body).status == 200
    got = request(server, "GET", f"/{bucket}/k?tagging")
    assert got.status == 200 and got.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(got.body)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.tag == f"{ns}Tagging"
    pairs = [(t.findtext(f"{ns}Key"), t.findtext(f"{ns}Value") or "") for t in root.iter(f"{ns}Tag")]
    assert pairs == [("a:b", "v=1/2"), ("e", "")]
    head = request(server, "HEAD", f"/{bucket}/k")
    assert head.headers["x-amz-tagging-count"] == "2"
    # An empty TagSet removes the tags, like DeleteObjectTagging.
    assert request(server, "PUT", f"/{bucket}/k?tagging", body=b"<Tagging><TagSet/></Tagging>").status == 200
    assert "x-amz-tagging-count" not in request(server, "HEAD", f"/{bucket}/k").headers
    # An empty key (boto3 refuses to send one): refused by the server too, in both forms.
    empty = b"<Tagging><TagSet><Tag><Key></Key><Value>v</Value></Tag></TagSet></Tagging>"
    expect(request(server, "PUT", f"/{bucket}/k?tagging", body=empty), 400, "InvalidTag")
    expect(request(server, "PUT", f"/{bucket}/e", body=b"x", headers={"x-amz-tagging": "=v"}), 400, "InvalidTag")
    expect(request(server, "GET", f"/{bucket}/k?tagging&versionId=abc"), 400, "InvalidArgument")
    expect(request(server, "GET", f"/{bucket}/k?tagging&versionId={'0' * 32}"), 404, "NoSuchVersion")
    assert request(server, "GET", f"/{bucket}/k?tagging&versionId=null").status == 200


def test_copy_object_tagging_directives(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="s=1&t=2")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=f"{bucket}/src")
    assert tags_of(s3, bucket, "copied") == {"s": "1", "t": "2"}
    # COPY ignores x-amz-tagging.
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource=f"{bucket}/src", Tagging="x=y", TaggingDirective="COPY")
    assert tags_of(s3, bucket, "copy2") == {"s": "1", "t": "2"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src", Tagging="n=9", TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "replaced") == {"n": "9"}
    s3.copy_object(Bucket=bucket, Key="untagged", CopySource=f"{bucket}/src", TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "untagged") == {}
    assert s3.get_object(Bucket=bucket, Key="replaced")["Body"].read() == b"source"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="bad", CopySource=f"{bucket}/src", Tagging="aws:x=1", TaggingDirective="REPLACE"
        )
    assert error_of(exc) == (400, "InvalidTag")


def test_multipart_upload_with_tagging(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="m=1&n=")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=created["UploadId"], PartNumber=1, Body=b"part one")
    # The tags belong to the object from completion on.
    with pytest.raises(ClientError):
        s3.get_object_tagging(Bucket=bucket, Key="mp")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=created["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert tags_of(s3, bucket, "mp") == {"m": "1", "n": ""}
    assert s3.head_object(Bucket=bucket, Key="mp")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp2", Tagging="a=1&a=2")
    assert error_of(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp2", Tagging="a=1,2")  # S3 refuses ',' in tags
    assert error_of(exc) == (400, "InvalidTag")


def test_upload_file_with_tagging_extra_args(s3, bucket: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "f.bin"
    path.write_bytes(b"t" * 1000)
    s3.upload_file(str(path), bucket, "f", ExtraArgs={"Tagging": urlencode({"team": "a b", "x": "1+1"})})
    assert tags_of(s3, bucket, "f") == {"team": "a b", "x": "1+1"}


def test_post_object_tagging_field(server, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    doc = (
        "<Tagging><TagSet><Tag><Key>0</Key><Value>0</Value></Tag>"
        "<Tag><Key>1</Key><Value>1</Value></Tag></TagSet></Tagging>"
    )
    content_type, body = multipart([("key", "posted"), ("tagging", doc)], b"form body")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", f"/{bucket}", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        assert resp.status == 204, resp.read()
        resp.read()
        content_type, body = multipart([("key", "bad"), ("tagging", "a=b")], b"form body")
        conn.request("POST", f"/{bucket}", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        answer = resp.read()
        assert resp.status == 400 and b"<Code>MalformedXML</Code>" in answer
    finally:
        conn.close()
    assert tags_of(s3, bucket, "posted") == {"0": "0", "1": "1"}


def test_aws_cli_object_tagging(aws, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    aws(
        "s3api",
        "put-object-tagging",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--tagging",
        json.dumps(tagset(project="coffer", stage="test")),
    )
    out = json.loads(aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k").stdout)
    assert out["TagSet"] == tagset(project="coffer", stage="test")["TagSet"]
    failed = aws(
        "s3api",
        "put-object-tagging",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--tagging",
        json.dumps(tagset(**{"aws:x": "1"})),
        check=False,
    )
    assert failed.returncode != 0 and "InvalidTag" in failed.stderr


# ---------------------------------------------------------------------- bucket tagging


def bucket_tags(s3, bucket: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def test_put_get_delete_bucket_tagging(s3_modes, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Both checksum modes of boto3 (each sends x-amz-checksum-crc32: the operation requires a checksum)."""
    s3 = s3_modes
    error = expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)
    assert error["BucketName"] == bucket and error["Message"] == "The TagSet does not exist"

    put = s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(team="storage", cost="42", empty=""))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204
    # Answered in key order.
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tagset(cost="42", empty="", team="storage")["TagSet"]
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(only="one"))  # replaces the whole set
    assert bucket_tags(s3, bucket) == {"only": "one"}
    # Bucket tags are not object tags.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []

    deleted = s3.delete_bucket_tagging(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)
    assert s3.delete_bucket_tagging(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204  # none: still 204

    # An empty TagSet leaves the bucket without tags, as S3 does.
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(a="1"))
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": []})
    expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)


def test_bucket_tagging_of_missing_bucket_and_deleted_bucket(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for call, kwargs in (
        (s3.get_bucket_tagging, {}),
        (s3.put_bucket_tagging, {"Tagging": tagset(a="1")}),
        (s3.delete_bucket_tagging, {}),
    ):
        error = expect_error(404, "NoSuchBucket", call, Bucket="no-such-bucket-tagging", **kwargs)
        assert error["BucketName"] == "no-such-bucket-tagging"
    # Deleting a bucket drops its tags: a new bucket of the same name has none.
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(a="1"))
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)


@pytest.mark.parametrize(
    ("tags", "status", "code", "message"),
    [
        # S3 answers BadRequest for too many bucket tags (InvalidTag for too many object tags).
        ({f"k{i}": "v" for i in range(51)}, 400, "BadRequest", "Bucket tag count cannot be greater than 50"),
        ({"k" * 129: "v"}, 400, "InvalidTag", "The TagKey you have provided is too long, max 128"),
        ({"k": "v" * 257}, 400, "InvalidTag", "The TagValue you have provided is too long, max 256"),
        ({"aws:system": "v"}, 400, "InvalidTag", "System tags cannot be added/updated by requester"),
        ({"AWS:x": "v"}, 400, "InvalidTag", "System tags cannot be added/updated by requester"),
        ({"k#": "v"}, 400, "InvalidTag", "The TagKey you have provided is invalid"),
        ({"k": "v\u2603"}, 400, "InvalidTag", "The TagValue you have provided is invalid"),
    ],
)
def test_bucket_tag_limits(s3, bucket: str, tags: dict[str, str], status: int, code: str, message: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(keep="me"))
    error = expect_error(status, code, s3.put_bucket_tagging, Bucket=bucket, Tagging=tagset(**tags))
    assert error["Message"] == message
    assert bucket_tags(s3, bucket) == {"keep": "me"}  # nothing changed


def test_bucket_tags_at_their_maximum(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    # 50 tags of 128 + 256 four-byte letters: a document larger than an object's may be.
    tags = {f"{i:02}" + "\U00010400" * 126: "\U00010428" * 256 for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(**tags))
    assert bucket_tags(s3, bucket) == tags
    tags[":aws:"] = "x"  # aws: only refused as a prefix
    del tags[next(iter(tags))]
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(**tags))
    assert bucket_tags(s3, bucket) == tags


def test_bucket_tags_duplicate_keys(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    doubled = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    error = expect_error(400, "InvalidTag", s3.put_bucket_tagging, Bucket=bucket, Tagging=doubled)
    assert error["Message"] == "Cannot provide multiple Tags with the same key"
    expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)


@pytest.mark.parametrize("body", MALFORMED_DOCUMENTS)
def test_malformed_bucket_tagging_document(server, bucket: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    expect(request(server, "PUT", f"/{bucket}?tagging", body=body), 400, "MalformedXML")


_tag_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=140)
_tag_xml = st.one_of(
    st.builds(lambda k, v: f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>", _tag_text, _tag_text),
    st.sampled_from(["<Tag><Key>a</Key></Tag>", "<Tag/>", "<Key>x</Key>", "<Tag><Key>aws:x</Key><Value/></Tag>"]),
    st.text(max_size=30).map(escape),
)


@settings(
    max_examples=int(os.environ.get("COFFER_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    st.lists(_tag_xml, max_size=53),
    st.sampled_from(["<Tagging><TagSet>{}</TagSet></Tagging>", "<Tagging>{}</Tagging>", "{}"]),
)
def test_bucket_tagging_documents_over_http(server, bucket: str, tags: list[str], frame: str) -> None:  # type: ignore[no-untyped-def]
    """Whatever the document, the server stores it (204) or refuses it as S3 does; never a 5xx."""
    answer = request(server, "PUT", f"/{bucket}?tagging", body=frame.format("".join(tags)).encode())
    if answer.status != 204:
        assert answer.status == 400, answer
        assert answer.error["Code"] in ("MalformedXML", "InvalidTag") or (
            answer.error["Code"] == "BadRequest" and len(tags) > 50
        ), answer


def test_raw_bucket_tagging_document_and_digests(server, bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = (
        b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
        b"<Tag><Key>b</Key><Value>v=1/2</Value></Tag><Tag><Key>a:b</Key><Value></Value></Tag>"
        b"</TagSet></Tagging>"
    )
    # Content-MD5 and x-amz-checksum-* are checked when sent (every AWS SDK sends one); none is needed.
    assert request(server, "PUT", f"/{bucket}?tagging", body=body).status == 204
    got = request(server, "GET", f"/{bucket}?tagging")
    assert got.status == 200 and got.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(got.body)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.tag == f"{ns}Tagging"
    pairs = [(t.findtext(f"{ns}Key"), t.findtext(f"{ns}Value") or "") for t in root.iter(f"{ns}Tag")]
    assert pairs == [("a:b", ""), ("b", "v=1/2")]
    other = b"<Tagging><TagSet><Tag><Key>c</Key><Value>3</Value></Tag></TagSet></Tagging>"
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    expect(
        request(server, "PUT", f"/{bucket}?tagging", body=other, headers={"Content-MD5": wrong_md5}), 400, "BadDigest"
    )
    wrong_crc = {"x-amz-checksum-crc32": b64(digest("CRC32", b"something else"))}
    expect(request(server, "PUT", f"/{bucket}?tagging", body=other, headers=wrong_crc), 400, "BadDigest")
    good_md5 = base64.b64encode(hashlib.md5(other).digest()).decode()
    assert request(server, "PUT", f"/{bucket}?tagging", body=other, headers={"Content-MD5": good_md5}).status == 204
    assert [
        t.findtext(f"{ns}Key")
        for t in ElementTree.fromstring(request(server, "GET", f"/{bucket}?tagging").body).iter(f"{ns}Tag")
    ] == ["c"]
    empty = b"<Tagging><TagSet><Tag><Key></Key><Value>v</Value></Tag></TagSet></Tagging>"
    expect(request(server, "PUT", f"/{bucket}?tagging", body=empty), 400, "InvalidTag")


def test_bucket_tagging_is_the_owners(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_bucket_tagging(Bucket=main_bucket, Tagging=tagset(owner="main"))
    expect_error(403, "AccessDenied", alt_s3.get_bucket_tagging, Bucket=main_bucket)
    expect_error(403, "AccessDenied", alt_s3.put_bucket_tagging, Bucket=main_bucket, Tagging=tagset(owner="alt"))
    expect_error(403, "AccessDenied", alt_s3.delete_bucket_tagging, Bucket=main_bucket)
    assert bucket_tags(main_s3, main_bucket) == {"owner": "main"}


@pytest.mark.server
@pytest.mark.parametrize(
    "storage",
    [("--storage", "disk"), ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "0")],
    ids=["disk", "memory"],
)
def test_bucket_tags_survive_restarts(tmp_path: Path, storage: tuple[str, ...]) -> None:
    """kill -9 (the memory engine replays its log), then a clean stop (its shutdown snapshot)."""
    server = ServerProcess(tmp_path / "data", "--fsync", "never", *storage).start()
    try:
        s3 = server.client()
        for name in ("kept", "dropped"):
            s3.create_bucket(Bucket=name)
            s3.put_bucket_tagging(Bucket=name, Tagging=tagset(team="storage", é="ü"))
        s3.delete_bucket(Bucket="dropped")
        s3.create_bucket(Bucket="dropped")
        server.kill9()
        server.start()
        s3 = server.client()
        assert bucket_tags(s3, "kept") == {"team": "storage", "é": "ü"}
        expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket="dropped")
        s3.put_bucket_tagging(Bucket="kept", Tagging=tagset(after="restart"))
        server.stop()
        server.start()
        s3 = server.client()
        assert bucket_tags(s3, "kept") == {"after": "restart"}
        expect_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket="dropped")
    finally:
        server.stop()


def test_aws_cli_bucket_tagging(aws, bucket: str) -> None:  # type: ignore[no-untyped-def]
    aws("s3api", "put-bucket-tagging", "--bucket", bucket, "--tagging", json.dumps(tagset(project="coffer")))
    out = json.loads(aws("s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert out["TagSet"] == tagset(project="coffer")["TagSet"]
    aws("s3api", "delete-bucket-tagging", "--bucket", bucket)
    failed = aws("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert failed.returncode != 0 and "NoSuchTagSet" in failed.stderr
