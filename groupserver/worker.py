"""A daemon-group worker process: ``(wsgi:GROUP)`` in ps.

Forked by the master, a worker imports its group's application and serves requests with the
group's thread count and thread stack size. Its request threads take turns as the *leader*: the
one leader waits in epoll for (a) the group's hand-off channel, (b) keep-alive connections parked
between requests, (c) the wake pipe and (d) the site's listeners when the group accepts connections
itself (front.accept), then hands leadership on and serves itself. What it found joins one line
of work waiting for a thread, oldest first (see _queue_ready). So a request costs no
thread-to-thread hand-over, a connection is taken from the group's queue only by a thread that is
free to serve it, and an idle keep-alive connection holds no thread.

Signals: TERM drain (serve what is queued, then stop), USR2 retire (stop taking work, hand idle
keep-alive connections back to the group), INT/QUIT stop at once.
"""

from __future__ import annotations

import errno
import faulthandler
import gc
import logging
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from groupserver.accesslog import AccessLog, flush_standard_streams, reopen_error_logs
from groupserver.appload import AppLoadError, load_app, prepare_environment
from groupserver.concurrency import LONG_AFTER, ConcurrencyLimit
from groupserver.config import SiteConfig
from groupserver.config.limits import SiteLimits, effective_limits
from groupserver.forwarded import TrustedProxies
from groupserver.handoff import FLAG_NEEDS_HEAD, MAX_DATA, ChannelFull, HandoffChannel, now_us
from groupserver.http.parser import LIMIT_STATUSES, HttpError, Limits, RequestHead, parse_head
from groupserver.http.response import error_response
from groupserver.identity import IdentityError, drop_privileges
from groupserver.lifecycle import InFlight, LifecyclePolicy, WorkerWatch
from groupserver.memory import memory_brought_in, thread_usage
from groupserver.proctitle import set_process_title
from groupserver.routing import Router
from groupserver.scoreboard import (
    MEM_URL_BYTES,
    READY,
    REASON_CODES,
    RETIRING,
    Scoreboard,
    bucket_index,
)
from groupserver.wsgi import (
    Connection,
    FileWrapper,
    base_environ_for,
    client_address,
    run_app,
)

log = logging.getLogger("groupserver.worker")

EXIT_APP_LOAD_FAILED = 3
# From the master: print every thread's stack on stderr. Not SIGWINCH: a terminal sends that to
# the whole foreground process group, workers included, each time it is resized. SIGURG comes
# only to a socket's owner (F_SETOWN, never set here), and its default action is to ignore it.
DUMP_STACKS = signal.SIGURG

_EPOLLIN = select.EPOLLIN
# Keep-alive connections stay registered, edge-triggered, from adoption to close: no epoll_ctl
# per request (a one-shot registration needed one to re-arm, ~5% of a hello-world request).
_CONNECTION_EVENTS = select.EPOLLIN | select.EPOLLET | select.EPOLLRDHUP
_RECV = 65536
# A poll that began this long after the last one returned may report requests that arrived
# meanwhile, while every thread was busy: their queue time is taken from TCP_INFO (µs).
_UNWATCHED_US = 2000

_CHANNEL = object()
_WAKE = object()
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _waiting_since(item: Any) -> int:
    """When a work item began to wait for a thread (µs, now_us()); 0 (first) for a wake-up."""
    return getattr(item, "queue_start_us", 0)


