"""The front process: ``groupserver: front [SITE]`` in ps.

It accepts connections on every listener, reads each request head (with limits and a deadline,
never blocking on one client), picks the route's group and hands the socket itself, with the bytes
already read, to that group's channel. It never proxies bytes: after the hand-off the client talks
to the worker directly, so the front is touched once per new connection.

Signals: TERM stop accepting, finish the heads that are arriving and the hand-offs still queued,
then exit; INT/QUIT exit at once.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from groupserver.accesslog import FRONT, AccessLog, flush_standard_streams, reopen_error_logs
from groupserver.config import SiteConfig
from groupserver.forwarded import TrustedProxies
from groupserver.handoff import MAX_DATA, ChannelFull, HandoffChannel, now_us
from groupserver.http.parser import LIMIT_STATUSES, HttpError, Limits, RequestHead, parse_head
from groupserver.http.proxy_protocol import parse_proxy_header
from groupserver.http.response import error_response
from groupserver.proctitle import set_process_title
from groupserver.routing import Router
from groupserver.scoreboard import READY, Scoreboard

log = logging.getLogger("groupserver.front")

_RECV = 65536
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_BATCH = 64


@dataclass(slots=True)
class _Pending:
    sock: socket.socket
    accepted_us: int
    started: float
    buf: bytearray = field(default_factory=bytearray)
    registered: bool = False
    awaiting_proxy: bool = False  # the listener expects a PROXY header first
    peer: tuple[str, int] | None = None
    local: tuple[str, int] | None = None


class FrontServer:
    """Accept, read the head, route, hand off."""

    def __init__(
        self,
        site: SiteConfig,
        listeners: list[socket.socket],
        channels: dict[str, HandoffChannel],
        ready_fd: int,
        master_pid: int,
        scoreboard: Scoreboard,
        slot: int,
        group_indices: dict[str, int],
    ) -> None:
        self.site = site
        self.slot = scoreboard[slot]
        self.group_indices = group_indices
        self.listeners = listeners
        self.channels = channels
        self.router = Router(site.routes, site.default_group)
        limits = site.limits
        self.head_limits = Limits(
            limits.max_request_line, limits.max_header_count, limits.max_head_size
        )
        self.head_timeout = limits.head_timeout
        self.max_pending = limits.max_connections
        self.ready_fd = ready_fd
        self.master_pid = master_pid
        self.ep = select.epoll()
        self.heads: dict[int, _Pending] = {}
        self.queued: dict[str, deque[_Pending]] = {g: deque() for g in channels}
        self.channel_fds = {ch.send_end.fileno(): name for name, ch in channels.items()}
        self.listen_fds = {s.fileno(): s for s in listeners}
        self.local_addresses = {
            s.fileno(): s.getsockname()[:2] for s in listeners if s.family != socket.AF_UNIX
        }
        self.proxy_fds = {
            s.fileno()
            for s, address in zip(listeners, site.listen, strict=False)
            if address.proxy_protocol
        }
        self.access_log = AccessLog.open(site.access_log, FRONT)  # for the requests refused here
        self.proxies = TrustedProxies(site.forwarded_allow_ips, site.forwarded_headers)
        self.accepting = False
        self.accept_paused_until = 0.0  # accept failed for want of descriptors or memory
        self.stopping = False
        self.stop_deadline = 0.0
        self.next_sweep = 0.0

    def run(self) -> int:
        """Serve until told to stop; returns the exit code."""
        set_process_title(f"groupserver: front [{self.site.site}]", "gs-front")
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_reopen)
        for lsock in self.listeners:
            lsock.setblocking(False)
        self._start_accepting()
        self.slot.pid = os.getpid()
        self.slot.state = READY
        os.write(self.ready_fd, b"ready\n")
        self.next_sweep = time.monotonic() + 1.0
        while True:
            try:
                code = self._round()
            except Exception:
                # Like the master's loop: a bug of ours in one round must not drop every
                # connection this front holds. Log it, pause (no busy loop), go on.
                log.exception("front: unexpected error; carrying on")
                time.sleep(0.1)
                continue
            if code is not None:
                return code

    def _round(self) -> int | None:
        """Wait for events and act on them; the exit code once the front is done."""
        try:
            events = self.ep.poll(1.0)
        except InterruptedError:
            events = []
        for fd, _mask in events:
            lsock = self.listen_fds.get(fd)
            if lsock is not None:
                if self.accepting:
                    self._accept(lsock)
            elif fd in self.channel_fds:
                self._flush(self.channel_fds[fd])
            else:
                pending = self.heads.get(fd)
                if pending is not None:
                    self._read_head(pending)
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + 1.0
            self._sweep(now)
            if os.getppid() != self.master_pid:
                return 1
        if self.stopping:
            self._stop_accepting()
            busy = self.heads or any(self.queued.values())
            if not busy or now > self.stop_deadline:
                return 0
        elif (
            not self.accepting
            and now >= self.accept_paused_until
            and self._pending_count() < self.max_pending // 2 + 1
        ):
            self._start_accepting()
        return None

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.head_timeout

    def _on_quit(self, signum: int, frame: Any) -> None:
        flush_standard_streams()
        os._exit(0)

    def _on_reopen(self, signum: int, frame: Any) -> None:
        reopen_error_logs()
        self.access_log.reopen()

    def _pending_count(self) -> int:
        return len(self.heads) + sum(len(q) for q in self.queued.values())

    def _start_accepting(self) -> None:
        if not self.accepting:
            for fd in self.listen_fds:  # one of several front processes wakes per connection
                self.ep.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
            self.accepting = True

    def _stop_accepting(self) -> None:
        if self.accepting:
            for fd in self.listen_fds:
                self.ep.unregister(fd)
            self.accepting = False

    def _accept(self, lsock: socket.socket) -> None:
        tcp = lsock.family != socket.AF_UNIX
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # that connection is gone already (ECONNABORTED and the like)
                # Out of descriptors or memory: the listener stays readable, so accepting again
                # at once would spin. The rest wait in the kernel backlog for a while.
                log.warning("front: accept failed: %s; pausing accepts 1s", exc)
                self.accept_paused_until = time.monotonic() + 1.0
                self._stop_accepting()
                return
            # Make room for this one. Only a connection still waiting for its head can give its
            # place (and with none, as on the fast path, nothing is counted here at all).
            if self.heads and self._pending_count() >= self.max_pending:
                self._drop_oldest_head()
            # No O_NONBLOCK on the socket (it is shared with the worker, which wants it blocking):
            # every call here says MSG_DONTWAIT. TCP_NODELAY comes from the listener.
            pending = _Pending(sock, now_us(), time.monotonic())
            if tcp:
                pending.peer = addr[:2]
                pending.local = self.local_addresses.get(lsock.fileno())
            pending.awaiting_proxy = lsock.fileno() in self.proxy_fds
            self._read_head(pending)
            if self._pending_count() >= self.max_pending and not self.heads:
                # Every connection held has its request, waiting for a group's full queue:
                # the rest wait in the kernel's listen backlog.
                self._stop_accepting()
                return

    def _drop_oldest_head(self) -> None:
        """At max_connections, close the connection that has waited longest for its head (or the
        rest of it), as nginx reuses such connections: a crowd of silent or slow clients cannot
        keep new ones out until head_timeout. Those whose request is complete stay."""
        self._drop(next(iter(self.heads.values())))  # oldest first
        self.slot.evicted += 1

    def _read_head(self, pending: _Pending) -> None:
        sock = pending.sock
        try:
            # Never more than a hand-off can carry: the head (at most max_head_size, below it)
            # and whatever of the body came with it.
            data = sock.recv(min(_RECV, MAX_DATA - len(pending.buf)), socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self._wait_for_head(pending)
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pending)
            return
        pending.buf += data
        try:
            if pending.awaiting_proxy:
                proxied = parse_proxy_header(pending.buf)
                if proxied is None:
                    self._wait_for_head(pending)
                    return
                consumed, pending.peer = proxied
                del pending.buf[:consumed]
                pending.awaiting_proxy = False
            parsed = parse_head(pending.buf, self.head_limits)
            if parsed is None:
                self._wait_for_head(pending)
                return
            head = parsed[0]
            route = self.router.route_for(head.path, head.host, head.method)
        except HttpError as exc:
            self._reject(pending, exc.status)
            return
        except Exception:
            # A bug of ours, never the client's: it gets a 500, and the front (with every
            # connection it holds) lives on.
            log.exception("front: unexpected error reading or routing a request head")
            self._reject(pending, 500)
            return
        if route is None:
            self._reject(pending, 404, head)
            return
        self._forget(pending)
        self._hand_off(pending, route.group)

    def _wait_for_head(self, pending: _Pending) -> None:
        if not pending.registered:
            fd = pending.sock.fileno()
            self.heads[fd] = pending
            self.ep.register(fd, select.EPOLLIN)
            pending.registered = True

    def _forget(self, pending: _Pending) -> None:
        if pending.registered:
            fd = pending.sock.fileno()
            self.heads.pop(fd, None)
            try:
                self.ep.unregister(fd)
            except OSError:
                pass
            pending.registered = False

    def _drop(self, pending: _Pending) -> None:
        self._forget(pending)
        pending.sock.close()

    def _reject(self, pending: _Pending, status: int, head: RequestHead | None = None) -> None:
        """Answer pending with an error status and close it; head: its request, when parsed."""
        if status in LIMIT_STATUSES:
            self.slot.shed_limits += 1
        try:
            pending.sock.send(error_response(status), socket.MSG_DONTWAIT)
        except OSError:
            pass
        self._drop(pending)
        if self.access_log.enabled:
            remote = pending.peer[0] if pending.peer else ""
            if head is not None:
                remote = self.proxies.client_address(remote, head.headers)
            seconds = time.monotonic() - pending.started
            self.access_log.write_error(remote, head or pending.buf, status, seconds)

    def _hand_off(self, pending: _Pending, group: str) -> None:
        queue = self.queued[group]
        if queue or not self._send(pending, group):  # behind others, or the channel is full
            if not queue:
                self.ep.register(self.channels[group].send_end.fileno(), select.EPOLLOUT)
            queue.append(pending)

    def _flush(self, group: str) -> None:
        """The group's queue has room again: send what waited in the front."""
        queue = self.queued[group]
        while queue:
            if not self._send(queue[0], group):
                return
            queue.popleft()
        self.ep.unregister(self.channels[group].send_end.fileno())

    def _send(self, pending: _Pending, group: str) -> bool:
        """Pass pending to the group's channel; False when it is full (pending is still ours)."""
        try:
            self.channels[group].send(
                pending.sock,
                pending.buf,
                pending.accepted_us,
                peer=pending.peer,
                local=pending.local,
            )
        except ChannelFull:
            return False
        except OSError as exc:
            log.error("hand-off to group %s failed: %s", group, exc)
            self._reject(pending, 503)
            return True
        pending.sock.close()
        self.slot.handed[self.group_indices[group]] += 1
        return True

    def _sweep(self, now: float) -> None:
        for pending in [p for p in self.heads.values() if now - p.started > self.head_timeout]:
            if pending.buf:
                self._reject(pending, 408)
            else:
                self._drop(pending)


def run_front(
    site: SiteConfig,
    listeners: list[socket.socket],
    channels: dict[str, HandoffChannel],
    ready_fd: int,
    master_pid: int,
    scoreboard: Scoreboard,
    slot: int,
    group_indices: dict[str, int],
) -> None:
    """Body of the front process; never returns."""
    server = FrontServer(
        site, listeners, channels, ready_fd, master_pid, scoreboard, slot, group_indices
    )
    code = server.run()
    flush_standard_streams()
    os._exit(code)
