"""Seeing inside every group: /stats, /metrics, status, advise and ctl against a real server."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time

from conftest import Step, client_traffic, site_yaml, wait_for
from prometheus_client.parser import text_string_to_metric_families

from groupserver.control import send_command
from groupserver.stats.advice import advise_group

TWO_GROUPS = site_yaml(
    {"main": {"processes": 2, "threads": 2}, "admin": {"app": "lifecycle_app:application"}},
    routes="- {prefix: /admin, group: admin, mount: true}",
    extra="stats: {listen: '127.0.0.1:0'}",
)


def _drive_known_traffic(server) -> None:
    for n in range(7):
        assert server.request("GET", f"/page{n}")[0] == 200
    assert server.request("GET", "/error")[0] == 500
    for n in range(3):
        assert server.request("GET", f"/admin/x{n}")[0] == 200


def test_stats_and_metrics_count_known_traffic_exactly(make_server):
    server = make_server(TWO_GROUPS)
    _drive_known_traffic(server)

    def settled():
        # a worker counts a request just after sending its response: wait for the last one
        doc = json.loads(server.stats_get("/stats")[2])
        groups = doc["groups"]
        done = groups["main"]["requests_total"] == 8 and groups["admin"]["requests_total"] == 3
        return doc if done else None

    doc = wait_for(settled)
    main, admin = doc["groups"]["main"], doc["groups"]["admin"]
    assert main["requests_total"] == 8 and admin["requests_total"] == 3
    assert main["responses"]["2xx"] == 7 and main["responses"]["5xx"] == 1
    assert admin["responses"]["2xx"] == 3 and admin["responses"]["5xx"] == 0
    assert sum(main["latency_seconds"]["app"]["buckets"]) == 8
    assert 0 < main["latency_seconds"]["app"]["p50"] < 1.0  # plausible for an echo app
    assert main["latency_seconds"]["queue"]["p99"] < 1.0
    assert len(main["workers"]) == 2 and len(admin["workers"]) == 1
    for worker in main["workers"]:
        assert worker["state"] == "ready" and worker["threads"] == 2
        assert worker["pid"] > 0
    wait_for(
        lambda: (
            json.loads(server.stats_get("/stats")[2])["groups"]["main"]["workers"][0]["uss_bytes"]
            > 0
        )
    )
    assert main["backlog"] == 0 and main["failing"] is False

    status, content_type, body = server.stats_get("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = {s.labels["group"]: s.value for s in families["groupserver_requests"].samples}
    assert requests == {"main": 8, "admin": 3}
    failing = {s.labels["group"]: s.value for s in families["groupserver_failing"].samples}
    assert failing == {"main": 0, "admin": 0}
    responses = {
        (s.labels["group"], s.labels["status"]): s.value
        for s in families["groupserver_responses"].samples
    }
    assert responses[("main", "2xx")] == 7 and responses[("main", "5xx")] == 1
    counts = [
        s.value
        for s in families["groupserver_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["group"] == "admin"
    ]
    assert counts == [3]
    assert server.stats_get("/healthz")[0] == 200
    assert server.stats_get("/readyz")[0] == 200
    assert server.stats_get("/nope")[0] == 404


def test_stats_answer_while_every_worker_is_busy(make_server):
    server = make_server(
        site_yaml({"main": {"threads": 1}}, extra="stats: {listen: '127.0.0.1:0'}")
    )
    hung = threading.Thread(target=lambda: server.request("GET", "/sleep?s=3", timeout=20))
    hung.start()
    # the worker publishes its oldest request in flight every 100 ms
    wait_for(
        lambda: json.loads(server.stats_get("/stats")[2])["groups"]["main"]["workers"][0][
            "current_request"
        ]
    )
    doc = json.loads(server.stats_get("/stats", timeout=2)[2])
    (worker,) = doc["groups"]["main"]["workers"]
    assert worker["current_request"]["url"] == "/sleep?s=3"
    reply = send_command(str(server.dir / ".testsite.ctl"), {"cmd": "stats"}, timeout=2)
    assert reply["ok"]
    hung.join(20)


def _live_status(server, stdout) -> subprocess.Popen:
    """`status --interval 0.2` writing to stdout (a pipe or a terminal), until stopped."""
    return subprocess.Popen(
        [sys.executable, "-m", "groupserver", "status", str(server.config), "--interval", "0.2"],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
    )


def _read_for(fd: int, seconds: float) -> bytes:
    """What arrives on fd for that long."""
    chunks = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a terminal whose other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_live_status_clears_a_terminal_and_appends_to_a_pipe(make_server):
    server = make_server(site_yaml({"main": {}}))
    piped = _live_status(server, subprocess.PIPE)
    try:
        out = _read_for(piped.stdout.fileno(), 1.5)
    finally:
        piped.kill()
        piped.wait(5)
        piped.stdout.close()
    assert out.count(b"GROUP ") >= 3, out
    assert b"\x1b" not in out
    assert b"\n\nsite testsite " in out  # later tables follow a blank line
    controller, terminal = os.openpty()
    on_tty = _live_status(server, terminal)
    os.close(terminal)
    try:
        out = _read_for(controller, 1.5)
    finally:
        on_tty.kill()
        on_tty.wait(5)
        os.close(controller)
    assert out.count(b"\x1b[H\x1b[2J") >= 3, out


def test_status_once_json_and_advise_print_their_fields(make_server):
    server = make_server(TWO_GROUPS)
    _drive_known_traffic(server)
    wait_for(
        lambda: (
            json.loads(server.cli("status", "--once", "--json").stdout)["groups"]["main"][
                "requests_total"
            ]
            == 8
        )
    )
    table = server.cli("status", "--once", "--workers")
    assert table.returncode == 0
    assert re.search(r"^main\s+2\s+2\s", table.stdout, re.M)
    assert re.search(r"^admin\s+1\s+1\s", table.stdout, re.M)
    advice = server.cli("advise")
    assert advice.returncode == 0
    assert re.search(
        r"^main: peak \d+ of 4 threads busy.*suggest processes: \d+, threads: \d+$",
        advice.stdout,
        re.M,
    ), advice.stdout
    structured = json.loads(server.cli("advise", "--json").stdout)
    assert {a["group"] for a in structured} == {"main", "admin"}
    for item in structured:
        assert {
            "processes",
            "threads",
            "peak_concurrency",
            "capacity_utilisation",
            "queue_p90_seconds",
            "involuntary_ctx_per_s",
            "uss_per_worker_bytes",
        } <= set(item["facts"])


def test_memory_growth_is_attributed_to_the_url_that_allocates(make_server):
    server = make_server(TWO_GROUPS)
    for n in range(3):
        server.request("GET", f"/admin/list{n}")
        server.request("GET", "/admin/alloc?mb=30")

    def top():
        doc = server.stats()
        urls = doc["groups"]["admin"]["memory_by_url"]
        return urls if urls and urls[0]["count"] == 3 else None

    urls = wait_for(top)
    assert urls[0]["path"] == "/admin/alloc"
    assert urls[0]["max_growth_bytes"] >= 25 * 2**20
    assert urls[0]["total_growth_bytes"] >= 75 * 2**20


def test_memory_by_url_counts_a_transient_allocation_freed_before_the_response(make_server):
    # 40 MiB allocated, touched and freed within the request: the worker's RSS ends where it
    # started, yet the request needed the memory, and that is what memory_by_url is for.
    server = make_server(TWO_GROUPS)
    server.request("GET", "/admin/alloc?mb=40&keep=0")
    server.request("GET", "/admin/small")

    def top():
        doc = server.stats()
        urls = doc["groups"]["admin"]["memory_by_url"]
        return urls or None

    urls = wait_for(top)
    assert urls[0]["path"] == "/admin/alloc"
    assert urls[0]["count"] == 1
    assert 40 * 2**20 <= urls[0]["max_growth_bytes"] < 48 * 2**20
    assert all(u["max_growth_bytes"] < 8 * 2**20 for u in urls[1:])


def test_memory_by_url_still_names_what_a_recycled_worker_grew_on(make_server):
    # The request that made a worker big is what an operator looks for after it was recycled.
    server = make_server(
        site_yaml(
            {"main": {"app": "lifecycle_app:application", "max_requests": 2}},
            extra="stats: {listen: '127.0.0.1:0'}",
        )
    )
    first = server.get_json("/alloc?mb=30")["pid"]
    server.request("GET", "/small")  # the second: the worker retires
    wait_for(lambda: first not in {w["pid"] for w in server.stats()["groups"]["main"]["workers"]})
    urls = server.stats()["groups"]["main"]["memory_by_url"]
    assert urls[0]["path"] == "/alloc" and urls[0]["max_growth_bytes"] >= 25 * 2**20, urls


def test_a_worker_the_master_retires_shows_retiring_at_once(make_server):
    """A worker retired by the master (ctl recycle, reload, max_requests, the governor) said
    `ready` until it exited: during every recycle the stats counted its threads as idle capacity
    (and advise, seeing them, could suggest shrinking the group)."""
    server = make_server(site_yaml({"main": {"threads": 2}}))
    (old,) = server.processes_titled("(wsgi:main)")
    slow = threading.Thread(target=server.request, args=("GET", "/sleep?s=3"), daemon=True)
    slow.start()
    wait_for(lambda: server.stats()["groups"]["main"]["busy_threads"] == 1)
    assert server.cli("ctl", "recycle", "main").returncode == 0

    def workers() -> dict[int, str]:
        return {w["pid"]: w["state"] for w in server.stats()["groups"]["main"]["workers"]}

    wait_for(lambda: len(workers()) == 2 and "starting" not in workers().values())
    group = server.stats()["groups"]["main"]
    assert workers()[old.pid] == "retiring", group["workers"]  # still in its request
    # busy: the request still running on it; idle: the new worker's two threads
    assert (group["busy_threads"], group["idle_threads"]) == (1, 2)
    slow.join(10)
    wait_for(lambda: old.pid not in workers())


def test_capacity_utilisation_counts_the_requests_still_running(make_server):
    """Busy time was charged only when a request ended: a group whose every thread was busy
    with long requests read 0% for as long as they ran, then 100% after they were done."""
    server = make_server(site_yaml({"main": {"threads": 2}}))
    clients = [
        threading.Thread(target=server.request, args=("GET", "/sleep?s=4"), daemon=True)
        for _ in range(2)
    ]
    for client in clients:
        client.start()
    wait_for(lambda: server.stats()["groups"]["main"]["busy_threads"] == 2)
    time.sleep(2.0)
    during = server.stats()["groups"]["main"]["capacity_utilisation"]
    assert during > 0.4, during  # 2 of 2 threads busy for most of the window so far
    for client in clients:
        client.join(10)
    after = server.stats()["groups"]["main"]["capacity_utilisation"]
    assert 0.4 < after <= 1.0, after  # not charged a second time when they ended


def test_ctl_scale_recycle_reload_and_stop(make_server):
    server = make_server(TWO_GROUPS)
    pids = {p.pid for p in server.processes_titled("(wsgi:main)")}
    assert server.cli("ctl", "scale", "main", "3").returncode == 0
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 3)
    assert server.stats()["groups"]["main"]["processes_wanted"] == 3  # it kept the YAML's
    scaled = server.cli("ctl", "scale", "main", "1")
    assert (
        scaled.returncode == 0 and scaled.stdout.strip() == "group main: 1 process"
    )  # was "1 processes"
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 1)
    (admin,) = server.processes_titled("(wsgi:admin)")
    assert server.cli("ctl", "recycle", "admin").returncode == 0
    wait_for(
        lambda: (
            [p for p in server.processes_titled("(wsgi:admin)") if p.pid != admin.pid]
            and admin.pid not in {p.pid for p in server.processes_titled("(wsgi:admin)")}
        )
    )
    doc = server.stats()
    assert doc["groups"]["admin"]["restarts"] == {"control": 1}
    assert doc["groups"]["admin"]["recent_recycles"][0]["pid"] == admin.pid
    bad = server.cli("ctl", "scale", "nope", "2")
    assert bad.returncode == 1 and "no such group" in bad.stderr
    control = str(server.dir / ".testsite.ctl")
    assert send_command(control, {"cmd": "nope"}) == {
        "ok": False,
        "error": "unknown command 'nope'",
    }
    huge = send_command(control, {"cmd": "scale", "group": "main", "processes": 1e308})
    assert huge == {"ok": False, "error": "processes must be an integer (got 1e+308)"}
    too_many = server.cli("ctl", "scale", "main", "5000")  # not a fork bomb
    assert too_many.returncode == 1
    assert "group main cannot grow to 5000 processes: the site runs at most 1024" in (
        too_many.stderr
    )
    assert len(server.processes_titled("(wsgi:main)")) == 1
    assert server.cli("ctl", "reload").returncode == 0
    server.wait_log("reload: generation 1 serving")
    assert not pids & {p.pid for p in server.processes_titled("(wsgi:main)")}
    assert server.cli("ctl", "stop").returncode == 0
    server.proc.wait(20)
    assert server.proc.returncode == 0
    after = server.cli("status", "--once")
    assert after.returncode == 1
    assert "site testsite is not running (nothing listens on its control socket" in after.stderr


def test_status_advise_and_ctl_reach_a_site_whose_yaml_was_broken_by_an_edit(make_server):
    """Halfway through an edit the YAML no longer validated, and status, advise and even
    `ctl stop` refused to talk to the running site, which only needs the control socket."""
    server = make_server(site_yaml({"main": {}}))
    good = server.config.read_text()
    server.config.write_text(good.replace("groups:", "groups:\n  bad: {app: x, threads: 0}"))
    status = server.cli("status", "--once")
    assert status.returncode == 0, status.stderr
    assert "groups.bad.threads: must be >= 1 (got 0)" in status.stderr
    assert "does not validate; asking the running site at" in status.stderr
    assert re.search(r"^main ", status.stdout, re.M), status.stdout
    reload = server.cli("ctl", "reload")  # would be refused: say so here
    assert reload.returncode == 2 and "groups.bad.threads" in reload.stderr
    server.config.write_text(good + "listen: [oops\n")  # a YAML syntax error
    assert server.cli("advise").returncode == 0
    stop = server.cli("ctl", "stop")
    assert stop.returncode == 0, stop.stderr
    assert server.proc.wait(20) == 0


def test_queue_time_of_kept_alive_requests_counts_their_wait_for_the_thread(make_server):
    """4 keep-alive clients of a 50 ms app on one thread: each request waits for the other
    three, ~150 ms, and the queue latency says so (it drives `advise`). Counting only from when
    the poller reported a request would miss the part of the wait in the socket, while the one
    thread was busy and nobody polled (about half of it here)."""
    server = make_server(
        site_yaml(
            {"main": {"app": "lifecycle_app:application", "threads": 1}},
            extra="stats: {listen: '127.0.0.1:0'}",
        )
    )
    with client_traffic(server, lambda _rng: Step("/sleep?s=0.05"), clients=4) as traffic:
        wait_for(lambda: traffic.served >= 40, timeout=30)
    assert not traffic.failures, traffic.failures[:3]
    main = json.loads(server.stats_get("/stats")[2])["groups"]["main"]
    queue = main["latency_seconds"]["queue"]
    assert 0.11 < queue["mean"] < 0.3, queue


def _group_stats(threads: int, limit: int, queue_p90: float) -> dict:
    """The parts of one group's stats that advise reads: 2 workers, a busy peak of 2."""
    worker = {"state": "ready", "involuntary_ctx_per_s": 10.0, "uss_bytes": 30 << 20}
    return {
        "name": "main",
        "threads_per_process": threads,
        "workers": [dict(worker, concurrency=limit), dict(worker, concurrency=limit)],
        "concurrency": {"peak": 2, "mean": 1.0},
        "requests_total": 5000,
        "latency_seconds": {"queue": {"p90": queue_p90}},
        "capacity_utilisation": 0.9,
        "backlog_max": 0,
    }


