"""Adaptive pool size: when a group with `processes: {min, max}` grows or shrinks (master).

A pure decision, fed once per master tick with what the scoreboard shows; the master acts on it.
It grows by one worker while the group's queue stays non-empty or every thread stays busy for
`grow_after` seconds, and shrinks by one idle worker after `idle_timeout` seconds of spare
capacity (no backlog and at least one whole worker's threads idle). Any change restarts both
clocks and a shrink never follows a change within `idle_timeout`: hysteresis against flapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from groupserver.config.lifecycle import ProcessRange


@dataclass
class Load:
    """A group's load at one instant."""

    workers: int  # ready workers not retiring
    threads: int  # threads per worker
    busy: int  # busy threads across the group
    backlog: int  # connections waiting in the group's queue


@dataclass
class GroupScaler:
    """The grow/shrink clocks of one adaptive group."""

    policy: ProcessRange
    pressure_since: float | None = None
    spare_since: float | None = None
    last_change: float = 0.0

    def decide(self, load: Load, now: float) -> tuple[int, str]:
        """Return (+1, reason), (-1, reason) or (0, "")."""
        capacity = load.workers * load.threads
        pressed = load.backlog > 0 or (capacity > 0 and load.busy >= capacity)
        spare = load.backlog == 0 and capacity - load.busy >= load.threads
        self.pressure_since = (self.pressure_since or now) if pressed else None
        self.spare_since = (self.spare_since or now) if spare else None
        policy = self.policy
        if load.workers < policy.min:
            return 0, ""  # the master is already refilling to min
        if (
            self.pressure_since is not None
            and now - self.pressure_since >= policy.grow_after
            and load.workers < policy.max
        ):
            self.restart(now)
            why = f"backlog {load.backlog}" if load.backlog else f"all {capacity} threads busy"
            return 1, f"{why} for {policy.grow_after:g}s"
        if (
            self.spare_since is not None
            and now - self.spare_since >= policy.idle_timeout
            and now - self.last_change >= policy.idle_timeout
            and load.workers > policy.min
        ):
            self.restart(now)
            return -1, (
                f"{capacity - load.busy} of {capacity} threads idle and no backlog "
                f"for {policy.idle_timeout:g}s"
            )
        return 0, ""

    def restart(self, now: float) -> None:
        """The size changed (here, or from outside: ctl scale, TTIN, TTOU): start both clocks
        again, so that no shrink follows within idle_timeout."""
        self.last_change = now
        self.pressure_since = None
        self.spare_since = None
