"""Lifecycle rules without a server: the XML parser and renderer (coffer/server/lifecycle.py) with S3's
errors, fuzzed with hypothesis (S3 errors, never a crash), and the decisions of
coffer/storage/lifecycle.py (due times, which action applies to a version at a time)."""

from __future__ import annotations

import calendar
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server import lifecycle as wire
from coffer.server.errors import S3Error
from coffer.storage import lifecycle as lc

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "200"))
DAY = lc.DAY


def doc(*rules: str) -> bytes:
    return (
        "<LifecycleConfiguration>" + "".join(f"<Rule>{r}</Rule>" for r in rules) + "</LifecycleConfiguration>"
    ).encode()


def error(body: bytes) -> tuple[str, str]:
    with pytest.raises(S3Error) as caught:
        wire.parse_configuration(body)
    return caught.value.code, caught.value.message


ENABLED = "<Status>Enabled</Status>"


# ---------------------------------------------------------------------- parsing
def test_round_trip_of_every_element() -> None:
    body = doc(
        f"<ID>a</ID><Prefix>logs/</Prefix>{ENABLED}<Expiration><Days>3</Days></Expiration>",
        "<ID>b</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
        "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Disabled</Status>"
        "<Transition><Days>0</Days><StorageClass>GLACIER</StorageClass></Transition>"
        "<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>"
        "<NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration>"
        "<NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays><StorageClass>STANDARD_IA</StorageClass>"
        "</NoncurrentVersionTransition>",
        f"<ID>c</ID><Filter><Tag><Key>x</Key><Value>y</Value></Tag></Filter>{ENABLED}"
        "<Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>",
        f"<ID>d</ID><Filter/>{ENABLED}<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
        "</Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation>"
        "</AbortIncompleteMultipartUpload>",
    )
    config = wire.parse_configuration(body)
    assert [r.id for r in config.rules] == ["a", "b", "c", "d"]
    b = config.rules[1]
    assert b.filter == lc.Filter("p/", (("k", "v"),), 10, None) and not b.enabled
    assert (b.noncurrent_days, b.newer_noncurrent) == (2, 3)
    assert config.rules[2].expiration_date == calendar.timegm((2030, 1, 1, 0, 0, 0))
    # Stored and read back, then rendered and parsed again: the same configuration.
    assert lc.Configuration.from_doc(config.to_doc()) == config
    assert wire.parse_configuration(wire.render(config)) == config
    assert b"<Prefix>logs/</Prefix>" in wire.render(config)  # the legacy form stays legacy


def test_rules_without_id_get_one() -> None:
    config = wire.parse_configuration(doc(f"<Prefix>a</Prefix>{ENABLED}<Expiration><Days>1</Days></Expiration>"))
    assert config.rules[0].id


