"""Match a request (path, host, method) to a route and its daemon group. Pure; front and workers.

    Router(routes, default_group).route_for(path, host=None, method="GET") -> RouteMatch | None

Routes are tried in config order and the first match wins (see `RouteConfig` for the match kinds);
`None` means no route matched and there is no default group. `find_shadowed` and
`find_catch_all` apply the same rules statically, for config warnings.

Lookup does not scan the routes: exact routes sit in a dict, and prefix routes in a sorted list
searched with bisect. The greatest prefix key <= path is either a prefix of the path or shares its
longest matching prefix key as an ancestor, so one bisect plus a short ancestor walk finds every
prefix route that matches; each key keeps its own and its ancestors' routes merged in config
order. Only regex routes placed before the best candidate are tried one by one.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from groupserver.config import RouteConfig

__all__ = [
    "RouteMatch",
    "Router",
    "find_catch_all",
    "find_shadowed",
    "normalize_host",
    "regex_literal_prefix",
]

_NO_ENVIRON: dict[str, str] = {}


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 350 ns to build, this 100
class RouteMatch:
    """Where a request goes: route index (None for the default group), group and WSGI paths."""

    index: int | None
    group: str
    name: str
    environ: dict[str, str]
    script_name: str
    path_info: str


def normalize_host(host: str | None) -> str:
    """Return a Host header value lowercased, without port or trailing dot ("" when absent)."""
    if not host:
        return ""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.partition(":")[0].rstrip(".")


def _expand_methods(methods: Sequence[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    expanded = set(methods)
    if "GET" in expanded:
        expanded.add("HEAD")
    return frozenset(expanded)


class _Entry:
    """One route compiled for lookup."""

    __slots__ = (
        "index",
        "group",
        "name",
        "environ",
        "methods",
        "host",
        "wildcard",
        "free",
        "mount",
        "pattern",
    )

    def __init__(self, index: int, route: RouteConfig) -> None:
        self.index = index
        self.group = route.group
        self.name = route.label()
        self.environ = route.environ or _NO_ENVIRON
        self.methods = _expand_methods(route.methods)
        host = route.host
        self.wildcard = host is not None and host.startswith("*.")
        # Wildcards keep the leading dot so "*.example.com" never matches "example.com".
        self.host = host[1:] if self.wildcard else host
        self.free = self.methods is None and self.host is None
        self.mount = route.prefix.rstrip("/") if route.mount else None
        self.pattern = re.compile(route.regex) if route.regex is not None else None

    def allows(self, host: str | None, method: str) -> bool:
        """True when the request's host and method satisfy this route's constraints."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.host is None:
            return True
        name = normalize_host(host)
        if self.wildcard:
            return name.endswith(self.host) and len(name) > len(self.host)
        return name == self.host


def _first_allowed(
    entries: Sequence[_Entry], host: str | None, method: str, limit: int
) -> _Entry | None:
    for entry in entries:
        if entry.index >= limit:
            return None
        if entry.free or entry.allows(host, method):
            return entry
    return None


def normalized_path(path: str) -> str:
    """path with repeated slashes merged and "." and ".." segments resolved, never above "/",
    as Apache (mod_wsgi) and nginx do before they match a location: "//admin" and
    "/x/../admin" are "/admin". A trailing slash stays."""
    parts = path.split("/")
    kept: list[str] = []
    for part in parts[1:]:
        if part == "..":
            if kept:
                kept.pop()
        elif part and part != ".":
            kept.append(part)
    result = "/" + "/".join(kept)
    if kept and parts[-1] in ("", ".", ".."):
        result += "/"
    return result


