"""Read site.yaml into a SiteConfig and turn every problem into one readable line (master only).

Each line reads "SOURCE: key.path: reason (got VALUE)", e.g.
"site.yaml: groups.admin.threads: must be >= 1 (got 0)"; YAML syntax errors read
"site.yaml: line 3 column 5: <problem>".
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from groupserver.config.environ import expand_environment
from groupserver.config.models import (
    DEFAULT_SOURCE,
    NO_VALUE,
    UNION_TAGS,
    DecimalMode,
    GroupConfig,
    ListenAddress,
    RouteConfig,
    SiteConfig,
    key_path,
)

__all__ = ["ConfigError", "format_validation_error", "load_config", "parse_config"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(Exception):
    """An invalid configuration; str() is the whole message, one problem per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            _mark_decimal_modes(node)
            first_line: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_INT_TAG = "tag:yaml.org,2002:int"
_DECIMAL_MODE_TAG = "!groupserver/decimal-mode"
_MODE_KEYS = ("umask", "mode")  # permission modes: octal, though YAML reads `22` as decimal


def _mark_decimal_modes(node: yaml.MappingNode) -> None:
    """Tag a permission mode written as a plain decimal (`umask: 22`, not `0022` or '0022'), so
    that its validator can refuse it instead of taking 22 for 0o026."""
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.value in _MODE_KEYS
            and value_node.tag == _INT_TAG
            and not str(value_node.value).lstrip("+-").startswith("0")
        ):
            value_node.tag = _DECIMAL_MODE_TAG


def _construct_decimal_mode(loader: _YamlLoader, node: yaml.ScalarNode) -> DecimalMode:
    return DecimalMode(int(str(node.value).replace("_", "")))


_YamlLoader.add_constructor(_DECIMAL_MODE_TAG, _construct_decimal_mode)


def load_config(path: str | os.PathLike[str]) -> SiteConfig:
    """Read and validate the YAML file at `path`; raise ConfigError listing every problem."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    config = parse_config(text, source)
    config.source_path = os.path.abspath(source)
    # Log files and unix socket paths, like chdir, python_path and control_socket: relative to
    # the YAML file, not to wherever the server was started (nor to a group's chdir, which a
    # worker applies before it opens the access log).
    base = os.path.dirname(config.source_path)
    for key, path in config.log_files().items():
        setattr(config, key, os.path.join(base, path))  # an absolute path stays as it is
    config.listen = [
        address.model_copy(update={"path": os.path.join(base, address.path)})
        if address.kind == "unix"
        else address
        for address in config.listen
    ]
    stats = config.stats.listen
    if stats and stats.startswith("unix:"):
        update = {"listen": "unix:" + os.path.join(base, stats[len("unix:") :])}
        config.stats = config.stats.model_copy(update=update)
    return config


def parse_config(
    text: str, source: str = DEFAULT_SOURCE, environ: Mapping[str, str] | None = None
) -> SiteConfig:
    """Validate YAML `text`; `source` names it in messages; its ${NAME} references read
    `environ` (default: this process's environment). Raise ConfigError on any problem."""
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{source}: {where}{problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}"]) from None
    if data is None:
        raise ConfigError([f"{source}: file is empty (expected a mapping with at least 'groups')"])
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}: top level must be a mapping of options (got {_type_name(data)})"]
        )
    data, unexpanded = expand_environment(data, os.environ if environ is None else environ)
    problems = [f"{source}: {key_path(loc)}: {reason}" for loc, reason in unexpanded]
    if problems:
        raise ConfigError(problems)
    if "source_path" in data:
        # Set by load_config, never by the file.
        data = {k: v for k, v in data.items() if k != "source_path"}
        problems.append(f"{source}: source_path: unknown key")
    try:
        config = SiteConfig.model_validate(data, context={"source": source})
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, source))
    if problems:
        raise ConfigError(problems)
    return config


def format_validation_error(exc: ValidationError, source: str = DEFAULT_SOURCE) -> list[str]:
    """Return one "SOURCE: key.path: reason (got VALUE)" line per problem in `exc`."""
    lines = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        if error["type"] == "config_problems":
            for loc, reason, value in ctx["problems"]:
                lines.append(_line(source, loc, reason, value, show_input=True))
            continue
        loc = tuple(part for part in error["loc"] if part not in UNION_TAGS)
        if loc and loc[-1] == "[key]":
            lines.append(_line(source, loc[:-1], "names must be strings", None, show_input=False))
            continue
        reason, show_input = _reason(error, loc)
        lines.append(_line(source, loc, reason, error.get("input"), show_input))
    return lines


def _line(source: str, loc: tuple[Any, ...], reason: str, value: Any, show_input: bool) -> str:
    path = key_path(loc)
    text = f"{source}: {path}: {reason}" if path else f"{source}: {reason}"
    if show_input and value is not NO_VALUE:
        text += f" (got {_show(value)})"
    return text


# Short messages for pydantic's error types; ctx values fill the braces.
_MESSAGES = {
    "missing": "required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
}


def _reason(error: Any, loc: tuple[Any, ...]) -> tuple[str, bool]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "invalid":
        return ctx["reason"], ctx.get("show_input", True)
    if kind == "missing":
        return "required", False
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(loc), False
    if kind in ("too_short", "string_too_short"):
        n = ctx.get("min_length", 1)
        if n == 1:
            return "must not be empty", True
        unit = "characters" if kind == "string_too_short" else "items"
        return f"must have at least {n} {unit}", True
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}", True
    template = _MESSAGES.get(kind)
    if template is not None:
        return template.format(**{k: _number(v) for k, v in ctx.items()}), True
    message = str(error.get("msg", kind))
    return message.removeprefix("Value error, ").rstrip("."), True


def _number(value: Any) -> Any:
    # Bounds of float fields read better as "must be >= 0" than ">= 0.0".
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _known_keys(parent: tuple[Any, ...]) -> list[str]:
    if not parent:
        return [name for name in SiteConfig.model_fields if name != "source_path"]
    if len(parent) == 2 and parent[0] == "groups":
        return list(GroupConfig.model_fields)
    if len(parent) == 2 and parent[0] == "routes":
        return list(RouteConfig.model_fields)
    if len(parent) == 2 and parent[0] == "listen":
        fields = ListenAddress.model_fields
        return ["address", *(name for name in fields if name not in ListenAddress.FROM_ADDRESS)]
    return []


def _suggestion(loc: tuple[Any, ...]) -> str:
    if not loc or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], _known_keys(loc[:-1]), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
