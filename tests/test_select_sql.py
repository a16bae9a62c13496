"""S3 Select without a server: the SQL parser (and its fuzzing), the row evaluator, the
vectorized engine against it, the readers and the event-stream encoding."""

from __future__ import annotations

import bz2
import gzip
from datetime import UTC, datetime

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.select import eventstream, inputs, vector
from coffer.select.errors import SelectError
from coffer.select.evaluate import Plan, Schema
from coffer.select.query import prepare
from coffer.select.request import CsvInput, CsvOutput, JsonInput, JsonOutput, ParquetInput, SelectRequest
from coffer.select.run import Stats
from coffer.select.sql import ast
from coffer.select.sql.lexer import KEYWORDS
from coffer.select.sql.parser import MAX_DEPTH, parse

CSV = (
    b"name,age,city,joined\nalice,30,paris,2020-01-15T00:00:00Z\nbob,45,rome,2019-06-01T12:30:00Z\n"
    b"carol,600,Oslo,2021-12-31T23:59:59Z\ndave,,rome,2018-03-03T00:00:00Z\n"
)


def run_query(
    expression: str,
    data: bytes = CSV,
    source: object = None,
    output: object = None,
    compression: str = "NONE",
    scan_range: tuple[int | None, int | None] | None = None,
) -> str:
    request = SelectRequest(
        expression,
        source or CsvInput(header="USE"),  # type: ignore[arg-type]
        output or CsvOutput(),  # type: ignore[arg-type]
        compression=compression,
        scan_range=scan_range,
    )
    prepared = prepare(request)
    start = prepared.byte_span(len(data))[0]
    messages: list[bytes] = []
    prepared.work(iter([data[start:][i : i + 7] for i in range(0, len(data) - start, 7)]), messages.append, Stats())
    out = b""
    for message in messages:
        buffer = EventStreamBuffer()
        buffer.add_data(message)
        for event in buffer:
            assert event.headers[":event-type"] == "Records"
            out += event.payload
    return out.decode()


# -- event stream ----------------------------------------------------------------------------


def test_event_stream_messages_parse_with_botocore() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(
        eventstream.records(b"a,b\n")
        + eventstream.stats(10, 10, 4)
        + eventstream.cont()
        + eventstream.end()
        + eventstream.error("CastFailed", "no")
    )
    events = list(buffer)
    assert [e.headers.get(":event-type") for e in events] == ["Records", "Stats", "Cont", "End", None]
    assert events[0].payload == b"a,b\n"
    assert b"<BytesScanned>10</BytesScanned>" in events[1].payload
    assert events[4].headers[":error-code"] == "CastFailed"


# -- parser ----------------------------------------------------------------------------------


def test_parse_paths_aliases_and_clauses() -> None:
    query = parse("SELECT s.a.b[0] AS x, _2 FROM S3Object[*].root s WHERE s.c IS NOT MISSING LIMIT 3;")
    assert query.alias == "s" and query.limit == 3
    assert query.items[0].alias == "x"
    assert query.items[0].expr == ast.Path((ast.Name("s"), ast.Name("a"), ast.Name("b"), ast.Name(0)))
    assert query.source == (ast.Star(), ast.Name("root"))


@pytest.mark.parametrize(
    ("text", "code", "line", "column"),
    [
        ("SELECT FROM S3Object", "ParseExpectedExpression", 1, 8),
        ("SELECT _1 FROM S3Object WHERE", "ParseExpectedExpression", 1, 30),
        ("SELECT _1 FROM S3Object\nWHERE _1 = = 2", "ParseExpectedExpression", 2, 12),
        ("SELECT _1 FROM S3Object LIMIT x", "ParseExpectedNumber", 1, 31),
        ("SELECT _1 FROM S3Object garbage garbage", "ParseUnexpectedToken", 1, 33),
        ("UPDATE x", "ParseUnsupportedSelect", 1, 1),
        ("SELECT *, _1 FROM S3Object", "ParseAsteriskIsNotAloneInSelectList", 1, 9),
        ("SELECT _1 FROM S3Object LIMIT -1", "EvaluatorNegativeLimit", 1, 31),
        ("SELECT 'abc FROM S3Object", "LexerInvalidChar", 1, 8),
        ("SELECT CAST(_1 AS BLOB) FROM S3Object", "ParseExpectedTypeName", 1, 19),
    ],
)
def test_parse_errors_name_code_line_and_column(text: str, code: str, line: int, column: int) -> None:
    with pytest.raises(SelectError) as caught:
        parse(text)
    assert (caught.value.code, caught.value.line, caught.value.column) == (code, line, column)


