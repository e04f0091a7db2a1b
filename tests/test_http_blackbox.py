"""Black-box HTTP/1.1 parsing: the raw requests under tests/http_corpus/ against one real server.

Valid requests must reach corpus_app (tests/apps/corpus_app.py) with the environ their sidecar
JSON lists; invalid ones must get their status and a close. The front parses the first head of a
connection and the worker every later one (unless the group accepts connections itself:
front.accept; both set-ups are served), so each invalid request is sent three ways:

- ``first``: as the first request of a new connection (the front's parser, or the accepting
  worker's);
- ``after_keepalive``: after a valid request was answered on the same connection (the worker,
  reading a parked keep-alive connection);
- ``pipelined``: right behind a valid request in the same write (the worker, bytes already
  buffered).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import site_yaml
from http_corpus.make_corpus import corpus
from http_corpus.rawhttp import RawClient, module_server

CORPUS = Path(__file__).parent / "http_corpus"

SERVER_YAML = site_yaml(
    {"main": {"app": "corpus_app:application", "processes": 1, "threads": 4}},
    extra="log_level: debug",
)

WARMUP = b"GET /warmup HTTP/1.1\r\nHost: corpus.test\r\n\r\n"
PROBE = b"GET /probe HTTP/1.1\r\nHost: corpus.test\r\n\r\n"

# Corpus cases that fail because of a server bug (reported, not fixed here).
KNOWN_BUGS: dict[str, str] = {}  # corpus file stem -> reason, for strict xfails


def _cases(kind: str) -> list:
    params = []
    for path in sorted((CORPUS / kind).glob("*.http")):
        marks = []
        if path.stem in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[path.stem], strict=True))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _load(path: Path) -> tuple[bytes, dict]:
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


@pytest.fixture(scope="module", params=["front", "main"], ids=["front", "accept-in-main"])
def server(request, tmp_path_factory):
    """The corpus site twice: with a front process, and with main's workers accepting."""
    yaml = SERVER_YAML + f"front: {{accept: {request.param}}}\n"
    with module_server(tmp_path_factory.mktemp("blackbox"), yaml) as running:
        yield running


def _warm_up(client: RawClient, then: bytes = b"") -> None:
    """Serve one valid request on client's connection (with `then` pipelined behind it)."""
    client.send(WARMUP + then)
    reply = client.read_reply()
    assert reply is not None and reply.status == 200, reply
    assert not reply.closes
    assert json.loads(reply.body)["path_info"] == "/warmup"


def test_corpus_files_match_their_generator():
    on_disk = {
        str(p.relative_to(CORPUS)): p.read_bytes()
        for kind in ("valid", "invalid")
        for p in (CORPUS / kind).iterdir()
    }
    assert on_disk == corpus(), "run: python tests/http_corpus/make_corpus.py"
    for kind in ("valid", "invalid"):
        stems = {p.stem for p in (CORPUS / kind).iterdir()}
        assert all((CORPUS / kind / f"{stem}.json").exists() for stem in stems)


@pytest.mark.parametrize("path", _cases("valid"))
def test_valid_request_reaches_the_app_as_expected(server, path):
    data, expect = _load(path)
    with RawClient(server) as client:
        client.send(data)
        reply = None
        for want in expect["requests"]:
            reply = client.read_reply()
            assert reply is not None, "closed without a reply"
            assert reply.status == 200, (reply, reply.body)
            seen = json.loads(reply.body)
            assert {key: seen[key] for key in want} == want
        assert reply is not None
        if expect["keep_alive"]:
            assert not reply.closes, reply.headers
            client.send(PROBE)
            probe = client.read_reply()
            assert probe is not None and probe.status == 200
        else:
            assert reply.closes, reply.headers
            assert client.wait_closed(3.0) is not None, "server kept the connection open"


@pytest.mark.parametrize("mode", ["first", "after_keepalive", "pipelined"])
@pytest.mark.parametrize("path", _cases("invalid"))
def test_invalid_request_gets_its_status_and_a_close(server, path, mode):
    data, expect = _load(path)
    with RawClient(server) as client:
        if mode == "after_keepalive":
            _warm_up(client)
            client.send(data)
        elif mode == "pipelined":
            _warm_up(client, then=data)
        else:
            client.send(data)
        reply = client.read_reply()
        assert reply is not None, f"closed without a reply ({expect['why']})"
        assert (reply.version, reply.status) == ("HTTP/1.1", expect["status"]), expect["why"]
        assert reply.closes, reply.headers
        assert reply.body == (reply.reason + "\n").encode(), "error bodies are generic"
        assert client.wait_closed(3.0) is not None, "server kept the connection open"


BODY_10_OF_100 = b"Content-Length: 100\r\n\r\n0123456789"
CHUNKED_CUT = b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"


@pytest.mark.parametrize("mode", ["first", "after_keepalive"])
@pytest.mark.parametrize("framing", ["content_length", "chunked"])
def test_body_cut_short_by_client_close_never_reaches_the_app_complete(server, framing, mode):
    target = f"/truncated-{framing}-{mode}"
    head = b"POST %s HTTP/1.1\r\nHost: corpus.test\r\n" % target.encode()
    with RawClient(server) as client:
        if mode == "after_keepalive":
            _warm_up(client)
        client.send(head + (BODY_10_OF_100 if framing == "content_length" else CHUNKED_CUT))
        client.shutdown_write()
        reply = client.read_reply()
        # corpus_app answers 200 with body_length only when wsgi.input.read() returned
        if reply is not None:
            assert reply.status >= 400, (reply, reply.body)
        assert client.wait_closed(3.0) is not None
    # the app's read raised instead of returning the 10 bytes as the whole body
    server.wait_log(f"corpus_app: body read failed for {target}: ", timeout=5)


def _aimed_at(data: bytes, target: bytes) -> bytes:
    """The same request with its request-target replaced."""
    line, sep, rest = data.partition(b"\r\n")
    method, _, version = line.split(b" ")
    return b" ".join((method, target, version)) + sep + rest


def _worker_connections(server) -> int:
    return sum(w["connections"] for w in server.stats()["groups"]["main"]["workers"])


@pytest.mark.parametrize(
    "path", [p for p in _cases("invalid") if p.values[0].stem.startswith("chunk_")]
)
def test_a_malformed_body_the_app_left_unread_closes_the_connection_after_the_reply(server, path):
    """The app answered without reading wsgi.input; the framing error shows up when the server
    discards the rest. The reply is out, so the server must close the connection (not keep it
    open, lose track of it and log an 'unexpected error')."""
    data, _ = _load(path)
    with RawClient(server) as client:
        client.send(_aimed_at(data, b"/ignore-body"))
        reply = client.read_reply()
        assert reply is not None and (reply.status, reply.body) == (200, b"ok\n")
        assert client.wait_closed(3.0) is not None, "server kept the connection open"
    deadline = time.monotonic() + 5
    while _worker_connections(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _worker_connections(server) == 0, "the worker still counts the connection"
    assert "unexpected error" not in server.log()
