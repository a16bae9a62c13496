"""Property and fuzz tests (hypothesis) of the PublicAccessBlockConfiguration and
OwnershipControls parsers and the x-amz-object-ownership header: each answers or raises
S3Error (MalformedXML / InvalidArgument), nothing else, and what they render parses back.

A long run: ``COFFER_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz_bucket_access.py -q``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server import ownership, public_access
from coffer.server.errors import S3Error

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_values = st.sampled_from(["true", "false", "TRUE", " true ", "", "yes", "1", "<x/>", "&amp;", "tru\x00e"])
_names = st.sampled_from([*public_access.FIELDS, "Bogus", "blockpublicacls", ""])


@st.composite
def _pab_documents(draw: st.DrawFn) -> bytes:
    root = draw(st.sampled_from(["PublicAccessBlockConfiguration", "PublicAccessBlock", "x"]))
    ns = draw(st.sampled_from(["", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"']))
    children = draw(st.lists(st.tuples(_names, _values), max_size=6))
    inner = "".join(f"<{n}>{v}</{n}>" if n else v for n, v in children)
    return f"<{root}{ns}>{inner}</{root}>".encode()


@fuzz
@given(st.one_of(st.binary(max_size=300), _pab_documents()))
def test_public_access_block_parser(body: bytes) -> None:
    try:
        block = public_access.parse_configuration(body)
    except S3Error as exc:
        assert exc.code == "MalformedXML"
        return
    assert public_access.parse_configuration(public_access.render(block)) == block
    assert public_access.PublicAccessBlock.from_doc(block.to_doc()) == block


@fuzz
@given(st.lists(st.booleans(), min_size=4, max_size=4))
def test_public_access_block_round_trip(values: list[bool]) -> None:
    block = public_access.PublicAccessBlock(*values)
    assert public_access.parse_configuration(public_access.render(block)) == block


_ownerships = st.sampled_from([*ownership.VALUES, "bucketownerenforced", "", "Other", " ObjectWriter "])


@st.composite
def _ownership_documents(draw: st.DrawFn) -> bytes:
    root = draw(st.sampled_from(["OwnershipControls", "Ownership"]))
    rules = draw(
        st.lists(
            st.lists(st.tuples(st.sampled_from(["ObjectOwnership", "Other"]), _ownerships), max_size=3), max_size=3
        )
    )
    inner = "".join("<Rule>" + "".join(f"<{n}>{v}</{n}>" for n, v in rule) + "</Rule>" for rule in rules)
    return f"<{root}>{inner}</{root}>".encode()


@fuzz
@given(st.one_of(st.binary(max_size=300), _ownership_documents()))
def test_ownership_controls_parser(body: bytes) -> None:
    try:
        value = ownership.parse_configuration(body)
    except S3Error as exc:
        assert exc.code == "MalformedXML"
        return
    assert value in ownership.VALUES
    assert ownership.parse_configuration(ownership.render(value)) == value


@fuzz
@given(
    st.dictionaries(
        st.sampled_from([ownership.HEADER, "x-amz-acl", *ownership.GRANT_HEADERS]),
        st.one_of(
            _ownerships, st.sampled_from(["private", "public-read", "bucket-owner-full-control"]), st.text(max_size=20)
        ),
    )
)
def test_ownership_headers(headers: dict[str, str]) -> None:
    try:
        value = ownership.for_new_bucket(headers)
    except S3Error as exc:
        assert exc.code in ("InvalidArgument", "InvalidBucketAclWithObjectOwnership")
        return
    assert value is None or value in ownership.VALUES  # None: no controls asked for
    try:
        ownership.check_object_acl(value, headers)
    except S3Error as exc:
        assert exc.code == "AccessControlListNotSupported" and value == ownership.ENFORCED
