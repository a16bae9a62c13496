"""Object tagging over the wire: boto3, raw HTTP and the aws CLI against the real server."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.wire import error_of, expect, multipart, request


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


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
        b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",  # no Key
        b"<Tagging></Tagging>",  # no TagSet
        b"<Other><TagSet/></Other>",
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value><Extra/></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Item/></TagSet></Tagging>",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><Tagging><TagSet/></Tagging>',
    ],
)
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
    expect(request(server, "GET", f"/{bucket}/k?tagging&versionId=abc"), 404, "NoSuchVersion")
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
