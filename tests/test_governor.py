"""The host memory governor on a real site (issue 5), mostly in budget mode with a small budget.

A group whose app allocates and keeps tens of MiB per request (tests/apps/governor_app.py) runs
beside groups with steady traffic, under a bounded client loop; the stats document (through the
control socket) and the master's log show what the governor measured and did. A cgroup-mode test
runs only where a writable cgroup v2 hierarchy with the memory controller exists.

Every test runs for a few seconds (each < 30 s), talks to 127.0.0.1 only, and the make_server
fixture checks that no process is left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import site_yaml, wait_for, wait_for_gone

pytestmark = pytest.mark.timeout(60)

APP = "governor_app:application"
MiB = 1 << 20

DECISION = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:,]+)\] \[\d+\] \[\w+\] memory governor: "
    r"(?P<why>above lower bound|above upper bound|upper bound passed) at (?P<use>[\d.]+)% of "
    r"(?P<limit>\d+) MiB \((?P<source>\w+)\): (?P<action>recycling|killing) worker "
    r"(?P<pid>\d+) of group (?P<group>\S+), USS (?P<uss>\d+) MiB(?P<in_flight>; .+)?$",
    re.MULTILINE,
)


@dataclass
class LoggedDecision:
    at: float  # seconds since the epoch, from the log line's timestamp (millisecond precision)
    action: str  # recycling | killing
    use: float  # percent
    limit_mib: int
    source: str
    pid: int
    group: str
    uss_mib: int
    why: str  # above lower bound | above upper bound | upper bound passed (the kill)


def logged_decisions(log: str) -> list[LoggedDecision]:
    out = []
    for m in DECISION.finditer(log):
        at = dt.datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append(
            LoggedDecision(
                at,
                m["action"],
                float(m["use"]),
                int(m["limit"]),
                m["source"],
                int(m["pid"]),
                m["group"],
                int(m["uss"]),
                m["why"],
            )
        )
    return out


def pss_of(pid: int) -> int:
    """PSS of one process from /proc/PID/smaps_rollup (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_pss(server) -> int:
    """Summed PSS of the master and every process below it, read from /proc."""
    return pss_of(server.pid) + sum(pss_of(p.pid) for p in server.children())


def site_pss(server, doc: dict) -> int:
    """The workers' PSS as the stats document reports it, plus the master and the front (which
    the document does not list) from /proc: what the site costs the host."""
    workers = sum(w["pss_bytes"] for g in doc["groups"].values() for w in g["workers"])
    others = [server.pid] + [
        p.pid for p in server.processes_titled("groupserver: front [testsite]")
    ]
    return workers + sum(pss_of(pid) for pid in others)


def restarts(doc: dict, reason: str) -> dict[str, int]:
    return {name: g["restarts"].get(reason, 0) for name, g in doc["groups"].items()}


def group_pids(server, group: str) -> set[int]:
    return {p.pid for p in server.processes_titled(f"(wsgi:{group})")}


@dataclass
class Result:
    started: float
    path: str
    status: int | None
    pid: int | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)  # wall clock, to compare with the log
    reused: bool = False  # sent on a keep-alive connection that had served a request before
    idle: float = 0.0  # seconds the connection had been idle before this request


@dataclass(eq=False)
class Client(threading.Thread):
    """One keep-alive client: GET path, wait `pause`, again, until stopped; records every result."""

    server: object
    path: str
    pause: float
    stop: threading.Event
    results: list[Result] = field(default_factory=list)
    limit: int | None = None  # stop after this many requests

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)

    def run(self) -> None:
        conn = None
        served = 0  # requests served on the current connection
        last = time.monotonic()
        while not self.stop.is_set() and (self.limit is None or len(self.results) < self.limit):
            if conn is None:
                conn = self.server.connection(timeout=20)
                served = 0
            started = time.monotonic()
            idle, last = started - last, started
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                pid = json.loads(body)["pid"] if resp.status == 200 else None
                self.results.append(Result(started, self.path, resp.status, pid))
                served += 1
                last = time.monotonic()
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failed = Result(
                    started, self.path, None, error=repr(exc), reused=served > 0, idle=idle
                )
                self.results.append(failed)
                conn.close()
                conn = None
            self.stop.wait(self.pause)
        if conn is not None:
            conn.close()


