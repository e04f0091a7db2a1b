"""Listening sockets, created once by the master and shared by every front process."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from groupserver.config import ListenAddress


class ListenError(Exception):
    """A listener could not be created (address in use, bad path, ...)."""


class SocketInUse(ListenError):
    """A unix socket path another process still listens on (the site running twice, say)."""


def create_listener(address: ListenAddress, backlog: int) -> socket.socket:
    """Bind and listen on one configured address."""
    if address.kind == "unix":
        return _unix_listener(address, backlog)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        # Wake the front only once the first bytes of the request arrived (saves a wake-up and a
        # recv that would find nothing on every new connection).
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        # accepted sockets inherit it: one syscall per site instead of one per connection
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {address.display()}: {exc.strerror}") from exc
    return sock


def parse_address(text: str) -> ListenAddress:
    """A ListenAddress from "host:port" or "unix:/path" (as written in the YAML)."""
    from groupserver.config.models import parse_listen

    return ListenAddress(**parse_listen(text))


def create_unix_listener(path: str, mode: int | None, backlog: int) -> socket.socket:
    """Bind and listen on a unix socket path."""
    return _unix_listener(ListenAddress(kind="unix", path=path, mode=mode), backlog)


def _unix_listener(address: ListenAddress, backlog: int) -> socket.socket:
    path = address.path
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            if listened_on(path):
                # Taking it over would steal the other process's traffic, and its exit would
                # remove our socket file.
                raise SocketInUse(
                    f"cannot listen on {address.display()}: another process listens on it"
                )
            os.unlink(path)  # a stale socket from an earlier run
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ListenError(f"cannot listen on {address.display()}: {exc.strerror}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if address.mode is not None:
            os.chmod(path, address.mode)
        if address.owner is not None or address.group is not None:
            from groupserver.identity import IdentityError, chown_path

            try:
                chown_path(path, address.owner, address.group)
            except IdentityError as exc:
                raise ListenError(f"cannot listen on {address.display()}: {exc}") from None
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {address.display()}: {exc.strerror}") from exc
    return sock


def describe(sock: socket.socket) -> str:
    """A listener's bound address as the user would write it (with the real port for port 0)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    return f"{name[0]}:{name[1]}"


def listened_on(path: str) -> bool:
    """Whether a process accepts connections on this socket path (refused: a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except (TimeoutError, BlockingIOError):
            return True  # listening, with a full backlog
        except OSError:
            return False  # cannot tell (no permission, say): unlinking decides, as before
    return True


def remove_unix_paths(listeners: list[socket.socket]) -> None:
    """Remove the socket files of unix listeners (on exit)."""
    for sock in listeners:
        if sock.family == socket.AF_UNIX:
            with contextlib.suppress(OSError):
                os.unlink(sock.getsockname())


_TCP_INFO_SIZE = 104
_TCPI_UNACKED = 24  # tcp_info: 8 bytes of u8 fields, then rto, ato, snd_mss, rcv_mss, unacked


def tcp_accept_queue(sock: socket.socket) -> int:
    """Connections waiting in a TCP listener's accept queue (0 on error).

    For a listening socket Linux reports the accept queue's length in tcp_info.tcpi_unacked.
    TCP only: the caller picks the TCP listeners once (Master.tcp_listeners), because asking a
    socket its family on every tick builds an enum member each time.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return 0
    return int.from_bytes(info[_TCPI_UNACKED : _TCPI_UNACKED + 4], "little")
