"""Every HTTP limit and timeout, and every kind of application failure, over real sockets.

One server with small limits and one-second timeouts serves the module (groups and routes below
set the per-group and per-route overrides); `max_connections` at the front gets a server of its
own. Head limits are checked on both paths a head takes: as the first request of a connection
(parsed by the front) and on a keep-alive connection (parsed by the worker).
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_for
from http_corpus.rawhttp import RawClient, Reply, exchange, module_server
from prometheus_client.parser import text_string_to_metric_families

from groupserver.config import parse_config
from groupserver.config.limits import GroupLimits, SiteLimits

DOCS = Path(__file__).resolve().parents[1] / "docs" / "http.md"

HEAD_TIMEOUT = KEEPALIVE_TIMEOUT = BODY_TIMEOUT = WRITE_TIMEOUT = 1.0
MAX_REQUEST_LINE = 256
MAX_HEADER_COUNT = 10
MAX_HEAD_SIZE = 2048
MAX_BODY = 1000
MAX_KEEPALIVE = 3

SERVER_YAML = f"""
site: limits
listen: ['127.0.0.1:0']
log_level: debug
limits:
  max_request_line: {MAX_REQUEST_LINE}
  max_header_count: {MAX_HEADER_COUNT}
  max_head_size: {MAX_HEAD_SIZE}
  max_body_size: {MAX_BODY}
  max_keepalive_requests: {MAX_KEEPALIVE}
  head_timeout: {HEAD_TIMEOUT}
  body_timeout: {BODY_TIMEOUT}
  keepalive_timeout: {KEEPALIVE_TIMEOUT}
  write_timeout: {WRITE_TIMEOUT}
groups:
  main: {{app: "corpus_app:application", threads: 4}}
  roomy:
    app: "corpus_app:application"
    threads: 2
    limits: {{max_body_size: 5000, max_keepalive_requests: 5, body_timeout: 3}}
  single: {{app: "corpus_app:application", threads: 1}}
  capped:
    app: "corpus_app:application"
    threads: 1
    limits: {{max_connections_per_worker: 2, keepalive_timeout: 10}}
routes:
  - {{prefix: /roomy/tight/, group: roomy, max_body_size: 100}}
  - {{prefix: /roomy/, group: roomy}}
  - {{prefix: /single/, group: single}}
  - {{prefix: /capped/, group: capped}}
  - {{prefix: /upload/small, group: main, max_body_size: 100}}
  - {{prefix: /upload/large, group: main, max_body_size: 3000}}
default_group: main
"""


@pytest.fixture(scope="module", params=["front", "main"], ids=["front", "accept-in-main"])
def server(request, tmp_path_factory):
    """The limits site twice: with a front process, and with main's workers accepting."""
    yaml = SERVER_YAML + f"front: {{accept: {request.param}}}\n"
    with module_server(tmp_path_factory.mktemp("limits"), yaml) as running:
        yield running


def get(path: str, *headers: bytes) -> bytes:
    """A GET request for path with Host and the given header lines."""
    return b"\r\n".join([b"GET %s HTTP/1.1" % path.encode(), b"Host: t", *headers, b"", b""])


def post_head(path: str, *headers: bytes) -> bytes:
    """The head of a POST request."""
    return b"\r\n".join([b"POST %s HTTP/1.1" % path.encode(), b"Host: t", *headers, b"", b""])


def one_chunk(payload: bytes) -> bytes:
    """payload as one chunk followed by the last chunk."""
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)


def client_for(server, mode: str, timeout: float = 5.0) -> RawClient:
    """A connection on which the next request is parsed by the front ("first") or the worker."""
    client = RawClient(server, timeout)
    if mode == "after_keepalive":
        client.send(get("/warmup"))
        reply = client.read_reply()
        assert reply is not None and reply.status == 200 and not reply.closes, reply
    return client


def send_in(server, mode: str, data: bytes, timeout: float = 5.0) -> tuple[Reply | None, bool]:
    """Send data as the first request or after a keep-alive one; (reply, closed afterwards)."""
    with client_for(server, mode, timeout) as client:
        client.send(data)
        reply = client.read_reply()
        closed = reply is None or reply.closes and client.wait_closed(3.0) is not None
        return reply, closed


