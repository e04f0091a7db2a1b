"""The command line (check, route), the remaining signals (TTIN/TTOU, USR1), the access log,
IPv6 and unix listeners, mounts, and per-group users — each against a real server."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest
from conftest import APPS, ROOT, site_yaml, unix_get, wait_for

from groupserver.http.response import error_body_size


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "groupserver", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_check_prints_groups_and_routes():
    result = _run("check", str(ROOT / "configs" / "partitioned.yaml"))
    assert result.returncode == 0, result.stderr
    assert "volume: 3 processes x 5 threads" in result.stdout
    assert "admin: 1 process x 3 threads" in result.stdout
    assert "prefix /admin -> admin" in result.stdout
    assert "accept: a front process routes every new connection" in result.stdout
    single = _run("check", str(ROOT / "configs" / "single.yaml"))
    assert "accept: group main's workers (no front process)" in single.stdout


def test_check_describes_an_adaptive_pool(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "groups: {main: {app: x:y, threads: 4, processes: {min: 1, max: 3, idle_timeout: 60}}}\n"
    )
    result = _run("check", str(site))
    assert result.returncode == 0, result.stderr
    # it printed the model's repr: "min=1 max=3 idle_timeout=60.0 grow_after=1.0 processes"
    adaptive = "1-3 processes (adaptive: +1 after 1s of backlog, -1 after 60s idle)"
    assert f"main: {adaptive} x 4 threads," in result.stdout


def test_check_names_the_key_and_reason_of_a_bad_config(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("groups:\n  admin: {app: 'a:b', threads: 0}\n")
    result = _run("check", str(bad))
    assert result.returncode == 2
    assert f"{bad}: groups.admin.threads: must be >= 1 (got 0)" in result.stderr


def _to_a_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m groupserver ARGS` with stdout a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "groupserver", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)


def test_output_into_a_pipe_closed_early_ends_quietly(make_server):
    """`groupserver status site.yaml | head` used to end in a BrokenPipeError traceback."""
    config = str(ROOT / "configs" / "partitioned.yaml")
    for args in (("check", config), ("route", config, "/admin")):
        done = _to_a_closed_pipe(*args)
        assert (done.returncode, done.stderr) == (141, ""), args
    server = make_server(site_yaml({"main": {}}))
    done = _to_a_closed_pipe("status", str(server.config))  # refreshes until its reader goes
    assert (done.returncode, done.stderr) == (141, "")


def test_serve_takes_port_and_pool_size_from_the_environment(make_server, monkeypatch):
    """As a platform hands them over: ${PORT}, ${WEB_CONCURRENCY}, with defaults."""
    monkeypatch.setenv("GS_TEST_PORT", "0")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    yaml_text = site_yaml({"main": {}}).replace("'127.0.0.1:0'", "'127.0.0.1:${GS_TEST_PORT}'")
    yaml_text = yaml_text.replace(
        "    app: echo_app:application\n",
        "    app: echo_app:application\n"
        "    processes: ${WEB_CONCURRENCY:-1}\n"
        "    threads: ${GS_TEST_THREADS:-3}\n",
    )
    server = make_server(yaml_text)
    workers = server.stats()["groups"]["main"]["workers"]
    assert len(workers) == 2 and {w["threads"] for w in workers} == {3}
    assert server.get_json("/from-env")["group"] == "main"
    monkeypatch.delenv("GS_TEST_PORT")
    refused = server.cli("check")
    assert refused.returncode == 2
    assert "listen[0]: environment variable GS_TEST_PORT is not set" in refused.stderr


def test_every_argument_has_help_and_status_refuses_an_interval_that_is_not_positive():
    config = str(ROOT / "configs" / "single.yaml")
    for command in ("serve", "check", "route", "status", "advise", "ctl"):
        text = _run(command, "--help").stdout
        assert "the site's YAML file" in text, command
    ctl = _run("ctl", "--help").stdout
    assert "the group to scale or recycle" in ctl
    # -1 ended in time.sleep's ValueError (inf in its OverflowError), 0 in a busy loop
    for interval in ("0", "-1", "soon", "inf", "nan"):
        result = _run("status", config, "--interval", interval)
        assert result.returncode == 2, result
        assert "argument --interval:" in result.stderr
        assert "Traceback" not in result.stderr


def test_route_prints_the_group_for_a_url():
    config = str(ROOT / "configs" / "partitioned.yaml")
    result = _run("route", config, "/admin/users?x=1")
    assert result.returncode == 0
    assert "group admin (routes[2]: prefix /admin)" in result.stdout
    assert "group volume" in _run("route", config, "/").stdout
    assert "group main (default group)" in _run("route", config, "/other").stdout
    # a whole URL (absolute form, as the server routes it): by its path
    absolute = _run("route", config, "http://example.com/admin/users?x=1").stdout
    assert "group admin (routes[2]: prefix /admin)" in absolute
    broken = _run("route", config, "http://[::1/admin")  # was a ValueError traceback
    assert broken.returncode == 2
    assert broken.stderr == "groupserver route: http://[::1/admin: not a URL: Invalid IPv6 URL\n"
    # what the server refuses with a 400 is not named a group (each was "group ...", exit 0)
    for url, reason in [
        ("/admin/%zz", "invalid percent-encoding in path"),
        ("admin", "invalid request target"),
        ("/a b", "invalid request line"),
    ]:
        refused = _run("route", config, url)
        assert refused.returncode == 1
        assert refused.stdout == f"{url}: refused with 400 ({reason})\n"
    assert "group admin" in _run("route", config, "/admin#part").stdout  # never sent


def test_ttin_and_ttou_change_the_default_group(make_server):
    server = make_server(site_yaml({"main": {"processes": 1}, "other": {}}))
    server.send_signal(signal.SIGTTIN)
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 2)
    server.send_signal(signal.SIGTTOU)
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 1)
    server.send_signal(signal.SIGTTOU)  # never below one
    server.wait_log("already has one process")
    assert len(server.processes_titled("(wsgi:other)")) == 1


def test_access_log_and_usr1_reopen(make_server, tmp_path):
    log_path = tmp_path / "access.log"
    server = make_server(
        site_yaml(
            {"main": {}, "admin": {}},
            routes="- {prefix: /admin, group: admin}",
            extra=f"access_log: '{log_path}'",
        )
    )
    server.request("GET", "/hello?x=1", headers={"User-Agent": "tester/1", "Referer": "http://r/"})
    server.request("GET", "/admin/a")
    lines = wait_for(lambda: len(log_path.read_text().splitlines()) >= 2 and log_path.read_text())
    assert re.search(
        r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /hello\?x=1 HTTP/1\.1" 200 \d+ "http://r/" '
        r'"tester/1" main \d+$',
        lines,
        re.M,
    ), lines
    assert re.search(r'"GET /admin/a HTTP/1\.1" 200 \d+ "-" "[^"]*" admin \d+$', lines, re.M)
    # behind a trusted proxy (127.0.0.1 by default) the line names the client the app saw,
    # on the front's path and on a worker's keep-alive and error paths alike
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert server.get_json("/proxied", headers=forwarded)["remote_addr"] == "203.0.113.9"
    assert server.request("GET", "/error", headers=forwarded)[0] == 500
    for target in ("/proxied", "/error"):
        line = wait_for(
            lambda t=target: next(
                (ln for ln in log_path.read_text().splitlines() if f"GET {t} " in ln), None
            )
        )
        assert line.startswith("203.0.113.9 - - ["), line
    # the bytes of the body as sent: chunked (5 x 6 bytes) and the worker's own 500 logged "-"
    assert server.request("GET", "/stream")[0] == 200
    stream = wait_for(
        lambda: re.search(r'"GET /stream HTTP/1\.1" (\d+) (\S+)', log_path.read_text())
    )
    assert stream.groups() == ("200", "30")
    error = re.search(r'"GET /error HTTP/1\.1" (\d+) (\S+)', log_path.read_text())
    assert error is not None and error.groups() == ("500", str(len("Internal Server Error\n")))
    os.rename(log_path, tmp_path / "access.log.1")  # what logrotate does
    server.send_signal(signal.SIGUSR1)
    wait_for(lambda: log_path.exists())
    server.request("GET", "/after-rotate")
    wait_for(lambda: "/after-rotate" in log_path.read_text())


def test_requests_refused_before_any_app_are_in_the_access_log(make_server, tmp_path):
    """The front's refusals (no route, a malformed or oversized head) and a worker's, for the
    next request on a keep-alive connection, used to be in no log at all, only counted."""
    log_path = tmp_path / "access.log"
    server = make_server(
        site_yaml(
            {"main": {}, "admin": {}},
            routes="- {prefix: /admin, group: admin}\n- {prefix: /app, group: main}",
            default_group=None,
            extra=f"access_log: '{log_path}'\nlimits: {{max_request_line: 100}}",
        )
    )
    forwarded = {"X-Forwarded-For": "203.0.113.7", "User-Agent": "probe/1"}
    assert server.request("GET", "/nowhere?q=1", headers=forwarded)[0] == 404
    assert server.raw(b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert server.raw(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    assert server.raw(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    # the next request of a keep-alive connection is parsed and routed by the worker
    keep = b"GET /app/one HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = server.raw(keep + b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"HTTP/1.1 404 " in reply, reply
    assert b"HTTP/1.1 400 " in server.raw(keep + b'BAD "line"\r\n\r\n')

    def size(status: int) -> str:
        return str(error_body_size(status))

    lines = wait_for(lambda: len(log_path.read_text().splitlines()) >= 8 and log_path.read_text())
    stamp = r"- - \[[^\]]+\]"
    expected = [
        rf'203\.0\.113\.7 {stamp} "GET /nowhere\?q=1 HTTP/1\.1" 404 {size(404)} '
        r'"-" "probe/1" - \d+',
        rf'127\.0\.0\.1 {stamp} "GET /a\\x01b HTTP/1\.1" 400 {size(400)} "-" "-" - \d+',
        rf'127\.0\.0\.1 {stamp} "GET /a{{200}} HTTP/1\.1" 414 {size(414)} "-" "-" - \d+',
        rf'127\.0\.0\.1 {stamp} "GET / HTTP/2\.0" 505 {size(505)} "-" "-" - \d+',
        rf'127\.0\.0\.1 {stamp} "GET /elsewhere HTTP/1\.1" 404 {size(404)} "-" "-" main \d+',
        rf'127\.0\.0\.1 {stamp} "BAD \\x22line\\x22" 400 {size(400)} "-" "-" main \d+',
    ]
    for pattern in expected:
        assert re.search("^" + pattern + "$", lines, re.M), (pattern, lines)
    # the front reopens its log on USR1 too
    os.rename(log_path, tmp_path / "access.log.1")
    server.send_signal(signal.SIGUSR1)
    wait_for(lambda: log_path.exists())
    assert server.request("GET", "/after-rotate")[0] == 404
    wait_for(lambda: '"GET /after-rotate HTTP/1.1" 404' in log_path.read_text())


def test_stdout_access_log_and_app_prints_survive_a_worker_exit(make_server):
    """stdout is block-buffered when it is a file or a pipe (systemd, docker) and
    PYTHONUNBUFFERED is not set: access log lines for "-" waited in the buffer, and were lost
    when a worker left by os._exit at a recycle or a stop; so was what the app printed."""
    server = make_server(site_yaml({"main": {"max_requests": 3}}, extra='access_log: "-"'))
    (first,) = server.processes_titled("(wsgi:main)")
    assert server.request("GET", "/one")[0] == 200
    wait_for(lambda: '"GET /one HTTP/1.1" 200' in server.log())  # at once, not at exit
    server.request("GET", "/print?x=hello")
    server.request("GET", "/three")  # max_requests: the worker retires, by os._exit
    wait_for(lambda: first.pid not in {p.pid for p in server.processes_titled("(wsgi:main)")})
    wait_for(lambda: "printed by the app: x=hello" in server.log())
    log_text = server.log()
    assert log_text.count("printed by the app: x=hello") == 1, log_text
    for target in ("/one", "/print?x=hello", "/three"):
        assert log_text.count(f'"GET {target} HTTP/1.1" 200') == 1, (target, log_text)


def test_hup_applies_a_new_error_log_and_log_level(make_server):
    """Before, both were set once at start-up: a HUP kept logging at the old level, to stderr."""
    yaml_text = site_yaml({"main": {}})
    server = make_server(yaml_text)
    old = {p.pid for p in server.processes_titled("(wsgi:main)")}
    server.config.write_text(yaml_text + "log_level: warning\nerror_log: errors.log\n")
    server.send_signal(signal.SIGHUP)
    server.wait_log(f"reload: error log to {server.dir / 'errors.log'}, level warning")
    # the old generation's worker is gone (its "exited" line, INFO, is not logged any more)
    wait_for(lambda: not old & {p.pid for p in server.processes_titled("(wsgi:main)")})
    errors = server.dir / "errors.log"
    assert server.request("GET", "/error")[0] == 500
    text = wait_for(
        lambda: (
            "error in the application for GET /error" in errors.read_text() and errors.read_text()
        )
    )
    assert "[INFO]" not in text, text
    assert "error in the application" not in server.log()


def test_an_access_log_that_cannot_be_reopened_never_stops_the_site(make_server, tmp_path):
    """logrotate gone wrong (the directory removed, say): the workers log why and keep serving
    (a worker used to die of it, and so did each replacement: the group failed with 503s)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    log_path = folder / "access.log"
    server = make_server(site_yaml({"main": {}}, extra=f"access_log: '{log_path}'"))
    server.request("GET", "/before")
    wait_for(lambda: log_path.exists() and "/before" in log_path.read_text())
    shutil.rmtree(folder)
    server.send_signal(signal.SIGUSR1)
    server.wait_log(f"access_log: cannot open {log_path}: No such file or directory")
    for n in range(3):
        assert server.request("GET", f"/during-{n}")[0] == 200
    (workers,) = server.processes_titled("(wsgi:main)")
    assert workers.pid in server.known_pids, "the same worker, not a replacement"
    folder.mkdir()
    server.send_signal(signal.SIGUSR1)  # mended: the next USR1 opens it again
    wait_for(lambda: log_path.exists())
    server.request("GET", "/mended")
    wait_for(lambda: "/mended" in log_path.read_text())


