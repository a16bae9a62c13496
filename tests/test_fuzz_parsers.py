"""Property and fuzz tests (hypothesis) of the parsers that read untrusted input: the SigV4/SigV2
parsers and canonicalisation, the aws-chunked decoder, the Range parser, XML bodies, POST policies
multipart forms and the Object Lock documents and headers. Each either answers or raises S3Error, nothing else.

Bounded for the suite; a long run (docs/security.md)::

    COFFER_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz_parsers.py -q
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server import object_lock, tagging, versioning, xml
from coffer.server.auth import post_policy, sigv2, sigv4
from coffer.server.auth.streaming import ChunkChain
from coffer.server.chunked import ChunkedDecoder
from coffer.server.errors import S3Error
from coffer.server.formdata import FormReader
from coffer.server.http import parse_timestamp
from coffer.server.ranges import parse_range
from tests.helpers import pieces, run

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = "fuzz/secret+key=0123456789"


# ---------------------------------------------------------------------- SigV4
@fuzz
@given(st.text(max_size=300))
def test_sigv4_authorization_parser_never_crashes(value: str) -> None:
    try:
        cred = sigv4.parse_authorization(value)
    except S3Error:
        return
    assert cred.service == "s3" and len(cred.date) == 8 and cred.signed_headers


@fuzz
@given(st.dictionaries(st.sampled_from([*sigv4.PRESIGN_PARAMS, "X", "x-amz-date"]), st.text(max_size=80)))
def test_presigned_parameter_parser_never_crashes(query: dict[str, str]) -> None:
    try:
        sigv4.parse_presigned(query, 1.7e9)
    except S3Error:
        pass


@fuzz
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_canonicalisation_never_crashes(path: bytes, query: bytes) -> None:
    uri = sigv4.canonical_uri(path)
    assert uri.isascii()
    canonical = sigv4.canonical_query(query)
    assert canonical.isascii()
    sigv4.canonical_query(query, normalize=False)
    assert sigv4.parse_amz_date(path.decode("latin-1")) is None or len(path) == 16


_key_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)
_header_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)


@fuzz
@given(
    key=_key_text,
    params=st.lists(st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=20)), max_size=4),
    meta=st.dictionaries(st.from_regex(r"x-amz-meta-[a-z0-9]{1,8}", fullmatch=True), _header_value, max_size=3),
    region=st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2", "local"]),
)
def test_botocore_signatures_verify(key: str, params: list[tuple[str, str]], meta: dict[str, str], region: str) -> None:
    """Whatever botocore signs (any key, query, headers, region), the server's verifier accepts."""
    path = "/bucket/" + quote(key.encode("utf-8"), safe="/~")
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in params)
    url = "http://127.0.0.1:9000" + path + ("?" + query if query else "")
    request = AWSRequest(method="GET", url=url, headers=dict(meta))
    S3SigV4Auth(Credentials("AKIAFUZZ", SECRET), "s3", region).add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:9000"
    cred = sigv4.parse_authorization(headers["authorization"])
    signed = sigv4.SignedRequest("GET", path.encode(), query.encode(), headers)
    sigv4.check_signature(signed, cred, SECRET, headers["x-amz-date"], headers["x-amz-content-sha256"])
    # One changed header value and it no longer verifies.
    tampered = sigv4.SignedRequest("GET", path.encode(), query.encode(), dict(headers, **{"x-amz-date": "1"}))
    try:
        sigv4.check_signature(tampered, cred, SECRET, headers["x-amz-date"], headers["x-amz-content-sha256"])
        raise AssertionError("tampered request verified")
    except S3Error as exc:
        assert exc.code == "SignatureDoesNotMatch"


@fuzz
@given(st.text(max_size=100), st.binary(max_size=100), st.binary(max_size=100))
def test_sigv2_parsers_never_crash(header: str, path: bytes, query: bytes) -> None:
    try:
        sigv2.parse_authorization(header)
    except S3Error:
        pass
    for resource in sigv2.canonical_resources(path, query, None):
        assert isinstance(resource, str)


# ---------------------------------------------------------------------- aws-chunked
async def _decode(raw: bytes, cuts: list[int], chain: ChunkChain | None = None) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(pieces(raw, cuts), chain)
    out = bytearray()
    async for piece in decoder:
        out += piece
    return bytes(out), decoder.trailers