def assert_refused(reply: Reply | None, closed: bool, status: int) -> None:
    assert reply is not None, "closed without a reply"
    assert reply.status == status, reply
    assert reply.closes and closed, "the connection must close after an error"


def log_lines(server, level: str, text: str) -> list[str]:
    """Log lines at a level ("ERROR", "DEBUG") that contain text."""
    pattern = re.compile(r"^\[[^]]*\] \[\d+\] \[" + level + r"\] .*" + re.escape(text), re.M)
    return pattern.findall(server.log())


HEAD_MODES = pytest.mark.parametrize("mode", ["first", "after_keepalive"])

# -- head limits (site-wide) ------------------------------------------------------------------


@HEAD_MODES
def test_request_line_over_max_request_line_gets_414(server, mode):
    def line_of(length: int) -> bytes:
        return get("/" + "a" * (length - len("GET / HTTP/1.1")))

    at_limit, _ = send_in(server, mode, line_of(MAX_REQUEST_LINE))
    assert at_limit is not None and at_limit.status == 200
    assert_refused(*send_in(server, mode, line_of(MAX_REQUEST_LINE + 1)), 414)


@HEAD_MODES
def test_header_count_over_max_header_count_gets_431(server, mode):
    def with_fields(count: int) -> bytes:  # Host counts as one
        return get("/count", *(b"X-F%d: v" % n for n in range(count - 1)))

    at_limit, _ = send_in(server, mode, with_fields(MAX_HEADER_COUNT))
    assert at_limit is not None and at_limit.status == 200
    assert_refused(*send_in(server, mode, with_fields(MAX_HEADER_COUNT + 1)), 431)


def _shed_limits(server) -> int:
    doc = server.stats()
    return doc["front"]["shed_limits"] + sum(g["shed"]["limits"] for g in doc["groups"].values())


@HEAD_MODES
def test_only_refusals_for_a_limit_count_as_shed_limits(server, mode):
    """A malformed request (400) is not a limit; a head over max_header_count (431) is."""
    before = _shed_limits(server)
    assert_refused(*send_in(server, mode, b"NOT A REQUEST\r\n\r\n"), 400)
    fields = [b"X-F%d: v" % n for n in range(MAX_HEADER_COUNT)]
    assert_refused(*send_in(server, mode, get("/count", *fields)), 431)
    wait_for(lambda: _shed_limits(server) == before + 1, timeout=3)


@HEAD_MODES
def test_head_over_max_head_size_gets_431(server, mode):
    def head_of(size: int) -> bytes:
        bare = get("/size", b"X-Pad: ")
        return get("/size", b"X-Pad: " + b"p" * (size - len(bare)))

    assert len(head_of(MAX_HEAD_SIZE)) == MAX_HEAD_SIZE
    at_limit, _ = send_in(server, mode, head_of(MAX_HEAD_SIZE))
    assert at_limit is not None and at_limit.status == 200
    assert_refused(*send_in(server, mode, head_of(MAX_HEAD_SIZE + 1)), 431)


@HEAD_MODES
def test_unfinished_head_over_max_head_size_gets_431_at_once(server, mode):
    endless = get("/size", b"X-Pad: " + b"p" * MAX_HEAD_SIZE)[:-4]  # no blank line: not finished
    start = time.monotonic()
    assert_refused(*send_in(server, mode, endless), 431)
    assert time.monotonic() - start < HEAD_TIMEOUT, "431 must not wait for the head timeout"


# -- body size (site, group and route) -------------------------------------------------------

BODY_LIMITS = [
    # path, body size, expected status: which limit applies
    ("/site", MAX_BODY, 200),
    ("/site", MAX_BODY + 1, 413),
    ("/roomy/x", 3000, 200),  # the group loosens the site's limit
    ("/roomy/x", 5001, 413),
    ("/roomy/tight/x", 100, 200),  # a route tightens its group's limit
    ("/roomy/tight/x", 101, 413),
    ("/upload/small", 101, 413),  # a route in the default group tightens the site's limit
    ("/upload/large", 3000, 200),  # ... or loosens it
    ("/upload/large", 3001, 413),
]


