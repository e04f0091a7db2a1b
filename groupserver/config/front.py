"""Who accepts the site's connections (`front:`): a front process, or one group's workers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from groupserver.capacity import MAX_FRONTS


class FrontConfig(BaseModel):
    """Who accepts connections (`front:`).

    With `accept: front` a front process (`groupserver: front [SITE]`) accepts every connection,
    reads the request head, routes it and hands the socket to the route's group: a group's
    workers only ever see requests that are theirs, so a busy group never delays another one's.
    With `accept: GROUP` there is no front process: that group's workers accept from the listeners
    themselves (whichever worker has a free thread), serve their own requests and hand the others
    to their groups. A new connection then touches one process instead of two, which roughly
    halves the server's CPU per Connection: close request, but every request first needs a free
    thread of GROUP. `auto` (the default) picks GROUP when every route and `default_group` lead
    to one group, and `front` otherwise. In worker-accept mode `limits.max_connections` does not
    apply (each worker stops accepting at `max_connections_per_worker`), and listeners with
    `proxy_protocol` are refused (the PROXY header is read only by the front). There, a
    connection that has not sent its head yet takes one of those places until it does, or
    until `head_timeout` or a worker at its cap that needs the place closes it; with a front,
    the front holds such connections, up to `max_connections`.

    `processes` front processes share the listeners (each wakes for its own connections), for
    hosts where one front process, touched once per new connection, is not enough;
    `limits.max_connections` then applies to each of them.
    """

    model_config = ConfigDict(extra="forbid")

    accept: str = Field(
        "auto",
        min_length=1,
        description="'front', a group name, or 'auto' (a group when the site routes to only "
        "one, else 'front')",
    )
    processes: Annotated[int, Strict()] = Field(
        1, ge=1, le=MAX_FRONTS, description="front processes (when a front runs)"
    )
