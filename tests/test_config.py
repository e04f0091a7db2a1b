"""Config models, YAML loader and error messages: each problem is one readable line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupserver.config import (
    ConfigError,
    GroupConfig,
    ListenAddress,
    RouteConfig,
    SiteConfig,
    load_config,
    parse_config,
)
from groupserver.config.docs import EXAMPLE_YAML, render_markdown
from groupserver.config.units import format_size, parse_size

ROOT = Path(__file__).resolve().parents[1]

TWO_GROUPS = """\
groups:
  main: {app: "site.wsgi:application"}
  admin: {app: "site.wsgi:application", threads: 3}
"""


def parse(text: str) -> SiteConfig:
    return parse_config(textwrap.dedent(text))


def with_groups(text: str) -> str:
    return TWO_GROUPS + textwrap.dedent(text)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- valid configs and defaults --------------------------------------------------------------


def test_minimal_config_gets_documented_defaults():
    config = parse("groups: {main: {app: site.wsgi}}")
    assert config.site == "groupserver"
    assert [a.display() for a in config.listen] == ["127.0.0.1:8000"]
    assert config.backlog == 2048
    assert config.routes == []
    assert config.log_level == "info"
    assert config.graceful_timeout == 30.0
    assert config.source_path is None
    group = config.groups["main"]
    assert (group.processes, group.threads, group.stack_size) == (1, 1, None)
    assert group.python_path == [] and group.env == {}
    assert group.display_name == "(wsgi:%{GROUP})"
    assert group.title("main") == "(wsgi:main)"
    assert config.warnings == []


def test_single_group_is_the_default_group():
    assert parse("groups: {main: {app: x}}").default_group == "main"
    assert parse(TWO_GROUPS).default_group is None


def test_full_config_round_trip():
    config = parse(
        with_groups(
            """
        listen: ":9000"
        default_group: main
        routes:
          - {prefix: /admin/, group: admin, methods: "get, post", host: Admin.Example.COM.}
          - {regex: "^/u/\\\\d+$", group: admin, environ: {newrelic.app_name: x, level: 3}}
        """
        )
    )
    assert [a.display() for a in config.listen] == ["0.0.0.0:9000"]
    first, second = config.routes
    assert first.methods == ["GET", "POST"]
    assert first.host == "admin.example.com"
    assert first.describe() == "prefix /admin/ host admin.example.com methods GET,POST -> admin"
    assert second.environ == {"newrelic.app_name": "x", "level": "3"}
    assert second.describe() == "regex ^/u/\\d+$ -> admin"


def test_models_can_be_built_in_code():
    config = SiteConfig(
        groups={"main": GroupConfig(app="x:app")},
        routes=[RouteConfig(prefix="/", group="main")],
    )
    assert config.routes[0].describe() == "prefix / -> main"


def test_group_scalars_are_accepted_in_list_and_mapping_fields():
    config = parse(
        """
        groups:
          main: {app: x, python_path: /srv/app, env: {WORKERS: 4, RATIO: 0.5, NAME: a}}
        """
    )
    group = config.groups["main"]
    assert group.python_path == ["/srv/app"]
    assert group.env == {"WORKERS": "4", "RATIO": "0.5", "NAME": "a"}


@pytest.mark.parametrize(
    "app", ["site.wsgi", "site.wsgi:application", "pkg.mod:app.wsgi", "/srv/site.wsgi", "app.py"]
)
def test_app_forms_accepted(app):
    assert parse(f"groups: {{main: {{app: {app!r}}}}}").groups["main"].app == app


# --- listen ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "host", "port", "path", "shown"),
    [
        ("127.0.0.1:8000", "tcp", "127.0.0.1", 8000, "", "127.0.0.1:8000"),
        ("localhost:80", "tcp", "localhost", 80, "", "localhost:80"),
        (":8000", "tcp", "0.0.0.0", 8000, "", "0.0.0.0:8000"),
        ("[::1]:8000", "tcp", "::1", 8000, "", "[::1]:8000"),
        ("[::]:0", "tcp", "::", 0, "", "[::]:0"),
        ("unix:/run/site.sock", "unix", "", 0, "/run/site.sock", "unix:/run/site.sock"),
    ],
)
def test_listen_strings_parsed(text, kind, host, port, path, shown):
    config = parse(f"listen: [{text!r}]\ngroups: {{main: {{app: x}}}}")
    (address,) = config.listen
    assert (address.kind, address.host, address.port, address.path) == (kind, host, port, path)
    assert address.mode is None
    assert address.display() == shown


@pytest.mark.parametrize(
    ("mode", "expected"),
    [('"0660"', 0o660), ("0600", 0o600), ('"755"', 0o755), ("0", 0), ("7", 7), ("'0o640'", 0o640)],
)
def test_unix_socket_mode_is_octal(mode, expected):
    config = parse(
        f"listen: {{address: 'unix:/tmp/s.sock', mode: {mode}}}\ngroups: {{main: {{app: x}}}}"
    )
    assert config.listen[0].mode == expected


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            "':99999'",
            "listen[0]: port must be 0-65535 (expected HOST:PORT, [IPV6]:PORT, :PORT or "
            "unix:/PATH) (got ':99999')",
        ),
        ("'::1:80'", "listen[0]: IPv6 addresses go in brackets, e.g. '[::1]:8000' (got '::1:80')"),
        ("'[zz]:80'", "listen[0]: not an IPv6 address: 'zz' (got '[zz]:80')"),
        ("'8000'", "listen[0]: expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH (got '8000')"),
        ("'unix:'", "listen[0]: unix socket path is empty (got 'unix:')"),
        ("{mode: '0660'}", "listen[0]: needs an 'address' key"),
        (
            "{address: ':80', mode: '0660'}",
            "listen[0]: mode, owner and group apply to unix sockets only",
        ),
        (
            "{address: 'unix:/s', mode: '0999'}",
            "listen[0].mode: must be an octal permission mode such as '0660' (got '0999')",
        ),
        (
            "{address: 'unix:/s', mode: 660}",
            "listen[0].mode: must be an octal permission mode between '0000' and '0777' "
            "(quote it) (got 660)",
        ),
        (
            "{address: 'unix:/s', owners: x}",
            "listen[0].owners: unknown key (did you mean 'owner'?)",  # had no suggestion
        ),
        ("[]", "listen: must not be empty (got [])"),
        ("[':80', '0.0.0.0:80']", "listen[1]: duplicate of listen[0] (got '0.0.0.0:80')"),
    ],
)
def test_listen_errors(listen, message):
    assert problems(f"listen: {listen}\ngroups: {{main: {{app: x}}}}") == [f"site.yaml: {message}"]


def test_listen_address_display_in_code():
    assert ListenAddress(kind="unix", path="/x.sock").display() == "unix:/x.sock"


# --- field errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("{app: x, threads: 0}", "groups.main.threads: must be >= 1 (got 0)"),
        ("{app: x, threads: 1001}", "groups.main.threads: must be <= 1000 (got 1001)"),
        ("{app: x, processes: '3'}", "groups.main.processes: must be an integer (got '3')"),
        ("{app: x, threads: 2.5}", "groups.main.threads: must be an integer (got 2.5)"),
        ("{app: x, threads: true}", "groups.main.threads: must be an integer (got true)"),
        ("{app: x, thread: 3}", "groups.main.thread: unknown key (did you mean 'threads'?)"),
        ("{app: x, colour: red}", "groups.main.colour: unknown key"),
        ("{threads: 2}", "groups.main.app: required"),
        (
            "{app: 'not an app'}",
            "groups.main.app: must be 'package.module:callable' or a path "
            "to a .wsgi/.py file (got 'not an app')",
        ),
        ("{app: x, env: {A: [1]}}", "groups.main.env.A: must be a string (got [1])"),
        ("{app: x, display_name: ''}", "groups.main.display_name: must not be empty (got '')"),
        ("[x]", "groups.main: must be a mapping (got ['x'])"),
        (
            "{app: x, stack_size: 32K}",
            "groups.main.stack_size: must be >= 64K (C code run by request threads needs stack) "
            "(got '32K')",
        ),
        (
            "{app: x, stack_size: 100000}",
            "groups.main.stack_size: must be a multiple of 4K (some platforms require whole "
            "pages) (got 100000)",
        ),
        (
            "{app: x, memory: {soft: 1G, hard: 512M}}",
            "groups.main.memory: soft must be below hard (got soft 1G, hard 512M)",
        ),
        (
            "{app: x, memory: {soft: 512M, hard: 512M}}",
            "groups.main.memory: soft must be below hard (got soft 512M, hard 512M)",
        ),
        (
            "{app: x, stack_size: lots}",
            "groups.main.stack_size: must be a size such as 262144, '256K', '1M' or '1G' "
            "(got 'lots')",
        ),
    ],
)
def test_group_field_errors(group, message):
    assert problems(f"groups: {{main: {group}}}") == [f"site.yaml: {message}"]


@pytest.mark.parametrize("umask", ['"0027"', "0027", "'27'", "'0o27'"])
def test_umask_is_octal(umask):
    assert parse(f"umask: {umask}\ngroups: {{main: {{app: x}}}}").umask == 0o27


@pytest.mark.parametrize(
    ("top", "message"),
    [
        (
            "log_level: loud",
            "log_level: must be one of 'debug', 'info', 'warning' or 'error' (got 'loud')",
        ),
        ("backlog: 0", "backlog: must be >= 1 (got 0)"),
        ("graceful_timeout: -1", "graceful_timeout: must be >= 0 (got -1)"),
        ("grups: {}", "grups: unknown key (did you mean 'groups'?)"),
        ("source_path: /etc/x", "source_path: unknown key"),
        ("routes: {prefix: /}", "routes: must be a list (got {'prefix': '/'})"),
        ("site: ''", "site: must not be empty (got '')"),
        ("site: a/b", "site: must not contain '/' or control characters (got 'a/b')"),
        ('site: "a\\tb"', "site: must not contain '/' or control characters (got 'a\\tb')"),
        (
            "stats: {listen: nowhere}",
            "stats.listen: expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH (got 'nowhere')",
        ),
        # passed, and then every worker's start failed in the master, for ever
        (
            "forwarded_allow_ips: ['10.0.0.0/8', garbage]",
            "forwarded_allow_ips[1]: must be an address, a CIDR such as '10.0.0.0/8', or '*' "
            "(got 'garbage')",
        ),
        (
            "forwarded_allow_ips: 10.0.0.0/33",
            "forwarded_allow_ips[0]: must be an address, a CIDR such as '10.0.0.0/8', or '*' "
            "(got '10.0.0.0/33')",
        ),
        # was masked to 0o237 without a word
        (
            "umask: 99999",
            "umask: must be an octal permission mode between '0000' and '0777' (quote it) "
            "(got 99999)",
        ),
        # unquoted, these are decimal numbers: 22 was taken as 0o026, 77 as 0o115
        ("umask: 22", "umask: must be quoted to be read as octal: '022' (got 22)"),
        ("umask: 77", "umask: must be quoted to be read as octal: '077' (got 77)"),
        ("umask: 8", "umask: must be an octal permission mode such as '0660' (quote it) (got 8)"),
    ],
)
def test_top_level_field_errors(top, message):
    assert problems(f"{top}\ngroups: {{main: {{app: x}}}}") == [f"site.yaml: {message}"]


def test_groups_required_and_not_empty():
    assert problems("site: x") == ["site.yaml: groups: required"]
    assert problems("groups: {}") == ["site.yaml: groups: at least one group is required"]


def test_groups_and_worker_processes_are_capped_for_the_whole_site():
    """The scoreboard (shared memory made before the first fork) has a column per group and a
    slot per process: a site that would not fit is refused by `check` as well as `serve`."""
    many = "\n".join(f"  g{i}: {{app: x}}" for i in range(33))
    assert problems(f"groups:\n{many}\ndefault_group: g0") == [
        "site.yaml: groups: at most 32 groups (got 33)"
    ]
    assert parse(
        "groups:\n" + "\n".join(f"  g{i}: {{app: x}}" for i in range(32)) + "\ndefault_group: g0"
    )
    big = "groups: {a: {app: x, processes: 1000}, b: {app: x, processes: {min: 1, max: 25}}}"
    assert problems(big + "\ndefault_group: a") == [
        "site.yaml: groups: at most 1024 worker processes in all groups together (got 1025; an "
        "adaptive group counts its max)"
    ]


def test_group_name_characters():
    assert problems("groups: {'my group': {app: x}}") == [
        "site.yaml: groups.my group: group names use letters, digits, '_', '.', '-' "
        "(got 'my group')"
    ]


def test_every_problem_is_reported_on_its_own_line():
    lines = problems(
        """
        groups:
          main: {app: x, threads: 0, processes: 0}
          admin: {app: x, stack_size: 1K}
        log_level: loud
        """
    )
    assert lines == [
        "site.yaml: groups.main.processes: must be >= 1 (got 0)",
        "site.yaml: groups.main.threads: must be >= 1 (got 0)",
        "site.yaml: groups.admin.stack_size: must be >= 64K (C code run by request threads "
        "needs stack) (got '1K')",
        "site.yaml: log_level: must be one of 'debug', 'info', 'warning' or 'error' (got 'loud')",
    ]


# --- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("{group: main}", "routes[0]: needs exactly one of prefix, exact, regex (got none)"),
        (
            "{prefix: /a, regex: b, group: main}",
            "routes[0]: needs exactly one of prefix, exact, regex (got prefix and regex)",
        ),
        ("{prefix: a, group: main}", "routes[0].prefix: must start with '/' (got 'a')"),
        ("{exact: 'a/b', group: main}", "routes[0].exact: must start with '/' (got 'a/b')"),
        (
            "{exact: '/a?b=1', group: main}",
            "routes[0].exact: must be a path without '?' or '#' (the query string is not "
            "matched) (got '/a?b=1')",
        ),
        (
            "{regex: '(', group: main}",
            "routes[0].regex: invalid regex: missing ), unterminated subpattern at position 0 "
            "(got '(')",
        ),
        ("{exact: /a, mount: true, group: main}", "routes[0]: mount works with prefix routes only"),
        ("{prefix: /a, mount: 1, group: main}", "routes[0].mount: must be true or false (got 1)"),
        ("{prefix: /a}", "routes[0].group: required"),
        (
            "{prefix: /a, group: main, method: GET}",
            "routes[0].method: unknown key (did you mean 'methods'?)",
        ),
        (
            "{prefix: /a, group: main, methods: ['GE T']}",
            "routes[0].methods: not an HTTP method: 'GE T' (got ['GE T'])",
        ),
        (
            "{prefix: /a, group: main, methods: []}",
            "routes[0].methods: must list at least one method (leave methods out to allow any) "
            "(got [])",
        ),
        (
            "{prefix: /a, group: main, host: 'a.com:80'}",
            "routes[0].host: must not include a port (ports are ignored when matching) "
            "(got 'a.com:80')",
        ),
        (
            "{prefix: /a, group: main, host: '*'}",
            "routes[0].host: must be a host name ('example.com') or a wildcard ('*.example.com'); "
            "leave host out to match any host (got '*')",
        ),
        (
            "{prefix: /a, group: main, host: 'a..com'}",
            "routes[0].host: must be a host name ('example.com') or a wildcard ('*.example.com'); "
            "leave host out to match any host (got 'a..com')",
        ),
        (
            "{prefix: /a, group: main, environ: {PATH_INFO: /x}}",
            "routes[0].environ: 'PATH_INFO' is set by the server per request",
        ),
        ("{prefix: /a, group: nope}", "routes[0].group: no such group 'nope' (defined: main)"),
    ],
)
def test_route_errors(route, message):
    assert problems(f"groups: {{main: {{app: x}}}}\nroutes: [{route}]") == [f"site.yaml: {message}"]


def test_route_naming_undefined_group_lists_defined_groups():
    lines = problems(
        with_groups(
            """
        routes:
          - {prefix: /admin, group: admin}
          - {prefix: /x, group: x}
        default_group: missing
        """
        )
    )
    assert lines == [
        "site.yaml: default_group: no such group 'missing' (defined: main, admin)",
        "site.yaml: routes[1].group: no such group 'x' (defined: main, admin)",
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("10.0.0.1", "10.0.0.1"),
        ("[::1]", "[::1]"),
        ("under_score-ok.example", "under_score-ok.example"),
    ],
)
def test_route_host_patterns_normalized(host, expected):
    config = parse(
        f"groups: {{main: {{app: x}}}}\nroutes: [{{prefix: /, host: '{host}', group: main}}]"
    )
    assert config.routes[0].host == expected


def test_route_methods_uppercased_deduplicated_and_split():
    config = parse(
        "groups: {main: {app: x}}\nroutes: [{prefix: /, methods: 'get post GET', group: main}]"
    )
    assert config.routes[0].methods == ["GET", "POST"]


# --- environment variables -------------------------------------------------------------------


def test_environment_references_fill_values_and_take_the_type_an_option_needs():
    config = parse_config(
        textwrap.dedent(
            """
            listen: [":${PORT:-8000}", {address: "unix:/run/${SITE}.sock", mode: "${MODE}"}]
            groups:
              main:
                app: ${APP}
                processes: ${WEB_CONCURRENCY:-2}
                threads: "${THREADS:-4}"
                preload: ${PRELOAD}
                env: {LITERAL: "$${HOME} stays", EMPTY: "${UNSET_GS:-}"}
            """
        ),
        environ={
            "PORT": "9000",
            "SITE": "shop",
            "MODE": "0660",
            "APP": "shop.wsgi:app",
            "WEB_CONCURRENCY": "3",
            "PRELOAD": "true",
        },
    )
    assert [a.display() for a in config.listen] == ["0.0.0.0:9000", "unix:/run/shop.sock"]
    assert config.listen[1].mode == 0o660  # "0660" stays text: not the integer 660
    main = config.groups["main"]
    assert (main.app, main.processes, main.threads, main.preload) == ("shop.wsgi:app", 3, 4, True)
    assert main.env == {"LITERAL": "${HOME} stays", "EMPTY": ""}


def test_an_environment_reference_that_cannot_be_filled_names_the_key():
    with pytest.raises(ConfigError) as info:
        parse_config(
            'listen: ["127.0.0.1:${PORT}"]\n'
            'groups: {main: {app: "${APP", threads: "${2X}", processes: "${N}"}}\n',
            environ={"N": "several"},
        )
    assert info.value.problems == [
        "site.yaml: listen[0]: environment variable PORT is not set "
        "(${PORT:-default} gives a default)",
        "site.yaml: groups.main.app: a ${ without its closing }",
        "site.yaml: groups.main.threads: ${2X} is not ${NAME} or ${NAME:-default}",
    ]
    assert problems('groups: {main: {app: x, processes: "${N:-several}"}}') == [
        "site.yaml: groups.main.processes: must be an integer (got 'several')"
    ]


def test_a_yaml_alias_that_contains_itself_is_an_error_not_a_crash():
    """The environment walk used to recurse into it for ever (RecursionError)."""
    [line] = problems("groups: {main: {app: x, threads: &a [*a]}}")
    assert line.startswith("site.yaml: groups.main.threads: must be an integer (got [")


_TEXT = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "${A}",
            "${A:-1}",
            "$${A}",
            "${",
            "x:y",
            "/a",
            "unix:/tmp/a",
            "127.0.0.1:0",
            "[::1]:0",
            "4K",
            "auto",
            "0660",
            "main",
            "^/a(",
            "10s",
            "-1",
            "1e9",
        ]
    ),
)
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**70), st.floats(), _TEXT)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=8,
)
_SITES = st.fixed_dictionaries(
    {
        "groups": st.dictionaries(
            st.sampled_from(["main", "admin", "a b", ""]),
            st.dictionaries(st.sampled_from(sorted(GroupConfig.model_fields)), _VALUE, max_size=6),
            min_size=1,
            max_size=3,
        )
    },
    optional={
        "routes": st.lists(
            st.dictionaries(st.sampled_from(sorted(RouteConfig.model_fields)), _VALUE, max_size=4),
            max_size=3,
        ),
        "listen": st.lists(_TEXT, max_size=2),
        "default_group": _TEXT,
    },
).flatmap(
    lambda base: st.dictionaries(
        st.sampled_from(sorted(SiteConfig.model_fields)), _VALUE, max_size=3
    ).map(lambda extra: {**extra, **base})
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_SITES)
def test_any_yaml_of_the_sites_shape_loads_or_is_a_config_error(site):
    """Never another exception: a wrong file must be a message naming the key, not a crash
    (a run of 4,000 examples found none at 44b807b)."""
    try:
        parse_config(yaml.safe_dump(site), environ={"A": "5"})
    except ConfigError:
        pass


# --- warnings --------------------------------------------------------------------------------


def test_small_stack_size_is_a_warning():
    config = parse("groups: {main: {app: x, stack_size: 128k}}")
    assert config.groups["main"].stack_size == 131072
    assert config.warnings == [
        "site.yaml: groups.main.stack_size: below 256K: deep recursion in C code (regex, json, "
        "template engines) may crash the worker (got 128K)"
    ]
    assert parse("groups: {main: {app: x, stack_size: 256K}}").warnings == []


def test_concurrency_above_threads_is_a_warning():
    config = parse("groups: {main: {app: x, threads: 2, concurrency: 4}}")
    assert config.warnings == [
        "site.yaml: groups.main.concurrency: above threads: a worker runs at most its 2 threads' "
        "requests at once (got 4)"
    ]
    assert parse("groups: {main: {app: x, threads: 4, concurrency: 4}}").warnings == []


def test_shadowed_routes_are_warnings():
    config = parse(
        with_groups(
            """
        default_group: main
        routes:
          - {prefix: /admin, group: admin}
          - {prefix: /admin/users, group: main}
          - {exact: /admin, group: main}
          - {exact: /about, group: main}
          - {exact: /about, group: admin}
          - {prefix: /api, host: api.example.com, methods: [GET], group: admin}
          - {prefix: /api/v2, host: api.example.com, methods: [GET], group: main}
          - {prefix: /api/v3, host: other.example.com, group: main}
          - {regex: "^/admin/\\\\d+", group: main}
          - {regex: "^/(admin|x)", group: main}
        """
        )
    )
    assert config.warnings == [
        "site.yaml: routes[1]: never matches: routes[0] (prefix /admin -> admin) comes first and "
        "matches every request it would",
        "site.yaml: routes[2]: never matches: routes[0] (prefix /admin -> admin) comes first and "
        "matches every request it would",
        "site.yaml: routes[4]: never matches: routes[3] (exact /about -> main) comes first and "
        "matches every request it would",
        "site.yaml: routes[6]: never matches: routes[5] (prefix /api host api.example.com "
        "methods GET -> admin) comes first and matches every request it would",
        "site.yaml: routes[8]: never matches: routes[0] (prefix /admin -> admin) comes first and "
        "matches every request it would",
    ]


def test_unused_group_and_unreachable_default_are_warnings():
    config = parse(
        """
        groups: {main: {app: x}, admin: {app: x}, spare: {app: x}}
        default_group: admin
        routes: [{prefix: /, group: main}]
        """
    )
    assert config.warnings == [
        "site.yaml: groups.spare: never used: no route names it and it is not default_group",
        "site.yaml: default_group: never used: routes[0] (prefix / -> main) matches every request",
    ]


def test_no_warnings_for_a_sensible_site():
    config = parse(
        with_groups(
            """
        default_group: main
        routes:
          - {prefix: /admin/public/, host: www.example.com, group: main}
          - {prefix: /admin/, group: admin}
          - {exact: /admin, group: admin}
        """
        )
    )
    assert config.warnings == []


# --- YAML and files --------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column():
    assert problems("groups:\n  main: {app: x\n") == [
        "site.yaml: line 3 column 1: expected ',' or '}', but got '<stream end>'"
    ]


def test_duplicate_yaml_key_is_an_error():
    assert problems("groups:\n  main: {app: x}\n  main: {app: y}\n") == [
        "site.yaml: line 3 column 3: duplicate key 'main' (first at line 2)"
    ]


def test_yaml_merge_keys_still_work():
    config = parse(
        """
        groups:
          main: &base {app: x, threads: 4}
          admin: {<<: *base, threads: 2}
        """
    )
    assert config.groups["admin"].threads == 2 and config.groups["admin"].app == "x"


def test_empty_file_and_non_mapping():
    assert problems("") == ["site.yaml: file is empty (expected a mapping with at least 'groups')"]
    assert problems("# only a comment\n") == [
        "site.yaml: file is empty (expected a mapping with at least 'groups')"
    ]
    assert problems("- a\n- b\n") == [
        "site.yaml: top level must be a mapping of options (got a list)"
    ]


def test_load_config_names_the_file_and_sets_source_path(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("groups: {main: {app: x, threads: 0}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: groups.main.threads: must be >= 1 (got 0)"
    path.write_text("groups: {main: {app: x}}\n")
    assert load_config(path).source_path == str(path)


def test_unix_socket_paths_are_relative_to_the_yaml_file(tmp_path):
    """As log files, chdir and control_socket are: not to wherever serve was started."""
    path = tmp_path / "site.yaml"
    path.write_text(
        "listen: ['unix:run/site.sock', '127.0.0.1:0', 'unix:/abs/site.sock']\n"
        "stats: {listen: 'unix:stats.sock'}\n"
        "groups: {main: {app: x}}\n"
    )
    config = load_config(path)
    assert [a.display() for a in config.listen] == [
        f"unix:{tmp_path / 'run' / 'site.sock'}",
        "127.0.0.1:0",
        "unix:/abs/site.sock",
    ]
    assert config.stats.listen == f"unix:{tmp_path / 'stats.sock'}"


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


def test_warnings_name_the_source():
    config = parse_config("groups: {main: {app: x, stack_size: 64K}}", source="prod.yaml")
    assert config.warnings[0].startswith("prod.yaml: groups.main.stack_size: below 256K")


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (262144, 262144),
        ("262144", 262144),
        ("256K", 262144),
        ("256k", 262144),
        ("256KB", 262144),
        ("256KiB", 262144),
        ("1M", 1 << 20),
        ("1mib", 1 << 20),
        ("1G", 1 << 30),
        ("2T", 2 << 40),
        ("1.5M", 3 << 19),
        (" 512 K ", 512 << 10),
        ("100B", 100),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "K", "1X", "-1", "1KK", "1 M B", True, None, [1]])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size():
    assert [format_size(n) for n in (0, 1000, 1024, 262144, 1 << 20, 3 << 30)] == [
        "0",
        "1000",
        "1K",
        "256K",
        "1M",
        "3G",
    ]


# --- docs and shipped configs ----------------------------------------------------------------


def test_docs_example_loads_without_warnings():
    assert parse_config(EXAMPLE_YAML).warnings == []


def test_docs_configuration_md_is_generated_from_models():
    text = render_markdown()
    for name in [*GroupConfig.model_fields, *RouteConfig.model_fields, "graceful_timeout"]:
        assert f"| `{name}` |" in text
    # a listener's keys beside its address (kind, host, port and path are parsed from it)
    listen = text.split("## listen", 1)[1].split("\n## ", 1)[0]
    for name in set(ListenAddress.model_fields) - {"kind", "host", "port", "path"}:
        assert f"| `{name}` |" in listen, name
    assert "source_path" not in text
    docs = ROOT / "docs" / "configuration.md"
    assert docs.read_text() == text, (
        "run: python -m groupserver.config.docs > docs/configuration.md"
    )


CONFIG_FILES = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.skipif(not CONFIG_FILES, reason="no configs/*.yaml yet")
@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    load_config(path)


# --- who accepts: front.accept ---------------------------------------------------------------


ONE_GROUP = "groups: {main: {app: x}}\n"


@pytest.mark.parametrize(
    ("text", "accepting"),
    [
        (ONE_GROUP, "main"),  # one group: it accepts itself
        (ONE_GROUP + "front: {accept: front}", None),
        (with_groups("routes: [{prefix: /admin, group: admin}]\ndefault_group: main"), None),
        (with_groups("routes: [{prefix: /, group: admin}]"), "admin"),  # every request
        (with_groups("routes: [{prefix: /admin, group: admin}]"), "admin"),  # the rest: 404
        (with_groups("routes: [{prefix: /admin, group: admin}]\nfront: {accept: main}"), "main"),
    ],
)
def test_front_accept_resolves_to_a_group_or_the_front(text, accepting):
    assert parse(text).accepting_group == accepting


def test_front_accept_errors_name_the_key():
    assert problems(ONE_GROUP + "front: {accept: mian}") == [
        "site.yaml: front.accept: not 'front', 'auto' or a group name (defined: main) (got 'mian')"
    ]
    proxied = ONE_GROUP + "listen: [{address: '127.0.0.1:8000', proxy_protocol: true}]"
    assert problems(proxied + "\nfront: {accept: main}") == [
        "site.yaml: front.accept: a listener has proxy_protocol, which only the front reads; use "
        "'front' (got 'main')"
    ]
    assert parse(proxied).accepting_group is None  # auto keeps the front for PROXY listeners


def test_front_processes_without_a_front_is_a_warning():
    assert parse(ONE_GROUP + "front: {processes: 2}").warnings == [
        "site.yaml: front.processes: no front process runs: group 'main' accepts connections "
        "itself (front.accept)"
    ]
    assert problems(ONE_GROUP + "front: {processes: 0}") == [
        "site.yaml: front.processes: must be >= 1 (got 0)"
    ]
