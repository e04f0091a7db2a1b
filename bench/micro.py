#!/usr/bin/env python3
"""Micro-benchmarks of groupserver's per-request and per-connection building blocks.

    python bench/micro.py                    # with the interpreter that has groupserver installed
    /tmp/groupserver-bench-venv/bin/python bench/micro.py --results bench/results

Measures, in this process (timeit, best of several repeats, microseconds per call):
- the route decision, Router.route_for, with 10 and with 1,000 prefix routes (hits on the first
  and the last route, a nested hit, and a miss that falls to default_group);
- the request-head parser, groupserver.http.parser.parse_head, on wrk's minimal head and on a
  browser-sized head (13 headers), and beside it, when httptools is installed, the same
  RequestHead built on httptools (llhttp) with only the checks llhttp leaves to its caller;
- one hand-off: HandoffChannel.send of a real accepted TCP socket plus the bytes read, then
  HandoffChannel.receive on the other end (the kernel work of SCM_RIGHTS, without the process
  switch between the front and a worker);
- the front's whole per-connection path in one process: parse the head, route, send, receive;
- one keep-alive request through a real WorkerServer in this process (parse, route, environ,
  hello-world app, response, bookkeeping, parking), answered on a unix socketpair.

With --results DIR it also derives the hand-off cost per new connection from the newest run.py
results there: server CPU per request with Connection: close minus with keep-alive (hello world,
one process, one thread) is what a new connection costs each server (accept, reading the head,
for groupserver the front's hand-off, and the close), groupserver beside peers that accept
directly in the process that runs the app.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import hello_app  # bench/, next to this script: the app every workload serves

try:
    import httptools  # the parser the design notes named; setup.sh installs it in the bench venv
except ImportError:
    httptools = None

from groupserver.config import parse_config
from groupserver.handoff import HandoffChannel
from groupserver.http.parser import _DIGITS, _HOST, HttpError, RequestHead, _decode_path, parse_head
from groupserver.routing import Router
from groupserver.scoreboard import ROLE_WORKER, Scoreboard
from groupserver.worker import GroupPlan, WorkerServer, WorkerSpec

WRK_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
BROWSER_HEAD = (
    b"GET /publications/article/2024/05/some-long-article-title?utm_source=x&page=2 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://www.example.com/publications/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=0123456789abcdef0123456789abcdef; csrftoken=abcdefghijklmnopqrstuvwxyz\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Priority: u=0, i\r\n"
    b"\r\n"
)


def per_call_us(func: Callable[[], object], min_time: float = 0.2, repeat: int = 7) -> float:
    """Best-of-`repeat` time of one call in microseconds (each repeat runs >= min_time s)."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def make_router(count: int) -> Router:
    """A site with `count` prefix routes over 4 groups (a tenth of them nested in another)."""
    lines = [
        "site: micro",
        "listen: ['127.0.0.1:8000']",
        "groups:",
        *(f"  g{g}: {{app: hello_app:application}}" for g in range(4)),
        "default_group: g0",
        "routes:",
    ]
    for i in range(count):
        if i % 10 == 9:
            prefix = f"/section{i - 1:04d}/special/"  # nested in the previous route's prefix
        else:
            prefix = f"/section{i:04d}/"
        lines.append(f"  - {{prefix: '{prefix}', group: g{i % 4}}}")
    site = parse_config("\n".join(lines) + "\n", source="micro.yaml")
    return Router(site.routes, site.default_group)


def bench_routes() -> list[tuple[str, float]]:
    """route_for timings for 10 and 1,000 routes."""
    rows = []
    for count in (10, 1000):
        router = make_router(count)
        last = count - 2 if (count - 1) % 10 == 9 else count - 1
        cases = {
            "first route": "/section0000/index.html",
            "last route": f"/section{last:04d}/page",
            "nested route": "/section0008/special/item",
            "miss (default group)": "/nowhere/at/all",
        }
        for label, path in cases.items():
            match = router.route_for(path, "www.example.com", "GET")
            assert match is not None
            us = per_call_us(lambda r=router, p=path: r.route_for(p, "www.example.com", "GET"))
            rows.append((f"route_for, {count:,} prefix routes, {label}", us))
    return rows


def bench_parser() -> list[tuple[str, float]]:
    """parse_head timings."""
    rows = []
    heads = (("wrk's 2-line head", WRK_HEAD), ("browser head, 13 headers", BROWSER_HEAD))
    for label, head in heads:
        buf = bytearray(head)
        parsed = parse_head(buf)
        assert parsed is not None and parsed[1] == len(head)
        rows.append(
            (f"parse_head, {label} ({len(head)} bytes)", per_call_us(lambda b=buf: parse_head(b)))
        )
        if httptools is not None:
            theirs = httptools_head(buf)
            assert theirs is not None and theirs[0] == parsed[0] and theirs[1] == parsed[1]
            rows.append(
                (
                    f"httptools (llhttp) to the same RequestHead, {label}",
                    per_call_us(lambda b=buf: httptools_head(b)),
                )
            )
    return rows


class _HeadCollector:
    """httptools callbacks: the URL and the header fields as str, as the WSGI environ needs."""

    __slots__ = ("url", "headers")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))


