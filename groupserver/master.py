"""The master process: ``groupserver: master [SITE]`` in ps.

It imports no application code. It holds every listening socket and every group's hand-off
channel, forks the front and each group's workers, reaps and replaces them (with back-off when
they die at start-up), and turns signals into actions. Signal handlers only queue the signal; the
main loop does the work, one ``handle_*`` method per signal.

    TERM        graceful stop: the front stops accepting, workers serve what is queued and what
                is in flight (up to graceful_timeout), then everything exits 0
    INT, QUIT   quick stop
    HUP         reload: re-read the YAML (an invalid file is logged and the old config kept),
                start a new front and new workers, retire the old ones once the new are ready
    TTIN, TTOU  one worker more / fewer in the scaled group: default_group if set, else the first
                group in the YAML
    USR1        reopen log files (the master's and every child's)
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
import traceback
from dataclasses import dataclass, field

from groupserver.config import ConfigError, SiteConfig, load_config
from groupserver.front import run_front
from groupserver.handoff import HandoffChannel
from groupserver.listeners import create_listener, describe, remove_unix_paths
from groupserver.proctitle import set_process_title
from groupserver.worker import EXIT_APP_LOAD_FAILED, WorkerSpec, run_worker

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
_MAX_BACKOFF = 30.0


@dataclass
class Child:
    """One forked process as the master sees it."""

    pid: int
    role: str  # "front" | "worker"
    group: str | None
    generation: int
    ready_fd: int
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    retiring: bool = False
    kill_at: float | None = None

    def describe(self) -> str:
        """e.g. 'worker 1234 (group admin)'."""
        return f"{self.role} {self.pid}" + (f" (group {self.group})" if self.group else "")


@dataclass
class GroupState:
    """Supervision state of one group across its workers' lives."""

    extra: int = 0  # TTIN/TTOU adjustments
    failures: int = 0  # consecutive deaths at start-up
    next_spawn: float = 0.0


