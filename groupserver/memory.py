"""Reading a process's memory as the kernel sees it (cheap enough to sample every second)."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from resource import RUSAGE_THREAD as _RUSAGE_THREAD
from resource import getrusage as _getrusage


@dataclass(slots=True)
class MemorySample:
    """Resident (RSS), proportional (PSS) and unique (USS) set sizes, in bytes."""

    rss: int
    pss: int
    uss: int


def read_memory(pid: int | str = "self") -> MemorySample | None:
    """One read of /proc/PID/smaps_rollup; None when the process is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rss = pss = private = 0
    for line in data.split(b"\n"):
        if line.startswith(b"Rss:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(b"Pss:"):
            pss = int(line.split()[1]) * 1024
        elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            private += int(line.split()[1]) * 1024
    return MemorySample(rss, pss, private)


def thread_usage() -> resource.struct_rusage:
    """The calling thread's resource usage (one getrusage, ~0.3 µs: no /proc read).

    ``ru_minflt`` counts the pages this thread faulted in (new heap pages and private copies of
    pages shared with the master); ``ru_maxrss`` is the process's peak RSS in KiB.
    """
    return _getrusage(_RUSAGE_THREAD)


def memory_brought_in(
    before: resource.struct_rusage, after: resource.struct_rusage, page_size: int
) -> int:
    """Bytes of memory a request brought into the worker between two thread_usage() calls.

    The pages its thread faulted in, even if they were freed again before the request ended (a
    transient need is what this is for), or how far it raised the process's peak RSS when that
    is more: a transparent huge page comes in 2 MiB at a time but counts as one fault. Exact per
    thread, unlike a process-wide RSS difference, which charges a request with what concurrent
    requests allocated. 0 when the thread faulted in nothing.
    """
    faults = after.ru_minflt - before.ru_minflt
    if faults <= 0:
        return 0
    return max(faults * page_size, (after.ru_maxrss - before.ru_maxrss) * 1024)