def httptools_head(data: bytearray) -> tuple[RequestHead, int] | None:
    """What parse_head returns, built on httptools: a yardstick for the parser choice.

    A lower bound of what an httptools-based parse_head would cost: llhttp parses and checks
    the syntax; this adds only the checks it leaves to the caller that these two heads reach
    (one Host, Host characters, Content-Length digits), the path/query split and the
    RequestHead. Transfer-Encoding rules, Expect and absolute-form targets are left out.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    collector = _HeadCollector()
    parser = httptools.HttpRequestParser(collector)  # one per head: a body would follow
    try:
        parser.feed_data(bytes(data[: end + 4]))
    except httptools.HttpParserError as exc:
        raise HttpError(400) from exc
    host = None
    content_length = None
    for name, value in collector.headers:
        lname = name.lower()
        if lname == "host":
            if host is not None or _HOST.fullmatch(value) is None:
                raise HttpError(400)
            host = value
        elif lname == "content-length":
            if _DIGITS.fullmatch(value) is None:
                raise HttpError(400)
            content_length = int(value)
    target = collector.url.decode("latin-1")
    raw_path, _, query = target.partition("?")
    path = _decode_path(raw_path) if "%" in raw_path else raw_path
    head = RequestHead(
        parser.get_method().decode("latin-1"),
        target,
        path,
        query,
        "HTTP/" + parser.get_http_version(),
        collector.headers,
        host,
        content_length,
        False,
        parser.should_keep_alive(),
        False,
    )
    return head, end + 4


def bench_handoff() -> list[tuple[str, float]]:
    """Hand-off of one accepted TCP socket through a channel, and the front's whole path."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    client = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    channel = HandoffChannel("micro")
    router = make_router(10)
    try:

        def handoff() -> None:
            channel.send(server_side, WRK_HEAD)
            taken = channel.receive()
            assert taken is not None
            taken.sock.close()

        def front_path() -> None:
            head, _ = parse_head(WRK_HEAD)  # type: ignore[misc]
            route = router.route_for(head.path, head.host, head.method)
            assert route is not None
            channel.send(server_side, WRK_HEAD)
            taken = channel.receive()
            assert taken is not None
            taken.sock.close()

        return [
            ("hand-off: channel send + receive of a TCP socket (SCM_RIGHTS)", per_call_us(handoff)),
            ("front path in one process: parse + route + send + receive", per_call_us(front_path)),
        ]
    finally:
        channel.close()
        for sock in (client, server_side, listener):
            sock.close()


def bench_worker_request() -> list[tuple[str, float]]:
    """One keep-alive request through a real WorkerServer's request path, in this process.

    Parse, route, environ, the app, the response, the bookkeeping (scoreboard, memory by URL,
    concurrency) and parking the connection: WorkerServer._serve on a connection whose bytes are
    already read, answering on a unix socketpair whose other end this loop drains. Beside it,
    the socketpair's own send + recv of a response-sized message, which is in the first figure.
    """
    site = parse_config(
        "site: micro\nlisten: ['127.0.0.1:8000']\n"
        "groups: {main: {app: 'hello_app:application'}}\ndefault_group: main\n",
        source="micro.yaml",
    )
    scoreboard = Scoreboard(2)
    status_r, status_w = os.pipe()
    channel = HandoffChannel("main")
    spec = WorkerSpec(
        site,
        "main",
        {"main": channel},
        status_w,
        os.getpid(),
        scoreboard,
        scoreboard.allocate(ROLE_WORKER, 0),
        {"main": 0},
        GroupPlan.build(site, "main"),
    )
    server = WorkerServer(spec, hello_app.application)
    ours, theirs = socket.socketpair()
    conn = server._adopt(ours, b"", ("127.0.0.1", 50000), ("127.0.0.1", 8000))
    assert conn is not None
    try:

        def request() -> None:
            conn.buf += WRK_HEAD
            conn.requests = 0  # never reach max_keepalive_requests
            server._serve(conn)
            theirs.recv(65536)

        request()
        reply = b"x" * 140

        def pair() -> None:
            ours.send(reply)
            theirs.recv(65536)

        return [
            (
                "worker request path, hello world, in one process (incl. the pair below)",
                per_call_us(request),
            ),
            ("unix socketpair send + recv of 140 bytes", per_call_us(pair)),
        ]
    finally:
        server.ep.close()
        for sock in (ours, theirs):
            sock.close()
        channel.close()
        os.close(status_r)
        os.close(status_w)


def connection_costs(results_dir: Path) -> list[str]:
    """Per-connection CPU cost per server from the newest run.py raw results."""
    raws = sorted(p for p in results_dir.glob("*-raw.json"))
    if not raws:
        return [f"(no *-raw.json in {results_dir}: run bench/run.py first)"]
    data = json.loads(raws[-1].read_text())
    runs = [r for r in data["runs"] if not r.get("failed")]

    def med(server: str, workload: str, attr: str) -> float | None:
        values = [r[attr] for r in runs if r["server"] == server and r["workload"] == workload]
        return statistics.median(values) if values else None

    lines = [
        f"From {raws[-1].name} (medians of the rounds; hello world, 1 process x 1 thread):",
        "",
        "| server | CPU µs/req keep-alive | CPU µs/req Connection: close | per new connection "
        "µs | close req/s |",
        "|---|--:|--:|--:|--:|",
    ]
    servers = sorted({r["server"] for r in runs}, key=lambda s: (s != "groupserver", s))
    for server in servers:
        keep = med(server, "hello", "cpu_us_per_req")
        close = med(server, "hello-close", "cpu_us_per_req")
        rps = med(server, "hello-close", "rps")
        if keep is None or close is None:
            continue
        lines.append(
            f"| {server} | {keep:.0f} | {close:.0f} | {close - keep:.0f} | {rps or 0:,.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run every micro-benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="run.py results directory, for the per-connection cost table",
    )
    args = parser.parse_args(argv)
    rows = bench_routes() + bench_parser() + bench_handoff() + bench_worker_request()
    print(f"Python {sys.version.split()[0]} ({sys.executable})")
    print()
    print("| micro-benchmark | µs per call |")
    print("|---|--:|")
    for label, us in rows:
        print(f"| {label} | {us:.2f} |")
    if args.results is not None:
        print()
        print("\n".join(connection_costs(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