@pytest.mark.parametrize(("path", "size", "status"), BODY_LIMITS)
def test_content_length_over_max_body_size_gets_413_before_the_body(server, path, size, status):
    head = post_head(path, b"Content-Length: %d" % size)
    with RawClient(server, 5.0) as client:
        if status == 413:
            client.send(head)  # the refusal must not wait for the body
            assert_refused(client.read_reply(), client.wait_closed(3.0) is not None, 413)
        else:
            client.send(head + b"b" * size)
            reply = client.read_reply()
            assert reply is not None and reply.status == 200, reply
            assert b'"body_length": %d' % size in reply.body


@pytest.mark.parametrize(("path", "size", "status"), BODY_LIMITS)
def test_chunked_body_over_max_body_size_gets_413_as_it_arrives(server, path, size, status):
    head = post_head(path, b"Transfer-Encoding: chunked")
    with RawClient(server, 5.0) as client:
        if status == 413:
            # announce the body in two chunks but send only the size line of the second: the
            # server must count what is announced, not wait (it would time out with another status)
            first = size // 2
            client.send(head + b"%x\r\n%s\r\n%x\r\n" % (first, b"c" * first, size - first))
            assert_refused(client.read_reply(), client.wait_closed(3.0) is not None, 413)
        else:
            client.send(head + b"%x\r\n%s\r\n" % (1, b"c") + one_chunk(b"c" * (size - 1)))
            reply = client.read_reply()
            assert reply is not None and reply.status == 200, reply
            assert b'"body_length": %d' % size in reply.body


# -- requests per keep-alive connection -------------------------------------------------------


@pytest.mark.parametrize(("prefix", "cap"), [("/site/", MAX_KEEPALIVE), ("/roomy/", 5)])
def test_max_keepalive_requests_closes_after_the_nth_response(server, prefix, cap):
    with RawClient(server, 5.0) as client:
        for n in range(1, cap + 1):
            client.send(get(f"{prefix}{n}"))
            reply = client.read_reply()
            assert reply is not None and reply.status == 200, (n, reply)
            assert reply.closes == (n == cap), (n, reply.headers)
        assert client.wait_closed(3.0) is not None


def test_max_keepalive_requests_counts_requests_across_groups(server):
    with RawClient(server, 5.0) as client:
        for n in range(1, MAX_KEEPALIVE + 1):
            client.send(get(f"/single/{n}" if n % 2 else f"/site/{n}"))
            reply = client.read_reply()
            assert reply is not None and reply.status == 200, (n, reply)
            assert reply.closes == (n == MAX_KEEPALIVE), (n, reply.headers)


# -- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "trickle"),
    [
        ("first", False),
        ("after_keepalive", False),
        ("first", True),
        pytest.param(
            "after_keepalive",
            True,
        ),
    ],
)
def test_head_timeout_slowloris_gets_408_then_close(server, mode, trickle):
    with client_for(server, mode) as client:
        start = time.monotonic()
        client.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        # trickle: the deadline is for the whole head, however often a byte comes
        readable = []
        while not readable and time.monotonic() - start < HEAD_TIMEOUT + 2:
            if trickle:
                client.send(b"X")
            readable, _, _ = select.select([client.sock], [], [], 0.2)
        assert readable, "no answer while the head kept trickling in"
        reply = client.read_reply()
        took = time.monotonic() - start
        assert_refused(reply, client.wait_closed(3.0) is not None, 408)
    assert HEAD_TIMEOUT * 0.9 <= took <= HEAD_TIMEOUT + 2, took


def test_a_next_head_that_came_with_a_long_request_gets_its_own_head_timeout(server):
    """The start of a pipelined head came with a request that took longer than head_timeout:
    its clock started at the earlier request's arrival, so it got a 408 at once when the rest
    came 0.1 s later."""
    with RawClient(server) as client:
        nxt = get("/after")
        client.send(get(f"/sleep?s={HEAD_TIMEOUT * 1.5}") + nxt[:20])
        assert client.read_reply().status == 200
        time.sleep(0.1)
        client.send(nxt[20:])
        assert client.read_reply().status == 200


