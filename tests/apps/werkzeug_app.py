"""Test application written with Werkzeug (Flask's request layer): echoes what it was sent."""

import json

from werkzeug.wrappers import Request, Response


@Request.application
def application(request: Request) -> Response:
    body = request.get_data()
    return Response(
        json.dumps({"length": len(body), "body": body.decode("latin-1")}),
        mimetype="application/json",
    )