@fuzz
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_chunked_decoder_random_bytes(raw: bytes, cuts: list[int]) -> None:
    try:
        run(_decode(raw, cuts))
    except S3Error:
        pass


def _encode(chunks: list[bytes], trailers: dict[str, str], signer: tuple[bytes, str, str, str] | None) -> bytes:
    out = bytearray()
    previous = signer[3] if signer else ""
    for chunk in [*chunks, b""]:
        ext = ""
        if signer is not None:
            key, timestamp, scope, _ = signer
            sts = "\n".join(
                ["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, sigv4.EMPTY_SHA256,
                 hashlib.sha256(chunk).hexdigest()]
            )  # fmt: skip
            previous = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            ext = f";chunk-signature={previous}"
        out += f"{len(chunk):x}{ext}\r\n".encode()
        if chunk:
            out += chunk + b"\r\n"
    canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
    out += canonical.replace("\n", "\r\n").encode()
    if signer is not None and trailers:
        key, timestamp, scope, _ = signer
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-TRAILER", timestamp, scope, previous, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        out += f"x-amz-trailer-signature:{hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()}\r\n".encode()
    return bytes(out + b"\r\n")


_chunks = st.lists(st.binary(min_size=1, max_size=300), max_size=5)
_trailers = st.dictionaries(
    st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256"]), st.text("abcAB0+/=", max_size=12)
)


@fuzz
@given(_chunks, _trailers, st.lists(st.integers(0, 2000), max_size=8))
def test_chunked_round_trip(chunks: list[bytes], trailers: dict[str, str], cuts: list[int]) -> None:
    data, got = run(_decode(_encode(chunks, trailers, None), cuts))
    assert data == b"".join(chunks)
    assert got == trailers


def _chain() -> tuple[ChunkChain, tuple[bytes, str, str, str]]:
    key = sigv4.signing_key("AKIAFUZZ", SECRET, "20240101", "us-east-1")
    seed = "0" * 64
    verified = sigv4.Verified(key, "20240101T000000Z", "20240101/us-east-1/s3/aws4_request", seed)
    return ChunkChain(verified, "AKIAFUZZ", trailer=True), (key, verified.timestamp, verified.scope, seed)


@fuzz
@given(_chunks, _trailers, st.lists(st.integers(0, 2000), max_size=8), st.integers(0, 10_000), st.integers(1, 255))
def test_signed_chunks_verify_and_any_flip_fails(
    chunks: list[bytes], trailers: dict[str, str], cuts: list[int], where: int, flip: int
) -> None:
    chain, signer = _chain()
    raw = _encode(chunks, trailers, signer)
    data, _ = run(_decode(raw, cuts, chain))
    assert data == b"".join(chunks)
    # Flip one byte anywhere: the body must not decode successfully to something else.
    damaged = bytearray(raw)
    damaged[where % len(damaged)] ^= flip
    chain, _ = _chain()
    try:
        data, got = run(_decode(bytes(damaged), cuts, chain))
    except S3Error:
        return
    # Surviving flips may only touch bytes that carry no meaning (e.g. a hex digit's case).
    assert data == b"".join(chunks) and got == trailers


# ---------------------------------------------------------------------- Range
@fuzz
@given(st.text(max_size=40), st.integers(0, 10**12))
def test_range_parser(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except S3Error as exc:
        assert exc.code == "InvalidRange" and exc.status == 416
        return
    if result is not None:
        start, end = result
        assert 0 <= start < end <= size


@fuzz
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_range_parser_model(first: int, last: int, size: int) -> None:
    try:
        result = parse_range(f"bytes={first}-{last}", size)
    except S3Error:
        assert first >= size
        return
    if last < first:
        assert result is None
    else:
        assert result == (first, min(last + 1, size))


# ---------------------------------------------------------------------- XML
@fuzz
@given(st.binary(max_size=300))
def test_xml_parser_random_bytes(body: bytes) -> None:
    try:
        xml.parse(body)
    except S3Error as exc:
        assert exc.code == "MalformedXML"


@fuzz
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30), max_size=5))
def test_xml_round_trip_of_escaped_text(keys: list[str]) -> None:
    doc = xml.document("Delete", "".join(f"<Object>{xml.elem('Key', k)}</Object>" for k in keys))
    root = xml.parse(doc)
    assert [xml.child_text(o, "Key") for o in root.findall("Object")] == keys