def test_silent_connection_is_closed_after_head_timeout_without_a_reply(server):
    with RawClient(server) as client:
        took = client.wait_closed(HEAD_TIMEOUT + 2.5)
        assert took is not None, "a connection that never sent a byte was kept open"
        assert took >= HEAD_TIMEOUT * 0.9
        assert client.buf == b""


def test_head_still_arriving_holds_no_request_thread(server):
    # the group has one thread; a keep-alive connection with half a head must not occupy it
    with RawClient(server) as slow:
        slow.send(get("/single/first"))
        assert slow.read_reply().status == 200
        slow.send(b"GET /single/second HTTP/1.1\r\nHost: t\r\n")
        start = time.monotonic()
        reply = exchange(server, get("/single/meanwhile"), timeout=5.0)
        assert reply is not None and reply.status == 200
        assert time.monotonic() - start < HEAD_TIMEOUT * 0.8, "served only after the 408"


def test_idle_keepalive_connection_closed_after_keepalive_timeout(server):
    with RawClient(server) as client:
        client.send(get("/idle"))
        assert client.read_reply().status == 200
        took = client.wait_closed(KEEPALIVE_TIMEOUT + 2.5)
        assert took is not None, "idle keep-alive connection kept open"
        assert KEEPALIVE_TIMEOUT * 0.9 <= took
        assert client.buf == b"", "an idle connection is closed without a response"


STALLED_BODIES = {
    "content_length": (b"Content-Length: 100", b"0123456789"),
    "chunked": (b"Transfer-Encoding: chunked", b"64\r\n0123456789"),
}


@pytest.mark.parametrize("framing", sorted(STALLED_BODIES))
def test_body_timeout_fails_the_request_and_closes(server, framing):
    header, part = STALLED_BODIES[framing]
    target = f"/stalled-{framing}"
    with RawClient(server) as client:
        start = time.monotonic()
        client.send(post_head(target, header) + part)
        reply = client.read_reply()
        took = time.monotonic() - start
        assert client.wait_closed(3.0) is not None
    assert reply is None or reply.status >= 400, reply
    assert BODY_TIMEOUT * 0.9 <= took <= BODY_TIMEOUT + 2
    server.wait_log(f"corpus_app: body read failed for {target}: ", timeout=3)


def test_group_body_timeout_overrides_the_site(server):
    # group roomy waits 3 s for the body where the site gives up after 1 s
    with RawClient(server) as client:
        client.send(post_head("/roomy/patient", b"Content-Length: 10") + b"01234")
        time.sleep(BODY_TIMEOUT * 1.5)  # the stall under test
        client.send(b"56789")
        reply = client.read_reply()
        assert reply is not None and reply.status == 200, reply
        assert b'"body": "0123456789"' in reply.body


def test_body_timeout_is_a_client_timeout_not_an_application_error(server):
    header, part = STALLED_BODIES["content_length"]
    reply, closed = send_in(server, "first", post_head("/stalled-408", header) + part)
    assert_refused(reply, closed, 408)
    assert log_lines(server, "ERROR", "/stalled-408") == []


def _start_unread_download(server, target: str) -> RawClient:
    """Ask for a 50 MiB response and read none of it (until the test says so)."""
    client = RawClient(server, 10.0)
    client.send(get(target))
    # With main's workers accepting, a later request can overtake this one on its way to the
    # group: give this one the group's thread first.
    time.sleep(0.5)
    return client


def test_write_timeout_frees_the_thread_of_a_client_that_stopped_reading(server):
    # the group has one thread; a 50 MiB response to a client that never reads occupies it
    with _start_unread_download(server, "/single/big?stopped-reading") as stuck:
        start = time.monotonic()
        reply = exchange(server, get("/single/after-stuck"), timeout=WRITE_TIMEOUT * 3 + 4)
        took = time.monotonic() - start
        assert reply is not None and reply.status == 200
        # ~3x write_timeout on Linux: each partial write into the peer's buffers restarts it
        assert took <= WRITE_TIMEOUT * 3 + 2, took
        partial = stuck.read_reply()  # what the server got out before it dropped the client
        assert partial is not None and partial.status == 200
        assert not partial.complete and len(partial.body) < 50 << 20