@contextlib.contextmanager
def running(clients: list[Client]) -> Iterator[None]:
    """Start clients; on leaving, stop them (set their stop events) and wait for them."""
    for client in clients:
        client.start()
    try:
        yield
    finally:
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(20)


def failures(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status != 200]


def show(failed: list[Result]) -> list[str]:
    """Failed requests, with their wall-clock time (to find them in the server's log)."""
    return [
        f"{dt.datetime.fromtimestamp(r.at):%H:%M:%S.%f} {r.path} {r.status} {r.error} "
        f"(reused connection: {r.reused}, idle {r.idle:.2f} s before)"
        for r in failed[:10]
    ]


def governor_yaml(groups: dict, routes: str, **governor) -> str:
    """A site with the governor on. keepalive_timeout is raised from 5 s to 60 s: on a heavily
    loaded machine a client thread can be starved for 5 s, and the server then rightly closes
    its idle keep-alive connection just as the next request goes out (the usual keep-alive race,
    not what these tests are about)."""
    options = {"enabled": True, "source": "budget", **governor}
    return site_yaml(
        groups,
        routes=routes,
        default_group="web",
        extra="memory_governor: "
        + json.dumps(options)
        + "\nlimits: "
        + json.dumps({"keepalive_timeout": 60}),
    )


def sampled(doc_group: dict) -> bool:
    """Every worker of a group has put a memory sample in the scoreboard."""
    return bool(doc_group["workers"]) and all(w["pss_bytes"] > 0 for w in doc_group["workers"])


# -- (a) only graceful recycles -------------------------------------------------------------------

BUDGET_A = 320 * MiB
LOWER_A, UPPER_A = 0.5, 0.85
INTERVAL_A = 0.25
GROW_MB = 20
HOG_PAUSE = 0.2


