"""Workers that accept connections themselves (front.accept), against real processes and sockets."""

from __future__ import annotations

import json
import random
import resource
import signal
import socket
import threading
import time

import pytest
from conftest import Step, client_traffic, site_yaml, wait_for

FRONT_TITLE = "groupserver: front [testsite]"


def test_one_group_site_runs_no_front_and_serves_new_and_kept_connections(make_server):
    server = make_server(site_yaml({"main": {"processes": 2, "threads": 2}}))
    assert server.processes_titled(FRONT_TITLE) == []
    assert len(server.processes_titled("(wsgi:main)")) == 2
    assert "group main's workers accept" in server.log()
    before = time.time_ns() // 1000
    for _ in range(5):  # a new connection each
        status, headers, body = server.request("GET", "/x?a=1", headers={"Connection": "close"})
        assert status == 200 and headers["Connection"] == "close"
        seen = json.loads(body)
        assert (seen["group"], seen["query"], seen["remote_addr"]) == ("main", "a=1", "127.0.0.1")
        assert before - 5_000 <= seen["queue_start"] <= time.time_ns() // 1000
    conn = server.connection()
    try:
        for n in range(5):  # one kept connection
            conn.request("POST", f"/k{n}", body=b"x" * n)
            resp = conn.getresponse()
            assert json.loads(resp.read())["body"] == "x" * n
    finally:
        conn.close()


def test_the_accepting_group_hands_other_groups_requests_on(make_server):
    server = make_server(
        site_yaml(
            {"main": {"threads": 2}, "admin": {"threads": 1}},
            routes="- {prefix: /admin, group: admin}",
            extra="front: {accept: main}",
        )
    )
    assert server.processes_titled(FRONT_TITLE) == []
    assert server.get_json("/admin/a")["group"] == "admin"  # first request of a connection
    conn = server.connection()
    try:
        groups = []
        for path in ["/", "/admin/b", "/c", "/admin/d"]:
            conn.request("GET", path)
            groups.append(json.loads(conn.getresponse().read())["group"])
        assert groups == ["main", "admin", "main", "admin"]
    finally:
        conn.close()


def test_auto_keeps_the_front_for_a_site_with_several_groups(make_server):
    server = make_server(
        site_yaml({"main": {}, "admin": {}}, routes="- {prefix: /admin, group: admin}")
    )
    assert len(server.processes_titled(FRONT_TITLE)) == 1
    assert "a front process accepts" in server.log()
    assert server.get_json("/admin/x")["group"] == "admin"


def test_a_free_worker_takes_the_next_connection(make_server):
    """Two one-thread workers, two slow requests at once: each worker accepts one."""
    server = make_server(site_yaml({"main": {"processes": 2, "threads": 1}}))
    pids = []

    def slow():
        pids.append(server.get_json("/sleep?s=0.8", timeout=10)["pid"])

    threads = [threading.Thread(target=slow) for _ in range(2)]
    started = time.monotonic()
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(10)
    assert len(set(pids)) == 2, pids
    assert time.monotonic() - started < 1.5, "the second request waited for the first"


def test_backlog_counts_connections_waiting_in_the_accept_queue(make_server):
    server = make_server(site_yaml({"main": {"threads": 1}}))
    results = []

    def call(path):
        results.append(server.request("GET", path, timeout=15)[0])

    slow = threading.Thread(target=call, args=("/sleep?s=2",))
    slow.start()
    time.sleep(0.3)
    waiting = [threading.Thread(target=call, args=(f"/w{n}",)) for n in range(3)]
    for t in waiting:
        t.start()
    backlog = wait_for(lambda: server.stats()["groups"]["main"]["backlog"] >= 3, timeout=1.5)
    assert backlog
    for t in [slow, *waiting]:
        t.join(20)
    assert results == [200] * 4
    queue = server.stats()["groups"]["main"]["latency_seconds"]["queue"]
    assert queue["p99"] >= 1.0, "the queued requests' wait in the accept queue is measured"


def test_hup_moves_accepting_between_front_and_workers_without_failed_requests(make_server):
    front_yaml = site_yaml({"main": {"processes": 2, "threads": 2}}, extra="front: {accept: front}")
    server = make_server(front_yaml)
    assert len(server.processes_titled(FRONT_TITLE)) == 1

    def pick(rng: random.Random) -> Step:  # two in three close, the rest stay kept alive
        close = rng.random() < 2 / 3
        return Step("/", new_connection=close, close=close)

    with client_traffic(server, pick, clients=3) as traffic:
        time.sleep(0.3)
        server.config.write_text(front_yaml.replace("accept: front", "accept: auto"))
        server.send_signal(signal.SIGHUP)
        server.wait_log("reload: generation 1 serving")
        wait_for(lambda: not server.processes_titled(FRONT_TITLE), timeout=20)
        time.sleep(0.3)
        server.config.write_text(front_yaml)
        server.send_signal(signal.SIGHUP)
        server.wait_log("reload: generation 2 serving")
        wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 2, timeout=20)
        time.sleep(0.3)
    server.remember_pids()
    assert len(server.processes_titled(FRONT_TITLE)) == 1
    assert traffic.failures == []
    assert traffic.served > 30


@pytest.mark.parametrize("accept", ["front", "main"])
def test_out_of_descriptors_pauses_accepting_instead_of_spinning(make_server, accept):
    """accept() fails with EMFILE (in the front, or in an accepting worker): the process must
    neither spin nor stop serving for good."""
    server = make_server(site_yaml({"main": {}}, extra=f"front: {{accept: {accept}}}"))
    title = FRONT_TITLE if accept == "front" else "(wsgi:main)"
    (acceptor,) = server.processes_titled(title)
    _, hard = resource.prlimit(acceptor.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(acceptor.pid, resource.RLIMIT_NOFILE, (acceptor.num_fds() + 12, hard))
    held = []
    try:
        for _ in range(16):  # more heads arriving than the process has descriptors for
            sock = socket.create_connection((server.host, server.port), timeout=5)
            held.append(sock)
            sock.sendall(b"GET / HTTP/1.1\r\n")  # a head that has begun: it is accepted
        server.wait_log("accept failed", timeout=5)
        time.sleep(2)
        # a spinning process logs (and retries) hundreds of thousands of times a second
        failures = server.log().count("accept failed")
        assert 1 <= failures <= 10, failures
        assert "pausing accepts 1s" in server.log()
    finally:
        for sock in held:
            sock.close()
    assert wait_for(lambda: server.request("GET", "/", timeout=5)[0] == 200, timeout=10)


def test_several_front_processes_share_the_listeners_and_are_replaced(make_server):
    server = make_server(
        site_yaml(
            {"main": {"threads": 2}, "admin": {}},
            routes="- {prefix: /admin, group: admin}",
            extra="front: {processes: 2}",
        )
    )
    fronts = server.processes_titled(FRONT_TITLE)
    assert len(fronts) == 2
    for n in range(20):
        path = "/admin/a" if n % 2 else "/x"
        status, _, body = server.request("GET", path, headers={"Connection": "close"})
        assert status == 200 and json.loads(body)["group"] == ("admin" if n % 2 else "main")
    fronts[0].kill()
    for _ in range(10):  # the other front goes on serving new connections meanwhile
        assert server.request("GET", "/x", headers={"Connection": "close"})[0] == 200
    replaced = wait_for(lambda: len(server.processes_titled(FRONT_TITLE)) == 2, timeout=10)
    assert replaced
    assert fronts[0].pid not in {p.pid for p in server.processes_titled(FRONT_TITLE)}
    server.remember_pids()
