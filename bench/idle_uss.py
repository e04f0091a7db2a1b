#!/usr/bin/env python3
"""Idle USS of one hello-world worker, groupserver against gunicorn's sync worker (issue 8).

    python3 bench/idle_uss.py                 # 7 starts of each, interleaved (~1.5 min)
    python3 bench/idle_uss.py --starts 3 --servers groupserver,gunicorn-sync,gunicorn-gthread

Each server is started exactly as bench/run.py starts it for the `hello` workload (1 process x
1 thread, same venv, same options), pinned to CPU 0. Its worker's USS (Private_Clean +
Private_Dirty of /proc/PID/smaps_rollup) is read three times:

- idle: SETTLE seconds after the worker process appeared, before any request;
- after one: 0.6 s after one `GET /` (Connection: close) was answered;
- later: 3 s after that.

plus the USS of the whole process tree at the end. Starts of the servers alternate (A B A B ...)
so that a slow patch of the machine hits both. Medians are printed as a markdown table; every
value is printed below it. Standard library only; only 127.0.0.1 is used; every process started
is stopped, on error too.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py: the same server definitions and process handling)

SETTLE = 2.0
COLUMNS = ("idle", "after one", "later", "tree")


def one_request(port: int) -> None:
    """GET / with Connection: close, read to the end."""
    with socket.create_connection((run.HOST, port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass


def find_worker(server: run.Server, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The pid of the server's one worker, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode}")
        tree = run.process_tree(proc.pid, proc.pid)
        workers = [p for p in run.worker_pids(server.worker_rule, proc.pid, tree) if p != proc.pid]
        if workers:
            return workers[0]
        time.sleep(0.02)
    raise RuntimeError(f"{server.name}: no worker after {timeout:.0f}s")


def start_hello(
    procs: run.Processes, server: run.Server, tmp: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server as run.py does for `hello` (1 x 1), pinned; returns (process, port)."""
    port = run.free_port()
    hello = run.WORKLOADS_BY_NAME["hello"]
    proc, _launch = run.start_server(procs, server, hello, port, tmp / f"{server.name}.log")
    return proc, port


def measure(procs: run.Processes, server: run.Server, tmp: Path) -> tuple[int, int, int, int]:
    """One start of one server: (idle, after one request, later, whole tree) in KiB."""
    proc, port = start_hello(procs, server, tmp)
    try:
        worker = find_worker(server, proc, 30.0)
        time.sleep(SETTLE)
        idle = run.uss_kib(worker)
        one_request(port)
        time.sleep(0.6)
        after = run.uss_kib(worker)
        time.sleep(3.0)
        later = run.uss_kib(worker)
        tree = sum(run.uss_kib(p.pid) for p in run.process_tree(proc.pid, proc.pid))
        if not (idle and after and later):
            raise RuntimeError(f"{server.name}: the worker went away during the measurement")
        return idle, after, later, tree
    finally:
        procs.stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=7, help="starts of each server (7)")
    parser.add_argument(
        "--servers",
        default="groupserver,gunicorn-sync",
        help="comma-separated run.py server names (groupserver,gunicorn-sync)",
    )
    parser.add_argument("--venv", type=Path, default=Path(run.DEFAULT_VENV))
    args = parser.parse_args(argv)
    servers = run.servers_named(parser, args.servers, args.venv)
    rows: dict[str, list[tuple[int, int, int, int]]] = {s.name: [] for s in servers}
    procs = run.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="gs-uss-") as tmp:
            for _ in range(args.starts):
                for server in servers:
                    rows[server.name].append(measure(procs, server, Path(tmp)))
    finally:
        procs.stop_all()
    print(
        f"Worker USS in KiB, median of {args.starts} starts (hello world, 1 x 1; idle = "
        f"{SETTLE:.0f} s after the worker appeared, before any request)\n"
    )
    print("| server | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "--:|" * len(COLUMNS))
    for name, values in rows.items():
        medians = [statistics.median(col) for col in zip(*values, strict=True)]
        print(f"| {name} | " + " | ".join(f"{m:,.0f}" for m in medians) + " |")
    print()
    for name, values in rows.items():
        for column, col in zip(COLUMNS, zip(*values, strict=True), strict=True):
            print(f"{name} {column}: {', '.join(str(v) for v in col)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
