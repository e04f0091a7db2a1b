"""A small WSGI app for the sample configs: it says which group and route served each request."""

import json
import os
import time


def application(environ, start_response):
    """Answer every URL with JSON naming the serving group, route and process."""
    if environ.get("PATH_INFO", "").endswith("/slow"):
        time.sleep(float(environ.get("QUERY_STRING", "").partition("=")[2] or 1))
    body = json.dumps(
        {
            "group": environ.get("groupserver.group"),
            "route": environ.get("groupserver.route"),
            "pid": os.getpid(),
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "app_name": environ.get("newrelic.app_name"),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