def test_nesting_is_bounded() -> None:
    for text in (
        "SELECT " + "(" * 10_000 + "1" + ")" * 10_000 + " FROM S3Object",
        "SELECT " + "- " * 10_000 + "1 FROM S3Object",
        "SELECT " + "NOT " * 10_000 + "1 FROM S3Object",
    ):
        with pytest.raises(SelectError):
            parse(text)
    parse("SELECT " + "(" * (MAX_DEPTH - 2) + "1" + ")" * (MAX_DEPTH - 2) + " FROM S3Object")


# The dialect's keywords and a sample of every other kind of token.
_WORDS = [
    *sorted(KEYWORDS),
    *["S3Object", "INT", "count", "(", ")", "*", ",", ".", "[", "]", "=", "<", "<>", "+", "-", "/", "||", "'x'"],
    *["1", "2.5", "_1", "s", "a", "TRIM", "SUBSTRING", "EXTRACT", "YEAR", "DATE_ADD", "`2020T`", ";", '"q"', "%"],
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_WORDS), max_size=40).map(" ".join)))
def test_fuzz_parser_gives_a_query_or_a_select_error(text: str) -> None:
    try:
        parse(text)
    except SelectError as exc:
        assert exc.code and exc.message


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([w for w in _WORDS if w not in ("SELECT", "FROM", "WHERE", "LIMIT")]), max_size=25).map(
        " ".join
    )
)
def test_fuzz_where_clauses_evaluate_or_fail_as_s3_errors(where: str) -> None:
    try:
        run_query(f"SELECT _1 FROM S3Object WHERE {where}")
    except SelectError:
        pass


# -- evaluation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("SELECT * FROM S3Object LIMIT 1", "alice,30,paris,2020-01-15T00:00:00Z\n"),
        ("SELECT name FROM S3Object WHERE CAST(age AS INT) > 40", "bob\ncarol\n"),
        ("SELECT s.name, s.age + 1 FROM S3Object s WHERE s.city = 'rome' AND age <> ''", "bob,46\n"),
        ("SELECT count(*), count(age), min(name), max(name) FROM S3Object", "4,4,alice,dave\n"),
        ("SELECT sum(CAST(age AS INT)), avg(CAST(age AS FLOAT)) FROM S3Object WHERE age <> ''", "675,225.0\n"),
        ("SELECT name FROM S3Object WHERE city IN ('rome', 'oslo')", "bob\ndave\n"),
        ("SELECT name FROM S3Object WHERE name LIKE '_a%'", "carol\ndave\n"),
        ("SELECT name FROM S3Object WHERE name NOT LIKE '%a%'", "bob\n"),
        ("SELECT name FROM S3Object WHERE CAST(age AS INT) BETWEEN 30 AND 45", "alice\nbob\n"),
        ("SELECT upper(name), lower(city), char_length(city) FROM S3Object LIMIT 1", "ALICE,paris,5\n"),
        ("SELECT substring(name, 2, 3), substring(name FROM 3) FROM S3Object LIMIT 1", "lic,ice\n"),
        ("SELECT trim(LEADING 'a' FROM name), trim('  x  ') FROM S3Object LIMIT 1", "lice,x\n"),
        (
            "SELECT CASE WHEN CAST(age AS INT) > 40 THEN 'old' ELSE 'young' END FROM S3Object WHERE age <> ''",
            "young\nold\nold\n",
        ),
        ("SELECT CASE city WHEN 'rome' THEN 1 ELSE 0 END FROM S3Object", "0\n1\n0\n1\n"),
        ("SELECT coalesce(nullif(age, ''), 'none') FROM S3Object", "30\n45\n600\nnone\n"),
        ("SELECT extract(year FROM to_timestamp(joined)) FROM S3Object LIMIT 2", "2020\n2019\n"),
        ("SELECT date_diff(day, to_timestamp('2020-01-01T'), to_timestamp(joined)) FROM S3Object LIMIT 1", "14\n"),
        (
            "SELECT to_string(date_add(month, 1, to_timestamp(joined)), 'yyyy-MM-dd') FROM S3Object LIMIT 1",
            "2020-02-15\n",
        ),
        ("SELECT _1 FROM S3Object WHERE _1 = 'bob' OR _2 = '600'", "bob\ncarol\n"),
        ("SELECT name || '-' || city FROM S3Object LIMIT 1", "alice-paris\n"),
        ("SELECT 7 / 2, 7.0 / 2, -3 * 2 FROM S3Object LIMIT 1", "3,3.5,-6\n"),
        ("SELECT name FROM S3Object WHERE age IS NULL OR age = ''", "dave\n"),
        ("SELECT name FROM S3Object LIMIT 0", ""),
        ("SELECT _5 FROM S3Object LIMIT 1", "\n"),
    ],
)
def test_queries(expression: str, expected: str) -> None:
    assert run_query(expression) == expected


