"""WSGI apps for the benchmark workloads (hello world itself is hello_app.py).

Every app is plain PEP 3333 and does the same work under every server:

    body_10k     a 10,240-byte body with Content-Length
    file_1m      a 1 MiB file sent through wsgi.file_wrapper (sendfile where the server can);
                 the file is $BENCH_FILE, created by run.py (made here if missing)
    post         reads the whole request body and answers with its length
    sleep_10ms   sleeps 10 ms (an app waiting on a database), then answers hello
    site         the partitioned site: "/admin..." allocates and touches 50 MB, sleeps 200 ms;
                 anything else is the hot home page (hello world)
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable

StartResponse = Callable[..., object]
Environ = dict[str, object]

HELLO = b"Hello world\n"
BODY_10K = b"x" * 10_240
FILE_SIZE = 1 << 20
ADMIN_BYTES = 50 * 1024 * 1024
ADMIN_SLEEP = 0.2


def _text(start_response: StartResponse, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def body_10k(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Answer 10 KB."""
    return _text(start_response, BODY_10K)


def _bench_file() -> str:
    path = os.environ.get("BENCH_FILE")
    if path and os.path.getsize(path) == FILE_SIZE:
        return path
    fd, path = tempfile.mkstemp(prefix="gs-bench-", suffix=".bin")
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(FILE_SIZE))
    return path


BENCH_FILE = _bench_file()


def file_1m(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Send a 1 MiB file with wsgi.file_wrapper (or plain reads when the server has none)."""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(FILE_SIZE))],
    )
    handle = open(BENCH_FILE, "rb")  # noqa: SIM115 - closed by the server via close()
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(handle, 65536)  # type: ignore[operator]
    return iter(lambda: handle.read(65536), b"")


def post(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Read the whole body (Content-Length) and answer with the number of bytes read."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)  # type: ignore[arg-type]
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))  # type: ignore[attr-defined]
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    return _text(start_response, b"%d\n" % total)


def sleep_10ms(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Wait 10 ms without using CPU, then answer hello world."""
    time.sleep(0.010)
    return _text(start_response, HELLO)


def site(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The partitioned site: a slow, memory-hungry /admin and a hot everything else."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    if path.startswith("/admin"):
        block = bytearray(b"\x01") * ADMIN_BYTES  # written, so the pages are really used
        time.sleep(ADMIN_SLEEP)
        size = len(block)
        del block
        return _text(start_response, b"admin %d\n" % size)
    return _text(start_response, HELLO)
