"""The memory governor's policy and its meter, without processes (issue 5).

`MemoryGovernor.decide` is a pure function of the use fraction, the candidate workers and the
time, so every rule of the spec is checked here on hand-made candidates: nothing below `lower`,
a quadratic number of recycles between `lower` and `upper`, never a retiring worker, the
per-group cap per interval, the last worker of a group only above `upper`, `memory_priority`
then USS order, and kills only after `mercy` seconds above `upper`, one per mercy period.
`MemoryMeter` is checked in budget mode, host mode (the real /proc/meminfo) and cgroup mode
(a fake cgroup v2 directory in tmp_path).
"""

from __future__ import annotations

import math
from pathlib import Path

import psutil
import pytest

from groupserver.config.monitoring import GovernorConfig
from groupserver.governor import (
    Candidate,
    MemoryGovernor,
    MemoryMeter,
    Reading,
    cgroup_limit,
    own_cgroup_dir,
)

MiB = 1 << 20


def governor(**options) -> MemoryGovernor:
    """A governor with lower 0.8, upper 0.95 and a long mercy unless told otherwise."""
    config = {"enabled": True, "lower": 0.8, "upper": 0.95, "mercy": 2.0}
    config.update(options)
    return MemoryGovernor(GovernorConfig(**config))


def worker(pid: int, group: str = "main", uss_mb: int = 10, priority: int = 0, retiring=False):
    return Candidate(pid, group, uss_mb * MiB, priority, retiring)


def pool(n: int, group: str = "main", priority: int = 0, first_pid: int = 100) -> list[Candidate]:
    """n workers of one group; pid first_pid + i has USS (i + 1) * 10 MiB."""
    return [worker(first_pid + i, group, (i + 1) * 10, priority) for i in range(n)]


def pids(decisions) -> list[int]:
    return [d.pid for d in decisions]


# -- how many: nothing below lower, quadratic between lower and upper -----------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.79, 0.7999])
def test_nothing_happens_below_lower(fraction):
    gov = governor()
    assert gov.wanted(fraction, 10) == 0
    assert gov.decide(fraction, pool(10), now=0.0) == []
    assert gov.decisions == {}


# n = ceil(eligible * ((use - lower) / (upper - lower)) ** 2), at least 1 from lower on, with
# lower 0.80 and upper 0.95. For 10 candidates:
#   80%  -> pressure 0      -> max(1, 0)            = 1   (crossing lower always does something)
#   85%  -> pressure 1/3    -> ceil(10 * 0.111)     = 2
#   87.5% -> pressure 1/2   -> ceil(10 * 0.25)      = 3
#   90%  -> pressure 2/3    -> ceil(10 * 0.444)     = 5
#   94%  -> pressure 14/15  -> ceil(10 * 0.871)     = 9
#   95%+ -> pressure 1 (clamped)                    = 10
# and for 100 candidates 12, 25, 45, 57 (91.25%: pressure 3/4 -> 56.25), 88, 100: the count
# grows with the square of the pressure (a quarter of the way -> 1/16 of the workers, half way
# -> 1/4, three quarters -> 9/16), gentle just above lower and nearly everyone near upper.
WANTED = [
    (0.80, 10, 1),
    (0.81, 10, 1),
    (0.85, 10, 2),
    (0.875, 10, 3),
    (0.90, 10, 5),
    (0.94, 10, 9),
    (0.95, 10, 10),
    (0.99, 10, 10),
    (1.50, 10, 10),
    (0.85, 100, 12),
    (0.875, 100, 25),
    (0.90, 100, 45),
    (0.9125, 100, 57),
    (0.94, 100, 88),
    (0.95, 100, 100),
    (0.90, 0, 0),
    (0.99, 0, 0),
]


@pytest.mark.parametrize(("fraction", "eligible", "expected"), WANTED)
def test_wanted_grows_quadratically_between_lower_and_upper(fraction, eligible, expected):
    assert governor().wanted(fraction, eligible) == expected