def test_like_escape() -> None:
    data = b"a\n50%\n5_0\n500\n"
    spec = CsvInput(header="USE")
    assert run_query("SELECT a FROM S3Object WHERE a LIKE '5!%%' ESCAPE '!'", data, spec) == ""
    assert run_query("SELECT a FROM S3Object WHERE a LIKE '50!%' ESCAPE '!'", data, spec) == "50%\n"
    assert run_query("SELECT a FROM S3Object WHERE a LIKE '5!_0' ESCAPE '!'", data, spec) == "5_0\n"


def test_cast_failure_and_bad_column_index() -> None:
    with pytest.raises(SelectError) as caught:
        run_query("SELECT CAST(city AS INT) FROM S3Object")
    assert caught.value.code == "CastFailed"
    with pytest.raises(SelectError) as caught:
        run_query("SELECT _0 FROM S3Object")
    assert caught.value.code == "InvalidColumnIndex"


_SAME_QUERIES = [
    "SELECT count(*) FROM S3Object WHERE CAST(_2 AS INT) > 40",
    "SELECT _1, CAST(_2 AS FLOAT) * 2 FROM S3Object WHERE _2 <> '' AND _3 LIKE 'r%'",
    "SELECT upper(_1), substring(_3, 2, 2), trim(BOTH 'r' FROM _3) FROM S3Object",
    "SELECT min(CAST(_2 AS INT)), max(_1), sum(CAST(_2 AS INT)), avg(CAST(_2 AS INT)) FROM S3Object WHERE _2 <> ''",
    "SELECT _1 FROM S3Object WHERE _3 IN ('rome', 'paris') LIMIT 2",
    "SELECT * FROM S3Object WHERE _1 BETWEEN 'b' AND 'd'",
    "SELECT CASE WHEN _2 = '' THEN 'none' WHEN CAST(_2 AS INT) > 40 THEN 'old' ELSE 'young' END FROM S3Object",
    "SELECT CASE _3 WHEN 'rome' THEN 1 WHEN 'paris' THEN 2 END, _1 FROM S3Object",
]


@pytest.mark.parametrize("expression", _SAME_QUERIES)
def test_vectorized_engine_matches_row_evaluator(expression: str) -> None:
    query = parse(expression)
    spec = CsvInput(header="IGNORE")
    source = vector.CsvSource(iter([CSV]), spec)
    schema = Schema(csv=True, header=None)
    vectorized = list(vector.VectorPlan(query, schema).run(source.batches()))
    rows = list(Plan(query, schema).run(inputs.CsvRecords(iter([CSV]), spec)))
    assert [r.values for r in vectorized] == [r.values for r in rows]


