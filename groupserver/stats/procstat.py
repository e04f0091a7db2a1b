"""CPU time and context switches of a process, read from /proc (master, once a second)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class ProcSample:
    """Cumulative counters of one process at one instant."""

    at: float
    cpu_seconds: float
    voluntary: int
    involuntary: int


def sample_process(pid: int, at: float) -> ProcSample | None:
    """Read utime+stime and the context switches summed over every thread; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        voluntary = involuntary = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"voluntary_ctxt_switches:"):
                            voluntary += int(line.split()[1])
                        elif line.startswith(b"nonvoluntary_ctxt_switches:"):
                            involuntary += int(line.split()[1])
            except OSError:
                continue  # the thread ended while we looked
    except (OSError, IndexError, ValueError):
        return None
    return ProcSample(at, cpu, voluntary, involuntary)


def rates(old: ProcSample | None, new: ProcSample | None) -> dict[str, float]:
    """CPU % and context switches per second between two samples."""
    if old is None or new is None or new.at <= old.at:
        return {"cpu_percent": 0.0, "voluntary_ctx_per_s": 0.0, "involuntary_ctx_per_s": 0.0}
    dt = new.at - old.at
    return {
        "cpu_percent": round(100.0 * (new.cpu_seconds - old.cpu_seconds) / dt, 1),
        "voluntary_ctx_per_s": round((new.voluntary - old.voluntary) / dt, 1),
        "involuntary_ctx_per_s": round((new.involuntary - old.involuntary) / dt, 1),
    }