@fuzz
@given(st.text(max_size=60), st.integers(1, 6))
def test_xml_entities_are_refused(text: str, depth: int) -> None:
    entities = '<!ENTITY e0 "x">' + "".join(f'<!ENTITY e{i} "&e{i - 1};&e{i - 1};">' for i in range(1, depth))
    doc = f'<?xml version="1.0"?><!DOCTYPE d [{entities}]><Delete><Key>&e{depth - 1};{xml.esc(text)}</Key></Delete>'
    try:
        xml.parse(doc.encode())
        raise AssertionError("a DTD was accepted")
    except S3Error as exc:
        assert exc.code == "MalformedXML"


@fuzz
@given(
    st.one_of(st.sampled_from(["EBCDIC-US", "cp037", "utf-16", "utf_32", "latin-1", "UTF-8", "ascii"]), st.text()),
    st.sampled_from(["'", '"']),
)
def test_xml_declared_encoding(encoding: str, quote_char: str) -> None:
    """Any declared encoding: the document parses (UTF-8, ASCII) or is MalformedXML, never another error."""
    doc = f"<?xml version='1.0' encoding={quote_char}{encoding}{quote_char}?><Delete><Quiet>true</Quiet></Delete>"
    try:
        root = xml.parse(doc.encode("utf-8", "surrogatepass"))
    except S3Error as exc:
        assert exc.code == "MalformedXML"
    else:
        assert root.tag == "Delete" and encoding.lower() in ("utf-8", "utf8", "ascii", "us-ascii")


# ---------------------------------------------------------------------- POST policies and forms
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@fuzz
@given(_json, st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4))
def test_post_policy_parser(document: object, fields: dict[str, str]) -> None:
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    try:
        policy = post_policy.parse_policy(encoded)
        post_policy.check_policy(policy, fields, 1.7e9)
    except S3Error as exc:
        assert exc.status in (400, 403)


@fuzz
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_form_reader_random_bytes(raw: bytes, cuts: list[int]) -> None:
    async def read() -> None:
        reader = FormReader(pieces(raw, cuts), b"BOUNDARY")
        _, info = await reader.read_fields()
        if info is not None:
            async for _ in reader.file_data():
                pass

    try:
        run(read())
    except S3Error:
        pass


@fuzz
@given(
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), st.text(max_size=20), max_size=4),
    st.binary(max_size=2000),
    st.lists(st.integers(0, 3000), max_size=6),
)
def test_form_reader_round_trip(fields: dict[str, str], file: bytes, cuts: list[int]) -> None:
    boundary = "XyZ-boundary-0123"
    body = bytearray()
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value.encode() + b"\r\n"
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n'.encode()
    body += file + f"\r\n--{boundary}--\r\n".encode()

    async def read() -> tuple[dict[str, str], bytes]:
        reader = FormReader(pieces(bytes(body), cuts), boundary.encode())
        got, info = await reader.read_fields()
        assert info is not None and info.filename == "f.bin"
        data = bytearray()
        async for piece in reader.file_data():
            data += piece
        return got, bytes(data)

    got_fields, got_file = run(read())
    assert got_fields == fields and got_file == file


# ---------------------------------------------------------------------- object and bucket tagging
@fuzz
@given(st.text(max_size=400))
def test_tagging_header_parser_never_crashes(value: str) -> None:
    try:
        tags = tagging.parse_header(value)
    except S3Error as exc:
        assert exc.code in ("InvalidTag", "InvalidArgument")  # InvalidArgument: a repeated tag name
        return
    assert len(tags) <= tagging.OBJECT.max_tags and list(tags) == sorted(tags)


@fuzz
@given(st.dictionaries(st.text(min_size=1, max_size=130), st.text(max_size=260), max_size=12))
def test_tagging_document_round_trip(tags: dict[str, str]) -> None:
    """What the server answers parses back to the same tags; anything refused is InvalidTag or MalformedXML."""
    body = "".join(f"<Tag>{xml.elem('Key', k)}{xml.elem('Value', v)}</Tag>" for k, v in tags.items())
    try:
        parsed = tagging.parse_document(f"<Tagging><TagSet>{body}</TagSet></Tagging>".encode())
    except S3Error as exc:
        assert exc.code in ("InvalidTag", "MalformedXML")
        return
    assert parsed == dict(sorted(tags.items()))
    assert tagging.parse_document(tagging.document(parsed)) == parsed


