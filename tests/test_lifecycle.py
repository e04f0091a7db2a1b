"""Per-group process lifecycle, observed on real processes: recycling, timeouts, memory, pools."""

from __future__ import annotations

import collections
import http.client
import random
import re
import signal
import socket
import threading
import time

import pytest
from conftest import APPS, Step, client_traffic, site_yaml, wait_for

APP = "lifecycle_app:application"


def _pids(server, title="(wsgi:main)") -> set[int]:
    return {p.pid for p in server.processes_titled(title)}


def test_worker_retires_after_max_requests_and_its_replacement_is_ready_first(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 2, "max_requests": 5}}))
    first = server.get_json("/r0")["pid"]
    for n in range(1, 5):
        assert server.get_json(f"/r{n}")["pid"] == first
    server.wait_log(f"worker {first} (group main): served 5 requests (max_requests 5)")
    # It keeps serving until its replacement is ready, so the group never has zero capacity.
    server.wait_log("asks to retire (max_requests)")
    served_by = []
    deadline = time.monotonic() + 10
    while first in _pids(server) and time.monotonic() < deadline:
        served_by.append(server.get_json("/more")["pid"])  # never fails during the hand-over
    wait_for(lambda: first not in _pids(server))
    assert len(_pids(server)) == 1
    assert server.get_json("/last")["pid"] != first


def test_a_failing_group_never_answers_503_while_a_worker_still_serves_it(make_server, tmp_path):
    """max_requests reached, and the code on disk broken meanwhile: the replacements die at
    start-up and the group is failing, but the old worker serves on until one is ready. The
    master answered some of its requests with 503 all the same."""
    (tmp_path / "apps").mkdir()
    app = tmp_path / "apps" / "deployed_app.py"
    app.write_text((APPS / "echo_app.py").read_text())
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": "deployed_app:application",
                    "python_path": [str(tmp_path / "apps")],
                    "threads": 2,
                    "max_requests": 3,
                }
            }
        )
    )
    app.write_text('raise RuntimeError("a broken deploy")\n')
    statuses = collections.Counter()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "is failing" not in server.log():
        statuses[server.request("GET", "/x", headers={"Connection": "close"})[0]] += 1
    assert "group main is failing" in server.log()
    for _ in range(50):  # failing now, and its old worker still serves
        statuses[server.request("GET", "/x", headers={"Connection": "close"})[0]] += 1
    assert set(statuses) == {200}, statuses
    assert "answering its requests with 503" not in server.log()


def test_max_requests_jitter_gives_each_worker_its_own_count(make_server):
    server = make_server(
        site_yaml(
            {"main": {"app": APP, "processes": 1, "max_requests": 4, "max_requests_jitter": 6}}
        )
    )
    pattern = re.compile(r"served (\d+) requests \(max_requests (\d+)\)")
    deadline = time.monotonic() + 60
    n = 0
    while len(pattern.findall(server.log())) < 5 and time.monotonic() < deadline:
        server.get_json(f"/r{n}")  # an old worker serves on until its replacement is ready
        n += 1
    limits = [int(limit) for _, limit in pattern.findall(server.log())]
    assert len(limits) >= 5
    assert all(4 <= limit <= 10 for limit in limits), limits
    assert len(set(limits)) > 1, limits  # each worker drew its own count


def test_term_stops_a_worker_still_waiting_for_its_replacement(make_server, tmp_path):
    """max_requests reached, the replacement still importing: TERM must stop both at once."""
    marker = tmp_path / "imported"
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": "slow_reimport_app:application",
                    "max_requests": 1,
                    "env": {"SLOW_REIMPORT_MARKER": str(marker)},
                }
            }
        )
    )
    assert server.request("GET", "/")[0] == 200
    server.wait_log("starting its replacement")
    started = time.monotonic()
    assert server.stop(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_inactive_worker_is_restarted_and_health_checks_do_not_count(make_server):
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": APP,
                    "inactivity_timeout": 1,
                    "ignore_activity": ["/health"],
                }
            }
        )
    )
    first = server.get_json("/work")["pid"]
    deadline = time.monotonic() + 10
    while first in _pids(server) and time.monotonic() < deadline:
        server.get_json("/health")  # keeps arriving, but is not activity
        time.sleep(0.2)
    assert first not in _pids(server)
    assert "inactive for" in server.log()
    assert server.get_json("/work")["pid"] != first