def test_advise_adds_processes_not_threads_when_the_concurrency_limit_holds_requests_back():
    # Requests that queue behind a limit of 1 of 8 threads compute: threads would not help.
    held_back = advise_group(_group_stats(threads=8, limit=1, queue_p90=0.08))
    assert held_back["facts"]["concurrency_limit"] == 1
    assert held_back["suggest"] == {"processes": 3, "threads": 8}
    assert "runs 1 of its 8 threads at once" in held_back["text"]
    # The same queue with every thread allowed: the requests block, and threads are cheap.
    blocking = advise_group(_group_stats(threads=8, limit=8, queue_p90=0.08))
    assert blocking["suggest"] == {"processes": 2, "threads": 12}
    assert "threads are cheap here" in blocking["text"]
    assert "idle connections were closed" not in blocking["text"]


def test_advise_keeps_a_group_that_served_too_few_requests_to_judge_and_says_why():
    # A one-thread group that served 3 requests one at a time was told to "add capacity".
    one_thread = _group_stats(threads=1, limit=1, queue_p90=0.002) | {
        "workers": [
            {"state": "ready", "involuntary_ctx_per_s": 1.0, "uss_bytes": 1, "concurrency": 1}
        ],
        "concurrency": {"peak": 1, "mean": 0.0},
    }
    few = advise_group(one_thread | {"requests_total": 3})
    assert few["suggest"] == {"processes": 1, "threads": 1}
    assert few["facts"]["requests"] == 3
    assert "in only 3 requests: too few to judge (it takes 100)" in few["text"]
    # With enough requests the headroom rule speaks, and says that nothing waited.
    # A group swamped at queue_timeout served few, but shed many: that is judged (it was kept).
    swamped = advise_group(
        one_thread | {"requests_total": 4, "shed": {"queue_timeout": 41}, "backlog_max": 19}
    )
    assert swamped["suggest"] == {"processes": 1, "threads": 2}, swamped
    assert "41 answered 503 at queue_timeout: add capacity" in swamped["text"]
    assert swamped["facts"]["shed_queue_timeout"] == 41
    many = advise_group(one_thread | {"requests_total": 500})
    assert many["suggest"] == {"processes": 1, "threads": 2}
    assert (
        "nothing waited, but the peak left less than a third of the threads spare" in many["text"]
    )


