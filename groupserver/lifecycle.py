"""A worker's own supervision, run by its main thread: memory, request timeouts, inactivity.

The request threads serve; this loop watches them. It samples memory (USS/PSS/RSS from
/proc/self/smaps_rollup) into the scoreboard, enforces the group's memory limits, finds requests
running past request_timeout (answers 504 when nothing was sent, logs the URL and the thread's
stack, and retires the worker), and retires a worker that has been inactive too long.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from groupserver.accesslog import flush_standard_streams
from groupserver.config import GroupConfig
from groupserver.http.response import error_response
from groupserver.memory import read_memory
from groupserver.scoreboard import URL_BYTES, Slot, in_flight

log = logging.getLogger("groupserver.worker")


@dataclass(slots=True)
class InFlight:
    """A request being served by one thread (for request_timeout and the stats)."""

    thread_id: int
    started: float  # time.monotonic()
    head: Any  # RequestHead
    conn: Any
    response: Any = None
    timed_out: bool = False
    answered: int = 0  # the status the watchdog answered with (504), counted and logged by it


@dataclass
class LifecyclePolicy:
    """The group's lifecycle options, as the worker applies them."""

    request_timeout: float | None
    inactivity_timeout: float | None
    memory_soft: int | None
    memory_hard: int | None
    memory_measure: str
    memory_interval: float
    min_lifetime: float
    ignore_activity: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def for_group(cls, group: GroupConfig) -> LifecyclePolicy:
        """Build the policy from a group's config."""
        mem = group.memory
        return cls(
            group.request_timeout,
            group.inactivity_timeout,
            mem.soft,
            mem.hard,
            mem.measure,
            mem.interval,
            mem.min_lifetime,
            tuple(group.ignore_activity),
        )


class WorkerWatch:
    """The main-thread loop of a worker (see module docstring)."""

    def __init__(self, server: Any, policy: LifecyclePolicy, slot: Slot) -> None:
        self.server = server
        self.policy = policy
        self.slot = slot
        self.born = time.monotonic()
        self.next_memory = 0.0

    def tick(self, now: float) -> None:
        """One round of checks; called about every 100 ms."""
        self.publish_current(now)
        if now >= self.next_memory:
            self.next_memory = now + self.policy.memory_interval
            self._check_memory(now)
        if self.policy.request_timeout is not None:
            self._check_request_timeouts(now)
        inactivity = self.policy.inactivity_timeout
        if inactivity is not None and self.server.mode is None:
            # last_active 0: it served nothing yet, so it is as small as its replacement would
            # be; restarting it would only import the app again, every inactivity_timeout, for
            # as long as nobody comes.
            last_active = self.slot.last_active
            idle_for = time.time() - last_active
            if last_active and idle_for > inactivity and not self.server.inflight:
                log.info(
                    "worker %d (group %s): inactive for %.0fs; restarting it",
                    os.getpid(),
                    self.server.group,
                    idle_for,
                )
                self.server.retire("inactivity", now_flag=False)

    def publish_current(self, now: float) -> None:
        """Put the oldest request in flight (URL, start) and the busy thread-seconds, in-flight
        time included, in the scoreboard for the stats."""
        records = list(self.server.inflight.values())
        slot = self.slot
        busy = slot.app_seconds + sum(now - r.started for r in records)
        # A request that just ended is in neither app_seconds nor inflight for a moment: never
        # publish less than before (the next round counts it).
        if busy > slot.busy_seconds:
            slot.busy_seconds = busy
        if not records:
            slot.current_start = 0.0
            return
        oldest = min(records, key=lambda r: r.started)
        slot.url = oldest.head.target.encode("latin-1", "replace")[: URL_BYTES - 1]
        slot.current_start = time.time() - (now - oldest.started)

    def _check_memory(self, now: float) -> None:
        sample = read_memory()
        if sample is None:
            return
        slot = self.slot
        slot.rss, slot.pss, slot.uss = sample.rss, sample.pss, sample.uss
        slot.mem_sampled = time.time()
        self.server.publish_memory_by_path()
        policy = self.policy
        if now - self.born < policy.min_lifetime:
            return
        used = sample.uss if policy.memory_measure == "uss" else sample.pss
        if policy.memory_hard is not None and used > policy.memory_hard:
            self.publish_current(now)
            log.error(
                "worker %d (group %s): %s %d MiB is above the hard limit %d MiB; killed%s",
                os.getpid(),
                self.server.group,
                policy.memory_measure.upper(),
                used >> 20,
                policy.memory_hard >> 20,
                in_flight(slot),
            )
            self.server.report("retire memory_hard now")
            flush_standard_streams()  # the kill skips every flush
            os.kill(os.getpid(), signal.SIGKILL)
        if (
            policy.memory_soft is not None
            and used > policy.memory_soft
            and self.server.mode is None
        ):
            log.warning(
                "worker %d (group %s): %s %d MiB is above the soft limit %d MiB; recycling",
                os.getpid(),
                self.server.group,
                policy.memory_measure.upper(),
                used >> 20,
                policy.memory_soft >> 20,
            )
            self.server.retire("memory_soft", now_flag=True)

    def _check_request_timeouts(self, now: float) -> None:
        limit = self.policy.request_timeout
        assert limit is not None
        for record in list(self.server.inflight.values()):
            if record.timed_out or now - record.started <= limit:
                continue
            record.timed_out = True
            frame = sys._current_frames().get(record.thread_id)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)\n"
            log.error(
                "worker %d (group %s): %s %s has run %.1fs, over request_timeout %.1fs; "
                "recycling the worker. The request's thread is at:\n%s",
                os.getpid(),
                self.server.group,
                record.head.method,
                record.head.target,
                now - record.started,
                limit,
                stack.rstrip(),
            )
            response = record.response
            if response is None or not response.head_sent:
                if response is not None:
                    response.head_sent = True  # the app can no longer start its own response
                self.slot.answered_busy += 1  # if the worker dies now, this one had its answer
                record.answered = 504  # first: the request's thread may end any moment now
                try:
                    record.conn.sock.sendall(error_response(504))
                except OSError:
                    pass
                self.server.account_answer(record.conn, record.head, 504, now - record.started)
            try:
                record.conn.sock.shutdown(2)
            except OSError:
                pass
            self.server.retire("request_timeout", now_flag=True)
