"""What the master knows about each child process and each group across their lives."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from groupserver.scaling import GroupScaler
from groupserver.scoreboard import Slot

MAX_BACKOFF = 30.0
RECENT_RECYCLES = 20
FAILING_AFTER = 3  # deaths at start-up in a row that make a group "failing"


@dataclass
class Child:
    """One forked process as the master sees it."""

    pid: int  # negative until a preloaded worker has told us its pid
    role: str  # "front" | "worker" | "preloader"
    group: str | None
    generation: int
    status_fd: int
    slot: int
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    retiring: bool = False
    awaiting_replacement: bool = False
    reason: str = ""
    kill_at: float | None = None
    stuck: bool = False  # its watch loop stopped (see Master._check_responsive)
    pending: bytes = b""
    control: socket.socket | None = None  # spawner or preloader: where spawn requests go
    asked: Child | None = None  # a worker not forked yet: the spawner (or preloader) asked
    pending_signal: int = 0  # sent to a worker not forked yet: sent once we know its pid
    fork_error: str = ""  # why its spawner could not fork it ("[Errno 11] ...")
    accepting_done: bool = False  # a stopping worker took the last of the listen queue

    def describe(self) -> str:
        """e.g. 'worker 1234 (group admin)'."""
        return f"{self.role} {self.pid}" + (f" (group {self.group})" if self.group else "")


@dataclass
class StartBackoff:
    """Exponential back-off for a kind of process that keeps dying at start-up."""

    failures: int = 0  # rounds of starts in a row whose processes died at start-up
    next_spawn: float = 0.0  # monotonic time before which no new one starts

    def record_exit(self, died_at_start: bool, now: float) -> float:
        """Note a death; returns the delay before the next start. A death at start-up while the
        delay of the one before runs is of the same round (a group's workers start together and
        die together): it neither counts again nor lengthens the delay (it doubled per worker)."""
        if died_at_start and self.failures and now < self.next_spawn:
            return self.next_spawn - now
        self.failures = self.failures + 1 if died_at_start else 0
        delay = backoff(self.failures)
        self.next_spawn = now + delay
        return delay

    def due(self, now: float) -> bool:
        """Whether a new process may start now."""
        return now >= self.next_spawn

    @property
    def failing(self) -> bool:
        """Whether this kind of process keeps dying at start-up (FAILING_AFTER in a row)."""
        return self.failures >= FAILING_AFTER


@dataclass
class GroupState:
    """Supervision state of one group across its workers' lives."""

    extra: int = 0  # TTIN/TTOU adjustments
    target: int = 0  # adaptive groups: current size between min and max
    workers_backoff: StartBackoff = field(default_factory=StartBackoff)
    parent_backoff: StartBackoff = field(default_factory=StartBackoff)  # spawner or preloader
    scaler: GroupScaler | None = None
    restarts: Counter = field(default_factory=Counter)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_RECYCLES))
    totals: Slot = field(default_factory=Slot)  # counters of workers that are gone
    last_taken: dict[int, int] = field(default_factory=dict)
    memory_by_url: dict[str, list[int]] = field(default_factory=dict)  # of finished workers
    refused: int = 0  # requests answered 503 while failing, since it last had a ready worker


def backoff(failures: int) -> float:
    """Seconds to wait before the next start after this many deaths at start-up in a row."""
    if failures <= 0:
        return 0.0
    return min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))


def describe_status(status: int) -> str:
    """A wait status as words: 'exit code 3', 'killed by SIGKILL'."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class RepeatedErrors:
    """Logs a bug of the master's loop with its traceback the first time, then once a minute with
    how often it came back in between, so one that recurs every round does not flood the log."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self.logger = logger
        self.every = every
        self.seen: dict[str, tuple[float, int]] = {}  # error -> (logged at, times since)

    def log(self, where: str) -> None:
        """Call from an except block: log (or count) the exception being handled."""
        exc = sys.exc_info()[1]
        tb = exc.__traceback__ if exc is not None else None
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        # By where it was raised, not by its text, which may name a pid or a time each round.
        place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
        key = f"{where}: {type(exc).__name__} at {place}"
        now = time.monotonic()
        logged = self.seen.get(key)
        if logged is not None and now - logged[0] < self.every:
            self.seen[key] = (logged[0], logged[1] + 1)
            return
        if len(self.seen) >= 100:
            self.seen.clear()
        again = f" ({logged[1]} more times since it was last logged)" if logged else ""
        self.logger.exception("master: unexpected error in %s; carrying on%s", where, again)
        self.seen[key] = (now, 0)
