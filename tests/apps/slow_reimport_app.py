"""An app that imports at once the first time and slowly every later time (in a new worker).

The marker file named by $SLOW_REIMPORT_MARKER records that a worker imported it already.
"""

import os
import time

_marker = os.environ["SLOW_REIMPORT_MARKER"]
if os.path.exists(_marker):
    time.sleep(20)
else:
    open(_marker, "w").close()  # noqa: SIM115


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
