"""systemd integration: socket activation (LISTEN_FDS) and readiness notification (NOTIFY_SOCKET).

Both are plain environment protocols; no libsystemd is needed. The master calls these once at
start-up and removes the variables so the application code in the workers never sees them.
"""

from __future__ import annotations

import os
import socket

SD_LISTEN_FDS_START = 3


def inherited_sockets() -> list[socket.socket]:
    """Listening sockets passed by systemd (Type=notify + .socket unit), in .socket file order."""
    pid = os.environ.pop("LISTEN_PID", None)
    count = os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None or not count.isdigit() or pid != str(os.getpid()):
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


class Notifier:
    """Sends sd_notify datagrams (READY=1, RELOADING=1, STATUS=...) when NOTIFY_SOCKET is set."""

    def __init__(self) -> None:
        address = os.environ.pop("NOTIFY_SOCKET", None)
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self.address = address
        self.sock: socket.socket | None = None
        if address:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, *lines: str) -> None:
        """Send one notification made of the given KEY=VALUE lines (never raises)."""
        if self.sock is None or self.address is None:
            return
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            pass

    def close(self) -> None:
        """Close the notification socket (in forked children)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