def test_graceful_recycles_keep_the_site_under_upper_with_no_failed_request(make_server):
    """The hog group grows by 20 MiB per request, 5 requests a second (100 MiB/s); the governor
    recycles its largest workers above lower (160 MiB), one per group per interval, and the
    site stays under upper (272 MiB) while two other groups serve steady traffic."""
    mem = {"interval": 0.1}  # workers publish their memory every 0.1 s
    server = make_server(
        governor_yaml(
            {
                "hog": {"app": APP, "processes": 3, "threads": 1, "memory": mem},
                "web": {"app": APP, "processes": 2, "threads": 2, "memory": mem},
                "api": {"app": APP, "processes": 1, "threads": 2, "memory": mem},
            },
            routes="- {prefix: /hog/, group: hog}\n- {prefix: /api/, group: api}",
            budget=BUDGET_A,
            lower=LOWER_A,
            upper=UPPER_A,
            interval=INTERVAL_A,
            mercy=1.0,
            max_recycles_per_group=1,
            respawn_delay=0.5,
        )
    )
    wait_for(lambda: all(sampled(g) for g in server.stats()["groups"].values()), timeout=5)
    idle = server.stats()["memory_governor"]
    assert idle["enabled"] and idle["source"] == "budget"
    assert idle["limit_bytes"] == BUDGET_A
    assert idle["used_bytes"] < LOWER_A * BUDGET_A / 2, idle  # the scenario needs headroom

    stop = threading.Event()
    clients = [
        Client(server, f"/hog/grow?mb={GROW_MB}", HOG_PAUSE, stop),
        Client(server, "/web/ping", 0.01, stop),
        Client(server, "/web/page", 0.01, stop),
        Client(server, "/api/item", 0.02, stop),
    ]
    samples: list[tuple[int, float]] = []  # (site PSS, governor use)
    # 40 hog requests (800 MiB allocated in all, 2.5x the budget), 8-10 s on an idle machine;
    # on a loaded one the loop gives up waiting after 15 s
    started = time.monotonic()
    with running(clients):
        while len(clients[0].results) < 40 and time.monotonic() < started + 15:
            doc = server.stats()
            samples.append((site_pss(server, doc), doc["memory_governor"].get("use", 0.0)))
            time.sleep(0.1)
    doc = server.stats()
    log = server.log()
    results = [r for c in clients for r in c.results]
    hog_requests = len(clients[0].results)
    print(
        f"hog requests {hog_requests}, steady requests {len(results) - hog_requests}, "
        f"governor recycles {dict(restarts(doc, 'governor'))}, samples {len(samples)}, "
        f"peak site PSS {max(s for s, _ in samples) >> 20} MiB "
        f"(upper {int(UPPER_A * BUDGET_A) >> 20} MiB), "
        f"peak use {max(u for _, u in samples):.3f}"
    )
    print(*show(failures(results)), sep="\n")

    # No request failed: recycles are graceful (in-flight requests finish, idle keep-alive
    # connections go back to the group's queue).
    assert failures(results) == [], show(failures(results))
    assert hog_requests >= 20, hog_requests  # 400 MiB at least: more than the budget
    assert min(len(c.results) for c in clients[1:]) >= 50

    # Recycles happened, only graceful ones, counted by reason.
    assert restarts(doc, "governor")["hog"] > 0, doc["memory_governor"]
    assert sum(restarts(doc, "governor_kill").values()) == 0
    assert "governor_kill" not in doc["memory_governor"]["decisions"]
    assert doc["memory_governor"]["decisions"]["governor"] >= restarts(doc, "governor")["hog"]
    decisions = logged_decisions(log)
    assert decisions and all(d.action == "recycling" for d in decisions)
    assert "upper bound passed" not in log and "killing worker" not in log
    assert all(d.source == "budget" and d.limit_mib == BUDGET_A >> 20 for d in decisions)
    assert all(d.use >= LOWER_A * 100 for d in decisions)
    assert {d.group for d in decisions} >= {"hog"}
    assert any(d.uss_mib >= GROW_MB for d in decisions if d.group == "hog")

    # Recycles per interval per group stay within max_recycles_per_group (1). The decisions of
    # one round are logged within a millisecond or two of each other; successive rounds are at
    # least `interval` (0.25 s) apart, though their log lines can come closer by the master's
    # scheduling delay on a loaded machine (0.21 s seen at load average 17). So decisions less
    # than interval / 2 apart count as one round, and no round may hold two of one group.
    by_group = defaultdict(list)
    for d in decisions:
        by_group[d.group].append(d.at)
    for group, times in by_group.items():
        gaps = [b - a for a, b in pairwise(times)]
        assert all(gap >= INTERVAL_A / 2 for gap in gaps), (group, gaps)
    assert len(by_group["hog"]) >= restarts(doc, "governor")["hog"]  # each one was logged

    # The site stayed under upper. Tolerance: one request's allocation (20 MiB) above
    # upper * budget, at most in 5% of the samples. Why: the governor sees a worker's growth
    # only at the worker's next memory sample (0.1 s) and acts at its next round (0.25 s), and
    # a recycled worker leaves only after its current request, so a /grow that is already
    # running when use crosses a bound still lands. With 100 MiB/s of growth and 112 MiB
    # between lower and upper, the design point is never to reach upper at all.
    ceiling = UPPER_A * BUDGET_A
    assert len(samples) >= 30
    peak = max(s for s, _ in samples)
    over = [s for s, _ in samples if s > ceiling]
    assert peak <= ceiling + GROW_MB * MiB, (peak >> 20, [s >> 20 for s, _ in samples])
    assert len(over) <= 0.05 * len(samples), ([s >> 20 for s in over], len(samples))
    assert max(use for _, use in samples) < UPPER_A
    # ... and the governor had work to do: use went above lower at some point
    assert max(use for _, use in samples) >= LOWER_A


# -- (b) pushed past upper ------------------------------------------------------------------------

BUDGET_B = 200 * MiB
LOWER_B, UPPER_B = 0.5, 0.7  # 100 MiB and 140 MiB: one 150 MiB request is more than the headroom


def _kill_site(make_server, mercy: float):
    mem = {"interval": 0.1}
    return make_server(
        governor_yaml(
            {
                "hog": {"app": APP, "processes": 1, "threads": 2, "memory": mem},
                "web": {"app": APP, "processes": 2, "threads": 2, "memory": mem},
            },
            routes="- {prefix: /hog/, group: hog}",
            budget=BUDGET_B,
            lower=LOWER_B,
            upper=UPPER_B,
            interval=0.2,
            mercy=mercy,
            respawn_delay=0.2,
        )
    )


