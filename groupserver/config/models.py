"""The site configuration as pydantic models: every option with its type, default, bounds and doc.

Validated once, in the master. Checks that span several options (a route naming an undefined
group, a route that can never match) run in `SiteConfig`'s model validator; their problems travel
in one "config_problems" error whose context the loader expands into one line per problem.
Warnings (valid but suspicious settings) land in `SiteConfig.warnings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    Strict,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from groupserver.capacity import MAX_GROUPS, MAX_WORKERS
from groupserver.config.front import FrontConfig
from groupserver.config.lifecycle import MemoryLimits, ProcessRange
from groupserver.config.limits import GroupLimits, Seconds, SiteLimits, Size
from groupserver.config.monitoring import GovernorConfig, StatsConfig
from groupserver.config.units import DocType, format_size, parse_size
from groupserver.identity import IdentityError, needs_root
from groupserver.identity import resolve as resolve_identity

__all__ = [
    "GroupConfig",
    "ListenAddress",
    "RouteConfig",
    "SiteConfig",
    "key_path",
]

GROUP_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
MIN_STACK_SIZE = 64 * 1024
WARN_STACK_SIZE = 256 * 1024
MAX_STACK_SIZE = 1 << 30
DEFAULT_SOURCE = "site.yaml"

# RFC 9110 token characters: what an HTTP method may be made of.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST_LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_APP_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Keys the server itself sets per request; a route's environ must not override them.
_RESERVED_ENVIRON = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "REMOTE_PORT",
    }
)


def problem(reason: str, *, show_input: bool = True) -> PydanticCustomError:
    """Return a validation error whose message is exactly `reason`."""
    return PydanticCustomError("invalid", "{reason}", {"reason": reason, "show_input": show_input})


def key_path(loc: tuple[str | int, ...]) -> str:
    """Format a location as a YAML key path: ("routes", 2, "group") -> "routes[2].group"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- reusable field types ----------------------------------------------------------------------


def _scalar_to_str(value: Any) -> Any:
    # YAML turns `FOO: 1` into an int; environment values are strings, so accept numbers as text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _str_mapping(value: Any) -> Any:
    if isinstance(value, dict):
        return {_scalar_to_str(k): _scalar_to_str(v) for k, v in value.items()}
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]
StrictBool = Annotated[bool, Strict()]
StrMapping = Annotated[dict[str, str], BeforeValidator(_str_mapping)]
NameOrId = Annotated[str | None, BeforeValidator(_scalar_to_str)]  # a user or group: name or number
StrList = Annotated[list[str], BeforeValidator(_one_or_many), DocType("list of strings")]


def _size_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise problem(str(exc)) from None


def _check_stack_size(value: int | None) -> int | None:
    if value is None:
        return None
    if value < MIN_STACK_SIZE:
        raise problem(
            f"must be >= {format_size(MIN_STACK_SIZE)} (C code run by request threads needs stack)"
        )
    if value > MAX_STACK_SIZE:
        raise problem(f"must be <= {format_size(MAX_STACK_SIZE)}")
    if value % 4096:
        raise problem("must be a multiple of 4K (some platforms require whole pages)")
    return value


def _check_concurrency(value: Any) -> str | int:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise problem("must be 'auto' or an integer")
    if not 1 <= value <= 1000:
        raise problem("must be >= 1" if value < 1 else "must be <= 1000")
    return value


Concurrency = Annotated[
    str | int, PlainValidator(_check_concurrency), DocType("'auto', or an integer")
]

StackSize = Annotated[
    int | None,
    BeforeValidator(_size_or_none),
    AfterValidator(_check_stack_size),
    DocType("size: bytes, or '256K', '1M'"),
]


# --- listen ------------------------------------------------------------------------------------

_LISTEN_FORMS = "expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH"


