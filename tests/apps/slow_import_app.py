"""An app whose import takes longer than any sane startup_timeout."""

import time

time.sleep(30)


def application(environ, start_response):
    start_response("200 OK", [("Content-Length", "0")])
    return []