@fuzz
@given(st.binary(max_size=600))
def test_tagging_document_random_bytes(body: bytes) -> None:
    try:
        tagging.parse_document(b"<Tagging><TagSet>" + body + b"</TagSet></Tagging>")
    except S3Error as exc:
        assert exc.code in ("InvalidTag", "MalformedXML")


def _tag_elements(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<Tag>{xml.elem('Key', k)}{xml.elem('Value', v)}</Tag>" for k, v in pairs)


@fuzz
@given(
    st.lists(
        st.tuples(st.text(max_size=130), st.text(max_size=260))
        | st.tuples(
            st.sampled_from(["a", "aws:x", "AWS:y", "k" * 128, "k" * 129]), st.sampled_from(["", "v", "v" * 257])
        ),
        max_size=53,
    )
)
def test_bucket_tagging_document(pairs: list[tuple[str, str]]) -> None:
    """Bucket limits: up to 50 tags, else BadRequest; any other refusal is InvalidTag or MalformedXML."""
    body = f"<Tagging><TagSet>{_tag_elements(pairs)}</TagSet></Tagging>".encode()
    try:
        parsed = tagging.parse_document(body, tagging.BUCKET)
    except S3Error as exc:
        if exc.code == "BadRequest":
            assert len(pairs) > tagging.BUCKET.max_tags
        else:
            assert exc.code in ("InvalidTag", "MalformedXML")
        return
    assert len(pairs) <= tagging.BUCKET.max_tags
    assert parsed == dict(sorted(pairs)) and len(parsed) == len(pairs)  # duplicates are refused
    assert tagging.parse_document(tagging.document(parsed), tagging.BUCKET) == parsed


@fuzz
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=60))
def test_bucket_tagging_document_random_bytes(noise: bytes, valid: int) -> None:
    tags = _tag_elements([(f"k{i}", "v") for i in range(valid)]).encode()
    try:
        tagging.parse_document(b"<Tagging><TagSet>" + tags + noise + b"</TagSet></Tagging>", tagging.BUCKET)
    except S3Error as exc:
        if exc.code == "BadRequest":
            assert valid + noise.count(b"<Tag>") > tagging.BUCKET.max_tags
        else:
            assert exc.code in ("InvalidTag", "MalformedXML")


# ---------------------------------------------------------------------- bucket versioning
_STATUS_VALUES = ["Enabled", "Suspended", " Enabled ", "enabled", "Disabled", "", "Enabled2"]
_MFA_VALUES = ["Enabled", "Disabled", "disabled", ""]


@fuzz
@given(
    st.one_of(st.none(), st.sampled_from(_STATUS_VALUES), st.text(max_size=20)),
    st.one_of(st.none(), st.sampled_from(_MFA_VALUES), st.text(max_size=20)),
    st.sampled_from(["VersioningConfiguration", "VersioningConfig", "Status"]),
    st.booleans(),
)
def test_versioning_configuration(status: str | None, mfa: str | None, root: str, namespaced: bool) -> None:
    """Enabled/Suspended (surrounding blanks allowed) and MfaDelete absent or Disabled are accepted;
    MfaDelete Enabled is AccessDenied (no MFA devices); anything else is MalformedXML."""
    inner = (xml.elem("Status", status) if status is not None else "") + (
        xml.elem("MfaDelete", mfa) if mfa is not None else ""
    )
    body = xml.document(root, inner, namespace=namespaced)
    try:
        got = versioning.parse_configuration(body)
    except S3Error as exc:
        well_formed = root == "VersioningConfiguration" and status is not None and status.strip() in versioning.STATUSES
        if well_formed and mfa is not None and mfa.strip() == "Enabled":
            assert exc.code == "AccessDenied"
        else:
            assert exc.code == "MalformedXML"
            assert not well_formed or (mfa is not None and mfa.strip() not in versioning.MFA_STATES)
        return
    assert root == "VersioningConfiguration" and status is not None and got == status.strip()
    assert mfa is None or mfa.strip() == "Disabled"


@fuzz
@given(st.binary(max_size=400))
def test_versioning_configuration_random_bytes(noise: bytes) -> None:
    try:
        versioning.parse_configuration(b"<VersioningConfiguration>" + noise + b"</VersioningConfiguration>")
    except S3Error as exc:
        assert exc.code in ("MalformedXML", "AccessDenied")


