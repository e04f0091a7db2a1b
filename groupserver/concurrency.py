"""How many requests a worker runs at once (`concurrency`), used by its request threads.

Threads help a worker only while its requests wait on something other than the GIL: a database,
an API, a sleep. Requests that only compute take turns on one GIL, so running eight of them at
once serves no more per second than running one, and every request then waits for the other
seven. On one core that wait comes in scheduler ticks: hello world at 1 x 8 had a p99 of 54 ms
with all eight threads running, 0.6 ms with one (the same 41k req/s).

So the limit follows what the requests of each interval did. Did they block? A request that
waits on I/O leaves the CPU voluntarily (a voluntary context switch of its thread, counted by the
kernel, read with the getrusage call memory_by_url makes anyway); one that only computes hardly
ever does, even eight at once (0.07 switches per request measured at 1 x 8), and being preempted
by other processes is involuntary. Requests that rarely block narrow the limit by one per
interval. When they do block, the time they spent in the app over the CPU time the process used
says how many could overlap: above 1.25 times the limit, the limit widens to it. Whatever they
did, a process that uses about one core has a saturated GIL, and the limit narrows; one that
uses more runs C code outside the GIL in parallel, and the limit holds. (Per-request CPU time
would be a finer ratio, but getrusage's is tick-sampled, 5x off for a 25 µs request, and a
precise clock costs 0.4 µs twice per request; the process's CPU share alone mistakes a core
shared with other busy processes for I/O.)

A request that blocks and does not finish shows in neither, and one that computes for long
would make every request behind it wait for all of it, where running it beside them would cost
it a little and them almost nothing. So while the limit is reached, a waiting thread looks every
LONG_AFTER: when every running request has been in the app for longer, and either the process
was nearly idle meanwhile (they are blocked) or one of them kept its thread on the CPU for most
of it (it computes for long), one more request may run at once (`one_more`). Requests that are
long only because they queue for the GIL do neither, and let nobody in: that queue is what the
limit is for. A fixed `concurrency: N` skips all of it. Pure: the worker passes the measurements
in.
"""

from __future__ import annotations

import math

# Finished requests an interval needs before the limit moves on their evidence.
MIN_SAMPLES = 8
# Requests block (I/O) from this many voluntary context switches per request on average.
BLOCKING = 0.25
# The GIL is saturated from this CPU share of one core (a little under 1: polling, ticks)...
SATURATED = 0.9
# ...and threads run in parallel (C code without the GIL) above this one.
PARALLEL = 1.1
# Time in the app over CPU time above this many times the limit: requests wait on I/O.
WIDEN_ABOVE = 1.25
# Every allowed request in the app longer than this, blocked or one computing: one more
# (seconds; the GIL's default switch interval, the slice a long computing request would get
# beside others anyway).
LONG_AFTER = 0.005
IDLE_SHARE = 0.25  # the process used less of a core than this: the requests are blocked
HOG_SHARE = 0.5  # one request's thread ran this much of the time: it computes for long


class ConcurrencyLimit:
    """The number of requests one worker may run at once, adapted to what they do."""

    __slots__ = ("threads", "adaptive", "value", "wall", "switches", "count")

    def __init__(self, threads: int, setting: str | int = "auto") -> None:
        self.threads = threads
        self.adaptive = setting == "auto"
        # Start wide: a new worker knows nothing of its app, and too few threads for a blocking
        # app queue its requests, while too many for a computing one cost only latency.
        self.value = threads if self.adaptive else max(1, min(int(setting), threads))
        self.wall = 0.0
        self.switches = 0
        self.count = 0

    def record(self, wall: float, switches: int) -> None:
        """Account one finished request: seconds in the app, voluntary context switches."""
        self.wall += wall
        self.switches += switches
        self.count += 1

    def adjust(self, interval: float, cpu: float) -> int:
        """Move the limit at the end of an interval; returns it.

        interval: the interval's wall time; cpu: the CPU time the process used in it (seconds).
        """
        if not self.adaptive or interval <= 0:
            return self.value
        cpu_share = cpu / interval
        limit = self.value
        if cpu_share > PARALLEL:
            pass  # C code runs outside the GIL in parallel: the threads help
        elif cpu_share >= SATURATED:
            limit = max(1, limit - 1)
        elif self.count >= MIN_SAMPLES:
            if self.switches < BLOCKING * self.count:  # they compute: they only queue for the GIL
                limit = max(1, limit - 1)
            else:
                ratio = self.wall / max(cpu, 1e-6)
                if ratio > WIDEN_ABOVE * limit:
                    limit = min(self.threads, math.ceil(ratio))
        self.wall = 0.0
        self.switches = 0
        self.count = 0
        self.value = limit
        return limit

    def one_more(self, process_share: float, busiest_share: float) -> bool:
        """Every allowed request stayed in the app for LONG_AFTER: let one more in if they are
        blocked (process_share: the process's CPU share meanwhile, below IDLE_SHARE) or one of
        them computes (busiest_share: the most CPU one of their threads had, HOG_SHARE or more).

        Returns whether the limit rose (not with a fixed setting, nor beyond threads)."""
        if not self.adaptive or self.value >= self.threads:
            return False
        if process_share >= IDLE_SHARE and busiest_share < HOG_SHARE:
            return False  # long because they wait for each other's GIL
        self.value += 1
        return True
