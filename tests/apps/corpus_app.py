"""Test application for the HTTP hardening suites: shows the environ a request produced.

The default endpoint reads the whole body first (so framing errors surface before the response
starts) and answers JSON with the request fields and every HTTP_* key. The other endpoints are
chosen by the last segment of the path (so "/big" and "/single/big" are the same endpoint) and
make the server face a misbehaving application or a large response:

    /big?mb=N        N MiB (default 50) of b"x" with a Content-Length, in 1 MiB pieces
    /raise-before    raises before start_response
    /raise-after     sends the head and part of a chunked body, then raises
    /bad-header      a header value holding CRLF (response splitting)
    /bad-status      a status line holding CRLF (response splitting)
    /bad-name        a header name holding a space
    /sleep?s=N       waits N seconds, then answers like the default endpoint
    /ignore-body     answers without reading the body (the server must discard it)
    /str-body        returns [str] instead of [bytes]
    /str-chunk       a generator whose first chunk is a str
    /exit            raises SystemExit(3)
    /interrupt       raises KeyboardInterrupt
"""

import json
import time
from urllib.parse import parse_qs

_MIB = b"x" * (1 << 20)


def _query(environ, name, default):
    return parse_qs(environ["QUERY_STRING"]).get(name, [default])[0]


def _read_body(environ):
    try:
        return environ["wsgi.input"].read()
    except Exception as exc:
        # Lets a test see that the app was told the body is incomplete, not given a short one.
        print(
            f"corpus_app: body read failed for {environ['PATH_INFO']}: {type(exc).__name__}: {exc}",
            file=environ["wsgi.errors"],
            flush=True,
        )
        raise


def _describe(environ, body):
    return {
        "method": environ["REQUEST_METHOD"],
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "protocol": environ["SERVER_PROTOCOL"],
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "body": body.decode("latin-1"),
        "body_length": len(body),
        "group": environ.get("groupserver.group"),
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }


def _big(environ, start_response):
    mib = int(_query(environ, "mb", "50"))
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(mib << 20))]
    )
    return (_MIB for _ in range(mib))


def _raise_after(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial body;"
    raise RuntimeError("corpus app: failure after the head was sent")


def application(environ, start_response):
    endpoint = environ["PATH_INFO"].rsplit("/", 1)[-1]
    if endpoint == "big":
        return _big(environ, start_response)
    if endpoint == "raise-before":
        raise RuntimeError("corpus app: failure before the response")
    if endpoint == "raise-after":
        return _raise_after(start_response)
    if endpoint == "bad-header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: injected=1")])
        return [b"should never be sent"]
    if endpoint == "bad-status":
        start_response("200 OK\r\nSet-Cookie: injected=1", [])
        return [b"should never be sent"]
    if endpoint == "bad-name":
        start_response("200 OK", [("X Bad", "v")])
        return [b"should never be sent"]
    if endpoint == "ignore-body":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    if endpoint == "str-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]
    if endpoint == "str-chunk":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (piece for piece in ["not bytes", b"bytes"])
    if endpoint == "no-content":  # a body (and a length) where HTTP allows none
        start_response("204 No Content", [("Content-Length", "5")])
        return [b"hello"]
    if endpoint == "not-modified":
        start_response("304 Not Modified", [("Content-Length", "5"), ("ETag", '"v1"')])
        return (piece for piece in [b"he", b"llo"])
    if endpoint == "two-lengths":
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "5")])
        return [b"hello"]
    if endpoint == "same-length":
        start_response("200 OK", [("Content-Length", "5"), ("content-length", "5")])
        return [b"hello"]
    if endpoint == "own-date":
        start_response("200 OK", [("Date", "Mon, 01 Jan 2024 00:00:00 GMT")])
        return [b"dated"]
    if endpoint == "interim":
        start_response("100 Continue", [])
        return [b""]
    if endpoint == "exit":
        raise SystemExit(3)
    if endpoint == "interrupt":
        raise KeyboardInterrupt
    if endpoint == "sleep":
        time.sleep(float(_query(environ, "s", "1")))
    body = _read_body(environ)
    data = json.dumps(_describe(environ, body), sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
