"""An app with a heavy import (about 40 MB of Python objects), recording each import's pid."""

import json
import os

IMPORTED_BY = os.getpid()
if os.environ.get("IMPORT_LOG"):
    with open(os.environ["IMPORT_LOG"], "a") as log:
        log.write(f"{IMPORTED_BY}\n")

TABLE = {n: f"row {n}" * 4 for n in range(300_000)}


def application(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "imported_by": IMPORTED_BY, "rows": len(TABLE)}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
