"""Environment variables in the YAML file's values: ``${NAME}`` and ``${NAME:-default}``.

Containers and platforms hand a site its port and its size in the environment (``PORT``,
``WEB_CONCURRENCY``): ``listen: [":${PORT:-8000}"]``, ``processes: ${WEB_CONCURRENCY:-2}``.
A value that is one reference and nothing else takes the type its text reads as (a decimal
integer, a decimal number, true or false; anything else stays text), so that it fits an integer
or boolean option; a reference inside a longer string is replaced as text. ``$${`` is a literal
``${``. Keys are never expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")  # no leading zero: "0660" stays text
_NUMBER = re.compile(r"[+-]?[0-9]+\.[0-9]*")


def expand_environment(
    data: Any, environ: Mapping[str, str]
) -> tuple[Any, list[tuple[tuple[str | int, ...], str]]]:
    """data (as the YAML file parsed) with every reference replaced, and the problems found as
    (key location, reason): a variable that is not set and has no default, a malformed one."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    inside: set[int] = set()  # the containers being walked: a YAML alias can make a cycle

    def walk(value: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            return _expand(value, loc, environ, problems) if "${" in value else value
        if not isinstance(value, (dict, list)) or id(value) in inside:
            return value  # a cycle is left as it is, for the models to refuse
        inside.add(id(value))
        try:
            if isinstance(value, dict):
                return {key: walk(item, (*loc, key)) for key, item in value.items()}
            return [walk(item, (*loc, n)) for n, item in enumerate(value)]
        finally:
            inside.discard(id(value))

    return walk(data, ()), problems


def _expand(
    text: str,
    loc: tuple[str | int, ...],
    environ: Mapping[str, str],
    problems: list[tuple[tuple[str | int, ...], str]],
) -> Any:
    def replace(match: re.Match[str]) -> str:
        escaped, inner = match.groups()
        if escaped:
            return "${" + inner + "}"
        name, sep, default = inner.partition(":-")
        if not _NAME.fullmatch(name):
            problems.append((loc, f"${{{inner}}} is not ${{NAME}} or ${{NAME:-default}}"))
            return match.group(0)
        if name in environ:
            return environ[name]
        if sep:
            return default
        problems.append(
            (loc, f"environment variable {name} is not set (${{{name}:-default}} gives a default)")
        )
        return match.group(0)

    if "${" in _REFERENCE.sub("", text):
        problems.append((loc, "a ${ without its closing }"))
        return text
    whole = _REFERENCE.fullmatch(text)
    expanded = _REFERENCE.sub(replace, text)
    if whole is None or whole.group(1):
        return expanded
    return _typed(expanded)


def _typed(text: str) -> Any:
    """How a plain YAML scalar of this text would read, for the types options take."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text
