"""Router.route_for: first matching route wins; checked against a naive linear reference."""

from __future__ import annotations

import random
import re

import pytest

from groupserver.config import RouteConfig
from groupserver.routing import (
    RouteMatch,
    Router,
    find_catch_all,
    find_shadowed,
    normalize_host,
    regex_literal_prefix,
)


def route(**fields) -> RouteConfig:
    fields.setdefault("group", "g")
    return RouteConfig(**fields)


def where(router: Router, path: str, host: str | None = None, method: str = "GET"):
    match = router.route_for(path, host, method)
    return None if match is None else (match.index, match.group)


# --- the naive reference -----------------------------------------------------------------------


def reference_route_for(routes, default_group, path, host=None, method="GET"):
    """Linear scan written from the documented rules, independent of Router's indexes."""
    path = _reference_normalized(path)
    name = (host or "").lower()
    name = name[: name.find("]") + 1] if name.startswith("[") else name.split(":")[0].rstrip(".")
    for index, r in enumerate(routes):
        if r.methods is not None:
            allowed = set(r.methods) | ({"HEAD"} if "GET" in r.methods else set())
            if method not in allowed:
                continue
        if r.host is not None:
            if r.host.startswith("*."):
                if not (name.endswith(r.host[1:]) and name != r.host[1:]):
                    continue
            elif name != r.host:
                continue
        script_name = ""
        if r.exact is not None:
            matched = path == r.exact
        elif r.regex is not None:
            matched = re.match(r.regex, path) is not None
        elif r.mount:
            base = r.prefix.rstrip("/")
            matched = (path == base and base != "") or path.startswith(base + "/")
            script_name = base
        else:
            matched = path.startswith(r.prefix)
        if matched:
            return RouteMatch(
                index, r.group, r.label(), r.environ, script_name, path[len(script_name) :]
            )
    if default_group is None:
        return None
    return RouteMatch(None, default_group, "default", {}, "", path)


def _reference_normalized(path: str) -> str:
    """Slashes merged, then "." and ".." resolved one at a time (never above the root)."""
    if not path.startswith("/"):
        return path
    trailing = re.search(r"/(\.\.?)?$", path) is not None and re.sub("[/.]", "", path) != ""
    path = re.sub("/+", "/", path)
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            segments = segments[:-1]
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments) + ("/" if trailing and segments else "")


# --- behaviour -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//admin/x", "/admin/x"),
        ("/x/../admin/x", "/admin/x"),
        ("/./admin/x", "/admin/x"),
        ("/admin/./x", "/admin/x"),
        ("/../admin/", "/admin/"),
        ("/admin//", "/admin/"),
        ("/a/b/..", "/a/"),
        ("/.well-known/x", "/.well-known/x"),
        ("/", "/"),
    ],
)
def test_routing_merges_slashes_and_resolves_dot_segments_as_apache_and_nginx(path, expected):
    """ "//admin" and "/x/../admin" went to the default group (and past /admin's own limits)."""
    router = Router([route(prefix="/admin", group="admin", mount=True)], "main")
    match = router.route_for(path)
    assert match.script_name + match.path_info == expected
    assert match.group == ("admin" if expected.startswith("/admin") else "main")
    assert _reference_normalized(path) == expected


def test_first_matching_route_wins_across_kinds():
    router = Router(
        [
            route(regex=r"^/a/\d+$", group="regex"),
            route(prefix="/a/", group="prefix"),
            route(exact="/a/1", group="exact"),
            route(prefix="/a/b", group="longer"),
        ],
        None,
    )
    assert where(router, "/a/1") == (0, "regex")
    assert where(router, "/a/b") == (1, "prefix")
    assert where(router, "/a/x") == (1, "prefix")
    assert where(router, "/a") is None


def test_longer_prefix_earlier_wins_over_shorter_later():
    router = Router([route(prefix="/api/v2/", group="v2"), route(prefix="/api/", group="api")], "m")
    assert where(router, "/api/v2/x") == (0, "v2")
    assert where(router, "/api/v1/x") == (1, "api")
    assert where(router, "/other") == (None, "m")


def test_prefix_is_a_plain_string_prefix():
    router = Router([route(prefix="/api")], None)
    assert where(router, "/apix") == (0, "g")
    assert where(router, "/ap") is None


def test_regex_is_anchored_at_start_only():
    router = Router([route(regex="/u/[0-9]+"), route(regex=r"^/exact$", group="e")], None)
    assert where(router, "/u/12/extra") == (0, "g")
    assert where(router, "/x/u/12") is None
    assert where(router, "/exact") == (1, "e")
    assert where(router, "/exact/no") is None


