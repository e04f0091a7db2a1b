"""`groupserver advise`: a processes x threads suggestion per group, from the collected stats.

Rules of thumb, each stated in the advice so the operator can judge it:
- A group that served fewer than 100 requests has shown too little to judge: keep what it has.
- An adaptive group (`processes: {min, max}`) is judged against its max, and the suggestion is
  a range with the same min.
- Capacity should cover the observed peak concurrency with headroom (x1.5).
- Requests that waited (backlog or queue time) mean too little capacity.
- A high involuntary context-switch rate, or many threads per process, means threads fight over
  the GIL: add processes rather than threads. So does a worker whose concurrency limit is below
  its threads: more threads would only wait behind the limit (`concurrency: auto` narrows it
  for requests that compute).
"""

from __future__ import annotations

import math
from typing import Any

from groupserver.wording import counted

_HEADROOM = 1.5
_GIL_SWITCHES = 500.0  # involuntary context switches per second per worker that signal contention
_MAX_THREADS = 8
_QUEUE_P90 = 0.010
_MIN_REQUESTS = 100


def advise_group(g: dict[str, Any]) -> dict[str, Any]:
    """Advice for one group of the stats document."""
    running = max(1, len([w for w in g["workers"] if w["state"] != "retiring"]))
    spec = g.get("processes") or {}
    low, high = spec.get("min"), spec.get("max")
    adaptive = low is not None and high is not None and low != high
    processes = high if adaptive else running  # an adaptive group: what its range allows
    threads = g["threads_per_process"]
    capacity = processes * threads
    room = f"{capacity} threads" + (f" (at its max of {high} workers)" if adaptive else "")
    peak = g["concurrency"]["peak"]
    mean = g["concurrency"]["mean"]
    queue_p90 = g["latency_seconds"]["queue"]["p90"] or 0.0
    workers = [w for w in g["workers"] if w["state"] == "ready"] or g["workers"]
    switches = max((w["involuntary_ctx_per_s"] for w in workers), default=0.0)
    uss = [w["uss_bytes"] for w in workers if w["uss_bytes"]]
    limit = min((w["concurrency"] for w in workers), default=threads)
    served = g["requests_total"]
    # Answered 503 at queue_timeout after waiting for a thread: not served, but they are the
    # clearest sign of too little capacity: with any, the group is judged however few it served
    # (a swamped small group served too few, and was told to keep what it had).
    shed = g.get("shed", {}).get("queue_timeout", 0)
    facts = {
        "requests": served,
        "shed_queue_timeout": shed,
        "processes": running,
        "threads": threads,
        "peak_concurrency": peak,
        "mean_concurrency": mean,
        "capacity_utilisation": g["capacity_utilisation"],
        "queue_p90_seconds": queue_p90,
        "backlog_max": g["backlog_max"],
        "involuntary_ctx_per_s": switches,
        "concurrency_limit": limit,
        "uss_per_worker_bytes": int(sum(uss) / len(uss)) if uss else 0,
        "idle_connections_closed": g.get("idle_connections_closed", 0),
    }
    need = max(1, math.ceil(peak * _HEADROOM))
    starved = g["backlog_max"] > 0 or queue_p90 > _QUEUE_P90 or shed > 0
    if starved:
        need = max(need, capacity + max(1, capacity // 2))
    limited = limit < threads
    contended = switches > _GIL_SWITCHES or threads > _MAX_THREADS or limited
    if served < _MIN_REQUESTS and not shed:
        new_processes, new_threads = processes, threads
        reason = (
            f"peak {peak} of {room} busy in only {counted(served, 'request')}: too few to "
            f"judge (it takes {_MIN_REQUESTS})"
        )
    elif need > capacity:
        if contended:
            new_threads = min(threads, _MAX_THREADS)
            new_processes = math.ceil(need / new_threads)
            if limited:
                why = f"a worker runs {limit} of its {threads} threads at once (concurrency)"
            else:
                why = f"GIL contention ({switches:.0f} involuntary switches/s)"
        else:
            new_processes, new_threads = processes, math.ceil(need / processes)
            why = "threads are cheap here"
        if starved:
            shed_text = f", {shed} answered 503 at queue_timeout" if shed else ""
            reason = (
                f"peak {peak} of {room} busy, backlog max {g['backlog_max']}, "
                f"queue p90 {queue_p90 * 1000:.1f} ms{shed_text}: add capacity; {why}"
            )
        else:
            reason = (
                f"peak {peak} of {room} busy: nothing waited, but the peak left "
                f"less than a third of the threads spare; add capacity; {why}"
            )
    elif need < capacity / 2:
        new_processes = min(processes, max(1, math.ceil(need / threads)))
        new_threads = max(1, math.ceil(need / new_processes))
        reason = f"peak {peak} of {room} busy: most threads sit idle"
    else:
        new_processes, new_threads = processes, threads
        reason = f"peak {peak} of {room} busy: capacity fits"
    suggested: int | dict[str, int] = new_processes
    if adaptive:
        suggested = {"min": low, "max": max(low, new_processes)}
        suggestion = f"processes: {{min: {low}, max: {suggested['max']}}}, threads: {new_threads}"
    else:
        suggestion = f"processes: {new_processes}, threads: {new_threads}"
    closed = facts["idle_connections_closed"]
    if closed:
        # Not about processes x threads: the connection cap. Clients whose idle keep-alive
        # connection was closed reconnect (a handshake each, more with TLS at the proxy).
        suggestion += (
            f" (and {closed} idle connections were closed at max_connections_per_worker to "
            "take new ones: if clients reconnect often, raise it)"
        )
    return {
        "group": g["name"],
        "facts": facts,
        "suggest": {"processes": suggested, "threads": new_threads},
        "text": f"{g['name']}: {reason}; suggest {suggestion}",
    }


def advise(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Advice for every group."""
    return [advise_group(g) for g in doc["groups"].values()]
