"""Soak: mixed traffic over several groups for a while, with reloads and max_requests recycles
under way; no request may fail. Slow: run with `python -m pytest -m slow`."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from conftest import Step, client_traffic, site_yaml, wait_for

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

    def pick(rng: random.Random) -> Step:
        path = rng.choice(["/", "/x", "/admin/alloc?mb=1", "/admin/y", "/z?q=1"])
        body = b"x" * rng.randint(0, 2048) if rng.random() < 0.3 else None
        return Step(path, body, new_connection=rng.random() < 0.2)

    with client_traffic(server, pick) as traffic:
        deadline = time.monotonic() + SOAK_SECONDS
        reloads = 0
        while time.monotonic() < deadline:
            time.sleep(SOAK_SECONDS / 6)
            server.send_signal(signal.SIGHUP)
            reloads += 1
            server.wait_log("serving", count=reloads, timeout=30)
    assert traffic.failures == [], traffic.failures[:10]
    assert traffic.served > 500
    assert "died" not in server.log()
    wait_for(lambda: len(server.processes_titled("(wsgi:main)")) == 2)