def test_advise_judges_an_adaptive_group_by_its_max_and_suggests_a_range():
    # It counted the workers running at the time and suggested a fixed "processes: 1".
    few_busy = _group_stats(threads=4, limit=4, queue_p90=0.0) | {
        "processes": {"min": 1, "max": 8},
        "concurrency": {"peak": 3, "mean": 1.0},
    }
    advice = advise_group(few_busy)
    assert advice["suggest"] == {"processes": {"min": 1, "max": 2}, "threads": 3}
    assert advice["text"] == (
        "main: peak 3 of 32 threads (at its max of 8 workers) busy: most threads sit idle; "
        "suggest processes: {min: 1, max: 2}, threads: 3"
    )
    assert advice["facts"]["processes"] == 2  # the workers running now
    fixed = advise_group(few_busy | {"processes": {"min": 2, "max": 2}})
    assert fixed["suggest"] == {"processes": 2, "threads": 4}
    assert "peak 3 of 8 threads busy: capacity fits" in fixed["text"]


def test_advise_mentions_idle_connections_closed_at_the_connection_cap():
    capped = advise_group(
        _group_stats(threads=2, limit=2, queue_p90=0.0) | {"idle_connections_closed": 40}
    )
    assert capped["facts"]["idle_connections_closed"] == 40
    assert capped["text"].endswith(
        "(and 40 idle connections were closed at max_connections_per_worker to take new ones: "
        "if clients reconnect often, raise it)"
    )
