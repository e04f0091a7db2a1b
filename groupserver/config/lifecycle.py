"""Per-group process lifecycle options: recycling, timeouts, memory limits, pool size."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from groupserver.config.limits import Seconds, Size

_Int = Annotated[int, Strict()]


class ProcessRange(BaseModel):
    """An adaptive pool: `processes: {min: 1, max: 4, idle_timeout: 30}`.

    The group grows by one worker while its queue stays non-empty or all its threads stay busy
    for `grow_after` seconds, and shrinks by retiring one idle worker after `idle_timeout`
    seconds in which the group never needed it (no backlog and spare capacity of at least one
    whole worker); a grow and a shrink are never closer than `idle_timeout` apart, so it does not
    flap.
    """

    model_config = ConfigDict(extra="forbid")

    min: _Int = Field(1, ge=1, le=1024, description="workers kept however idle the group is")
    max: _Int = Field(ge=1, le=1024, description="most workers the group may grow to")
    idle_timeout: Seconds = Field(
        30.0, gt=0, description="seconds of spare capacity before one worker is retired"
    )
    grow_after: Seconds = Field(
        1.0, gt=0, description="seconds of backlog or full threads before one worker is added"
    )

    def describe(self) -> str:
        """'1-4 processes (adaptive: +1 after 1s of backlog, -1 after 30s idle)'."""
        return (
            f"{self.min}-{self.max} processes (adaptive: +1 after {self.grow_after:g}s of "
            f"backlog, -1 after {self.idle_timeout:g}s idle)"
        )

    @model_validator(mode="after")
    def _ordered(self) -> ProcessRange:
        if self.max < self.min:
            from groupserver.config.models import problem

            raise problem(
                f"max must be >= min (got min {self.min}, max {self.max})", show_input=False
            )
        return self


class MemoryLimits(BaseModel):
    """Per-worker memory limits: `memory: {soft: 300M, hard: 500M}`.

    Measured as USS (unique set size: the memory only this worker uses, what its exit gives
    back), not RSS, which also counts pages shared copy-on-write with the parent. Each worker
    samples /proc/self/smaps_rollup every `interval` seconds in a background thread. Above `soft`
    it retires after its current request (a replacement starts first); above `hard` it is killed
    at once. Neither happens before the worker lived `min_lifetime` seconds, so a worker that
    starts big does not flap. `soft` must be below `hard`.
    """

    model_config = ConfigDict(extra="forbid")

    soft: Size | None = Field(
        None, ge=1, description="recycle after the current request above this"
    )
    hard: Size | None = Field(None, ge=1, description="kill the worker at once above this")
    measure: Literal["uss", "pss"] = Field(
        "uss", description="uss (private memory, default) or pss (private + a share of shared)"
    )
    interval: Seconds = Field(1.0, gt=0, description="seconds between memory samples")
    min_lifetime: Seconds = Field(
        5.0, ge=0, description="seconds a worker lives before a memory limit applies"
    )

    @model_validator(mode="after")
    def _soft_below_hard(self) -> MemoryLimits:
        if self.soft is not None and self.hard is not None and self.soft >= self.hard:
            from groupserver.config.models import problem
            from groupserver.config.units import format_size

            # the kill would always come first: the soft limit's graceful recycle never would
            raise problem(
                f"soft must be below hard (got soft {format_size(self.soft)}, "
                f"hard {format_size(self.hard)})",
                show_input=False,
            )
        return self
