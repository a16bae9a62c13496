"""SigV4 and SigV2 against a server with credentials: boto3, raw signed requests, presigned URLs."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.auth_support import ALT, MAIN, PUBLIC_HOST, User, client, presign_v4, send, sign_v2, sign_v4, signed
from tests.server_process import ServerProcess
from tests.wire import error_of


def test_boto3_round_trip_with_keys(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    key = "dir/with space+plus&amp=é~*'()!.txt"
    put = main_s3.put_object(Bucket=main_bucket, Key=key, Body=b"signed body", ContentType="text/plain")
    got = main_s3.get_object(Bucket=main_bucket, Key=key)
    assert got["Body"].read() == b"signed body"
    assert got["ETag"] == put["ETag"]
    listed = main_s3.list_objects_v2(Bucket=main_bucket, Prefix="dir/", FetchOwner=True)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert listed["Contents"][0]["Owner"] == {"ID": MAIN.user_id, "DisplayName": MAIN.display_name}
    owner = main_s3.list_buckets()["Owner"]
    assert owner == {"ID": MAIN.user_id, "DisplayName": MAIN.display_name}
    main_s3.delete_objects(Bucket=main_bucket, Delete={"Objects": [{"Key": key}]})
    assert main_s3.list_objects_v2(Bucket=main_bucket)["KeyCount"] == 0


def test_any_region_is_accepted(auth_server: ServerProcess, main_bucket: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=auth_server.endpoint,
        aws_access_key_id=MAIN.access_key,
        aws_secret_access_key=MAIN.secret_key,
        region_name="eu-central-2",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket=main_bucket, Key="k", Body=b"x")
    assert s3.get_object(Bucket=main_bucket, Key="k")["Body"].read() == b"x"


def test_wrong_secret_unknown_key_and_anonymous_are_refused(auth_server: ServerProcess) -> None:
    wrong = client(auth_server, User(MAIN.access_key, "not-the-secret", "", ""))
    with pytest.raises(ClientError) as exc:
        wrong.list_buckets()
    assert error_of(exc)[1] == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert exc.value.response["Error"]["AWSAccessKeyId"] == MAIN.access_key
    assert "CanonicalRequest" in exc.value.response["Error"]

    unknown = client(auth_server, User("AKIANOSUCHKEY000", "whatever-secret", "", ""))
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert error_of(exc)[1] == "InvalidAccessKeyId"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    anonymous = boto3.client(
        "s3", endpoint_url=auth_server.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    with pytest.raises(ClientError) as exc:
        anonymous.list_buckets()
    assert error_of(exc)[1] == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        anonymous.create_bucket(Bucket="anonymous-bucket")
    assert error_of(exc)[1] == "AccessDenied"
    # As S3 does: an unknown bucket is NoSuchBucket for anyone, an existing one AccessDenied.
    with pytest.raises(ClientError) as exc:
        anonymous.get_object(Bucket="no-such-bucket-at-all", Key="k")
    assert error_of(exc)[1] == "NoSuchBucket"
    main = client(auth_server, MAIN)
    main.create_bucket(Bucket="anonymous-target")
    with pytest.raises(ClientError) as exc:
        anonymous.put_object(Bucket="anonymous-target", Key="k", Body=b"x")
    assert error_of(exc)[1] == "AccessDenied"
    assert main.list_objects_v2(Bucket="anonymous-target")["KeyCount"] == 0


def test_error_bodies_never_contain_the_secret(auth_server: ServerProcess) -> None:
    reply = send(
        auth_server,
        "GET",
        "/",
        sign_v4("GET", auth_server.endpoint + "/", user=User(MAIN.access_key, "x" * 16, "", "")),
    )
    assert reply.code == "SignatureDoesNotMatch"
    assert MAIN.secret_key.encode() not in reply.body
    assert MAIN.secret_key not in auth_server.log()


def test_raw_signed_request_and_tampering(auth_server: ServerProcess, main_bucket: str) -> None:
    body = b"raw signed payload"
    url = f"{auth_server.endpoint}/{main_bucket}/raw%20key"
    headers = sign_v4("PUT", url, {"Content-Type": "text/plain"}, body)
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    assert send(auth_server, "PUT", f"/{main_bucket}/raw%20key", headers, body).status == 200

    # Any signed part changed after signing: a header, the path, the query.
    tampered = dict(headers, **{"Content-Type": "text/html"})
    assert send(auth_server, "PUT", f"/{main_bucket}/raw%20key", tampered, body).code == "SignatureDoesNotMatch"
    assert send(auth_server, "PUT", f"/{main_bucket}/other", headers, body).code == "SignatureDoesNotMatch"
    get = sign_v4("GET", f"{auth_server.endpoint}/{main_bucket}?prefix=a")
    assert send(auth_server, "GET", f"/{main_bucket}?prefix=b", get).code == "SignatureDoesNotMatch"
    assert send(auth_server, "GET", f"/{main_bucket}?prefix=a", get).status == 200


def test_payload_hash_is_verified_for_uploads(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="kept", Body=b"original")
    headers = sign_v4(
        "PUT",
        f"{auth_server.endpoint}/{main_bucket}/kept",
        {"X-Amz-Content-SHA256": hashlib.sha256(b"what was signed").hexdigest()},
    )
    reply = send(auth_server, "PUT", f"/{main_bucket}/kept", headers, b"what was sent!!")
    assert reply.status == 400 and reply.code == "XAmzContentSHA256Mismatch"
    assert main_s3.get_object(Bucket=main_bucket, Key="kept")["Body"].read() == b"original"


def test_payload_hash_is_verified_for_xml_bodies(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="victim", Body=b"x")
    signed_doc = b"<Delete><Object><Key>other</Key></Object></Delete>"
    sent_doc = b"<Delete><Object><Key>victim</Key></Object></Delete>"
    headers = sign_v4(
        "POST",
        f"{auth_server.endpoint}/{main_bucket}?delete",
        {"X-Amz-Content-SHA256": hashlib.sha256(signed_doc).hexdigest(), "Content-MD5": ""},
    )
    headers.pop("Content-MD5", None)
    reply = send(auth_server, "POST", f"/{main_bucket}?delete", headers, sent_doc)
    assert reply.code == "XAmzContentSHA256Mismatch"
    assert main_s3.head_object(Bucket=main_bucket, Key="victim")["ContentLength"] == 1


def test_unsigned_payload_is_accepted(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    headers = sign_v4("PUT", f"{auth_server.endpoint}/{main_bucket}/u", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert send(auth_server, "PUT", f"/{main_bucket}/u", headers, b"unsigned payload").status == 200
    assert main_s3.get_object(Bucket=main_bucket, Key="u")["Body"].read() == b"unsigned payload"


def test_unsigned_amz_header_is_refused(auth_server: ServerProcess, main_bucket: str) -> None:
    headers = sign_v4("PUT", f"{auth_server.endpoint}/{main_bucket}/h", body=b"x")
    headers["x-amz-meta-sneaky"] = "added after signing"
    reply = send(auth_server, "PUT", f"/{main_bucket}/h", headers, b"x")
    assert reply.status == 403 and reply.code == "AccessDenied"
    assert b"x-amz-meta-sneaky" in reply.body


def test_clock_skew_over_15_minutes(auth_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    past = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
    headers = sign_v4("GET", auth_server.endpoint + "/")
    reply = send(auth_server, "GET", "/", headers)
    assert reply.status == 403 and reply.code == "RequestTimeTooSkewed"
    assert b"<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>" in reply.body

    near = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: near)
    assert send(auth_server, "GET", "/", sign_v4("GET", auth_server.endpoint + "/")).status == 200


def test_malformed_authorization_headers(auth_server: ServerProcess) -> None:
    good = sign_v4("GET", auth_server.endpoint + "/")
    cases = {
        "AWS4-HMAC-SHA256 Credential=AKIAMAINUSER0000/2024/us-east-1/s3/aws4_request": 400,
        "AWS4-HMAC-SHA256 garbage": 400,
        "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00": 400,
        "AWS4-HMAC-SHA256 Credential=AKIAMAINUSER0000/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, "
        "Signature=00": 400,
        "Basic dXNlcjpwYXNz": 400,
        "AWS4-ECDSA-P256-SHA256 Credential=x": 400,
    }
    for value, status in cases.items():
        reply = send(auth_server, "GET", "/", dict(good, Authorization=value))
        assert reply.status == status, (value, reply.status, reply.body)
        assert reply.code is not None
    # The server keeps serving.
    assert send(auth_server, "GET", "/", sign_v4("GET", auth_server.endpoint + "/")).status == 200


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_presigned_get_and_put(auth_server: ServerProcess, main_bucket: str, version: str) -> None:
    s3 = client(auth_server, MAIN, signature_version=version)
    params = {"Bucket": main_bucket, "Key": "pre/signed file.txt"}
    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    assert ("X-Amz-Signature=" in put_url) == (version == "s3v4")
    assert send(auth_server, "PUT", _target(put_url), {}, b"via presigned put").status == 200
    get_url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    with urllib.request.urlopen(get_url) as response:
        assert response.read() == b"via presigned put"
    # The signature covers the key and the method.
    assert send(auth_server, "GET", _target(get_url).replace("signed%20file", "other"), {}).status == 403
    assert send(auth_server, "PUT", _target(get_url), {}, b"overwrite").status == 403
    with urllib.request.urlopen(get_url) as response:
        assert response.read() == b"via presigned put"


def test_presigned_expiry_is_enforced(
    auth_server: ServerProcess,
    main_s3,  # type: ignore[no-untyped-def]
    main_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="old", Body=b"x")
    params = {"Bucket": main_bucket, "Key": "old"}
    v2 = client(auth_server, MAIN, signature_version="s3")
    expired_v2 = v2.generate_presigned_url("get_object", Params=params, ExpiresIn=-10)
    reply = send(auth_server, "GET", _target(expired_v2), {})
    assert reply.status == 403 and b"Request has expired" in reply.body

    object_url = f"{auth_server.endpoint}/{main_bucket}/old"
    for expires in (7 * 24 * 3600 + 1, 0, -7):
        reply = send(auth_server, "GET", _target(presign_v4("GET", object_url, expires)), {})
        assert reply.status == 403 and reply.code == "AccessDenied", expires

    earlier = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(hours=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: earlier)
    url = f"{auth_server.endpoint}/{main_bucket}/old"
    reply = send(auth_server, "GET", _target(presign_v4("GET", url, 3600)), {})
    assert reply.status == 403 and b"Request has expired" in reply.body
    assert send(auth_server, "GET", _target(presign_v4("GET", url, 3 * 3600)), {}).status == 200


def test_presigned_url_behind_a_host_rewriting_proxy(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="proxied", Body=b"through the proxy")
    public = boto3.client(
        "s3",
        endpoint_url=f"http://{PUBLIC_HOST}",
        aws_access_key_id=MAIN.access_key,
        aws_secret_access_key=MAIN.secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = public.generate_presigned_url("get_object", Params={"Bucket": main_bucket, "Key": "proxied"})
    assert "X-Amz-Signature=" in url
    parts = urlsplit(url)
    assert parts.netloc == PUBLIC_HOST
    # The proxy forwards the request with its own Host header.
    reply = send(auth_server, "GET", f"{parts.path}?{parts.query}", {})
    assert reply.status == 200, reply.body
    assert reply.body == b"through the proxy"


def test_sigv2_header_and_presigned(auth_server: ServerProcess, main_bucket: str) -> None:
    v2 = client(auth_server, MAIN, signature_version="s3")
    v2.put_object(Bucket=main_bucket, Key="v2/ключ with space", Body=b"signed with v2", ContentType="text/plain")
    assert v2.get_object(Bucket=main_bucket, Key="v2/ключ with space")["Body"].read() == b"signed with v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=main_bucket, Prefix="v2/")["Contents"]] == ["v2/ключ with space"]
    url = v2.generate_presigned_url("get_object", Params={"Bucket": main_bucket, "Key": "v2/ключ with space"})
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"signed with v2"
    bad = client(auth_server, User(MAIN.access_key, "wrong-secret-123", "", ""), signature_version="s3")
    with pytest.raises(ClientError) as exc:
        bad.list_objects(Bucket=main_bucket)
    assert error_of(exc)[1] == "SignatureDoesNotMatch"


def test_sigv2_raw_dates(auth_server: ServerProcess) -> None:
    url = auth_server.endpoint + "/"
    ok = sign_v2("GET", url)
    assert send(auth_server, "GET", "/", ok).status == 200
    skewed = sign_v2("GET", url, {"x-amz-date": "Tue, 07 Jul 2010 21:53:04 GMT"})
    assert send(auth_server, "GET", "/", skewed).code == "RequestTimeTooSkewed"
    invalid = sign_v2("GET", url, {"x-amz-date": "Bad Date"})
    assert send(auth_server, "GET", "/", invalid).code == "AccessDenied"
    garbage = dict(ok, Authorization="AWS HAHAHA")
    assert send(auth_server, "GET", "/", garbage).code == "InvalidArgument"


def test_bearer_token(auth_server: ServerProcess, alt_s3) -> None:  # type: ignore[no-untyped-def]
    from tests.auth_support import ALT_TOKEN

    name = "bearer-bucket-alt"
    alt_s3.create_bucket(Bucket=name)
    alt_s3.put_object(Bucket=name, Key="k", Body=b"token access")
    reply = send(auth_server, "GET", f"/{name}/k", {"Authorization": f"Bearer {ALT_TOKEN}"})
    assert reply.status == 200 and reply.body == b"token access"
    assert send(auth_server, "GET", f"/{name}/k", {"Authorization": "Bearer wrong"}).code == "AccessDenied"


def test_two_auth_mechanisms_are_refused(auth_server: ServerProcess, main_bucket: str) -> None:
    v4 = client(auth_server, MAIN, signature_version="s3v4")
    url = v4.generate_presigned_url("list_objects_v2", Params={"Bucket": main_bucket})
    parts = urlsplit(url)
    headers = sign_v4("GET", url)
    reply = send(auth_server, "GET", f"{parts.path}?{parts.query}", headers)
    assert reply.status == 400 and reply.code == "InvalidArgument"


def test_alt_signature_is_its_own(auth_server: ServerProcess, main_bucket: str) -> None:
    """ALT's correctly signed request is authenticated as ALT (and so denied on MAIN's bucket)."""
    reply = signed(auth_server, "GET", f"/{main_bucket}", user=ALT)
    assert reply.status == 403 and reply.code == "AccessDenied"


def _aws(server: ServerProcess, user: User, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return server.aws(*args, access_key=user.access_key, secret_key=user.secret_key, cwd=cwd, check=False)


def test_aws_cli_with_keys(auth_server: ServerProcess, main_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    copied = _aws(auth_server, MAIN, "s3", "cp", str(source), f"s3://{main_bucket}/cli/payload.bin", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    listed = _aws(auth_server, MAIN, "s3", "ls", f"s3://{main_bucket}/cli/", cwd=tmp_path)
    assert "payload.bin" in listed.stdout
    back = tmp_path / "back.bin"
    fetched = _aws(auth_server, MAIN, "s3", "cp", f"s3://{main_bucket}/cli/payload.bin", str(back), cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert back.read_bytes() == source.read_bytes()
    # ALT cannot read it; a wrong secret is refused.
    denied = _aws(auth_server, ALT, "s3", "cp", f"s3://{main_bucket}/cli/payload.bin", str(back), cwd=tmp_path)
    assert denied.returncode != 0 and "403" in denied.stderr
    wrong = User(MAIN.access_key, "wrong-secret-value", "", "")
    refused = _aws(auth_server, wrong, "s3api", "list-buckets", cwd=tmp_path)
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr


def test_virtual_hosted_style_signatures(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="vhost/key one", Body=b"virtual")
    host = f"{main_bucket}.localhost:{auth_server.port}"
    url = f"http://{host}/vhost/key%20one"
    v4 = sign_v4("GET", url, {"Host": host})
    reply = send(auth_server, "GET", "/vhost/key%20one", v4)
    assert reply.status == 200 and reply.body == b"virtual"
    # SigV2 signs the bucket into the resource even though the path does not hold it.
    v2 = sign_v2("GET", url, {"Host": host}, auth_path=f"/{main_bucket}/vhost/key%20one")
    assert send(auth_server, "GET", "/vhost/key%20one", dict(v2, Host=host)).body == b"virtual"


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_non_ascii_header_values_verify(auth_server: ServerProcess, main_bucket: str, version: str) -> None:
    s3 = client(auth_server, MAIN, signature_version=version)

    def add_header(params, **_: object) -> None:  # type: ignore[no-untyped-def]
        params["headers"]["x-amz-meta-greeting"] = "Hello World\xe9"

    s3.meta.events.register("before-call.s3.PutObject", add_header)
    s3.put_object(Bucket=main_bucket, Key="unicode-meta", Body=b"x")
    assert s3.head_object(Bucket=main_bucket, Key="unicode-meta")["ContentLength"] == 1
