"""Hello world WSGI app used by every benchmark."""


def application(environ, start_response):
    """Return a fixed 12-byte body."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return [b"Hello world\n"]