def test_write_timeout_is_not_logged_as_an_application_error(server):
    with _start_unread_download(server, "/single/big?not-an-app-error"):
        reply = exchange(server, get("/single/after-not-an-app-error"), timeout=10)
        assert reply is not None and reply.status == 200  # so the big response was given up
    assert log_lines(server, "ERROR", "not-an-app-error") == []
    # it said "client went away" with a raw EAGAIN, at debug level: a slow-reader attack hid
    line = "dropped a client that stopped reading or sending for write_timeout or body_timeout"
    wait_for(lambda: log_lines(server, "INFO", f"{line}, during GET /single/big?not-an"), 5)


# -- connections ------------------------------------------------------------------------------


def _hold_kept_alive(server, clients: list[RawClient], count: int) -> None:
    """Open count connections to group capped, each served once and now idle keep-alive (parked
    in the worker); they are added to clients as they open, for the caller to close."""
    for n in range(count):
        client = RawClient(server, 5.0)
        clients.append(client)
        client.send(get(f"/capped/held{n}"))
        assert client.read_reply().status == 200


def test_max_connections_per_worker_an_idle_connection_makes_room_for_a_new_one(server):
    # group capped: 1 worker, 1 thread, max_connections_per_worker 2, keepalive_timeout 10
    before = server.stats()["groups"]["capped"]["idle_connections_closed"]
    held: list[RawClient] = []
    try:
        _hold_kept_alive(server, held, 2)
        third = RawClient(server, 5.0)
        held.append(third)
        start = time.monotonic()
        third.send(get("/capped/third"))
        reply = third.read_reply()
        assert reply is not None and reply.status == 200
        assert time.monotonic() - start < 2.0, "served at once, not after keepalive_timeout"
        assert held[0].wait_closed(3.0) is not None, "the one idle longest made room"
        held[1].send(get("/capped/held1-again"))  # the other is still there
        again = held[1].read_reply()
        assert again is not None and again.status == 200
    finally:
        for client in held:
            client.close()
    closed = server.stats()["groups"]["capped"]["idle_connections_closed"]
    assert closed >= before + 1


def test_max_connections_per_worker_silent_connections_make_room_too(server):
    """Connections that never send a head hold a worker's places (worker-accept mode), or come
    back as idle keep-alive: a crowd of them must not lock a new client out until its timeout."""
    silent: list[RawClient] = []
    try:
        _hold_kept_alive(server, silent, 2)
        for _ in range(6):
            silent.append(RawClient(server, 5.0))  # connected, never send
        time.sleep(0.3)
        start = time.monotonic()
        reply = exchange(server, get("/capped/newcomer"), timeout=5)
        assert reply is not None and reply.status == 200
        assert time.monotonic() - start < 2.0
    finally:
        for client in silent:
            client.close()


FRONT_CAP = 2
FRONT_CAP_YAML = f"""
site: frontcap
listen: ['127.0.0.1:0']
groups: {{main: {{app: 'corpus_app:application', threads: 2}}}}
limits: {{max_connections: {FRONT_CAP}, head_timeout: 5}}
front: {{accept: front}}
stats: {{listen: '127.0.0.1:0'}}
"""


@pytest.fixture(scope="module")
def front_capped(tmp_path_factory):
    with module_server(tmp_path_factory.mktemp("frontcap"), FRONT_CAP_YAML) as running:
        yield running


def _front_peers(server) -> set[int]:
    """Client ports of the connections the front process holds."""
    (front,) = server.processes_titled("groupserver: front [frontcap]")
    conns = front.net_connections(kind="tcp")
    return {c.raddr.port for c in conns if c.raddr and c.status == psutil.CONN_ESTABLISHED}


