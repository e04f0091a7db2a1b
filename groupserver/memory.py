"""Reading a process's memory as the kernel sees it (cheap enough to sample every second)."""

from __future__ import annotations

from dataclasses import dataclass
from os import pread as _pread


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


def read_rss(statm_fd: int, page_size: int) -> int:
    """RSS in bytes from an open /proc/self/statm (one pread, about a microsecond)."""
    return int(_pread(statm_fd, 64, 0).split(b" ", 2)[1]) * page_size