def _push_past_upper(server, hold: float) -> tuple[int, threading.Thread, list[Result]]:
    """One hog request allocates 150 MiB and stays in flight `hold` seconds."""
    wait_for(lambda: all(sampled(g) for g in server.stats()["groups"].values()), timeout=5)
    assert server.stats()["memory_governor"]["use"] < LOWER_B
    (hog_pid,) = group_pids(server, "hog")
    out: list[Result] = []

    def call():
        started = time.monotonic()
        try:
            status, _, body = server.request("GET", f"/hog/grow?mb=150&hold={hold}", timeout=20)
            out.append(Result(started, "/hog/grow", status))
        except (OSError, http.client.HTTPException) as exc:
            out.append(Result(started, "/hog/grow", None, error=repr(exc)))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return hog_pid, thread, out


def test_pushed_past_upper_the_governor_kills_logs_and_counts_it(make_server):
    server = _kill_site(make_server, mercy=0.3)
    hog_pid, thread, hog_result = _push_past_upper(server, hold=4)
    log = server.wait_log("upper bound passed", timeout=10)
    kills = [d for d in logged_decisions(log) if d.action == "killing"]
    assert kills, log
    kill = kills[0]
    assert kill.use >= UPPER_B * 100 and kill.source == "budget" and kill.limit_mib == 200
    # killed in the request that held the memory, which the line names
    server.wait_log(
        f"worker {kill.pid} (group {kill.group}) exited (killed by SIGKILL); 1 request in flight"
    )
    # The first round above upper only recycled (above upper every group gives one); the kill
    # came at least `mercy` (0.3 s) after it.
    first = next(d for d in logged_decisions(log) if d.use >= UPPER_B * 100)
    assert first.action == "recycling"
    assert first.why == "above upper bound"  # it said "above lower bound" past upper
    assert kill.why == "upper bound passed"
    assert kill.at - first.at >= 0.3 - 0.02

    doc = wait_for(
        lambda: (
            (d := server.stats())["memory_governor"]["decisions"].get("governor_kill")
            and sum(restarts(d, "governor_kill").values()) >= 1
            and d
        )
    )
    assert doc["memory_governor"]["decisions"]["governor_kill"] >= 1
    assert restarts(doc, "governor_kill")[kill.group] >= 1
    thread.join(20)
    # the site recovers: every group serves again once the big request has gone
    wait_for(lambda: server.stats()["memory_governor"]["use"] < LOWER_B, timeout=15)
    assert server.get_json("/web/after")["path"] == "/web/after"
    assert server.get_json("/hog/after")["path"] == "/hog/after"


def test_with_no_mercy_the_worker_holding_the_memory_is_killed_in_its_request(make_server):
    server = _kill_site(make_server, mercy=0)
    steady = Client(server, "/web/ping", 0.01, threading.Event())
    with running([steady]):
        hog_pid, thread, hog_result = _push_past_upper(server, hold=5)
        log = server.wait_log("upper bound passed", timeout=10)
        kill = next(d for d in logged_decisions(log) if d.action == "killing")
        assert (kill.pid, kill.group) == (hog_pid, "hog")
        assert kill.uss_mib >= 140
        thread.join(10)
        assert not thread.is_alive()
        # the killed request does not get a 200: the worker died in it
        assert hog_result and hog_result[0].status != 200, hog_result
        wait_for(lambda: group_pids(server, "hog") - {hog_pid}, timeout=10)  # a replacement
    decisions = logged_decisions(server.log())
    assert [d.pid for d in decisions if d.action == "killing"] == [hog_pid]
    # The web group was not killed; its requests all succeeded (its workers may have been
    # recycled gracefully while use was above upper, which drops no request).
    assert failures(steady.results) == [], show(failures(steady.results))
    doc = server.stats()
    assert restarts(doc, "governor_kill") == {"hog": 1, "web": 0}
    assert server.get_json("/hog/again")["pid"] != hog_pid


def test_after_mercy_the_kill_falls_on_the_worker_holding_the_memory(make_server):
    server = _kill_site(make_server, mercy=0.3)
    steady = Client(server, "/web/ping", 0.01, threading.Event())
    with running([steady]):
        hog_pid, thread, _ = _push_past_upper(server, hold=4)
        log = server.wait_log("upper bound passed", timeout=10)
        killed = [(d.pid, d.group) for d in logged_decisions(log) if d.action == "killing"]
        thread.join(20)
    assert killed[0] == (hog_pid, "hog"), killed  # today: a web worker of ~3 MiB USS
    assert failures(steady.results) == []


# -- (c) memory_priority --------------------------------------------------------------------------