def test_json_lines_and_document_with_nested_paths() -> None:
    lines = b'{"a": {"b": [1, 2]}, "n": "x"}\n{"a": {"b": [3]}, "n": "y"}\n{"n": "z"}\n'
    assert (
        run_query(
            "SELECT s.a.b[0] AS v, s.n FROM S3Object s WHERE s.a.b[0] > 1", lines, JsonInput("LINES"), JsonOutput()
        )
        == '{"v":3,"n":"y"}\n'
    )
    assert (
        run_query("SELECT s.n FROM S3Object s WHERE s.a IS MISSING", lines, JsonInput("LINES"), JsonOutput())
        == '{"n":"z"}\n'
    )
    document = b'{"root": [{"c1": 5, "c2": "p"}, {"c1": 7, "c2": "q"}]}'
    assert run_query("SELECT count(*), sum(_1.c1) FROM S3Object[*].root", document, JsonInput("DOCUMENT")) == "2,12\n"
    assert (
        run_query(
            "SELECT * FROM S3Object[*].root[*] r WHERE r.c2 = 'q'",
            document,
            JsonInput("DOCUMENT"),
            JsonOutput(record_delimiter=","),
        )
        == '{"c1":7,"c2":"q"},'
    )


def test_compressed_input() -> None:
    expected = run_query("SELECT name FROM S3Object")
    assert run_query("SELECT name FROM S3Object", gzip.compress(CSV), compression="GZIP") == expected
    assert run_query("SELECT name FROM S3Object", bz2.compress(CSV), compression="BZIP2") == expected
    assert (
        run_query("SELECT name FROM S3Object", gzip.compress(CSV[:40]) + gzip.compress(CSV[40:]), compression="GZIP")
        == expected
    )
    with pytest.raises(SelectError) as caught:
        run_query("SELECT name FROM S3Object", CSV, compression="GZIP")
    assert caught.value.code == "InvalidCompressionFormat"


def test_scan_range_takes_the_records_that_start_inside_it() -> None:
    data = b"r1,a\nr2,b\nr3,c\nr4,d\n"  # records start at 0, 5, 10, 15
    spec = CsvInput()
    assert run_query("SELECT _1 FROM S3Object", data, spec, scan_range=(0, 4)) == "r1\n"
    assert run_query("SELECT _1 FROM S3Object", data, spec, scan_range=(1, 10)) == "r2\nr3\n"
    assert run_query("SELECT _1 FROM S3Object", data, spec, scan_range=(5, None)) == "r2\nr3\nr4\n"
    assert run_query("SELECT _1 FROM S3Object", data, spec, scan_range=(None, 6)) == "r4\n"  # the last 6 bytes
    assert run_query("SELECT _1 FROM S3Object", data, spec, scan_range=(0, 5)) == "r1\nr2\n"


def test_csv_options() -> None:
    data = b"# note\nx;'a;b';3|y;'it''s';4|"
    spec = CsvInput(field_delimiter=";", record_delimiter="|", quote="'", comments="#")
    assert run_query("SELECT _2 FROM S3Object", b"x;'a;b';3|y;'it''s';4|", spec) == "a;b\nit's\n"
    assert (
        run_query(
            "SELECT _1 FROM S3Object", data.replace(b"|", b"\n"), CsvInput(field_delimiter=";", quote="'", comments="#")
        )
        == "x\ny\n"
    )
    out = CsvOutput(quote_fields="ALWAYS", field_delimiter="\t", record_delimiter="\r\n")
    assert run_query("SELECT name, age FROM S3Object LIMIT 1", CSV, None, out) == '"alice"\t"30"\r\n'


