"""How many requests a worker runs at once (`concurrency`), used by its request threads.

Threads help a worker only while its requests wait on something other than the GIL: a database,
an API, a sleep. Requests that only compute take turns on one GIL, so running eight of them at
once serves no more per second than running one, and every request then waits for the other
seven. On one core that wait comes in scheduler ticks: hello world at 1 x 8 had a p99 of 54 ms
with all eight threads running, 0.6 ms with one (the same 41k req/s).

So the limit follows two measurements per interval. The worker's CPU share (process CPU time
over wall time): at about one core, the GIL is saturated and more requests at once cannot help,
so the limit narrows by one. And, while the CPU has room, the time requests spent in the app
over the CPU time the process used: requests that wait on I/O spend most of their time off the
CPU, so a ratio above the limit means more of them could overlap, and the limit widens to it.
(Per-request thread CPU time would be finer, but getrusage's is tick-sampled, 5x off for a 25 µs
request, and a precise clock read costs 0.4 µs twice per request.) A share above one core means C
code runs outside the GIL in parallel: threads help, nothing narrows.

A request that blocks and does not finish shows in neither, so a thread that finds every allowed
request in the app for longer than STALL_AFTER while the process is nearly idle lets one more
request in at once (`stalled`). A fixed `concurrency: N` skips all that. Pure: the worker passes
the measurements in.
"""

from __future__ import annotations

import math

# Finished requests an interval needs before the limit widens on their evidence.
MIN_SAMPLES = 8
# The GIL is saturated from this CPU share of one core (a little under 1: polling, ticks)...
SATURATED = 0.9
# ...and threads run in parallel (C code without the GIL) above this one.
PARALLEL = 1.1
# Time in the app over CPU time above this many times the limit: requests wait on I/O.
WIDEN_ABOVE = 1.25
# Every allowed request in the app longer than this, the process nearly idle: one more (s).
STALL_AFTER = 0.005
IDLE_SHARE = 0.25


class ConcurrencyLimit:
    """The number of requests one worker may run at once, adapted to what they do."""

    __slots__ = ("threads", "adaptive", "value", "wall", "count")

    def __init__(self, threads: int, setting: str | int = "auto") -> None:
        self.threads = threads
        self.adaptive = setting == "auto"
        # Start wide: a new worker knows nothing of its app, and too few threads for a blocking
        # app queue its requests, while too many for a computing one cost only latency.
        self.value = threads if self.adaptive else max(1, min(int(setting), threads))
        self.wall = 0.0
        self.count = 0

    def record(self, wall: float) -> None:
        """Account one finished request: the seconds it spent in the app."""
        self.wall += wall
        self.count += 1

    def adjust(self, interval: float, cpu: float) -> int:
        """Move the limit at the end of an interval; returns it.

        interval: the interval's wall time; cpu: the CPU time the process used in it (seconds).
        """
        if not self.adaptive or interval <= 0:
            return self.value
        cpu_share = cpu / interval
        limit = self.value
        if SATURATED <= cpu_share <= PARALLEL:
            limit = max(1, limit - 1)
        elif cpu_share < SATURATED and self.count >= MIN_SAMPLES:
            ratio = self.wall / max(cpu, 1e-6)
            if ratio > WIDEN_ABOVE * limit:
                limit = min(self.threads, math.ceil(ratio))
        self.wall = 0.0
        self.count = 0
        self.value = limit
        return limit

    def stalled(self, cpu_share: float) -> bool:
        """Every allowed request stayed in the app for STALL_AFTER, the process using cpu_share
        of a core meanwhile: let one more in when that looks blocked. Returns whether it did."""
        if not self.adaptive or self.value >= self.threads or cpu_share >= IDLE_SHARE:
            return False
        self.value += 1
        return True
