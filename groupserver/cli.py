"""The ``groupserver`` command line: serve, check, route, status, advise and ctl."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from groupserver import __version__
from groupserver.accesslog import setup_error_log
from groupserver.config import ConfigError, SiteConfig, load_config
from groupserver.listeners import ListenError
from groupserver.routing import Router
from groupserver.wording import counted


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``groupserver`` console script."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # Whoever read the output went away (`groupserver status site.yaml | head`): stop
        # quietly, with the exit status of a process that SIGPIPE ended, as other tools do. What
        # is still buffered goes nowhere, or the interpreter would complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="groupserver",
        description="A WSGI server that routes URLs to daemon groups, each its own prefork pool.",
    )
    parser.add_argument("--version", action="version", version=f"groupserver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument("config", help="the site's YAML file")
        return sub

    command("serve", "serve the site described by a YAML file")
    command("check", "validate a YAML file and print groups and routes")

    route = command("route", "print the route and group that would serve a URL")
    route.add_argument("url", help="a path with optional query ('/admin/users?x=1') or a URL")
    route.add_argument("--host", default=None, help="the Host header (a whole URL's host wins)")
    route.add_argument("--method", default="GET", help="the request method (default GET)")

    status = command("status", "live per-group stats of a running site")
    status.add_argument("--once", action="store_true", help="print once and exit")
    status.add_argument("--json", action="store_true", help="the whole stats document as JSON")
    status.add_argument("--workers", action="store_true", help="a row per worker too")
    status.add_argument(
        "--interval", type=_positive_seconds, default=1.0, help="seconds between updates (1)"
    )

    advise = command("advise", "suggest processes x threads per group")
    advise.add_argument("--json", action="store_true", help="the advice as JSON")

    ctl = command("ctl", "control a running site")
    ctl.add_argument(
        "action",
        choices=["reload", "stop", "scale", "recycle"],
        help="reload (like HUP), stop (like TERM), scale GROUP PROCESSES, recycle GROUP",
    )
    ctl.add_argument("group", nargs="?", help="the group to scale or recycle")
    ctl.add_argument("processes", nargs="?", type=int, help="the group's new number of workers")

    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if args.command in ("status", "advise", "ctl"):
            return _client_despite(exc, args)
        print(exc, file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "check":
        return _check(config, args.config)
    if args.command == "route":
        return _route(config, args.url, args.host, args.method)
    if args.command in ("status", "advise", "ctl"):
        from groupserver.control import control_socket_path

        return _client(config.site, control_socket_path(config), args)
    return _serve(config, args.config)


def _client_despite(problem: ConfigError, args: argparse.Namespace) -> int:
    """status, advise and ctl for a site whose YAML does not validate now (an edit half done):
    the running site is still there to look at, stop or scale; a reload would be refused."""
    from groupserver.control import control_socket_of

    print(problem, file=sys.stderr)
    if args.command == "ctl" and args.action == "reload":
        return 2
    located = control_socket_of(args.config)
    if located is None or not os.path.exists(located[1]):
        return 2
    print(
        f"warning: {args.config} does not validate; asking the running site at {located[1]}",
        file=sys.stderr,
    )
    return _client(*located, args)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < seconds < 86400:  # nan and inf too: time.sleep refuses inf
        raise argparse.ArgumentTypeError(f"must be > 0 and under a day (got {text})")
    return seconds


def _client(site: str, path: str, args: argparse.Namespace) -> int:
    import json
    import time

    from groupserver.control import send_command
    from groupserver.stats.advice import advise
    from groupserver.stats.view import render_table

    def ask(request: dict) -> dict:
        try:
            reply = send_command(path, request)
        except BrokenPipeError as exc:  # the master's end, not our reader's (below)
            raise RuntimeError(f"the master closed the control connection ({exc})") from None
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "failed"))
        return reply

    try:
        if args.command == "ctl":
            request: dict = {"cmd": args.action}
            if args.action in ("scale", "recycle"):
                if not args.group or (args.action == "scale" and args.processes is None):
                    print(
                        f"usage: groupserver ctl SITE.yaml {args.action} GROUP"
                        + (" N" if args.action == "scale" else ""),
                        file=sys.stderr,
                    )
                    return 2
                request["group"] = args.group
                if args.action == "scale":
                    request["processes"] = args.processes
            print(ask(request)["message"])
            return 0
        if args.command == "advise":
            advice = advise(ask({"cmd": "stats"})["stats"])
            if args.json:
                print(json.dumps(advice, indent=1))
            else:
                for item in advice:
                    print(item["text"])
            return 0
        # On a terminal each refresh replaces the last; elsewhere (a pipe, a file) the tables
        # follow one another, a blank line apart, with no screen-clearing codes in the text.
        on_screen = sys.stdout.isatty() and not args.once
        before = "\x1b[H\x1b[2J" if on_screen else ""
        while True:
            doc = ask({"cmd": "stats"})["stats"]
            if args.json:
                print(json.dumps(doc, indent=1 if args.once else None), flush=True)
            else:
                print(before + render_table(doc, args.workers), flush=True)
            if args.once:
                return 0
            if not on_screen:
                before = "\n"
            time.sleep(args.interval)
    except (FileNotFoundError, ConnectionRefusedError):
        print(
            f"groupserver {args.command}: site {site} is not running "
            f"(nothing listens on its control socket {path})",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        raise  # our reader went away: main() ends quietly
    except (OSError, RuntimeError) as exc:
        print(f"groupserver {args.command}: {path}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _serve(config: SiteConfig, name: str) -> int:
    if _print_problems(name, config.host_problems() + config.root_problems()):
        return 2
    setup_error_log(config.error_log, config.log_level)
    from groupserver.master import Master

    try:
        return Master(config).run()
    except ListenError as exc:
        logging.getLogger("groupserver").error("%s", exc)
        return 1


def _print_problems(name: str, problems: list[str], prefix: str = "") -> bool:
    """Print each "key: reason" after the file's name as given, as the config's own errors
    are; whether there were any."""
    for problem in problems:
        print(f"{prefix}{name}: {problem}", file=sys.stderr)
    return bool(problems)


def _check(config: SiteConfig, name: str) -> int:
    if _print_problems(name, config.host_problems()):
        return 2
    # Checking is often done unprivileged, for a site that runs as root.
    _print_problems(name, config.root_problems(), "warning: ")
    print(f"site {config.site}: OK")
    print("listen: " + ", ".join(a.display() for a in config.listen))
    accepting = config.accepting_group
    print(
        f"accept: group {accepting}'s workers (no front process)"
        if accepting
        else "accept: a front process routes every new connection"
    )
    print("groups:")
    for name, group in config.groups.items():
        stack = f"{group.stack_size // 1024}K" if group.stack_size else "default"
        pool = group.adaptive.describe() if group.adaptive else counted(group.processes, "process")
        print(
            f"  {name}: {pool} x {counted(group.threads, 'thread')}, "
            f"stack {stack}, app {group.app}, title {group.title(name)!r}"
        )
    print("routes (first match wins):")
    for n, route in enumerate(config.routes):
        print(f"  {n}: {route.describe()}")
    print(f"  default: {config.default_group or '404'}")
    return 0


def _route(config: SiteConfig, url: str, host: str | None, method: str) -> int:
    from urllib.parse import quote, urlsplit

    from groupserver.http.parser import HttpError, parse_head

    if "://" in url:  # a whole URL, as a proxy sends it (absolute form): its host and path
        try:
            urlsplit(url).hostname  # noqa: B018 (it parses the authority)
        except ValueError as exc:  # "http://[::1/x": an IPv6 address without its "]"
            print(f"groupserver route: {url}: not a URL: {exc}", file=sys.stderr)
            return 2
    # The request a client would send for it, parsed as the server parses it: the server's
    # own checks decide, so what it would refuse with a 400 is not named a group here.
    target = url.split("#", 1)[0]
    if not target.isascii():
        target = quote(target, safe="".join(chr(c) for c in range(33, 127)))
    request = f"{method.upper()} {target} HTTP/1.1\r\nHost: {host or 'localhost'}\r\n\r\n"
    try:
        parsed = parse_head(request.encode("latin-1"))
    except HttpError as exc:
        print(f"{url}: refused with {exc.status} ({exc.reason})")
        return 1
    except UnicodeEncodeError:
        print(f"groupserver route: --host {host!r}: not a host name", file=sys.stderr)
        return 2
    assert parsed is not None  # the request is whole
    head = parsed[0]
    # RFC 9112 3.2.2: a whole URL's host replaces the Host header (--host)
    routed_host = head.host if host is not None or head.target[0] != "/" else None
    match = Router(config.routes, config.default_group).route_for(
        head.path, routed_host, head.method
    )
    if match is None:
        print(f"{url}: no route and no default_group: 404")
        return 1
    where = "default group" if match.index is None else f"routes[{match.index}]: {match.name}"
    print(f"{url}: group {match.group} ({where})")
    if match.script_name:
        print(f"  SCRIPT_NAME={match.script_name!r} PATH_INFO={match.path_info!r}")
    for key, value in match.environ.items():
        print(f"  environ {key}={value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
