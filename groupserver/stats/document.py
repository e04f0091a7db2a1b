"""The master's view of the whole site as one stats document (for /stats, /metrics, status)."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from groupserver.stats.collect import (
    GroupTracker,
    group_document,
    group_totals,
    memory_by_url,
    worker_row,
)
from groupserver.stats.procstat import ProcSample, sample_process

if TYPE_CHECKING:
    from groupserver.master import Master


class SiteStats:
    """Samples the scoreboard and /proc for the master and builds the stats document."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.trackers: dict[str, GroupTracker] = {}
        self.proc: dict[int, tuple[ProcSample | None, ProcSample | None]] = {}
        self.next_tick = 0.0
        self.next_proc = 0.0
        self.started = time.time()

    def tick(self, now: float) -> None:
        """Sample counters (4 times a second) and process CPU/context switches (every second)."""
        if now < self.next_tick:
            return
        self.next_tick = now + 0.25
        master = self.master
        for name, cfg in master.config.groups.items():
            # Only what the tracker needs: a group_totals() Slot per tick allocated a ctypes row
            # and walked every field, and what the master writes after a fork lands in its
            # workers' USS too (with tcp_listeners: idle hello worker 3,228 -> 3,156 KiB).
            totals = master.groups[name].totals
            requests, busy_seconds = totals.requests, totals.busy_seconds
            busy = ready = 0
            for child in master.workers_of(name):
                slot = master.scoreboard[child.slot]
                requests += slot.requests
                busy_seconds += slot.busy_seconds
                busy += slot.busy
                if child.ready and not child.retiring:
                    ready += 1
            tracker = self.trackers.setdefault(name, GroupTracker())
            tracker.tick(
                now, requests, busy_seconds, busy, ready * cfg.threads, master.backlog(name)
            )
        if now >= self.next_proc:
            self.next_proc = now + 1.0
            live = set()
            for child in master.children.values():
                if child.pid > 0:
                    live.add(child.pid)
                    old = self.proc.get(child.pid, (None, None))[1]
                    self.proc[child.pid] = (old, sample_process(child.pid, now))
            for pid in list(self.proc):
                if pid not in live:
                    del self.proc[pid]

    def document(self) -> dict[str, Any]:
        """The whole stats document."""
        master = self.master
        now = time.time()
        groups = {}
        for name, cfg in master.config.groups.items():
            state = master.groups[name]
            workers = master.workers_of(name)
            slots = [master.scoreboard[c.slot] for c in workers]
            rows = []
            for child, slot in zip(workers, slots, strict=True):
                old, new = self.proc.get(child.pid, (None, None))
                rows.append(worker_row(slot, child.reason if child.retiring else "", old, new, now))
            groups[name] = group_document(
                name,
                cfg,
                group_totals(state.totals, slots),
                self.trackers.setdefault(name, GroupTracker()),
                rows,
                master.backlog(name),
                dict(state.restarts),
                list(state.recent),
                memory_by_url(slots, master.config.stats.top_urls, state.memory_by_url),
                master.group_failing(name),
                master.wanted_processes(name),
            )
        return {
            "site": master.config.site,
            "pid": os.getpid(),
            "generation": master.generation,
            "uptime_seconds": round(now - self.started, 1),
            "time": now,
            "front": {
                "shed_limits": master.front_count("shed_limits"),
                "idle_connections_closed": master.front_count("evicted"),
            },
            "memory_governor": master.governor_state(),
            "groups": groups,
        }

    def json(self) -> bytes:
        """The document as JSON bytes."""
        return json.dumps(self.document(), indent=1).encode()
