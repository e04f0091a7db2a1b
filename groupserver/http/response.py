"""Sans-I/O response-head helpers: checks against response splitting and canned error responses.

Public API:
    check_status(status)        ValueError unless status is "NNN reason" (WSGI status string)
    check_header(name, value)   ValueError unless name is a token and value has no CR, LF, NUL
                                or other control character (HTAB allowed)
    reason_phrase(code)         standard reason phrase ("Not Found"), "Unknown" if unregistered
    error_response(status, *, close=True, extra_headers=())
                                a complete small text/plain HTTP/1.1 response with a generic body
    error_body_size(status)     the body bytes of error_response(status)

Used by the front (for requests it refuses) and by workers (for what WSGI apps return). Bodies are
always the reason phrase: request bytes are never echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus

__all__ = ["check_header", "check_status", "error_body_size", "error_response", "reason_phrase"]

# WSGI strings are latin-1 "native strings": code points above 0xff cannot go on the wire.
_STATUS = re.compile(r"[1-5][0-9]{2} [\t\x20-\x7e\x80-\xff]*")
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# error_response writes these itself; a second copy from the caller would make framing ambiguous.
_RESERVED = frozenset(("content-length", "content-type", "connection", "transfer-encoding"))
# Statuses whose responses never carry a body (RFC 9110 6.4.1), so they make no error page.
_NO_BODY = frozenset((204, 304))

_cache: dict[tuple[int, bool], bytes] = {}


def check_status(status: str) -> None:
    """Raise ValueError unless status is a safe "NNN reason" status line part."""
    if not isinstance(status, str):
        raise ValueError("status must be a str")
    if _STATUS.fullmatch(status) is None:
        raise ValueError("status must be 'NNN reason' without control characters")


def check_header(name: str, value: str) -> None:
    """Raise ValueError unless (name, value) is a header that cannot split the response."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValueError("header name and value must be str")
    if _TOKEN.fullmatch(name) is None:
        raise ValueError("header name must be an RFC 9110 token")
    if _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError("header value contains a control character")


def reason_phrase(code: int) -> str:
    """Return the standard reason phrase for code, or "Unknown" if it is not registered."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _error_body(status: int) -> bytes:
    return (reason_phrase(status) + "\n").encode("ascii")


def error_body_size(status: int) -> int:
    """The body bytes of error_response(status), for the access log."""
    return len(_error_body(status))


def error_response(
    status: int, *, close: bool = True, extra_headers: Iterable[tuple[str, str]] = ()
) -> bytes:
    """Build a complete plain-text HTTP/1.1 response whose body is the reason phrase."""
    if not 200 <= status <= 599 or status in _NO_BODY:
        raise ValueError("status must be 200-599 and allow a body")
    extra = list(extra_headers)
    if not extra:
        cached = _cache.get((status, close))
        if cached is not None:
            return cached
    body = _error_body(status)
    lines = [
        f"HTTP/1.1 {status} {reason_phrase(status)}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
    ]
    if close:
        lines.append("Connection: close")
    for name, value in extra:
        check_header(name, value)
        if name.lower() in _RESERVED:
            raise ValueError("extra_headers may not set framing headers")
        lines.append(f"{name}: {value}")
    response = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    if not extra:
        _cache[(status, close)] = response
    return response
