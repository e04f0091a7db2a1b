"""Soak: mixed traffic over several groups for a while, with reloads and max_requests recycles
under way; no request may fail. Slow: run with `python -m pytest -m slow`."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from conftest import site_yaml, wait_for

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("GROUPSERVER_SOAK_SECONDS", "30"))


@pytest.mark.parametrize("accept", ["front", "main"])
def test_mixed_traffic_with_reloads_and_recycles_loses_nothing(make_server, accept):
    """With a front process, and with main's workers accepting (front.accept)."""
    server = make_server(
        site_yaml(
            {
                "main": {"processes": 2, "threads": 4},
                "volume": {"processes": 2, "threads": 2, "preload": True},
                "admin": {"app": "lifecycle_app:application", "threads": 2, "max_requests": 25},
            },
            routes="""
            - {regex: "^/$", group: volume}
            - {prefix: /admin, group: admin, mount: true}
            """,
            extra=f"front: {{accept: {accept}}}",
        )
    )
    stop = threading.Event()
    failures: list[str] = []
    served = [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = None
        while not stop.is_set():
            path = rng.choice(["/", "/x", "/admin/alloc?mb=1", "/admin/y", "/z?q=1"])
            try:
                if conn is None or rng.random() < 0.2:
                    if conn is not None:
                        conn.close()
                    conn = server.connection(timeout=30)
                body = b"x" * rng.randint(0, 2048) if rng.random() < 0.3 else None
                conn.request("POST" if body else "GET", path, body=body)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures.append(f"{path}: {resp.status}")
                with lock:
                    served[0] += 1
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{path}: {exc!r}")
                conn = None
        if conn is not None:
            conn.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + SOAK_SECONDS
    reloads = 0
    while time.monotonic() < deadline:
        time.sleep(SOAK_SECONDS / 6)
        server.send_signal(signal.SIGHUP)
        reloads += 1
        server.wait_log("serving", count=reloads, timeout=30)
    stop.set()
    for t in clients:
        t.join(60)
    assert failures == [], failures[:10]
    assert served[0] > 500
    assert "died" not in server.log()
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 2)
