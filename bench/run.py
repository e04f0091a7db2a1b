#!/usr/bin/env python3
"""Run the groupserver benchmark suite against its peers, side by side, in one run.

    bench/setup.sh                               # once: peers, wrk, the bench venv
    python3 bench/run.py                         # every workload, 3 interleaved rounds of 5 s
    python3 bench/run.py --quick                 # smoke run: 1 round of 1 s
    python3 bench/run.py --only hello,partitioned --servers groupserver,gunicorn-gthread

Method (see bench/README.md and /work/shared/BENCHMARKING.md):
- one SCHED_IDLE spinner per CPU for the whole run, in this process's session, so that no vCPU
  halts between requests (waking one costs ~140 us);
- the server pinned to CPU 0 and wrk to CPU 1;
- per workload, rounds interleaved across servers (A B C, A B C, ...), and the median of the
  rounds reported with the ratio groupserver/peer: never compare with another run's numbers;
- wrk runs one connection per thread, so its Lua script counts the requests of every connection
  and starvation (a connection with < 10% of the mean) shows;
- server CPU per request is the utime+stime of the server's whole process tree (/proc/PID/stat)
  over the measured window, divided by the responses; memory is the tree's USS (smaps_rollup).

Standard library only (Python 3.10+). Only 127.0.0.1 is ever targeted. Every process started here
(servers in their own process groups, spinners) is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"  # the only address this script ever talks to
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "wrk"
DEFAULT_VENV = os.environ.get("BENCH_VENV", "/tmp/groupserver-bench-venv")
SERVER_CPU = 0
CLIENT_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARVED_FRACTION = 0.10
NOISY_PCT = 5.0  # a run where other processes used this much of the machine is marked
ADMIN_EVERY = 100  # partitioned site: every 100th request of a connection is /admin


# --- workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One benchmark scenario: an app, a request pattern and a processes x threads budget."""

    name: str
    title: str
    measures: str
    app: str  # module:callable, importable from bench/
    processes: int
    threads: int
    connections: int
    mode: str  # count.lua mode (get, close, post) or "mixed" for mixed.lua
    path: str = "/"
    post_bytes: int = 0
    partitioned: bool = False  # groupserver: main + admin groups; peers: one pool


WORKLOADS: list[Workload] = [
    Workload(
        "hello",
        "hello world, keep-alive, 1 process x 1 thread",
        "the per-request fast path",
        "hello_app:application",
        1,
        1,
        16,
        "get",
    ),
    Workload(
        "hello-8t",
        "hello world, keep-alive, 1 process x 8 threads",
        "the fast path when the worker has a thread pool",
        "hello_app:application",
        1,
        8,
        16,
        "get",
    ),
    Workload(
        "hello-close",
        "hello world, Connection: close, 1 process x 1 thread",
        "cost per new connection (accept, front hand-off, close)",
        "hello_app:application",
        1,
        1,
        16,
        "close",
    ),
    Workload(
        "body-10k",
        "10 KB response, keep-alive, 1 x 1",
        "writing a mid-sized body",
        "bench_apps:body_10k",
        1,
        1,
        16,
        "get",
    ),
    Workload(
        "file-1m",
        "1 MB response via wsgi.file_wrapper, keep-alive, 1 x 1",
        "large responses (sendfile where the server uses it)",
        "bench_apps:file_1m",
        1,
        1,
        16,
        "get",
    ),
    Workload(
        "post-64k",
        "64 KB POST read by the app, keep-alive, 1 x 1",
        "reading a request body",
        "bench_apps:post",
        1,
        1,
        16,
        "post",
        post_bytes=65536,
    ),
    Workload(
        "sleep-10ms",
        "app sleeps 10 ms, 64 connections, 1 process x 8 threads",
        "thread pool behaviour with blocking apps (ideal: 800 req/s)",
        "bench_apps:sleep_10ms",
        1,
        8,
        64,
        "get",
    ),
    Workload(
        "partitioned",
        "partitioned site: hot / plus 1% slow 50 MB /admin, 3 processes x 4 threads",
        "p99 of / when a slow, memory-hungry URL shares the site; groupserver: main 2x4 for /, "
        "admin 1x4 for /admin; peers: one pool of 3x4",
        "bench_apps:site",
        3,
        4,
        16,
        "mixed",
        partitioned=True,
    ),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}
GS_MAIN = (2, 4)  # partitioned: groupserver's main group (processes, threads)
GS_ADMIN = (1, 4)  # and its admin group; 2x4 + 1x4 = the peers' 3x4


# --- servers -------------------------------------------------------------------------------------


@dataclass
class Launch:
    """How to start one server: argv (without the taskset prefix) and how to stop it."""

    argv: list[str]
    stop_signal: int = signal.SIGINT
    ready_line: str | None = None  # wait for this text in the server's output too
    config: str = ""  # processes x threads as run, for the tables


class Server:
    """A server under test. Subclasses build the command line for a workload."""

    name = ""
    package = ""  # distribution name, for the version
    worker_rule = "children"  # which processes are workers: children, root, or title:TEXT

    def __init__(self, venv: Path) -> None:
        self.venv = venv

    def bin(self, name: str) -> str:
        """Path of an executable in the bench venv."""
        return str(self.venv / "bin" / name)

    def available(self) -> str | None:
        """None when installed, else the reason it is not."""
        exe = Path(self.bin(self.executable()))
        return None if exe.exists() else f"{exe} not found (run bench/setup.sh)"

    def executable(self) -> str:
        """The venv executable this server needs."""
        raise NotImplementedError

    def skip_reason(self, workload: Workload) -> str | None:
        """None when this server can run the workload with the same processes x threads."""
        return None

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        """The command line for `workload` on `port`; config files go in `tmp`."""
        raise NotImplementedError