def _fill_front(server) -> list[RawClient]:
    """Open max_connections connections whose heads are still arriving (held by the front)."""
    slow = [RawClient(server, 5.0) for _ in range(FRONT_CAP)]
    for client in slow:
        client.send(b"GET /slow HTTP/1.1\r\n")
    ports = {c.sock.getsockname()[1] for c in slow}
    wait_for(lambda: ports <= _front_peers(server), timeout=5)
    return slow


def test_max_connections_extra_connection_is_served_not_refused(front_capped):
    slow = _fill_front(front_capped)
    try:
        with RawClient(front_capped, 5.0) as extra:  # connect() succeeds, never refused
            extra.send(get("/extra"))
            reply = extra.read_reply()
            assert reply is not None and reply.status == 200
    finally:
        for client in slow:
            client.close()


def test_max_connections_a_new_connection_closes_the_one_waiting_longest_for_its_head(
    front_capped,
):
    """A full front makes room as nginx does: a crowd of slow or silent clients cannot keep new
    ones waiting until head_timeout."""
    before = front_capped.stats()["front"]["idle_connections_closed"]
    slow = _fill_front(front_capped)
    try:
        start = time.monotonic()
        reply = exchange(front_capped, get("/extra"), timeout=5)
        assert reply is not None and reply.status == 200
        assert time.monotonic() - start < 2.0, "served at once, not after head_timeout"
        assert slow[0].wait_closed(3.0) is not None, "the oldest head-less connection made room"
        slow[1].send(b"Host: t\r\n\r\n")  # the other one finishes its head and is served
        finished = slow[1].read_reply()
        assert finished is not None and finished.status == 200
    finally:
        for client in slow:
            client.close()
    front = front_capped.stats()["front"]
    assert front["idle_connections_closed"] >= before + 1
    metrics = front_capped.stats_get("/metrics")[2].decode()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    for key in ("idle_connections_closed", "shed_limits"):
        (sample,) = families[f"groupserver_front_{key}"].samples
        assert sample.value == front[key] and sample.labels == {}


BIG_HEADS_YAML = """
site: bigheads
listen: ['127.0.0.1:0']
groups:
  main: {app: 'corpus_app:application'}
  other: {app: 'corpus_app:application'}
routes: [{prefix: /other, group: other}]
default_group: main
limits: {max_head_size: 96K}
"""


@pytest.fixture(scope="module", params=["front", "main"], ids=["front", "accept-in-main"])
def big_heads(request, tmp_path_factory):
    yaml_text = BIG_HEADS_YAML + f"front: {{accept: {request.param}}}\n"
    with module_server(tmp_path_factory.mktemp("bigheads"), yaml_text) as running:
        yield running


@pytest.mark.parametrize("target", ["/other/x", "/x"])
def test_a_head_near_max_head_size_sent_with_its_body_is_served_by_any_group(big_heads, target):
    """Head and body in one send: the reader of the head (front or worker) took more than a
    hand-off can carry. The front failed the hand-off (the client got a reset), a worker
    answered 503."""
    body = b"b" * 200_000
    head = post_head(target, b"X-Pad: " + b"a" * 95_000, b"Content-Length: %d" % len(body))
    with RawClient(big_heads) as client:
        client.send(head + body)
        reply = client.read_reply()
    assert reply is not None and reply.status == 200, reply
    seen = json.loads(reply.body)
    assert (seen["group"], seen["body_length"]) == (
        "other" if target.startswith("/other") else "main",
        len(body),
    )


# -- application failures ---------------------------------------------------------------------


def test_app_exception_before_the_response_gives_a_generic_500(server):
    reply, closed = send_in(server, "first", get("/raise-before"))
    assert_refused(reply, closed, 500)
    assert reply.body == b"Internal Server Error\n"
    server.wait_log("RuntimeError: corpus app: failure before the response", timeout=3)
    traceback = r"\[ERROR\] error in the application for GET /raise-before\nTraceback "
    assert re.search(traceback, server.log())


def test_app_exception_after_the_head_closes_the_connection(server):
    with RawClient(server) as client:
        client.send(get("/raise-after"))
        reply = client.read_reply()
        assert reply is not None and reply.status == 200  # the head was already out
        assert not reply.complete, "the chunked body must end without its last chunk"
        assert reply.body == b"partial body;"
        assert client.eof, "the connection is closed"
    server.wait_log("RuntimeError: corpus app: failure after the head was sent", timeout=3)


