"""The scoreboard: one slot per process in shared memory, written by its owner, read by the master.

The master creates it before forking (an anonymous ``MAP_SHARED`` mapping, inherited by every
child) and gives each worker and front a slot. A process writes only its own slot, so nothing
needs a lock; the master reads every slot to supervise (recycle reasons, inactivity, memory),
to scale groups (busy threads, backlog) and to serve the stats. The master never blocks on a
worker: it only ever reads memory.

Backlog of a group = connections handed to it (summed over every sender's slot) minus connections
taken by its workers; both counters only grow, and a finished process's counts are folded into
the group totals kept by the master.
"""

from __future__ import annotations

import ctypes
import mmap
import time
from bisect import bisect_left

from groupserver.capacity import MAX_GROUPS, MAX_SLOTS
from groupserver.wording import counted

URL_BYTES = 120

# Latency histogram bucket upper bounds in seconds (the last bucket is +Inf).
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
N_BUCKETS = len(BUCKETS) + 1

# slot.state
FREE, STARTING, READY, RETIRING = 0, 1, 2, 3
STATE_NAMES = {FREE: "free", STARTING: "starting", READY: "ready", RETIRING: "retiring"}

# slot.role
ROLE_WORKER, ROLE_FRONT = 1, 2

# Recycle reasons: why a worker left (slot.reason), also the keys of restarts-by-reason.
REASONS = (
    "",
    "max_requests",
    "inactivity",
    "memory_soft",
    "memory_hard",
    "request_timeout",
    "governor",
    "governor_kill",
    "crash",
    "reload",
    "scale_down",
    "startup_timeout",
    "control",
    "stopped",
    "startup_failed",
)
REASON_CODES = {name: code for code, name in enumerate(REASONS)}


def bucket_index(seconds: float) -> int:
    """The histogram bucket a duration falls in (bucket i holds BUCKETS[i-1] < d <= BUCKETS[i])."""
    return bisect_left(BUCKETS, seconds)


MEM_URLS = 16
MEM_URL_BYTES = 96


class MemUrl(ctypes.Structure):
    """How much one path grew a worker's RSS (the worker's top paths, by total growth)."""

    _fields_ = [
        ("path", ctypes.c_char * MEM_URL_BYTES),
        ("count", ctypes.c_uint32),
        ("max_growth", ctypes.c_uint64),
        ("total_growth", ctypes.c_uint64),
    ]


class Slot(ctypes.Structure):
    """One process's row. Counters only grow while the process lives."""

    _fields_ = [
        ("pid", ctypes.c_int32),
        ("group", ctypes.c_int16),
        ("role", ctypes.c_uint8),
        ("state", ctypes.c_uint8),
        ("reason", ctypes.c_uint8),  # why it is retiring / was recycled (REASONS)
        ("threads", ctypes.c_uint16),
        ("busy", ctypes.c_uint16),
        ("answered_busy", ctypes.c_uint16),  # of busy: answered by the watchdog (504) already
        ("peak_busy", ctypes.c_uint16),  # most threads busy at once
        ("concurrency", ctypes.c_uint16),  # requests it may run at once now (concurrency)
        ("conns", ctypes.c_uint32),  # connections the worker holds (in flight + idle keep-alive)
        ("generation", ctypes.c_uint16),
        ("started", ctypes.c_double),  # time.time() at fork
        ("last_active", ctypes.c_double),  # time.time() of the last request that counts; 0: none
        ("heartbeat", ctypes.c_double),  # time.monotonic() of the worker's last watch round
        ("current_start", ctypes.c_double),  # oldest request in flight (0: none)
        ("requests", ctypes.c_uint64),
        ("taken", ctypes.c_uint64),  # connections taken from the group's channel
        ("rss", ctypes.c_uint64),
        ("uss", ctypes.c_uint64),
        ("pss", ctypes.c_uint64),
        ("mem_sampled", ctypes.c_double),
        ("app_seconds", ctypes.c_double),  # thread-seconds spent serving requests
        # app_seconds plus the time so far of the requests in flight (for the utilisation: a
        # request counts in app_seconds only when it ends), published by the watch every 0.1 s
        ("busy_seconds", ctypes.c_double),
        ("queue_seconds", ctypes.c_double),
        ("status", ctypes.c_uint64 * 6),  # index = status // 100 (0: connection failures)
        ("app_hist", ctypes.c_uint32 * N_BUCKETS),
        ("queue_hist", ctypes.c_uint32 * N_BUCKETS),
        ("shed_queue", ctypes.c_uint64),  # 503 by queue_timeout
        ("shed_limits", ctypes.c_uint64),  # 4xx by limits (413, 414, 431, 408)
        ("shed_unavailable", ctypes.c_uint64),  # 503 by the master: the group is failing
        ("evicted", ctypes.c_uint64),  # idle connections closed to make room (at the cap)
        ("handed", ctypes.c_uint64 * MAX_GROUPS),  # connections this process put in each queue
        ("url", ctypes.c_char * URL_BYTES),  # the oldest request in flight
        ("mem_urls", MemUrl * MEM_URLS),
    ]


def in_flight(slot: Slot) -> str:
    """What a worker is serving, for a log line about its end: "" when nothing, else
    "; 1 request in flight (the oldest: /path?q for 2.1s)"."""
    busy = slot.busy
    if not busy:
        return ""
    what = f"; {counted(busy, 'request')} in flight"
    if slot.current_start:  # the worker's watch has published the oldest one
        url = slot.url.decode("latin-1", "replace")
        what += f" (the oldest: {url} for {max(0.0, time.time() - slot.current_start):.1f}s)"
    return what


class ScoreboardFull(RuntimeError):
    """Every slot is taken (far more processes at once than the config allows)."""


class Scoreboard:
    """The shared slots (create in the master before any fork)."""

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self.size = slots
        self._map = mmap.mmap(-1, ctypes.sizeof(Slot) * slots)
        self.slots = (Slot * slots).from_buffer(self._map)

    def allocate(self, role: int, group: int, pid_hint: int = 0) -> int:
        """Reserve a free slot (master, before the fork) and return its index."""
        for index in range(self.size):
            slot = self.slots[index]
            if slot.state == FREE and slot.role == 0:
                ctypes.memset(ctypes.addressof(slot), 0, ctypes.sizeof(Slot))
                slot.role = role
                slot.group = group
                slot.state = STARTING
                slot.pid = pid_hint
                return index
        raise ScoreboardFull(f"no free slot: all {self.size} are in use")

    def release(self, index: int) -> None:
        """Free a slot after its process was reaped (master)."""
        ctypes.memset(ctypes.addressof(self.slots[index]), 0, ctypes.sizeof(Slot))

    def __getitem__(self, index: int) -> Slot:
        return self.slots[index]


_COUNTERS = (
    "requests",
    "taken",
    "app_seconds",
    "busy_seconds",
    "queue_seconds",
    "shed_queue",
    "shed_limits",
    "shed_unavailable",
    "evicted",
)
_ARRAYS = ("status", "app_hist", "queue_hist", "handed")


def accumulate(into: Slot, src: Slot) -> None:
    """Add src's counters to into (the master folds a finished process into its group's totals)."""
    for name in _COUNTERS:
        setattr(into, name, getattr(into, name) + getattr(src, name))
    for name in _ARRAYS:
        target, source = getattr(into, name), getattr(src, name)
        for i in range(len(target)):
            target[i] += source[i]
