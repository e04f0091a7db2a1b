"""Test application for lifecycle tests: memory growth, slow requests, its own pid."""

import json
import os
import time
from urllib.parse import parse_qs

_kept = []


def application(environ, start_response):
    query = parse_qs(environ["QUERY_STRING"])
    path = environ["PATH_INFO"]
    if path.startswith("/alloc"):
        mb = int(query.get("mb", ["10"])[0])
        block = bytearray(mb * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page so it is really resident
        if query.get("keep", ["1"])[0] == "1":
            _kept.append(block)
        del block  # keep=0: a transient need, given back before the response
    if path.startswith("/sleep"):
        time.sleep(float(query.get("s", ["1"])[0]))
    body = json.dumps({"pid": os.getpid(), "path": path}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