def test_over_max_record_size() -> None:
    with pytest.raises(SelectError) as caught:
        run_query("SELECT _1 FROM S3Object", b"x" * (2 * 1024 * 1024), CsvInput(record_delimiter="|"))
    assert caught.value.code == "OverMaxRecordSize"


def test_utcnow_is_a_timestamp() -> None:
    text = run_query("SELECT to_string(utcnow(), 'yyyy') FROM S3Object LIMIT 1")
    assert text.strip() == str(datetime.now(UTC).year)


def test_parquet_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"name": ["alice", "bob", "carol"], "age": [30, 45, 600], "score": [1.5, None, 3.0]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()

    def parquet(expression: str) -> str:
        prepared = prepare(SelectRequest(expression, ParquetInput(), CsvOutput()), str(tmp_path))
        messages: list[bytes] = []
        prepared.work(iter([data]), messages.append, Stats())
        out = b""
        for message in messages:
            buffer = EventStreamBuffer()
            buffer.add_data(message)
            out += b"".join(event.payload for event in buffer)
        return out.decode()

    assert parquet("SELECT name FROM S3Object WHERE age > 40") == "bob\ncarol\n"
    assert parquet("SELECT count(*), sum(age), max(score) FROM S3Object") == "3,675,3.0\n"
    assert parquet("SELECT _1, CASE WHEN score IS NULL THEN 'none' ELSE 'some' END FROM S3Object") == (
        "alice,some\nbob,none\ncarol,some\n"
    )
    assert list(tmp_path.iterdir()) == []  # the spooled copy is gone
    with pytest.raises(SelectError) as caught:
        prepare(SelectRequest("SELECT * FROM S3Object", ParquetInput(), CsvOutput())).work(
            iter([b"not parquet"]), [].append, Stats()
        )
    assert caught.value.code == "ParquetParsingError"


# -- the worker thread bridge ----------------------------------------------------------------


def _event_types(messages: list[bytes]) -> list[str]:
    buffer = EventStreamBuffer()
    for message in messages:
        buffer.add_data(message)
    return [event.headers.get(":event-type", "error") for event in buffer]


def test_bridge_sends_keep_alives_while_the_worker_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import threading

    from coffer.select import stream

    monkeypatch.setattr(stream, "TICK", 0.01)
    release = threading.Event()

    async def body():  # type: ignore[no-untyped-def]
        yield b"x"

    def work(chunks, emit, stats) -> None:  # type: ignore[no-untyped-def]
        list(chunks)
        emit(eventstream.records(b"first\n"))
        release.wait(5)  # a long scan with nothing to send

    async def collect() -> list[bytes]:
        messages = []
        async for message in stream.select_events(body(), work, progress=False):
            messages.append(message)
            if _event_types(messages).count("Cont") >= 2:
                release.set()
        return messages

    types = _event_types(asyncio.run(collect()))
    assert types[0] == "Records" and "Cont" in types and types[-2:] == ["Stats", "End"]


def test_bridge_stops_the_worker_when_the_client_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from coffer.select import stream

    read = []

    async def body():  # type: ignore[no-untyped-def]
        for i in range(10_000):
            read.append(i)
            yield b"x"

    def work(chunks, emit, stats) -> None:  # type: ignore[no-untyped-def]
        for chunk in chunks:
            emit(eventstream.records(chunk))

    async def first_then_leave() -> None:
        events = stream.select_events(body(), work, progress=False)
        await events.__anext__()
        await events.aclose()  # what the server does when the client disconnects

    asyncio.run(first_then_leave())
    assert len(read) < 100


def test_select_aliases_can_be_used_by_other_items_and_where() -> None:
    assert run_query("SELECT CAST(age AS INT) AS a, a * 2 AS b FROM S3Object WHERE b > 80 AND age <> ''") == (
        "45,90\n600,1200\n"
    )
    assert run_query("SELECT name AS city, city FROM S3Object LIMIT 1") == "alice,paris\n"  # the column wins
    for cyclic in (
        "SELECT _1 AS a, b AS c, c AS b FROM S3Object",
        "SELECT " + ", ".join(["_2 AS a0"] + [f"a{i} + a{i} AS a{i + 1}" for i in range(30)]) + " FROM S3Object",
    ):
        with pytest.raises(SelectError) as caught:
            run_query(cyclic)
        assert caught.value.code == "InvalidQuery"


