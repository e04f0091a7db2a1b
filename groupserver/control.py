"""The control socket: `groupserver ctl` commands, answered by the master (unix socket, 0600).

One JSON object per line each way. Requests: {"cmd": "reload"}, {"cmd": "stop"},
{"cmd": "scale", "group": G, "processes": N}, {"cmd": "recycle", "group": G},
{"cmd": "stats"}. Replies: {"ok": true, "message": ...} or {"ok": false, "error": ...};
"stats" replies with the stats document under "stats".
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from groupserver.config import SiteConfig
from groupserver.config.environ import expand_environment
from groupserver.wording import counted

if TYPE_CHECKING:
    from groupserver.master import Master


def control_socket_path(config: SiteConfig) -> str:
    """Where the master listens for control commands."""
    return _socket_path(config.source_path or "site.yaml", config.site, config.control_socket)


def _socket_path(yaml_path: str, site: str, control_socket: str | None) -> str:
    base = os.path.dirname(os.path.abspath(yaml_path))
    if control_socket:
        return os.path.join(base, control_socket)  # relative: to the YAML's directory
    return os.path.join(base, f".{site}.ctl")


def control_socket_of(yaml_path: str) -> tuple[str, str] | None:
    """(site, control socket) of the site in yaml_path from its `site` and `control_socket`
    keys alone, for a file that no longer validates as a whole (an edit half done, with the
    site still running); None when even those cannot be read."""
    try:
        text = Path(yaml_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:  # a syntax error elsewhere: the two top-level lines, as written
        data = {}
        for key in _LOCATING_KEYS:
            found = re.search(rf"^{key}:[ \t]*([^\s#]+)", text, re.M)
            if found:
                data[key] = found.group(1).strip("'\"")
    if not isinstance(data, dict):
        return None
    wanted = {key: data[key] for key in _LOCATING_KEYS if key in data}
    expanded, problems = expand_environment(wanted, os.environ)
    site = expanded.get("site", SiteConfig.model_fields["site"].default)
    control = expanded.get("control_socket")
    if problems or not isinstance(site, str) or not isinstance(control, str | None):
        return None
    return site, _socket_path(yaml_path, site, control)


_LOCATING_KEYS = ("site", "control_socket")


class ControlCommands:
    """Turns control requests into master actions."""

    def __init__(self, master: Master) -> None:
        self.master = master

    def handle(self, line: str) -> str:
        """Answer one request line."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
            reply = self._dispatch(request)
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        return json.dumps(reply)

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        master = self.master
        cmd = request.get("cmd")
        if cmd == "stats":
            return {"ok": True, "stats": master.stats.document()}
        if cmd == "reload":
            os.kill(os.getpid(), signal.SIGHUP)
            return {"ok": True, "message": "reloading (see the error log for the outcome)"}
        if cmd == "stop":
            os.kill(os.getpid(), signal.SIGTERM)
            return {"ok": True, "message": "stopping gracefully"}
        if cmd not in ("scale", "recycle"):
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        group = request.get("group")
        if group not in master.config.groups:
            known = ", ".join(master.config.groups)
            return {"ok": False, "error": f"no such group {group!r} (groups: {known})"}
        if cmd == "scale":
            count = request["processes"]
            if type(count) is not int:  # not 2.5, 1e308, "3" or true
                return {"ok": False, "error": f"processes must be an integer (got {count!r})"}
            if count < 1:
                return {"ok": False, "error": "processes must be >= 1"}
            problem = master.set_processes(group, count)
            if problem is not None:
                return {"ok": False, "error": problem}
            return {"ok": True, "message": f"group {group}: {counted(count, 'process')}"}
        n = master.recycle_group(group)
        return {"ok": True, "message": f"group {group}: recycling {counted(n, 'worker')}"}


def send_command(path: str, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Client side: send one request to the control socket and return the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