@pytest.mark.parametrize("endpoint", ["bad-header", "bad-status", "bad-name"])
def test_response_splitting_gives_500_and_a_log_line(server, endpoint):
    with RawClient(server) as client:
        client.send(get(f"/{endpoint}"))
        reply = client.read_reply()
        assert_refused(reply, client.wait_closed(3.0) is not None, 500)
        assert b"injected" not in reply.raw_head + reply.body
        assert b"should never be sent" not in reply.body
    wait_for(lambda: log_lines(server, "ERROR", f"GET /{endpoint}"), timeout=3)
    assert re.search(r"ResponseError: invalid (status line|response header)", server.log())


@pytest.mark.parametrize("endpoint", ["str-body", "str-chunk"])
def test_a_body_chunk_that_is_not_bytes_gives_500_and_a_log_line(server, endpoint):
    with RawClient(server) as client:
        client.send(get(f"/{endpoint}"))
        reply = client.read_reply()
        assert_refused(reply, client.wait_closed(3.0) is not None, 500)
        assert b"not bytes" not in reply.body
    wait_for(lambda: log_lines(server, "ERROR", f"GET /{endpoint}"), timeout=3)
    assert "ResponseError: a body chunk from the application is str, not bytes" in server.log()


@pytest.mark.parametrize(
    ("endpoint", "status", "length"), [("no-content", 204, None), ("not-modified", 304, "5")]
)
def test_a_204_or_304_ends_at_its_head_and_the_next_response_follows_it(
    server, endpoint, status, length
):
    """The app's body is dropped: on a kept-alive connection it would be read as a response."""
    with RawClient(server) as client:
        client.send(get(f"/{endpoint}") + get("/single/after-no-body"))
        while client.buf.count(b"\r\n\r\n") < 2 and client._more():
            pass
        first_head, _, client.buf = client.buf.partition(b"\r\n\r\n")
        assert first_head.startswith(b"HTTP/1.1 %d " % status)
        assert client.buf.startswith(b"HTTP/1.1 200 OK\r\n"), client.buf[:40]
        lengths = re.findall(rb"(?im)^content-length: *(\S+)", first_head)
        assert lengths == ([length.encode()] if length else [])  # RFC 9110 8.6
        after = client.read_reply()
        assert after is not None and after.status == 200 and after.complete
        assert b"after-no-body" in after.body
        assert client.wait_closed(0.3) is None, "the connection stays open"


def test_a_repeated_content_length_and_the_apps_own_date_are_sent_once(server):
    with RawClient(server) as client:
        client.send(get("/same-length") + get("/own-date"))
        same, dated = client.read_reply(), client.read_reply()
    assert same is not None and (same.status, same.body) == (200, b"hello")
    assert re.findall(rb"(?im)^content-length:", same.raw_head) == [b"Content-Length:"]
    assert dated is not None and (dated.status, dated.body) == (200, b"dated")
    dates = re.findall(rb"(?im)^date: ([^\r]*)", dated.raw_head)
    assert dates == [b"Mon, 01 Jan 2024 00:00:00 GMT"]


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        # two framings of one response: a client or proxy could take either (RFC 9112 6.3)
        ("two-lengths", "conflicting Content-Length headers: 2 and 5"),
        # WSGI has no interim responses: a client would wait for the final one for ever
        ("interim", "a 1xx status is not a final response: '100 Continue'"),
    ],
)
def test_a_response_no_client_could_read_right_gives_500(server, endpoint, error):
    reply, closed = send_in(server, "first", get(f"/{endpoint}"))
    assert_refused(reply, closed, 500)
    wait_for(lambda: log_lines(server, "ERROR", f"GET /{endpoint}"), timeout=3)
    assert f"ResponseError: {error}" in server.log()


