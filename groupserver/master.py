"""The master process: ``groupserver: master [SITE]`` in ps.

It imports no application code. It holds every listening socket, every group's hand-off channel
and the scoreboard, forks the front and each group's workers, reaps and replaces them (with
back-off when they die at start-up), scales adaptive groups, and turns signals into actions.
Signal handlers only queue the signal; the main loop does the work, one ``handle_*`` method per
signal.

    TERM        graceful stop: the front stops accepting, workers serve what is queued and what
                is in flight (up to each group's shutdown_timeout), then everything exits 0
    INT, QUIT   quick stop
    HUP         reload: re-read the YAML (an invalid file is logged and the old config kept),
                start a new front and new workers, retire the old ones once the new are ready
    TTIN, TTOU  one worker more / fewer in the scaled group: default_group if set, else the first
                group in the YAML
    USR1        reopen log files (the master's and every child's)

Workers talk back over a status pipe, one line per event: ``ready``, ``retire REASON now`` (it
stops taking work itself: memory_soft, request_timeout) or ``retire REASON later`` (it keeps
serving until the master has a ready replacement, then gets USR2: max_requests, inactivity), so
a group's capacity never drops to zero for a planned recycle.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import select
import signal
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from groupserver.accesslog import flush_standard_streams, reopen_error_logs, setup_error_log
from groupserver.capacity import MAX_GROUPS, MAX_WORKERS
from groupserver.config import ConfigError, SiteConfig, load_config
from groupserver.control import ControlCommands, control_socket_path
from groupserver.front import run_front
from groupserver.governor import Candidate, MemoryGovernor, MemoryMeter
from groupserver.handoff import ChannelFull, Handoff, HandoffChannel
from groupserver.identity import drop_privileges
from groupserver.listeners import (
    ListenError,
    SocketInUse,
    create_listener,
    create_unix_listener,
    describe,
    listened_on,
    parse_address,
    remove_unix_paths,
    tcp_accept_queue,
)
from groupserver.memory import read_memory
from groupserver.proctitle import set_process_title
from groupserver.scaling import GroupScaler, Load
from groupserver.scoreboard import (
    ROLE_FRONT,
    ROLE_WORKER,
    Scoreboard,
    ScoreboardFull,
    Slot,
    accumulate,
    in_flight,
)
from groupserver.spawner import FORK_PARENTS, fork_parent_role, request_spawn, run_fork_parent
from groupserver.stats import prometheus
from groupserver.stats.collect import merge_memory_rows
from groupserver.stats.document import SiteStats
from groupserver.stats.service import SmallService, http_answer, line_answer
from groupserver.supervision import (
    FAILING_AFTER,
    Child,
    GroupState,
    RepeatedErrors,
    StartBackoff,
    describe_status,
)
from groupserver.systemd import Notifier, inherited_sockets
from groupserver.unavailable import refuse_accepted, refuse_queued
from groupserver.warmup import rehearse_logging
from groupserver.wording import counted
from groupserver.worker import (
    DUMP_STACKS,
    GroupPlan,
    WorkerSpec,
    import_group_app,
    run_worker,
)

log = logging.getLogger("groupserver.master")

_HANDLED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)
_QUICK_STOP_GRACE = 3.0
_PR_SET_CHILD_SUBREAPER = 36


class Master:
    """Supervisor of the front and every group's workers."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.generation = 0
        self.children: dict[int, Child] = {}
        self.listeners: list[socket.socket] = []
        self.listeners_inherited = False  # passed by systemd (LISTEN_FDS): their files stay
        self.listeners_shut = False  # a graceful stop refuses new connections (see _maintain_stop)
        # The TCP ones, for backlog() 4 times a second: socket.family builds an enum member on
        # every call, code and objects that a forked worker would otherwise pay for.
        self.tcp_listeners: list[socket.socket] = []
        self.plans: dict[str, GroupPlan] = {}  # per group, for self.config
        self.channels: dict[str, HandoffChannel] = {}
        self.retired_channels: list[HandoffChannel] = []
        self.stranded: dict[HandoffChannel, Handoff] = {}  # per retired channel: target was full
        self.groups: dict[str, GroupState] = {}
        self.group_indices: dict[str, int] = {}
        self.front_totals = Slot()
        self.signals: list[int] = []
        self.errors = RepeatedErrors(log)
        self.stopping: str | None = None  # "graceful" | "quick"
        self.stop_deadline = 0.0
        self.front_backoff = StartBackoff()
        # fork() itself failing (EAGAIN at a pids or process limit, ENOMEM, EMFILE for its pipe):
        # every start waits, 0.5 s, 1 s, 2 s ... 30 s, instead of the master dying of it.
        self.fork_backoff = StartBackoff()
        self.announced_ready = False
        self.reload_started: float | None = None
        self.pid = os.getpid()
        self.scoreboard = Scoreboard()
        self.next_key = -1  # keys of preloaded workers whose pid is not known yet
        self.unknown_exits: dict[int, int] = {}
        self.services: list[SmallService] = []
        self.stats = SiteStats(self)
        self.governor: MemoryGovernor | None = None
        self.meter: MemoryMeter | None = None
        self.governor_next = 0.0
        self.governor_reading: dict[str, object] = {}
        self.memory_pressure = False
        self.control_path: str | None = None
        self.notifier = Notifier()

    # -- start-up -----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything and supervise until stopped; returns the exit code."""
        set_process_title(f"groupserver: master [{self.config.site}]", "gs-master")
        # Workers forked by a preloading parent are re-parented to us, so we reap them all.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if self.config.umask is not None:
            os.umask(self.config.umask)
        self.control_path = control_socket_path(self.config)
        if listened_on(self.control_path):  # first: it says why the ports are taken
            raise self._running_already()
        self.listeners = inherited_sockets()
        self.listeners_inherited = bool(self.listeners)
        if self.listeners:
            log.info("using %d sockets passed by systemd (LISTEN_FDS)", len(self.listeners))
            for sock in self.listeners:
                if sock.family != socket.AF_UNIX:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            for address in self.config.listen:
                self.listeners.append(create_listener(address, self.config.backlog))
        self.tcp_listeners = [s for s in self.listeners if s.family != socket.AF_UNIX]
        self._adopt_groups(self.config)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        for sig in _HANDLED:
            signal.signal(sig, self._on_signal)
        self.poller = select.epoll()
        self.poller.register(self.wake_r, select.EPOLLIN)
        self._start_services()
        accepting = self.config.accepting_group
        log.info(
            "groupserver %s: site %s listening on %s (%s)",
            _version(),
            self.config.site,
            ", ".join(describe(s) for s in self.listeners),
            f"group {accepting}'s workers accept" if accepting else "a front process accepts",
        )
        rehearse_logging(log)  # before the first fork: see groupserver.warmup
        try:
            return self._loop()
        finally:
            for service in self.services:
                service.close()
            # Sockets systemd passed stay: their files are its own, for the next start.
            ours = [] if self.listeners_inherited else self.listeners
            remove_unix_paths(ours + [s.listener for s in self.services])

    def _start_services(self) -> None:
        """The stats listener, the control socket and the memory governor."""
        stats_listen = self.config.stats.listen
        if stats_listen:
            address = parse_address(stats_listen)
            try:
                sock = create_listener(address, 64)
            except ListenError as exc:
                raise type(exc)(f"stats.listen: {exc}") from None
            self.services.append(SmallService(sock, self.poller, http_answer(self._stats_route)))
            log.info("stats on %s", describe(sock))
        try:
            sock = create_unix_listener(self.control_path, 0o600, 16)
        except SocketInUse:
            raise self._running_already() from None
        except ListenError as exc:
            log.warning(
                "no control socket: %s (status, advise and ctl need one: set control_socket to "
                "a writable path)",
                exc,
            )
        else:
            commands = ControlCommands(self)
            self.services.append(SmallService(sock, self.poller, line_answer(commands.handle)))
        self._configure_governor()

    def _running_already(self) -> SocketInUse:
        # The same site runs already: a second master would take its control socket (and
        # remove the file on exit), leaving the first one out of reach of ctl and status.
        return SocketInUse(
            f"site {self.config.site} is running already: its control socket "
            f"{self.control_path} answers"
        )

    def _configure_governor(self) -> None:
        gov = self.config.memory_governor
        if not gov.enabled:
            self.governor = self.meter = None
            return
        if self.governor is None or self.governor.config != gov:
            self.governor = MemoryGovernor(gov)
            self.meter = MemoryMeter(gov)
            log.info(
                "memory governor: source %s, lower %.0f%%, upper %.0f%%",
                self.meter.source,
                gov.lower * 100,
                gov.upper * 100,
            )

    def _stats_route(self, head: object) -> tuple[int, str, bytes]:
        path = getattr(head, "path", "/")
        if path in ("/stats", "/stats/"):
            return 200, "application/json", self.stats.json()
        if path == "/metrics":
            return 200, prometheus.CONTENT_TYPE, prometheus.render(self.stats.document()).encode()
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            missing = [g for g in self.config.groups if not self.ready_workers(g)]
            if missing or self.stopping:
                why = "stopping" if self.stopping else "no ready worker: " + ", ".join(missing)
                return 503, "text/plain", (why + "\n").encode()
            return 200, "text/plain", b"ready\n"
        return 404, "text/plain", b"not found: try /stats, /metrics, /healthz, /readyz\n"

    def workers_of(self, group: str) -> list[Child]:
        """Every live worker of a group (retiring ones included), oldest first."""
        workers = [c for c in self.children.values() if c.role == "worker" and c.group == group]
        return sorted(workers, key=lambda c: c.started)

    def ready_workers(self, group: str) -> list[Child]:
        """Workers of a group that are ready and serving: not retiring, or serving on until their
        replacement is ready (max_requests, inactivity: a failing group may never give one)."""
        return [
            c
            for c in self.children.values()
            if c.role == "worker"
            and c.group == group
            and c.ready
            and (not c.retiring or c.awaiting_replacement)
        ]

    def front_count(self, counter: str) -> int:
        """A counter of the fronts, gone and running: shed_limits (requests refused for a limit,
        site-wide: before routing) or evicted (connections without a head closed at
        max_connections to take a new one)."""
        total = getattr(self.front_totals, counter)
        for child in self.children.values():
            if child.role == "front":
                total += getattr(self.scoreboard[child.slot], counter)
        return total

    def governor_state(self) -> dict[str, object]:
        """What the memory governor saw last, and what it did."""
        if self.governor is None:
            return {"enabled": False}
        return {
            "enabled": True,
            **self.governor_reading,
            "lower": self.config.memory_governor.lower,
            "upper": self.config.memory_governor.upper,
            "decisions": dict(self.governor.decisions),
        }

    def _columns_missing(self, config: SiteConfig) -> str | None:
        """Why config's groups do not fit the scoreboard's group columns, or None."""
        new = [name for name in config.groups if name not in self.group_indices]
        if len(self.group_indices) + len(new) <= MAX_GROUPS:
            return None
        return (
            f"{len(new)} new groups ({', '.join(new)}) would make "
            f"{len(self.group_indices) + len(new)} over the site's life, more than {MAX_GROUPS}: "
            "restart the site instead"
        )

    def _adopt_groups(self, config: SiteConfig) -> None:
        """Create channels, scoreboard indices and state for the config's groups (checked by
        _columns_missing first)."""
        for name, group in config.groups.items():
            if name not in self.channels:
                self.channels[name] = HandoffChannel(name)
            if name not in self.group_indices:
                self.group_indices[name] = len(self.group_indices)
            state = self.groups.setdefault(name, GroupState())
            adaptive = group.adaptive
            if adaptive is None:
                state.scaler = None
            elif state.scaler is None or state.scaler.policy != adaptive:
                state.scaler = GroupScaler(adaptive)
            if adaptive is not None:
                # scale/TTIN/TTOU move an adaptive group's target (scale()): an offset kept
                # from a fixed count would fight the policy
                state.target += state.extra
                state.extra = 0
            state.target = min(max(state.target, group.min_processes), group.max_processes)

    # -- main loop ----------------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            try:
                if self._loop_once():
                    return 0
            except Exception:
                # The master is the site: a bug of ours in one round must not take every
                # group down with it. Log it, pause (no busy loop), go on.
                self.errors.log("its event loop")
                time.sleep(1.0)

    def _loop_once(self) -> bool:
        """One round: supervise, wait for events, act on them; True once fully stopped."""
        try:
            self._maintain()
        except Exception:
            # On its own, so that a bug that recurs in every round's supervision still leaves
            # signals, control commands and reaping working: the site can be stopped or mended.
            self.errors.log("supervision")
        timeout = 0.1 if self.stopping or self.reload_started else 0.25
        try:
            events = self.poller.poll(timeout)
        except InterruptedError:
            events = []
        for fd, _mask in events:
            if fd == self.wake_r:
                self._drain_wake_pipe()
                continue
            for service in self.services:
                if service.owns(fd):
                    service.on_event(fd)
                    break
            else:
                self._on_status_pipe(fd)
        while self.signals:
            self._dispatch(self.signals.pop(0))
        self._reap()
        if self.stopping and not self.children:
            log.info("site %s stopped", self.config.site)
            return True
        return False

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_r, 256):
                pass
        except BlockingIOError:
            pass

    def _dispatch(self, signum: int) -> None:
        handler = {
            signal.SIGTERM: self.handle_term,
            signal.SIGINT: self.handle_quick,
            signal.SIGQUIT: self.handle_quick,
            signal.SIGHUP: self.handle_hup,
            signal.SIGTTIN: self.handle_ttin,
            signal.SIGTTOU: self.handle_ttou,
            signal.SIGUSR1: self.handle_usr1,
        }.get(signum)
        if handler is not None:
            handler()

    # -- signals ------------------------------------------------------------------------------

    def handle_term(self) -> None:
        """Graceful stop: fronts first, then workers drain their queues."""
        if self.stopping:
            return
        log.info("graceful stop")
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self.stopping = "graceful"
        self.stop_deadline = time.monotonic() + self.config.graceful_timeout
        for child in self._children("front") + self._fork_parents():
            self._signal(child, signal.SIGTERM)

    def handle_quick(self) -> None:
        """Quick stop: every child exits now."""
        log.info("quick stop")
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self.stopping = "quick"
        self.stop_deadline = time.monotonic() + _QUICK_STOP_GRACE
        for child in list(self.children.values()):
            self._signal(child, signal.SIGINT)

    def handle_hup(self) -> None:
        """Reload the configuration and the application code."""
        if self.stopping:
            return
        path = self.config.source_path
        if path is None:
            log.error("reload: the configuration was not loaded from a file; ignoring HUP")
            return
        try:
            config = load_config(path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        self.reload(config)

    def reload(self, config: SiteConfig) -> None:
        """Start a new generation with config; the old one retires once the new one is ready."""
        for warning in config.warnings:
            log.warning("%s", warning)
        config = self._keep_restart_only(config)
        config = self._switch_error_log(config)
        problems = config.host_problems() + config.root_problems()
        missing = self._columns_missing(config)
        if missing is not None:
            problems.append(missing)
        if problems:
            log.error("reload refused, keeping the running configuration: %s", "; ".join(problems))
            return
        for name in list(self.channels):
            if name not in config.groups:
                self.retired_channels.append(self.channels.pop(name))
        self._adopt_groups(config)
        self.config = config
        self.plans = {}
        self._configure_governor()
        self.generation += 1
        self.reload_started = time.monotonic()
        self.notifier.notify(
            "RELOADING=1",
            f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
            f"STATUS=reloading: generation {self.generation}",
        )
        self.front_backoff.next_spawn = 0.0
        for state in self.groups.values():
            state.workers_backoff.next_spawn = 0.0
            state.parent_backoff.next_spawn = 0.0
        log.info("reload: starting generation %d", self.generation)

    def _keep_restart_only(self, config: SiteConfig) -> SiteConfig:
        """config with the running values of what only a restart can change: the sockets the
        master made at start-up (and their backlog), the site name (process titles, the control
        socket's file) and the umask every process inherits from the master's start."""
        running = self.config
        kept: dict[str, object] = {}
        if config.listen != running.listen:  # an address, or a socket's mode, owner, PROXY
            kept["listen"] = running.listen
        for key in ("backlog", "site", "control_socket", "umask"):  # umask: set once, inherited
            if getattr(config, key) != getattr(running, key):
                kept[key] = getattr(running, key)
        if config.stats.listen != running.stats.listen:
            kept["stats"] = config.stats.model_copy(update={"listen": running.stats.listen})
        if not kept:
            return config
        names = ", ".join("stats.listen" if key == "stats" else key for key in kept)
        log.warning("reload: changes to %s take effect only after a restart", names)
        return config.model_copy(update=kept)

    def _switch_error_log(self, config: SiteConfig) -> SiteConfig:
        """Apply a new error_log or log_level, in the master and so in every process forked
        from now on; an error_log whose directory is missing keeps the running one."""
        running = self.config
        missing = config.missing_log_folders().get("error_log")
        if missing is not None:
            keep = running.error_log or "stderr"
            log.error("reload: error_log: no such directory %s; keeping %s", missing, keep)
            config = config.model_copy(update={"error_log": running.error_log})
        if (config.error_log, config.log_level) != (running.error_log, running.log_level):
            where = config.error_log or "stderr"
            log.info("reload: error log to %s, level %s", where, config.log_level)  # then switched
            setup_error_log(config.error_log, config.log_level)
        return config

    def handle_ttin(self) -> None:
        """One more worker in the scaled group."""
        self.scale(self._scaled_group(), +1, "TTIN")

    def handle_ttou(self) -> None:
        """One worker fewer in the scaled group (never below one)."""
        self.scale(self._scaled_group(), -1, "TTOU")

    def scale(self, group: str, delta: int, why: str) -> str | None:
        """Change a group's wanted worker count by delta, never below one and never past the
        site's MAX_WORKERS; returns why it did not, or None."""
        state = self.groups[group]
        wanted = self.wanted_processes(group) + delta
        if wanted < 1:
            log.info("%s: group %s already has one process", why, group)
            return f"group {group} already has one process"
        others = sum(self.wanted_processes(g) for g in self.config.groups if g != group)
        if delta > 0 and wanted + others > MAX_WORKERS:
            problem = (
                f"group {group} cannot grow to {wanted} processes: the site runs at most "
                f"{MAX_WORKERS} workers in all, and its other groups want {others}"
            )
            log.warning("%s: %s", why, problem)
            return problem
        if state.scaler is not None:
            # An adaptive group: move its target within its range, and let the policy go on
            # from there (an offset beyond it would fight the policy: it retired a worker every
            # idle_timeout and the master started another).
            cfg = self.config.groups[group]
            low, high = cfg.min_processes, cfg.max_processes
            if not low <= state.target + delta <= high:
                problem = (
                    f"group {group} is adaptive: it runs {low} to {high} processes "
                    f"(processes: {{min: {low}, max: {high}}}), not {state.target + delta}"
                )
                log.warning("%s: %s", why, problem)
                return problem
            state.target += delta
            state.scaler.restart(time.monotonic())
        else:
            state.extra += delta
        log.info(
            "%s: group %s now wants %s",
            why,
            group,
            counted(self.wanted_processes(group), "process"),
        )
        if delta < 0:
            workers = self._current_workers(group)
            for child in sorted(workers, key=lambda c: c.started, reverse=True)[:-delta]:
                self._retire(child, "scale_down")
        return None

    def set_processes(self, group: str, count: int) -> str | None:
        """Scale a group to count workers (ctl scale); returns why it did not, or None."""
        return self.scale(group, count - self.wanted_processes(group), "ctl scale")

    def recycle_group(self, group: str) -> int:
        """Replace every worker of a group, each once its replacement is ready (ctl recycle)."""
        workers = self._current_workers(group)
        for child in workers:
            child.retiring = True
            child.awaiting_replacement = True
            child.reason = "control"
        log.info("ctl recycle: group %s, %s", group, counted(len(workers), "worker"))
        return len(workers)

    def handle_usr1(self) -> None:
        """Reopen log files everywhere."""
        reopen_error_logs()
        for child in self.children.values():
            self._signal(child, signal.SIGUSR1)

    def _scaled_group(self) -> str:
        return self.config.default_group or next(iter(self.config.groups))

    # -- supervision --------------------------------------------------------------------------

    def _children(self, role: str, group: str | None = None) -> list[Child]:
        return [
            c
            for c in self.children.values()
            if c.role == role and not c.retiring and (group is None or c.group == group)
        ]

    def _current_workers(self, group: str) -> list[Child]:
        return [c for c in self._children("worker", group) if c.generation == self.generation]

    def wanted_processes(self, group: str) -> int:
        """How many workers the group should have now: its processes, or an adaptive group's
        current size, changed by `ctl scale` and TTIN/TTOU."""
        state = self.groups[group]
        base = state.target if state.scaler is not None else self.config.groups[group].processes
        return max(1, base + state.extra)

    def _graceful_timeout(self, group: str | None) -> float:
        cfg = self.config.groups.get(group) if group else None
        if cfg is not None and cfg.graceful_timeout is not None:
            return cfg.graceful_timeout
        return self.config.graceful_timeout

    def _maintain(self) -> None:
        now = time.monotonic()
        self.stats.tick(now)
        for service in self.services:
            service.sweep(now)
        self._answer_for_failing_groups(now)
        self._forward_retired_queues()
        if self.governor is not None and now >= self.governor_next and not self.stopping:
            self.governor_next = now + self.config.memory_governor.interval
            self._govern(now)
        for child in list(self.children.values()):
            if child.kill_at is not None and now >= child.kill_at:
                if not child.stuck:  # a stuck one was announced by _check_responsive
                    log.warning("%s did not stop in time; killing it", child.describe())
                self._signal(child, signal.SIGKILL)
                child.kill_at = None
            elif not child.ready and child.role == "worker" and child.kill_at is None:
                cfg = self.config.groups.get(child.group or "")
                if cfg is not None and now - child.started > cfg.startup_timeout:
                    log.error(
                        "%s not ready after startup_timeout %gs; killing it",
                        child.describe(),
                        cfg.startup_timeout,
                    )
                    child.reason = "startup_timeout"
                    self._signal(child, signal.SIGKILL)
                    child.kill_at = now + 5
            elif child.role == "worker" and child.kill_at is None:
                self._check_responsive(child, now)
        if self.stopping:
            self._maintain_stop(now)
            return
        for group in self.config.groups:
            try:
                self._maintain_group(group, now)
            except Exception:  # one group's trouble must not keep the others from their workers
                self.errors.log(f"the supervision of group {group}")
        if self.config.accepting_group is None and self.front_backoff.due(now):
            fronts = [c for c in self._children("front") if c.generation == self.generation]
            for _ in range(self.config.front.processes - len(fronts)):
                self._spawn_front()
        if self.reload_started is not None:
            self._maybe_finish_reload(now)
        elif (
            not self.announced_ready
            and all(c.ready for c in self.children.values())
            and all(self.ready_workers(g) for g in self.config.groups)
        ):
            self.announced_ready = True
            summary = ", ".join(
                f"{g} {self.wanted_processes(g)}x{cfg.threads}"
                for g, cfg in self.config.groups.items()
            )
            log.info("ready: %s", summary)
            self.notifier.notify("READY=1", f"STATUS=serving {summary}", f"MAINPID={os.getpid()}")

    def _check_responsive(self, child: Child, now: float) -> None:
        """Kill a ready worker whose watch loop has not run for its group's request_timeout.

        The watch loop (the worker's main thread) is what enforces request_timeout. A request
        stuck in C code that keeps the GIL (a runaway regular expression, say) stops it too, and
        then the whole worker hangs with every connection it holds. Its stacks go to stderr
        first (faulthandler, DUMP_STACKS), and it is killed a second later.
        """
        cfg = self.config.groups.get(child.group or "")
        if cfg is None or cfg.request_timeout is None or child.pid <= 0 or child.stuck:
            return
        beat = self.scoreboard[child.slot].heartbeat
        if not beat or now - beat <= cfg.request_timeout:
            return
        log.error(
            "%s: its watchdog has not run for %.1fs, over request_timeout %gs (a request holds "
            "the GIL in C code, or the process is stopped); its threads' stacks follow on "
            "stderr, and it is killed in 1s",
            child.describe(),
            now - beat,
            cfg.request_timeout,
        )
        child.reason = "request_timeout"
        child.stuck = True
        child.retiring = True  # its replacement starts now
        self._signal(child, DUMP_STACKS)
        child.kill_at = now + 1.0

    def _forward_retired_queues(self) -> None:
        """Move what waits in the queue of a group a reload removed to a living group: its
        retiring workers hand their idle keep-alive connections back there, and connections
        queued for it are waiting there, but no worker of the new generation reads it (they
        were stranded, unanswered, until the client gave up). A channel closes once its last
        worker is gone and all it held has moved."""
        live = {c.group for c in self.children.values()}
        for channel in list(self.retired_channels):
            if self._forward_queue(channel) and channel.group not in live:
                self.retired_channels.remove(channel)
                channel.close()

    def _forward_queue(self, channel: HandoffChannel) -> bool:
        """Send what waits in channel to the default group's queue (the first group's without
        one); its worker routes each request by the running config. Whether channel is empty."""
        groups = self.config.groups
        target = self.channels.get(self.config.default_group or next(iter(groups), ""))
        if target is None:
            return True
        while True:
            handoff = self.stranded.pop(channel, None) or channel.receive()
            if handoff is None:
                return True
            try:
                target.send(
                    handoff.sock,
                    handoff.data,
                    handoff.queue_start_us,
                    handoff.flags,
                    peer=handoff.peer,
                    served=handoff.served,
                    local=handoff.local,
                )
            except ChannelFull:
                self.stranded[channel] = handoff  # the next round tries again
                return False
            except OSError as exc:
                log.error("cannot move a connection of removed group %s: %s", channel.group, exc)
            handoff.sock.close()

    def _answer_for_failing_groups(self, now: float) -> None:
        """A failing group with no ready worker: the master answers 503 for it (unavailable.py)."""
        for group in self.config.groups:
            if not self.group_failing(group) or self.ready_workers(group):
                continue
            state = self.groups[group]
            next_start = max(
                state.workers_backoff.next_spawn,
                state.parent_backoff.next_spawn,
                self.fork_backoff.next_spawn,
            )
            retry_after = max(1, math.ceil(next_start - now))
            queued = refuse_queued(self.channels[group], retry_after)
            state.totals.taken += queued  # out of the queue: not backlog any more
            answered = queued
            if group == self.config.accepting_group:
                answered += refuse_accepted(self.listeners, retry_after)
            if answered:
                if not state.refused:
                    log.warning(
                        "group %s is failing: answering its requests with 503 until one of its "
                        "workers is ready",
                        group,
                    )
                state.refused += answered
                state.totals.shed_unavailable += answered

    def _maintain_group(self, group: str, now: float) -> None:
        state = self.groups[group]
        if state.scaler is not None:
            self._autoscale(group, state, now)
        # kept running even when no worker is missing, so a respawn never waits for it
        parent = self._fork_parent(group)
        if parent is None and state.parent_backoff.due(now):
            self._fork(fork_parent_role(self.config.groups[group].preload), group)
        have = self._current_workers(group)
        missing = self.wanted_processes(group) - len(have)
        if missing <= 0 or not state.workers_backoff.due(now):
            return
        if self.memory_pressure and have:
            # adaptive respawn: while memory is tight, refill a group slowly
            state.workers_backoff.next_spawn = now + self.config.memory_governor.respawn_delay
            missing = 1
        if parent is None or not parent.ready:
            return
        for _ in range(missing):
            self._spawn_from(group, parent)

    def _fork_parents(self, group: str | None = None) -> list[Child]:
        return [c for role in FORK_PARENTS for c in self._children(role, group)]

    def _fork_parent(self, group: str) -> Child | None:
        """The running generation's preloader or spawner of group, which forks its workers."""
        for child in self._fork_parents(group):
            if child.generation == self.generation:
                return child
        return None

    def _spawn_from(self, group: str, parent: Child) -> None:
        """Ask the group's fork parent for one worker (it reaches us re-parented)."""
        assert parent.control is not None
        now = time.monotonic()
        reserved = self._reserve("worker", group, now)
        if reserved is None:
            return
        slot, status_r, status_w = reserved
        try:
            request_spawn(parent.control, slot, status_w)
        except OSError as exc:
            log.error("group %s: its %s did not take a spawn request: %s", group, parent.role, exc)
            os.close(status_r)
            self.scoreboard.release(slot)
            return
        finally:
            os.close(status_w)
        key = self.next_key
        self.next_key -= 1
        self._watch_status(status_r)
        child = Child(key, "worker", group, self.generation, status_r, slot)
        child.asked = parent
        self.children[key] = child

    def _autoscale(self, group: str, state: GroupState, now: float) -> None:
        assert state.scaler is not None
        workers = [c for c in self._current_workers(group) if c.ready]
        busy = sum(self.scoreboard[c.slot].busy for c in workers)
        load = Load(len(workers), self.config.groups[group].threads, busy, self.backlog(group))
        delta, why = state.scaler.decide(load, now)
        if delta > 0:
            state.target = min(state.target + 1, self.config.groups[group].max_processes)
            log.info("group %s grows to %s: %s", group, counted(state.target, "worker"), why)
        elif delta < 0:
            idle = [c for c in workers if self._is_idle(c)]
            if not idle:
                return
            state.target = max(state.target - 1, self.config.groups[group].min_processes)
            victim = max(idle, key=lambda c: c.started)
            log.info("group %s shrinks to %s: %s", group, counted(state.target, "worker"), why)
            self._retire(victim, "scale_down")
        for child in workers:
            state.last_taken[child.pid] = self.scoreboard[child.slot].taken

    def _govern(self, now: float) -> None:
        """One round of the memory governor."""
        assert self.governor is not None and self.meter is not None
        site_pss = 0
        for child in self.children.values():
            if child.role == "worker":
                site_pss += self.scoreboard[child.slot].pss  # the worker samples itself
            elif child.pid > 0:
                sample = read_memory(child.pid)  # fronts and preloaders: we read them
                site_pss += sample.pss if sample else 0
        own = read_memory()
        reading = self.meter.read(site_pss + (own.pss if own else 0))
        if reading is None:
            if not self.governor_reading.get("warned"):
                log.warning(
                    "memory governor: no reading from source %s (no cgroup memory limit?); "
                    "it does nothing until one is available",
                    self.meter.source,
                )
                self.governor_reading = {"warned": True}
            return
        use = reading.fraction
        self.governor_reading = {
            "source": reading.source,
            "used_bytes": reading.used,
            "limit_bytes": reading.limit,
            "use": round(use, 4),
        }
        self.memory_pressure = use >= self.config.memory_governor.lower
        candidates = [
            Candidate(
                c.pid,
                c.group or "",
                self.scoreboard[c.slot].uss,
                self.config.groups[c.group or ""].memory_priority
                if c.group in self.config.groups
                else 0,
                c.retiring,
            )
            for c in self.children.values()
            if c.role == "worker" and c.pid > 0 and c.ready and c.reason != "governor_kill"
        ]
        excess = reading.used - int(self.config.memory_governor.lower * reading.limit)
        for decision in self.governor.decide(use, candidates, now, excess):
            child = self.children.get(decision.pid)
            if child is None:
                continue
            log.warning(
                "memory governor: %s at %.1f%% of %d MiB (%s): %s worker %d of group %s, "
                "USS %d MiB%s",
                "upper bound passed"  # and mercy is over
                if decision.action == "kill"
                else "above upper bound"
                if use >= self.config.memory_governor.upper
                else "above lower bound",
                use * 100,
                reading.limit >> 20,
                reading.source,
                "killing" if decision.action == "kill" else "recycling",
                decision.pid,
                decision.group,
                decision.uss >> 20,
                in_flight(self.scoreboard[child.slot]) if decision.action == "kill" else "",
            )
            child.reason = decision.reason
            if decision.action == "kill":
                child.retiring = True
                self._signal(child, signal.SIGKILL)
            else:
                self._retire(child, decision.reason)  # after its current request, like any other

    def _is_idle(self, child: Child) -> bool:
        """A worker that holds no connection and took none since the last look."""
        slot = self.scoreboard[child.slot]
        state = self.groups[child.group or ""]
        return slot.busy == 0 and slot.conns == 0 and state.last_taken.get(child.pid) == slot.taken

    def backlog(self, group: str) -> int:
        """Connections waiting in a group's queue (handed to it minus taken by its workers), plus
        the listeners' accept queues when the group accepts connections itself."""
        index = self.group_indices[group]
        state = self.groups[group]
        handed = self.front_totals.handed[index]
        if group == self.config.accepting_group:
            handed += sum(map(tcp_accept_queue, self.tcp_listeners))
        taken = state.totals.taken
        for other in self.groups.values():
            if other is not state:
                handed += other.totals.handed[index]
        handed += state.totals.handed[index]
        for child in self.children.values():
            slot = self.scoreboard[child.slot]
            handed += slot.handed[index]
            if child.role == "worker" and child.group == group:
                taken += slot.taken
        return max(0, handed - taken)

    def _maintain_stop(self, now: float) -> None:
        if self.stopping == "graceful" and not self.listeners_shut:
            self._refuse_new_connections()
        if self.stopping == "graceful" and not self._children("front"):
            # Every worker not told to stop yet, including one that asked to retire and still
            # waits for a replacement that will never come now.
            for child in self.children.values():
                if child.role != "worker" or child.retiring and not child.awaiting_replacement:
                    continue
                cfg = self.config.groups.get(child.group or "")
                limit = cfg.shutdown_timeout if cfg and cfg.shutdown_timeout else None
                self._signal(child, signal.SIGTERM)
                child.retiring = True
                child.awaiting_replacement = False
                child.kill_at = now + limit if limit else self.stop_deadline
        if now >= self.stop_deadline and self.stopping == "quick":
            for child in self.children.values():
                if child.kill_at is None:
                    child.kill_at = now

    def _refuse_new_connections(self) -> None:
        """Once the front is gone (or the accepting group's workers took the last of the listen
        queue), shut the listeners down: a connection that comes now is refused at once,
        instead of waiting in the queue, unanswered, to be reset when the master exits. Sockets
        systemd passed stay open: there, it waits for the next start."""
        accepting = self.config.accepting_group
        if accepting is None:
            if self._children("front"):
                return
        elif any(
            c.role == "worker" and c.group == accepting and c.pid > 0 and not c.accepting_done
            for c in self.children.values()
        ):
            return
        self.listeners_shut = True
        if self.listeners_inherited:
            return
        for sock in self.listeners:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        log.info("graceful stop: new connections are refused from now on")

    def _maybe_finish_reload(self, now: float) -> None:
        new = [
            c
            for c in self.children.values()
            if c.generation == self.generation and c.role not in FORK_PARENTS
        ]
        fronts = 0 if self.config.accepting_group else self.config.front.processes
        wanted = fronts + sum(map(self.wanted_processes, self.config.groups))
        if not all(c.ready for c in new) or len(new) < wanted:
            if self.reload_started is not None and now - self.reload_started > 60:
                log.error("reload: the new generation is not ready after 60s; old workers stay")
                self.reload_started = None
            return
        for child in list(self.children.values()):
            if child.generation < self.generation and not child.retiring:
                self._retire(child, "reload")
        self.reload_started = None
        log.info("reload: generation %d serving", self.generation)
        self.notifier.notify("READY=1", f"STATUS=serving generation {self.generation}")

    def _retire(self, child: Child, reason: str) -> None:
        child.retiring = True
        child.awaiting_replacement = False
        child.reason = child.reason or reason
        child.kill_at = time.monotonic() + self._graceful_timeout(child.group)
        log.info("retiring %s: %s", child.describe(), reason)
        self._signal(child, signal.SIGUSR2 if child.role == "worker" else signal.SIGTERM)

    def _signal(self, child: Child, signum: int) -> None:
        if child.pid <= 0:
            # A worker asked of its group's spawner that has not told us its pid yet: it gets
            # the signal once it does (a stop or a reload could otherwise miss it, and wait
            # for it until graceful_timeout).
            child.pending_signal = signum
            return
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    # -- forking ------------------------------------------------------------------------------

    def _allocate_slot(self, role: str, group: str | None) -> int:
        kind = ROLE_WORKER if role == "worker" else ROLE_FRONT
        slot = self.scoreboard.allocate(kind, self.group_indices.get(group, -1) if group else -1)
        self.scoreboard[slot].generation = self.generation
        self.scoreboard[slot].started = time.time()
        return slot

    def _watch_status(self, status_r: int) -> None:
        os.set_blocking(status_r, False)
        self.poller.register(status_r, select.EPOLLIN)

    def _reserve(self, role: str, group: str | None, now: float) -> tuple[int, int, int] | None:
        """A scoreboard slot and a status pipe (read end, write end) for a new process; None
        while fork_backoff says wait, or when there is none to be had (then it waits)."""
        if not self.fork_backoff.due(now):
            return None
        slot = -1
        try:
            slot = self._allocate_slot(role, group)
            status_r, status_w = os.pipe2(os.O_CLOEXEC)
        except (OSError, ScoreboardFull) as exc:
            if slot >= 0:
                self.scoreboard.release(slot)
            self._cannot_start(role, group, exc, now)
            return None
        return slot, status_r, status_w

    def _started(self, now: float) -> None:
        """A new process is on its way: starting works again, if it had stopped working."""
        if self.fork_backoff.failures:
            log.info("starting processes again (fork failed %d times)", self.fork_backoff.failures)
            self.fork_backoff.record_exit(False, now)  # no more waiting

    def _fork(self, role: str, group: str | None) -> None:
        now = time.monotonic()
        reserved = self._reserve(role, group, now)
        if reserved is None:
            return
        slot, status_r, status_w = reserved
        control = child_control = None
        try:
            if group is not None:
                self._plan(group)  # built here, inherited by the child
            if role in FORK_PARENTS:
                control, child_control = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            # A signal for the new child that arrived before it dropped our handlers would only
            # be queued for us in its copy of the master and lost: keep them pending over the
            # fork.
            signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
            flush_standard_streams()  # else the child inherits what is pending, and prints it
            try:
                pid = os.fork()
            except OSError:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
                raise
        except OSError as exc:
            os.close(status_r)
            os.close(status_w)
            for end in (control, child_control):
                if end is not None:
                    end.close()
            self.scoreboard.release(slot)
            self._cannot_start(role, group, exc, now)
            return
        if pid == 0:
            try:
                os.close(status_r)
                if control is not None:
                    control.close()
                    assert child_control is not None
                    self._become_fork_parent(group or "", status_w, child_control)
                self._become_front(status_w, slot)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        self._started(now)
        os.close(status_w)
        if control is not None:
            child_control.close()
        self._watch_status(status_r)
        self.scoreboard[slot].pid = pid
        self.children[pid] = Child(pid, role, group, self.generation, status_r, slot)
        self.children[pid].control = control

    def _become_fork_parent(self, group: str, status_w: int, control: socket.socket) -> None:
        self._leave_master()
        cfg = self.config.groups[group]
        drop_privileges(cfg.user, cfg.group)
        listeners = self._listeners_for(group)
        plan = self._plan(group)
        config, channels, scoreboard = self.config, self.channels, self.scoreboard
        indices, master_pid = self.group_indices, self.pid

        def start_worker(slot: int, status_fd: int, app: Callable[..., Any] | None) -> None:
            spec = WorkerSpec(
                config,
                group,
                channels,
                status_fd,
                master_pid,
                scoreboard,
                slot,
                indices,
                plan,
                listeners,
            )
            run_worker(spec, app)

        import_app = (lambda: import_group_app(config, group)) if cfg.preload else None
        run_fork_parent(group, status_w, control, import_app, start_worker)

    def _leave_master(self) -> None:
        """In a new child: drop the master's signal handling and its private descriptors."""
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            # Until the child sets its own: a stop signal stops it, the others are not for it.
            stops = sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
            signal.signal(sig, signal.SIG_DFL if stops else signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)  # blocked by _fork
        self.poller.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for child in self.children.values():
            if child.status_fd >= 0:
                os.close(child.status_fd)
            if child.control is not None:
                child.control.close()
        for channel in self.retired_channels:
            channel.close()
        for service in self.services:
            service.listener.close()
            for client in list(service.clients.values()):
                client.sock.close()
        self.notifier.close()

    def _become_front(self, status_w: int, slot: int) -> None:
        self._leave_master()
        run_front(
            self.config,
            self.listeners,
            self.channels,
            status_w,
            self.pid,
            self.scoreboard,
            slot,
            self.group_indices,
        )

    def _plan(self, group: str) -> GroupPlan:
        """The group's plan for the running config (built before forking: see GroupPlan)."""
        plan = self.plans.get(group)
        if plan is None:
            plan = self.plans[group] = GroupPlan.build(self.config, group)
        return plan

    def _listeners_for(self, group: str) -> list[socket.socket]:
        """In a new worker or preloader: the listeners if its group accepts, else close them."""
        if group == self.config.accepting_group:
            return self.listeners
        for sock in self.listeners:
            sock.close()
        return []

    def _cannot_start(
        self, role: str, group: str | None, exc: BaseException | str, now: float
    ) -> None:
        delay = self.fork_backoff.record_exit(True, now)
        what = "a front process" if group is None else f"a {role} of group {group}"
        log.error("cannot start %s: %s; trying again in %.1fs", what, exc, delay)

    def _spawn_front(self) -> None:
        self._fork("front", None)

    # -- what children say --------------------------------------------------------------------

    def _on_status_pipe(self, fd: int) -> None:
        child = next((c for c in self.children.values() if c.status_fd == fd), None)
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if child is None:
            return
        if not data:
            self._close_status(child)
            if child.pid < 0:
                self._spawn_lost(child)
            return
        child.pending += data
        *lines, child.pending = child.pending.split(b"\n")
        for line in lines:
            self._on_status(child, line.decode("ascii", "replace").split())

    def _spawn_lost(self, child: Child) -> None:
        """A worker asked of a spawner will not come: the status pipe closed before it said its
        pid (its placeholder stayed forever, one worker short, and a stop waited for it without
        end). When the spawner's fork() failed, it said so: every start waits (fork_backoff),
        as when the master's own fork fails. When the spawner died with the request, the next
        one is asked, and no start failed; when it lives, the worker died before it said its
        pid: a failed start, with its back-off."""
        if child.fork_error:  # fork() failed in the parent asked (EAGAIN, ENOMEM)
            self._forget_child(child, None)
            self._cannot_start("worker", child.group, child.fork_error, time.monotonic())
            return
        asked = child.asked
        if asked is not None and not _exited(asked.pid):
            self._forget_child(child, 1 << 8)
            return
        log.warning(
            "group %s: its %s died before it forked a worker asked of it; asking the next",
            child.group,
            asked.role if asked is not None else "spawner",
        )
        self._forget_child(child, None)

    def _close_status(self, child: Child) -> None:
        if child.status_fd >= 0:
            try:
                self.poller.unregister(child.status_fd)
            except OSError:
                pass
            os.close(child.status_fd)
            child.status_fd = -1

    def _on_status(self, child: Child, words: list[str]) -> None:
        if len(words) == 2 and words[0] == "pid" and words[1].isdigit():
            self._learn_pid(child, int(words[1]))
        elif words and words[0] == "cannot-fork":
            child.fork_error = " ".join(words[1:])
        elif words == ["accepting", "done"]:
            child.accepting_done = True
        elif words == ["ready"]:
            child.ready = True
            if child.role == "front":
                self.front_backoff.failures = 0
                return
            if child.role in FORK_PARENTS:
                self.groups[child.group or ""].parent_backoff.failures = 0
                if child.role == "preloader":
                    log.info("group %s: application preloaded by %d", child.group, child.pid)
                return
            state = self.groups.get(child.group or "")
            if state is None:
                return
            state.workers_backoff.failures = 0
            if state.refused:
                log.info(
                    "group %s: %s is ready; %d requests were answered 503 while the group was "
                    "failing",
                    child.group,
                    child.describe(),
                    state.refused,
                )
                state.refused = 0
            waiting = [
                c
                for c in self.children.values()
                if c.group == child.group and c.awaiting_replacement and c is not child
            ]
            if waiting:
                self._retire(min(waiting, key=lambda c: c.started), waiting[0].reason)
        elif len(words) == 3 and words[0] == "retire" and not child.retiring:
            reason, when = words[1], words[2]
            child.reason = reason
            child.retiring = True
            if when == "later":
                child.awaiting_replacement = True
                log.info(
                    "%s asks to retire (%s); starting its replacement", child.describe(), reason
                )
            else:
                child.kill_at = time.monotonic() + self._graceful_timeout(child.group)
                log.info("%s retiring (%s)", child.describe(), reason)

    def _learn_pid(self, child: Child, pid: int) -> None:
        if child.pid == pid:
            return
        if child.pid < 0:
            self._started(time.monotonic())  # its parent's fork() worked
            del self.children[child.pid]
            child.pid = pid
            self.children[pid] = child
            self.scoreboard[child.slot].pid = pid
            status = self.unknown_exits.pop(pid, None)
            if status is not None:  # it died before we read its pid
                self._forget_child(child, status)
            elif child.pending_signal:
                self._signal(child, child.pending_signal)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.get(pid)
            if child is None:
                # An orphan we adopted (as PID 1 or subreaper), or a preloaded worker whose pid
                # line we have not read yet: read every pending status line, then look again.
                for pending in [c for c in self.children.values() if c.pid < 0]:
                    if pending.status_fd >= 0:
                        self._on_status_pipe(pending.status_fd)
                child = self.children.get(pid)
                if child is None:
                    if len(self.unknown_exits) < 1024:
                        self.unknown_exits[pid] = status
                    continue
            self._forget_child(child, status)

    def _forget_child(self, child: Child, status: int | None) -> None:
        """Drop a child that ended (status: its wait status), or a placeholder for a worker that
        never came to be (None: no exit to report)."""
        self.children.pop(child.pid, None)
        if child.status_fd >= 0:
            self._on_status_pipe(child.status_fd)
            self._close_status(child)
        if child.control is not None:
            child.control.close()
        lost = self._fold(child)
        if status is not None:
            self._on_exit(child, status, lost)

    def _fold(self, child: Child) -> str:
        """Keep a finished process's counters in its group's totals and free its slot; returns
        what it left unanswered, for the log ("" when nothing)."""
        slot = self.scoreboard[child.slot]
        lost = in_flight(slot) if child.role == "worker" else ""
        if child.role == "front":
            accumulate(self.front_totals, slot)
        elif child.group in self.groups:
            state = self.groups[child.group]
            accumulate(state.totals, slot)
            # the requests it died in got no status (but those the watchdog answered with a 504)
            state.totals.status[0] += max(0, slot.busy - slot.answered_busy)
            merge_memory_rows(state.memory_by_url, slot)
            if len(state.memory_by_url) > 1000:  # keep the biggest paths only
                biggest = sorted(state.memory_by_url.items(), key=lambda kv: -kv[1][2])[:500]
                state.memory_by_url = dict(biggest)
            state.last_taken.pop(child.pid, None)
        self.scoreboard.release(child.slot)
        return lost

    def _on_exit(self, child: Child, status: int, lost: str = "") -> None:
        how = describe_status(status)
        planned = child.retiring or self.stopping
        # A ready process that exits 0 unasked was stopped by a TERM or INT sent to it (an
        # operator's `kill PID`): it drained like any retiring worker. Not a crash.
        stopped = not child.reason and child.ready and status == 0
        if child.role == "worker" and child.group in self.groups:
            state = self.groups[child.group]
            reason = child.reason or (
                "reload"
                if self.stopping
                else "stopped"
                if stopped
                else "crash"
                if child.ready
                else "startup_failed"
            )
            if not self.stopping:
                state.restarts[reason] += 1
                state.recent.append({"pid": child.pid, "reason": reason, "at": time.time()})
        if planned:
            log.info("%s exited (%s)%s", child.describe(), how, lost)
            return
        now = time.monotonic()
        # Not the exit code: a ready worker's 3 (EXIT_APP_LOAD_FAILED) is the app's os._exit(3).
        died_at_start = not child.ready
        if child.role == "front":
            delay = self.front_backoff.record_exit(died_at_start, now)
        else:
            state = self.groups.setdefault(child.group or "", GroupState())
            kind = state.parent_backoff if child.role in FORK_PARENTS else state.workers_backoff
            rounds = kind.failures
            delay = kind.record_exit(died_at_start, now)
            if kind.failures == FAILING_AFTER and rounds != kind.failures:  # once, as it begins
                older = {
                    c.generation
                    for c in self._children("worker", child.group)
                    if c.ready and c.generation < self.generation
                }
                log.error(
                    "group %s is failing: its %s died at start-up %d times in a row%s",
                    child.group,
                    "workers" if child.role == "worker" else child.role,
                    kind.failures,
                    f"; generation {max(older)}'s workers keep serving it" if older else "",
                )
        when = lost + (f"; replacing it in {delay:.1f}s" if delay else "; replacing it")
        if stopped:
            log.warning(
                "%s stopped, not by groupserver (a TERM or INT sent to it?)%s",
                child.describe(),
                when,
            )
            return
        stage = "at start-up" if died_at_start else "unexpectedly"
        if not child.reason and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            # not one of ours (each has a reason): the OOM killer, most likely, or an operator
            how += ", not by groupserver: out of memory? (see dmesg)"
        log.error("%s died %s (%s)%s", child.describe(), stage, how, when)

    def group_failing(self, group: str) -> bool:
        """Whether the group's workers (or its preloader) keep dying at start-up, or cannot be
        started at all (fork() keeps failing, for every group)."""
        state = self.groups.get(group)
        if state is None:
            return False
        return (
            state.workers_backoff.failing
            or state.parent_backoff.failing
            or self.fork_backoff.failing
        )


def _exited(pid: int) -> bool:
    """Whether a child of ours has ended: gone, or a zombie not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _version() -> str:
    from groupserver import __version__

    return __version__