class GroupServer(Server):
    """groupserver from this checkout (installed editable in the bench venv)."""

    name = "groupserver"
    package = "groupserver"
    worker_rule = "title:(wsgi:"

    def executable(self) -> str:
        return "groupserver"

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        module = json.dumps([str(BENCH_DIR)])
        app = json.dumps(workload.app)
        lines = [
            "site: bench",
            f"listen: ['{HOST}:{port}']",
            "groups:",
        ]
        if workload.partitioned:
            (mp, mt), (ap, at) = GS_MAIN, GS_ADMIN
            lines += [
                f"  main: {{app: {app}, processes: {mp}, threads: {mt}, python_path: {module}}}",
                f"  admin: {{app: {app}, processes: {ap}, threads: {at}, python_path: {module}}}",
                "routes:",
                "  - {prefix: /admin, group: admin}",
                "default_group: main",
            ]
            config = f"main {mp}x{mt} + admin {ap}x{at}"
        else:
            p, t = workload.processes, workload.threads
            lines += [
                f"  main: {{app: {app}, processes: {p}, threads: {t}, python_path: {module}}}",
                "default_group: main",
            ]
            config = f"{p}x{t}"
        site = tmp / "site.yaml"
        site.write_text("\n".join(lines) + "\n")
        return Launch(
            [self.bin("groupserver"), "serve", str(site)],
            stop_signal=signal.SIGINT,
            ready_line="ready:",
            config=config,
        )


class GunicornSync(Server):
    """gunicorn's sync worker: one request at a time per process."""

    name = "gunicorn-sync"
    package = "gunicorn"

    def executable(self) -> str:
        return "gunicorn"

    def skip_reason(self, workload: Workload) -> str | None:
        if workload.threads > 1:
            return "the sync worker has no threads"
        return None

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        argv = [
            self.bin("gunicorn"),
            "--worker-class",
            "sync",
            "--workers",
            str(workload.processes),
            *_gunicorn_common(self.venv, port, workload, tmp),
        ]
        return Launch(argv, config=f"{workload.processes}x1 (sync)")


class GunicornGthread(Server):
    """gunicorn's gthread worker: 8 threads per process, or the workload's threads when > 1."""

    name = "gunicorn-gthread"
    package = "gunicorn"

    def executable(self) -> str:
        return "gunicorn"

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        threads = workload.threads if workload.threads > 1 else 8
        argv = [
            self.bin("gunicorn"),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--workers",
            str(workload.processes),
            *_gunicorn_common(self.venv, port, workload, tmp),
        ]
        return Launch(argv, config=f"{workload.processes}x{threads}")


_GUNICORN_HAS_CONTROL_SOCKET: dict[Path, bool] = {}


def _gunicorn_common(venv: Path, port: int, workload: Workload, tmp: Path) -> list[str]:
    args = [
        "--bind",
        f"{HOST}:{port}",
        "--chdir",
        str(BENCH_DIR),
        "--log-level",
        "warning",
        "--worker-tmp-dir",
        str(tmp),
        "--keep-alive",
        "30",
    ]
    if venv not in _GUNICORN_HAS_CONTROL_SOCKET:
        # gunicorn 27 opens a control socket in ~/.gunicorn by default: one per run would clash.
        help_text = subprocess.run(
            [str(venv / "bin" / "gunicorn"), "--help"], capture_output=True, text=True
        ).stdout
        _GUNICORN_HAS_CONTROL_SOCKET[venv] = "--no-control-socket" in help_text
    if _GUNICORN_HAS_CONTROL_SOCKET[venv]:
        args.append("--no-control-socket")
    return [*args, workload.app]


class UWSGI(Server):
    """uWSGI with its HTTP/1.1 socket (no router process), master, processes and threads."""

    name = "uwsgi"
    package = "uwsgi"

    def executable(self) -> str:
        return "uwsgi"

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        argv = [
            self.bin("uwsgi"),
            "--http11-socket",
            f"{HOST}:{port}",
            "--master",
            "--processes",
            str(workload.processes),
            "--module",
            workload.app,
            "--chdir",
            str(BENCH_DIR),
            "--disable-logging",
            "--die-on-term",
            "--need-app",
            "--listen",
            "1024",
        ]
        if workload.threads > 1:
            argv += ["--threads", str(workload.threads)]
        return Launch(argv, config=f"{workload.processes}x{workload.threads}")


class Granian(Server):
    """Granian's WSGI interface: Rust HTTP, the app on a pool of blocking threads."""

    name = "granian"
    package = "granian"

    def executable(self) -> str:
        return "granian"

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        argv = [
            self.bin("granian"),
            "--interface",
            "wsgi",
            "--http",
            "1",
            "--no-ws",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workload.processes),
            "--blocking-threads",
            str(workload.threads),
            "--log-level",
            "warning",
            "--working-dir",
            str(BENCH_DIR),
            workload.app,
        ]
        return Launch(argv, config=f"{workload.processes}x{workload.threads}")