def test_decompression_is_bounded_and_handles_many_members() -> None:
    bomb = gzip.compress(b"\n" * (64 * 1024 * 1024))  # 64 MiB of newlines in about 64 KiB
    pieces = inputs.decompressed(iter([bomb]), "GZIP")
    assert max(len(p) for p in pieces) <= inputs.DECODE_PIECE
    members = b"".join(gzip.compress(b"%d\n" % i) for i in range(3000))
    assert b"".join(inputs.decompressed(iter([members]), "GZIP")) == b"".join(b"%d\n" % i for i in range(3000))
    big = bz2.compress(b"x" * (8 * 1024 * 1024))
    assert max(len(p) for p in inputs.decompressed(iter([big[:100], big[100:]]), "BZIP2")) <= inputs.DECODE_PIECE
    assert sum(len(p) for p in inputs.decompressed(iter([big, big]), "BZIP2")) == 16 * 1024 * 1024


def test_ragged_csv_records_read_missing_fields_as_null() -> None:
    data = b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n"
    assert run_query("SELECT count(*), count(c), sum(CAST(a AS INT)) FROM S3Object", data) == "4,3,21\n"
    assert sorted(run_query("SELECT a, c FROM S3Object", data).splitlines()) == ["1,3", "10,12", "4,", "6,8"]
    with pytest.raises(SelectError) as caught:
        run_query("SELECT _1 FROM S3Object", b"x" * (2 * 1024 * 1024) + b"\n", CsvInput())
    assert caught.value.code == "OverMaxRecordSize"


def test_json_documents_split_anywhere() -> None:
    text = b'{"a": 1} {"a": [2, 3]}\n\n12 "s" {"a": {"b": "x y"}} 345'
    for size in (1, 2, 3, 7, len(text)):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        got = list(inputs.json_records(iter(pieces), JsonInput("DOCUMENT"), ()))
        assert got == [{"a": 1}, {"a": [2, 3]}, 12, "s", {"a": {"b": "x y"}}, 345], size
    with pytest.raises(SelectError) as caught:
        list(inputs.json_records(iter([b'{"a": 1} {"a": ']), JsonInput("DOCUMENT"), ()))
    assert caught.value.code == "JSONParsingError"


def _document(inner: str) -> str:
    return f"<SelectObjectContentRequest>{inner}</SelectObjectContentRequest>"


_CSV_IO = "<InputSerialization><CSV/></InputSerialization><OutputSerialization><CSV/></OutputSerialization>"


