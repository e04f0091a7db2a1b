"""Response-head checks against splitting, reason phrases and canned error responses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupserver.http.parser import parse_head
from groupserver.http.response import check_header, check_status, error_response, reason_phrase


@pytest.mark.parametrize(
    "status",
    ["200 OK", "404 Not Found", "599 Custom reason", "204 ", "418 I'm a \tteapot", "200 Caf\xe9"],
)
def test_valid_status_passes(status):
    check_status(status)


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200OK",
        "20 OK",
        "2000 OK",
        "099 Low",
        "600 High",
        " 200 OK",
        "abc OK",
        "200 OK\r\nSet-Cookie: x=1",
        "200 OK\n",
        "200 OK\r",
        "200 O\x00K",
        "200 O\x1bK",
        "200 O\x7fK",
        "200 \u20acuro",
        b"200 OK",
        200,
    ],
)
def test_unsafe_status_is_rejected(status):
    with pytest.raises(ValueError):
        check_status(status)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("X-Empty", ""),
        ("Set-Cookie", 'a="b c"; Path=/'),
        ("X-Tab", "a\tb"),
        ("X-Latin", "caf\xe9"),
        ("x!#$%&'*+.^_`|~", "v"),
    ],
)
def test_valid_header_passes(name, value):
    check_header(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Split", "a\r\nSet-Cookie: evil=1"),
        ("X-Lf", "a\nb"),
        ("X-Cr", "a\rb"),
        ("X-Nul", "a\x00b"),
        ("X-Esc", "a\x1bb"),
        ("X-Del", "a\x7fb"),
        ("X-Wide", "\u20ac"),
        ("X Space", "v"),
        ("X-Colon:", "v"),
        ("", "v"),
        ("X\r\nInjected", "v"),
        ("X-\xe9", "v"),
        (b"X-Bytes", "v"),
        ("X-Bytes", b"v"),
    ],
)
def test_unsafe_header_is_rejected(name, value):
    with pytest.raises(ValueError):
        check_header(name, value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20))
def test_accepted_headers_never_contain_line_breaks(name, value):
    try:
        check_header(name, value)
    except ValueError:
        return
    line = f"{name}: {value}"
    assert not any(c in line for c in "\r\n\x00")
    line.encode("latin-1")


def test_reason_phrase():
    assert reason_phrase(400) == "Bad Request"
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(503) == "Service Unavailable"
    assert reason_phrase(599) == "Unknown"


def test_error_response_400_exact_bytes():
    assert error_response(400) == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 12\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"Bad Request\n"
    )


def test_error_response_keep_alive_has_no_connection_header():
    raw = error_response(404, close=False)
    assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"Connection" not in raw
    assert raw.endswith(b"\r\n\r\nNot Found\n")


@pytest.mark.parametrize("status", [400, 408, 413, 414, 417, 431, 500, 501, 503, 505, 599])
def test_error_response_content_length_matches_body(status):
    raw = error_response(status)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: %d\r\n" % len(body) in head + b"\r\n"
    assert body == reason_phrase(status).encode() + b"\n"


def test_error_response_extra_headers():
    raw = error_response(503, extra_headers=[("Retry-After", "5")])
    assert b"\r\nRetry-After: 5\r\n\r\n" in raw
    assert error_response(503) == error_response(503, extra_headers=())


@pytest.mark.parametrize(
    "extra",
    [
        [("X-Evil", "a\r\nSet-Cookie: x")],
        [("Bad Name", "v")],
        [("Content-Length", "0")],
        [("connection", "keep-alive")],
        [("Transfer-Encoding", "chunked")],
    ],
)
def test_error_response_rejects_unsafe_extra_headers(extra):
    with pytest.raises(ValueError):
        error_response(400, extra_headers=extra)


@pytest.mark.parametrize("status", [99, 100, 101, 199, 204, 304, 600])
def test_error_response_rejects_statuses_without_a_body(status):
    with pytest.raises(ValueError):
        error_response(status)


def test_error_response_is_a_parseable_http_message():
    raw = error_response(431)
    # Reuse the request parser's line rules on the header block (status line swapped for a
    # request line) to check the framing is well-formed.
    head = raw.partition(b"\r\n")[2]
    parsed = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n" + head)
    assert parsed is not None
    request, consumed = parsed
    assert request.content_length == len(b"Request Header Fields Too Large\n")
    assert request.keep_alive is False