def test_a_worker_that_served_nothing_is_not_restarted_for_inactivity(make_server):
    """It is as small as its replacement: restarting it would re-import the app every
    inactivity_timeout for as long as nobody comes. The one restarted after serving is left
    alone too, until it serves."""
    server = make_server(site_yaml({"main": {"app": APP, "inactivity_timeout": 1}}))
    (first,) = _pids(server)
    time.sleep(2.5)
    assert _pids(server) == {first}
    server.get_json("/work")
    server.wait_log("inactive for", timeout=10)
    replacement = wait_for(lambda: _pids(server) - {first}, timeout=10)
    time.sleep(2.5)
    assert _pids(server) == replacement
    assert server.log().count("inactive for") == 1


def test_request_timeout_answers_504_logs_the_stack_and_recycles_the_worker(make_server, tmp_path):
    access = tmp_path / "access.log"
    server = make_server(
        site_yaml(
            {"main": {"app": APP, "threads": 2, "request_timeout": 1, "graceful_timeout": 1}},
            extra=f"access_log: '{access}'",
        )
    )
    first = server.get_json("/x")["pid"]
    started = time.monotonic()
    status, _, _ = server.request("GET", "/sleep?s=20", timeout=15)
    assert status == 504
    assert time.monotonic() - started < 5
    log = server.wait_log("over request_timeout")
    assert "GET /sleep?s=20" in log and "lifecycle_app.py" in log and "time.sleep" in log
    # The access log and the stats say what the client got, at once. They used to say nothing
    # until the app returned (never, here: the worker is killed first), and then "200".
    line = wait_for(
        lambda: re.search(r'"GET /sleep\?s=20 HTTP/1\.1" (\d+) (\S+)', access.read_text())
    )
    assert line.groups() == ("504", str(len("Gateway Timeout\n")))
    assert server.stats()["groups"]["main"]["responses"]["5xx"] == 1
    wait_for(lambda: first not in _pids(server), timeout=10)  # killed after graceful_timeout
    assert server.get_json("/after")["pid"] != first
    # killed in that request, which had its answer: a 504, not also a "failed" one
    responses = server.stats()["groups"]["main"]["responses"]
    assert (responses["5xx"], responses["failed"]) == (1, 0), responses


def test_a_worker_stuck_holding_the_gil_is_killed_after_request_timeout(make_server):
    # C code that keeps the GIL stops the worker's own watchdog too: the master sees its watch
    # loop stop, has it print its threads' stacks, kills it and starts another.
    server = make_server(
        site_yaml({"main": {"app": APP, "threads": 2, "request_timeout": 1, "graceful_timeout": 1}})
    )
    first = server.get_json("/x")["pid"]
    started = time.monotonic()
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        server.request("GET", "/hold-gil?s=60", timeout=30)  # closed without an answer
    assert time.monotonic() - started < 15  # not the 60 s the request would hold the worker
    log = server.wait_log("its watchdog has not run for")
    assert "over request_timeout 1s" in log
    assert 'lifecycle_app.py", line' in log and "in _serve" in log  # faulthandler's stacks
    wait_for(lambda: first not in _pids(server), timeout=10)
    assert server.get_json("/after")["pid"] != first
    # counted when the master reaps it, which may come a moment after the process is gone
    wait_for(
        lambda: server.stats()["groups"]["main"]["restarts"].get("request_timeout") == 1,
        timeout=5,
    )