class Waitress(Server):
    """waitress: one process, a pool of threads."""

    name = "waitress"
    package = "waitress"
    worker_rule = "root"

    def executable(self) -> str:
        return "waitress-serve"

    def skip_reason(self, workload: Workload) -> str | None:
        if workload.processes > 1:
            return "waitress runs one process only"
        return None

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        argv = [
            self.bin("waitress-serve"),
            f"--listen={HOST}:{port}",
            f"--threads={workload.threads}",
            "--connection-limit=1000",
            workload.app,
        ]
        return Launch(argv, config=f"1x{workload.threads}")


class ModWsgi(Server):
    """mod_wsgi-express: Apache (event MPM) in front of mod_wsgi daemon processes."""

    name = "mod_wsgi"
    package = "mod_wsgi"
    worker_rule = "title:(wsgi:"

    def executable(self) -> str:
        return "mod_wsgi-express"

    def launch(self, workload: Workload, port: int, tmp: Path) -> Launch:
        module, _, attr = workload.app.partition(":")
        script = tmp / "app.wsgi"
        script.write_text(f"from {module} import {attr} as application\n")
        root = tmp / "httpd"
        root.mkdir(exist_ok=True)
        # Apache's children and the daemons run as an unprivileged user when started as root:
        # they must reach the script and the server root.
        for path in (tmp, root, script):
            path.chmod(0o755)
        argv = [
            self.bin("mod_wsgi-express"),
            "start-server",
            str(script),
            "--host",
            HOST,
            "--port",
            str(port),
            "--processes",
            str(workload.processes),
            "--threads",
            str(workload.threads),
            "--server-root",
            str(root),
            "--python-path",
            str(BENCH_DIR),
            "--locale",
            "C.UTF-8",
            "--log-to-terminal",
            "--enable-sendfile",
        ]
        if os.geteuid() == 0:
            argv += ["--user", "www-data", "--group", "www-data"]
        return Launch(
            argv,
            stop_signal=signal.SIGTERM,
            config=f"{workload.processes}x{workload.threads} (daemon)",
        )


SERVER_CLASSES: list[type[Server]] = [
    GroupServer,
    GunicornSync,
    GunicornGthread,
    UWSGI,
    Granian,
    Waitress,
    ModWsgi,
]


def servers_named(
    parser: argparse.ArgumentParser, names: str, venv: Path, workload: Workload | None = None
) -> list[Server]:
    """The servers a side script's comma-separated --servers names, each installed (and able
    to run workload, when given); a parser error naming the first that is not."""
    known = {cls.name: cls for cls in SERVER_CLASSES}
    servers = []
    for name in names.split(","):
        if name not in known:
            parser.error(f"--servers: unknown server {name!r} (known: {', '.join(known)})")
        server = known[name](venv)
        problem = server.available() or (workload and server.skip_reason(workload))
        if problem:
            parser.error(f"--servers: {name}: {problem}")
        servers.append(server)
    return servers


REFERENCE = "groupserver"


# --- /proc: process trees, CPU and memory -----------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    """The /proc/PID/stat fields used here."""

    pid: int
    ppid: int
    pgrp: int
    user: int  # utime + cutime (reaped children's CPU lands in cutime/cstime)
    system: int  # stime + cstime
    zombie: bool

    @property
    def ticks(self) -> int:
        """All the CPU clock ticks it used."""
        return self.user + self.system


