"""The master under resource exhaustion and odd reloads: it keeps the site up, never dies of it."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import site_yaml, wait_for

PIDS_V1 = Path("/sys/fs/cgroup/pids")


@pytest.fixture
def pids_cgroup():
    """A cgroup v1 pids controller group of our own (root only); removed after the server."""
    path = PIDS_V1 / f"groupserver-test-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"needs a writable cgroup v1 pids controller at {PIDS_V1}: {exc}")
    yield path
    (path / "pids.max").write_text("max")
    for pid in (path / "cgroup.procs").read_text().split():  # only if a process is left
        (PIDS_V1 / "cgroup.procs").write_text(pid)
    wait_for(lambda: not (path / "cgroup.procs").read_text().split(), timeout=10)
    path.rmdir()


@pytest.mark.parametrize("who", ["spawner", "master"])
def test_the_master_survives_fork_failing_and_starts_the_worker_once_it_can(
    pids_cgroup, make_server, who
):
    """fork() failing (EAGAIN at a pids limit here; ENOMEM under memory pressure) killed the
    master, and with it the whole site. Now it logs, backs off, and starts the worker when
    fork works again: whether the group's spawner cannot fork a worker, or the master cannot
    fork a new spawner."""
    server = make_server(site_yaml({"main": {"processes": 1, "threads": 1}}))
    (worker,) = server.processes_titled("(wsgi:main)")
    (spawner,) = server.processes_titled("groupserver: spawner [main]")
    (pids_cgroup / "cgroup.procs").write_text(str(server.pid))
    if who == "spawner":
        (pids_cgroup / "cgroup.procs").write_text(str(spawner.pid))
    (pids_cgroup / "pids.max").write_text((pids_cgroup / "pids.current").read_text())
    if who == "master":
        spawner.send_signal(signal.SIGKILL)
    worker.send_signal(signal.SIGKILL)
    what = "worker" if who == "spawner" else "spawner"
    server.wait_log(f"cannot start a {what} of group main: [Errno 11]", count=2)
    assert "trying again in 0.5s" in server.log() and "trying again in 1.0s" in server.log()
    assert server.proc.poll() is None, "the master is alive"
    assert server.stats()["groups"]["main"]["workers"] == []  # and answers
    # After three failed starts in a row the group is failing: its requests get a 503 with
    # Retry-After at once instead of waiting for a worker that cannot be started.
    wait_for(lambda: server.stats()["groups"]["main"]["failing"], timeout=15)
    status, headers, _ = server.request("GET", "/while-fork-fails", timeout=5)
    assert status == 503 and int(headers["Retry-After"]) >= 1
    server.wait_log("group main is failing: answering its requests with 503")
    (pids_cgroup / "pids.max").write_text("max")
    server.wait_log("starting processes again (fork failed ", timeout=20)
    assert server.get_json("/after")["group"] == "main"
    time.sleep(0.2)
    assert server.proc.poll() is None


def test_a_reload_past_the_groups_limit_is_refused_and_the_site_keeps_serving(make_server):
    """Each group ever run keeps a counter column in the scoreboard: a reload that would need a
    33rd is refused before anything changes (it used to drop the running groups' queues)."""
    server = make_server(site_yaml({"main": {"processes": 1, "threads": 1}}))
    renamed = {f"g{i}": {"processes": 1} for i in range(32)}
    server.config.write_text(site_yaml(renamed, default_group="g0"))
    server.send_signal(signal.SIGHUP)
    server.wait_log("reload refused, keeping the running configuration: 32 new groups (g0, g1")
    time.sleep(0.6)  # a few rounds of the master's loop
    assert server.get_json("/still")["group"] == "main"
    assert server.stats()["groups"]["main"]["backlog"] == 0
    assert "unexpected error" not in server.log()


def test_workers_dying_at_start_up_back_off_by_rounds_and_count_as_startup_failed(make_server):
    """With two processes, each death doubled the back-off (2 s promised, 4 s waited); the group
    was logged as failing at every further death; and the deaths counted as `crash`, which the
    docs keep for workers that die after they were ready."""
    server = make_server(
        site_yaml(
            {"main": {"processes": 1}, "broken": {"app": "no_such_module:app", "processes": 2}},
            routes="- {prefix: /broken, group: broken}",
        ),
        wait_ready=False,
    )
    server.wait_log("group broken is failing: its workers died at start-up 3 times in a row")
    wait_for(lambda: server.log().count("(group broken) died at start-up") >= 6, timeout=20)
    log = server.log()
    delays = [
        float(d) for d in re.findall(r"\(group broken\) died at start-up .*in ([\d.]+)s", log)
    ]
    # two deaths a round: 0.5 1 2 for the first of each (the second gets what remains of it)
    assert delays[0:6:2] == [0.5, 1.0, 2.0], delays
    pairs = zip(delays[0:6:2], delays[1:6:2], strict=True)
    assert all(second <= first for first, second in pairs), delays
    assert log.count("group broken is failing") == 1
    restarts = server.stats()["groups"]["broken"]["restarts"]
    assert set(restarts) == {"startup_failed"} and restarts["startup_failed"] >= 6, restarts