@pytest.mark.parametrize("accept", ["front", "main"])
def test_queue_timeout_answers_503_with_retry_after(make_server, accept, tmp_path):
    """Queued behind a slow request: in the group's channel (front) or the accept queue (main)."""
    access = tmp_path / "access.log"
    server = make_server(
        site_yaml(
            {"main": {"app": APP, "threads": 1, "queue_timeout": 0.5}},
            extra=f"front: {{accept: {accept}}}\naccess_log: '{access}'",
        )
    )
    results = []

    def call(path):
        results.append(server.request("GET", path, timeout=15))

    slow = threading.Thread(target=call, args=("/sleep?s=1.5",))
    slow.start()
    time.sleep(0.2)
    waiting = [threading.Thread(target=call, args=(f"/w{n}",)) for n in range(2)]
    for t in waiting:
        t.start()
    for t in [slow, *waiting]:
        t.join(20)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 503, 503]
    shed = [r for r in results if r[0] == 503]
    assert all(r[1].get("Retry-After") == "1" for r in shed)
    assert server.get_json("/fresh")["path"] == "/fresh"
    # the 503s are in the access log and the stats, as every other answer (they were in neither)
    lines = wait_for(lambda: access.read_text().count("\n") >= 4 and access.read_text())
    body = len("Service Unavailable\n")
    assert (
        sorted(re.findall(r'"GET /w\d HTTP/1\.1" (\d+) (\S+)', lines)) == [("503", str(body))] * 2
    )
    assert server.stats()["groups"]["main"]["responses"]["5xx"] == 2


def test_memory_soft_limit_recycles_after_the_request(make_server):
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": APP,
                    "memory": {"soft": "60M", "min_lifetime": 0, "interval": 0.1},
                }
            }
        )
    )
    first = server.get_json("/small")["pid"]
    assert server.get_json("/alloc?mb=100")["pid"] == first  # the request itself completes
    server.wait_log("above the soft limit")
    wait_for(lambda: first not in _pids(server), timeout=10)
    assert server.get_json("/again")["pid"] != first


def test_memory_hard_limit_kills_at_once(make_server):
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": APP,
                    "memory": {"hard": "60M", "min_lifetime": 0, "interval": 0.1},
                }
            }
        )
    )
    first = server.get_json("/small")["pid"]
    with pytest.raises((ConnectionError, http.client.HTTPException)):  # no answer: killed in it
        server.request("GET", "/alloc?mb=100&then_sleep=5")
    # the log names the request it was killed in, and the stats count it (there was no trace)
    server.wait_log(
        "above the hard limit 60 MiB; killed; 1 request in flight (the oldest: "
        "/alloc?mb=100&then_sleep=5 for "
    )
    wait_for(lambda: first not in _pids(server), timeout=10)
    server.wait_log(f"worker {first} (group main) exited (killed by SIGKILL); 1 request in flight")
    assert server.get_json("/again")["pid"] != first
    assert "not by groupserver" not in server.log()
    assert server.stats()["groups"]["main"]["responses"]["failed"] == 1


def test_thread_stacks_follow_stack_size(make_server):
    from test_serving import _stack_mappings

    server = make_server(site_yaml({"main": {"app": APP, "threads": 100, "stack_size": "256K"}}))
    (pid,) = _pids(server)
    assert _stack_mappings(pid, 256 * 1024) == 100
    assert _stack_mappings(pid, 8 * 1024 * 1024) == 0


def test_worker_not_ready_within_startup_timeout_is_killed(make_server):
    server = make_server(
        site_yaml(
            {
                "main": {"app": APP},
                "slow": {"app": "slow_import_app:application", "startup_timeout": 1},
            },
            routes="- prefix: /slow\n  group: slow",
        ),
        wait_ready=False,
    )
    server.wait_log("not ready after startup_timeout", timeout=10)
    server.wait_log("(group slow) died at start-up (killed by SIGKILL)", timeout=10)
    assert "not by groupserver" not in server.log()  # it was ours, with its reason
    assert server.get_json("/fine")["path"] == "/fine"


def test_shutdown_timeout_bounds_a_stop_with_a_hung_request(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 2, "shutdown_timeout": 1}}))
    hung = threading.Thread(
        target=lambda: _ignore(lambda: server.request("GET", "/sleep?s=30", timeout=20))
    )
    hung.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop(signal.SIGTERM, timeout=15)
    assert time.monotonic() - started < 6
    assert "did not stop in time; killing it" in server.log()
    hung.join(20)