@pytest.mark.parametrize(
    ("endpoint", "body", "warning"),
    [
        (
            "short-body",
            b"only 10 b.",
            "GET /short-body: the application sent 10 of the 100 bytes its Content-Length "
            "announced; the connection was closed, so the client sees the response cut short",
        ),
        (
            "long-body",
            b"hello",
            "GET /long-body: the application sent more than the 5 bytes its Content-Length "
            "announced; the rest was dropped and the connection closed",
        ),
    ],
)
def test_a_body_that_does_not_match_its_content_length_closes_and_says_so(
    server, endpoint, body, warning
):
    """Sent as promised or not at all: the connection closes (a short body would leave the
    client waiting, a long one would be read as the next response), and the log tells the
    developer why their client saw that."""
    with RawClient(server) as client:
        client.send(get(f"/{endpoint}"))
        reply = client.read_reply()
        assert reply is not None and reply.status == 200
        assert client.wait_closed(3.0) is not None, "the connection must close"
        assert client.buf == b"" and reply.body.startswith(body) and len(reply.body) == len(body)
    server.wait_log(warning, timeout=3)
    assert server.log().count(f"GET /{endpoint}: the application sent") == 1
    exchange_ok = exchange(server, get("/single/after-mismatch"), timeout=5)
    assert exchange_ok is not None and exchange_ok.status == 200


def test_system_exit_and_keyboard_interrupt_from_the_app_are_500s_and_the_thread_lives_on(server):
    """Raised in a request thread, they would end it: the group's only thread here."""
    for endpoint in ("exit", "interrupt", "exit"):
        target = f"/single/{endpoint}"
        reply, closed = send_in(server, "first", get(target))
        assert_refused(reply, closed, 500)
        wait_for(lambda t=target: log_lines(server, "ERROR", f"GET {t}"), timeout=3)
    reply = exchange(server, get("/single/after-exit"), timeout=5)
    assert reply is not None and reply.status == 200
    assert re.search(r"\nSystemExit: 3\n", server.log())
    assert re.search(r"\nKeyboardInterrupt\n", server.log())


def test_client_gone_mid_response_is_logged_at_debug_not_as_an_error(server):
    target = "/big?gone-mid-response"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(get(target))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        # closing with unread data resets the connection while the worker is still writing
    wait_for(lambda: log_lines(server, "DEBUG", f"client went away during GET {target}"), 5)
    assert log_lines(server, "ERROR", target) == []


def test_client_gone_mid_request_frees_the_thread_and_is_logged_at_debug(server):
    target = "/single/upload?gone-mid-request"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(post_head(target, b"Content-Length: 100") + b"0123456789")
    wait_for(lambda: log_lines(server, "DEBUG", f"client went away during POST {target}"), 5)
    reply = exchange(server, get("/single/after-gone"), timeout=5)
    assert reply is not None and reply.status == 200  # the group's only thread is free again
    assert log_lines(server, "ERROR", target) == []


# -- the documentation --------------------------------------------------------------------------


def _doc_yaml() -> str:
    match = re.search(r"^```yaml\n(.*?)^```", DOCS.read_text(), re.S | re.M)
    assert match, "docs/http.md has no yaml block"
    return match.group(1)


def test_the_yaml_in_docs_http_is_a_valid_config_with_site_group_and_route_limits():
    config = parse_config(_doc_yaml(), source="docs/http.md")
    assert config.warnings == []
    assert config.limits.max_body_size == 10 << 20
    assert config.groups["uploads"].limits.max_body_size == 1 << 30
    assert config.groups["api"].limits.max_connections_per_worker == 200
    route_limits = {r.prefix: r.max_body_size for r in config.routes}
    assert route_limits["/upload/avatar"] == 2 << 20
    assert route_limits["/contact"] == 64 << 10


def test_docs_http_lists_every_limit_with_its_default_and_where_it_can_be_set():
    documented = {}
    for line in DOCS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"`\w+`", cells[0]):
            default = re.match(r"`([\d.]+)`", cells[1])
            assert default, line
            documented[cells[0].strip("`")] = (float(default.group(1)), cells[3] == "yes")
    assert set(documented) == set(SiteLimits.model_fields)
    for name, field in SiteLimits.model_fields.items():
        assert documented[name] == (field.default, name in GroupLimits.model_fields), name