def parse_listen(text: str) -> dict[str, Any]:
    """Parse "host:port", "[::1]:port", ":port" or "unix:/path" into ListenAddress fields."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise problem("unix socket path is empty")
        return {"kind": "unix", "path": path}
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise problem(f"{_LISTEN_FORMS}; IPv6 needs a port after the brackets")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem(f"not an IPv6 address: {host!r}") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise problem(_LISTEN_FORMS)
        if ":" in host:
            raise problem("IPv6 addresses go in brackets, e.g. '[::1]:8000'")
        host = host or "0.0.0.0"
        if not all(_HOST_LABEL_RE.fullmatch(label) for label in host.lower().split(".")):
            raise problem(f"not a host name or IP address: {host!r}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise problem(f"port must be 0-65535 ({_LISTEN_FORMS})")
    return {"kind": "tcp", "host": host, "port": int(port)}


def _proxy_entry(value: str) -> str:
    if value != "*":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise problem("must be an address, a CIDR such as '10.0.0.0/8', or '*'") from None
    return value


class DecimalMode(int):
    """A `umask` or `mode` the YAML file wrote as a plain decimal number (`umask: 22`), as the
    loader marks it: almost never what was meant."""


def _unix_mode(value: Any) -> Any:
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if not digits or any(c not in "01234567" for c in digits):
            raise problem("must be an octal permission mode such as '0660'")
        return int(digits, 8)
    if isinstance(value, DecimalMode):
        # `umask: 22` is the decimal 22 (0o026), never what was meant: say so, do not guess.
        if 7 < value <= 0o777:
            if set(str(value)) <= set("01234567") and value <= 777:
                raise problem(f"must be quoted to be read as octal: '0{value}'")
            raise problem("must be an octal permission mode such as '0660' (quote it)")
        return int(value)
    return value


def _check_unix_mode(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 0o777:
        raise problem("must be an octal permission mode between '0000' and '0777' (quote it)")
    return value


class ListenAddress(BaseModel):
    """One listening socket.

    Written as a string: `"127.0.0.1:8000"`, `"[::1]:8000"` (IPv6 in brackets), `":8000"` (all IPv4
    interfaces, 0.0.0.0) or `"unix:/run/site.sock"`; or as a mapping `{address: ..., mode: "0660"}`
    to set a unix socket's permissions (`mode`, `owner`, `group`) or, for any socket,
    `proxy_protocol`. A single address may be given instead of a list. A
    relative unix socket path is relative to the YAML file's directory, as log files are.

    A unix socket file left by a site that was killed is replaced. One that another process still
    listens on is not: `serve` stops with `cannot listen on unix:PATH: another process listens on
    it`, as it does for a TCP port in use. The same holds for the control socket, so serving a site
    that is running already stops with `site NAME is running already: its control socket PATH
    answers` (a second master would have taken `ctl` and `status` away from the first). The master
    removes the files of the unix sockets it made when it exits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ADDRESS_DESCRIPTION: ClassVar[str] = (
        "where to listen: HOST:PORT, [IPV6]:PORT, :PORT (0.0.0.0) or unix:/PATH"
    )
    FROM_ADDRESS: ClassVar[tuple[str, ...]] = ("kind", "host", "port", "path")  # not YAML keys

    kind: Literal["tcp", "unix"] = Field(description="socket family: tcp or unix")
    host: str = Field("", description="TCP host name or IP address (IPv6 without brackets)")
    port: StrictInt = Field(0, ge=0, le=65535, description="TCP port (0: any free port)")
    path: str = Field("", description="unix socket path")
    mode: Annotated[
        StrictInt | None,
        BeforeValidator(_unix_mode),
        AfterValidator(_check_unix_mode),
        DocType("octal string such as '0660'"),
    ] = Field(None, description="unix socket permissions, e.g. '0660' (unset: umask decides)")
    owner: NameOrId = Field(None, description="unix socket owner (user name or uid)")
    group: NameOrId = Field(None, description="unix socket group (group name or gid)")
    proxy_protocol: StrictBool = Field(
        False,
        description="connections start with a PROXY protocol v1 or v2 header (HAProxy, AWS "
        "NLB); the client address is taken from it",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_listen(data)
        if isinstance(data, dict) and "kind" not in data:
            if "address" not in data:
                raise problem("needs an 'address' key", show_input=False)
            fields = dict(data)
            address = fields.pop("address")
            if not isinstance(address, str):
                raise problem(f"address must be a string ({_LISTEN_FORMS})")
            return {**parse_listen(address), **fields}
        if not isinstance(data, dict):
            raise problem(_LISTEN_FORMS)
        return data

    @model_validator(mode="after")
    def _mode_only_for_unix(self) -> ListenAddress:
        if self.kind == "tcp" and (self.mode, self.owner, self.group) != (None, None, None):
            raise problem("mode, owner and group apply to unix sockets only", show_input=False)
        return self

    def display(self) -> str:
        """Return the address as written: "127.0.0.1:8000", "[::1]:8000", "unix:/run/x.sock"."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def _listen_list(value: Any) -> Any:
    if isinstance(value, (str, dict)):
        return [value]
    return value


# --- groups ------------------------------------------------------------------------------------


def _processes_kind(value: Any) -> str:
    return "range" if isinstance(value, (dict, ProcessRange)) else "count"


# Union branch tags that are not YAML keys (dropped from error key paths by the loader).
UNION_TAGS = frozenset({"count", "range"})


class GroupConfig(BaseModel):
    """A daemon group: a pool of worker processes serving one WSGI application.

    Each worker serves `threads` requests at a time; the group holds `processes` workers.
    """

    model_config = ConfigDict(extra="forbid")

    app: str = Field(
        description="WSGI app: 'package.module:callable' (callable defaults to 'application') "
        "or a path to a .wsgi/.py file that defines `application`",
    )
    python_path: StrList = Field(
        default_factory=list, description="directories put in front of sys.path in the workers"
    )
    chdir: str | None = Field(None, description="working directory of the workers")
    env: StrMapping = Field(
        default_factory=dict, description="environment variables set in the workers (os.environ)"
    )
    processes: Annotated[
        Annotated[StrictInt, Tag("count")] | Annotated[ProcessRange, Tag("range")],
        Discriminator(_processes_kind),
        DocType("integer, or {min, max, idle_timeout}"),
    ] = Field(
        1,
        description="worker processes in the group: a fixed number, or an adaptive range "
        "(see processes below)",
    )
    threads: StrictInt = Field(1, ge=1, le=1000, description="request threads per worker")
    concurrency: Concurrency = Field(
        "auto",
        description="requests a worker runs at once: 'auto' runs all its threads while "
        "requests wait on I/O and fewer while they only compete for the GIL; N: at most N "
        "(and at most threads)",
    )
    stack_size: StackSize = Field(
        None,
        description="stack size of each request thread; below 256K regex, json and C "
        "extensions may overflow it (warning), below 64K is refused (unset: system default)",
    )
    user: NameOrId = Field(
        None, description="run the workers as this user (name or uid; the master must be root)"
    )
    group: NameOrId = Field(
        None, description="run the workers with this group (name or gid; default: the user's)"
    )
    preload: StrictBool = Field(
        False,
        description="import the app once in a per-group parent that forks the workers "
        "(copy-on-write sharing, fast respawn)",
    )
    max_requests: StrictInt = Field(
        0, ge=0, description="a worker retires after this many requests (0: never)"
    )
    max_requests_jitter: StrictInt = Field(
        0, ge=0, description="each worker adds a random 0..N to max_requests"
    )
    inactivity_timeout: Seconds | None = Field(
        None,
        gt=0,
        description="restart a worker idle for this many seconds after it served a request",
    )
    ignore_activity: StrList = Field(
        default_factory=list,
        description="path prefixes (health checks) whose requests don't count as activity",
    )
    request_timeout: Seconds | None = Field(
        None,
        gt=0,
        description="a request running longer recycles its worker (504 if nothing was sent)",
    )
    queue_timeout: Seconds | None = Field(
        None,
        gt=0,
        description="a request that waited longer in the group's queue gets 503 + Retry-After",
    )
    startup_timeout: Seconds = Field(
        60.0, gt=0, description="seconds a new worker has to import the app before it is killed"
    )
    graceful_timeout: Seconds | None = Field(
        None,
        gt=0,
        description="seconds a retiring worker has to finish its requests before it is killed "
        "(unset: the site's graceful_timeout)",
    )
    shutdown_timeout: Seconds | None = Field(
        None,
        gt=0,
        description="seconds the group's workers have to drain on TERM before they are killed "
        "(unset: the site's graceful_timeout)",
    )
    memory_priority: StrictInt = Field(
        0,
        ge=-100,
        le=100,
        description="memory governor: groups with a higher priority give up workers first",
    )
    memory: MemoryLimits = Field(
        default_factory=MemoryLimits, description="per-worker memory limits (see memory below)"
    )
    limits: GroupLimits = Field(
        default_factory=GroupLimits,
        description="overrides of the site's limits and timeouts for this group (see limits)",
    )
    display_name: str = Field(
        "(wsgi:%{GROUP})",
        min_length=1,
        max_length=200,
        description="process title shown by ps/htop; %{GROUP} is replaced by the group name",
    )

    @field_validator("processes")
    @classmethod
    def _check_processes(cls, value: int | ProcessRange) -> int | ProcessRange:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise problem("must be >= 1" if value < 1 else "must be <= 1024")
        return value

    @field_validator("app")
    @classmethod
    def _check_app(cls, value: str) -> str:
        value = value.strip()
        if value.endswith((".py", ".wsgi")) or "/" in value:
            return value
        module, _, attr = value.partition(":")
        if not _APP_MODULE_RE.fullmatch(module) or (attr and not _APP_MODULE_RE.fullmatch(attr)):
            raise problem(
                "must be 'package.module:callable' or a path to a .wsgi/.py file",
            )
        return value

    @property
    def min_processes(self) -> int:
        """Workers the group starts with and never goes below."""
        return self.processes if isinstance(self.processes, int) else self.processes.min

    @property
    def max_processes(self) -> int:
        """Workers the group may grow to."""
        return self.processes if isinstance(self.processes, int) else self.processes.max

    @property
    def adaptive(self) -> ProcessRange | None:
        """The adaptive range, or None for a fixed pool."""
        return None if isinstance(self.processes, int) else self.processes

    def title(self, group_name: str) -> str:
        """Return the process title for a worker of group `group_name`."""
        return self.display_name.replace("%{GROUP}", group_name)


# --- routes ------------------------------------------------------------------------------------


def _methods_list(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return value


def normalize_host_pattern(value: str) -> str:
    """Validate a route's host ("example.com", "*.example.com", "[::1]"); return it lowercased."""
    host = value.strip().lower().rstrip(".")
    name = host[2:] if host.startswith("*.") else host
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise problem("not an IPv6 address") from None
        return host
    if ":" in name:
        raise problem("must not include a port (ports are ignored when matching)")
    if not name or not all(_HOST_LABEL_RE.fullmatch(label) for label in name.split(".")):
        raise problem(
            "must be a host name ('example.com') or a wildcard ('*.example.com'); "
            "leave host out to match any host"
        )
    return host


class RouteConfig(BaseModel):
    """A route: which requests go to which group.

    Routes are tried in order and the first match wins; a request no route matches goes to
    `default_group` (or gets 404 when there is none). Each route has exactly one path match:

    - `prefix`: the path starts with this string (plain string comparison, like an NGINX prefix
      location: `/api` also matches `/apix`; write `/api/` to stop at a segment).
    - `exact`: the path equals this string.
    - `regex`: Python `re.match` on the path: anchored at the start only, so write `$` to anchor
      the end (like NGINX `~`).

    `host` and `methods` narrow a route further. `mount: true` (prefix routes only) serves the
    application under the prefix: the prefix without its trailing `/` becomes SCRIPT_NAME and
    the rest PATH_INFO; a mounted route matches the prefix itself and paths below it
    (`/admin`, `/admin/...`), never `/adminx`. Paths are matched after percent-decoding, with
    repeated slashes merged and `.` and `..` segments resolved, as Apache and NGINX match them
    (`//admin` and `/x/../admin` are `/admin`, never above `/`); the application gets that path.
    """

    model_config = ConfigDict(extra="forbid")

    prefix: str | None = Field(None, description="match paths starting with this string")
    exact: str | None = Field(None, description="match this path only")
    regex: str | None = Field(
        None, description="match paths with this Python regex (re.match: anchored at start)"
    )
    host: str | None = Field(
        None,
        description="only requests for this host: 'example.com' or '*.example.com' (any "
        "subdomain, not example.com itself); case-insensitive, port ignored",
    )
    methods: Annotated[
        list[str] | None, BeforeValidator(_methods_list), DocType("list of strings")
    ] = Field(
        None,
        description="only these request methods, e.g. [GET, POST]; GET includes HEAD",
    )
    group: str = Field(description="name of the group that serves matching requests")
    mount: StrictBool = Field(
        False, description="prefix routes only: move the prefix from PATH_INFO to SCRIPT_NAME"
    )
    environ: StrMapping = Field(
        default_factory=dict,
        description="extra WSGI environ keys for matching requests (like Apache SetEnv)",
    )
    max_body_size: Size | None = Field(
        None, ge=0, description="largest request body for this route (413); unset: the group's"
    )

    @field_validator("prefix", "exact")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise problem("must start with '/'")
        if "?" in value or "#" in value:
            raise problem("must be a path without '?' or '#' (the query string is not matched)")
        return value

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise problem(f"invalid regex: {exc}") from None
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        return None if value is None else normalize_host_pattern(value)

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        methods: list[str] = []
        for method in value:
            method = method.strip().upper()
            if not _TOKEN_RE.fullmatch(method):
                raise problem(f"not an HTTP method: {method!r}")
            if method not in methods:
                methods.append(method)
        if not methods:
            raise problem("must list at least one method (leave methods out to allow any)")
        return methods

    @field_validator("environ")
    @classmethod
    def _check_environ(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key:
                raise problem("keys must not be empty")
            if key in _RESERVED_ENVIRON or key.startswith(("wsgi.", "HTTP_")):
                raise problem(f"{key!r} is set by the server per request", show_input=False)
        return value

    @model_validator(mode="after")
    def _one_path_match(self) -> RouteConfig:
        given = [name for name in ("prefix", "exact", "regex") if getattr(self, name) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise problem(
                f"needs exactly one of prefix, exact, regex (got {got})", show_input=False
            )
        if self.mount and self.prefix is None:
            raise problem("mount works with prefix routes only", show_input=False)
        return self

    def label(self) -> str:
        """Return the route's match as text: "prefix /admin", "regex ^/u/\\d+$ host a.com"."""
        if self.prefix is not None:
            text = f"prefix {self.prefix}" + (" mount" if self.mount else "")
        elif self.exact is not None:
            text = f"exact {self.exact}"
        else:
            text = f"regex {self.regex}"
        if self.host is not None:
            text += f" host {self.host}"
        if self.methods is not None:
            text += f" methods {','.join(self.methods)}"
        return text

    def describe(self) -> str:
        """Return the route as text for logs: "prefix /admin -> admin"."""
        return f"{self.label()} -> {self.group}"


# --- the site ----------------------------------------------------------------------------------


class SiteConfig(BaseModel):
    """The whole site: where to listen, the daemon groups and the routes between them."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(
        "groupserver",
        min_length=1,
        max_length=64,
        description="site name, shown in process titles ('groupserver: master [NAME]') and "
        "naming the control socket ('.NAME.ctl'): no '/' or control characters",
    )
    listen: Annotated[list[ListenAddress], BeforeValidator(_listen_list)] = Field(
        default_factory=lambda: [ListenAddress(kind="tcp", host="127.0.0.1", port=8000)],
        min_length=1,
        description="sockets to accept connections on (see listen below)",
    )
    backlog: StrictInt = Field(
        2048, ge=1, le=65535, description="listen() backlog of each socket (capped by somaxconn)"
    )
    groups: dict[str, GroupConfig] = Field(
        description="the daemon groups by name (letters, digits, '_', '.', '-'); at least "
        f"one, at most {MAX_GROUPS}, with at most {MAX_WORKERS} worker processes in all"
    )
    routes: list[RouteConfig] = Field(
        default_factory=list, description="routes tried in order, first match wins"
    )
    default_group: str | None = Field(
        None,
        description="group for requests no route matches (unset: 404; with exactly one group "
        "defined, that group)",
    )
    access_log: str | None = Field(
        None,
        description="access log: '-' for stdout or a file path, relative to the YAML file's "
        "directory (unset: no access log)",
    )
    error_log: str | None = Field(
        None,
        description="error log file path, relative to the YAML file's directory (unset: stderr)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="error log verbosity"
    )
    front: FrontConfig = Field(
        default_factory=FrontConfig,
        description="who accepts connections: a front process or one group (see front below)",
    )
    limits: SiteLimits = Field(
        default_factory=SiteLimits, description="HTTP limits and timeouts (see limits below)"
    )
    stats: StatsConfig = Field(
        default_factory=StatsConfig, description="the stats listener (see stats below)"
    )
    control_socket: str | None = Field(
        None,
        description="unix socket (mode 0600) for `groupserver ctl` (unset: "
        "'<site file's directory>/.<site>.ctl')",
    )
    memory_governor: GovernorConfig = Field(
        default_factory=GovernorConfig, description="host memory governor (see below)"
    )
    forwarded_allow_ips: Annotated[
        list[Annotated[str, AfterValidator(_proxy_entry)]], BeforeValidator(_one_or_many)
    ] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="peers (addresses or CIDRs, '*' for any) whose forwarding headers "
        "(forwarded_headers) set REMOTE_ADDR and wsgi.url_scheme",
    )
    forwarded_headers: Literal["x-forwarded", "forwarded"] = Field(
        "x-forwarded",
        description="the headers the proxy sets, the only ones read: 'x-forwarded' "
        "(X-Forwarded-For and X-Forwarded-Proto: nginx, HAProxy, most balancers) or "
        "'forwarded' (RFC 7239); the proxy passes the other kind on as the client wrote it",
    )
    umask: Annotated[
        StrictInt | None,
        BeforeValidator(_unix_mode),
        AfterValidator(_check_unix_mode),
        DocType("octal string such as '0022'"),
    ] = Field(None, description="umask of every process (unquoted 22 is decimal: refused)")
    graceful_timeout: StrictFloat = Field(
        30.0, ge=0, le=3600, description="seconds a TERM waits for in-flight requests"
    )
    source_path: str | None = Field(
        None, exclude=True, description="file the config was read from (set by load_config)"
    )

    _warnings: list[str] = PrivateAttr(default_factory=list)
    _accepting_group: str | None = PrivateAttr(None)

    @property
    def warnings(self) -> list[str]:
        """Valid but suspicious settings, one "SOURCE: key: reason" line each."""
        return self._warnings

    @property
    def accepting_group(self) -> str | None:
        """The group whose workers accept connections themselves (None: a front process does)."""
        return self._accepting_group

    def log_files(self) -> dict[str, str]:
        """The log keys that name a file, with their paths (not unset, not '-' for stdout)."""
        named = {"access_log": self.access_log, "error_log": self.error_log}
        return {key: path for key, path in named.items() if path and path != "-"}

    def missing_log_folders(self) -> dict[str, str]:
        """The log keys whose file's directory does not exist, with that directory."""
        folders = {key: os.path.dirname(os.path.abspath(p)) for key, p in self.log_files().items()}
        return {key: folder for key, folder in folders.items() if not os.path.isdir(folder)}

    def host_problems(self) -> list[str]:
        """What this host lacks to run the site, one "key: reason" each: a log file's
        directory, a user or group (of a group's workers or a unix socket) that does not exist."""
        folders = self.missing_log_folders()
        problems = [f"{key}: no such directory {folder}" for key, folder in folders.items()]
        named: list[tuple[str, str | None, str | None]] = []  # (key, user, group)
        for name, g in self.groups.items():
            key = f"groups.{name}"
            named += [(f"{key}.user", g.user, None), (f"{key}.group", None, g.group)]
        for n, a in enumerate(self.listen):
            named += [(f"listen[{n}].owner", a.owner, None), (f"listen[{n}].group", None, a.group)]
        for key, user, group in named:
            if user is None and group is None:
                continue
            try:
                resolve_identity(user, group)
            except IdentityError as exc:
                problems.append(f"{key}: {exc}")
        return problems

    def root_problems(self) -> list[str]:
        """The groups whose workers' user or group needs the master to run as root, which this
        process is not, one "key: reason" each (names that do not exist are host_problems)."""
        problems = []
        for name, group in self.groups.items():
            try:
                if needs_root(group.user, group.group):
                    key = "user" if group.user is not None else "group"
                    problems.append(
                        f"groups.{name}.{key}: switching the workers to it needs the master to "
                        f"run as root (it runs as uid {os.geteuid()})"
                    )
            except IdentityError:
                pass
        return problems

    def _resolve_accept(self) -> tuple[str | None, str | None]:
        """(accepting group, problem) from front.accept, the routes and the listeners."""
        choice = self.front.accept
        proxied = any(address.proxy_protocol for address in self.listen)
        if choice == "front":
            return None, None
        if choice == "auto":
            targets = {route.group for route in self.routes}
            if self.default_group is not None:
                targets.add(self.default_group)
            if len(targets) == 1 and not proxied:
                return targets.pop(), None
            return None, None
        if choice not in self.groups:
            defined = ", ".join(self.groups)
            return None, f"not 'front', 'auto' or a group name (defined: {defined})"
        if proxied:
            return None, "a listener has proxy_protocol, which only the front reads; use 'front'"
        return choice, None

    @field_validator("site")
    @classmethod
    def _check_site_name(cls, value: str) -> str:
        if "/" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            # it names the control socket's file (.NAME.ctl) and shows in ps and the logs
            raise problem("must not contain '/' or control characters")
        return value

    @model_validator(mode="after")
    def _check_site(self, info: ValidationInfo) -> SiteConfig:
        source = (info.context or {}).get("source", DEFAULT_SOURCE)
        problems: list[tuple[tuple[str | int, ...], str, Any]] = []
        warnings: list[str] = []

        def warn(loc: tuple[str | int, ...], reason: str) -> None:
            warnings.append(f"{source}: {key_path(loc)}: {reason}")

        if not self.groups:
            problems.append((("groups",), "at least one group is required", NO_VALUE))
        if len(self.groups) > MAX_GROUPS:
            problems.append(
                (("groups",), f"at most {MAX_GROUPS} groups (got {len(self.groups)})", NO_VALUE)
            )
        workers = sum(group.max_processes for group in self.groups.values())
        if workers > MAX_WORKERS:
            problems.append(
                (
                    ("groups",),
                    f"at most {MAX_WORKERS} worker processes in all groups together (got "
                    f"{workers}; an adaptive group counts its max)",
                    NO_VALUE,
                )
            )
        for name in self.groups:
            if not GROUP_NAME_RE.fullmatch(name):
                problems.append(
                    (("groups", name), "group names use letters, digits, '_', '.', '-'", name)
                )
        defined = ", ".join(self.groups) or "none"
        if self.default_group is None and len(self.groups) == 1:
            self.default_group = next(iter(self.groups))
        if self.default_group is not None and self.default_group not in self.groups:
            problems.append(
                (
                    ("default_group",),
                    f"no such group {self.default_group!r} (defined: {defined})",
                    NO_VALUE,
                )
            )
        for i, route in enumerate(self.routes):
            if route.group not in self.groups:
                problems.append(
                    (
                        ("routes", i, "group"),
                        f"no such group {route.group!r} (defined: {defined})",
                        NO_VALUE,
                    )
                )
        seen: dict[str, int] = {}
        for i, address in enumerate(self.listen):
            shown = address.display()
            if shown in seen:
                problems.append((("listen", i), f"duplicate of listen[{seen[shown]}]", shown))
            seen.setdefault(shown, i)
        self._accepting_group, accept_problem = self._resolve_accept()
        if accept_problem is not None:
            problems.append((("front", "accept"), accept_problem, self.front.accept))
        if self._accepting_group is not None and self.front.processes > 1:
            warn(
                ("front", "processes"),
                f"no front process runs: group {self._accepting_group!r} accepts connections "
                "itself (front.accept)",
            )
        if problems:
            summary = "; ".join(f"{key_path(loc)}: {reason}" for loc, reason, _ in problems)
            raise PydanticCustomError(
                "config_problems", "{summary}", {"summary": summary, "problems": problems}
            )

        for name, group in self.groups.items():
            if group.stack_size is not None and group.stack_size < WARN_STACK_SIZE:
                warn(
                    ("groups", name, "stack_size"),
                    f"below {format_size(WARN_STACK_SIZE)}: deep recursion in C code (regex, "
                    f"json, template engines) may crash the worker (got "
                    f"{format_size(group.stack_size)})",
                )
            if isinstance(group.concurrency, int) and group.concurrency > group.threads:
                warn(
                    ("groups", name, "concurrency"),
                    f"above threads: a worker runs at most its {group.threads} threads' "
                    f"requests at once (got {group.concurrency})",
                )
        # Imported here: routing owns the matching rules, and it imports this module's types.
        from groupserver.routing import find_catch_all, find_shadowed

        for later, earlier in find_shadowed(self.routes):
            warn(
                ("routes", later),
                f"never matches: routes[{earlier}] ({self.routes[earlier].describe()}) comes "
                "first and matches every request it would",
            )
        routed = {route.group for route in self.routes}
        for name in self.groups:
            if name not in routed and name != self.default_group:
                warn(("groups", name), "never used: no route names it and it is not default_group")
        catch_all = find_catch_all(self.routes)
        if self.default_group is not None and catch_all is not None:
            explicit = "default_group" in self.model_fields_set
            if explicit or self.default_group not in routed:
                warn(
                    ("default_group",),
                    f"never used: routes[{catch_all}] "
                    f"({self.routes[catch_all].describe()}) matches every request",
                )
        self._warnings = warnings
        return self


# A cross-field problem whose message already names the offending value.
NO_VALUE = object()