class Router:
    """Maps (path, host, method) to a RouteMatch, first matching route in config order."""

    def __init__(self, routes: list[RouteConfig], default_group: str | None) -> None:
        self.routes = routes
        self.default_group = default_group
        exact: dict[str, list[_Entry]] = {}
        prefix: dict[str, list[_Entry]] = {}
        self._regex: list[_Entry] = []
        for index, route in enumerate(routes):
            entry = _Entry(index, route)
            if route.exact is not None:
                exact.setdefault(route.exact, []).append(entry)
            elif route.regex is not None:
                self._regex.append(entry)
            elif entry.mount is None:
                prefix.setdefault(route.prefix, []).append(entry)
            else:
                # A mount at /admin serves /admin and /admin/..., never /adminx.
                if entry.mount:
                    exact.setdefault(entry.mount, []).append(entry)
                prefix.setdefault(entry.mount + "/", []).append(entry)
        self._exact = {path: tuple(entries) for path, entries in exact.items()}
        self._keys = sorted(prefix)
        lengths = sorted({len(key) for key in self._keys})
        # For each key, the other keys that are prefixes of it, longest first.
        self._ancestors: list[tuple[str, ...]] = []
        self._candidates: dict[str, tuple[_Entry, ...]] = {}
        for key in self._keys:
            ancestors = tuple(
                key[:n] for n in reversed(lengths) if n < len(key) and key[:n] in prefix
            )
            self._ancestors.append(ancestors)
            merged = [*prefix[key]]
            for ancestor in ancestors:
                merged.extend(prefix[ancestor])
            merged.sort(key=lambda entry: entry.index)
            self._candidates[key] = tuple(merged)

    def route_for(
        self, path: str, host: str | None = None, method: str = "GET"
    ) -> RouteMatch | None:
        """Return where the request goes: the first route that matches, else the default group."""
        if "//" in path or "/." in path:
            path = normalized_path(path)  # //admin, /x/../admin: as Apache and nginx match them
        best = None
        limit = len(self.routes)
        entries = self._exact.get(path)
        if entries is not None:
            best = _first_allowed(entries, host, method, limit)
            if best is not None:
                limit = best.index
        keys = self._keys
        i = bisect_right(keys, path)
        if i:
            key = keys[i - 1]
            if not path.startswith(key):
                found = None
                for ancestor in self._ancestors[i - 1]:
                    if path.startswith(ancestor):
                        found = ancestor
                        break
                key = found
            if key is not None:
                entry = _first_allowed(self._candidates[key], host, method, limit)
                if entry is not None:
                    best = entry
                    limit = entry.index
        for entry in self._regex:
            if entry.index >= limit:
                break
            if (entry.free or entry.allows(host, method)) and entry.pattern.match(path):
                best = entry
                break
        if best is None:
            if self.default_group is None:
                return None
            return RouteMatch(None, self.default_group, "default", _NO_ENVIRON, "", path)
        if best.mount is None:
            return RouteMatch(best.index, best.group, best.name, best.environ, "", path)
        mount = best.mount
        return RouteMatch(
            best.index, best.group, best.name, best.environ, mount, path[len(mount) :]
        )


# --- static analysis, for config warnings -------------------------------------------------------

_REGEX_SPECIAL = set(".^$*+?{}[]\\|()")


def _has_top_level_alternation(pattern: str) -> bool:
    depth, in_class, escaped = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


def regex_literal_prefix(pattern: str) -> str:
    """Return the literal text every path matching `pattern` (with re.match) starts with."""
    if _has_top_level_alternation(pattern):
        return ""
    text = pattern[1:] if pattern.startswith("^") else pattern
    literal = ""
    for i, char in enumerate(text):
        if char in _REGEX_SPECIAL:
            # A quantifier may make the last literal character optional.
            if char in "*?{":
                literal = literal[:-1]
            return literal
        literal = text[: i + 1]
    return literal


def _host_covers(earlier: str | None, later: str | None) -> bool:
    if earlier is None or earlier == later:
        return True
    if later is None or not earlier.startswith("*."):
        return False
    return later.endswith(earlier[1:]) and len(later) > len(earlier) - 1


def _methods_cover(earlier: list[str] | None, later: list[str] | None) -> bool:
    if earlier is None:
        return True
    if later is None:
        return False
    return _expand_methods(later) <= _expand_methods(earlier)


def _path_covers(earlier: RouteConfig, later: RouteConfig) -> bool:
    """True when every path `later` matches is also matched by `earlier`."""
    if earlier.regex is not None:
        return later.regex == earlier.regex
    if earlier.exact is not None:
        return later.exact == earlier.exact
    # Every path `later` matches starts with `start`; `whole` says it may also be `start` itself.
    if later.exact is not None:
        start = later.exact
    elif later.regex is not None:
        start = regex_literal_prefix(later.regex)
        if not start:
            return False
    elif later.mount:
        start = later.prefix.rstrip("/") or "/"
    else:
        start = later.prefix
    if earlier.mount:
        base = earlier.prefix.rstrip("/")
        if later.prefix is not None and later.mount:
            return start == base or start.startswith(base + "/") or not base
        return (start == base and later.exact is not None) or start.startswith(base + "/")
    return start.startswith(earlier.prefix)


def _covers(earlier: RouteConfig, later: RouteConfig) -> bool:
    return (
        _host_covers(earlier.host, later.host)
        and _methods_cover(earlier.methods, later.methods)
        and _path_covers(earlier, later)
    )


def find_shadowed(routes: Sequence[RouteConfig]) -> list[tuple[int, int]]:
    """Return (later, earlier) index pairs where route `earlier` matches all `later` would."""
    shadowed = []
    for j, later in enumerate(routes):
        for i in range(j):
            if _covers(routes[i], later):
                shadowed.append((j, i))
                break
    return shadowed


def find_catch_all(routes: Sequence[RouteConfig]) -> int | None:
    """Return the index of the first route that matches every request, if any."""
    for i, route in enumerate(routes):
        unconstrained = route.host is None and route.methods is None
        if unconstrained and route.prefix is not None and route.prefix.rstrip("/") == "":
            return i
    return None
