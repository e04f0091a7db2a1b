"""HTTP limits and timeouts: site-wide defaults, per-group and per-route overrides.

The front reads and checks every request head before it knows the route, so the head limits and
the head timeout are site-wide only. What happens after routing (bodies, keep-alive, writes,
connections per worker) can be tightened or loosened per group; the body size also per route.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from groupserver.config.units import DocType, parse_size

_Int = Annotated[int, Strict()]


def _size(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return parse_size(value)
    except ValueError as exc:
        from groupserver.config.models import problem

        raise problem(str(exc)) from None


def _seconds(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Size = Annotated[int, BeforeValidator(_size), DocType("size: bytes, or '64K', '10M'")]
Seconds = Annotated[float, BeforeValidator(_seconds), Strict()]

_BODY = "largest request body in bytes, counted as it arrives for chunked bodies (413)"
_KEEPALIVE_REQUESTS = "requests served on one keep-alive connection before it is closed (0: no cap)"
_PER_WORKER = (
    "connections one worker holds (in flight plus idle keep-alive); at the cap a new one "
    "closes the one idle longest, or waits in the group's queue when none is idle"
)
_BODY_TIMEOUT = "seconds the body may pause between two reads before the request fails"
_KEEPALIVE = "seconds an idle keep-alive connection is kept open between requests"
_WRITE = "seconds a client may stop reading the response before the connection is dropped"


class SiteLimits(BaseModel):
    """Limits and timeouts for every request of the site (the `limits:` key at the top level).

    Exceeding a head limit gets 414 (request line) or 431 (header count or size) and a close;
    a head that does not arrive within `head_timeout` gets 408 and a close (a client whose head
    is still arriving never holds a request thread: the front or the worker's poller waits for
    it). Beyond `max_connections`, new connections wait in the kernel's listen backlog.
    """

    model_config = ConfigDict(extra="forbid")

    max_request_line: _Int = Field(
        8190, ge=64, le=65536, description="longest request line in bytes (414)"
    )
    max_header_count: _Int = Field(100, ge=1, le=1000, description="most header fields (431)")
    max_head_size: Size = Field(
        65536,
        ge=1024,
        le=96 * 1024,
        description="largest request head (request line plus headers) in bytes (431)",
    )
    max_body_size: Size = Field(100 * 1024 * 1024, ge=0, description=_BODY)
    max_keepalive_requests: _Int = Field(1000, ge=0, description=_KEEPALIVE_REQUESTS)
    max_connections: _Int = Field(
        10000,
        ge=1,
        description="connections the front holds while their heads arrive or their group's "
        "queue is full; at the cap a new one closes the one waiting longest for its head",
    )
    max_connections_per_worker: _Int = Field(1000, ge=1, description=_PER_WORKER)
    head_timeout: Seconds = Field(
        10.0, gt=0, description="seconds for a whole request head to arrive (408)"
    )
    body_timeout: Seconds = Field(30.0, gt=0, description=_BODY_TIMEOUT)
    keepalive_timeout: Seconds = Field(5.0, gt=0, description=_KEEPALIVE)
    write_timeout: Seconds = Field(30.0, gt=0, description=_WRITE)


class GroupLimits(BaseModel):
    """Per-group overrides of the site's limits (`groups.NAME.limits:`); unset keys inherit."""

    model_config = ConfigDict(extra="forbid")

    max_body_size: Size | None = Field(None, ge=0, description=_BODY)
    max_keepalive_requests: _Int | None = Field(None, ge=0, description=_KEEPALIVE_REQUESTS)
    max_connections_per_worker: _Int | None = Field(None, ge=1, description=_PER_WORKER)
    body_timeout: Seconds | None = Field(None, gt=0, description=_BODY_TIMEOUT)
    keepalive_timeout: Seconds | None = Field(None, gt=0, description=_KEEPALIVE)
    write_timeout: Seconds | None = Field(None, gt=0, description=_WRITE)


def effective_limits(site: SiteLimits, group: GroupLimits | None) -> SiteLimits:
    """The site's limits with a group's overrides applied."""
    if group is None:
        return site
    overrides = {k: v for k, v in group.model_dump().items() if v is not None}
    return site.model_copy(update=overrides) if overrides else site