def _thread_cpu(thread_id: int) -> float:
    """CPU seconds a request thread (by its threading ident) has used."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread_id))
    except OSError:
        return 0.0


class _LongRequestWatch:
    """What the requests in the app did while a waiting thread slept LONG_AFTER (standby)."""

    __slots__ = ("started", "cpu", "threads")

    def __init__(self, inflight: dict[int, InFlight]) -> None:
        self.started = time.monotonic()
        self.cpu = time.process_time()
        self.threads = {r.thread_id: (r, _thread_cpu(r.thread_id)) for r in inflight.values()}

    def shares(self, inflight: dict[int, InFlight]) -> tuple[float, float] | None:
        """(process CPU share, the busiest request thread's CPU share) over the wait, when every
        request in the app was there the whole time and for LONG_AFTER; else None."""
        records = list(inflight.values())
        horizon = time.monotonic() - LONG_AFTER
        if not records or any(r.started > horizon for r in records):
            return None
        elapsed = max(time.monotonic() - self.started, 1e-6)
        busiest = 0.0
        for r in records:
            before = self.threads.get(r.thread_id)
            if before is None or before[0] is not r:
                return None  # it started during the wait
            busiest = max(busiest, _thread_cpu(r.thread_id) - before[1])
        return (time.process_time() - self.cpu) / elapsed, busiest / elapsed


class _Accepted:
    """A connection this worker accepted from a listener, not yet read."""

    __slots__ = ("sock", "peer", "local", "queue_start_us")

    def __init__(
        self,
        sock: socket.socket,
        peer: tuple[str, int] | None,
        local: tuple[str, int] | None,
        queue_start_us: int,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.local = local
        self.queue_start_us = queue_start_us  # when its head arrived (TCP), or was accepted


@dataclass
class GroupPlan:
    """What a group's workers derive from the site config, built once in the master.

    A forked worker that ran this code itself would write to the pages of every function and
    object it touched (reference counts, and CPython's warm-up counters in the bytecode), turning
    shared memory into private: about 0.5 MB per worker. Inherited ready-made, it costs nothing.
    """

    router: Router
    limits: SiteLimits
    head_limits: Limits
    route_body_limits: list[int]
    policy: LifecyclePolicy
    proxies: TrustedProxies

    @classmethod
    def build(cls, site: SiteConfig, group: str) -> GroupPlan:
        """The plan for one group of site."""
        config = site.groups[group]
        site_limits = site.limits
        limits = effective_limits(site_limits, config.limits)
        return cls(
            Router(site.routes, site.default_group),
            limits,
            Limits(
                site_limits.max_request_line,
                site_limits.max_header_count,
                site_limits.max_head_size,
            ),
            [
                limits.max_body_size if r.max_body_size is None else r.max_body_size
                for r in site.routes
            ],
            LifecyclePolicy.for_group(config),
            TrustedProxies(site.forwarded_allow_ips, site.forwarded_headers),
        )


@dataclass
class WorkerSpec:
    """Everything a worker needs, prepared by the master before the fork."""

    site: SiteConfig
    group: str
    channels: dict[str, HandoffChannel]
    status_fd: int  # lines to the master: "ready", "retire REASON now|later"
    master_pid: int
    scoreboard: Scoreboard
    slot: int
    group_indices: dict[str, int]
    plan: GroupPlan
    # The site's listening sockets when this group accepts connections itself (front.accept).
    listeners: list[socket.socket] = field(default_factory=list)


def import_group_app(site: SiteConfig, group_name: str) -> Callable[..., Any]:
    """Apply the group's environment and import its app; exits the process when that fails."""
    group = site.groups[group_name]
    base_dir = os.path.dirname(os.path.abspath(site.source_path or "site.yaml"))
    try:
        prepare_environment(group.chdir, group.python_path, group.env, base_dir)
        return load_app(group.app, base_dir)
    except AppLoadError as exc:
        log.error("group %s: cannot load the application: %s", group_name, exc)
    except BaseException:
        log.exception("group %s: importing the application failed", group_name)
    flush_standard_streams()
    os._exit(EXIT_APP_LOAD_FAILED)


def run_worker(spec: WorkerSpec, app: Callable[..., Any] | None = None) -> None:
    """Body of a worker process (app given when a preloading parent imported it); never returns."""
    group = spec.site.groups[spec.group]
    # Python stacks of every thread on stderr when C code crashes the worker, or when the master
    # asks (DUMP_STACKS, only with request_timeout) before it kills a worker stuck with the GIL
    # held. faulthandler writes them from its C signal handler, without the GIL. (The handler
    # for DUMP_STACKS costs a worker ~36 KiB of USS, so only the groups that need it have it.)
    faulthandler.enable(all_threads=True)
    if group.request_timeout is not None:
        faulthandler.register(DUMP_STACKS, all_threads=True)
    set_process_title(group.title(spec.group), f"wsgi:{spec.group}")
    os.write(spec.status_fd, b"pid %d\n" % os.getpid())
    try:
        drop_privileges(group.user, group.group)
    except (IdentityError, OSError) as exc:
        log.error("group %s: cannot switch to user %s: %s", spec.group, group.user, exc)
        flush_standard_streams()
        os._exit(EXIT_APP_LOAD_FAILED)
    if app is None:
        app = import_group_app(spec.site, spec.group)
    # What the import built lives as long as the worker: keep it out of every later collection,
    # so a full collection scans only what requests create (no periodic multi-ms pauses). No
    # gc.collect() first: it would write to every object inherited from the master and turn
    # those shared copy-on-write pages into private memory.
    gc.freeze()
    if group.stack_size:
        threading.stack_size(group.stack_size)
    server = WorkerServer(spec, app)
    code = server.run()
    flush_standard_streams()  # what the app printed: os._exit would lose it
    os._exit(code)


def _alive(pid: int) -> bool:
    """Whether the master still runs (our parent, or our adopter when a preloader forked us)."""
    if os.getppid() == pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def _set_io_timeouts(sock: socket.socket, recv: bytes, send: bytes) -> None:
    # Kernel-side timeouts keep every send/recv a single syscall (a Python-level timeout polls
    # before each one). The socket is already blocking: the front never sets O_NONBLOCK on it.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, recv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, send)


_TCP_INFO_SIZE = 56
_TCPI_LAST_DATA_RECV = 52  # tcp_info: 8 bytes of u8 fields, then 11 u32 before it


def _arrived_us(sock: socket.socket, now: int, within: int | None = None) -> int:
    """When the last bytes arrived on a TCP connection (now_us() clock, from tcp_info's
    milliseconds since then: jiffies precision), but at most `within` µs before now."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return now
    since = int.from_bytes(info[_TCPI_LAST_DATA_RECV:_TCP_INFO_SIZE], "little") * 1000
    return now - (since if within is None else min(since, within))


class WorkerServer:
    """The leader/follower request threads of one worker process."""

    def __init__(self, spec: WorkerSpec, app: Callable[..., Any]) -> None:
        self.spec = spec
        self.group = spec.group
        self.config = spec.site.groups[spec.group]
        self.app = app
        self.channel = spec.channels[spec.group]
        self.channels = spec.channels
        plan = spec.plan
        self.router = plan.router
        self.access_log = AccessLog.open(spec.site.access_log, spec.group)
        self.threads = self.config.threads
        self.limits = limits = plan.limits
        self.head_limits = plan.head_limits
        self.recv_timeout = _timeval(limits.body_timeout)
        self.send_timeout = _timeval(limits.write_timeout)
        self.route_body_limits = plan.route_body_limits
        self.open_conns = 0
        self.at_capacity = False
        self.slot = spec.scoreboard[spec.slot]
        self.group_indices = spec.group_indices
        self.inflight: dict[int, InFlight] = {}
        self.policy = plan.policy
        self.ignore_activity = self.policy.ignore_activity
        jitter = self.config.max_requests_jitter
        self.max_requests = self.config.max_requests + (random.randint(0, jitter) if jitter else 0)
        self.queue_timeout_us = (
            int(self.config.queue_timeout * 1_000_000) if self.config.queue_timeout else 0
        )
        self.retire_requested = False
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.memory_by_path: dict[str, list[int]] = {}  # path -> [count, max, total] growth
        self.constants = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self.threads > 1,
            "wsgi.multiprocess": self.config.max_processes > 1,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # wsgi.input reads b"" at the end of the body, chunked or not; Werkzeug (Flask)
            # reads a body without Content-Length only when this says so.
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": "",
            "groupserver.group": spec.group,
        }
        self.header_keys: dict[str, str] = {}
        self.proxies = plan.proxies
        self.ep = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self.wake_r, _EPOLLIN)
        self.fd_items: dict[int, Any] = {
            self.wake_r: _WAKE,
            self.channel.recv_end.fileno(): _CHANNEL,
        }
        # Sources of new connections, each woken for by one idle worker of the group at a time.
        self.listeners = {s.fileno(): s for s in spec.listeners}
        self.listener_addresses = {
            fd: s.getsockname()[:2] if s.family != socket.AF_UNIX else None
            for fd, s in self.listeners.items()
        }
        for lsock in spec.listeners:
            lsock.setblocking(False)
            self.fd_items[lsock.fileno()] = lsock
        self.new_sources = [self.channel.recv_end.fileno(), *self.listeners]
        for fd in self.new_sources:
            self.ep.register(fd, _EPOLLIN | select.EPOLLEXCLUSIVE)
        self.cond = threading.Condition(threading.Lock())
        self.ready: deque[Any] = deque()
        self.leading = False
        self.backlog = False  # the last look at the queue or a listener found a full batch
        self.polled_us = now_us()  # when the last poll returned
        self.busy = 0
        self.concurrency = ConcurrencyLimit(self.threads, self.config.concurrency)
        self.standby = False  # a thread waits with a timeout to spot blocked requests
        self.parked: dict[int, Connection] = {}
        self.taking = True
        self.mode: str | None = None  # "drain" | "retire" once told to stop
        self.exiting = False
        self.exit_pending = False  # all done but a leader still polling: see _check_exit
        self.done = threading.Event()
        self.next_sweep = 0.0
        self.accept_paused_until = 0.0  # accept failed for want of descriptors or memory

    # -- process life -------------------------------------------------------------------------

    def run(self) -> int:
        """Start the request threads, report ready, wait for the end; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGUSR2, self._on_signal)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_reopen)
        slot = self.slot
        slot.pid = os.getpid()
        slot.threads = self.threads
        slot.concurrency = self.concurrency.value
        slot.last_active = 0.0  # no request that counts yet (inactivity_timeout waits for one)
        slot.heartbeat = time.monotonic()  # before "ready": a request may get stuck at once
        for n in range(self.threads):
            threading.Thread(target=self._thread_main, name=f"request-{n}", daemon=True).start()
        watch = WorkerWatch(self, self.policy, slot)
        slot.state = READY if self.mode is None else RETIRING  # a signal may have come first
        self.report("ready")
        next_parent_check = 0.0
        last, cpu_last = time.monotonic(), time.process_time()
        while not self.done.wait(0.1):
            now = time.monotonic()
            slot.heartbeat = now  # the master kills a worker whose watch stops (request_timeout)
            watch.tick(now)
            cpu_now = time.process_time()
            slot.concurrency = self.concurrency.adjust(now - last, cpu_now - cpu_last)
            last, cpu_last = now, cpu_now
            if now >= next_parent_check:
                next_parent_check = now + 1.0
                if not _alive(self.spec.master_pid):
                    log.error("worker %d: the master is gone; exiting", os.getpid())
                    return 1
        watch.publish_current(time.monotonic())  # the requests served since the last round
        self.publish_memory_by_path()  # the master keeps it after we are gone
        return 0

    def report(self, message: str) -> None:
        """Tell the master something (one line on the status pipe; atomic below PIPE_BUF)."""
        try:
            os.write(self.spec.status_fd, message.encode() + b"\n")
        except OSError:
            pass

    def retire(self, reason: str, now_flag: bool) -> None:
        """Leave the group: at once (stop taking work), or once the master has a replacement."""
        if self.retire_requested and not now_flag:
            return
        self.retire_requested = True
        self.slot.reason = REASON_CODES.get(reason, 0)
        if now_flag:
            self.slot.state = RETIRING
            self.report(f"retire {reason} now")
            if self.mode is None:
                self.mode = "retire"
            self._wake()
        else:
            self.report(f"retire {reason} later")

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The master retires us (USR2: recycle, reload, governor, max_requests, scale down) or
        stops the site (TERM): take no new work; the stats show it at once."""
        self.mode = "retire" if signum == signal.SIGUSR2 and self.mode != "drain" else "drain"
        self.slot.state = RETIRING
        self._wake()

    def _on_quit(self, signum: int, frame: Any) -> None:
        os._exit(0)

    def _on_reopen(self, signum: int, frame: Any) -> None:
        self.access_log.reopen()
        reopen_error_logs()

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    # -- leader/follower ----------------------------------------------------------------------

    def _thread_main(self) -> None:
        cond = self.cond
        while True:
            item = None
            with cond:
                while True:
                    if self.exiting:
                        return
                    if self.busy < self.concurrency.value:
                        # A full batch at the last look at the queue or the listeners: more
                        # may wait there, older than what is ready: look again first.
                        look_first = self.backlog and not self.leading and not self.exit_pending
                        if self.ready and not look_first:
                            item = self.ready.popleft()
                            self.busy += 1
                            if self.busy >= self.concurrency.value:
                                self._keep_watch()
                            break
                        if not self.leading and not self.exit_pending:
                            self.leading = True
                            break
                    elif not self.standby and self.concurrency.value < self.threads:
                        self._stand_by()
                        continue
                    cond.wait()
            if item is None:
                waited, fresh = self._lead()
                with cond:
                    self.leading = False
                    self._queue_ready(waited, fresh)
                    if self.ready and self.busy < self.concurrency.value:
                        item = self.ready.popleft()  # the oldest
                        self.busy += 1
                        # Wake only threads that may start one now (or lead): the others would
                        # wake, find the limit reached and wait again, a switch per poll.
                        wake = min(len(self.ready) + 1, self.concurrency.value - self.busy)
                        if wake > 0:
                            cond.notify(wake)
                        else:
                            self._keep_watch()
                    else:
                        cond.notify()
                if item is None:
                    self._check_exit()
                    continue
            try:
                self._process(item)
            except BaseException:  # a bug of ours: log it, and keep the thread serving
                log.exception("worker %d: unexpected error", os.getpid())
            finally:
                with cond:
                    self.busy -= 1
                self._check_exit()

    def _queue_ready(self, waited: list[Any], fresh: list[Connection]) -> None:
        """Add what a leader found to `ready`, oldest first (cond held).

        fresh: keep-alive connections with a new request, stamped at this poll, so newer than
        everything ready. waited: connections from the group's queue or a listener's accept
        queue, which may have waited longer than some of what is ready (a burst of new
        connections while keep-alive ones keep every thread busy): each goes where its wait
        began (queue_start_us), and wake-ups first.
        """
        ready = self.ready
        for item in waited:
            ready.insert(bisect_right(ready, _waiting_since(item), key=_waiting_since), item)
        ready.extend(fresh)

    def _stand_by(self) -> None:
        """Every allowed request is running (cond held): wait LONG_AFTER, and if they all stayed
        in the app, blocked or one computing, let this thread serve beside them."""
        self.standby = True
        watch = _LongRequestWatch(self.inflight)
        self.cond.wait(LONG_AFTER)
        self.standby = False
        if self.busy >= self.concurrency.value:
            shares = watch.shares(self.inflight)
            if shares is not None:
                self.concurrency.one_more(*shares)

    def _keep_watch(self) -> None:
        """At the limit (cond held): wake a thread to watch for long requests if none does."""
        if self.concurrency.value < self.threads and not self.standby:
            self.cond.notify()

    def _lead(self) -> tuple[list[Any], list[Connection]]:
        """Wait for events as the leader; returns the work found: (waited, fresh), see
        _queue_ready."""
        if self.ready:
            timeout = 0.0  # look, do not wait: there is work to do
        else:
            timeout = 1.0 if self.mode is None else 0.05
        unwatched = now_us() - self.polled_us  # how long nobody polled (every thread busy)
        try:
            events = self.ep.poll(timeout)
        except InterruptedError:
            events = []
        stamp = self.polled_us = now_us()
        waited: list[Any] = []
        fresh: list[Connection] = []
        saw_channel = False
        backlog = False
        # New connections to take now: as many as could start at once beyond the work already
        # waiting here, and at least one, so that they keep their turn among the kept-alive
        # requests. More would hoard them: a sibling worker that is idle could serve them now,
        # and a keep-alive connection stays with the worker that took it.
        room = self.concurrency.value - self.busy - len(self.ready)
        most = room if room > 1 else 1
        for fd, _ev in events:
            item = self.fd_items.get(fd)
            if item is _CHANNEL:
                saw_channel = True
                if self.taking:
                    # New connections wait in the group's queue: take up to `most`, and when that
                    # many were there, look again before serving what is ready (their wait began
                    # earlier, see _queue_ready).
                    found = self.channel.receive_many(most)
                    waited.extend(found)
                    backlog = backlog or len(found) == most
            elif item is _WAKE:
                waited.append(_WAKE)
            elif isinstance(item, Connection):
                with self.cond:  # against _park: an edge is never lost between the two
                    conn = self.parked.pop(fd, None)
                    if conn is None:
                        # Bytes (or the peer's close) arrived while a thread has it: no new
                        # edge will come, so that thread reads again instead of parking it.
                        item.pending = True
                if conn is not None:
                    # Its request waits for a thread from now, or from its arrival when that
                    # was while nobody polled (TCP knows it to a few ms).
                    if unwatched > _UNWATCHED_US and conn.local is not None:
                        conn.queue_start_us = _arrived_us(conn.sock, stamp, unwatched)
                    else:
                        conn.queue_start_us = stamp
                    fresh.append(conn)
            elif self.taking and not self.at_capacity and fd in self.listeners:
                # Like the channel: up to `most`, and look again first when that many were there.
                found = self._accept(item, most)
                waited.extend(found)
                backlog = backlog or len(found) == most
        self.backlog = backlog
        if self.mode == "drain" and self.taking and not saw_channel:
            self._stop_taking()  # the queue is empty and the front is gone
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + 1.0
            self._sweep(now)
        if self.accept_paused_until and now >= self.accept_paused_until:
            self._resume_accepting()
        return waited, fresh

    def _accept(self, lsock: socket.socket, most: int) -> list[_Accepted]:
        accepted = []
        local = self.listener_addresses[lsock.fileno()]
        for _ in range(most):
            try:
                sock, addr = lsock.accept()  # blocking, like a handed-off socket
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # that connection is gone already (ECONNABORTED and the like)
                # Out of descriptors or memory: the listener stays readable, so waking for it
                # again at once would spin. The rest wait in the kernel backlog for a while.
                log.warning("worker %d: accept failed: %s; pausing accepts 1s", os.getpid(), exc)
                self._leave_listeners(pause_until=time.monotonic() + 1.0)
                break
            if local is not None:  # TCP: the head waited in the kernel's accept queue since
                peer = addr[:2]  # it arrived (queue_timeout, and its place among ready work)
                start = _arrived_us(sock, now_us())
            else:
                peer, start = None, now_us()
            accepted.append(_Accepted(sock, peer, local, start))
        return accepted

    def _process(self, item: Any) -> None:
        if item is _WAKE:
            self._on_wake()
        elif isinstance(item, Connection):
            self._on_readable(item)
        elif isinstance(item, _Accepted):
            self._on_accepted(item)
        else:
            self._on_handoff(item)

    def _check_exit(self) -> None:
        if self.mode is None:
            return
        with self.cond:
            if self.exiting:
                return
            if self.busy or self.ready or self.parked or self.taking:
                if self.exit_pending:  # work came back: let a thread lead again
                    self.exit_pending = False
                    self.cond.notify()
                return
            if self.leading:
                # The leader may hold connections it just took from `parked` and has not yet
                # counted in `busy` or `ready`: exiting now would drop them (the client sees a
                # reset). Wake it, let nobody else lead, and it checks again when it returns.
                if not self.exit_pending:
                    self.exit_pending = True
                    self._wake()
                return
            self.exiting = True
            self.cond.notify_all()
        self.done.set()

    # -- connections --------------------------------------------------------------------------

    def _adopt(
        self,
        sock: socket.socket,
        data: bytes,
        peer: tuple[str, int] | None,
        local: tuple[str, int] | None,
    ) -> Connection | None:
        """Take charge of a new socket (handed to us or accepted); None when it is unusable."""
        try:
            _set_io_timeouts(sock, self.recv_timeout, self.send_timeout)
        except OSError:
            sock.close()
            return None
        self._count_conn(1)
        self.slot.taken += 1
        env = base_environ_for(sock, self.constants, peer, local)
        proxies = self.proxies if self.proxies.trusts(env["REMOTE_ADDR"]) else None
        return Connection(sock, data, env, peer, proxies, local)

    def _on_handoff(self, handoff: Any) -> None:
        conn = self._adopt(handoff.sock, handoff.data, handoff.peer, handoff.local)
        if conn is None:
            return
        conn.requests = handoff.served
        conn.queue_start_us = handoff.queue_start_us
        if handoff.flags & FLAG_NEEDS_HEAD and not conn.buf:
            self._park(conn)
            return
        self._serve(conn)

    def _on_accepted(self, new: _Accepted) -> None:
        conn = self._adopt(new.sock, b"", new.peer, new.local)
        if conn is None:
            return
        sock = new.sock
        self.slot.handed[self.group_indices[self.group]] += 1  # into our queue and out at once
        conn.queue_start_us = new.queue_start_us
        try:
            data = sock.recv(_RECV, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self._park(conn)  # accepted before the head arrived: wait for it without a thread
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.buf += data
        self._serve(conn)

    def _on_readable(self, conn: Connection) -> None:
        try:
            # While a head is incomplete, never more than a hand-off can carry (it may be for
            # another group).
            size = min(_RECV, MAX_DATA - len(conn.buf)) if conn.buf else _RECV
            data = conn.sock.recv(size, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self._park(conn)  # an edge for bytes an earlier read already took
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        # More may wait in the socket, and no new edge would say so, unless the request's body
        # is read from the socket (InputStream clears this). Re-reading after every request
        # whose head and body came in one full read instead gave 64 KB POSTs a p99 of 300 ms.
        conn.filled = len(data) == size
        if not conn.buf:
            conn.last_active = time.monotonic()
        conn.buf += data
        self._serve(conn)  # queue_start_us: set when the leader (or _park) queued it

    def _serve(self, conn: Connection) -> None:
        """Serve every complete request in conn's buffer, then park, pass on or close it."""
        while True:
            try:
                parsed = parse_head(conn.buf, self.head_limits)
                if parsed is None:
                    self._park(conn)
                    return
                head, consumed = parsed
                route = self.router.route_for(head.path, head.host, head.method)
                if route is None:
                    self._reject(conn, 404, head)
                    return
                if route.group != self.group:
                    self._pass_on(conn, route.group)
                    return
            except HttpError as exc:
                self._reject(conn, exc.status)
                return
            except Exception:
                self._on_bug(conn, answering=False)
                return
            del conn.buf[:consumed]
            conn.requests += 1
            if self.mode == "drain" or conn.requests == self.limits.max_keepalive_requests:
                head.keep_alive = False
            try:
                keep = self._handle(conn, head, route)
            except Exception:  # run_app answers the app's errors: this is a bug of ours
                self._on_bug(conn, answering=True)
                return
            if not keep:
                self._close(conn)
                return
            if not conn.buf:
                self._park(conn)
                return
            conn.queue_start_us = now_us()
            # The next head (or its start) came with this request: its head_timeout counts from
            # now, not from this one's arrival (a request longer than head_timeout got a 408).
            conn.last_active = time.monotonic()

    def _on_bug(self, conn: Connection, answering: bool) -> None:
        """A bug of ours while serving conn (the app's own errors never get here): the client
        gets a 500 when its request was not being answered yet, and the connection closes."""
        log.exception("worker %d: unexpected error serving a request", os.getpid())
        if not answering:
            self.slot.status[5] += 1
            self._reject(conn, 500)
            return
        self._close(conn)

    def _handle(self, conn: Connection, head: Any, route: Any) -> bool:
        """Serve one request with its bookkeeping; returns whether the connection stays open."""
        slot = self.slot
        start_us = now_us()
        queued = max(0, start_us - conn.queue_start_us) if conn.queue_start_us else 0
        if self.queue_timeout_us and queued > self.queue_timeout_us:
            slot.shed_queue += 1
            try:
                conn.sock.sendall(error_response(503, extra_headers=(("Retry-After", "1"),)))
            except OSError:
                pass
            self.account_answer(conn, head, 503, queued / 1_000_000)  # its time: the wait
            return False
        counts = not head.path.startswith(self.ignore_activity) if self.ignore_activity else True
        wall = time.time()
        if counts:
            slot.last_active = wall
        max_body = (
            self.limits.max_body_size
            if route.index is None
            else self.route_body_limits[route.index]
        )
        ident = threading.get_ident()
        started = time.monotonic()
        record = InFlight(ident, started, head, conn)
        self.inflight[ident] = record  # the main thread publishes the oldest one's URL and age
        busy = slot.busy + 1
        slot.busy = busy
        if busy > slot.peak_busy:
            slot.peak_busy = busy
        usage_before = thread_usage()
        try:
            outcome = run_app(self.app, conn, head, route, self.header_keys, max_body, record)
        finally:
            del self.inflight[ident]
            slot.busy -= 1
        usage_after = thread_usage()
        elapsed = time.monotonic() - started
        growth = memory_brought_in(usage_before, usage_after, self.page_size)
        if growth:
            self._note_growth(head.path, growth)
        self.concurrency.record(elapsed, usage_after.ru_nvcsw - usage_before.ru_nvcsw)
        slot.requests += 1
        slot.app_seconds += elapsed
        slot.app_hist[bucket_index(elapsed)] += 1
        queued_s = queued / 1_000_000
        slot.queue_seconds += queued_s
        slot.queue_hist[bucket_index(queued_s)] += 1
        if counts:
            slot.last_active = wall + elapsed
        if not record.answered:  # else the watchdog answered the client, and counted that
            slot.status[min(outcome.status // 100, 5)] += 1
            if self.access_log.enabled:
                self.access_log.write(head, outcome, elapsed)
        conn.queue_start_us = 0
        if self.max_requests and slot.requests >= self.max_requests and not self.retire_requested:
            log.info(
                "worker %d (group %s): served %d requests (max_requests %d); retiring once "
                "its replacement is ready",
                os.getpid(),
                self.group,
                slot.requests,
                self.max_requests,
            )
            self.retire("max_requests", now_flag=False)
        if record.timed_out:
            if record.answered and slot.answered_busy:
                slot.answered_busy -= 1  # it had its 504, and is not running any more
            return False
        return outcome.keep_alive

    def account_answer(self, conn: Connection, head: Any, status: int, seconds: float) -> None:
        """Count, and write to the access log, an error response the worker answered a parsed
        request with instead of the app (503 at queue_timeout, 504 at request_timeout)."""
        self.slot.status[min(status // 100, 5)] += 1
        if self.access_log.enabled:
            self.access_log.write_error(client_address(conn, head), head, status, seconds)

    def _note_growth(self, path: str, growth: int) -> None:
        """Attribute RSS growth across a request to its path (bounded table)."""
        entry = self.memory_by_path.get(path)
        if entry is None:
            if len(self.memory_by_path) >= 1000:
                smallest = min(self.memory_by_path, key=lambda p: self.memory_by_path[p][2])
                if self.memory_by_path[smallest][2] >= growth:
                    return
                del self.memory_by_path[smallest]
            entry = self.memory_by_path[path] = [0, 0, 0]
        entry[0] += 1
        entry[1] = max(entry[1], growth)
        entry[2] += growth

    def publish_memory_by_path(self) -> None:
        """Copy the paths that grew RSS the most into the scoreboard (main thread)."""
        table = sorted(self.memory_by_path.items(), key=lambda kv: kv[1][2], reverse=True)
        rows = self.slot.mem_urls
        for i in range(len(rows)):
            row = rows[i]
            if i < len(table):
                path, (count, biggest, total) = table[i]
                row.path = path.encode("latin-1", "replace")[: MEM_URL_BYTES - 1]
                row.count, row.max_growth, row.total_growth = count, biggest, total
            else:
                row.count = 0

    def _park(self, conn: Connection) -> None:
        """Wait for conn's next request without holding a thread."""
        if self.mode == "retire":
            self._pass_on(conn, self.group, FLAG_NEEDS_HEAD)
            return
        if self.mode == "drain" and not conn.buf:
            self._close(conn)
            return
        fd = conn.sock.fileno()
        if not conn.buf:
            conn.last_active = time.monotonic()
        elif time.monotonic() - conn.last_active > self.spec.site.limits.head_timeout:
            self._reject(conn, 408)  # a head trickling in byte by byte (slowloris)
            return
        if self.fd_items.get(fd) is not conn:
            self.fd_items[fd] = conn  # first: the leader may see its first edge at once
            try:
                self.ep.register(fd, _CONNECTION_EVENTS)  # reports bytes already there too
            except OSError:
                del self.fd_items[fd]
                self._close(conn)
                return
        with self.cond:  # against _lead: pending is set and checked under the same lock
            if conn.pending or conn.filled:
                conn.pending = conn.filled = False
                conn.queue_start_us = now_us()
                self.ready.append(conn)
                self.cond.notify()
            else:
                self.parked[fd] = conn
                if self.at_capacity:
                    # At the cap with every connection busy, the worker stopped taking new
                    # ones; now one is idle and can make room for the next (_count_conn).
                    self._set_at_capacity(False)

    def _forget(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if fd >= 0 and self.fd_items.get(fd) is conn:
            del self.fd_items[fd]
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def _close(self, conn: Connection) -> None:
        self._forget(conn)
        conn.close()
        self._count_conn(-1)

    def _count_conn(self, delta: int) -> None:
        """Track the connections this worker holds; at the cap, make room or stop taking.

        Taking one more connection at max_connections_per_worker closes the one parked longest
        (idle between requests, or still without its head), as nginx reuses idle keep-alive
        connections: a crowd of idle or silent clients cannot keep every place until its
        timeout. Only when every connection has a request in progress does the worker stop
        taking new ones, until one closes.
        """
        evicted = None
        with self.cond:
            self.open_conns += delta
            self.slot.conns = self.open_conns
            cap = self.limits.max_connections_per_worker
            if delta > 0 and self.open_conns > cap and self.parked:
                evicted = self._idle_parked()
            held = self.open_conns - (evicted is not None)  # its close, below, makes the room
            # While some connection is parked, the next one can take its place: keep taking.
            self._set_at_capacity(held >= cap and not self.parked)
        if evicted is not None:
            self.slot.evicted += 1
            self._close(evicted)

    def _idle_parked(self) -> Connection | None:
        """Take out of `parked` the connection parked longest with no bytes waiting in its
        socket (cond held): one whose next request is already there is not idle, even before
        the poller has said so. Looks at the oldest 32 at most.

        The copy of the oldest entries is taken in one step, and each is taken out with pop():
        the sweep pops expired connections without the lock (nothing adds to `parked` while
        we hold it).
        """
        for fd, conn in list(islice(self.parked.items(), 32)):
            try:
                waiting = conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except OSError:  # nothing there (BlockingIOError), or reset: as good as closed
                waiting = b""
            if not waiting and self.parked.pop(fd, None) is conn:
                return conn
        return None

    def _set_at_capacity(self, full: bool) -> None:
        """Stop or start taking new connections (cond held)."""
        if full == self.at_capacity or not self.taking:
            return
        self.at_capacity = full
        for fd in self.new_sources:
            if full:
                self.ep.unregister(fd)
            else:
                self.ep.register(fd, _EPOLLIN | select.EPOLLEXCLUSIVE)

    def _reject(self, conn: Connection, status: int, head: RequestHead | None = None) -> None:
        """Answer conn with an error status before any app saw its request, and close it; head:
        the request, when it was parsed (a 404 for no route)."""
        if status in LIMIT_STATUSES:
            self.slot.shed_limits += 1
        try:
            conn.sock.sendall(error_response(status))
        except OSError:
            pass
        if self.access_log.enabled:
            if head is None:
                remote, request = conn.base_environ["REMOTE_ADDR"], conn.buf
            else:
                remote, request = client_address(conn, head), head
            waited = now_us() - conn.queue_start_us if conn.queue_start_us else 0
            self.access_log.write_error(remote, request, status, max(0, waited) / 1e6)
        self._close(conn)

    def _pass_on(self, conn: Connection, group: str, flags: int = 0) -> None:
        """Move conn, with its unread bytes, to a group's queue (another group, or our own)."""
        self._forget(conn)
        channel = self.channels.get(group)
        if channel is None or len(conn.buf) > MAX_DATA:
            self._reject(conn, 503)
            return
        try:
            channel.send(
                conn.sock,
                conn.buf,
                conn.queue_start_us or None,
                flags,
                self.limits.write_timeout,
                conn.peer,
                conn.requests,
                conn.local,
            )
            index = self.group_indices.get(group)
            if index is not None:
                self.slot.handed[index] += 1
        except (ChannelFull, OSError) as exc:
            log.warning("cannot hand a connection to group %s: %s", group, exc)
            self._reject(conn, 503)
            return
        conn.close()
        self._count_conn(-1)

    def _sweep(self, now: float) -> None:
        """Close keep-alive connections idle too long; 408 heads that arrive too slowly."""
        expired = []
        for fd, conn in list(self.parked.items()):
            waiting_for_head = conn.buf or not conn.requests  # a new connection's first head
            limit = (
                self.spec.site.limits.head_timeout
                if waiting_for_head
                else self.limits.keepalive_timeout
            )
            if now - conn.last_active > limit and self.parked.pop(fd, None) is not None:
                expired.append(conn)
        for conn in expired:
            if conn.buf:
                self._reject(conn, 408)
            else:
                self._close(conn)

    # -- stopping -----------------------------------------------------------------------------

    def _stop_taking(self) -> None:
        if self.taking:
            self.taking = False
            if self.at_capacity:
                return  # already unregistered
            for fd in self.new_sources:
                try:
                    self.ep.unregister(fd)
                except OSError:
                    pass

    def _accept_the_rest(self) -> None:
        """The site stops (drain) and this group accepts itself: take the connections already
        waiting in the listeners' accept queues, to serve them with the rest, as a front would
        (they are the group's queue; they were reset when the master exited)."""
        room = self.limits.max_connections_per_worker - self.open_conns
        taken: list[Any] = []
        for lsock in self.listeners.values():
            while room > len(taken):
                asked = min(64, room - len(taken))
                found = self._accept(lsock, asked)
                taken.extend(found)
                if len(found) < asked:  # that queue is empty
                    break
        if taken:
            with self.cond:
                self._queue_ready(taken, [])
                self.cond.notify(len(taken))

    def _stop_accepting(self) -> None:
        """Leave the listeners for good (draining: the queue is still served)."""
        self._leave_listeners()
        self.listeners = {}

    def _leave_listeners(self, pause_until: float = 0.0) -> None:
        with self.cond:
            self.accept_paused_until = pause_until
            for fd in self.listeners:
                if fd not in self.new_sources:
                    continue
                self.new_sources.remove(fd)
                if self.taking and not self.at_capacity:
                    try:
                        self.ep.unregister(fd)
                    except OSError:
                        pass

    def _resume_accepting(self) -> None:
        with self.cond:
            self.accept_paused_until = 0.0
            for fd in self.listeners:
                if fd in self.new_sources:
                    continue
                self.new_sources.append(fd)
                if self.taking and not self.at_capacity:
                    self.ep.register(fd, _EPOLLIN | select.EPOLLEXCLUSIVE)

    def _on_wake(self) -> None:
        try:
            while os.read(self.wake_r, 64):
                pass
        except BlockingIOError:
            pass
        if self.mode is None:
            return
        if self.mode == "retire":
            self._stop_taking()
        elif self.listeners:
            self._accept_the_rest()
            self._stop_accepting()
            self.report("accepting done")  # the master can refuse new connections now
        # pop(fd, None): the leader's sweep may take an expired one at the same time
        idle = [c for c in (self.parked.pop(fd, None) for fd in list(self.parked)) if c is not None]
        for conn in idle:
            if conn.buf:
                self.parked[conn.sock.fileno()] = conn  # a head is arriving: let it finish
                continue
            if self.mode == "retire":
                self._pass_on(conn, self.group, FLAG_NEEDS_HEAD)
            else:
                self._close(conn)
