"""Test application for lifecycle tests: memory growth; slow, computing, stuck requests; pid."""

import ctypes
import json
import os
import threading
import time
from urllib.parse import parse_qs

_kept = []
_lock = threading.Lock()
_running = [0, 0]  # requests in the app now, most at once


def application(environ, start_response):
    with _lock:
        _running[0] += 1
        _running[1] = max(_running)
    try:
        return _serve(environ, start_response)
    finally:
        with _lock:
            _running[0] -= 1


def _serve(environ, start_response):
    query = parse_qs(environ["QUERY_STRING"])
    path = environ["PATH_INFO"]
    if path.startswith("/spin"):  # compute, holding the GIL, for ms milliseconds
        end = time.thread_time() + float(query.get("ms", ["2"])[0]) / 1000
        while time.thread_time() < end:
            pass
    if path.startswith("/alloc"):
        mb = int(query.get("mb", ["10"])[0])
        block = bytearray(mb * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page so it is really resident
        if query.get("keep", ["1"])[0] == "1":
            _kept.append(block)
        del block  # keep=0: a transient need, given back before the response
        time.sleep(float(query.get("then_sleep", ["0"])[0]))
    if path.startswith("/sleep"):
        time.sleep(float(query.get("s", ["1"])[0]))
    if path.startswith("/hold-gil"):  # stuck in C code that keeps the GIL (as a runaway regex)
        ctypes.PyDLL(None).sleep(int(query.get("s", ["1"])[0]))
    body = json.dumps({"pid": os.getpid(), "path": path, "most_at_once": _running[1]}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