class Master:
    """Supervisor of the front and every group's workers."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.generation = 0
        self.children: dict[int, Child] = {}
        self.listeners: list[socket.socket] = []
        self.channels: dict[str, HandoffChannel] = {}
        self.retired_channels: list[HandoffChannel] = []
        self.groups: dict[str, GroupState] = {}
        self.signals: list[int] = []
        self.stopping: str | None = None  # "graceful" | "quick"
        self.stop_deadline = 0.0
        self.front_next_spawn = 0.0
        self.front_failures = 0
        self.announced_ready = False
        self.reload_started: float | None = None
        self.pid = os.getpid()

    # -- start-up -----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything and supervise until stopped; returns the exit code."""
        set_process_title(f"groupserver: master [{self.config.site}]", "gs-master")
        for address in self.config.listen:
            self.listeners.append(create_listener(address, self.config.backlog))
        self._make_channels(self.config)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        for sig in _HANDLED:
            signal.signal(sig, self._on_signal)
        self.poller = select.epoll()
        self.poller.register(self.wake_r, select.EPOLLIN)
        log.info(
            "groupserver %s: site %s listening on %s",
            _version(),
            self.config.site,
            ", ".join(describe(s) for s in self.listeners),
        )
        try:
            return self._loop()
        finally:
            remove_unix_paths(self.listeners)

    def _make_channels(self, config: SiteConfig) -> None:
        for name in config.groups:
            if name not in self.channels:
                self.channels[name] = HandoffChannel(name)
            self.groups.setdefault(name, GroupState())

    # -- main loop ----------------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            self._maintain()
            timeout = 0.2 if self.stopping or self.reload_started else 0.5
            try:
                events = self.poller.poll(timeout)
            except InterruptedError:
                events = []
            for fd, _mask in events:
                if fd == self.wake_r:
                    self._drain_wake_pipe()
                else:
                    self._on_ready_pipe(fd)
            while self.signals:
                self._dispatch(self.signals.pop(0))
            self._reap()
            if self.stopping and not self.children:
                log.info("site %s stopped", self.config.site)
                return 0

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
        log.info("graceful stop (up to %ss)", self.config.graceful_timeout)
        self.stopping = "graceful"
        self.stop_deadline = time.monotonic() + self.config.graceful_timeout
        for child in self._children("front"):
            self._signal(child, signal.SIGTERM)

    def handle_quick(self) -> None:
        """Quick stop: every child exits now."""
        log.info("quick stop")
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
        for warning in config.warnings:
            log.warning("%s", warning)
        if [a.display() for a in config.listen] != [a.display() for a in self.config.listen]:
            log.warning("reload: listener changes take effect only after a restart")
            config = config.model_copy(update={"listen": self.config.listen})
        for name in list(self.channels):
            if name not in config.groups:
                self.retired_channels.append(self.channels.pop(name))
        self._make_channels(config)
        self.config = config
        self.generation += 1
        self.reload_started = time.monotonic()
        self.front_next_spawn = 0.0
        for state in self.groups.values():
            state.next_spawn = 0.0
        log.info("reload: starting generation %d", self.generation)

    def handle_ttin(self) -> None:
        """One more worker in the scaled group."""
        group = self._scaled_group()
        self.groups[group].extra += 1
        log.info("TTIN: group %s now wants %d processes", group, self._wanted(group))

    def handle_ttou(self) -> None:
        """One worker fewer in the scaled group (never below one)."""
        group = self._scaled_group()
        if self._wanted(group) <= 1:
            log.info("TTOU: group %s already has one process", group)
            return
        self.groups[group].extra -= 1
        log.info("TTOU: group %s now wants %d processes", group, self._wanted(group))
        workers = [c for c in self._children("worker", group) if c.generation == self.generation]
        if workers:
            self._retire(max(workers, key=lambda c: c.started), "TTOU")

    def handle_usr1(self) -> None:
        """Reopen log files everywhere."""
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.close()  # reopened on the next record
        for child in self.children.values():
            self._signal(child, signal.SIGUSR1)

    def _scaled_group(self) -> str:
        return self.config.default_group or next(iter(self.config.groups))

    # -- children -----------------------------------------------------------------------------

    def _children(self, role: str, group: str | None = None) -> list[Child]:
        return [
            c
            for c in self.children.values()
            if c.role == role and not c.retiring and (group is None or c.group == group)
        ]

    def _wanted(self, group: str) -> int:
        return max(1, self.config.groups[group].processes + self.groups[group].extra)

    def _maintain(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.kill_at is not None and now >= child.kill_at:
                log.warning("%s did not stop in time; killing it", child.describe())
                self._signal(child, signal.SIGKILL)
                child.kill_at = None
        if self.stopping:
            self._maintain_stop(now)
            return
        current = self.generation
        for group in self.config.groups:
            state = self.groups[group]
            have = [c for c in self._children("worker", group) if c.generation == current]
            if len(have) < self._wanted(group) and now >= state.next_spawn:
                for _ in range(self._wanted(group) - len(have)):
                    self._spawn_worker(group)
        fronts = [c for c in self._children("front") if c.generation == current]
        if not fronts and now >= self.front_next_spawn:
            self._spawn_front()
        if self.reload_started is not None:
            self._maybe_finish_reload(now)
        elif not self.announced_ready and all(c.ready for c in self.children.values()):
            self.announced_ready = True
            log.info(
                "ready: %s",
                ", ".join(
                    f"{g} {self._wanted(g)}x{cfg.threads}" for g, cfg in self.config.groups.items()
                ),
            )

    def _maintain_stop(self, now: float) -> None:
        if self.stopping == "graceful" and not self._children("front"):
            for child in self._children("worker"):
                self._signal(child, signal.SIGTERM)
                child.retiring = True
                child.kill_at = self.stop_deadline
        if now >= self.stop_deadline:
            for child in self.children.values():
                if child.kill_at is None:
                    child.kill_at = now

    def _maybe_finish_reload(self, now: float) -> None:
        new = [c for c in self.children.values() if c.generation == self.generation]
        if not all(c.ready for c in new) or len(new) < 1 + sum(
            map(self._wanted, self.config.groups)
        ):
            if now - (self.reload_started or now) > 60 and self.reload_started is not None:
                log.error("reload: the new generation is not ready after 60s; old workers stay")
                self.reload_started = None
            return
        for child in list(self.children.values()):
            if child.generation < self.generation and not child.retiring:
                self._retire(child, "reload")
        self.reload_started = None
        log.info("reload: generation %d serving", self.generation)

    def _retire(self, child: Child, reason: str) -> None:
        child.retiring = True
        child.kill_at = time.monotonic() + self.config.graceful_timeout
        log.info("retiring %s: %s", child.describe(), reason)
        self._signal(child, signal.SIGTERM if child.role == "front" else signal.SIGUSR2)

    def _signal(self, child: Child, signum: int) -> None:
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    def _fork(self, role: str, group: str | None) -> tuple[int, int]:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                self._become_child(role, group, ready_w)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(1)
        os.close(ready_w)
        self.poller.register(ready_r, select.EPOLLIN)
        return pid, ready_r

    def _become_child(self, role: str, group: str | None, ready_w: int) -> None:
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        self.poller.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for child in self.children.values():
            if child.ready_fd >= 0:
                os.close(child.ready_fd)
        for channel in self.retired_channels:
            channel.close()
        if role == "front":
            run_front(self.config, self.listeners, self.channels, ready_w, self.pid)
        else:
            for sock in self.listeners:
                sock.close()
            assert group is not None
            run_worker(WorkerSpec(self.config, group, self.channels, ready_w, self.pid))

    def _spawn_worker(self, group: str) -> None:
        pid, ready_fd = self._fork("worker", group)
        self.children[pid] = Child(pid, "worker", group, self.generation, ready_fd)

    def _spawn_front(self) -> None:
        pid, ready_fd = self._fork("front", None)
        self.children[pid] = Child(pid, "front", None, self.generation, ready_fd)

    def _on_ready_pipe(self, fd: int) -> None:
        try:
            data = os.read(fd, 16)
        except OSError:
            data = b""
        child = next((c for c in self.children.values() if c.ready_fd == fd), None)
        if child is None:
            return
        self.poller.unregister(fd)
        os.close(fd)
        child.ready_fd = -1
        if data:
            child.ready = True
            if child.role == "worker" and child.group in self.groups:
                self.groups[child.group].failures = 0
            elif child.role == "front":
                self.front_failures = 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue  # an orphan we adopted (as PID 1)
            if child.ready_fd >= 0:
                try:
                    self.poller.unregister(child.ready_fd)
                except OSError:
                    pass
                os.close(child.ready_fd)
            self._on_exit(child, status)
        # channels of removed groups close once their last worker is gone
        live = {c.group for c in self.children.values()}
        for channel in [ch for ch in self.retired_channels if ch.group not in live]:
            self.retired_channels.remove(channel)
            channel.close()

    def _on_exit(self, child: Child, status: int) -> None:
        how = _describe_status(status)
        if child.retiring or self.stopping:
            log.info("%s exited (%s)", child.describe(), how)
            return
        now = time.monotonic()
        died_at_start = not child.ready or os.waitstatus_to_exitcode(status) == EXIT_APP_LOAD_FAILED
        if child.role == "front":
            self.front_failures = self.front_failures + 1 if died_at_start else 0
            delay = _backoff(self.front_failures)
            self.front_next_spawn = now + delay
        else:
            assert child.group is not None
            state = self.groups.setdefault(child.group, GroupState())
            state.failures = state.failures + 1 if died_at_start else 0
            delay = _backoff(state.failures)
            state.next_spawn = now + delay
            if state.failures >= 3:
                log.error(
                    "group %s is failing: %d workers in a row died at start-up",
                    child.group,
                    state.failures,
                )
        when = f"; replacing it in {delay:.1f}s" if delay else "; replacing it"
        stage = "at start-up" if died_at_start else "unexpectedly"
        log.error("%s died %s (%s)%s", child.describe(), stage, how, when)


def _backoff(failures: int) -> float:
    if failures <= 0:
        return 0.0
    return min(_MAX_BACKOFF, 0.5 * 2 ** (failures - 1))


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _version() -> str:
    from groupserver import __version__

    return __version__
