"""The SelectObjectContentRequest document, parsed and checked into a ``SelectRequest``."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from coffer.select.errors import SelectError
from coffer.server.xml import child_text  # the one reader of request XML fields (no HTTP in it)

MAX_EXPRESSION = 256 * 1024  # AWS: "The maximum length of a SQL expression is 256 KB."


@dataclass(frozen=True)
class CsvInput:
    header: str = "NONE"  # USE / IGNORE / NONE
    field_delimiter: str = ","
    record_delimiter: str = "\n"
    quote: str = '"'
    escape: str | None = None
    comments: str | None = None
    quoted_record_delimiter: bool = False


@dataclass(frozen=True)
class JsonInput:
    type: str = "DOCUMENT"  # DOCUMENT / LINES


@dataclass(frozen=True)
class ParquetInput:
    pass


@dataclass(frozen=True)
class CsvOutput:
    quote_fields: str = "ASNEEDED"  # ALWAYS / ASNEEDED
    field_delimiter: str = ","
    record_delimiter: str = "\n"
    quote: str = '"'
    escape: str = '"'


@dataclass(frozen=True)
class JsonOutput:
    record_delimiter: str = "\n"


@dataclass(frozen=True)
class SelectRequest:
    expression: str
    input: CsvInput | JsonInput | ParquetInput
    output: CsvOutput | JsonOutput
    compression: str = "NONE"
    progress: bool = False
    scan_range: tuple[int | None, int | None] | None = None


def _text(node: Element | None, name: str) -> str | None:
    """A child element's text ("" when empty), None when the element or the child is absent."""
    return None if node is None else child_text(node, name)


def _char(node: Element | None, name: str, default: str, *, allow_empty: bool = False) -> str:
    value = _text(node, name)
    if value is None or (value == "" and not allow_empty):
        return default
    if len(value) > 1 and name != "RecordDelimiter":
        raise SelectError("InvalidRequestParameter", f"The {name} is invalid: only one character is allowed.")
    if len(value) > 2:
        raise SelectError("InvalidRequestParameter", f"The {name} is invalid: at most two characters are allowed.")
    return value


