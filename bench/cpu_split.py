#!/usr/bin/env python3
"""Where the server CPU's time goes per request: user, system, softirq (issue 8's 1 x 8 gap).

    python3 bench/cpu_split.py                      # hello-8t, groupserver and uWSGI, 3 rounds
    python3 bench/cpu_split.py --workload hello --servers groupserver,uwsgi,granian --rounds 5

Each server is started exactly as bench/run.py starts it for the workload (same venv, options,
pinning to CPU 0, wrk on CPU 1, a SCHED_IDLE spinner on each CPU), warmed for 2 s, then loaded
for --duration seconds. Read before and after: CPU 0's line of /proc/stat (user, system,
softirq and irq time of everything that ran on it, less what the CPU 0 spinner used) and the
server tree's own utime and stime from /proc/PID/stat. Divided by the responses wrk counted,
that says which part of a request costs what: the Python (or C, or Rust) request path is user
time; the socket calls are system time; the loopback delivery of each packet is softirq time,
accounted to whichever CPU sent it. Rounds alternate between servers (A B A B ...). Medians are
printed as a markdown table, then every round. Standard library only (and wrk); only 127.0.0.1
is used; every process started is stopped, on error too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py: the same server definitions and process handling)

WARMUP = 2.0
COLUMNS = (
    "req/s",
    "CPU 0 user",
    "CPU 0 system",
    "CPU 0 softirq",
    "CPU 0 busy",
    "tree user",
    "tree system",
    "spinner 0",
)


@dataclass
class Split:
    """One round: req/s, then µs per response (and the CPU 0 spinner's share, in %)."""

    rps: float
    user: float
    system: float
    softirq: float
    busy: float
    tree_user: float
    tree_system: float
    spinner_pct: float

    def values(self) -> tuple[float, ...]:
        return (
            self.rps,
            self.user,
            self.system,
            self.softirq,
            self.busy,
            self.tree_user,
            self.tree_system,
            self.spinner_pct,
        )


def cpu_line(cpu: int) -> list[int]:
    """user, nice, system, idle, iowait, irq, softirq ticks of one CPU."""
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith(f"cpu{cpu} "):
                return [int(v) for v in line.split()[1:8]]
    raise RuntimeError(f"no cpu{cpu} line in /proc/stat")


def tree_times(root: int) -> tuple[int, int]:
    """(user, system) ticks of the server tree, reaped children included."""
    tree = run.process_tree(root, root)
    return sum(p.user for p in tree), sum(p.system for p in tree)


def measure(
    procs: run.Processes, server: run.Server, workload: run.Workload, seconds: float, tmp: Path
) -> Split:
    """Start the server, warm it, split one wrk run's CPU 0 time, stop it."""
    port = run.free_port()
    log = tmp / f"{server.name}.log"
    proc, launch = run.start_server(procs, server, workload, port, log)
    try:
        run.wait_ready(proc, port, workload.path, log, launch.ready_line)
        run.run_wrk(run.wrk_argv(workload, port, WARMUP), timeout=WARMUP + 60)
        spinner = procs.spinner_pgids[run.SERVER_CPU]

        def counters() -> tuple[list[int], tuple[int, int], int, float]:
            cpu = cpu_line(run.SERVER_CPU)
            return cpu, tree_times(proc.pid), run.group_ticks([spinner]), time.monotonic()

        cpu0, tree0, spin0, t0 = counters()
        data = run.run_wrk(run.wrk_argv(workload, port, seconds), timeout=seconds + 90)
        cpu1, tree1, spin1, t1 = counters()
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} died during the run:\n{run.tail(log)}")
    finally:
        procs.stop(proc)
    responses = int(data["requests"])  # type: ignore[arg-type]
    if responses <= 0:
        raise RuntimeError(f"{server.name}: wrk counted no responses")
    per = 1e6 / run.CLK_TCK / responses  # µs per response for one tick
    user, nice, system, _idle, _iowait, irq, softirq = (
        b - a for a, b in zip(cpu0, cpu1, strict=True)
    )
    spun = spin1 - spin0
    user = max(0, user + nice - spun)
    return Split(
        rps=responses * 1e6 / int(data["duration_us"]),  # type: ignore[arg-type]
        user=user * per,
        system=system * per,
        softirq=(softirq + irq) * per,
        busy=(user + system + softirq + irq) * per,
        tree_user=(tree1[0] - tree0[0]) * per,
        tree_system=(tree1[1] - tree0[1]) * per,
        spinner_pct=100 * spun / run.CLK_TCK / (t1 - t0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="hello-8t", choices=sorted(run.WORKLOADS_BY_NAME))
    parser.add_argument(
        "--servers",
        default="groupserver,uwsgi",
        help="comma-separated run.py server names (groupserver,uwsgi)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each server (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--venv", type=Path, default=Path(run.DEFAULT_VENV))
    args = parser.parse_args(argv)
    workload = run.WORKLOADS_BY_NAME[args.workload]
    servers = run.servers_named(parser, args.servers, args.venv, workload)
    rounds: dict[str, list[Split]] = {s.name: [] for s in servers}
    per_round = args.duration + WARMUP + 10
    procs = run.Processes()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="gs-split-") as tmp,
            run.spinners(procs, int(per_round * args.rounds * len(servers)) + 30),
        ):
            for _ in range(args.rounds):
                for server in servers:
                    rounds[server.name].append(
                        measure(procs, server, workload, args.duration, Path(tmp))
                    )
    finally:
        procs.stop_all()
    print(
        f"{workload.name} ({workload.processes} x {workload.threads}), median of "
        f"{args.rounds} rounds of {args.duration:g} s: µs of CPU {run.SERVER_CPU} per response "
        "(spinner 0: % of CPU 0 left idle)\n"
    )
    print("| server | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "--:|" * len(COLUMNS))
    for name, splits in rounds.items():
        medians = [
            statistics.median(col) for col in zip(*(s.values() for s in splits), strict=True)
        ]
        cells = [f"{medians[0]:,.0f}", *(f"{m:.1f}" for m in medians[1:])]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for name, splits in rounds.items():
        for split in splits:
            print(
                f"{name}: "
                + ", ".join(f"{c} {v:,.1f}" for c, v in zip(COLUMNS, split.values(), strict=True))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