def _priority_site(make_server):
    mem = {"interval": 0.1}
    return make_server(
        governor_yaml(
            {
                "admin": {
                    "app": APP,
                    "processes": 2,
                    "threads": 1,
                    "memory_priority": 10,
                    "memory": mem,
                },
                "reports": {"app": APP, "processes": 2, "threads": 1, "memory": mem},
                "web": {"app": APP, "processes": 1, "threads": 2, "memory": mem},
            },
            routes="- {prefix: /admin/, group: admin}\n- {prefix: /reports/, group: reports}",
            budget=400 * MiB,
            lower=0.5,
            upper=0.9,
            interval=0.2,
            mercy=5.0,
            respawn_delay=0.2,
        )
    )


def test_the_higher_priority_group_is_recycled_first(make_server):
    """admin (memory_priority 10) holds 60 MiB, reports (priority 0) 130 MiB: by USS alone reports
    would go first; by priority admin gives up its worker first (and that alone brings use back
    under lower: ~235 MiB -> ~180 MiB of a 200 MiB lower bound)."""
    server = _priority_site(make_server)
    wait_for(lambda: all(sampled(g) for g in server.stats()["groups"].values()), timeout=5)
    admin_pid = server.get_json("/admin/grow?mb=60")["pid"]
    wait_for(lambda: server.stats()["memory_governor"]["used_bytes"] > 100 * MiB, timeout=5)
    assert server.stats()["memory_governor"]["use"] < 0.5
    assert "memory governor: above" not in server.log()
    server.get_json("/reports/grow?mb=130")  # crosses lower (200 MiB)
    log = server.wait_log("memory governor: above lower bound", timeout=10)
    decisions = logged_decisions(log)
    first = decisions[0]
    assert (first.group, first.pid) == ("admin", admin_pid), decisions
    assert 60 <= first.uss_mib < 130  # the reports worker was larger
    admins = [i for i, d in enumerate(decisions) if d.group == "admin"]
    reports = [i for i, d in enumerate(decisions) if d.group == "reports"]
    assert not reports or min(admins) < min(reports)
    wait_for(lambda: admin_pid not in group_pids(server, "admin"), timeout=10)


def test_no_respawn_storm_when_the_priority_group_has_nothing_left_to_give(make_server):
    server = _priority_site(make_server)
    wait_for(lambda: all(sampled(g) for g in server.stats()["groups"].values()), timeout=5)
    server.get_json("/admin/grow?mb=40")
    reports_pid = server.get_json("/reports/grow?mb=175")["pid"]  # still above lower without
    server.wait_log("memory governor: above lower bound", timeout=10)  # admin's 40 MiB
    time.sleep(4)
    decisions = logged_decisions(server.log())
    admin = [d for d in decisions if d.group == "admin"]
    small = [d for d in admin if d.uss_mib < 10]
    reports = [d.pid for d in decisions if d.group == "reports"]
    # today: ~15 admin recycles of 3-4 MiB workers in 4 s, reports never
    assert len(small) <= 2 and reports_pid in reports, (len(admin), len(small), reports)


# -- budget mode counts the whole site ------------------------------------------------------------


def test_budget_mode_counts_every_process_of_the_site(make_server):
    mem = {"interval": 0.1}
    server = make_server(
        governor_yaml(
            {
                "web": {"app": APP, "processes": 2, "memory": mem},
                "admin": {"app": APP, "processes": 1, "preload": True, "memory": mem},
            },
            routes="- {prefix: /admin/, group: admin}",
            budget=1024 * MiB,
            interval=0.1,
        )
    )
    wait_for(lambda: all(sampled(g) for g in server.stats()["groups"].values()), timeout=5)
    time.sleep(0.5)  # idle: memory is steady, the governor has had several rounds
    seen = server.stats()["memory_governor"]["used_bytes"]
    actual = tree_pss(server)
    assert abs(seen - actual) < 2 * MiB, (seen >> 20, actual >> 20)


# -- (d) cgroup mode ------------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where groupserver.governor looks for our cgroup


def _cgroup2_mounts() -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            mounts.append(left.split()[4])
    return mounts