@pytest.mark.parametrize(
    ("inner", "code"),
    [
        ("<ExpressionType>SQL</ExpressionType>" + _CSV_IO, "MissingRequiredParameter"),
        (
            "<Expression>SELECT 1 FROM S3Object</Expression><ExpressionType>XPATH</ExpressionType>" + _CSV_IO,
            "InvalidExpressionType",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType><InputSerialization><CSV>"
            "<FileHeaderInfo>MAYBE</FileHeaderInfo></CSV></InputSerialization>",
            "InvalidFileHeaderInfo",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType><InputSerialization><JSON><Type>XML</Type>"
            "</JSON></InputSerialization>",
            "InvalidJsonType",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType><InputSerialization><CSV/><JSON/>"
            "</InputSerialization>",
            "InvalidDataSource",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType><InputSerialization><CSV/>"
            "</InputSerialization><OutputSerialization><CSV><QuoteFields>SOMETIMES</QuoteFields></CSV>"
            "</OutputSerialization>",
            "InvalidQuoteFields",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType>"
            + _CSV_IO
            + "<ScanRange><Start>9</Start><End>3</End></ScanRange>",
            "InvalidScanRange",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType><InputSerialization><JSON/>"
            "</InputSerialization><OutputSerialization><CSV/></OutputSerialization><ScanRange><Start>1</Start>"
            "</ScanRange>",
            "UnsupportedScanRangeInput",
        ),
        (
            "<Expression>s</Expression><ExpressionType>SQL</ExpressionType>"
            + _CSV_IO
            + "<RequestProgress><Enabled>perhaps</Enabled></RequestProgress>",
            "InvalidRequestParameter",
        ),
    ],
)
def test_request_document_errors(inner: str, code: str) -> None:
    from coffer.select.request import parse_request
    from coffer.server import xml

    with pytest.raises(SelectError) as caught:
        parse_request(xml.parse(_document(inner).encode()))
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a%", "abc", True),
        ("%c", "abc", True),
        ("a%c", "ac", True),
        ("a%b%c", "axxbyyc", True),
        ("a%b%c", "acb", False),
        ("_b_", "abc", True),
        ("_b_", "ab", False),
        ("%%", "", True),
        ("a_%_c", "abc", False),
        ("a_%_c", "abxc", True),
        ("%a%a%", "aa", True),
        ("ab%ab", "ab", False),
        ("x!%y", "x%y", True),
        ("x!%y", "xzy", False),
    ],
)
def test_like_matcher(pattern: str, text: str, expected: bool) -> None:
    import re

    from coffer.select import like

    assert like.matcher(pattern, "!")(text) is expected
    assert (re.fullmatch(like.re2(pattern, "!"), text) is not None) is expected


def test_like_cannot_backtrack_exponentially() -> None:
    from coffer.select import like

    assert like.matcher("%a" * 40 + "%b", None)("a" * 100_000) is False


def test_hostile_json_and_arithmetic_are_s3_errors() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for kind in ("LINES", "DOCUMENT"):
        with pytest.raises(SelectError) as caught:
            run_query("SELECT * FROM S3Object", deep, JsonInput(kind), JsonOutput())
        assert caught.value.code == "JSONParsingError"
    with pytest.raises(SelectError) as caught:
        run_query("SELECT " + " * ".join(["999999999"] * 20) + " FROM S3Object LIMIT 1")
    assert caught.value.code == "EvaluatorInvalidArguments"


def test_bridge_runs_a_bounded_number_of_queries_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import threading

    from coffer.select import stream

    monkeypatch.setattr(stream, "TICK", 0.01)
    monkeypatch.setattr(stream, "_running", threading.BoundedSemaphore(2))
    running, peak, lock = 0, 0, threading.Lock()

    async def body():  # type: ignore[no-untyped-def]
        yield b"x"

    def work(chunks, emit, stats) -> None:  # type: ignore[no-untyped-def]
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        list(chunks)
        threading.Event().wait(0.05)
        with lock:
            running -= 1
        emit(eventstream.records(b"done\n"))

    async def one() -> list[str]:
        return _event_types([m async for m in stream.select_events(body(), work, progress=False)])

    async def many() -> list[list[str]]:
        return await asyncio.gather(*[one() for _ in range(6)])

    results = asyncio.run(many())
    assert peak == 2
    assert all(types[-3:] == ["Records", "Stats", "End"] for types in results)


def test_empty_objects_and_byte_order_mark() -> None:
    assert run_query("SELECT count(*) FROM S3Object", b"") == "0\n"
    assert run_query("SELECT * FROM S3Object", b"") == ""
    assert run_query("SELECT count(*), sum(_1) FROM S3Object", b"", JsonInput("LINES"), JsonOutput()) == (
        '{"_1":0,"_2":null}\n'
    )
    bom = b"\xef\xbb\xbfa,b\nc,d\n"
    assert run_query("SELECT a FROM S3Object", bom) == "c\n"
    assert (
        run_query(
            "SELECT a FROM S3Object", bom.replace(b",", b";"), CsvInput(header="USE", field_delimiter=";", comments="#")
        )
        == "c\n"
    )
