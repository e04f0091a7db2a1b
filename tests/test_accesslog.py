"""The access log's rendering of a refused request line (the lines themselves are checked
against a real server in test_cli_and_signals.py)."""

from __future__ import annotations

from groupserver.accesslog import refused_request_line


def test_a_refused_request_line_is_shown_as_far_as_it_came():
    assert refused_request_line(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n") == "GET /x HTTP/1.1"
    assert refused_request_line(b"GET /still-arriv") == "GET /still-arriv"  # a 408
    assert refused_request_line(b"") == "-"
    assert refused_request_line(b"\r\n") == "-"


def test_a_refused_request_line_cannot_forge_or_break_a_log_line():
    # quotes, backslashes, controls and non-ASCII bytes are escaped as Apache escapes them
    assert refused_request_line(b'GET /"a\\b\x1b[2J\xff HTTP/1.1\r\n') == (
        "GET /\\x22a\\x5cb\\x1b[2J\\xff HTTP/1.1"
    )
    assert refused_request_line(b"GET /a\rforged HTTP/1.1\r\n") == "GET /a\\x0dforged HTTP/1.1"


def test_a_long_refused_request_line_is_cut():
    shown = refused_request_line(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n")
    assert shown == "GET /" + "a" * 995 + "..."
    assert refused_request_line(b"a" * 1000 + b"\r\n") == "a" * 1000