def _writable_cgroup() -> tuple[Path | None, str]:
    """Make a child cgroup with the memory controller we may limit and move processes into;
    (its path, "") or (None, why not)."""
    mounts = _cgroup2_mounts()
    if not mounts:
        return None, "no cgroup v2 hierarchy is mounted"
    if str(CGROUP_ROOT) not in mounts:
        return None, (
            f"cgroup v2 is mounted at {', '.join(mounts)}, not at {CGROUP_ROOT} (a hybrid "
            f"v1/v2 host), where the governor looks for the server's cgroup"
        )
    controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    if "memory" not in controllers:
        return None, f"the memory controller is not in {CGROUP_ROOT}/cgroup.controllers"
    subtree = CGROUP_ROOT / "cgroup.subtree_control"
    if "memory" not in subtree.read_text().split():
        try:
            subtree.write_text("+memory")
        except OSError as exc:
            return None, f"cannot enable the memory controller for child cgroups: {exc}"
    child = CGROUP_ROOT / f"groupserver-test-{uuid.uuid4().hex[:8]}"
    try:
        child.mkdir()
    except OSError as exc:
        return None, f"cannot create a cgroup under {CGROUP_ROOT}: {exc}"
    try:
        (child / "memory.max").write_text(str(512 * MiB))
        probe = subprocess.Popen(["sleep", "10"])
        try:
            (child / "cgroup.procs").write_text(str(probe.pid))
            moved = Path(f"/proc/{probe.pid}/cgroup").read_text()
        finally:
            probe.kill()
            probe.wait()
        if f"0::/{child.name}" not in moved:
            raise OSError(f"a moved process reports {moved!r}")
        if not (child / "memory.current").exists():
            raise OSError("no memory.current in the child cgroup")
    except OSError as exc:
        _remove_cgroup(child)
        return None, f"cannot limit a child cgroup and move a process into it: {exc}"
    return child, ""


def _remove_cgroup(child: Path) -> None:
    """Move any process left in the cgroup to the root, then remove it (retried: rmdir is EBUSY
    until the last process has really gone)."""
    deadline = time.monotonic() + 10
    while child.exists():
        with contextlib.suppress(OSError):
            for pid in (child / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP_ROOT / "cgroup.procs").write_text(pid)
        try:
            child.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def limited_cgroup(monkeypatch):
    """A child cgroup limited to 512 MiB; servers started meanwhile start inside it."""
    child, why = _writable_cgroup()
    if child is None:
        print(f"cgroup-mode test skipped: {why}")
        pytest.skip(why)
    procs = str(child / "cgroup.procs")
    real_popen = subprocess.Popen

    def enter_cgroup() -> None:  # in the child, between fork and exec
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    def popen(args, *a, **kw):
        if kw.get("preexec_fn") is None and "groupserver" in args:
            kw["preexec_fn"] = enter_cgroup
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    try:
        yield child
    finally:
        monkeypatch.undo()
        _remove_cgroup(child)


def test_cgroup_mode_measures_the_cgroup_against_memory_max(limited_cgroup, make_server):
    mem = {"interval": 0.1}
    server = make_server(
        site_yaml(
            {
                "hog": {"app": APP, "processes": 3, "memory": mem},
                "web": {"app": APP, "processes": 1, "memory": mem},
            },
            routes="- {prefix: /hog/, group: hog}",
            default_group="web",
            extra="memory_governor: "
            + json.dumps(
                {
                    "enabled": True,
                    "source": "cgroup",
                    "lower": 0.4,
                    "upper": 0.95,
                    "interval": 0.2,
                    "respawn_delay": 0.2,
                }
            ),
        )
    )
    try:
        assert "memory governor: source cgroup" in server.log()
        assert f"0::/{limited_cgroup.name}" in Path(f"/proc/{server.pid}/cgroup").read_text()
        gov = wait_for(lambda: "use" in (g := server.stats()["memory_governor"]) and g)
        assert gov["source"] == "cgroup" and gov["limit_bytes"] == 512 * MiB
        current = int((limited_cgroup / "memory.current").read_text())
        assert abs(gov["used_bytes"] - current) < 64 * MiB
        # grow the hog group past lower (205 MiB of 512): 3 x 80 MiB
        for _ in range(3):
            server.get_json("/hog/grow?mb=80")
        log = server.wait_log("memory governor: above lower bound", timeout=10)
        decision = logged_decisions(log)[0]
        assert decision.source == "cgroup" and decision.limit_mib == 512
        assert decision.group == "hog" and decision.action == "recycling"
        wait_for(lambda: restarts(server.stats(), "governor")["hog"] >= 1, timeout=10)
        assert "killing worker" not in server.log()
    finally:
        server.stop()
        assert wait_for_gone(server) == []