def test_default_group_match():
    match = Router([route(prefix="/a/")], "main").route_for("/b")
    assert match == RouteMatch(None, "main", "default", {}, "", "/b")
    assert Router([route(prefix="/a/")], None).route_for("/b") is None


def test_route_match_fields():
    router = Router([route(prefix="/a/", environ={"newrelic.app_name": "x"}, group="a")], None)
    match = router.route_for("/a/b")
    assert match == RouteMatch(0, "a", "prefix /a/", {"newrelic.app_name": "x"}, "", "/a/b")
    assert router.route_for("/a/c").environ is match.environ


@pytest.mark.parametrize(
    ("prefix", "path", "script_name", "path_info"),
    [
        ("/admin", "/admin", "/admin", ""),
        ("/admin", "/admin/", "/admin", "/"),
        ("/admin", "/admin/users/1", "/admin", "/users/1"),
        ("/admin/", "/admin", "/admin", ""),
        ("/admin/", "/admin/x", "/admin", "/x"),
        ("/", "/x", "", "/x"),
        ("/", "/", "", "/"),
    ],
)
def test_mount_moves_prefix_to_script_name(prefix, path, script_name, path_info):
    match = Router([route(prefix=prefix, mount=True)], None).route_for(path)
    assert (match.script_name, match.path_info) == (script_name, path_info)
    assert match.name == f"prefix {prefix} mount"


def test_mount_matches_whole_segments_only():
    router = Router([route(prefix="/admin/", mount=True)], "main")
    assert where(router, "/adminx") == (None, "main")
    assert where(router, "/admin") == (0, "g")


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("example.com", "example.com", True),
        ("example.com", "EXAMPLE.com:8080", True),
        ("example.com", "example.com.", True),
        ("example.com", "www.example.com", False),
        ("example.com", None, False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com:80", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("[::1]", "[::1]:8000", True),
        ("10.0.0.1", "10.0.0.1:80", True),
    ],
)
def test_host_matching(pattern, host, matches):
    router = Router([route(prefix="/", host=pattern)], None)
    assert (router.route_for("/x", host) is not None) is matches


def test_methods_and_get_includes_head():
    router = Router(
        [route(prefix="/", methods=["GET"], group="read"), route(prefix="/", group="other")],
        None,
    )
    assert where(router, "/", method="GET") == (0, "read")
    assert where(router, "/", method="HEAD") == (0, "read")
    assert where(router, "/", method="POST") == (1, "other")
    assert where(router, "/", method="get") == (1, "other")


def test_constrained_route_falls_through_to_later_routes():
    router = Router(
        [
            route(prefix="/api/", host="api.example.com", group="api"),
            route(exact="/api/x", methods=["POST"], group="post"),
            route(regex="^/api", host="*.example.com", group="sub"),
            route(prefix="/", group="all"),
        ],
        None,
    )
    assert where(router, "/api/x", "api.example.com") == (0, "api")
    assert where(router, "/api/x", "www.example.com", "POST") == (1, "post")
    assert where(router, "/api/x", "www.example.com") == (2, "sub")
    assert where(router, "/api/x", "example.org") == (3, "all")


def test_normalize_host():
    assert normalize_host("Example.COM:80") == "example.com"
    assert normalize_host("[::1]:80") == "[::1]"
    assert normalize_host("") == normalize_host(None) == ""


def test_thousand_prefix_routes_agree_with_reference():
    rng = random.Random(1000)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))) for _ in range(300)]
    routes = []
    for i in range(1000):
        prefix = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        routes.append(route(prefix=prefix + rng.choice(["", "/"]), group=f"g{i % 7}"))
    router = Router(routes, "main")
    paths = [r.prefix + rng.choice(["", "x", "/y/z"]) for r in rng.sample(routes, 300)]
    paths += ["/" + "/".join(rng.choice(words) for _ in range(4)) for _ in range(300)]
    for path in paths:
        assert router.route_for(path) == reference_route_for(routes, "main", path), path


# --- randomized: Router == linear reference on random tables ----------------------------------

_ALPHABET = "ab/"
_HOST_PATTERNS = [None, None, None, "a.com", "*.a.com", "x.a.com"]
_HOSTS = [None, "a.com", "A.COM:8080", "x.a.com", "y.x.a.com", "b.com", "[::1]:80"]
_METHOD_SETS = [None, None, None, ["GET"], ["POST", "PUT"], ["HEAD"]]
_REGEXES = ["^/a+b", "/b.*a$", "^/(a|b)/", "/ab?/", "^/$", "a"]


def _random_path(rng: random.Random, max_len: int = 6) -> str:
    return "/" + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, max_len)))


