"""examples/django_site end to end: the real Django site under groupserver, as a browser uses it.

A private copy of the example (its own SQLite file and control socket) is migrated, seeded and
served with a small export (EXPORT_PAD_MB) and a small admin max_requests; then the test logs in
to the admin with the CSRF token and session cookie, creates an article, reads it on the volume
group, downloads the memory-hungry export and watches, in the stats, the admin worker alone grow
and then recycle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from conftest import ROOT, RunningServer, serving, wait_for

django = pytest.importorskip("django")

EXAMPLE = ROOT / "examples" / "django_site"
EXPORT_MB = 30
ADMIN_MAX_REQUESTS = 5
EXPORT_PATH = "/admin/publications/article/export/"
USERNAME, PASSWORD = "editor", "a-long-test-password-42"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def django_site(tmp_path: Path) -> Iterator[RunningServer]:
    """The example, migrated, seeded and served from tmp_path; no process left afterwards."""
    site_dir = tmp_path / "django_site"
    shutil.copytree(
        EXAMPLE,
        site_dir,
        ignore=shutil.ignore_patterns("*.sqlite3", "__pycache__", ".*.ctl", "staticfiles"),
    )
    env = dict(os.environ, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    for name in ("DATABASE_URL", "DJANGO_DB_PATH", "DJANGO_SETTINGS_MODULE", "EXPORT_PAD_MB"):
        env.pop(name, None)
    for command in (["migrate", "-v0"], ["seed", "--articles", "20", "--username", USERNAME]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=site_dir,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    config = yaml.safe_load((site_dir / "site.yaml").read_text())
    config["listen"] = ["127.0.0.1:0"]
    for group in config["groups"].values():  # the private SQLite file, whatever the caller's env
        group["env"].update(DATABASE_URL="", DJANGO_DB_PATH=str(site_dir / "db.sqlite3"))
    admin = config["groups"]["admin"]
    admin["max_requests"] = ADMIN_MAX_REQUESTS
    admin["env"]["EXPORT_PAD_MB"] = str(EXPORT_MB)
    with serving(site_dir, yaml.safe_dump(config, sort_keys=False)) as server:
        yield server


class Browser:
    """What a browser does that the admin relies on: cookies, Referer and Origin on forms."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.origin = f"http://{server.host}:{server.port}"
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, timeout: float = 20.0):
        headers = {"Accept": "text/html,*/*"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + path
        conn = self.server.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for value in resp.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return resp.status, resp.headers, data

    def get(self, path: str, status: int = 200):
        code, headers, data = self.request("GET", path)
        assert code == status, (path, code, data[:500])
        return headers, data

    def submit(self, path: str, fields: dict) -> str:
        """GET the form at path, POST it back with its CSRF token; return the redirect target."""
        _, page = self.get(path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        assert "csrftoken" in self.cookies
        code, headers, data = self.request(
            "POST", path, {"csrfmiddlewaretoken": token.group(1).decode(), **fields}
        )
        assert code == 302, (path, code, data[:2000])
        return headers["Location"]


def workers(doc: dict, group: str) -> list[dict]:
    return doc["groups"][group]["workers"]


def settled_admin(server: RunningServer) -> dict | None:
    """Stats once the admin group is one ready worker that has its memory sampled."""
    doc = server.stats()
    admin = workers(doc, "admin")
    if len(admin) == 1 and admin[0]["state"] == "ready" and admin[0]["uss_bytes"] > 0:
        return doc
    return None


def uss(doc: dict, group: str) -> dict[int, int]:
    return {w["pid"]: w["uss_bytes"] for w in workers(doc, group)}


def test_admin_login_article_on_volume_export_memory_and_recycling(django_site):
    server = django_site
    browser = Browser(server)
    for group, count in (("main", 1), ("volume", 3), ("admin", 1), ("static", 1)):
        assert len(server.processes_titled(f"(wsgi:{group})")) == count

    # The hot pages go to volume, the rest to main; /static/ to the static group.
    headers, home = browser.get("/")
    assert headers["X-Group"] == "volume" and b"Sample article 1" in home
    headers, listing = browser.get("/publications/")
    assert headers["X-Group"] == "main" and b"/publications/article/" in listing

    # Log in as a browser does: the login form's token, the csrftoken cookie, Referer, Origin.
    login = "/admin/login/?next=/admin/"
    _, login_page = browser.get(login)
    css = re.search(rb'<link rel="stylesheet" href="(/static/admin/css/[^"]+\.css)"', login_page)
    assert css, login_page[:1000]
    headers, stylesheet = browser.get(css.group(1).decode())
    assert headers["Content-Type"] == "text/css" and "X-Group" not in headers
    shipped = Path(django.__file__).parent / "contrib/admin/static" / css.group(1).decode()[8:]
    assert stylesheet == shipped.read_bytes()
    # a traversal never reaches the static group: routing resolves ".." first (Django's 404)
    assert browser.request("GET", "/static/../mysite/settings.py")[0] == 404
    target = browser.submit(login, {"username": USERNAME, "password": PASSWORD, "next": "/admin/"})
    assert target == "/admin/" and "sessionid" in browser.cookies
    headers, index = browser.get("/admin/")
    assert headers["X-Group"] == "admin" and b"Site administration" in index
    first_admin = workers(server.stats(), "admin")[0]["pid"]

    # Create an article through the admin's add form; "Save and continue" redirects to its page.
    title = "Written through the admin"
    target = browser.submit(
        "/admin/publications/article/add/",
        {
            "title": title,
            "body": "Created over HTTP by the end-to-end test.",
            "published_0": "2024-05-01",
            "published_1": "12:00:00",
            "_continue": "Save and continue editing",
        },
    )
    article_id = re.fullmatch(r"/admin/publications/article/(\d+)/change/", target).group(1)

    # Read it on the volume group.
    headers, page = browser.get(f"/publications/article/{article_id}/")
    assert headers["X-Group"] == "volume"
    assert title.encode() in page and b'<span class="group">volume</span>' in page

    # Five admin requests (login page, login, index, add form, add) reached max_requests: the
    # first admin worker retires once its replacement is ready.
    def recycled():
        doc = settled_admin(server)
        if doc and workers(doc, "admin")[0]["pid"] != first_admin:
            return doc
        return None

    before = wait_for(recycled, timeout=20)
    assert before["groups"]["admin"]["restarts"].get("max_requests") == 1
    assert before["groups"]["admin"]["recent_recycles"][-1]["pid"] == first_admin
    assert before["groups"]["admin"]["recent_recycles"][-1]["reason"] == "max_requests"
    second_admin = workers(before, "admin")[0]["pid"]
    assert workers(before, "admin")[0]["requests"] == 0

    # The memory-hungry export, on the fresh admin worker.
    def sampled():
        doc = server.stats()
        return all(w["uss_bytes"] for g in ("main", "volume") for w in workers(doc, g)) and doc

    before = wait_for(sampled)
    code, headers, export = browser.request("GET", EXPORT_PATH, timeout=40)
    assert code == 200, export[:500]
    assert headers["X-Group"] == "admin"
    assert headers["Content-Disposition"].startswith('attachment; filename="articles-')
    assert EXPORT_MB * 2**20 <= len(export) < (EXPORT_MB + 1) * 2**20  # EXPORT_PAD_MB applies
    assert export.startswith(b"copy,id,title,published,body\r\n") and title.encode() in export

    def export_on_top():
        doc = server.stats()
        urls = doc["groups"]["admin"]["memory_by_url"]
        return doc if urls and urls[0]["path"] == EXPORT_PATH else None

    # Only the admin worker grew, by about the export's size; main and volume did not.
    after = wait_for(export_on_top, timeout=10)
    quarter = EXPORT_MB * 2**20 // 4
    assert after["groups"]["admin"]["memory_by_url"][0]["max_growth_bytes"] > quarter
    admin_grown = uss(after, "admin")[second_admin]
    assert admin_grown - uss(before, "admin")[second_admin] > quarter
    for group in ("main", "volume"):
        assert uss(after, group).keys() == uss(before, group).keys()  # nobody else restarted
        for pid, size in uss(after, group).items():
            assert size - uss(before, group)[pid] < quarter, (group, pid, size)
        assert not after["groups"][group]["restarts"]
    assert workers(after, "admin")[0]["pid"] == second_admin
    assert after["groups"]["static"]["requests_total"] >= 1  # the stylesheet

    # More admin requests: the second worker reaches max_requests too and is replaced.
    for _ in range(ADMIN_MAX_REQUESTS):
        browser.get("/admin/")

    def recycled_again():
        doc = settled_admin(server)
        if doc and workers(doc, "admin")[0]["pid"] not in (first_admin, second_admin):
            return doc
        return None

    final = wait_for(recycled_again, timeout=20)
    assert final["groups"]["admin"]["restarts"]["max_requests"] == 2
    assert final["groups"]["admin"]["recent_recycles"][-1]["pid"] == second_admin
    # The replacement starts small again: recycling gave the export's memory back.
    assert workers(final, "admin")[0]["uss_bytes"] < admin_grown - quarter // 2
    browser.get("/admin/")  # the session survives the recycle: it lives in the database
