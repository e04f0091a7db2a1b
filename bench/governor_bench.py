#!/usr/bin/env python3
"""Memory governor scenario (issue 5): Dumpleton's admin URL with a large transient memory need.

    /work/venv/bin/python bench/governor_bench.py                # ~4 minutes
    /work/venv/bin/python bench/governor_bench.py --seconds 10   # smoke run

The site: steady traffic on small URLs, plus an admin export that allocates 150 MiB and keeps it
in a module-level cache (so the worker that served it stays big, like a real leak-ish export),
hit by 1 request in 100. Configurations, same processes x threads in all (16 request threads):

  pool-mr100, pool-mr1000  one group of 4 x 4 serving everything, recycled by max_requests
                           (100, then 1000): the usual answer to a leak-ish URL;
  groups-gov-512M,         groupserver with `main` 3 x 4 and `admin` 2 x 2 (/admin/ routed to
  groups-gov-384M          it, memory_priority 10) and the memory governor in budget mode
                           (interval 0.5 s, mercy 2 s), no max_requests: a lenient budget
                           (512M, lower 0.5, upper 0.9: one admin worker may keep its export)
                           and a tight one (384M, lower 0.5, upper 0.95: any kept export
                           crosses lower).

Reported per configuration: peak and mean memory of the server's whole process tree (the sum of
PSS from /proc/PID/smaps_rollup of the master and every descendant, sampled every 0.2 s), worker
recycles per 1,000 requests (from the stats document, by reason), and p50/p99/max latency of the
steady traffic, measured by this script's own client.

The client is a Python one (threads with http.client keep-alive connections, paced at a fixed
total rate, every 100th request the admin export). That is enough here: the comparison is memory
and recycle counts, and the latencies are milliseconds (an export takes ~100 ms), far above the
client's own overhead. Method from /work/shared/BENCHMARKING.md: the server pinned to CPU 0, the
client to CPU 1, a SCHED_IDLE spinner per CPU in this process's session so no vCPU halts.

Only 127.0.0.1 is used. Every process started here is stopped on exit, error or Ctrl-C.

This file is also the benchmark's WSGI application (`governor_bench:application`): the workers
import it with bench/ on their path; only the code under __main__ runs the benchmark.
"""

from __future__ import annotations

import os

# -- the application (imported by the workers) --------------------------------------------------

MiB = 1 << 20
EXPORT_MB = int(os.environ.get("GOV_BENCH_EXPORT_MB", "150"))
_cache: dict[str, bytearray] = {}


def _export() -> bytes:
    data = bytearray(EXPORT_MB * MiB)
    for i in range(0, len(data), 4096):
        data[i] = 1  # touch every page: resident, private memory
    _cache["export"] = data  # kept after the request: the worker stays big
    return b"exported %d MiB\n" % EXPORT_MB


def _steady(path: str) -> bytes:
    total = 0
    for i in range(300):  # a little work, ~20-50 us
        total += i * i
    return b'{"path": "%s", "n": %d}\n' % (path.encode("latin-1"), total)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = _export() if path.startswith("/admin/export") else _steady(path)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- the benchmark --------------------------------------------------------------------------------