@fuzz
@given(st.one_of(st.text(max_size=40), st.binary(min_size=16, max_size=16).map(bytes.hex)))
def test_version_id_parameter(value: str) -> None:
    """'null' and 32 lowercase hex digits are version ids; anything else is 400 InvalidArgument."""
    try:
        assert versioning.version_param({"versionId": value}) == value
    except S3Error as exc:
        assert (exc.status, exc.code, exc.fields["ArgumentName"]) == (400, "InvalidArgument", "versionId")
        assert value != "null" and not (len(value) == 32 and all(c in "0123456789abcdef" for c in value))
        return
    assert value == "null" or len(value) == 32


@fuzz
@given(st.one_of(st.none(), st.text(max_size=60), st.from_regex(r"\A\S{1,20} \d{6}\Z")))
def test_mfa_header_is_refused(value: str | None) -> None:
    try:
        versioning.check_mfa_header(value)
    except S3Error as exc:
        assert value is not None and exc.code in ("InvalidArgument", "AccessDenied")
        return
    assert value is None


# ---------------------------------------------------------------------- timestamps
@fuzz
@given(st.one_of(st.text(max_size=60), st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())))
def test_timestamp_parser_never_crashes(value: str) -> None:
    try:
        when = parse_timestamp(value, "x-amz-if-match-last-modified-time")
    except S3Error as exc:
        assert (exc.code, exc.status) == ("InvalidArgument", 400)
        return
    assert isinstance(when, float)


# ---------------------------------------------------------------------- Object Lock documents and headers
_lock_text = st.one_of(
    st.sampled_from(
        ["GOVERNANCE", "COMPLIANCE", "governance", "Enabled", "ON", "OFF", "1", "0", "-1", "2030-01-01T00:00:00Z"]
    ),
    st.text(max_size=25),
)


def _maybe(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{xml.esc(value)}</{name}>"


@fuzz
@given(
    st.sampled_from(["ObjectLockConfiguration", "Retention", "LegalHold", "Other"]),
    st.lists(
        st.tuples(
            st.sampled_from(["ObjectLockEnabled", "Mode", "Days", "Years", "RetainUntilDate", "Status", "Rule"]),
            _lock_text,
        ),
        max_size=5,
    ),
    st.booleans(),
    st.binary(max_size=40),
)
def test_object_lock_documents(root: str, fields: list[tuple[str, str]], nest: bool, noise: bytes) -> None:
    inner = "".join(_maybe(name, value) for name, value in fields)
    if nest and root == "ObjectLockConfiguration":
        enabled = "".join(_maybe(n, v) for n, v in fields if n == "ObjectLockEnabled")
        inner = f"{enabled}<Rule><DefaultRetention>{inner}</DefaultRetention></Rule>"
    body = f"<{root}>{inner}</{root}>".encode() + (noise if nest else b"")
    try:
        rule = object_lock.parse_configuration(body)
    except S3Error as exc:
        assert exc.code in ("MalformedXML", "InvalidRetentionPeriod") and exc.status == 400
    else:
        # What was accepted is written back and read again unchanged.
        assert object_lock.parse_configuration(object_lock.configuration_document(rule)) == rule
        if rule is not None:
            assert rule.until(0.0) > 0
    try:
        mode, until = object_lock.parse_retention(body, 1_700_000_000.0)
    except S3Error as exc:
        assert exc.code in ("MalformedXML", "InvalidArgument") and exc.status == 400
    else:
        assert (mode is None) == (until is None)
        assert mode is None or (until is not None and until > 1_700_000_000.0)
    try:
        on = object_lock.parse_legal_hold(body)
    except S3Error as exc:
        assert exc.code == "MalformedXML"
    else:
        assert object_lock.parse_legal_hold(object_lock.legal_hold_document(on)) == on


@fuzz
@given(
    st.dictionaries(
        st.sampled_from([object_lock.MODE_HEADER, object_lock.UNTIL_HEADER, object_lock.HOLD_HEADER]),
        st.one_of(_lock_text, st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())),
    )
)
def test_object_lock_headers(headers: dict[str, str]) -> None:
    try:
        lock = object_lock.requested_lock(headers, 1_700_000_000.0)
    except S3Error as exc:
        assert (exc.code, exc.status) == ("InvalidArgument", 400)
        return
    if not headers:
        assert lock is None
        return
    assert lock is not None
    assert (lock.mode is None) == (lock.retain_until is None)
    hold = headers.get(object_lock.HOLD_HEADER)
    # Tri-state: no header leaves the hold unset (None), which is not the same as OFF.
    assert lock.legal_hold == (None if hold is None else hold == "ON")
