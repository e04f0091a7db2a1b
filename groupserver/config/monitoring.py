"""Options of the master's services: the stats listener, the control socket, the memory governor."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from groupserver.config.limits import Seconds, Size

_Int = Annotated[int, Strict()]
_Fraction = Annotated[float, Strict()]


class StatsConfig(BaseModel):
    """The stats listener (`stats:`), served by the master: `/stats` (JSON), `/metrics`
    (Prometheus text), `/healthz` and `/readyz`. Off unless `listen` is set; it answers even
    when every worker is busy or hung, because the master only reads the scoreboard.
    """

    model_config = ConfigDict(extra="forbid")

    listen: str | None = Field(
        None,
        description="'127.0.0.1:PORT' or 'unix:/path.sock' (a relative path: to the YAML file's "
        "directory; unset: no stats listener); keep it off public interfaces",
    )
    top_urls: _Int = Field(
        20, ge=1, le=1000, description="paths listed per group in the memory-growth table"
    )

    @field_validator("listen")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None:
            from groupserver.config.models import parse_listen

            parse_listen(value)  # the same forms and messages as listen:
        return value


class GovernorConfig(BaseModel):
    """The host memory governor (`memory_governor:`), shared by all groups, run by the master.

    Every `interval` seconds it measures memory use as a fraction of the limit given by `source`.
    Above `lower` it flags the workers with the largest USS for a graceful recycle after their
    current request, more of them the closer use is to `upper`:
    `n = ceil(candidates * ((use - lower) / (upper - lower)) ** 2)` (quadratic: a gentle start
    just above `lower`, nearly every candidate near `upper`), stopping once their USS covers the
    excess over `lower`; only workers with at least 5% of the largest worker's USS count as
    candidates (recycling small, fresh workers gives nothing back and would only churn). Above
    `upper`, after `mercy` seconds over it, it kills the largest worker at once, even one already
    recycling (it still holds its memory). It never recycles a worker already retiring, recycles
    at most `max_recycles_per_group` per group per interval, takes the last worker of a group only
    above `upper`, goes through groups by `memory_priority` (higher first), and delays respawns
    while use stays above `lower` (adaptive respawn). Every decision is logged with its numbers.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Strict()] = Field(False, description="run the governor")
    source: Literal["auto", "host", "cgroup", "budget"] = Field(
        "auto",
        description="host: MemTotal/MemAvailable; cgroup: cgroup v2 memory.current against "
        "memory.max (or memory.high); budget: summed PSS of the site's processes against "
        "`budget`; auto: cgroup when our cgroup has a limit, else host",
    )
    budget: Size | None = Field(None, ge=1, description="bytes for source: budget")
    lower: _Fraction = Field(0.80, gt=0, lt=1, description="start graceful recycling above this")
    upper: _Fraction = Field(0.95, gt=0, le=1, description="kill the largest worker above this")
    interval: Seconds = Field(1.0, gt=0, description="seconds between measurements")
    mercy: Seconds = Field(
        2.0, ge=0, description="seconds above `upper` before a kill (recycles may catch up)"
    )
    max_recycles_per_group: _Int = Field(
        1, ge=1, description="graceful recycles per group per interval"
    )
    respawn_delay: Seconds = Field(
        2.0, ge=0, description="respawn delay in seconds while use is above `lower`"
    )

    @model_validator(mode="after")
    def _check(self) -> GovernorConfig:
        from groupserver.config.models import problem

        if self.lower >= self.upper:
            raise problem(
                f"lower must be below upper (got lower {self.lower}, upper {self.upper})",
                show_input=False,
            )
        if self.source == "budget" and self.budget is None:
            raise problem("source: budget needs a budget (e.g. budget: 2G)", show_input=False)
        return self