if __name__ == "__main__":
    import argparse
    import datetime as dt
    import http.client
    import json
    import re
    import signal
    import socket
    import statistics
    import subprocess
    import sys
    import tempfile
    import threading
    import time
    from contextlib import ExitStack, suppress
    from dataclasses import dataclass, field
    from pathlib import Path

    HOST = "127.0.0.1"
    BENCH_DIR = Path(__file__).resolve().parent
    REPO_DIR = BENCH_DIR.parent
    SERVER_CPU, CLIENT_CPU = 0, 1
    ADMIN_EVERY = 100

    @dataclass
    class Setup:
        name: str
        yaml: str
        description: str

    def pool_yaml(max_requests: int) -> str:
        return f"""\
site: govbench
listen: ['{HOST}:0']
groups:
  main:
    app: governor_bench:application
    processes: 4
    threads: 4
    max_requests: {max_requests}
    memory: {{interval: 0.2}}
default_group: main
"""

    def groups_yaml(budget: str, lower: float, upper: float) -> str:
        return f"""\
site: govbench
listen: ['{HOST}:0']
groups:
  main:
    app: governor_bench:application
    processes: 3
    threads: 4
    memory: {{interval: 0.2}}
  admin:
    app: governor_bench:application
    processes: 2
    threads: 2
    memory_priority: 10
    memory: {{interval: 0.2}}
routes:
  - {{prefix: /admin/, group: admin}}
default_group: main
memory_governor:
  enabled: true
  source: budget
  budget: {budget}
  lower: {lower}
  upper: {upper}
  interval: 0.5
  mercy: 2
  max_recycles_per_group: 1
  respawn_delay: 1
"""

    SETUPS = {
        "pool-mr100": Setup(
            "pool-mr100", pool_yaml(100), "one group 4x4, max_requests 100, no governor"
        ),
        "pool-mr1000": Setup(
            "pool-mr1000", pool_yaml(1000), "one group 4x4, max_requests 1000, no governor"
        ),
        "groups-gov-512M": Setup(
            "groups-gov-512M",
            groups_yaml("512M", 0.5, 0.9),
            "main 3x4 + admin 2x2 (priority 10), governor budget 512M, lower .5, upper .9",
        ),
        "groups-gov-384M": Setup(
            "groups-gov-384M",
            groups_yaml("384M", 0.5, 0.95),
            "main 3x4 + admin 2x2 (priority 10), governor budget 384M, lower .5, upper .95",
        ),
    }

    # -- processes ------------------------------------------------------------------------------

    def pss_of(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f.read().split(b"\n"):
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def descendants(root: int) -> list[int]:
        """root and every process below it (one scan of /proc/*/stat)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    class Server:
        """groupserver in a temp dir, pinned to SERVER_CPU, in its own process group (same
        session as the spinners)."""

        def __init__(self, setup: Setup, stack: ExitStack) -> None:
            self.dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="govbench-")))
            (self.dir / "site.yaml").write_text(setup.yaml)
            self.log_path = self.dir / "server.log"
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(REPO_DIR)])
            env["GOV_BENCH_EXPORT_MB"] = str(EXPORT_MB)
            pin = ["taskset", "-c", str(SERVER_CPU)] if PIN else []
            self.log_file = open(self.log_path, "w")  # noqa: SIM115
            self.proc = subprocess.Popen(
                [*pin, sys.executable, "-m", "groupserver", "serve", str(self.dir / "site.yaml")],
                cwd=self.dir,
                stdout=self.log_file,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,
            )
            stack.callback(self.stop)
            deadline = time.monotonic() + 30
            while "ready:" not in self.log():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start:\n{self.log()}")
                time.sleep(0.05)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log())
            assert m, self.log()
            self.port = int(m.group(1))

        def log(self) -> str:
            return self.log_path.read_text(errors="replace")

        def stats(self) -> dict:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(self.dir / ".govbench.ctl"))
                sock.sendall(b'{"cmd": "stats"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
            return json.loads(data)["stats"]

        def stop(self) -> None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            self.log_file.close()

    def start_spinners(seconds: int, stack: ExitStack) -> None:
        if not PIN:
            return
        for cpu in (SERVER_CPU, CLIENT_CPU):
            spin = subprocess.Popen(
                ["taskset", "-c", str(cpu), "chrt", "--idle", "0", "timeout", str(seconds)]
                + ["sh", "-c", "while :; do :; done"],
                process_group=0,
            )

            def stop(p=spin) -> None:
                with suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                # a SCHED_IDLE process dies only once it gets the CPU, which a busy CPU may
                # delay: wait for it, but never hang on it (SIGKILL is already delivered)
                with suppress(subprocess.TimeoutExpired):
                    p.wait(30)

            stack.callback(stop)

    # -- the client and the memory sampler -----------------------------------------------------

    @dataclass
    class Record:
        steady: list[float] = field(default_factory=list)  # seconds
        admin: list[float] = field(default_factory=list)
        failures: list[str] = field(default_factory=list)

    def client(port: int, seconds: float, rate: float, threads: int) -> Record:
        record = Record()
        lock = threading.Lock()
        counter = [0]
        end = time.monotonic() + seconds
        period = threads / rate

        def run(offset: float) -> None:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            due = time.monotonic() + offset
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if due > now:
                    time.sleep(due - now)
                due += period
                with lock:
                    counter[0] += 1
                    n = counter[0]
                admin = n % ADMIN_EVERY == ADMIN_EVERY // 2
                path = "/admin/export" if admin else f"/page/{n % 50}"
                started = time.perf_counter()
                error = None
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        error = f"status {resp.status}"
                    if resp.will_close:
                        conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    error = repr(exc)
                    conn.close()  # the next request reconnects
                took = time.perf_counter() - started
                with lock:
                    if error is None:
                        (record.admin if admin else record.steady).append(took)
                    else:
                        record.failures.append(f"{path}: {error}")
            conn.close()

        workers = [
            threading.Thread(target=run, args=(i * period / threads,), daemon=True)
            for i in range(threads)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join(seconds + 60)
        return record

    def sample_memory(root: int, stop: threading.Event, out: list[int]) -> None:
        """Every 0.2 s (on a fixed schedule: a slow read does not push the next ones back)."""
        due = time.monotonic()
        while not stop.is_set():
            out.append(sum(pss_of(pid) for pid in descendants(root)))
            due += 0.2
            stop.wait(max(0.0, due - time.monotonic()))

    def percentile(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def measure(setup: Setup, seconds: float, rate: float, threads: int) -> dict:
        with ExitStack() as stack:
            server = Server(setup, stack)
            time.sleep(1)
            baseline = sum(pss_of(pid) for pid in descendants(server.proc.pid))
            samples: list[int] = []
            stop = threading.Event()
            sampler = threading.Thread(
                target=sample_memory, args=(server.proc.pid, stop, samples), daemon=True
            )
            sampler.start()
            record = client(server.port, seconds, rate, threads)
            stop.set()
            sampler.join(5)
            doc = server.stats()
            log = server.log()
            if KEEP_LOGS:
                KEEP_LOGS.mkdir(parents=True, exist_ok=True)
                (KEEP_LOGS / f"{setup.name}.log").write_text(log)
        reasons: dict[str, int] = {}
        by_group: dict[str, int] = {}
        for name, group in doc["groups"].items():
            by_group[name] = sum(group["restarts"].values())
            for reason, count in group["restarts"].items():
                reasons[reason] = reasons.get(reason, 0) + count
        requests = len(record.steady) + len(record.admin) + len(record.failures)
        recycles = sum(reasons.values())
        return {
            "setup": setup.name,
            "description": setup.description,
            "seconds": seconds,
            "requests": requests,
            "admin_requests": len(record.admin),
            "failures": len(record.failures),
            "failure_examples": record.failures[:3],
            "rate": requests / seconds,
            "baseline_mib": baseline / MiB,
            "peak_mib": max(samples) / MiB,
            "mean_mib": statistics.fmean(samples) / MiB,
            "samples": len(samples),
            "recycles": recycles,
            "recycles_by_reason": reasons,
            "recycles_by_group": by_group,
            "recycles_per_1000": 1000 * recycles / max(1, requests),
            "steady_p50_ms": 1000 * percentile(record.steady, 0.50),
            "steady_p99_ms": 1000 * percentile(record.steady, 0.99),
            "steady_max_ms": 1000 * max(record.steady, default=float("nan")),
            "admin_p50_ms": 1000 * percentile(record.admin, 0.50),
            "governor": doc.get("memory_governor", {}),
            "kills_logged": log.count("upper bound passed"),
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        }

    def table(results: list[dict]) -> str:
        head = (
            "| setup | requests | admin | failed | peak MiB | mean MiB | recycles/1k "
            "| by reason | steady p50 ms | steady p99 ms | steady max ms | admin p50 ms |"
        )
        lines = [head, "|" + " --- |" * 12]
        for r in results:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["recycles_by_reason"].items()))
            if len(r["recycles_by_group"]) > 1:
                reasons += (
                    " (" + ", ".join(f"{g} {n}" for g, n in r["recycles_by_group"].items()) + ")"
                )
            lines.append(
                f"| {r['setup']} | {r['requests']} | {r['admin_requests']} | {r['failures']} "
                f"| {r['peak_mib']:.0f} | {r['mean_mib']:.0f} | {r['recycles_per_1000']:.1f} "
                f"| {reasons or '-'} | {r['steady_p50_ms']:.2f} | {r['steady_p99_ms']:.1f} "
                f"| {r['steady_max_ms']:.0f} | {r['admin_p50_ms']:.0f} |"
            )
        return "\n".join(lines)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=50, help="measured seconds per setup")
    parser.add_argument("--rate", type=float, default=100, help="total requests per second")
    parser.add_argument("--threads", type=int, default=8, help="client connections")
    parser.add_argument("--only", default=",".join(SETUPS), help="comma-separated setups")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep-logs", type=Path, help="copy each server's log into this dir")
    args = parser.parse_args()
    KEEP_LOGS = args.keep_logs
    PIN = (os.cpu_count() or 1) >= 2
    chosen = [SETUPS[name] for name in args.only.split(",")]
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    results = []
    with ExitStack() as outer:
        start_spinners(int(len(chosen) * (args.seconds + 40) + 60), outer)
        if PIN:
            os.sched_setaffinity(0, {CLIENT_CPU})
        for setup in chosen:
            print(f"{setup.name}: {setup.description} ...", flush=True)
            result = measure(setup, args.seconds, args.rate, args.threads)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\n{when}, load average at the end {' '.join(load)}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, "
        f"{args.seconds:.0f} s per setup at {args.rate:.0f} req/s over {args.threads} "
        f"keep-alive connections, 1 request in {ADMIN_EVERY} an export of {EXPORT_MB} MiB\n"
    )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"date": when, "results": results}, indent=1))
