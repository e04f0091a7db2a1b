"""Build the stats document (JSON-ready dict) from the master's state and the scoreboard.

The master calls `GroupTracker.tick()` a few times a second to keep rates, peaks and maxima, and
`collect()` when someone asks for /stats, /metrics or `groupserver status`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from groupserver.scoreboard import BUCKETS, STATE_NAMES, Slot, accumulate
from groupserver.stats.procstat import ProcSample, rates

WINDOW = 10.0  # seconds over which rates are computed


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of a bucketed histogram, interpolated inside the bucket."""
    total = sum(hist)
    if not total:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for i, count in enumerate(hist):
        upper = BUCKETS[i] if i < len(BUCKETS) else BUCKETS[-1] * 2
        if count and seen + count >= rank:
            return round(lower + (upper - lower) * (rank - seen) / count, 6)
        seen += count
        lower = upper
    return BUCKETS[-1]


@dataclass
class GroupTracker:
    """Rates and peaks of one group, sampled by the master."""

    history: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, requests, busy_s)
    available_seconds: float = 0.0  # thread-seconds of ready workers
    last_tick: float | None = None
    peak_busy: int = 0
    backlog_max: int = 0
    first_tick: float | None = None
    first_busy_seconds: float = 0.0
    busy_seconds_now: float = 0.0

    def tick(
        self, now: float, requests: int, busy_seconds: float, busy: int, capacity: int, backlog: int
    ) -> None:
        """Record one sample of the group's counters."""
        if self.last_tick is not None:
            self.available_seconds += capacity * (now - self.last_tick)
        self.last_tick = now
        self.history.append((now, requests, busy_seconds, self.available_seconds))
        if self.first_tick is None:
            self.first_tick, self.first_busy_seconds = now, busy_seconds
        self.busy_seconds_now = busy_seconds
        self.peak_busy = max(self.peak_busy, busy)
        self.backlog_max = max(self.backlog_max, backlog)

    def mean_busy(self) -> float:
        """Average threads busy since the tracker started (busy thread-seconds per second)."""
        if self.first_tick is None or self.last_tick is None or self.last_tick <= self.first_tick:
            return 0.0
        span = self.last_tick - self.first_tick
        return (self.busy_seconds_now - self.first_busy_seconds) / span

    def rate(self) -> tuple[float, float]:
        """(requests per second, capacity utilisation) over the last WINDOW seconds."""
        if len(self.history) < 2:
            return 0.0, 0.0
        newest = self.history[-1]
        oldest = next((h for h in self.history if newest[0] - h[0] <= WINDOW), self.history[0])
        dt = newest[0] - oldest[0]
        if dt <= 0:
            return 0.0, 0.0
        rps = (newest[1] - oldest[1]) / dt
        available = newest[3] - oldest[3]
        utilisation = (newest[2] - oldest[2]) / available if available > 0 else 0.0
        return round(rps, 2), round(min(utilisation, 1.0), 4)


def group_totals(total: Slot, slots: list[Slot]) -> Slot:
    """Counters of a group: its finished workers' totals plus every live worker's."""
    agg = Slot()
    accumulate(agg, total)
    for slot in slots:
        accumulate(agg, slot)
    return agg


def merge_memory_rows(into: dict[str, list[int]], slot: Slot) -> None:
    """Add a worker's per-path RSS growth rows to a {path: [count, max, total]} table."""
    for row in slot.mem_urls:
        if not row.count:
            continue
        entry = into.setdefault(row.path.decode("latin-1"), [0, 0, 0])
        entry[0] += row.count
        entry[1] = max(entry[1], row.max_growth)
        entry[2] += row.total_growth