@pytest.mark.parametrize(
    ("rule", "code", "message"),
    [
        (f"<Prefix/>{ENABLED}<Expiration><Days>0</Days></Expiration>", "InvalidArgument", "'Days' for Expiration"),
        (f"<Prefix/>{ENABLED}<Expiration><Days>-1</Days></Expiration>", "InvalidArgument", "positive integer"),
        (f"<Prefix/>{ENABLED}<Expiration><Days>x</Days></Expiration>", "MalformedXML", ""),
        (f"<ID>{'a' * 256}</ID><Prefix/>{ENABLED}<Expiration><Days>1</Days></Expiration>", "InvalidArgument", "255"),
        ("<Prefix/><Status>enabled</Status><Expiration><Days>1</Days></Expiration>", "MalformedXML", ""),
        ("<Prefix/><Expiration><Days>1</Days></Expiration>", "MalformedXML", ""),
        (f"<Prefix/>{ENABLED}<Expiration><Date>20200101</Date></Expiration>", "InvalidArgument", "ISO 8601"),
        (
            f"<Prefix/>{ENABLED}<Expiration><Date>2020-01-01T01:00:00Z</Date></Expiration>",
            "InvalidArgument",
            "midnight",
        ),
        (f"<Prefix/>{ENABLED}<Expiration><Days>1</Days><Date>2020-01-01</Date></Expiration>", "MalformedXML", ""),
        (
            f"<Prefix/>{ENABLED}<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
            "</Expiration>",
            "InvalidArgument",
            "ExpiredObjectDeleteMarker",
        ),
        (f"<Prefix/>{ENABLED}", "InvalidArgument", "At least one action"),
        (f"{ENABLED}<Expiration><Days>1</Days></Expiration>", "MalformedXML", ""),
        (f"<Prefix/><Filter/>{ENABLED}<Expiration><Days>1</Days></Expiration>", "MalformedXML", ""),
        (f"<Prefix/>{ENABLED}<Bogus/><Expiration><Days>1</Days></Expiration>", "MalformedXML", ""),
        (
            f"<Prefix/>{ENABLED}<Transition><Days>1</Days><StorageClass>NOPE</StorageClass></Transition>",
            "InvalidStorageClass",
            "",
        ),
        (
            f"<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>{ENABLED}"
            "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
            "</AbortIncompleteMultipartUpload>",
            "InvalidRequest",
            "Tags",
        ),
        (
            f"<Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan><ObjectSizeLessThan>5</ObjectSizeLessThan>"
            f"</Filter>{ENABLED}<Expiration><Days>1</Days></Expiration>",
            "InvalidArgument",
            "ObjectSize",
        ),
        (
            f"<Prefix/>{ENABLED}<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays>"
            "</NoncurrentVersionExpiration>",
            "InvalidArgument",
            "'NoncurrentDays'",
        ),
    ],
)
def test_refused_rules(rule: str, code: str, message: str) -> None:
    got_code, got_message = error(doc(rule))
    assert got_code == code and message in got_message


def test_document_level_errors() -> None:
    assert error(b"<LifecycleConfiguration/>")[0] == "MalformedXML"
    assert error(b"<Lifecycle><Rule/></Lifecycle>")[0] == "MalformedXML"
    same = f"<ID>r</ID><Prefix/>{ENABLED}<Expiration><Days>1</Days></Expiration>"
    assert error(doc(same, same)) == ("InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule")
    many = [f"<ID>{i}</ID><Prefix/>{ENABLED}<Expiration><Days>1</Days></Expiration>" for i in range(1001)]
    assert error(doc(*many))[0] == "MalformedXML"
    assert len(wire.parse_configuration(doc(*many[:1000])).rules) == 1000


_ELEMENTS = st.sampled_from(
    [
        "ID",
        "Prefix",
        "Filter",
        "And",
        "Tag",
        "Key",
        "Value",
        "Status",
        "Expiration",
        "Days",
        "Date",
        "ExpiredObjectDeleteMarker",
        "Transition",
        "StorageClass",
        "NoncurrentVersionExpiration",
        "NoncurrentDays",
        "NewerNoncurrentVersions",
        "NoncurrentVersionTransition",
        "AbortIncompleteMultipartUpload",
        "DaysAfterInitiation",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
    ]
)
_TEXTS = st.one_of(
    st.sampled_from(["Enabled", "Disabled", "1", "0", "-3", "true", "GLACIER", "2020-01-01", "99999999999999999999"]),
    st.text(max_size=12),
)


@st.composite
def _elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_ELEMENTS)
    if depth < 3 and draw(st.booleans()):
        inner = "".join(draw(st.lists(_elements(depth + 1), max_size=4)))
    else:
        text = draw(_TEXTS)
        inner = text.replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}>{inner}</{name}>"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(rules=st.lists(st.lists(_elements(), max_size=6), min_size=1, max_size=3))
def test_fuzzed_documents_give_s3_errors_or_a_configuration(rules: list[list[str]]) -> None:
    body = doc(*("".join(parts) for parts in rules))
    try:
        config = wire.parse_configuration(body)
    except S3Error as exc:
        assert exc.status == 400
        return
    assert wire.parse_configuration(wire.render(config)) == config
    assert lc.Configuration.from_doc(config.to_doc()) == config


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=st.binary(max_size=300))
def test_random_bytes_give_s3_errors(body: bytes) -> None:
    with pytest.raises(S3Error):
        wire.parse_configuration(b"<LifecycleConfiguration>" + body)


