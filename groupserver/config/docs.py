"""Generate docs/configuration.md from the config models, so the docs cannot drift from them.

python -m groupserver.config.docs > docs/configuration.md
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from groupserver.config.front import FrontConfig
from groupserver.config.lifecycle import MemoryLimits, ProcessRange
from groupserver.config.limits import GroupLimits, SiteLimits
from groupserver.config.models import (
    MIN_STACK_SIZE,
    WARN_STACK_SIZE,
    DocType,
    GroupConfig,
    ListenAddress,
    RouteConfig,
    SiteConfig,
)
from groupserver.config.monitoring import GovernorConfig, StatsConfig
from groupserver.config.units import format_size

__all__ = ["EXAMPLE_YAML", "render_markdown"]

EXAMPLE_YAML = """\
site: mysite
listen: ["127.0.0.1:8000", {address: "unix:/run/mysite.sock", mode: "0660"}]
groups:
  main:   {app: "mysite.wsgi:application", processes: 1, threads: 5}
  volume: {app: "mysite.wsgi:application", processes: 3, threads: 5}
  admin:  {app: "mysite.wsgi:application", threads: 3, stack_size: 512K}
routes:
  - {prefix: /admin/, group: admin}
  - {regex: "^/api/v1/(search|feed)", methods: [GET], group: volume,
     environ: {newrelic.app_name: "mysite (volume)"}}
default_group: main
"""

_SIMPLE_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}
_MODEL_NAMES = {
    ListenAddress: "address",
    GroupConfig: "group",
    RouteConfig: "route",
    FrontConfig: "front",
    SiteLimits: "limits",
    GroupLimits: "limits",
}


def _type_text(annotation: Any) -> str:
    """Name a field's type for people writing YAML."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        for item in metadata:
            if isinstance(item, DocType):
                return item.text
        return _type_text(base)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(_type_text(arg) for arg in options)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list of {_plural(_type_text(item))}"
    if origin is dict:
        _key, value = typing.get_args(annotation)
        return f"mapping of name to {_type_text(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _MODEL_NAMES.get(annotation, annotation.__name__)
    return _SIMPLE_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(text: str) -> str:
    return text + "es" if text.endswith("s") else text + "s"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen) and item.min_length == 1:
            parts.append("not empty")
        elif isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"length >= {item.min_length}")
    return ", ".join(parts)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "see its section"
    if isinstance(value, list) and value and isinstance(value[0], ListenAddress):
        value = [address.display() for address in value]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _row(name: str, type_text: str, default: str, description: str) -> str:
    cells = (f"`{name}`", type_text, default, description)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _table(
    model: type[BaseModel], skip: tuple[str, ...] = (), first: tuple[str, ...] = ()
) -> list[str]:
    """The model's keys as a markdown table; `first`: rows that go before them."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |", *first]
    for name, field in model.model_fields.items():
        if name in skip or field.exclude:
            continue
        type_text = _type_text(field.annotation if not field.metadata else _rebuild(field))
        bounds = _bounds(field)
        if bounds:
            type_text += f" ({bounds})"
        lines.append(_row(name, type_text, _default_text(field), field.description or ""))
    return lines


def _rebuild(field: FieldInfo) -> Any:
    # Pydantic moves Annotated metadata into FieldInfo.metadata; put DocType markers back.
    markers = [item for item in field.metadata if isinstance(item, DocType)]
    return typing.Annotated[(field.annotation, *markers)] if markers else field.annotation


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def render_markdown() -> str:
    """Return docs/configuration.md: every option of site.yaml, section by section."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m groupserver.config.docs > docs/configuration.md` from",
        "     groupserver/config/models.py; edit the models, not this file. -->",
        "",
        "groupserver reads one YAML file (`groupserver serve site.yaml`). Every problem is",
        "reported with its key path, one per line, e.g.",
        "`site.yaml: groups.admin.threads: must be >= 1 (got 0)`;",
        "a file with any error is refused as a whole. Valid but suspicious settings (a route that",
        "can never match, a group nothing routes to, a small thread stack) are logged as warnings.",
        "",
        "```yaml",
        EXAMPLE_YAML.rstrip("\n"),
        "```",
        "",
        "Any value may name environment variables of the process that reads the file:",
        '`${NAME}`, or `${NAME:-default}` when it may be unset (`listen: [":${PORT:-8000}"]`,',
        "`processes: ${WEB_CONCURRENCY:-2}`). A value that is one reference and nothing else reads",
        "as the integer, decimal number or true/false its text spells (so it fits an integer",
        "option; `0660` stays text), and in a `{...}` flow mapping it needs quotes",
        '(`{processes: "${WEB_CONCURRENCY:-2}"}`). `$${` is a literal `${`; keys are never',
        "expanded. An unset variable without a default is an error naming the key. A reload (HUP)",
        "reads the environment the master started with; `check` reads its own: run it with the",
        "one `serve` gets (a systemd `EnvironmentFile`, say).",
        "",
        "## site (top level)",
        "",
        _doc(SiteConfig),
        "",
        *_table(SiteConfig),
        "",
        "## listen",
        "",
        _doc(ListenAddress),
        "",
        *_table(
            ListenAddress,
            skip=ListenAddress.FROM_ADDRESS,
            first=(_row("address", "string", "required", ListenAddress.ADDRESS_DESCRIPTION),),
        ),
        "",
        "## groups.&lt;name&gt;",
        "",
        _doc(GroupConfig),
        "",
        *_table(GroupConfig),
        "",
        f"`stack_size` below {format_size(WARN_STACK_SIZE)} is accepted with a warning and below "
        f"{format_size(MIN_STACK_SIZE)} refused: Python code",
        "uses little C stack per call, but regex, json, template engines and C extensions recurse",
        "on it, and overflowing a thread's stack kills the whole worker process. Smaller stacks",
        "only save virtual memory; the kernel backs the pages a thread actually touched.",
        "",
        "## front",
        "",
        _doc(FrontConfig),
        "",
        *_table(FrontConfig),
        "",
        "## limits",
        "",
        _doc(SiteLimits),
        "",
        *_table(SiteLimits),
        "",
        "### processes: {min, max}",
        "",
        _doc(ProcessRange),
        "",
        *_table(ProcessRange),
        "",
        "### memory",
        "",
        _doc(MemoryLimits),
        "",
        *_table(MemoryLimits),
        "",
        "## groups.&lt;name&gt;.limits",
        "",
        _doc(GroupLimits),
        "",
        *_table(GroupLimits),
        "",
        "## stats",
        "",
        _doc(StatsConfig),
        "",
        *_table(StatsConfig),
        "",
        "## memory_governor",
        "",
        _doc(GovernorConfig),
        "",
        *_table(GovernorConfig),
        "",
        "## routes[]",
        "",
        _doc(RouteConfig),
        "",
        *_table(RouteConfig),
        "",
        "A route that an earlier route fully covers (for example `prefix: /admin/x` after",
        "`prefix: /admin` with no host or method restriction) is reported as a warning.",
        "",
        "## Sizes",
        "",
        "Sizes are a byte count (`262144`) or a number with a binary unit, case-insensitive and",
        "with an optional `B`/`iB`: `256K` = `256KB` = `256KiB` = 262144, `1M`, `1G`.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
