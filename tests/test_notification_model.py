"""Unit tests of event notifications without a server: the configuration XML (parsed, validated,
rendered, fuzzed), rule matching, the event record JSON and the webhook target settings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.config import ConfigError, load_settings
from coffer.events.queue import decode_lines, event_line
from coffer.events.records import ObjectEvent, event_record, stamp
from coffer.events.rules import Rules
from coffer.events.targets import TargetError, parse_targets, target_of_arn
from coffer.server import notification
from coffer.server.errors import S3Error

TARGETS = {"hook", "other"}
ARN = "arn:coffer:sqs:us-east-1::hook"


def doc(*configs: str) -> bytes:
    return f'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{"".join(configs)}</NotificationConfiguration>'.encode()


def queue(events: list[str], arn: str = ARN, rule_id: str = "r", filters: str = "") -> str:
    inner = f"<Id>{rule_id}</Id><Queue>{arn}</Queue>" + "".join(f"<Event>{e}</Event>" for e in events)
    if filters:
        inner += f"<Filter><S3Key>{filters}</S3Key></Filter>"
    return f"<QueueConfiguration>{inner}</QueueConfiguration>"


def rule(name: str, value: str) -> str:
    return f"<FilterRule><Name>{name}</Name><Value>{value}</Value></FilterRule>"


def error_of(body: bytes) -> tuple[str, str]:
    with pytest.raises(S3Error) as info:
        notification.parse(body, TARGETS)
    return info.value.code, info.value.message


def test_round_trip_and_matching() -> None:
    body = doc(
        queue(["s3:ObjectCreated:*"], filters=rule("prefix", "img/") + rule("Suffix", ".jpg")),
        "<TopicConfiguration><Id>t</Id><Topic>arn:coffer:sns:us-east-1::other</Topic>"
        "<Event>s3:ObjectRemoved:Delete</Event></TopicConfiguration>",
    )
    rules = notification.parse(body, TARGETS)
    assert rules is not None
    assert [r.target for r in rules.rules] == ["hook", "other"]
    assert [rule_id for _, rule_id in rules.match("s3:ObjectCreated:Put", "img/a.jpg")] == ["r"]
    assert rules.match("s3:ObjectCreated:Put", "img/a.png") == ()
    assert rules.match("s3:ObjectCreated:Put", "doc/a.jpg") == ()
    assert [rule_id for _, rule_id in rules.match("s3:ObjectRemoved:Delete", "x")] == ["t"]
    assert rules.match("s3:ObjectRemoved:DeleteMarkerCreated", "x") == ()
    stored = Rules.from_doc(json.loads(json.dumps(rules.to_doc())))
    assert stored == rules
    again = notification.parse(notification.render(stored), TARGETS)
    assert again == rules


def test_empty_configuration_removes_rules() -> None:
    assert notification.parse(doc(), TARGETS) is None
    assert notification.render(None).endswith(
        b'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></NotificationConfiguration>'
    )


def test_missing_id_gets_one() -> None:
    rules = notification.parse(doc(queue(["s3:ObjectTagging:*"], rule_id="")), TARGETS)
    assert rules is not None and rules.rules[0].id


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            doc(queue(["s3:ObjectCreated:*"], arn="arn:coffer:sqs:us-east-1::nope")),
            "InvalidArgument",
            "Unable to validate",
        ),
        (
            doc(queue(["s3:ObjectCreated:*"], arn="arn:coffer:sns:us-east-1::hook")),
            "InvalidArgument",
            "Unable to validate",
        ),
        (doc(queue(["s3:ObjectCreated:*"], arn="not an arn")), "InvalidArgument", "Unable to validate"),
        (doc(queue(["s3:ObjectAccessed:Get"])), "InvalidArgument", "event is not supported"),
        (doc(queue([])), "MalformedXML", ""),
        (doc(queue(["s3:ObjectCreated:*"], filters=rule("infix", "a"))), "InvalidArgument", "prefix or suffix"),
        (
            doc(queue(["s3:ObjectCreated:*"], filters=rule("prefix", "a") + rule("Prefix", "b"))),
            "InvalidArgument",
            "more than one prefix",
        ),
        (doc(queue(["s3:ObjectCreated:*"]), queue(["s3:ObjectRemoved:*"])), "InvalidArgument", "Same ID"),
        (
            doc(queue(["s3:ObjectCreated:*"]), queue(["s3:ObjectCreated:Put"], rule_id="b")),
            "InvalidArgument",
            "Configurations overlap",
        ),
        (
            doc(
                queue(["s3:ObjectCreated:*"], filters=rule("prefix", "img/") + rule("suffix", "jpg")),
                queue(["s3:ObjectCreated:Put"], rule_id="b", filters=rule("prefix", "img/a") + rule("suffix", "pg")),
            ),
            "InvalidArgument",
            "ambiguously defined",
        ),
        (
            doc("<CloudFunctionConfiguration><CloudFunction>x</CloudFunction></CloudFunctionConfiguration>"),
            "InvalidArgument",
            "Unable to validate",
        ),
        (doc("<Unknown/>"), "MalformedXML", ""),
        (b"<Other/>", "MalformedXML", ""),
        (b"<NotificationConfiguration>", "MalformedXML", ""),
    ],
)
def test_invalid_documents(body: bytes, code: str, message: str) -> None:
    got_code, got_message = error_of(body)
    assert got_code == code
    assert message in got_message


def test_disjoint_filters_do_not_overlap() -> None:
    """Rules one event cannot both fire: disjoint prefixes, disjoint suffixes, or other event types."""
    body = doc(
        queue(["s3:ObjectCreated:*"], filters=rule("prefix", "a/")),
        queue(["s3:ObjectCreated:*"], rule_id="b", filters=rule("prefix", "b/")),
        queue(["s3:ObjectCreated:*"], rule_id="c", filters=rule("prefix", "a/") + rule("suffix", ".png")),
        queue(["s3:ObjectRemoved:*"], rule_id="d"),
    )
    # "a/" with no suffix overlaps "a/" + ".png": refused; without the first rule they are fine.
    assert error_of(body)[0] == "InvalidArgument"
    body = doc(
        queue(["s3:ObjectCreated:*"], filters=rule("prefix", "a/") + rule("suffix", ".jpg")),
        queue(["s3:ObjectCreated:*"], rule_id="b", filters=rule("prefix", "b/")),
        queue(["s3:ObjectCreated:*"], rule_id="c", filters=rule("prefix", "a/") + rule("suffix", ".png")),
        queue(["s3:ObjectRemoved:*"], rule_id="d"),
    )
    rules = notification.parse(body, TARGETS)
    assert rules is not None and len(rules.rules) == 4


_pieces = st.sampled_from(
    [
        "<NotificationConfiguration>",
        "</NotificationConfiguration>",
        "<QueueConfiguration>",
        "</QueueConfiguration>",
        "<TopicConfiguration>",
        "</TopicConfiguration>",
        "<Id>x</Id>",
        f"<Queue>{ARN}</Queue>",
        "<Topic>arn:coffer:sns:r::other</Topic>",
        "<Event>s3:ObjectCreated:*</Event>",
        "<Event>s3:Bogus</Event>",
        "<Filter>",
        "</Filter>",
        "<S3Key>",
        "</S3Key>",
        rule("prefix", "a"),
        rule("suffix", "b"),
        rule("x", "y"),
        "<FilterRule>",
        "</FilterRule>",
        "<Name>",
        "</Name>",
        "&amp;",
        "&bogus;",
        "<!DOCTYPE x>",
        "\x00",
        "é",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, max_size=25), st.binary(max_size=20))
def test_fuzzed_documents_are_s3_errors(pieces: list[str], noise: bytes) -> None:
    body = "".join(pieces).encode() + noise
    try:
        rules = notification.parse(body, TARGETS)
    except S3Error as err:
        assert err.status == 400, err.code
        return
    notification.render(rules)  # whatever parsed renders


def test_record_shape() -> None:
    event = ObjectEvent(
        "s3:ObjectCreated:Put",
        "bkt",
        "a b/ü+c.txt",
        size=5,
        etag="abc",
        version_id="v1",
        principal_id="me",
        source_ip="10.0.0.1",
        request_id="RID",
        bucket_owner="owner",
    )
    record = json.loads(event_record(stamp(event, 1700000000_500000000), "eu-west-1", "cfg"))
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventTime"] == "2023-11-14T22:13:20.500Z"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["userIdentity"] == {"principalId": "me"}
    assert record["requestParameters"] == {"sourceIPAddress": "10.0.0.1"}
    assert record["responseElements"]["x-amz-request-id"] == "RID"
    s3: dict[str, Any] = record["s3"]
    assert s3["configurationId"] == "cfg"
    assert s3["bucket"] == {"name": "bkt", "ownerIdentity": {"principalId": "owner"}, "arn": "arn:aws:s3:::bkt"}
    assert s3["object"]["key"] == "a+b/%C3%BC%2Bc.txt"
    assert (s3["object"]["size"], s3["object"]["eTag"], s3["object"]["versionId"]) == (5, "abc", "v1")
    later = json.loads(event_record(stamp(event), "eu-west-1", "cfg"))["s3"]["object"]["sequencer"]
    assert len(later) == 24 and int(later, 16) > int(s3["object"]["sequencer"], 16)
    removed = ObjectEvent("s3:ObjectRemoved:Delete", "bkt", "k", version_id="null")
    obj = json.loads(event_record(stamp(removed), "r", ""))["s3"]["object"]
    assert "versionId" not in obj and "size" not in obj


def test_record_survives_the_queue_line() -> None:
    """The queue keeps an event's facts, not its record: the record made from a line read back is the
    record the event makes (what a delivery after a restart, or another worker's stream, sends)."""
    for key, size, etag, version in (('a b/ü\n"c', 5, "abc", "v1"), ("plain/key", None, None, None)):
        event = stamp(ObjectEvent("s3:ObjectCreated:Put", "bkt", key, size, etag, version, "me", "::1", "R", "o"))
        line = event_line((("hook", 'rule "x"'), ("other", "r2")), event)
        [(offset, end, destinations, back)] = list(decode_lines(line))
        assert (offset, end) == (0, len(line)) and destinations == (("hook", 'rule "x"'), ("other", "r2"))
        assert event_record(back, "us-east-1", "c") == event_record(event, "us-east-1", "c")


def test_targets_setting(tmp_path: Any) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "notification_targets:\n  hook:\n    url: http://127.0.0.1:9/h\n    auth_header: Bearer t\n    queue_limit: 5\n"
    )
    settings_ = load_settings(config, environ={})
    targets = parse_targets(settings_.notification_targets)
    assert targets["hook"].queue_limit == 5 and targets["hook"].auth_header == "Bearer t"
    from_env = load_settings(environ={"COFFER_NOTIFICATION_TARGETS": '{"h": {"url": "https://x.example/e"}}'})
    assert parse_targets(from_env.notification_targets)["h"].endpoint().tls
    with pytest.raises(ConfigError):
        load_settings(environ={"COFFER_NOTIFICATION_TARGETS": '{"h": {"url": "ftp://x"}}'})
    with pytest.raises(ConfigError):
        load_settings(environ={"COFFER_NOTIFICATION_TARGETS": '{"h": {"url": "http://x", "bogus": 1}}'})
    with pytest.raises(TargetError):
        parse_targets({"h": {"url": "http://x", "queue_limit": 0}})
    assert target_of_arn("arn:coffer:sqs:us-east-1::hook", "Queue") == "hook"
    assert target_of_arn("arn:aws:sns:us-east-1:123:hook", "Topic") == "hook"
    assert target_of_arn("arn:coffer:sqs:us-east-1::hook", "Topic") is None


def test_record_text_is_escaped() -> None:
    """Keys, ids and principals with quotes or the configurationId text itself stay inside their strings."""
    key = '"configurationId":"" \\ \n é'
    event = ObjectEvent("s3:ObjectTagging:Put", "bkt", key, principal_id='user"1', etag='e"t', version_id="v\\1")
    record = json.loads(event_record(stamp(event), "us-east-1", 'rule "x"'))
    assert record["s3"]["configurationId"] == 'rule "x"'
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert record["userIdentity"]["principalId"] == 'user"1'
    assert (record["s3"]["object"]["eTag"], record["s3"]["object"]["versionId"]) == ('e"t', "v\\1")
