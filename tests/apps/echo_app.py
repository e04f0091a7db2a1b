"""Test application: reports what the server gave it, plus endpoints that exercise PEP 3333."""

import json
import os
import threading
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

DATA_FILE = os.path.join(os.path.dirname(__file__), "static.txt")


def _json(start_response, payload, status="200 OK"):
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def echo(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/sleep"):
        seconds = float(parse_qs(environ["QUERY_STRING"]).get("s", ["1"])[0])
        time.sleep(seconds)
    if path.endswith("/error"):
        raise RuntimeError("boom from the test app")
    if path.endswith("/file"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"), 8192)
    if path.endswith("/write"):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        return [b"returned"]
    if path.endswith("/stream"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"part%d;" % n for n in range(5))
    if path.endswith("/exit-process"):  # the app ends its process, as a buggy app may
        os._exit(int(parse_qs(environ["QUERY_STRING"]).get("code", ["1"])[0]))
    if path.endswith("/print"):  # to stdout, unflushed, as print() debugging does
        print("printed by the app:", environ["QUERY_STRING"])
    if path.endswith("/threads"):
        return _json(start_response, {"pid": os.getpid(), "threads": threading.active_count()})
    body = environ["wsgi.input"].read()
    return _json(
        start_response,
        {
            "group": environ.get("groupserver.group"),
            "route": environ.get("groupserver.route"),
            "queue_start": environ.get("groupserver.queue_start"),
            "pid": os.getpid(),
            "method": environ["REQUEST_METHOD"],
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "protocol": environ["SERVER_PROTOCOL"],
            "content_length": environ.get("CONTENT_LENGTH"),
            "content_type": environ.get("CONTENT_TYPE"),
            "host": environ.get("HTTP_HOST"),
            "body": body.decode("latin-1"),
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "app_name": environ.get("newrelic.app_name"),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "url_scheme": environ["wsgi.url_scheme"],
            "https": environ.get("HTTPS"),
        },
    )


def application(environ, start_response):
    if environ["PATH_INFO"].startswith("/validate"):
        return validator(_validated)(environ, start_response)
    return echo(environ, start_response)


def _validated(environ, start_response):
    kind = environ["PATH_INFO"][len("/validate") :]
    if kind == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"), 8192)
    stream = environ["wsgi.input"]
    if kind == "/lines":
        body = b"".join(stream.readline() for _ in range(3)) + stream.read(1 << 20)
    elif kind == "/iter":
        body = b"".join(iter(stream))
    elif kind == "/small":
        parts = []
        while True:
            chunk = stream.read(3)
            if not chunk:
                break
            parts.append(chunk)
        body = b"".join(parts)
    else:
        length = environ.get("CONTENT_LENGTH")
        body = (
            stream.read(int(length)) if length else b"".join(iter(lambda: stream.read(4096), b""))
        )
    payload = json.dumps({"body": body.decode("latin-1"), "method": environ["REQUEST_METHOD"]})
    data = payload.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
