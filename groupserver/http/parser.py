"""Sans-I/O HTTP/1.1 request-head parser (RFC 9112). Used by the front and by every worker.

Public API:
    HttpError(status, reason)   .status (int) and .reason (short constant string, safe to log;
                                never contains request bytes)
    Limits                      max_request_line=8190, max_header_count=100, max_head_size=65536
    DEFAULT_LIMITS
    RequestHead                 method, target, path, query, version, headers, host,
                                content_length, chunked, keep_alive, expect_continue
    parse_head(data, limits=DEFAULT_LIMITS) -> (RequestHead, consumed) | None
        None while the head is incomplete (but 414/431 as soon as what is there exceeds limits);
        raises HttpError (400, 414, 431, 501, 505) for anything malformed.

Strictness choices (when in doubt the parser rejects):
- Up to two empty lines (CRLF) before the request line are skipped; a third is a 400.
- Content-Length: 1-18 plain digits. Repeated Content-Length headers are accepted only when all
  values are identical; a comma list ("5, 5") is always a 400.
- Transfer-Encoding: only "chunked" is implemented. A final coding other than chunked, a repeated
  chunked, an empty list element or a coding with parameters is a 400; any other coding before
  chunked (gzip, deflate, compress, identity, ...) is a 501.
- Path: percent escapes are decoded to bytes and then latin-1 (WSGI PATH_INFO); an invalid escape
  ("%zz", a trailing "%") is a 400 rather than being kept literally.
- Host: must be present once for HTTP/1.1; its value may only hold URI host/port characters.
- Methods are any RFC 9110 token (case-sensitive, not upper-cased).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import NoReturn
from urllib.parse import unquote_to_bytes

__all__ = ["DEFAULT_LIMITS", "HttpError", "Limits", "RequestHead", "parse_head"]


# The refusals that are a limit (the stats' shed "limits"): timeouts and sizes, not a malformed
# request (400), an unknown route (404) or an unavailable group (503).
LIMIT_STATUSES = frozenset({408, 413, 414, 431})


class HttpError(Exception):
    """A request the server refuses; .status is the response code, .reason a constant phrase."""

    def __init__(self, status: int, reason: str | None = None) -> None:
        if reason is None:
            reason = HTTPStatus(status).phrase
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


@dataclass
class Limits:
    """Size limits applied while reading a request head."""

    max_request_line: int = 8190
    max_header_count: int = 100
    max_head_size: int = 65536


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class RequestHead:
    """A parsed, validated request head."""

    method: str  # "GET"
    target: str  # raw request-target as sent ("/a%20b?x=1", "http://h/p", "*")
    path: str  # percent-decoded path as latin-1 (WSGI PATH_INFO style), no scheme/authority
    query: str  # raw query string without "?" ("" if none)
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: list[tuple[str, str]]  # names as sent, values with OWS stripped, both latin-1
    host: str | None  # Host header value, or the authority of an absolute-form target
    content_length: int | None
    chunked: bool  # Transfer-Encoding ends in chunked
    keep_alive: bool  # from the version and the Connection tokens
    expect_continue: bool  # "Expect: 100-continue" on HTTP/1.1


# RFC 9110 tchar.
_TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
# The head is decoded once as latin-1 (byte n <-> code point n), so these str patterns are byte
# patterns in disguise. Request-target: visible ASCII except "#" (fragments are never sent).
_REQUEST_LINE = re.compile(r"(" + _TOKEN + r") ([\x21\x22\x24-\x7e]+) HTTP/([0-9])\.([0-9])")
# One header line: field-name ":" OWS field-value CRLF, the value being VCHAR / obs-text / SP /
# HTAB (no other controls). Trailing OWS is captured and stripped afterwards: cheaper than making
# the pattern backtrack on every line. "^" + MULTILINE ties every match to a line start.
_HEADER_LINE = re.compile(r"^(" + _TOKEN + r"):[ \t]*([\t\x20-\x7e\x80-\xff]*)\r\n", re.MULTILINE)
# Only for a head still incomplete: fail fast on bytes that make it invalid whatever follows.
_INCOMPLETE_BAD = re.compile(rb"\x00|\r(?!\n|\Z)|(?<!\r)\n")
_ABSOLUTE = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://([^/?@]*)(/[^?]*)?(?:\?(.*))?")
# RFC 3986 host [":" port]: a reg-name or IPv4 address (no ":"), or an IP-literal in brackets
# (IPv6: hex digits and at least one ":", "." for an embedded IPv4, so "[192.0.2.1]" is not
# one; or IPvFuture "v1.x"); no userinfo, path, query or spaces (RFC 9112 3.2: an invalid Host
# is a 400).
_HOST = re.compile(
    r"(?:\[(?:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*|[vV][0-9A-Fa-f]+\.[-0-9A-Za-z._~!$&'()*+,;=:]+)\]"
    r"|[-A-Za-z0-9._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
_DIGITS = re.compile(r"[0-9]{1,18}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HTTP_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")

_MAX_LEADING_EMPTY_LINES = 2
_SPECIAL = frozenset(("host", "content-length", "transfer-encoding", "connection", "expect"))


def _skip_empty_lines(data: bytes | bytearray) -> int:
    start = 0
    while start < 2 * _MAX_LEADING_EMPTY_LINES and data.startswith(b"\r\n", start):
        start += 2
    return start


def _check_incomplete(data: bytes | bytearray, start: int, limits: Limits) -> None:
    """Fail early on a partial head that can already never become valid."""
    if len(data) - start > limits.max_head_size:
        raise HttpError(431, "request head too large")
    if _INCOMPLETE_BAD.search(data, start):
        raise HttpError(400, "invalid line ending or control character")
    lines = data.count(b"\r\n", start)
    if lines == 0:
        line_len = len(data) - start
        if data.endswith(b"\r"):
            line_len -= 1
        if line_len > limits.max_request_line:
            raise HttpError(414, "request line too long")
    elif lines - 1 > limits.max_header_count:
        raise HttpError(431, "too many header fields")


def parse_head(
    data: bytes | bytearray, limits: Limits = DEFAULT_LIMITS
) -> tuple[RequestHead, int] | None:
    """Parse one request head from the start of data; None if incomplete, else (head, consumed)."""
    start = _skip_empty_lines(data) if data[:2] == b"\r\n" else 0
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        _check_incomplete(data, start, limits)
        return None
    consumed = end + 4
    if consumed - start > limits.max_head_size:
        raise HttpError(431, "request head too large")
    # Request line and header lines, each still ending in CRLF.
    text = data[start : end + 2].decode("latin-1")
    line_end = text.find("\r\n")
    if line_end > limits.max_request_line:
        raise HttpError(414, "request line too long")
    m = _REQUEST_LINE.fullmatch(text, 0, line_end)
    if m is None:
        _raise_bad_request_line(text[:line_end])
    method, target, major, minor = m.groups()
    if major != "1" or (minor != "1" and minor != "0"):
        raise HttpError(505, "HTTP version not supported")
    http11 = minor == "1"

    block = text[line_end + 2 :]
    # Every match consumes exactly one LF and starts at a line start, so one match per LF means
    # every line is a valid field line and no bare CR or LF is hiding anywhere.
    n_lines = block.count("\n")
    if n_lines > limits.max_header_count:
        raise HttpError(431, "too many header fields")
    headers: list[tuple[str, str]] = _HEADER_LINE.findall(block)
    if len(headers) != n_lines:
        _raise_bad_header_block(block)
    if " \r\n" in block or "\t\r\n" in block:
        headers = [(name, value.rstrip(" \t")) for name, value in headers]

    host: str | None = None
    content_length: int | None = None
    te_values: list[str] | None = None
    conn_values: list[str] | None = None
    expect_continue = False
    seen_host = False
    special = _SPECIAL
    for name, value in headers:
        lname = name.lower()
        if lname not in special:
            continue
        if lname == "host":
            if seen_host:
                raise HttpError(400, "duplicate Host header")
            seen_host = True
            host = value
        elif lname == "content-length":
            if _DIGITS.fullmatch(value) is None:
                raise HttpError(400, "invalid Content-Length")
            n = int(value)
            if content_length is not None and n != content_length:
                raise HttpError(400, "conflicting Content-Length headers")
            content_length = n
        elif lname == "transfer-encoding":
            if te_values is None:
                te_values = []
            te_values.append(value)
        elif lname == "connection":
            if conn_values is None:
                conn_values = []
            conn_values.append(value)
        elif http11 and value.lower() == "100-continue":
            expect_continue = True

    if host is not None and _HOST.fullmatch(host) is None:
        raise HttpError(400, "invalid Host header")
    if http11 and not seen_host:
        raise HttpError(400, "missing Host header")

    chunked = False
    if te_values is not None:
        if not http11:
            raise HttpError(400, "Transfer-Encoding in HTTP/1.0 request")
        if content_length is not None:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        _check_transfer_encoding(te_values)
        chunked = True

    keep_alive = http11
    if conn_values is not None:
        tokens = {t.strip(" \t") for v in conn_values for t in v.lower().split(",")}
        if "close" in tokens:
            keep_alive = False
        elif "keep-alive" in tokens:
            keep_alive = True

    if target[0] == "/":  # origin-form, the common case
        raw_path, sep, query = target.partition("?")
        path = _decode_path(raw_path) if "%" in raw_path else raw_path
    elif target == "*":
        if method != "OPTIONS":
            raise HttpError(400, "asterisk-form is only allowed with OPTIONS")
        path, query = "*", ""
    else:
        am = _ABSOLUTE.fullmatch(target)
        if am is None:
            raise HttpError(400, "invalid request target")
        authority, raw_path, query = am.groups()
        if not authority or _HOST.fullmatch(authority) is None:
            raise HttpError(400, "invalid request target")
        # RFC 9112 3.2.2: the authority of an absolute-form target replaces the Host header.
        host = authority
        path = _decode_path(raw_path) if raw_path else "/"
        if query is None:
            query = ""

    return (
        RequestHead(
            method,
            target,
            path,
            query,
            "HTTP/1.1" if http11 else "HTTP/1.0",
            headers,
            host,
            content_length,
            chunked,
            keep_alive,
            expect_continue,
        ),
        consumed,
    )


def _decode_path(raw: str) -> str:
    if _BAD_PERCENT.search(raw):
        raise HttpError(400, "invalid percent-encoding in path")
    return unquote_to_bytes(raw).decode("latin-1")


def _raise_bad_request_line(line: str) -> NoReturn:
    parts = line.split(" ")
    if len(parts) == 3 and _HTTP_VERSION.fullmatch(parts[2]):
        # The version is well-formed, so the method or the target is what failed.
        if _TOKEN_RE.fullmatch(parts[0]) is None:
            raise HttpError(400, "invalid method")
        raise HttpError(400, "invalid request target")
    raise HttpError(400, "invalid request line")


def _raise_bad_header_block(block: str) -> NoReturn:
    """Raise the 400 that describes the first bad line of a header block that failed to match."""
    for line in block.split("\r\n")[:-1]:
        if "\r" in line or "\n" in line:
            raise HttpError(400, "bare CR or LF in request head")
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "obsolete line folding")
        name, colon, _value = line.partition(":")
        if not colon:
            raise HttpError(400, "header line without colon")
        if name != name.rstrip(" \t"):
            raise HttpError(400, "whitespace before colon in header")
        if _TOKEN_RE.fullmatch(name) is None:
            raise HttpError(400, "invalid header name")
        if _HEADER_LINE.fullmatch(line + "\r\n") is None:
            raise HttpError(400, "invalid character in header value")
    raise HttpError(400, "bare CR or LF in request head")


def _check_transfer_encoding(values: list[str]) -> None:
    codings = [c.strip(" \t").lower() for v in values for c in v.split(",")]
    for c in codings:
        if _TOKEN_RE.fullmatch(c) is None:
            raise HttpError(400, "invalid Transfer-Encoding")
    if codings.count("chunked") > 1:
        raise HttpError(400, "chunked applied more than once")
    if codings[-1] != "chunked":
        raise HttpError(400, "final transfer coding is not chunked")
    if len(codings) > 1:
        raise HttpError(501, "unsupported transfer coding")