def _bool(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    lowered = raw.strip().lower()
    if lowered not in ("true", "false"):
        raise SelectError("InvalidRequestParameter", f"The value of {name} is not a boolean.")
    return lowered == "true"


def _csv_input(node: Element) -> CsvInput:
    header = (_text(node, "FileHeaderInfo") or "NONE").upper()
    if header not in ("USE", "IGNORE", "NONE"):
        raise SelectError(
            "InvalidFileHeaderInfo", "The FileHeaderInfo is invalid. Only NONE, USE, and IGNORE are supported."
        )
    comments = _text(node, "Comments")
    escape = _text(node, "QuoteEscapeCharacter")
    return CsvInput(
        header=header,
        field_delimiter=_char(node, "FieldDelimiter", ","),
        record_delimiter=_char(node, "RecordDelimiter", "\n"),
        quote=_char(node, "QuoteCharacter", '"', allow_empty=True),
        escape=_char(node, "QuoteEscapeCharacter", '"') if escape else None,
        comments=_char(node, "Comments", "#") if comments else None,
        quoted_record_delimiter=_bool(_text(node, "AllowQuotedRecordDelimiter"), "AllowQuotedRecordDelimiter"),
    )


def _input(node: Element | None) -> tuple[CsvInput | JsonInput | ParquetInput, str]:
    if node is None:
        raise SelectError("MissingRequiredParameter", "InputSerialization is required.")
    compression = (_text(node, "CompressionType") or "NONE").upper()
    if compression not in ("NONE", "GZIP", "BZIP2"):
        raise SelectError("InvalidCompressionFormat", "The file is not in a supported compression format.")
    kinds = [child for child in node if child.tag in ("CSV", "JSON", "Parquet")]
    if len(kinds) != 1:
        raise SelectError("InvalidDataSource", "Exactly one of CSV, JSON or Parquet input must be given.")
    kind = kinds[0]
    if kind.tag == "CSV":
        return _csv_input(kind), compression
    if kind.tag == "JSON":
        json_type = (_text(kind, "Type") or "DOCUMENT").upper()
        if json_type not in ("DOCUMENT", "LINES"):
            raise SelectError("InvalidJsonType", "The JsonType is invalid. Only DOCUMENT and LINES are supported.")
        return JsonInput(json_type), compression
    if compression != "NONE":
        raise SelectError(
            "InvalidRequestParameter", "Compression of Parquet input is given by the file, not the request."
        )
    return ParquetInput(), compression


def _output(node: Element | None) -> CsvOutput | JsonOutput:
    if node is None:
        raise SelectError("MissingRequiredParameter", "OutputSerialization is required.")
    csv, js = node.find("CSV"), node.find("JSON")
    if (csv is None) == (js is None):
        raise SelectError("InvalidRequestParameter", "Exactly one of CSV or JSON output must be given.")
    if js is not None:
        return JsonOutput(_char(js, "RecordDelimiter", "\n"))
    assert csv is not None
    quote_fields = (_text(csv, "QuoteFields") or "ASNEEDED").upper()
    if quote_fields not in ("ALWAYS", "ASNEEDED"):
        raise SelectError("InvalidQuoteFields", "The QuoteFields is invalid. Only ALWAYS and ASNEEDED are supported.")
    return CsvOutput(
        quote_fields=quote_fields,
        field_delimiter=_char(csv, "FieldDelimiter", ","),
        record_delimiter=_char(csv, "RecordDelimiter", "\n"),
        quote=_char(csv, "QuoteCharacter", '"'),
        escape=_char(csv, "QuoteEscapeCharacter", '"'),
    )


def _offset(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise SelectError("InvalidScanRange", f"The {name} of the scan range is not a number.") from None
    if value < 0:
        raise SelectError("InvalidScanRange", f"The {name} of the scan range is negative.")
    return value


def _scan_range(node: Element | None) -> tuple[int | None, int | None] | None:
    if node is None:
        return None
    start, end = _offset(_text(node, "Start"), "Start"), _offset(_text(node, "End"), "End")
    if start is None and end is None:
        raise SelectError("InvalidScanRange", "The scan range needs a Start or an End.")
    if start is not None and end is not None and start > end:
        raise SelectError("InvalidScanRange", "The Start of the scan range is after its End.")
    return start, end


def parse_request(root: Element) -> SelectRequest:
    """The parsed request document (its root element, namespaces stripped)."""
    if root.tag != "SelectObjectContentRequest":
        raise SelectError("MalformedXML", "The root element must be SelectObjectContentRequest.")
    expression = _text(root, "Expression")
    if not expression or not expression.strip():
        raise SelectError("MissingRequiredParameter", "The request is missing the Expression.")
    if len(expression.encode()) > MAX_EXPRESSION:
        raise SelectError("ExpressionTooLong", "The SQL expression is too long: the maximum is 256 KB.")
    expression_type = (_text(root, "ExpressionType") or "").upper()
    if expression_type != "SQL":
        raise SelectError("InvalidExpressionType", "The ExpressionType is invalid. Only SQL expressions are supported.")
    source, compression = _input(root.find("InputSerialization"))
    scan_range = _scan_range(root.find("ScanRange"))
    if scan_range is not None and (
        isinstance(source, ParquetInput)
        or (isinstance(source, JsonInput) and source.type == "DOCUMENT")
        or compression != "NONE"
    ):
        raise SelectError(
            "UnsupportedScanRangeInput",
            "Scan range queries are supported only on uncompressed CSV and JSON LINES objects.",
        )
    return SelectRequest(
        expression=expression,
        input=source,
        output=_output(root.find("OutputSerialization")),
        compression=compression,
        progress=_bool(_text(root.find("RequestProgress"), "Enabled"), "RequestProgress.Enabled"),
        scan_range=scan_range,
    )