def _read_stat(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain ") ": split at the last one.
    fields = data[data.rfind(b")") + 2 :].split()
    user, system = int(fields[11]) + int(fields[13]), int(fields[12]) + int(fields[14])
    return ProcInfo(pid, int(fields[1]), int(fields[2]), user, system, fields[0] == b"Z")


def _all_procs() -> list[ProcInfo]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_stat(int(entry))
            if info is not None:
                procs.append(info)
    return procs


def process_tree(root: int, pgid: int) -> list[ProcInfo]:
    """The root, its descendants and anything still in its process group."""
    procs = _all_procs()
    children: dict[int, list[ProcInfo]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found = {p.pid: p for p in procs if p.pgrp == pgid or p.pid == root}
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                stack.append(child.pid)
    return list(found.values())


def tree_cpu_ticks(root: int, pgid: int) -> int:
    """CPU clock ticks used so far by the whole server tree."""
    return sum(p.ticks for p in process_tree(root, pgid))


def group_ticks(pgids: Iterable[int]) -> int:
    """CPU clock ticks used so far by the processes of these process groups (spinners)."""
    wanted = set(pgids)
    return sum(p.ticks for p in _all_procs() if p.pgrp in wanted)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters, to tell how much of the machine something else used during a run."""

    wall: float
    busy: int  # ticks, all CPUs: user + nice + system + irq + softirq
    steal: int  # ticks the hypervisor took
    ours: float  # seconds: the server tree, our spinners, this script and its reaped children

    @classmethod
    def take(cls, server_ticks: int, spinner_pgids: Sequence[int]) -> CpuSnapshot:
        """Read /proc/stat and our own counters now."""
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        pgids = set(spinner_pgids)
        spinner_ticks = group_ticks(pgids)
        me = os.times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = (
            (server_ticks + spinner_ticks) / CLK_TCK
            + me.user
            + me.system
            + children.ru_utime
            + children.ru_stime
        )
        return cls(time.monotonic(), user + nice + system + irq + softirq, steal, ours)


def other_load(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, float]:
    """(CPU used by processes not ours, CPU stolen by the hypervisor), in % of all CPUs."""
    capacity = (after.wall - before.wall) * (os.cpu_count() or 1)
    if capacity <= 0:
        return 0.0, 0.0
    busy = (after.busy - before.busy) / CLK_TCK
    other = max(0.0, busy - (after.ours - before.ours))
    steal = (after.steal - before.steal) / CLK_TCK
    return 100 * other / capacity, 100 * steal / capacity


def uss_kib(pid: int) -> int:
    """Unique set size (private clean + dirty pages) of one process in KiB, 0 if gone."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


def cmdline(pid: int) -> str:
    """The process's command line (its title, for servers that set one)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def worker_pids(rule: str, root: int, tree: Sequence[ProcInfo]) -> list[int]:
    """The worker processes of a server tree, by the server's rule."""
    if rule == "root":
        return [root]
    if rule.startswith("title:"):
        text = rule[len("title:") :]
        return [p.pid for p in tree if cmdline(p.pid).startswith(text)]
    return [p.pid for p in tree if p.ppid == root]


# --- process handling --------------------------------------------------------------------------


def _child_setup() -> None:
    """In a child before exec: own process group (same session), and TERM if we die."""
    os.setpgid(0, 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    return any(p.pgrp == pgid and not p.zombie for p in _all_procs())


def kill_group(proc: subprocess.Popen[bytes], first: int, grace: float) -> None:
    """Send `first` to the group leader, wait up to `grace` s, then SIGKILL the whole group."""
    pgid = proc.pid
    if proc.poll() is None:
        try:
            os.kill(proc.pid, first)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 2.0
    kills = 0
    while proc.poll() is None or _group_alive(pgid):  # poll() reaps the leader
        if time.monotonic() > deadline:
            if kills == 3:
                print(f"warning: process group {pgid} survives SIGKILL", file=sys.stderr)
                break
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            kills += 1
            deadline = time.monotonic() + 2.0
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Processes:
    """Every process this script starts, so that all of them are stopped whatever happens."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], int]] = []
        self.spinner_pgids: list[int] = []

    def start(
        self, argv: list[str], signal_on_stop: int, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """Start argv in its own process group (same session: autogroup shares the spinners')."""
        proc = subprocess.Popen(argv, preexec_fn=_child_setup, **kwargs)  # type: ignore
        self.running.append((proc, signal_on_stop))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        """Stop one process group started here."""
        for item in self.running:
            if item[0] is proc:
                self.running.remove(item)
                kill_group(proc, item[1], grace)
                return

    def stop_all(self) -> None:
        """Stop everything still running, newest first."""
        while self.running:
            proc, sig = self.running.pop()
            kill_group(proc, sig, 5.0)


@contextmanager
def spinners(procs: Processes, seconds: int) -> Iterator[None]:
    """One SCHED_IDLE busy loop per CPU so that no vCPU halts while the run lasts.

    Each loop also ends by itself after `seconds`, or as soon as this process is gone.
    """
    started = []
    loop = f"while kill -0 {os.getpid()} 2>/dev/null; do :; done"
    for cpu in range(os.cpu_count() or 1):
        argv = [
            "taskset",
            "-c",
            str(cpu),
            "chrt",
            "--idle",
            "0",
            "timeout",
            str(seconds),
            "sh",
            "-c",
            loop,
        ]
        started.append(procs.start(argv, signal.SIGTERM))
    procs.spinner_pgids = [proc.pid for proc in started]
    try:
        yield
    finally:
        procs.spinner_pgids = []
        for proc in started:
            procs.stop(proc, grace=2.0)


_PORTS = {"next": 20000}
PORT_RANGE = (20000, 30000)  # below the ephemeral range (32768+) that wrk's connections use


def free_port() -> int:
    """A fresh port on 127.0.0.1 with no socket on it, not even one in TIME_WAIT.

    Every run gets its own port, so that the TIME_WAIT sockets one server's Connection: close run
    leaves behind never meet the next server's connections.
    """
    low, high = PORT_RANGE
    for _ in range(high - low):
        port = _PORTS["next"]
        _PORTS["next"] = low + (port + 1 - low) % (high - low)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))  # no SO_REUSEADDR: fails while TIME_WAIT remains
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-29999")


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    path: str,
    log: Path,
    ready_line: str | None,
    timeout: float = 60.0,
) -> None:
    """Wait until the server answers 200 on `path` (and has logged `ready_line`, if given)."""
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}{path}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{tail(log)}")
        logged = ready_line is None or ready_line in log.read_text(errors="replace")
        if logged:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    response.read()
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
        time.sleep(0.1)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- one measured run --------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one server did in one round of one workload."""

    server: str
    workload: str
    round: int
    config: str
    rps: float = 0.0
    requests: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    error_detail: str = ""
    cpu_us_per_req: float = 0.0
    tree_uss_idle_mb: float = 0.0
    tree_uss_load_mb: float = 0.0
    worker_uss_idle_mb: float = 0.0  # mean over the workers
    conn_min: int = 0
    conn_max: int = 0
    conn_mean: float = 0.0
    starved: int = 0  # connections that got < 10% of the mean
    kept_alive: int = 0  # Connection: close runs: responses that did not close the connection
    other_cpu_pct: float = 0.0  # CPU used by processes not ours during the run, % of all CPUs
    steal_pct: float = 0.0  # CPU stolen by the hypervisor, % of all CPUs
    hot_p50_ms: float | None = None  # partitioned: "/" only
    hot_p99_ms: float | None = None
    admin_p50_ms: float | None = None
    admin_p99_ms: float | None = None
    admin_n: int | None = None
    failed: str = ""


@dataclass
class Options:
    """Command line options."""

    rounds: int
    duration: float
    warmup: float
    venv: Path
    out_dir: Path
    quick: bool
    workloads: list[Workload]
    servers: list[Server]
    verbose: bool = False
    skipped: dict[str, str] = field(default_factory=dict)


def wrk_argv(workload: Workload, port: int, seconds: float) -> list[str]:
    """The wrk command: pinned to the client CPU, one connection per wrk thread."""
    conns = workload.connections
    argv = [
        "taskset",
        "-c",
        str(CLIENT_CPU),
        "wrk",
        f"-t{conns}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
    ]
    url = f"http://{HOST}:{port}{workload.path}"
    if workload.mode == "mixed":
        return [*argv, "-s", str(LUA_DIR / "mixed.lua"), url, "--", str(ADMIN_EVERY), "/admin"]
    script = "close.lua" if workload.mode == "close" else "count.lua"
    return [*argv, "-s", str(LUA_DIR / script), url, "--", workload.mode, str(workload.post_bytes)]


def run_wrk(argv: list[str], timeout: float) -> dict[str, object]:
    """Run wrk and return the BENCHJSON line its Lua script printed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    for line in done.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :])
    raise RuntimeError(
        f"wrk printed no result (exit {done.returncode}):\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )


def start_server(
    procs: Processes, server: Server, workload: Workload, port: int, log: Path
) -> tuple[subprocess.Popen[bytes], Launch]:
    """Start server for workload on port, pinned to the server CPU, its output into log; every
    bench script starts servers here, so that they all measure the same thing."""
    launch = server.launch(workload, port, log.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    with open(log, "wb") as log_handle:
        proc = procs.start(
            ["taskset", "-c", str(SERVER_CPU), *launch.argv],
            launch.stop_signal,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(BENCH_DIR),
        )
    return proc, launch


def measure(
    procs: Processes, opts: Options, server: Server, workload: Workload, rnd: int, tmp: Path
) -> RunResult:
    """Start the server, warm it up, measure one wrk run, stop it."""
    port = free_port()
    log = tmp / f"{server.name}-{rnd}.log"
    proc, launch = start_server(procs, server, workload, port, log)
    result = RunResult(server.name, workload.name, rnd, launch.config)
    try:
        ready_path = "/" if workload.partitioned else workload.path
        wait_ready(proc, port, ready_path, log, launch.ready_line)
        time.sleep(0.3)
        tree = process_tree(proc.pid, proc.pid)
        result.tree_uss_idle_mb = sum(uss_kib(p.pid) for p in tree) / 1024
        workers = worker_pids(server.worker_rule, proc.pid, tree)
        if workers:
            result.worker_uss_idle_mb = sum(uss_kib(pid) for pid in workers) / len(workers) / 1024
        if opts.warmup > 0:
            run_wrk(wrk_argv(workload, port, opts.warmup), timeout=opts.warmup + 60)
        before = tree_cpu_ticks(proc.pid, proc.pid)
        machine_before = CpuSnapshot.take(before, procs.spinner_pgids)
        data = run_wrk(wrk_argv(workload, port, opts.duration), timeout=opts.duration + 90)
        after = tree_cpu_ticks(proc.pid, proc.pid)
        machine_after = CpuSnapshot.take(after, procs.spinner_pgids)
        result.other_cpu_pct, result.steal_pct = other_load(machine_before, machine_after)
        tree = process_tree(proc.pid, proc.pid)
        result.tree_uss_load_mb = sum(uss_kib(p.pid) for p in tree) / 1024
        if proc.poll() is not None:
            raise RuntimeError(f"server died during the run:\n{tail(log)}")
    finally:
        procs.stop(proc)
    fill_result(result, data, (after - before) / CLK_TCK)
    if opts.verbose:
        print(tail(log, 5))
    return result


def fill_result(result: RunResult, data: dict[str, object], cpu_seconds: float) -> None:
    """Turn the wrk script's numbers into a RunResult."""
    requests = int(data["requests"])  # type: ignore[arg-type]
    duration = int(data["duration_us"]) / 1e6  # type: ignore[arg-type]
    result.requests = requests
    result.rps = requests / duration if duration else 0.0
    result.p50_ms = int(data["p50_us"]) / 1000  # type: ignore[arg-type]
    result.p99_ms = int(data["p99_us"]) / 1000  # type: ignore[arg-type]
    kinds = ("connect", "read", "write", "timeout", "status")
    counts = {k: int(data[k]) for k in kinds}  # type: ignore[arg-type]
    result.errors = sum(counts.values())
    result.error_detail = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    result.cpu_us_per_req = cpu_seconds * 1e6 / requests if requests else 0.0
    per_conn = [int(n) for n in data["per_conn"]]  # type: ignore[attr-defined]
    if per_conn:
        result.conn_min, result.conn_max = min(per_conn), max(per_conn)
        result.conn_mean = statistics.fmean(per_conn)
        result.starved = sum(1 for n in per_conn if n < STARVED_FRACTION * result.conn_mean)
    kept_alive = int(data.get("kept_alive", 0))  # type: ignore[call-overload]
    if kept_alive:
        result.kept_alive = kept_alive
    if "hot_p99_us" in data:
        result.hot_p50_ms = int(data["hot_p50_us"]) / 1000  # type: ignore[arg-type]
        result.hot_p99_ms = int(data["hot_p99_us"]) / 1000  # type: ignore[arg-type]
        result.admin_p50_ms = int(data["admin_p50_us"]) / 1000  # type: ignore[arg-type]
        result.admin_p99_ms = int(data["admin_p99_us"]) / 1000  # type: ignore[arg-type]
        result.admin_n = int(data["admin_n"])  # type: ignore[arg-type]
        bad = int(data["hot_bad"]) + int(data["admin_bad"])  # type: ignore[arg-type]
        if bad:
            result.errors += bad
            result.error_detail = ", ".join(filter(None, [result.error_detail, f"non-2xx {bad}"]))


# --- reporting ---------------------------------------------------------------------------------


def machine_info(venv: Path) -> dict[str, str]:
    """Date, kernel, CPU, Python and peer versions for the report header."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    python = venv / "bin" / "python"
    script = (
        "import json, sys\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = {'python': sys.version.split()[0] + ' (' + sys.executable + ')'}\n"
        "for name in ('groupserver', 'gunicorn', 'uwsgi', 'granian', 'waitress', 'mod_wsgi'):\n"
        "    try:\n"
        "        out[name] = version(name)\n"
        "    except PackageNotFoundError:\n"
        "        out[name] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    versions = json.loads(
        subprocess.run(
            [str(python), "-c", script], capture_output=True, text=True, check=True
        ).stdout
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else ""
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    apache_version = ""
    if os.path.exists(apache):
        out = subprocess.run([apache, "-v"], capture_output=True, text=True).stdout
        apache_version = out.splitlines()[0].split(":", 1)[-1].strip() if out else ""
    commit = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "groupserver"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "kernel": platform.release(),
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "groupserver commit": commit + (" + uncommitted changes" if dirty else ""),
        "wrk": wrk_version,
        "apache (mod_wsgi-express)": apache_version,
        **versions,
    }


def median(values: Sequence[float]) -> float:
    """The median, 0 for no values."""
    return statistics.median(values) if values else 0.0


@dataclass
class Summary:
    """The medians of one server's rounds in one workload."""

    server: str
    config: str
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: float
    cpu_us_per_req: float
    tree_uss_idle_mb: float
    tree_uss_load_mb: float
    worker_uss_idle_mb: float
    conn_min: int
    conn_max: int
    starved: int
    hot_p50_ms: float | None
    hot_p99_ms: float | None
    admin_p99_ms: float | None
    admin_n: float | None
    kept_alive: int
    rps_rounds: list[float]
    other_rounds: list[float]
    failed: list[str]


def summarize(results: Sequence[RunResult]) -> Summary:
    """Median of each figure over a server's successful rounds (worst min/max/starved)."""
    ok = [r for r in results if not r.failed]
    first = results[0]

    def med(attr: str) -> float:
        return median([getattr(r, attr) for r in ok])

    def med_opt(attr: str) -> float | None:
        values = [getattr(r, attr) for r in ok if getattr(r, attr) is not None]
        return median(values) if values else None

    return Summary(
        server=first.server,
        config=next((r.config for r in ok), first.config),
        rounds=len(ok),
        rps=med("rps"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        errors=med("errors"),
        cpu_us_per_req=med("cpu_us_per_req"),
        tree_uss_idle_mb=med("tree_uss_idle_mb"),
        tree_uss_load_mb=med("tree_uss_load_mb"),
        worker_uss_idle_mb=med("worker_uss_idle_mb"),
        conn_min=min((r.conn_min for r in ok), default=0),
        conn_max=max((r.conn_max for r in ok), default=0),
        starved=max((r.starved for r in ok), default=0),
        hot_p50_ms=med_opt("hot_p50_ms"),
        hot_p99_ms=med_opt("hot_p99_ms"),
        admin_p99_ms=med_opt("admin_p99_ms"),
        admin_n=med_opt("admin_n"),
        kept_alive=max((r.kept_alive for r in ok), default=0),
        rps_rounds=[round(r.rps) for r in ok],
        other_rounds=[r.other_cpu_pct for r in ok],
        failed=[r.failed for r in results if r.failed],
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}"


def workload_table(workload: Workload, summaries: Sequence[Summary]) -> list[str]:
    """Markdown lines for one workload: medians and the groupserver/peer ratios."""
    ref = next((s for s in summaries if s.server == REFERENCE and s.rounds), None)
    lines = [
        f"### {workload.name}: {workload.title}",
        "",
        f"Measures {workload.measures}. wrk: {workload.connections} connections "
        f"(one per wrk thread){', path ' + workload.path if workload.path != '/' else ''}.",
        "",
    ]
    if workload.partitioned:
        lines += [
            "| server | procs x threads | req/s | / p50 ms | / p99 ms | /admin p99 ms | "
            "/admin reqs | errors | CPU µs/req | USS MB idle → loaded | conns min/max | "
            "starved | / p99 gs/peer | req/s gs/peer |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
    else:
        lines += [
            "| server | procs x threads | req/s | p50 ms | p99 ms | errors | CPU µs/req | "
            "USS MB idle → loaded | worker USS MB idle | conns min/max | starved | "
            "req/s gs/peer | CPU/req gs/peer |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
    for s in summaries:
        if not s.rounds:
            lines.append(f"| {s.server} | {s.config} | failed: {'; '.join(s.failed)[:200]} |")
            continue
        starved = f"**{s.starved}**" if s.starved else "0"
        if s.kept_alive:
            starved += " (**kept alive**: ignores Connection: close)"
        uss = f"{s.tree_uss_idle_mb:,.1f} → {s.tree_uss_load_mb:,.1f}"
        conns = f"{s.conn_min:,}/{s.conn_max:,}"
        is_ref = s.server == REFERENCE
        if workload.partitioned:
            lines.append(
                f"| {s.server} | {s.config} | {_fmt(s.rps)} | {_fmt(s.hot_p50_ms, 2)} | "
                f"{_fmt(s.hot_p99_ms, 2)} | {_fmt(s.admin_p99_ms, 1)} | {_fmt(s.admin_n)} | "
                f"{_fmt(s.errors)} | {_fmt(s.cpu_us_per_req)} | {uss} | {conns} | {starved} | "
                f"{'-' if is_ref else _ratio(ref and ref.hot_p99_ms, s.hot_p99_ms)} | "
                f"{'-' if is_ref else _ratio(ref and ref.rps, s.rps)} |"
            )
        else:
            lines.append(
                f"| {s.server} | {s.config} | {_fmt(s.rps)} | {_fmt(s.p50_ms, 2)} | "
                f"{_fmt(s.p99_ms, 2)} | {_fmt(s.errors)} | {_fmt(s.cpu_us_per_req)} | {uss} | "
                f"{_fmt(s.worker_uss_idle_mb, 1)} | {conns} | {starved} | "
                f"{'-' if is_ref else _ratio(ref and ref.rps, s.rps)} | "
                f"{'-' if is_ref else _ratio(ref and ref.cpu_us_per_req, s.cpu_us_per_req)} |"
            )

    def round_text(rps: float, other: float) -> str:
        return f"{rps:,.0f}" + (f" [{other:.0f}%]" if other >= NOISY_PCT else "")

    per_server = []
    for s in summaries:
        if s.rounds:
            rounds = zip(s.rps_rounds, s.other_rounds, strict=True)
            per_server.append(f"{s.server} {', '.join(round_text(*v) for v in rounds)}")
    lines += ["", "req/s of each round [other load, when >= 5%]: " + "; ".join(per_server), ""]
    return lines


def header_lines(info: dict[str, str], opts: Options) -> list[str]:
    """The report header: machine, versions and method."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    lines += [
        "",
        f"Method: {opts.rounds} interleaved round(s) per workload (servers in turn, "
        f"A B C ... A B C), {opts.duration:g} s measured after {opts.warmup:g} s of warm-up; "
        f"figures are medians of the rounds, ratios are groupserver's median over the peer's "
        f"(req/s: > 1 means groupserver is faster; CPU/req and p99: < 1 means groupserver "
        f"uses less / answers sooner). Server "
        f"pinned to CPU {SERVER_CPU}, wrk to CPU {CLIENT_CPU}, a SCHED_IDLE spinner on every CPU. "
        f"Errors are socket errors plus non-2xx responses. CPU µs/req is the whole server process "
        f"tree's user+system CPU over the measured window divided by responses. USS is the sum "
        f"over the server's process tree (idle before the warm-up, and right after the run); "
        f"worker USS is the mean idle USS of one worker process, taken 0.3 s after the readiness "
        f"check's request (bench/idle_uss.py measures before and after a first request). "
        f"conns min/max are the fewest and "
        f"most requests one connection sent; starved counts connections below "
        f"{STARVED_FRACTION:.0%} of the mean. Other load: CPU used during a run by processes "
        f"that are not this benchmark's (other people's tests on this shared machine), in % of "
        f"all CPUs; rounds above {NOISY_PCT:.0f}% are marked.",
        "",
    ]
    if opts.skipped:
        lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in opts.skipped.items()), ""]
    return lines


def write_reports(
    opts: Options,
    info: dict[str, str],
    done: dict[str, dict[str, list[RunResult]]],
    final: bool,
) -> list[Path]:
    """Write one markdown file per finished workload, plus the combined file at the end."""
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    day = dt.date.today().isoformat()
    suffix = "-quick" if opts.quick else ""
    written = []
    combined = [f"# groupserver benchmark suite, {info['date']}", ""]
    combined += header_lines(info, opts)
    for workload in opts.workloads:
        if workload.name not in done:
            continue
        summaries = [summarize(runs) for runs in done[workload.name].values()]
        table = workload_table(workload, summaries)
        path = opts.out_dir / f"{day}-{workload.name}{suffix}.md"
        body = [f"# {workload.name}, {info['date']}", ""] + header_lines(info, opts) + table
        path.write_text("\n".join(body) + "\n")
        written.append(path)
        combined += table
    if final and len(done) > 1:
        path = opts.out_dir / f"{day}-suite{suffix}.md"
        path.write_text("\n".join(combined) + "\n")
        written.append(path)
    raw = opts.out_dir / f"{day}-raw{suffix}.json"
    raw.write_text(
        json.dumps(
            {
                "info": info,
                "runs": [
                    asdict(r)
                    for runs in done.values()
                    for server_runs in runs.values()
                    for r in server_runs
                ],
            },
            indent=1,
        )
        + "\n"
    )
    written.append(raw)
    return written


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds measured per run (default 5)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of load before each measurement (default 1)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round of 1 s, 0.5 s warm-up, files named *-quick",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated workloads ({', '.join(WORKLOADS_BY_NAME)})"
    )
    parser.add_argument(
        "--servers",
        default="",
        help=f"comma-separated servers ({', '.join(c.name for c in SERVER_CLASSES)})",
    )
    parser.add_argument("--venv", default=DEFAULT_VENV, help=f"bench venv (default {DEFAULT_VENV})")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"), help="results directory")
    parser.add_argument("--verbose", action="store_true", help="print server log tails")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1.0, 0.5
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS_BY_NAME]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    workloads = [WORKLOADS_BY_NAME[n] for n in names] if names else list(WORKLOADS)
    venv = Path(args.venv)
    all_servers = {cls.name: cls(venv) for cls in SERVER_CLASSES}
    server_names = [n for n in args.servers.split(",") if n] or list(all_servers)
    unknown = [n for n in server_names if n not in all_servers]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    opts = Options(
        rounds=max(1, args.rounds),
        duration=args.duration,
        warmup=args.warmup,
        venv=venv,
        out_dir=Path(args.out),
        quick=args.quick,
        workloads=workloads,
        servers=[],
        verbose=args.verbose,
    )
    for name in server_names:
        server = all_servers[name]
        reason = server.available()
        if reason:
            opts.skipped[name] = reason
            print(f"skipping {name}: {reason}", file=sys.stderr)
        else:
            opts.servers.append(server)
    return opts


def check_tools() -> None:
    """Fail early when wrk, taskset or chrt is missing."""
    missing = [tool for tool in ("wrk", "taskset", "chrt", "timeout") if not shutil.which(tool)]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (run bench/setup.sh)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs: the server on one, wrk on the other")


def plan(opts: Options) -> list[tuple[Workload, list[Server]]]:
    """Which servers run each workload (a server that cannot match its shape is left out)."""
    out = []
    for workload in opts.workloads:
        servers = []
        for server in opts.servers:
            reason = server.skip_reason(workload)
            if reason:
                opts.skipped[f"{server.name} in {workload.name}"] = reason
            else:
                servers.append(server)
        out.append((workload, servers))
    return out


def run_suite(opts: Options, procs: Processes) -> list[Path]:
    """Every workload: rounds interleaved across servers. Returns the files written."""
    info = machine_info(opts.venv)
    quiet_before = CpuSnapshot.take(0, [])
    time.sleep(1.0)
    other, steal = other_load(quiet_before, CpuSnapshot.take(0, []))
    if other > 20:
        print(
            f"warning: other processes use {other:.0f}% of the machine right now (someone "
            "else's tests?): rounds that overlap them are marked in the results",
            file=sys.stderr,
        )
    schedule = plan(opts)
    runs = sum(len(servers) for _, servers in schedule) * opts.rounds
    per_run = opts.duration + opts.warmup + 4
    print(f"{runs} runs, about {runs * per_run / 60:.0f} min", file=sys.stderr)
    done: dict[str, dict[str, list[RunResult]]] = {}
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        bench_file = tmp / "file-1m.bin"
        bench_file.write_bytes(os.urandom(1 << 20))
        bench_file.chmod(0o644)
        os.environ["BENCH_FILE"] = str(bench_file)
        with spinners(procs, int(runs * (per_run + 30) + 600)):
            for workload, servers in schedule:
                by_server: dict[str, list[RunResult]] = {s.name: [] for s in servers}
                for rnd in range(1, opts.rounds + 1):
                    for server in servers:
                        run_dir = tmp / f"{workload.name}-{server.name}"
                        run_dir.mkdir(exist_ok=True)
                        label = f"[{workload.name} {rnd}/{opts.rounds}] {server.name:17}"
                        print(label, end=" ", flush=True, file=sys.stderr)
                        try:
                            result = measure(procs, opts, server, workload, rnd, run_dir)
                        except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                            result = RunResult(
                                server.name,
                                workload.name,
                                rnd,
                                "",
                                failed=str(exc).splitlines()[0][:300],
                            )
                            print(f"FAILED: {exc}", file=sys.stderr)
                        else:
                            print(describe(result), file=sys.stderr)
                        by_server[server.name].append(result)
                done[workload.name] = by_server
                written = write_reports(opts, info, done, final=False)
        written = write_reports(opts, info, done, final=True)
    return written


def describe(r: RunResult) -> str:
    """One progress line."""
    text = (
        f"{r.rps:9,.0f} req/s  p99 {r.p99_ms:7.2f} ms  {r.cpu_us_per_req:6.0f} µs/req  "
        f"conns {r.conn_min}-{r.conn_max}"
    )
    if r.hot_p99_ms is not None:
        text += f"  / p99 {r.hot_p99_ms:.2f} ms  /admin p99 {r.admin_p99_ms:.0f} ms"
    if r.errors:
        text += f"  errors {r.errors} ({r.error_detail})"
    if r.starved:
        text += f"  STARVED {r.starved}"
    if r.kept_alive:
        text += f"  KEPT ALIVE {r.kept_alive} (ignored Connection: close)"
    if r.other_cpu_pct >= NOISY_PCT:
        text += f"  [other load {r.other_cpu_pct:.0f}%]"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    opts = parse_args(argv)
    check_tools()
    if not opts.servers:
        sys.exit("no server to run")
    procs = Processes()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        written = run_suite(opts, procs)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
