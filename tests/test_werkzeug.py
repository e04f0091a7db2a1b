"""A Werkzeug (Flask) application gets the request bodies it was sent, chunked ones too."""

from __future__ import annotations

import json

from conftest import site_yaml

WERKZEUG = site_yaml({"main": {"app": "werkzeug_app:application", "threads": 2}})


def _post(server, framing: bytes, body: bytes) -> dict:
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + framing + b"\r\n"
    reply = server.raw(head + body, timeout=10)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return json.loads(payload)


def test_a_chunked_body_reaches_a_werkzeug_app(make_server):
    """Werkzeug reads a body without Content-Length only when the server says it ends the stream
    itself (wsgi.input_terminated); without that, a chunked upload arrives empty."""
    server = make_server(WERKZEUG)
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    seen = _post(server, b"Transfer-Encoding: chunked\r\n", chunked)
    assert seen == {"length": 11, "body": "hello world"}


def test_a_content_length_body_reaches_a_werkzeug_app(make_server):
    server = make_server(WERKZEUG)
    seen = _post(server, b"Content-Length: 11\r\n", b"hello world")
    assert seen == {"length": 11, "body": "hello world"}
