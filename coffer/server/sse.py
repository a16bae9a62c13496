"""Server-side encryption on the wire: what a request asks for (SSE-S3, SSE-KMS, SSE-C headers or
POST form fields), the bucket's default encryption document (Put/GetBucketEncryption), and the
headers an answer carries. Every malformed input is an S3Error with S3's code and message.

The bodies themselves are encrypted by coffer/encryption (frames.py, kms.py); this module only
reads and writes the protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from coffer.server import xml
from coffer.server.errors import S3Error

AES256 = "AES256"
KMS = "aws:kms"
KMS_DSSE = "aws:kms:dsse"
ALGORITHMS = (AES256, KMS, KMS_DSSE)

HEADER = "x-amz-server-side-encryption"
KMS_KEY_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT_HEADER = "x-amz-server-side-encryption-context"
BUCKET_KEY_HEADER = "x-amz-server-side-encryption-bucket-key-enabled"
CUSTOMER_PREFIX = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_CUSTOMER_PREFIX = "x-amz-copy-source-server-side-encryption-customer-"

MAX_CONTEXT = 8 * 1024  # the encoded context's length AWS's KMS accepts at most (well above real use)
MAX_DOCUMENT = 16 * 1024

_CUSTOMER_ALGORITHM = (
    "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
)
_CUSTOMER_KEY = (
    "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
)
_CUSTOMER_MD5 = (
    "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated "
    "MD5 of the secret key."
)
_KEY_INVALID = "The secret key was invalid for the specified algorithm."
_MD5_MISMATCH = "The calculated MD5 hash of the key did not match the hash that was provided."
_INCOMPATIBLE = "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
_KMS_KEY_WITHOUT_KMS = (
    "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
)
INSECURE = (
    "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
)


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """An SSE-C key as a request gives it (never stored: see ``fingerprint``)."""

    key: bytes  # 32 bytes
    md5: str  # base64 MD5 of the key, as the client sent (and S3 echoes) it


@dataclass(frozen=True, slots=True)
class SseRequest:
    """What a write asks for: nothing, SSE-S3 (AES256), SSE-KMS (aws:kms) or SSE-C (``customer``)."""

    algorithm: str | None = None  # AES256, aws:kms, aws:kms:dsse; None with SSE-C or nothing
    kms_key_id: str | None = None
    context: dict[str, str] | None = None  # x-amz-server-side-encryption-context, decoded
    bucket_key: bool | None = None
    customer: CustomerKey | None = None

    @property
    def asked(self) -> bool:
        return self.algorithm is not None or self.customer is not None


NONE = SseRequest()


def _invalid(message: str, name: str, value: str | None = None) -> S3Error:
    fields = {"ArgumentName": name}
    if value is not None:
        fields["ArgumentValue"] = value[:256]
    return S3Error("InvalidArgument", message, extra=fields)


def parse_customer(headers: Mapping[str, str], prefix: str = CUSTOMER_PREFIX) -> CustomerKey | None:
    """The SSE-C key of a request (``prefix``: the copy source's headers for CopyObject's source);
    None when it carries none. Any of the three without the others, another algorithm than AES256,
    a key that is not 256 bits of base64, or an MD5 that does not match: InvalidArgument."""
    algorithm = headers.get(prefix + "algorithm")
    key_b64 = headers.get(prefix + "key")
    md5_b64 = headers.get(prefix + "key-md5")
    if algorithm is None and key_b64 is None and md5_b64 is None:
        return None
    if algorithm is None:
        raise _invalid(_CUSTOMER_ALGORITHM, prefix + "algorithm")
    if algorithm.strip() != AES256:
        raise S3Error(
            "InvalidEncryptionAlgorithmError",
            "The encryption request you specified is not valid. The valid value is AES256.",
            ArgumentName=prefix + "algorithm",
            ArgumentValue=algorithm[:64],
        )
    if not key_b64:
        raise _invalid(_CUSTOMER_KEY, prefix + "key")
    if not md5_b64:
        raise _invalid(_CUSTOMER_MD5, prefix + "key-md5")
    try:
        key = base64.b64decode(key_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(_KEY_INVALID, prefix + "key") from None
    if len(key) != 32:
        raise _invalid(_KEY_INVALID, prefix + "key")
    if base64.b64encode(hashlib.md5(key).digest()).decode() != md5_b64.strip():
        raise _invalid(_MD5_MISMATCH, prefix + "key-md5")
    return CustomerKey(key, md5_b64.strip())


def _context(value: str | None) -> dict[str, str] | None:
    """x-amz-server-side-encryption-context: base64 of a JSON object of strings."""
    if value is None:
        return None
    if len(value) > MAX_CONTEXT:
        raise _invalid("The encryption context is too large", CONTEXT_HEADER)
    try:
        doc = json.loads(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise _invalid("The encryption context is not valid base64-encoded JSON", CONTEXT_HEADER) from None
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise _invalid("The encryption context must be a JSON object of strings", CONTEXT_HEADER)
    return doc


def _bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise _invalid(f"Invalid value for {name}", name, value)
    return lowered == "true"


def parse_write(headers: Mapping[str, str]) -> SseRequest:
    """The encryption a write (PutObject, CopyObject's destination, CreateMultipartUpload, a POST
    form's fields) asks for."""
    algorithm = headers.get(HEADER)
    customer = parse_customer(headers)
    kms_key = headers.get(KMS_KEY_HEADER)
    context = _context(headers.get(CONTEXT_HEADER))
    bucket_key = _bool(headers.get(BUCKET_KEY_HEADER), BUCKET_KEY_HEADER)
    if algorithm is not None:
        algorithm = algorithm.strip()
        if algorithm not in ALGORITHMS:
            raise _invalid("The encryption method specified is not supported", HEADER, algorithm)
        if customer is not None:
            raise _invalid(_INCOMPATIBLE, HEADER, algorithm)
    if (kms_key is not None or context is not None) and algorithm not in (KMS, KMS_DSSE):
        raise _invalid(_KMS_KEY_WITHOUT_KMS, KMS_KEY_HEADER if kms_key is not None else CONTEXT_HEADER)
    if kms_key is not None and not kms_key.strip():
        raise _invalid("The KMS key id must not be empty", KMS_KEY_HEADER)
    return SseRequest(algorithm, kms_key.strip() if kms_key else None, context, bucket_key, customer)


def check_transport(customer: CustomerKey | None, secure: bool, loopback: bool, allow_insecure: bool) -> None:
    """S3 refuses SSE-C over plain HTTP (the key would cross the network in the clear); Coffer too,
    except from the loopback interface or when the setting allows it (development)."""
    if customer is not None and not (secure or loopback or allow_insecure):
        raise S3Error("InvalidRequest", INSECURE)


# ---------------------------------------------------------------------- bucket default encryption
@dataclass(frozen=True, slots=True)
class BucketEncryption:
    """A bucket's ServerSideEncryptionConfiguration (its one rule)."""

    algorithm: str  # AES256, aws:kms or aws:kms:dsse
    kms_key_id: str | None = None
    bucket_key: bool = False

    def to_doc(self) -> dict[str, object]:
        return {"algorithm": self.algorithm, "kms_key_id": self.kms_key_id, "bucket_key": self.bucket_key}

    @classmethod
    def from_doc(cls, doc: object) -> BucketEncryption | None:
        """The stored document; None without one (or an unreadable one)."""
        if not isinstance(doc, dict) or doc.get("algorithm") not in ALGORITHMS:
            return None
        key = doc.get("kms_key_id")
        return cls(str(doc["algorithm"]), key if isinstance(key, str) else None, bool(doc.get("bucket_key")))


def parse_configuration(body: bytes) -> BucketEncryption:
    """A ServerSideEncryptionConfiguration document: exactly one Rule with an
    ApplyServerSideEncryptionByDefault (SSEAlgorithm, KMSMasterKeyID only with aws:kms) and an
    optional BucketKeyEnabled; anything else MalformedXML, as S3 answers."""
    root = xml.parse(body)
    if root.tag != "ServerSideEncryptionConfiguration":
        raise S3Error("MalformedXML")
    rules = [child for child in root if child.tag == "Rule"]
    if len(rules) != 1 or len(rules) != len(root):
        raise S3Error("MalformedXML")
    rule = rules[0]
    by_default = rule.find("ApplyServerSideEncryptionByDefault")
    if by_default is None or any(c.tag not in ("ApplyServerSideEncryptionByDefault", "BucketKeyEnabled") for c in rule):
        raise S3Error("MalformedXML")
    if any(c.tag not in ("SSEAlgorithm", "KMSMasterKeyID") for c in by_default):
        raise S3Error("MalformedXML")
    algorithm = (by_default.findtext("SSEAlgorithm") or "").strip()
    if algorithm not in ALGORITHMS:
        raise S3Error("MalformedXML")
    key = by_default.findtext("KMSMasterKeyID")
    if key is not None:
        key = key.strip()
        if algorithm == AES256 or not key:
            raise _invalid(
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms",
                "ApplyServerSideEncryptionByDefault",
            )
    enabled = rule.findtext("BucketKeyEnabled")
    bucket_key = False
    if enabled is not None:
        if enabled.strip().lower() not in ("true", "false"):
            raise S3Error("MalformedXML")
        bucket_key = enabled.strip().lower() == "true"
    return BucketEncryption(algorithm, key, bucket_key)


def render(config: BucketEncryption) -> bytes:
    inner = xml.elem("SSEAlgorithm", config.algorithm)
    if config.kms_key_id is not None:
        inner += xml.elem("KMSMasterKeyID", config.kms_key_id)
    rule = f"<ApplyServerSideEncryptionByDefault>{inner}</ApplyServerSideEncryptionByDefault>"
    rule += xml.elem("BucketKeyEnabled", "true" if config.bucket_key else "false")
    return xml.document("ServerSideEncryptionConfiguration", f"<Rule>{rule}</Rule>")


def with_default(request: SseRequest, default: BucketEncryption | None) -> SseRequest:
    """What a write that asks for nothing gets from its bucket's default encryption."""
    if request.asked or default is None:
        return request
    made = _defaults.get(default)
    if made is None:  # one per configuration: every write of a bucket with a default asks this
        if len(_defaults) >= 1024:
            _defaults.clear()
        made = _defaults[default] = SseRequest(default.algorithm, default.kms_key_id, None, default.bucket_key or None)
    return made


_defaults: dict[BucketEncryption, SseRequest] = {}