def _random_route(rng: random.Random, index: int) -> RouteConfig:
    kind = rng.choice(["prefix", "prefix", "prefix", "exact", "regex", "mount"])
    fields: dict = {"group": f"g{index % 4}"}
    if kind == "regex":
        fields["regex"] = rng.choice(_REGEXES)
    elif kind == "mount":
        fields["prefix"] = _random_path(rng, 3)
        fields["mount"] = True
    else:
        fields[kind] = _random_path(rng, 4)
    if rng.random() < 0.3:
        fields["host"] = rng.choice(_HOST_PATTERNS)
    if rng.random() < 0.3:
        fields["methods"] = rng.choice(_METHOD_SETS)
    if rng.random() < 0.2:
        fields["environ"] = {"route": str(index)}
    return RouteConfig(**fields)


def _random_requests(rng: random.Random, routes: list[RouteConfig], n: int):
    for _ in range(n):
        path = _random_path(rng)
        if routes and rng.random() < 0.5:
            r = rng.choice(routes)
            base = r.prefix if r.prefix is not None else r.exact or "/"
            path = base + rng.choice(["", "a", "/", "/b", "ab/"])
        yield path, rng.choice(_HOSTS), rng.choice(["GET", "HEAD", "POST", "PUT", "DELETE"])


def test_random_tables_agree_with_reference():
    rng = random.Random(20240611)
    for _ in range(300):
        routes = [_random_route(rng, i) for i in range(rng.randint(0, 12))]
        default = rng.choice([None, "main"])
        router = Router(routes, default)
        for path, host, method in _random_requests(rng, routes, 40):
            expected = reference_route_for(routes, default, path, host, method)
            assert router.route_for(path, host, method) == expected, (routes, path, host, method)


def test_shadowed_routes_never_match_on_random_tables():
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        routes = [_random_route(rng, i) for i in range(rng.randint(2, 10))]
        shadowed = {later for later, _earlier in find_shadowed(routes)}
        if not shadowed:
            continue
        checked += 1
        router = Router(routes, None)
        for path, host, method in _random_requests(rng, routes, 60):
            match = router.route_for(path, host, method)
            assert match is None or match.index not in shadowed, (routes, path, host, method)
    assert checked > 20


# --- static analysis ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        (dict(prefix="/a"), dict(prefix="/a/b"), True),
        (dict(prefix="/a"), dict(prefix="/a"), True),
        (dict(prefix="/a/b"), dict(prefix="/a"), False),
        (dict(prefix="/a"), dict(exact="/ab"), True),
        (dict(exact="/a"), dict(exact="/a"), True),
        (dict(exact="/a"), dict(prefix="/a"), False),
        (dict(regex="^/x"), dict(regex="^/x"), True),
        (dict(prefix="/a/"), dict(regex=r"^/a/\d+"), True),
        (dict(prefix="/a/"), dict(regex=r"^/a/?"), False),
        (dict(prefix="/a", host="h.com"), dict(prefix="/a/b"), False),
        (dict(prefix="/a", host="h.com"), dict(prefix="/a/b", host="h.com"), True),
        (dict(prefix="/a", host="*.h.com"), dict(prefix="/a/b", host="x.h.com"), True),
        (dict(prefix="/a", host="*.h.com"), dict(prefix="/a/b", host="h.com"), False),
        (dict(prefix="/a", methods=["GET"]), dict(prefix="/a/b", methods=["HEAD"]), True),
        (dict(prefix="/a", methods=["GET"]), dict(prefix="/a/b"), False),
        (dict(prefix="/a", mount=True), dict(prefix="/ab"), False),
        (dict(prefix="/a", mount=True), dict(exact="/a"), True),
        (dict(prefix="/a/", mount=True), dict(prefix="/a/b", mount=True), True),
        (dict(prefix="/", mount=True), dict(prefix="/x", mount=True), True),
        (dict(prefix="/x/"), dict(prefix="/x", mount=True), False),
    ],
)
def test_find_shadowed(earlier, later, shadowed):
    assert (find_shadowed([route(**earlier), route(**later)]) == [(1, 0)]) is shadowed


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("^/api/v1", "/api/v1"),
        ("/api/v1$", "/api/v1"),
        (r"^/a/\d+", "/a/"),
        ("^/ab?c", "/a"),
        ("^/ab+", "/ab"),
        ("^/(a|b)", "/"),
        ("^/a|^/b", ""),
        (r"^/x\|y", "/x"),
        ("^/[a|b]", "/"),
        ("(?i)/a", ""),
    ],
)
def test_regex_literal_prefix(pattern, literal):
    assert regex_literal_prefix(pattern) == literal


def test_find_catch_all():
    assert find_catch_all([route(prefix="/a"), route(prefix="/")]) == 1
    assert find_catch_all([route(prefix="/", mount=True)]) == 0
    assert find_catch_all([route(prefix="/", host="a.com"), route(regex=".*")]) is None
