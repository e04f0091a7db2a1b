#!/usr/bin/env python3
"""Where a hello-world worker's USS lies, mapping by mapping: groupserver against gunicorn sync.

    python3 bench/uss_by_mapping.py              # 3 starts of each (~30 s)
    python3 bench/uss_by_mapping.py --starts 5

Starts each server as bench/idle_uss.py does (the same run.py definitions, 1 x 1, pinned to CPU
0) and sums the worker's private pages (Private_Clean + Private_Dirty of /proc/PID/smaps) per
kind of mapping: the glibc heap, anonymous mappings (Python's 1 MiB object arenas, merged when
adjacent, and thread stacks), the main stack, the interpreter binary and other files. Read
twice: SETTLE seconds after the worker appeared, before any request, and 0.6 s after one
request. Medians over the starts, in KiB. A page that either the worker or its
master wrote after the fork is private to both, so this shows where the copies are, not who made
them. Standard library only; every process started is stopped.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import idle_uss  # noqa: E402
import run  # noqa: E402

SERVERS = ("groupserver", "gunicorn-sync")


def _kind(fields: list[str]) -> str:
    if len(fields) <= 5:
        return "anonymous: Python's object arenas, thread stacks"
    name = fields[5]
    if name == "[heap]":
        return "[heap]: glibc malloc (objects over 512 bytes, C extensions)"
    if name.startswith("["):
        return name
    base = name.rsplit("/", 1)[-1]
    if base.startswith("python3"):
        return f"{base}: the interpreter's own data"
    return "other files (shared libraries, extension modules)"


def private_by_mapping(pid: int) -> collections.Counter[str]:
    """Private KiB per kind of mapping of one process."""
    found: collections.Counter[str] = collections.Counter()
    kind = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's header: address range, perms, ...
                kind = _kind(fields)
            elif fields[0] in ("Private_Clean:", "Private_Dirty:"):
                found[kind] += int(fields[1])
    return found


def measure(procs: run.Processes, server: run.Server, tmp: Path) -> tuple[collections.Counter, ...]:
    """One start: (idle, after one request) private KiB per mapping kind."""
    proc, port = idle_uss.start_hello(procs, server, tmp)
    try:
        worker = idle_uss.find_worker(server, proc, 30.0)
        time.sleep(idle_uss.SETTLE)
        idle = private_by_mapping(worker)
        idle_uss.one_request(port)
        time.sleep(0.6)
        return idle, private_by_mapping(worker)
    finally:
        procs.stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="starts of each server (3)")
    parser.add_argument("--venv", type=Path, default=Path(run.DEFAULT_VENV))
    args = parser.parse_args(argv)
    servers = run.servers_named(parser, ",".join(SERVERS), args.venv)
    runs: dict[str, list[tuple[collections.Counter, ...]]] = {s.name: [] for s in servers}
    procs = run.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="gs-maps-") as tmp:
            for _ in range(args.starts):
                for server in servers:  # alternating, as idle_uss.py does
                    runs[server.name].append(measure(procs, server, Path(tmp)))
    finally:
        procs.stop_all()
    columns = [(name, when) for name in SERVERS for when in (0, 1)]
    kinds = sorted({k for name in SERVERS for r in runs[name] for c in r for k in c})

    def median(name: str, when: int, kind: str) -> float:
        return statistics.median(r[when][kind] for r in runs[name])

    kinds.sort(key=lambda k: -median("groupserver", 1, k))
    print(f"Worker private KiB by mapping, median of {args.starts} starts (hello world, 1 x 1)\n")
    print(
        "| mapping | "
        + " | ".join(f"{n} {'idle' if w == 0 else 'after one'}" for n, w in columns)
        + " |"
    )
    print("|---|" + "--:|" * len(columns))
    for kind in kinds:
        values = [median(n, w, kind) for n, w in columns]
        if max(values) >= 8:
            print(f"| {kind} | " + " | ".join(f"{v:,.0f}" for v in values) + " |")
    totals = [statistics.median(sum(r[w].values()) for r in runs[n]) for n, w in columns]
    print("| **total** | " + " | ".join(f"**{v:,.0f}**" for v in totals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
