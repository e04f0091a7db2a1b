"""A small WSGI app that serves Django's static files (the `static` group of site.yaml).

It looks a file up in STATIC_ROOT (filled by `manage.py collectstatic`) and, failing that,
with Django's staticfiles finders (the apps' static/ directories, e.g. the admin's CSS), so the
site works without a collectstatic step. The file goes out through `wsgi.file_wrapper`, which
groupserver sends with os.sendfile: no Python loop copies it.
"""

import mimetypes
import os
import posixpath
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles import finders  # noqa: E402

PREFIX = "/" + urlsplit(settings.STATIC_URL).path.strip("/") + "/"
ROOT = str(settings.STATIC_ROOT) if settings.STATIC_ROOT else None
MAX_AGE = 3600


def find(relative: str) -> str | None:
    """The file serving PREFIX + relative, or None; refuses paths that leave the tree."""
    clean = posixpath.normpath(relative)
    if clean != relative.rstrip("/") or clean.startswith(("/", "..")) or clean == ".":
        return None
    if ROOT:
        candidate = os.path.join(ROOT, clean)
        if os.path.isfile(candidate):
            return candidate
    try:
        found = finders.find(clean)
    except Exception:  # SuspiciousFileOperation and the like: not ours to serve
        return None
    return found if isinstance(found, str) and os.path.isfile(found) else None


def respond(start_response, status: str, body: bytes = b"", headers=()):
    start_response(
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *headers]
    )
    return [body]


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    if method not in ("GET", "HEAD"):
        return respond(start_response, "405 Method Not Allowed", b"", [("Allow", "GET, HEAD")])
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    found = find(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
    if found is None:
        return respond(start_response, "404 Not Found", b"not found\n")
    stat = os.stat(found)
    mtime = int(stat.st_mtime)
    headers = [
        ("Last-Modified", formatdate(mtime, usegmt=True)),
        ("Cache-Control", f"public, max-age={MAX_AGE}"),
    ]
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            if parsedate_to_datetime(since).timestamp() >= mtime:
                start_response("304 Not Modified", headers)
                return []
        except (TypeError, ValueError):
            pass
    content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
    headers += [("Content-Type", content_type), ("Content-Length", str(stat.st_size))]
    start_response("200 OK", headers)
    if method == "HEAD":
        return []
    handle = open(found, "rb")  # noqa: SIM115  (closed by the server via close())
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(handle, 65536)
    return read_chunks(handle)


def read_chunks(handle):
    """Without wsgi.file_wrapper (another server): the file in 64 KiB chunks."""
    with handle:
        yield from iter(lambda: handle.read(65536), b"")
