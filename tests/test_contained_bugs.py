"""A bug of ours in the request path costs one request a 500, never the process serving it.

tests/faults/sitecustomize.py, put on the server's PYTHONPATH, makes the route decision raise
for /injected-fault: a stand-in for a bug in code of ours that runs for every request (the
app's own exceptions are tested in test_http_limits.py). The front used to die of it, with every
connection it held; a worker closed the connection without an answer and kept counting it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import site_yaml, wait_for
from http_corpus.rawhttp import RawClient

FAULTS = Path(__file__).parent / "faults"


def _get(target: str, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target.encode(), extra)


@pytest.mark.parametrize("accept", ["front", "main"])
def test_a_bug_while_routing_gives_500_and_the_front_and_worker_live_on(
    make_server, monkeypatch, accept
):
    monkeypatch.setenv("PYTHONPATH", str(FAULTS))
    server = make_server(
        site_yaml(
            {"main": {"threads": 2}, "other": {}},
            routes="- {prefix: /other, group: other}",
            extra=f"front: {{accept: {accept}}}",
        )
    )
    before = {p.pid for p in server.children()}

    # the first request of a connection: read by the front (or the accepting worker)
    with RawClient(server) as client:
        client.send(_get("/injected-fault"))
        reply = client.read_reply()
        assert reply is not None and reply.status == 500
        assert client.wait_closed(3.0) is not None
    # a later one on a keep-alive connection: read by the worker
    with RawClient(server) as client:
        client.send(_get("/first") + _get("/injected-fault"))
        first, second = client.read_reply(), client.read_reply()
        assert first is not None and first.status == 200
        assert second is not None and second.status == 500
        assert client.wait_closed(3.0) is not None

    assert "injected fault in Router.route_for" in server.log()
    with RawClient(server) as client:
        client.send(_get("/after", close=True))
        reply = client.read_reply()
        assert reply is not None and reply.status == 200
    assert {p.pid for p in server.children()} == before, "no process died of it"
    assert "died unexpectedly" not in server.log()

    def settled():
        (worker,) = server.stats()["groups"]["main"]["workers"]
        return worker if worker["connections"] == 0 else None

    # every connection the worker took was closed and uncounted (none leaked a place)
    wait_for(settled, timeout=5)


def test_a_bug_in_the_masters_supervision_of_one_group_leaves_the_site_working_and_stoppable(
    make_server, monkeypatch
):
    # The master's plan for group `faulty` raises in every round (sitecustomize). That used to
    # skip the rest of each round: no signal, control command or other group was ever handled,
    # and TERM, INT and QUIT left the master running; only SIGKILL stopped it.
    monkeypatch.setenv("PYTHONPATH", str(FAULTS))
    server = make_server(
        site_yaml(
            {"main": {}, "faulty": {}},
            routes="- {prefix: /faulty, group: faulty}",
            extra="front: {accept: main}",
        ),
        wait_ready=False,  # "ready:" waits for every group
    )

    def answered() -> bool:
        with RawClient(server) as client:
            client.send(_get("/", close=True))
            reply = client.read_reply()
            return reply is not None and reply.status == 200

    wait_for(answered, timeout=10)
    status = server.cli("status", "--once")
    assert status.returncode == 0, status.stderr
    assert "main" in status.stdout
    time.sleep(2.5)  # about ten rounds
    log = server.log()
    assert "master: unexpected error in the supervision of group faulty; carrying on" in log
    assert log.count("RuntimeError: injected fault in GroupPlan.build") == 1, "once, not per round"
    assert server.stop() == 0


def test_a_recurring_error_is_logged_once_even_when_its_text_changes(caplog):
    import logging

    from groupserver.supervision import RepeatedErrors

    errors = RepeatedErrors(logging.getLogger("groupserver.test"), every=60.0)
    for pid in range(5):  # the same bug, naming another pid each round
        try:
            raise KeyError(pid)
        except KeyError:
            errors.log("supervision")
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage() == (
        "master: unexpected error in supervision; carrying on"
    )
