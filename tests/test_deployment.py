"""Behind a proxy, under systemd, in containers: forwarded headers, PROXY protocol, socket
activation, sd_notify and reaping orphans, against real processes and sockets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import APPS, ROOT, site_yaml, unix_get, wait_for


def _echo(server, headers: dict[str, str]) -> dict:
    return server.get_json("/who", headers=headers)


def test_forwarded_headers_are_believed_only_from_trusted_peers(make_server):
    trusted = make_server(site_yaml({"main": {}}, extra="forwarded_allow_ips: ['127.0.0.0/8']"))
    seen = _echo(trusted, {"X-Forwarded-For": "203.0.113.9, 127.0.0.1"})
    assert seen["remote_addr"] == "203.0.113.9"
    # the client's own Forwarded (a proxy passes it on) was believed over the proxy's XFF
    spoofed = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=6.6.6.6;proto=http"}
    assert _echo(trusted, spoofed)["remote_addr"] == "203.0.113.9"
    # a client that is not an address does not become REMOTE_ADDR (nor the access log's field)
    assert _echo(trusted, {"X-Forwarded-For": "<script>"})["remote_addr"] == "127.0.0.1"
    rfc7239 = make_server(
        site_yaml(
            {"main": {}},
            extra="forwarded_allow_ips: ['127.0.0.0/8']\nforwarded_headers: forwarded",
        )
    )
    seen = _echo(rfc7239, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'})
    assert seen["remote_addr"] == "2001:db8::7"
    assert _echo(rfc7239, {"X-Forwarded-For": "203.0.113.9"})["remote_addr"] == "127.0.0.1"
    assert _echo(rfc7239, {"Forwarded": 'for="1.2.3.4 evil"'})["remote_addr"] == "127.0.0.1"
    untrusted = make_server(site_yaml({"main": {}}, extra="forwarded_allow_ips: ['10.0.0.0/8']"))
    seen = _echo(untrusted, {"X-Forwarded-For": "203.0.113.9"})
    assert seen["remote_addr"] == "127.0.0.1"


def test_forwarded_proto_sets_url_scheme_only_when_trusted(make_server):
    trusted = make_server(site_yaml({"main": {}}, extra="forwarded_allow_ips: '*'"))
    seen = trusted.get_json("/scheme", headers={"X-Forwarded-Proto": "https"})
    assert (seen["url_scheme"], seen["https"]) == ("https", "on")
    untrusted = make_server(site_yaml({"main": {}}, extra="forwarded_allow_ips: []"))
    seen = untrusted.get_json("/scheme", headers={"X-Forwarded-Proto": "https"})
    assert (seen["url_scheme"], seen["https"]) == ("http", None)


def _proxy_v2(src: str, sport: int) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_proxy_protocol_v1_and_v2_give_the_client_address(make_server):
    server = make_server(
        site_yaml(
            {"main": {}},
            extra="listen: [{address: '127.0.0.1:0', proxy_protocol: true}]",
        ).replace("listen: ['127.0.0.1:0']\n", "")
    )
    request = b"GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    reply = server.raw(b"PROXY TCP4 198.51.100.4 127.0.0.1 5555 80\r\n" + request)
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["remote_addr"] == "198.51.100.4"
    reply = server.raw(_proxy_v2("192.0.2.77", 6000) + request)
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["remote_addr"] == "192.0.2.77"
    # without the header the listener refuses: a client cannot skip the balancer's word
    assert server.raw(request).startswith(b"HTTP/1.1 400")


def test_unix_socket_listener_with_mode(make_server, tmp_path):
    path = tmp_path / "site.sock"
    server = make_server(
        site_yaml({"main": {}}).replace(
            "listen: ['127.0.0.1:0']", f"listen: [{{address: 'unix:{path}', mode: '0660'}}]"
        ),
        wait_ready=False,
    )
    del server
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    data = unix_get(path, "/u")
    assert data.startswith(b"HTTP/1.1 200") and b'"path_info": "/u"' in data


LAUNCHER = textwrap.dedent(
    """
    import os, sys
    fd = int(sys.argv[1])
    os.dup2(fd, 3)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.execv(sys.executable, [sys.executable, "-m", "groupserver", "serve", sys.argv[2]])
    """
)


def _start_with(tmp_path, yaml_text: str, env: dict, pass_fds=()) -> subprocess.Popen:
    config = tmp_path / "site.yaml"
    config.write_text(yaml_text)
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(APPS), str(ROOT)]), **env)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(pass_fds[0]), str(config)]
        if pass_fds
        else [sys.executable, "-m", "groupserver", "serve", str(config)],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        pass_fds=pass_fds,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    finally:
        for child in children:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()
                raise AssertionError(f"left behind: {child}")


def test_socket_activation_uses_the_passed_socket(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    # the YAML names another address: systemd's socket wins
    proc = _start_with(tmp_path, site_yaml({"main": {}}), {}, pass_fds=(listener.fileno(),))
    listener.close()
    try:
        wait_for(lambda: "ready:" in (tmp_path / "server.log").read_text(), timeout=15)
        assert "using 1 sockets passed by systemd" in (tmp_path / "server.log").read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /activated HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert b'"path_info": "/activated"' in data
    finally:
        _stop(proc)


def test_a_unix_socket_passed_by_systemd_keeps_its_file_after_a_stop(tmp_path):
    """The file is systemd's: without it the next start would get no connection at all."""
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(16)
    proc = _start_with(tmp_path, site_yaml({"main": {}}), {}, pass_fds=(listener.fileno(),))
    try:
        wait_for(lambda: "ready:" in (tmp_path / "server.log").read_text(), timeout=15)
        assert b'"path_info": "/activated"' in unix_get(path, "/activated")
    finally:
        _stop(proc)
    try:
        assert path.exists(), "the socket file systemd made was removed"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))  # systemd's socket takes connections for the next start
    finally:
        listener.close()


