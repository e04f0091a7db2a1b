"""Fixtures that run a real groupserver (master, front, workers) from a YAML string."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from groupserver.control import send_command

APPS = Path(__file__).parent / "apps"
ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02):
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


class RunningServer:
    """A groupserver started as `python -m groupserver serve site.yaml` in a temp dir."""

    def __init__(self, directory: Path, yaml_text: str) -> None:
        self.dir = directory
        self.config = directory / "site.yaml"
        self.config.write_text(textwrap.dedent(yaml_text))
        self.log_path = directory / "server.log"
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.known_pids: set[int] = set()

    def start(self, wait_ready: bool = True) -> RunningServer:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(ROOT), env.get("PYTHONPATH", "")])
        # As under systemd or docker: stdout to a file is block-buffered, as it is there.
        env.pop("PYTHONUNBUFFERED", None)
        self.log_file = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "groupserver", "serve", str(self.config)],
            cwd=self.dir,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        match = wait_for(lambda: self._listening() or self._died(), timeout=15)
        if isinstance(match, str):
            raise AssertionError(f"server failed to start:\n{match}")
        if wait_ready:
            self.wait_log("ready:")
        self.remember_pids()
        return self

    def _died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return self.log()
        return None

    def _listening(self) -> bool:
        if re.search(r"listening on unix:", self.log()):
            return True
        m = re.search(r"listening on (\S+?):(\d+)(,|\s|$)", self.log())
        if m:
            self.host = m.group(1).strip("[]")
            self.port = int(m.group(2))
            return True
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str | re.Pattern, timeout: float = 15.0, count: int = 1) -> str:
        def found():
            log = self.log()
            if isinstance(text, str):
                return log.count(text) >= count and log
            return len(text.findall(log)) >= count and log

        return wait_for(found, timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def remember_pids(self) -> None:
        self.known_pids.update(p.pid for p in self.children())

    def processes_titled(self, title: str) -> list[psutil.Process]:
        found = []
        for proc in self.children():
            try:
                if " ".join(proc.cmdline()).strip() == title:
                    found.append(proc)
            except psutil.NoSuchProcess:
                pass
        return found

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body=None,
        headers=None,
        timeout: float = 10.0,
        encode_chunked: bool = False,
    ):
        conn = self.connection(timeout)
        try:
            conn.request(
                method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked
            )
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def get_json(self, path: str, **kw) -> dict:
        status, _, data = self.request("GET", path, **kw)
        assert status == 200, (status, data)
        return json.loads(data)

    def stats(self, timeout: float = 10.0) -> dict:
        """The stats document, from the master's control socket (.SITE.ctl next to site.yaml)."""
        site = re.search(r"^site:\s*(\S+)", self.config.read_text(), re.M)
        assert site, "site.yaml names no site"
        path = self.dir / f".{site.group(1)}.ctl"
        return send_command(str(path), {"cmd": "stats"}, timeout=timeout)["stats"]

    def stats_get(self, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
        """GET path from the stats listener (`stats: {listen: ...}`): status, Content-Type, body."""
        m = re.search(r"stats on ([\d.]+):(\d+)", self.wait_log("stats on"))
        assert m, "the site has no stats listener"
        conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess:
        """`python -m groupserver COMMAND site.yaml ARGS...`, its output captured as text."""
        return subprocess.run(
            [sys.executable, "-m", "groupserver", command, str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, read until the server closes (or timeout); return what came back."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            return read_until_closed(sock)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        self.remember_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError("server did not stop within the timeout") from None
        self.log_file.close()
        return self.proc.returncode

    def leftovers(self) -> list[int]:
        alive = []
        for pid in self.known_pids:
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    def kill_everything(self) -> None:
        for pid in list(self.known_pids) + ([self.pid] if self.proc else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait(5)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers from YAML; on teardown stop them and assert that no process is left."""
    servers: list[RunningServer] = []

    def factory(yaml_text: str, start: bool = True, wait_ready: bool = True) -> RunningServer:
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        server = RunningServer(directory, yaml_text)
        servers.append(server)
        if start:
            server.start(wait_ready=wait_ready)
        return server

    yield factory
    problems = [problem for server in servers for problem in stop_and_check(server)]
    if problems:
        pytest.fail("; ".join(problems))


@contextmanager
def serving(directory: Path, yaml_text: str) -> Iterator[RunningServer]:
    """A started server for a longer scope (a module, a fixture); fails if a process is left."""
    server = RunningServer(directory, yaml_text)
    try:
        server.start()
        yield server
    finally:
        problems = stop_and_check(server)
        if problems:
            pytest.fail("; ".join(problems))


def stop_and_check(server: RunningServer) -> list[str]:
    """Stop a server; return what went wrong (did not stop, processes left), killing leftovers."""
    problems = []
    try:
        server.stop()
    except AssertionError as exc:
        problems.append(str(exc))
    left = wait_for_gone(server)
    if left:
        server.kill_everything()
        problems.append(f"processes left after stop: {left}")
    return problems


def split_responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a byte stream of Content-Length framed responses into (head, body) pairs."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        out.append((head, rest[:length]))
        data = rest[length:]
    return out


class Step(NamedTuple):
    """One request of a traffic client: a body makes it a POST."""

    path: str
    body: bytes | None = None
    new_connection: bool = False  # close the kept connection first
    close: bool = False  # send Connection: close


@dataclass
class Traffic:
    """What the clients of client_traffic() saw: failures as "PATH: what", responses served."""

    failures: list[str] = field(default_factory=list)
    served: int = 0


@contextmanager
def client_traffic(
    server: RunningServer, pick: Callable[[random.Random], Step], clients: int = 6
) -> Iterator[Traffic]:
    """Client threads send requests (pick(rng) says which) until the block ends.

    Any status but 200 and any exception is a failure; a failed connection is reopened.
    """
    traffic = Traffic()
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = None
        while not stop.is_set():
            step = pick(rng)
            try:
                if conn is None or step.new_connection:
                    if conn is not None:
                        conn.close()
                    conn = server.connection(timeout=30)
                headers = {"Connection": "close"} if step.close else {}
                method = "POST" if step.body else "GET"
                conn.request(method, step.path, body=step.body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    if resp.status != 200:
                        traffic.failures.append(f"{step.path}: {resp.status}")
                    else:
                        traffic.served += 1
                if step.close:
                    conn.close()
                    conn = None
            except Exception as exc:  # noqa: BLE001
                with lock:
                    traffic.failures.append(f"{step.path}: {exc!r}")
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    try:
        yield traffic
    finally:
        stop.set()
        for t in threads:
            t.join(60)


def wait_for_gone(server: RunningServer, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = server.leftovers()
        if not left:
            return []
        time.sleep(0.05)
    return server.leftovers()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (or the socket's timeout passes)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def unix_get(path: Path | str, target: str) -> bytes:
    """GET target over the unix socket at path, with Connection: close; the whole reply."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return read_until_closed(sock)


def site_yaml(
    groups: dict[str, dict], routes: str = "", default_group: str | None = "main", extra: str = ""
) -> str:
    """Build a site YAML with the echo app for the given groups {name: {processes, threads}}."""
    lines = ["site: testsite", "listen: ['127.0.0.1:0']", "groups:"]
    for name, opts in groups.items():
        lines.append(f"  {name}:")
        lines.append(f"    app: {opts.get('app', 'echo_app:application')}")
        for key, value in opts.items():
            if key != "app":
                lines.append(f"    {key}: {json.dumps(value)}")
    if routes:
        lines.append("routes:")
        lines.extend("  " + line for line in textwrap.dedent(routes).strip().splitlines())
    if default_group:
        lines.append(f"default_group: {default_group}")
    if extra:
        lines.extend(textwrap.dedent(extra).strip().splitlines())
    return "\n".join(lines) + "\n"