def memory_by_url(
    slots: list[Slot], limit: int, finished: dict[str, list[int]] | None = None
) -> list[dict[str, Any]]:
    """Merge the live workers' per-path RSS growth with that of finished ones; largest first."""
    merged: dict[str, list[int]] = {k: list(v) for k, v in (finished or {}).items()}
    for slot in slots:
        merge_memory_rows(merged, slot)
    ranked = sorted(merged.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    return [
        {"path": path, "count": c, "max_growth_bytes": m, "total_growth_bytes": t}
        for path, (c, m, t) in ranked
    ]


def worker_row(
    slot: Slot, reason: str, old: ProcSample | None, new: ProcSample | None, now: float
) -> dict[str, Any]:
    """One worker as the stats show it."""
    row: dict[str, Any] = {
        "pid": slot.pid,
        "state": STATE_NAMES.get(slot.state, "?"),
        "generation": slot.generation,
        "requests": slot.requests,
        "threads": slot.threads,
        "busy_threads": slot.busy,
        "peak_busy_threads": slot.peak_busy,
        "concurrency": slot.concurrency,
        "connections": slot.conns,
        "rss_bytes": slot.rss,
        "uss_bytes": slot.uss,
        "pss_bytes": slot.pss,
        "age_seconds": round(now - slot.started, 1) if slot.started else 0.0,
        "retire_reason": reason or None,
        "current_request": None,
    }
    if slot.busy and slot.current_start:
        row["current_request"] = {
            "url": slot.url.decode("latin-1"),
            "age_seconds": round(max(0.0, now - slot.current_start), 3),
        }
    row.update(rates(old, new))
    return row


def group_document(
    name: str,
    cfg: Any,
    totals: Slot,
    tracker: GroupTracker,
    workers: list[dict[str, Any]],
    backlog: int,
    restarts: dict[str, int],
    recent: list[dict[str, Any]],
    urls: list[dict[str, Any]],
    failing: bool,
    wanted: int,
) -> dict[str, Any]:
    """The stats of one group."""
    rps, utilisation = tracker.rate()
    # Busy: every request running, on a retiring worker too. Idle: the free threads of the
    # workers that take work.
    busy = sum(w["busy_threads"] for w in workers)
    ready = [w for w in workers if w["state"] == "ready"]
    idle = sum(w["threads"] - w["busy_threads"] for w in ready)
    app_hist, queue_hist = list(totals.app_hist), list(totals.queue_hist)
    return {
        "name": name,
        "processes": {"min": cfg.min_processes, "max": cfg.max_processes},
        "processes_wanted": wanted,
        "threads_per_process": cfg.threads,
        "failing": failing,
        "requests_total": totals.requests,
        "requests_per_second": rps,
        "responses": {f"{k}xx": totals.status[k] for k in range(1, 6)}
        | {"failed": totals.status[0]},
        "latency_seconds": {
            "app": {
                "p50": percentile(app_hist, 0.5),
                "p90": percentile(app_hist, 0.9),
                "p99": percentile(app_hist, 0.99),
                "mean": round(totals.app_seconds / totals.requests, 6) if totals.requests else None,
                "buckets": app_hist,
            },
            "queue": {
                "p50": percentile(queue_hist, 0.5),
                "p90": percentile(queue_hist, 0.9),
                "p99": percentile(queue_hist, 0.99),
                "mean": round(totals.queue_seconds / totals.requests, 6)
                if totals.requests
                else None,
                "buckets": queue_hist,
            },
        },
        "bucket_bounds_seconds": list(BUCKETS),
        "busy_threads": busy,
        "idle_threads": max(0, idle),
        "capacity_utilisation": utilisation,
        "concurrency": {
            "peak": max(
                tracker.peak_busy, max((w["peak_busy_threads"] for w in workers), default=0)
            ),
            "mean": round(tracker.mean_busy(), 3),
        },
        "backlog": backlog,
        "backlog_max": tracker.backlog_max,
        "idle_connections_closed": totals.evicted,
        "shed": {
            "queue_timeout": totals.shed_queue,
            "limits": totals.shed_limits,
            "unavailable": totals.shed_unavailable,
        },
        "restarts": dict(restarts),
        "recent_recycles": recent,
        "memory_by_url": urls,
        "workers": workers,
    }
