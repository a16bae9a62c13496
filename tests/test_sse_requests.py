"""The server-side encryption protocol (coffer/server/sse.py): request headers, the bucket's
default encryption document, and S3's errors for everything malformed."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.server import sse
from coffer.server.errors import S3Error

# The key s3-tests uses, with its MD5.
KEY_B64 = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs="
MD5_B64 = "DWygnHRtgiJ77HCm+1rvHw=="
SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": KEY_B64,
    "x-amz-server-side-encryption-customer-key-md5": MD5_B64,
}


def code_of(call: Any, *args: Any) -> tuple[str, str]:
    with pytest.raises(S3Error) as exc:
        call(*args)
    return exc.value.code, exc.value.message


def test_nothing_asked() -> None:
    assert sse.parse_write({"content-type": "text/plain"}) == sse.NONE
    assert not sse.NONE.asked


def test_sse_s3_and_kms() -> None:
    assert sse.parse_write({"x-amz-server-side-encryption": "AES256"}).algorithm == "AES256"
    context = base64.b64encode(json.dumps({"dept": "eng"}).encode()).decode()
    request = sse.parse_write(
        {
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": "alias/app",
            "x-amz-server-side-encryption-context": context,
            "x-amz-server-side-encryption-bucket-key-enabled": "true",
        }
    )
    assert (request.algorithm, request.kms_key_id, request.context, request.bucket_key) == (
        "aws:kms",
        "alias/app",
        {"dept": "eng"},
        True,
    )


def test_sse_c_key_is_checked() -> None:
    customer = sse.parse_customer(SSE_C)
    assert customer is not None and customer.key == base64.b64decode(KEY_B64) and customer.md5 == MD5_B64
    assert sse.parse_write(SSE_C).customer == customer
    prefix = sse.COPY_SOURCE_CUSTOMER_PREFIX
    copy = {k.replace(sse.CUSTOMER_PREFIX, prefix): v for k, v in SSE_C.items()}
    assert sse.parse_customer(copy, prefix) == customer
    assert sse.parse_customer(copy) is None


@pytest.mark.parametrize(
    ("headers", "code", "fragment"),
    [
        (
            {**SSE_C, "x-amz-server-side-encryption-customer-key-md5": "AAAAAAAAAAAAAAAAAAAAAA=="},
            "InvalidArgument",
            "did not match",
        ),
        ({k: v for k, v in SSE_C.items() if not k.endswith("md5")}, "InvalidArgument", "MD5 of the secret key"),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, "InvalidArgument", "appropriate secret key"),
        (
            {k: v for k, v in SSE_C.items() if not k.endswith("algorithm")},
            "InvalidArgument",
            "valid encryption algorithm",
        ),
        (
            {**SSE_C, "x-amz-server-side-encryption-customer-algorithm": "AES128"},
            "InvalidEncryptionAlgorithmError",
            "AES256",
        ),
        (
            {**SSE_C, "x-amz-server-side-encryption-customer-key": "c2hvcnQ="},
            "InvalidArgument",
            "secret key was invalid",
        ),
        (
            {**SSE_C, "x-amz-server-side-encryption-customer-key": "!!not base64!!"},
            "InvalidArgument",
            "secret key was invalid",
        ),
        ({**SSE_C, "x-amz-server-side-encryption": "AES256"}, "InvalidArgument", "incompatible"),
        ({"x-amz-server-side-encryption": "AES512"}, "InvalidArgument", "not supported"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "k"}, "InvalidArgument", "requires HTTP header"),
        (
            {"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": "k"},
            "InvalidArgument",
            "aws:kms",
        ),
        (
            {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "bm90IGpzb24="},
            "InvalidArgument",
            "JSON",
        ),
        (
            {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "WzFd"},
            "InvalidArgument",
            "object of strings",
        ),
        (
            {"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-bucket-key-enabled": "yes"},
            "InvalidArgument",
            "Invalid value",
        ),
    ],
)
def test_malformed_requests(headers: dict[str, str], code: str, fragment: str) -> None:
    got_code, message = code_of(sse.parse_write, headers)
    assert got_code == code and fragment in message


def test_sse_c_needs_a_secure_connection_except_loopback() -> None:
    customer = sse.parse_customer(SSE_C)
    sse.check_transport(customer, secure=True, loopback=False, allow_insecure=False)
    sse.check_transport(customer, secure=False, loopback=True, allow_insecure=False)
    sse.check_transport(customer, secure=False, loopback=False, allow_insecure=True)
    sse.check_transport(None, secure=False, loopback=False, allow_insecure=False)
    assert code_of(sse.check_transport, customer, False, False, False)[0] == "InvalidRequest"


def _config(rule: str) -> bytes:
    return f"<ServerSideEncryptionConfiguration><Rule>{rule}</Rule></ServerSideEncryptionConfiguration>".encode()


def test_bucket_encryption_round_trip() -> None:
    s3 = sse.parse_configuration(
        _config(
            "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>"
        )
    )
    assert s3 == sse.BucketEncryption("AES256")
    kms = sse.parse_configuration(
        _config(
            "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>"
            "<KMSMasterKeyID>alias/app</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
            "<BucketKeyEnabled>true</BucketKeyEnabled>"
        )
    )
    assert kms == sse.BucketEncryption("aws:kms", "alias/app", True)
    for config in (s3, kms):
        assert (
            sse.parse_configuration(
                sse.render(config).replace(b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', b"")
            )
            == config
        )
        assert sse.BucketEncryption.from_doc(config.to_doc()) == config
    assert sse.BucketEncryption.from_doc(None) is None and sse.BucketEncryption.from_doc({"algorithm": "x"}) is None


@pytest.mark.parametrize(
    "body",
    [
        b"<ServerSideEncryptionConfiguration/>",
        b"<Other/>",
        _config(
            "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>DES</SSEAlgorithm></ApplyServerSideEncryptionByDefault>"
        ),
        _config("<ApplyServerSideEncryptionByDefault/>"),
        _config("<Unknown/>"),
        _config(
            "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>maybe</BucketKeyEnabled>"
        ),
        b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule><Rule/></ServerSideEncryptionConfiguration>",
    ],
)
def test_malformed_bucket_encryption(body: bytes) -> None:
    assert code_of(sse.parse_configuration, body)[0] in ("MalformedXML", "InvalidArgument")


def test_kms_key_only_with_kms() -> None:
    body = _config(
        "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
        "<KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
    )
    assert code_of(sse.parse_configuration, body)[0] == "InvalidArgument"


def test_bucket_default_applies_only_when_nothing_is_asked() -> None:
    default = sse.BucketEncryption("aws:kms", "k1", True)
    assert sse.with_default(sse.NONE, default) == sse.SseRequest("aws:kms", "k1", None, True)
    asked = sse.parse_write({"x-amz-server-side-encryption": "AES256"})
    assert sse.with_default(asked, default) == asked
    assert sse.with_default(sse.NONE, None) == sse.NONE


@given(
    st.dictionaries(
        st.sampled_from([*SSE_C, sse.HEADER, sse.KMS_KEY_HEADER, sse.CONTEXT_HEADER, sse.BUCKET_KEY_HEADER]),
        st.text(max_size=80),
    )
)
def test_any_headers_parse_or_give_an_s3_error(headers: dict[str, str]) -> None:
    try:
        sse.parse_write(headers)
    except S3Error as err:
        assert 400 <= err.status < 500


def test_md5_of_the_reference_key() -> None:
    assert base64.b64encode(hashlib.md5(base64.b64decode(KEY_B64)).digest()).decode() == MD5_B64
