"""The host memory governor (master): keep the whole site under its memory ceiling.

After Instagram's design for their uWSGI fleet: instead of a fixed limit per worker, watch memory
use as a fraction of what the host (or our cgroup, or a configured budget) allows. Above the lower
bound, gracefully recycle the workers with the most private memory (USS: what their exit gives
back), more of them the closer use gets to the upper bound; above the upper bound, after a short
mercy, kill the largest at once. `MemoryMeter` measures; `MemoryGovernor.decide` is a pure
function of the measurement and the candidates, so its policy is tested without processes.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field

from groupserver.config.monitoring import GovernorConfig

CGROUP_ROOT = "/sys/fs/cgroup"
WORTHWHILE_SHARE = 0.05  # of the largest worker's USS


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def own_cgroup_dir(root: str | None = None) -> str | None:
    """The cgroup v2 directory of this process, or None without a unified hierarchy.

    Looks under /sys/fs/cgroup (cgroup v2 hosts) and /sys/fs/cgroup/unified (hybrid hosts).
    """
    text = _read("/proc/self/cgroup")
    if text is None:
        return None
    roots = [root] if root else [CGROUP_ROOT, os.path.join(CGROUP_ROOT, "unified")]
    for line in text.splitlines():
        if line.startswith("0::"):
            for base in roots:
                path = os.path.join(base, line[3:].lstrip("/"))
                if os.path.exists(os.path.join(path, "memory.current")):
                    return path
    return None


def cgroup_limit(directory: str) -> int | None:
    """memory.max of a cgroup, else memory.high; None when neither is set ("max")."""
    for name in ("memory.max", "memory.high"):
        value = _read(os.path.join(directory, name))
        if value and value != "max":
            return int(value)
    return None


@dataclass
class Reading:
    """Memory in use and the ceiling it is measured against, in bytes."""

    used: int
    limit: int
    source: str

    @property
    def fraction(self) -> float:
        """Use as a fraction of the ceiling."""
        return self.used / self.limit if self.limit else 0.0


class MemoryMeter:
    """Measures memory use by the configured source (host, cgroup, or budget)."""

    def __init__(self, config: GovernorConfig, cgroup_dir: str | None = None) -> None:
        self.config = config
        self.source = config.source
        self.cgroup_dir = cgroup_dir
        if self.source in ("auto", "cgroup"):
            self.cgroup_dir = cgroup_dir or own_cgroup_dir()
            limited = self.cgroup_dir is not None and cgroup_limit(self.cgroup_dir) is not None
            if self.source == "auto":
                self.source = "cgroup" if limited else "host"

    def read(self, site_pss: int) -> Reading | None:
        """One measurement; site_pss is the summed PSS of the site's processes."""
        if self.source == "budget":
            assert self.config.budget is not None
            return Reading(site_pss, self.config.budget, "budget")
        if self.source == "cgroup":
            if self.cgroup_dir is None:
                return None
            current = _read(os.path.join(self.cgroup_dir, "memory.current"))
            limit = cgroup_limit(self.cgroup_dir)
            if current is None or limit is None:
                return None
            return Reading(int(current), limit, "cgroup")
        meminfo = _read("/proc/meminfo") or ""
        values = {}
        for line in meminfo.splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                values[name] = int(rest.split()[0]) * 1024
        if "MemTotal" not in values or "MemAvailable" not in values:
            return None
        return Reading(values["MemTotal"] - values["MemAvailable"], values["MemTotal"], "host")


@dataclass(frozen=True)
class Candidate:
    """A worker the governor may pick."""

    pid: int
    group: str
    uss: int
    priority: int
    retiring: bool


@dataclass(frozen=True)
class Decision:
    """One action: recycle (graceful, after the current request) or kill (now)."""

    pid: int
    group: str
    uss: int
    action: str  # "recycle" | "kill"
    reason: str


@dataclass
class MemoryGovernor:
    """The policy: which workers to recycle or kill at a given memory use."""

    config: GovernorConfig
    above_upper_since: float | None = None
    decisions: Counter = field(default_factory=Counter)

    def wanted(self, fraction: float, eligible: int) -> int:
        """How many workers to recycle at this use: quadratic in the way from lower to upper."""
        lower, upper = self.config.lower, self.config.upper
        if fraction < lower or eligible == 0:
            return 0
        pressure = min(1.0, (fraction - lower) / (upper - lower))
        return max(1, math.ceil(eligible * pressure**2))

    def decide(
        self,
        fraction: float,
        candidates: list[Candidate],
        now: float,
        excess: int | None = None,
    ) -> list[Decision]:
        """The decisions for one interval.

        ``excess`` (bytes above the lower bound), when given, also ends the recycling once the
        picked workers' USS covers it. A worker is worth recycling only if its USS is at least a
        twentieth of the largest worker's: recycling small (often freshly started) workers gives
        nothing back and would only churn processes.
        """
        config = self.config
        if fraction < config.upper:
            self.above_upper_since = None
        if fraction < config.lower or not candidates:
            return []
        live = Counter(c.group for c in candidates if not c.retiring)
        worthwhile = max(c.uss for c in candidates) * WORTHWHILE_SHARE
        order = sorted(
            (c for c in candidates if not c.retiring and c.uss >= worthwhile),
            key=lambda c: (-c.priority, -c.uss),
        )
        out: list[Decision] = []
        if fraction >= config.upper:
            if self.above_upper_since is None:
                self.above_upper_since = now
            if now - self.above_upper_since >= config.mercy:
                # the largest, even one already flagged for recycling: it is still in a request
                # and still holds its memory
                victim = max(candidates, key=lambda c: c.uss)
                out.append(Decision(victim.pid, victim.group, victim.uss, "kill", "governor_kill"))
                if not victim.retiring:
                    live[victim.group] -= 1
                if victim in order:
                    order.remove(victim)
                self.above_upper_since = now  # the next kill gets its own mercy
        budget = self.wanted(fraction, len(order))
        reclaimed = sum(d.uss for d in out)
        per_group: Counter = Counter()
        for candidate in order:
            if budget <= 0 or (excess is not None and reclaimed >= excess):
                break
            if per_group[candidate.group] >= config.max_recycles_per_group:
                continue
            if live[candidate.group] <= 1 and fraction < config.upper:
                continue  # the last worker of a group goes only above upper
            out.append(
                Decision(candidate.pid, candidate.group, candidate.uss, "recycle", "governor")
            )
            per_group[candidate.group] += 1
            live[candidate.group] -= 1
            reclaimed += candidate.uss
            budget -= 1
        for decision in out:
            self.decisions[decision.reason] += 1
        return out