def test_wanted_follows_the_documented_formula_and_never_decreases():
    gov = governor(lower=0.6, upper=0.9)
    previous = 0
    for step in range(0, 301):
        fraction = 0.6 + step * 0.001
        pressure = min(1.0, (fraction - 0.6) / (0.9 - 0.6))
        got = gov.wanted(fraction, 40)
        assert got == max(1, math.ceil(40 * pressure**2)), fraction
        assert got >= previous
        previous = got
    assert previous == 40


@pytest.mark.parametrize(("fraction", "expected"), [(0.85, 2), (0.90, 5), (0.94, 9)])
def test_decide_recycles_the_wanted_number_largest_uss_first(fraction, expected):
    gov = governor(max_recycles_per_group=10)
    candidates = pool(10)  # USS 10..100 MiB, pids 100..109
    decisions = gov.decide(fraction, candidates, now=0.0)
    assert len(decisions) == expected
    assert pids(decisions) == [109 - i for i in range(expected)]  # largest first
    assert all(d.action == "recycle" and d.reason == "governor" for d in decisions)
    assert [d.uss for d in decisions] == [(100 - 10 * i) * MiB for i in range(expected)]
    assert gov.decisions == {"governor": expected}


# -- safety ---------------------------------------------------------------------------------------


def test_never_picks_a_retiring_worker_and_does_not_count_it_as_eligible():
    gov = governor(max_recycles_per_group=10)
    candidates = pool(10)
    # the three largest are already on their way out (recycling, max_requests, ...)
    candidates = [
        worker(c.pid, c.group, c.uss // MiB, retiring=True) if c.pid >= 107 else c
        for c in candidates
    ]
    decisions = gov.decide(0.90, candidates, now=0.0)
    # 7 eligible at pressure 2/3: ceil(7 * 4/9) = 4, the largest of the non-retiring ones
    assert pids(decisions) == [106, 105, 104, 103]
    assert not set(pids(decisions)) & {107, 108, 109}


def test_everyone_retiring_above_upper_kills_the_largest_after_mercy():
    # retiring workers are never recycled again, but one still in its request holds its memory:
    # past upper and mercy, the largest is killed (never a smaller bystander)
    gov = governor(mercy=0)
    candidates = [worker(1, uss_mb=500, retiring=True), worker(2, uss_mb=400, retiring=True)]
    assert [(d.pid, d.action) for d in gov.decide(0.99, candidates, now=10.0)] == [(1, "kill")]
    assert gov.decide(0.90, candidates, now=11.0) == []  # below upper: nothing to do


def test_per_group_cap_holds_within_one_interval():
    gov = governor(max_recycles_per_group=1)
    candidates = pool(5, "a", first_pid=100) + pool(5, "b", first_pid=200)
    decisions = gov.decide(0.94, candidates, now=0.0)  # ceil(10 * 0.871) = 9 wanted
    assert [(d.group, d.pid) for d in decisions] == [("a", 104), ("b", 204)]


def test_per_group_cap_of_two():
    gov = governor(max_recycles_per_group=2)
    candidates = pool(5, "a", first_pid=100) + pool(5, "b", first_pid=200)
    decisions = gov.decide(0.94, candidates, now=0.0)
    assert sorted(pids(decisions)) == [103, 104, 203, 204]


def test_the_cap_is_per_interval_the_next_round_takes_the_next_one():
    gov = governor(max_recycles_per_group=1)
    candidates = pool(4, "big")
    first = gov.decide(0.94, candidates, now=0.0)
    assert pids(first) == [103]
    # next interval: the master has flagged 103, so it comes back as retiring
    candidates = [worker(c.pid, c.group, c.uss // MiB, retiring=c.pid == 103) for c in candidates]
    second = gov.decide(0.94, candidates, now=1.0)
    assert pids(second) == [102]


def test_the_last_worker_of_a_group_goes_only_above_upper():
    gov = governor(mercy=60)  # no kill in this test
    candidates = [worker(1, "solo", uss_mb=500), *pool(3, "main", first_pid=10)]
    between = gov.decide(0.94, candidates, now=0.0)
    assert 1 not in pids(between)  # the largest, but its group's only worker
    assert pids(between) == [12]  # main: 1 per interval, and main keeps two
    above = gov.decide(0.96, candidates, now=1.0)
    assert 1 in pids(above)
    assert all(d.action == "recycle" for d in above)


def test_a_group_whose_other_worker_is_retiring_keeps_its_last_one_below_upper():
    gov = governor(max_recycles_per_group=5)
    candidates = [worker(1, "admin", 300), worker(2, "admin", 200, retiring=True)]
    assert gov.decide(0.94, candidates, now=0.0) == []
    assert pids(gov.decide(0.95, candidates, now=0.0)) == [1]


def test_a_group_is_never_emptied_below_upper_even_with_a_large_cap():
    gov = governor(max_recycles_per_group=10)
    decisions = gov.decide(0.949, pool(3, "main"), now=0.0)  # wants all 3
    assert pids(decisions) == [102, 101]  # the smallest stays


# -- who goes first -------------------------------------------------------------------------------


def test_memory_priority_first_then_uss():
    gov = governor(max_recycles_per_group=10)
    candidates = [
        worker(1, "volume", uss_mb=400, priority=0),
        worker(2, "volume", uss_mb=300, priority=0),
        worker(3, "admin", uss_mb=50, priority=10),
        worker(4, "admin", uss_mb=80, priority=10),
        worker(5, "admin", uss_mb=20, priority=10),
        worker(6, "batch", uss_mb=900, priority=-5),
        worker(7, "batch", uss_mb=10, priority=-5),
    ]
    order = pids(gov.decide(0.95 - 1e-9, candidates, now=0.0))
    # all 7 wanted; the last worker of each group stays (below upper)
    assert order == [4, 3, 1, 6]


def test_just_above_lower_the_one_recycle_goes_to_the_higher_priority_group():
    gov = governor()
    candidates = [
        worker(1, "volume", uss_mb=400),
        worker(2, "volume", uss_mb=300),
        worker(3, "admin", uss_mb=60, priority=10),
        worker(4, "admin", uss_mb=50, priority=10),
    ]
    decisions = gov.decide(0.81, candidates, now=0.0)
    assert [(d.group, d.pid) for d in decisions] == [("admin", 3)]


# -- kills above upper ----------------------------------------------------------------------------


def test_kill_only_after_mercy_seconds_above_upper_and_one_per_mercy_period():
    gov = governor(mercy=2.0, max_recycles_per_group=1)
    candidates = [worker(1, "a", 500), worker(2, "b", 400), worker(3, "c", 300)]

    def kills(fraction, now):
        return [d.pid for d in gov.decide(fraction, candidates, now) if d.action == "kill"]

    assert kills(0.97, 0.0) == []  # above upper since 0: recycles only
    assert kills(0.97, 1.0) == []
    assert kills(0.97, 1.99) == []
    assert kills(0.97, 2.0) == [1]  # 2 s of mercy are over: the largest goes at once
    assert kills(0.97, 2.5) == []  # the next kill gets its own mercy
    assert kills(0.97, 3.9) == []
    assert kills(0.97, 4.0) == [1]  # (the candidates are fixed here, so the same pid again)
    assert kills(0.90, 5.0) == []  # back under upper: the clock resets
    assert kills(0.97, 5.5) == []
    assert kills(0.97, 7.0) == []
    assert kills(0.97, 7.5) == [1]
    assert gov.decisions["governor_kill"] == 3


def test_mercy_zero_kills_in_the_first_round_above_upper():
    gov = governor(mercy=0)
    decisions = gov.decide(0.96, [worker(1, "a", 50), worker(2, "a", 70)], now=3.0)
    assert [(d.pid, d.action, d.reason) for d in decisions][0] == (2, "kill", "governor_kill")


def test_kill_takes_the_largest_uss_whatever_the_priority_and_is_not_also_recycled():
    gov = governor(mercy=0, max_recycles_per_group=10)
    candidates = [
        worker(1, "admin", 100, priority=10),
        worker(2, "admin", 90, priority=10),
        worker(3, "volume", 700),
        worker(4, "volume", 20),
    ]
    decisions = gov.decide(0.99, candidates, now=0.0)
    assert (decisions[0].pid, decisions[0].action) == (3, "kill")
    recycled = [d.pid for d in decisions if d.action == "recycle"]
    assert 3 not in recycled
    # above upper every other candidate is wanted, priority order, the cap is per group;
    # 4 (20 MiB) is below 5% of the largest worker's USS: recycling it would give nothing back
    assert recycled == [1, 2]
    assert gov.decisions == {"governor_kill": 1, "governor": 2}


def test_the_upper_bound_may_take_the_last_worker_of_a_group():
    gov = governor(mercy=0)
    decisions = gov.decide(0.97, [worker(1, "solo", 300)], now=0.0)
    assert [(d.pid, d.action) for d in decisions] == [(1, "kill")]


def test_the_kill_after_mercy_takes_the_largest_worker_even_if_it_is_already_recycling():
    gov = governor(mercy=1.0, max_recycles_per_group=1)
    hog = worker(1, "reports", 800)
    others = [worker(2, "web", 20), worker(3, "web", 20), worker(4, "reports", 10)]
    first = gov.decide(0.99, [hog, *others], now=0.0)
    # flagged for a graceful recycle, but its request goes on; the 20 MiB web workers are below
    # 5% of it, so they are not worth recycling
    assert pids(first) == [1]
    flagged = [worker(1, "reports", 800, retiring=True)]
    decisions = gov.decide(0.99, [*flagged, *others], now=1.0)
    kills = [d.pid for d in decisions if d.action == "kill"]
    assert kills == [1]  # not a 20 MiB web worker while the 800 MiB one lives on


def test_workers_with_nothing_to_give_back_are_not_recycled_in_place_of_the_big_one():
    gov = governor(lower=0.5, upper=0.95)
    candidates = [
        worker(1, "admin", 156, priority=10),  # the only live admin worker: protected
        worker(2, "admin", 150, priority=10, retiring=True),  # recycled last round
        worker(10, "main", 6),
        worker(11, "main", 6),
        worker(12, "main", 5),
    ]
    decisions = gov.decide(0.525, candidates, now=0.0)  # 202 MiB of 384 MiB, lower 192 MiB
    assert [d.pid for d in decisions if d.group == "main"] == []  # today: [10]


def test_decisions_are_counted_by_reason():
    gov = governor(mercy=0, max_recycles_per_group=1)
    gov.decide(0.85, pool(4, "a"), now=0.0)
    gov.decide(0.96, pool(4, "b"), now=1.0)
    assert gov.decisions == {"governor": 2, "governor_kill": 1}


# -- the meter ------------------------------------------------------------------------------------


def test_budget_meter_measures_the_site_pss_against_the_budget():
    meter = MemoryMeter(GovernorConfig(enabled=True, source="budget", budget="200M"))
    assert meter.source == "budget"
    reading = meter.read(150 * MiB)
    assert reading == Reading(150 * MiB, 200 * MiB, "budget")
    assert reading.fraction == 0.75
    assert meter.read(0).fraction == 0.0


def test_reading_with_no_limit_is_zero_not_a_division_error():
    assert Reading(100, 0, "cgroup").fraction == 0.0


def _meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values


def test_host_meter_reads_proc_meminfo():
    meter = MemoryMeter(GovernorConfig(enabled=True, source="host"))
    assert meter.source == "host"
    reading = meter.read(123)  # the site's PSS plays no part
    assert reading is not None and reading.source == "host"
    info = _meminfo()
    assert reading.limit == info["MemTotal"] == psutil.virtual_memory().total
    assert 0 < reading.used < reading.limit
    assert 0.0 < reading.fraction < 1.0
    expected = (info["MemTotal"] - info["MemAvailable"]) / info["MemTotal"]
    assert abs(reading.fraction - expected) < 0.05  # memory moves a little between the reads


def fake_cgroup(directory: Path, current: int | str, high="max", limit="max") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memory.current").write_text(f"{current}\n")
    (directory / "memory.max").write_text(f"{limit}\n")
    (directory / "memory.high").write_text(f"{high}\n")
    return directory


def test_cgroup_meter_uses_memory_current_against_memory_max(tmp_path):
    cg = fake_cgroup(tmp_path / "site.slice", 300 * MiB, limit=400 * MiB)
    meter = MemoryMeter(GovernorConfig(enabled=True, source="cgroup"), cgroup_dir=str(cg))
    assert meter.source == "cgroup"
    assert meter.read(1) == Reading(300 * MiB, 400 * MiB, "cgroup")
    assert meter.read(1).fraction == 0.75
    (cg / "memory.current").write_text(f"{380 * MiB}\n")  # every read is a fresh one
    assert meter.read(1).fraction == 0.95


def test_cgroup_meter_falls_back_to_memory_high_when_memory_max_is_max(tmp_path):
    cg = fake_cgroup(tmp_path / "cg", 100 * MiB, high=250 * MiB, limit="max")
    assert cgroup_limit(str(cg)) == 250 * MiB
    meter = MemoryMeter(GovernorConfig(enabled=True, source="cgroup"), cgroup_dir=str(cg))
    assert meter.read(0) == Reading(100 * MiB, 250 * MiB, "cgroup")


def test_memory_max_wins_over_memory_high(tmp_path):
    cg = fake_cgroup(tmp_path / "cg", 100 * MiB, high=150 * MiB, limit=200 * MiB)
    assert cgroup_limit(str(cg)) == 200 * MiB


def test_cgroup_without_a_limit_gives_no_reading_and_auto_chooses_host(tmp_path):
    cg = fake_cgroup(tmp_path / "cg", 100 * MiB)  # memory.max and memory.high both "max"
    assert cgroup_limit(str(cg)) is None
    cgroup = MemoryMeter(GovernorConfig(enabled=True, source="cgroup"), cgroup_dir=str(cg))
    assert cgroup.source == "cgroup" and cgroup.read(0) is None
    auto = MemoryMeter(GovernorConfig(enabled=True, source="auto"), cgroup_dir=str(cg))
    assert auto.source == "host"
    assert auto.read(0).source == "host"


def test_auto_chooses_cgroup_inside_a_limited_cgroup(tmp_path):
    cg = fake_cgroup(tmp_path / "cg", 64 * MiB, limit=256 * MiB)
    meter = MemoryMeter(GovernorConfig(enabled=True, source="auto"), cgroup_dir=str(cg))
    assert meter.source == "cgroup"
    assert meter.read(0).fraction == 0.25


def test_cgroup_files_gone_give_no_reading(tmp_path):
    cg = fake_cgroup(tmp_path / "cg", 64 * MiB, limit=256 * MiB)
    meter = MemoryMeter(GovernorConfig(enabled=True, source="cgroup"), cgroup_dir=str(cg))
    (cg / "memory.current").unlink()
    assert meter.read(0) is None


def test_own_cgroup_dir_follows_proc_self_cgroup(tmp_path):
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    unified = [line[3:] for line in lines if line.startswith("0::")]
    if not unified:
        pytest.skip("no cgroup v2 line (0::) in /proc/self/cgroup on this host")
    mine = tmp_path / unified[0].lstrip("/")
    assert own_cgroup_dir(str(tmp_path)) is None  # no memory.current there yet
    fake_cgroup(mine, 1)
    assert Path(own_cgroup_dir(str(tmp_path))) == mine
