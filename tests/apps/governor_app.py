"""Test application for the memory governor: requests that grow a worker and keep the memory.

- /grow?mb=N      allocates N MiB, touches every page and keeps it (module-level list), so the
                  worker's private memory (USS) grows by N MiB with each request and stays grown;
                  &hold=S then keeps the request in flight S seconds (a worker that cannot
                  finish a graceful recycle quickly);
- /sleep?s=S      sleeps S seconds (a request in flight while the worker is asked to recycle);
- anything else   a small steady response.

Every response is JSON with the worker's pid, the path and the MiB this worker keeps.
"""

import json
import os
import time
from urllib.parse import parse_qs

_kept: list[bytearray] = []
_PAGE = 4096


def _grow(mb: int) -> None:
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), _PAGE):
        block[i] = 1  # touch every page so it is really resident (and private)
    _kept.append(block)


def application(environ, start_response):
    query = parse_qs(environ["QUERY_STRING"])
    path = environ["PATH_INFO"]
    if path.endswith("/grow"):
        _grow(int(query.get("mb", ["10"])[0]))
        time.sleep(float(query.get("hold", ["0"])[0]))
    elif path.endswith("/sleep"):
        time.sleep(float(query.get("s", ["1"])[0]))
    kept = sum(len(b) for b in _kept) >> 20
    body = json.dumps({"pid": os.getpid(), "path": path, "kept_mb": kept}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
