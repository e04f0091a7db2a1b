"""Site configuration: pydantic models, YAML loading and readable validation errors (master only).

    load_config(path) -> SiteConfig              read a YAML file and validate it
    parse_config(text, source="site.yaml") -> SiteConfig
    ConfigError                                   str(e): one "SOURCE: key.path: reason (got VALUE)"
                                                  line per problem; e.problems: the lines as a list
    SiteConfig.warnings                           valid but suspicious settings, same line form

Models: SiteConfig (site, listen, backlog, groups, routes, default_group, access_log, error_log,
log_level, graceful_timeout, source_path), ListenAddress (kind, host, port, path, mode;
.display()), GroupConfig (app, python_path, chdir, env, processes, threads, stack_size,
display_name; .title(group)), RouteConfig (prefix | exact | regex, host, methods, group, mount,
environ; .describe()). docs/configuration.md is generated from them by
`python -m groupserver.config.docs`.
"""

from groupserver.config.loader import ConfigError, load_config, parse_config
from groupserver.config.models import GroupConfig, ListenAddress, RouteConfig, SiteConfig

__all__ = [
    "ConfigError",
    "GroupConfig",
    "ListenAddress",
    "RouteConfig",
    "SiteConfig",
    "load_config",
    "parse_config",
]