def _ignore(call):
    try:
        call()
    except Exception:  # noqa: BLE001
        pass


def test_adaptive_pool_grows_under_backlog_and_shrinks_when_idle(make_server):
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": APP,
                    "threads": 1,
                    "processes": {"min": 1, "max": 3, "idle_timeout": 1.5, "grow_after": 0.3},
                }
            }
        )
    )
    assert len(_pids(server)) == 1
    clients = [
        threading.Thread(target=lambda: server.request("GET", "/sleep?s=3", timeout=30))
        for _ in range(4)
    ]
    for t in clients:
        t.start()
    wait_for(lambda: len(_pids(server)) == 3, timeout=10)
    assert "grows to 2 workers: backlog" in server.log()
    for t in clients:
        t.join(30)
    wait_for(lambda: len(_pids(server)) == 1, timeout=15)
    assert "shrinks to 1 worker: " in server.log()  # it said "1 workers"
    assert len(re.findall("grows to", server.log())) == 2  # no flapping


def test_ctl_scale_moves_an_adaptive_pool_within_its_range_without_churn(make_server):
    """A scale used to add an offset the policy then fought: it retired an idle worker every
    idle_timeout and the master started another, for ever."""
    server = make_server(
        site_yaml(
            {
                "main": {
                    "app": APP,
                    "processes": {"min": 1, "max": 3, "idle_timeout": 1.5, "grow_after": 0.3},
                }
            }
        )
    )
    refused = server.cli("ctl", "scale", "main", "5")
    assert refused.returncode == 1
    assert (
        "group main is adaptive: it runs 1 to 3 processes (processes: {min: 1, max: 3}), "
        "not 5" in refused.stderr
    )
    assert server.cli("ctl", "scale", "main", "3").returncode == 0
    seen: set[int] = set()

    def back_to_one() -> bool:
        pids = _pids(server)
        seen.update(pids)
        return len(pids) == 1

    wait_for(lambda: len(_pids(server)) == 3, timeout=10)
    wait_for(back_to_one, timeout=15)  # idle: the policy takes it down again
    time.sleep(2.0)  # past another idle_timeout: nothing more may start
    seen.update(_pids(server))
    assert len(seen) == 3, f"workers started after the scale: {sorted(seen)}"
    assert server.log().count("shrinks to") == 2


def test_keep_alive_connection_survives_its_worker_retiring(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "max_requests": 2}}))
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        pids = []
        for n in range(5):
            sock.sendall(b"GET /k%d HTTP/1.1\r\nHost: t\r\n\r\n" % n)
            data = b""
            while not data.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                data += chunk
            pids.append(int(re.search(rb'"pid": (\d+)', data).group(1)))
            time.sleep(0.3)  # let the retiring worker hand the idle connection back
    assert len(set(pids)) >= 2  # served by more than one worker over one connection


@pytest.mark.parametrize("accept", ["front", "main"])
def test_fast_recycling_under_keepalive_traffic_loses_no_request(make_server, accept):
    """A worker retiring every few requests while kept-alive connections move between groups.

    Guards a race found by the soak test: a retiring worker could exit while its leader thread
    held a connection just taken from its parked set (the client saw a reset).
    """
    server = make_server(
        site_yaml(
            {
                "main": {"processes": 2, "threads": 2},
                "admin": {"app": APP, "threads": 2, "max_requests": 5},
            },
            routes="- {prefix: /admin, group: admin, mount: true}",
            extra=f"front: {{accept: {accept}}}",
        )
    )

    def pick(rng: random.Random) -> Step:
        path = rng.choice(["/admin/y", "/x"])
        body = b"x" * rng.randint(1, 1500) if rng.random() < 1 / 3 else None
        return Step(path, body, new_connection=rng.random() < 1 / 7)

    with client_traffic(server, pick) as traffic:
        time.sleep(4)
    assert traffic.failures == []
    assert traffic.served > 500
    assert server.log().count("retiring worker") >= 10
