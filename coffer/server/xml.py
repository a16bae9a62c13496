"""XML in and out. Responses are built from templates (faster than a DOM);
request bodies are parsed with defusedxml, which refuses DTDs and entity
expansion (billion laughs, external entities)."""

from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from coffer.server.errors import S3Error

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 2 * 1024 * 1024

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;"})


def esc(value: Any) -> str:
    return str(value).translate(_ESCAPES)


def iso8601(epoch: float) -> str:
    """2024-01-02T03:04:05.678Z, the timestamp format of S3 XML bodies."""
    seconds = int(epoch)
    millis = int((epoch - seconds) * 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)  # a listing page formats 1000 of these, mostly from the same few seconds
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def elem(name: str, value: Any) -> str:
    return f"<{name}>{esc(value)}</{name}>"


def document(root: str, inner: str, namespace: bool = True) -> bytes:
    attrs = f' xmlns="{NS}"' if namespace else ""
    return f"{HEADER}<{root}{attrs}>{inner}</{root}>".encode()


# The encoding an XML declaration may name: S3 documents are UTF-8 (ASCII is a subset). Any other
# name is refused before the parser sees it (expat raises LookupError for names it cannot load).
_ENCODING = re.compile(rb"\s*(?:\xef\xbb\xbf)?<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']")
_ACCEPTED_ENCODINGS = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})


def parse(body: bytes) -> Element:
    """Parse a request document; anything malformed or hostile is MalformedXML."""
    if not body.strip():
        raise S3Error("MalformedXML")
    declared = _ENCODING.match(body)
    if declared is not None and declared.group(1).lower() not in _ACCEPTED_ENCODINGS:
        raise S3Error("MalformedXML", "The XML you provided declares an encoding other than UTF-8.")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError, LookupError, UnicodeError):
        raise S3Error("MalformedXML") from None
    _strip_namespaces(root)
    return root


def _strip_namespaces(node: Element) -> None:
    for el in node.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]


def child_text(node: Element, name: str, default: str | None = None) -> str | None:
    found = node.find(name)
    if found is None:
        return default
    return found.text or ""