def test_sd_notify_ready_reloading_and_stopping(tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(15)
    proc = _start_with(tmp_path, site_yaml({"main": {}}), {"NOTIFY_SOCKET": notify_path})
    try:
        ready = notify.recv(4096).decode()
        assert "READY=1" in ready.splitlines() and "STATUS=serving main 1x1" in ready
        proc.send_signal(signal.SIGHUP)
        reloading = notify.recv(4096).decode().splitlines()
        assert "RELOADING=1" in reloading
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading)
        assert "READY=1" in notify.recv(4096).decode().splitlines()
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in notify.recv(4096).decode().splitlines()
        proc.wait(20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            _stop(proc)
        notify.close()


def test_orphaned_grandchildren_are_reaped(make_server):
    server = make_server(site_yaml({"main": {"app": "orphan_app:application"}}))
    assert server.get_json("/orphan")["orphaned"]

    def zombies():
        return [
            p for p in psutil.Process(server.pid).children() if p.status() == psutil.STATUS_ZOMBIE
        ]

    def adopted_and_gone():
        kids = psutil.Process(server.pid).children()
        return all(" ".join(k.cmdline()).strip().startswith(("(wsgi", "groupserver")) for k in kids)

    time.sleep(1.0)  # the grandchild lives 0.5 s, adopted by the master (child subreaper)
    wait_for(adopted_and_gone, timeout=5)
    assert zombies() == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) not installed")
def test_as_pid_1_it_reaps_orphans_and_drains_on_term(tmp_path):
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    config = tmp_path / "site.yaml"
    config.write_text(site_yaml({"main": {"app": "orphan_app:application"}}))
    log_path = tmp_path / "server.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(APPS), str(ROOT)]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                sys.executable,
                "-m",
                "groupserver",
                "serve",
                str(config),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        import re

        match = wait_for(
            lambda: (
                re.search(r"\[1\] \[INFO\] ready:", log_path.read_text())
                and re.search(r"listening on 127.0.0.1:(\d+)", log_path.read_text())
            ),
            timeout=15,
        )
        port = int(match.group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /orphan HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass
        time.sleep(1.0)
        (master,) = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "groupserver: master" in " ".join(p.cmdline())
        ]
        assert [k for k in master.children() if k.status() == psutil.STATUS_ZOMBIE] == []
        os.killpg(proc.pid, signal.SIGTERM)  # what `docker stop` does to PID 1
        proc.wait(20)
        assert "site testsite stopped" in log_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