def _tiny_filesystem(path) -> bool:
    """Mount a 64 KiB tmpfs on path (root only); whether it worked."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_a_full_disk_under_the_access_log_is_logged_once_and_no_line_comes_out_torn(
    make_server, tmp_path
):
    """Writes to the access log used to fail silently, and a line-buffered file kept the failed
    part of a line to write it out, torn, once the disk had room again."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _tiny_filesystem(disk):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        log_path = disk / "access.log"
        server = make_server(site_yaml({"main": {}}, extra=f"access_log: '{log_path}'"))
        server.request("GET", "/before")
        wait_for(lambda: "/before" in log_path.read_text())
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:  # the rest of the disk
            try:
                while True:
                    f.write(b"f" * 4096)
            except OSError:
                pass
        for n in range(8):  # past the log file's last page, which had room
            assert server.request("GET", f"/while-full-{n}-" + "x" * 1000)[0] == 200
        server.wait_log(
            f"access_log: cannot write to {log_path}: No space left on device; the worker "
            "keeps serving (lines lost so far: 1)"
        )
        assert server.log().count("access_log: cannot write") == 1  # not once per request
        filler.unlink()
        server.request("GET", "/after")
        wait_for(lambda: "/after" in log_path.read_text())
        server.wait_log(f"access_log: writing to {log_path} again (lines lost: ")
        for line in log_path.read_text().splitlines():
            assert re.fullmatch(
                r'127\.0\.0\.1 - - \[.+\] "GET /\S+ HTTP/1\.1" 200 .* main \d+', line
            ), line
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_log_paths_are_relative_to_the_yaml_file_and_their_directory_must_exist(make_server):
    server = make_server(
        site_yaml({"main": {"chdir": "app"}}, extra="access_log: logs/access.log"), start=False
    )
    (server.dir / "app").mkdir()
    for command in ("check", "serve"):
        refused = server.cli(command)
        assert refused.returncode == 2
        assert f"access_log: no such directory {server.dir / 'logs'}" in refused.stderr
    (server.dir / "logs").mkdir()
    server.start()
    server.request("GET", "/where")
    # next to site.yaml: not in the group's chdir, nor wherever the server was started
    wait_for(lambda: "/where" in (server.dir / "logs" / "access.log").read_text())


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
def test_ipv6_listener(make_server):
    server = make_server(site_yaml({"main": {}}).replace("'127.0.0.1:0'", "'[::1]:0'"))
    assert server.host == "::1"
    with socket.create_connection(("::1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /six HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b'"path_info": "/six"' in data and b'"remote_addr": "::1"' in data


def test_mounted_route_moves_the_prefix_to_script_name(make_server):
    server = make_server(
        site_yaml(
            {"main": {}, "admin": {}}, routes="- {prefix: /admin/, group: admin, mount: true}"
        )
    )
    seen = server.get_json("/admin/users/7")
    assert (seen["group"], seen["script_name"], seen["path_info"]) == (
        "admin",
        "/admin",
        "/users/7",
    )


def test_umask_applies_to_unix_sockets(make_server, tmp_path):
    path = tmp_path / "u.sock"
    make_server(_unix_site(path, extra="umask: '0077'"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def _unix_site(path, extra: str = "") -> str:
    return site_yaml({"main": {}}, extra=extra).replace(
        "listen: ['127.0.0.1:0']", f"listen: ['unix:{path}']"
    )


def _serve_beside(server, yaml_text: str) -> tuple[int, str]:
    """`serve` another site file in the running server's directory; it must exit by itself."""
    other = server.dir / "again.yaml"
    other.write_text(yaml_text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "groupserver", "serve", str(other)],
        cwd=server.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(APPS), str(ROOT)])),
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the master and the workers it forked
        proc.communicate()
        raise AssertionError("the second serve kept running") from None
    return proc.returncode, out


def test_serving_a_running_site_again_is_refused_and_leaves_the_first_in_reach(make_server):
    """Same site, same directory, so the same control socket; another port. A second master
    would have taken the control socket, and removed its file on exit."""
    server = make_server(site_yaml({"main": {}}))
    code, out = _serve_beside(server, site_yaml({"main": {}}))
    assert code == 1, out
    control = server.dir / ".testsite.ctl"
    assert f"site testsite is running already: its control socket {control} answers" in out
    assert server.stats()["groups"]["main"]["workers"], "the first site's ctl still answers"
    assert server.request("GET", "/still")[0] == 200
    # The same file again, port and all, the commonest way to start a site twice: it said
    # "cannot listen on 127.0.0.1:PORT: Address already in use".
    same = site_yaml({"main": {}}).replace("127.0.0.1:0", f"127.0.0.1:{server.port}")
    code, out = _serve_beside(server, same)
    assert code == 1, out
    assert f"site testsite is running already: its control socket {control} answers" in out
    assert "Address already in use" not in out
    assert server.request("GET", "/still")[0] == 200


def test_a_stats_port_in_use_is_named_by_its_key(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = tmp_path / "site.yaml"
        site.write_text(
            site_yaml({"main": {}}, extra=f"stats: {{listen: '127.0.0.1:{port}'}}"), "utf-8"
        )
        result = _run("serve", str(site), cwd=APPS)
    assert result.returncode == 1, result
    assert f"stats.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )


def test_a_unix_socket_another_process_listens_on_is_not_taken_over(make_server, tmp_path):
    path = tmp_path / "site.sock"
    yaml_text = _unix_site(path)
    first = make_server(yaml_text)
    code, out = _serve_beside(first, yaml_text.replace("site: testsite", "site: other"))
    assert code == 1, out
    assert f"cannot listen on unix:{path}: another process listens on it" in out
    assert b'"path_info": "/first"' in unix_get(path, "/first")


def test_a_stale_unix_socket_file_is_replaced(make_server, tmp_path):
    """What a killed site leaves behind: a socket file nothing listens on."""
    path = tmp_path / "site.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    make_server(_unix_site(path))
    assert b'"path_info": "/fresh"' in unix_get(path, "/fresh")


def test_a_user_or_group_this_host_lacks_is_refused_by_check_serve_and_reload(make_server):
    """It used to pass `check` and then fail every worker at start-up, retried for ever."""
    lacking = site_yaml(
        {"main": {"user": "no-such-user-gs"}, "other": {"group": "no-such-group-gs"}},
        routes="- {prefix: /other, group: other}",
    ).replace(
        "listen: ['127.0.0.1:0']",
        "listen: ['127.0.0.1:0', {address: 'unix:gs.sock', owner: no-such-owner-gs}]",
    )
    server = make_server(lacking, start=False)
    for command in ("check", "serve"):
        refused = server.cli(command)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"{server.config}: groups.main.user: no such user 'no-such-user-gs'" in (
            refused.stderr
        )
        assert "groups.other.group: no such group 'no-such-group-gs'" in refused.stderr
        assert "listen[1].owner: no such user 'no-such-owner-gs'" in refused.stderr
        assert "OK" not in refused.stdout
    server.config.write_text(site_yaml({"main": {}}))
    server.start()
    server.config.write_text(site_yaml({"main": {"user": "no-such-user-gs", "threads": 2}}))
    server.send_signal(signal.SIGHUP)
    server.wait_log(
        "reload refused, keeping the running configuration: "
        "groups.main.user: no such user 'no-such-user-gs'"
    )
    (worker,) = server.processes_titled("(wsgi:main)")
    assert worker.pid in server.known_pids and worker.num_threads() >= 1
    assert server.get_json("/still")["group"] == "main"


def test_what_the_host_lacks_is_reported_after_the_file_name_as_given(tmp_path):
    (tmp_path / "site.yaml").write_text("groups: {main: {app: x:y, user: no-such-user-gs}}\n")
    result = _run("check", "site.yaml", cwd=tmp_path)  # the name as typed, as a syntax error's
    assert result.returncode == 2
    assert result.stderr == "site.yaml: groups.main.user: no such user 'no-such-user-gs'\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as a user other than root")
def test_serve_refuses_a_user_switch_it_cannot_make_and_check_warns(make_server):
    server = make_server(site_yaml({"main": {"user": "root"}}), start=False)
    checked = server.cli("check")
    assert checked.returncode == 0
    warning = "groups.main.user: switching the workers to it needs the master to run as root"
    assert f"warning: {server.config}: {warning}" in checked.stderr
    refused = server.cli("serve")
    assert refused.returncode == 2 and warning in refused.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_group_workers_run_as_the_configured_user(make_server):
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    # orphan_app imports only modules the master already loaded: `nobody` may not be able to
    # read this Python's standard library (e.g. a pyenv install under /root)
    app = "orphan_app:application"
    server = make_server(
        site_yaml(
            {"main": {"app": app}, "low": {"app": app, "user": "nobody"}},
            routes="- {prefix: /low, group: low}",
        )
    )
    (low,) = server.processes_titled("(wsgi:low)")
    (main,) = server.processes_titled("(wsgi:main)")
    assert low.uids().real == nobody.pw_uid and low.gids().real == nobody.pw_gid
    assert main.uids().real == 0
    assert server.get_json("/low/x")["pid"] == low.pid
