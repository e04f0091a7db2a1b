"""preload: true imports a group's app once, in a per-group parent, and shares it copy-on-write."""

from __future__ import annotations

import time

import psutil
from conftest import site_yaml, wait_for

from groupserver.memory import read_memory


def _config(tmp_path, preload: bool) -> str:
    return site_yaml(
        {
            "main": {
                "app": "heavy_app:application",
                "processes": 3,
                "preload": preload,
                "env": {"IMPORT_LOG": str(tmp_path / f"imports-{preload}.log")},
            }
        }
    )


def _workers(server):
    return server.processes_titled("(wsgi:main)")


def _respawn_seconds(server) -> float:
    """Kill every worker; time until a request (queued meanwhile) is served by a new one."""
    victims = _workers(server)
    started = time.monotonic()
    for proc in victims:
        proc.kill()
    reply = server.get_json("/x", timeout=30)
    assert reply["pid"] not in {p.pid for p in victims}
    return time.monotonic() - started


def test_preload_imports_once_shares_memory_and_keeps_the_master_clean(make_server, tmp_path):
    plain = make_server(_config(tmp_path, False))
    preloaded = make_server(_config(tmp_path, True))
    imports = (tmp_path / "imports-True.log").read_text().split()
    assert len(imports) == 1  # once, in the preloading parent
    (preloader,) = preloaded.processes_titled("groupserver: preload [main]")
    assert imports == [str(preloader.pid)]
    assert len((tmp_path / "imports-False.log").read_text().split()) == 3  # once per worker
    for proc in _workers(preloaded):
        assert proc.ppid() == preloaded.pid  # re-parented to the master, which supervises it
        assert preloaded.get_json("/x")["imported_by"] == preloader.pid
    master = psutil.Process(preloaded.pid)
    assert "heavy_app" not in open(f"/proc/{master.pid}/maps").read()

    def mean_uss(server) -> float:
        samples = [read_memory(p.pid) for p in _workers(server)]
        return sum(s.uss for s in samples if s) / len(samples)

    # The preloader's collection must not write to (and so un-share) what it inherited from
    # the master: with a gc.collect() over the inherited heap the master's USS grew by most of
    # its heap (~6 MiB: 2.6 -> 10 MiB here). The spawner of a plain group writes nothing there.
    master_plain, master_preloaded = read_memory(plain.pid), read_memory(preloaded.pid)
    assert master_plain and master_preloaded
    assert master_preloaded.uss < master_plain.uss + 4 * 2**20, (master_plain, master_preloaded)
    uss_plain, uss_preloaded = mean_uss(plain), mean_uss(preloaded)
    # copy-on-write: the imported objects stay shared with the preloading parent
    assert uss_preloaded < uss_plain * 0.6, (uss_plain, uss_preloaded)
    respawn_plain, respawn_preloaded = _respawn_seconds(plain), _respawn_seconds(preloaded)
    print(
        f"\nUSS per worker: {uss_plain / 2**20:.1f} MiB without preload, "
        f"{uss_preloaded / 2**20:.1f} MiB with; respawn to serving: "
        f"{respawn_plain * 1000:.0f} ms without, {respawn_preloaded * 1000:.0f} ms with"
    )


def test_killed_preloader_is_replaced_and_workers_keep_serving(make_server, tmp_path):
    server = make_server(_config(tmp_path, True))
    (preloader,) = server.processes_titled("groupserver: preload [main]")
    workers = {p.pid for p in _workers(server)}
    preloader.kill()
    wait_for(
        lambda: [
            p
            for p in server.processes_titled("groupserver: preload [main]")
            if p.pid != preloader.pid
        ]
    )
    assert {p.pid for p in _workers(server)} == workers
    assert server.get_json("/x")["pid"] in workers


def test_a_preloader_that_dies_with_a_worker_asked_of_it_leaves_no_phantom(make_server, tmp_path):
    """The master asked a preloader for a worker, and the preloader died before it forked one:
    the request's placeholder stayed forever (the group one worker short), and a TERM waited
    for it without end."""
    server = make_server(_config(tmp_path, True))
    (preloader,) = server.processes_titled("groupserver: preload [main]")
    preloader.suspend()  # takes no request now
    victim = _workers(server)[0]
    victim.kill()
    server.wait_log(f"worker {victim.pid} (group main) died unexpectedly")
    wait_for(lambda: server.stats()["groups"]["main"]["workers"][-1]["state"] == "starting")
    preloader.kill()  # with the spawn request unread
    server.wait_log("group main: its preloader died before it forked a worker asked of it")
    wait_for(lambda: len(_workers(server)) == 3, timeout=20)  # asked of the new preloader
    wait_for(
        lambda: [w["state"] for w in server.stats()["groups"]["main"]["workers"]] == ["ready"] * 3
    )
    restarts = server.stats()["groups"]["main"]["restarts"]
    assert restarts == {"crash": 1}, restarts  # the worker killed; no start failed
    # and the fixture's stop must end (it hung, then needed SIGKILL)
