"""POST Object: browser form uploads signed with SigV4 (boto3's generate_presigned_post) and SigV2."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

from tests.auth_support import ALT, MAIN, Reply, User, client, send
from tests.server_process import ServerProcess
from tests.wire import multipart


def post(server: ServerProcess, bucket: str, fields: list[tuple[str, str]], file: bytes, **kw: str) -> Reply:
    content_type, body = multipart(fields, file, **kw)
    return send(server, "POST", f"/{bucket}", {"Content-Type": content_type}, body)


def v2_form(
    bucket: str, key: str, conditions: list[object], user: User = MAIN, minutes: int = 10
) -> list[tuple[str, str]]:
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    policy = {"expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "conditions": [{"bucket": bucket}, *conditions]}
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    signature = base64.b64encode(hmac.new(user.secret_key.encode(), encoded.encode(), hashlib.sha1).digest()).decode()
    return [("key", key), ("AWSAccessKeyId", user.access_key), ("policy", encoded), ("signature", signature)]


def test_sigv4_post_from_boto3(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    presigned = client(auth_server, MAIN, signature_version="s3v4").generate_presigned_post(
        main_bucket,
        "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "browser"},
        Conditions=[
            {"Content-Type": "text/plain"},
            {"x-amz-meta-origin": "browser"},
            ["starts-with", "$key", "uploads/"],
            ["content-length-range", 1, 1 << 20],
        ],
        ExpiresIn=600,
    )
    assert "x-amz-signature" in presigned["fields"]
    reply = post(auth_server, main_bucket, list(presigned["fields"].items()), b"form file body", filename="hello.txt")
    assert reply.status == 204, reply.body
    got = main_s3.get_object(Bucket=main_bucket, Key="uploads/hello.txt")
    assert got["Body"].read() == b"form file body"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "browser"}
    assert reply.headers["etag"] == got["ETag"]


def test_sigv2_post_with_status_and_redirect(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    fields = v2_form(main_bucket, "v2.txt", [["starts-with", "$key", ""], {"success_action_status": "201"}])
    reply = post(auth_server, main_bucket, [*fields, ("success_action_status", "201")], b"v2 form")
    assert reply.status == 201, reply.body
    assert b"<Key>v2.txt</Key>" in reply.body and f"<Bucket>{main_bucket}</Bucket>".encode() in reply.body
    assert main_s3.get_object(Bucket=main_bucket, Key="v2.txt")["Body"].read() == b"v2 form"

    target = "https://app.example/done?from=form"
    fields = v2_form(
        main_bucket, "redirected.txt", [["starts-with", "$key", ""], ["eq", "$success_action_redirect", target]]
    )
    reply = post(auth_server, main_bucket, [*fields, ("success_action_redirect", target)], b"redirect me")
    assert reply.status == 303
    location = urlsplit(reply.headers["location"])
    assert location.netloc == "app.example"
    query = parse_qs(location.query)
    assert query["key"] == ["redirected.txt"] and query["bucket"] == [main_bucket] and query["from"] == ["form"]
    assert query["etag"] == [f'"{hashlib.md5(b"redirect me").hexdigest()}"']


def test_post_policy_is_enforced(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    key_ok = ["starts-with", "$key", "ok/"]
    cases: list[tuple[list[tuple[str, str]], bytes, int, str]] = [
        # content-length-range
        (v2_form(main_bucket, "ok/big", [key_ok, ["content-length-range", 0, 4]]), b"too long", 400,
         "EntityTooLarge"),
        (v2_form(main_bucket, "ok/small", [key_ok, ["content-length-range", 100, 200]]), b"tiny", 400,
         "EntityTooSmall"),
        # expired policy
        (v2_form(main_bucket, "ok/old", [key_ok], minutes=-1), b"x", 403, "AccessDenied"),
        # a condition that fails, a field with no condition
        (v2_form(main_bucket, "bad/key", [key_ok]), b"x", 403, "AccessDenied"),
        ([*v2_form(main_bucket, "ok/extra", [key_ok]), ("x-amz-meta-extra", "1")], b"x", 403, "AccessDenied"),
        # wrong secret, unknown key
        (v2_form(main_bucket, "ok/forged", [key_ok], user=User(MAIN.access_key, "forged-secret", "", "")), b"x", 403,
         "SignatureDoesNotMatch"),
        (v2_form(main_bucket, "ok/unknown", [key_ok], user=User("AKIAUNKNOWN00000", "s", "", "")), b"x", 403,
         "InvalidAccessKeyId"),
    ]  # fmt: skip
    for fields, data, status, code in cases:
        reply = post(auth_server, main_bucket, fields, data)
        assert (reply.status, reply.code) == (status, code), (fields[0], reply.body)
    assert main_s3.list_objects_v2(Bucket=main_bucket)["KeyCount"] == 0


def test_post_policy_structure_errors(auth_server: ServerProcess, main_bucket: str) -> None:
    def form(policy: dict[str, object]) -> list[tuple[str, str]]:
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        sig = base64.b64encode(hmac.new(MAIN.secret_key.encode(), encoded.encode(), hashlib.sha1).digest()).decode()
        return [("key", "k"), ("AWSAccessKeyId", MAIN.access_key), ("policy", encoded), ("signature", sig)]

    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bad_policies = [
        {"conditions": [{"bucket": main_bucket}]},
        {"expiration": later},
        {"expiration": "tomorrow", "conditions": []},
        {"expiration": later, "conditions": [{}]},
        {"expiration": later, "conditions": [["content-length-range", 0]]},
        {"expiration": later, "conditions": [["content-length-range", -1, 10]]},
        {"expiration": later, "conditions": [["matches", "$key", ".*"]]},
    ]
    for policy in bad_policies:
        reply = post(auth_server, main_bucket, form(policy), b"x")
        assert reply.status == 400, (policy, reply.body)
    missing_signature = [f for f in form({"expiration": later, "conditions": []}) if f[0] != "signature"]
    assert post(auth_server, main_bucket, missing_signature, b"x").status == 400


def test_post_needs_owner_and_signature(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    # No signature at all: anonymous uploads are refused (no ACLs grant them).
    assert post(auth_server, main_bucket, [("key", "anon")], b"x").status == 403
    # A valid ALT signature does not give ALT MAIN's bucket.
    fields = v2_form(main_bucket, "alt", [["starts-with", "$key", ""]], user=ALT)
    assert post(auth_server, main_bucket, fields, b"x").code == "AccessDenied"
    assert main_s3.list_objects_v2(Bucket=main_bucket)["KeyCount"] == 0


def test_post_streams_a_large_file(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB, larger than any single read
    fields = v2_form(main_bucket, "large.bin", [["starts-with", "$key", ""], ["content-length-range", 0, 8 << 20]])
    reply = post(
        auth_server,
        main_bucket,
        [*fields, ("x-amz-checksum-sha256", base64.b64encode(hashlib.sha256(data).digest()).decode())],
        data,
    )
    assert reply.status == 204, reply.body
    got = main_s3.get_object(Bucket=main_bucket, Key="large.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_malformed_forms(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    fields = v2_form(main_bucket, "m", [["starts-with", "$key", ""]])
    content_type, body = multipart(fields, b"data")
    truncated = send(auth_server, "POST", f"/{main_bucket}", {"Content-Type": content_type}, body[:-20])
    assert truncated.status == 400 and truncated.code == "MalformedPOSTRequest"
    not_form = send(auth_server, "POST", f"/{main_bucket}", {"Content-Type": "application/json"}, b"{}")
    assert not_form.status == 412
    no_file = send(
        auth_server,
        "POST",
        f"/{main_bucket}",
        {"Content-Type": content_type},
        body.split(b"--" + content_type.split("=")[1].encode() + b'\r\nContent-Disposition: form-data; name="file"')[0]
        + b"--"
        + content_type.split("=")[1].encode()
        + b"--\r\n",
    )
    assert no_file.status == 400
    huge_fields = [("key", "m"), ("x-ignore-padding", "p" * 30000)]
    assert post(auth_server, main_bucket, huge_fields, b"x").code == "MaxPostPreDataLengthExceededError"
    assert main_s3.list_objects_v2(Bucket=main_bucket)["KeyCount"] == 0


def test_post_in_open_mode(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    reply = post(server, bucket, [("key", "open/${filename}"), ("Content-Type", "image/png")], b"png", filename="a.png")
    assert reply.status == 204, reply.body
    got = s3.get_object(Bucket=bucket, Key="open/a.png")
    assert got["Body"].read() == b"png" and got["ContentType"] == "image/png"
