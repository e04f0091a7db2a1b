"""`concurrency`: how many requests a worker runs at once (policy unit tests, then real workers)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from conftest import Step, client_traffic, site_yaml, wait_for

from groupserver.concurrency import ConcurrencyLimit

APP = "lifecycle_app:application"


def _interval(
    limit: ConcurrencyLimit, requests: int, in_app: float, cpu: float, blocked: bool = True
) -> int:
    """One 0.1 s interval: `requests` requests spent `in_app` s in all; each blocked once."""
    for _ in range(requests):
        limit.record(in_app / requests, 1 if blocked else 0)
    return limit.adjust(0.1, cpu)


# -- the policy ----------------------------------------------------------------------------------


def test_a_saturated_gil_narrows_the_limit_one_step_per_interval_down_to_one():
    limit = ConcurrencyLimit(8)
    assert limit.value == 8  # a new worker starts with every thread
    seen = [_interval(limit, 400, in_app=0.6, cpu=0.099) for _ in range(9)]
    assert seen == [7, 6, 5, 4, 3, 2, 1, 1, 1]


def test_requests_waiting_on_io_widen_the_limit_to_their_ratio_up_to_threads():
    limit = ConcurrencyLimit(8)
    for _ in range(7):
        _interval(limit, 400, in_app=0.6, cpu=0.1)
    assert limit.value == 1
    # 10 ms of CPU for 0.3 s in the app: 30 requests could overlap; the worker has 8 threads.
    assert _interval(limit, 30, in_app=0.3, cpu=0.01) == 8
    limit = ConcurrencyLimit(8, "auto")
    limit.value = 1
    assert _interval(limit, 20, in_app=0.025, cpu=0.01) == 3  # in the app 2.5x its CPU time


def test_requests_that_never_block_narrow_it_even_on_a_shared_core():
    # Other processes take half the core: the worker's share is low, its requests are slow in
    # wall time, but they never leave the CPU of their own accord.
    limit = ConcurrencyLimit(8)
    seen = [_interval(limit, 200, in_app=0.4, cpu=0.05, blocked=False) for _ in range(8)]
    assert seen == [7, 6, 5, 4, 3, 2, 1, 1]


def test_the_limit_holds_when_neither_measurement_calls_for_a_change():
    limit = ConcurrencyLimit(8)
    limit.value = 2
    assert _interval(limit, 50, in_app=0.02, cpu=0.02) == 2  # light load, in app = CPU time
    assert _interval(limit, 3, in_app=0.3, cpu=0.01) == 2  # too few requests to go by
    assert _interval(limit, 400, in_app=0.8, cpu=0.18) == 2  # 1.8 cores: C code in parallel


def test_a_fixed_concurrency_never_moves_and_is_at_most_threads():
    fixed = ConcurrencyLimit(8, 3)
    assert fixed.value == 3
    assert _interval(fixed, 400, in_app=0.6, cpu=0.1) == 3
    assert _interval(fixed, 30, in_app=0.3, cpu=0.001) == 3
    assert ConcurrencyLimit(4, 16).value == 4


def test_long_requests_let_one_more_in_when_blocked_or_computing_not_when_queueing():
    limit = ConcurrencyLimit(3)
    limit.value = 1
    assert not limit.one_more(process_share=0.95, busiest_share=0.1)  # queueing for the GIL
    assert limit.value == 1
    assert limit.one_more(process_share=0.02, busiest_share=0.0)  # blocked on I/O
    assert limit.one_more(process_share=0.95, busiest_share=0.9)  # one computes for long
    assert limit.value == 3
    assert not limit.one_more(0.0, 0.0)  # already every thread
    assert not ConcurrencyLimit(3, 1).one_more(0.0, 0.0)


# -- real workers --------------------------------------------------------------------------------


def _limits(server) -> list[int]:
    doc = server.stats()
    return [w["concurrency"] for w in doc["groups"]["main"]["workers"]]


def _load(server, path: str, clients: int):
    """Clients sending GET path on keep-alive connections until the block ends."""
    return client_traffic(server, lambda _rng: Step(path), clients=clients)


def test_computing_requests_run_one_at_a_time_and_all_are_served(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 4}}))
    assert _limits(server) == [4]
    with _load(server, "/spin?ms=2", clients=6) as load:
        wait_for(lambda: _limits(server) == [1], timeout=15)
        count = load.served
        wait_for(lambda: load.served > count + 50, timeout=15)
        assert _limits(server) == [1]  # it stays there under the load
        status = server.cli("status", "--once", "--workers")
        # shown per worker (1, or 2 when other load on this machine widened it in the meantime)
        assert re.search(r"busy \d/4 limit [12] ", status.stdout), status.stdout
    assert load.served and not load.failures, load.failures[:3]  # every response a 200


def test_requests_waiting_on_io_keep_every_thread_running(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 4}}))
    with _load(server, "/sleep?s=0.05", clients=8) as load:
        wait_for(lambda: load.served >= 100, timeout=30)
        assert _limits(server) == [4]
    assert not load.failures, load.failures[:3]  # every response a 200
    assert server.get_json("/done")["most_at_once"] == 4


def _narrow_to_one(server) -> None:
    """Computing load until the worker's limit is 1, and it stays there once the load stops."""
    for _attempt in range(5):
        with _load(server, "/spin?ms=2", clients=4):
            wait_for(lambda: _limits(server) == [1], timeout=15)
        time.sleep(0.3)  # idle ticks leave it where it is...
        if _limits(server) == [1]:  # ...unless other load on this machine widened it: again
            return
    pytest.fail("the limit never stayed at 1 once the computing load stopped")


def test_a_blocked_request_does_not_hold_up_the_others_when_the_limit_is_one(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 3}}))
    _narrow_to_one(server)
    sleeper = threading.Thread(target=server.get_json, args=("/sleep?s=3",), kwargs={"timeout": 10})
    sleeper.start()
    time.sleep(0.1)  # the sleeper is in the app, holding the one request allowed
    try:
        started = time.monotonic()
        assert server.get_json("/quick", timeout=2.5)["path"] == "/quick"
        assert time.monotonic() - started < 2.5  # served while the sleeper still sleeps
        wait_for(lambda: _limits(server)[0] >= 2, timeout=2)  # published at the next tick
    finally:
        sleeper.join(10)


def test_a_long_computing_request_does_not_hold_up_the_short_ones(make_server):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 3}}))
    _narrow_to_one(server)
    spinner = threading.Thread(
        target=server.get_json, args=("/spin?ms=3000",), kwargs={"timeout": 15}
    )
    spinner.start()
    try:
        time.sleep(0.1)  # the spinner computes, holding the one request allowed
        started = time.monotonic()
        assert server.get_json("/quick", timeout=2.5)["path"] == "/quick"
        assert time.monotonic() - started < 2.5  # it shared the GIL with the spinner
    finally:
        spinner.join(15)


@pytest.mark.parametrize("setting", [1, 2])
def test_a_fixed_concurrency_caps_the_requests_in_the_app(make_server, setting):
    server = make_server(site_yaml({"main": {"app": APP, "threads": 4, "concurrency": setting}}))
    with _load(server, "/sleep?s=0.05", clients=6) as load:
        wait_for(lambda: load.served >= 30, timeout=30)
    assert not load.failures, load.failures[:3]  # every response a 200
    assert _limits(server) == [setting]
    assert server.get_json("/done")["most_at_once"] == setting
