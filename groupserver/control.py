"""The control socket: `groupserver ctl` commands, answered by the master (unix socket, 0600).

One JSON object per line each way. Requests: {"cmd": "reload"}, {"cmd": "stop"},
{"cmd": "scale", "group": G, "processes": N}, {"cmd": "recycle", "group": G},
{"cmd": "stats"}. Replies: {"ok": true, "message": ...} or {"ok": false, "error": ...};
"stats" replies with the stats document under "stats".
"""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import TYPE_CHECKING, Any

from groupserver.config import SiteConfig
from groupserver.wording import counted

if TYPE_CHECKING:
    from groupserver.master import Master


def control_socket_path(config: SiteConfig) -> str:
    """Where the master listens for control commands."""
    base = os.path.dirname(os.path.abspath(config.source_path or "site.yaml"))
    if config.control_socket:
        return os.path.join(base, config.control_socket)  # relative: to the YAML's directory
    return os.path.join(base, f".{config.site}.ctl")


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
