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
    /no-content, /not-modified, /two-lengths, /same-length, /own-date, /interim
                     a 204 or 304 with a body, conflicting or repeated Content-Length, the
                     app's own Date, a 1xx status (see _FIXED)
    /short-body, /long-body
                     a body shorter or (over three chunks) longer than its Content-Length
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


_NEVER_SENT = [b"should never be sent"]
# Endpoints that give one fixed response: (status, headers, body chunks).
_FIXED = {
    "bad-header": ("200 OK", [("X-Injected", "a\r\nSet-Cookie: injected=1")], _NEVER_SENT),
    "bad-status": ("200 OK\r\nSet-Cookie: injected=1", [], _NEVER_SENT),
    "bad-name": ("200 OK", [("X Bad", "v")], _NEVER_SENT),
    "ignore-body": (
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", "3")],
        [b"ok\n"],
    ),
    "str-body": ("200 OK", [("Content-Type", "text/plain")], ["not bytes"]),
    "str-chunk": ("200 OK", [("Content-Type", "text/plain")], ["not bytes", b"bytes"]),
    # a body (and a length) where HTTP allows none
    "no-content": ("204 No Content", [("Content-Length", "5")], [b"hello"]),
    "not-modified": (
        "304 Not Modified",
        [("Content-Length", "5"), ("ETag", '"v1"')],
        [b"he", b"llo"],
    ),
    "two-lengths": ("200 OK", [("Content-Length", "2"), ("Content-Length", "5")], [b"hello"]),
    "same-length": ("200 OK", [("Content-Length", "5"), ("content-length", "5")], [b"hello"]),
    "own-date": ("200 OK", [("Date", "Mon, 01 Jan 2024 00:00:00 GMT")], [b"dated"]),
    "interim": ("100 Continue", [], [b""]),
    # the body the Content-Length promised is not the body the app gave (len() of a str, say)
    "short-body": ("200 OK", [("Content-Length", "100")], [b"only 10 b."]),
    "long-body": ("200 OK", [("Content-Length", "5")], [b"hello", b" and", b" more"]),
}
_STREAMED = {"str-chunk", "not-modified", "long-body"}  # returned as an iterator, not a list


def application(environ, start_response):
    endpoint = environ["PATH_INFO"].rsplit("/", 1)[-1]
    if endpoint == "big":
        return _big(environ, start_response)
    if endpoint == "raise-before":
        raise RuntimeError("corpus app: failure before the response")
    if endpoint == "raise-after":
        return _raise_after(start_response)
    fixed = _FIXED.get(endpoint)
    if fixed is not None:
        status, headers, body = fixed
        start_response(status, list(headers))
        return iter(body) if endpoint in _STREAMED else list(body)
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