# ---------------------------------------------------------------------- decisions
def test_due_rounds_to_midnight_with_real_days_only() -> None:
    created = calendar.timegm((2024, 5, 1, 13, 30, 0))
    assert lc.due(created, 1, DAY) == calendar.timegm((2024, 5, 3, 0, 0, 0))
    assert lc.due(calendar.timegm((2024, 5, 1, 0, 0, 0)), 1, DAY) == calendar.timegm((2024, 5, 2, 0, 0, 0))
    assert lc.due(created, 3, 10.0) == created + 30


def test_current_and_noncurrent_decisions() -> None:
    rules = (
        lc.Rule("exp", True, lc.Filter("a/"), expiration_days=2),
        lc.Rule("tr", True, lc.Filter(), transitions=(lc.Transition("STANDARD_IA", days=1),)),
        lc.Rule("nc", True, lc.Filter(), noncurrent_days=1, newer_noncurrent=2),
        lc.Rule("tag", True, lc.Filter("t/", (("k", "v"),)), expiration_days=1),
    )
    config = lc.Configuration(rules)
    v = lc.Version("a/x", 5, 0.0)
    assert lc.current_action(config, v, 5.0, 10.0) is None
    assert lc.current_action(config, v, 10.0, 10.0) == lc.Action(lc.TRANSITION, "tr", "STANDARD_IA")
    assert lc.current_action(config, v, 20.0, 10.0) == lc.Action(lc.EXPIRE, "exp")
    # Already in the class a due transition names: nothing to do.
    assert lc.current_action(config, lc.Version("b", 5, 0.0, "STANDARD_IA"), 99.0, 10.0) is None
    # Noncurrent: due 1 day after it became noncurrent, the 2 newest noncurrent versions kept.
    assert lc.noncurrent_action(config, lc.Version("b", 1, 0.0), 100.0, 2, 111.0, 10.0) == lc.Action(
        lc.NONCURRENT_EXPIRE, "nc"
    )
    assert lc.noncurrent_action(config, lc.Version("b", 1, 0.0), 100.0, 1, 111.0, 10.0) is None
    assert lc.noncurrent_action(config, lc.Version("b", 1, 0.0), 100.0, 2, 105.0, 10.0) is None
    # Tag filters: undecided until the tags are known.
    assert lc.current_action(config, lc.Version("t/x", 1, 0.0), 50.0, 10.0) is lc.NEEDS_TAGS
    assert lc.current_action(config, lc.Version("t/x", 1, 0.0, tags={"k": "v"}), 50.0, 10.0) == lc.Action(
        lc.EXPIRE, "tag"
    )


def test_scan_prefix_and_expiration_header_rule() -> None:
    config = lc.Configuration(
        (
            lc.Rule("late", True, lc.Filter("logs/a"), expiration_days=30),
            lc.Rule("early", True, lc.Filter("logs/"), expiration_days=2),
            lc.Rule("off", False, lc.Filter("other/"), expiration_days=1),
        )
    )
    assert config.scan_prefix() == "logs/"
    created = calendar.timegm((2024, 5, 1, 13, 30, 0))
    assert lc.expiration_of(config, lc.Version("logs/a1", 1, created, tags={})) == (
        calendar.timegm((2024, 5, 4, 0, 0, 0)),
        "early",
    )
    assert lc.expiration_of(config, lc.Version("other/x", 1, created, tags={})) is None


def test_multipart_abort_decision() -> None:
    config = lc.Configuration((lc.Rule("mp", True, lc.Filter("test1/"), abort_days=2),))
    assert lc.upload_action(config, "test1/a", 0.0, 19.0, 10.0) is None
    assert lc.upload_action(config, "test1/a", 0.0, 20.0, 10.0) == lc.Action(lc.ABORT_UPLOAD, "mp")
    assert lc.upload_action(config, "test2/a", 0.0, 99.0, 10.0) is None
