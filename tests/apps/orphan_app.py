"""Test app: /orphan leaves a grandchild behind whose parent already exited (a daemonising call)."""

import json
import os
import time


def application(environ, start_response):
    payload = {"pid": os.getpid()}
    if environ["PATH_INFO"] == "/orphan":
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                time.sleep(0.5)  # outlive its parent, then exit: someone must reap it
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)
        payload["orphaned"] = True
    body = json.dumps(payload).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
