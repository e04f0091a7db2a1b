"""Render the stats document in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: Any) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{key}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels.items()
    )
    return "{" + inner + "}"


class _Writer:
    """Collects samples by metric family: the format wants each family's samples together."""

    def __init__(self) -> None:
        self.families: dict[str, list[str]] = {}

    def _family(self, name: str, mtype: str, help_text: str) -> list[str]:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = [f"# HELP {name} {help_text}", f"# TYPE {name} {mtype}"]
        return family

    def metric(self, name: str, mtype: str, help_text: str, value: float, **labels: Any) -> None:
        self._family(name, mtype, help_text).append(f"{name}{_labels(**labels)} {_number(value)}")

    def histogram(
        self,
        name: str,
        help_text: str,
        bounds: list[float],
        counts: list[int],
        total: float,
        **labels: Any,
    ) -> None:
        family = self._family(name, "histogram", help_text)
        running = 0
        for bound, count in zip(bounds + [float("inf")], counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            family.append(f"{name}_bucket{_labels(**labels, le=le)} {running}")
        family.append(f"{name}_sum{_labels(**labels)} {_number(total)}")
        family.append(f"{name}_count{_labels(**labels)} {running}")

    def text(self) -> str:
        return "\n".join(line for family in self.families.values() for line in family) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


# Per-group figures taken straight from the stats document: (metric, type, help, key).
_GROUP_VALUES = (
    ("groupserver_requests_total", "counter", "Requests served.", "requests_total"),
    (
        "groupserver_idle_connections_closed_total",
        "counter",
        "Idle connections closed at max_connections_per_worker to take a new one.",
        "idle_connections_closed",
    ),
    (
        "groupserver_failing",
        "gauge",
        "1 while the group's workers (or its preloader) keep dying at start-up, or fork() keeps "
        "failing.",
        "failing",
    ),
    ("groupserver_busy_threads", "gauge", "Request threads serving now.", "busy_threads"),
    ("groupserver_idle_threads", "gauge", "Request threads free now.", "idle_threads"),
    (
        "groupserver_capacity_utilisation",
        "gauge",
        "Busy thread-seconds over available thread-seconds, last 10 s.",
        "capacity_utilisation",
    ),
    ("groupserver_backlog", "gauge", "Connections waiting in the group's queue.", "backlog"),
    ("groupserver_backlog_max", "gauge", "Largest backlog seen.", "backlog_max"),
)
# The front's figures (site-wide, before routing): (metric, help, key in the document's "front").
_FRONT_VALUES = (
    (
        "groupserver_front_shed_limits_total",
        "Requests the front refused for a limit before routing (413, 414, 431, 408).",
        "shed_limits",
    ),
    (
        "groupserver_front_idle_connections_closed_total",
        "Connections without a complete head closed at max_connections to take a new one.",
        "idle_connections_closed",
    ),
)
# Per-group counts by a label: (metric, help, key of the {label value: count} mapping, label).
_GROUP_COUNTS = (
    ("groupserver_responses_total", "Responses by status class.", "responses", "status"),
    (
        "groupserver_shed_total",
        "Requests refused by queue_timeout, by limits, or while the group was failing.",
        "shed",
        "reason",
    ),
    ("groupserver_restarts_total", "Workers replaced, by reason.", "restarts", "reason"),
)
# Per-group latency histograms: (metric, help, key in latency_seconds).
_GROUP_HISTOGRAMS = (
    (
        "groupserver_request_duration_seconds",
        "Time in the application (from taking the request to the response's end).",
        "app",
    ),
    (
        "groupserver_queue_wait_seconds",
        "Time waiting for a request thread (from accept to a thread taking it).",
        "queue",
    ),
)
# Per-worker figures: (metric, type, help, label name or None, {label value: key}).
_WORKER_VALUES = (
    (
        "groupserver_worker_memory_bytes",
        "gauge",
        "Worker memory (rss, uss, pss).",
        "kind",
        {"rss": "rss_bytes", "uss": "uss_bytes", "pss": "pss_bytes"},
    ),
    ("groupserver_worker_cpu_percent", "gauge", "Worker CPU use.", None, {"": "cpu_percent"}),
    (
        "groupserver_worker_context_switches_per_second",
        "gauge",
        "Context switches per second, all threads.",
        "kind",
        {"voluntary": "voluntary_ctx_per_s", "involuntary": "involuntary_ctx_per_s"},
    ),
    ("groupserver_worker_requests_total", "counter", "Requests by worker.", None, {"": "requests"}),
)


def render(doc: dict[str, Any]) -> str:
    """The whole /metrics page."""
    w = _Writer()
    w.metric("groupserver_up", "gauge", "The master is running.", 1, site=doc["site"])
    for name, help_text, key in _FRONT_VALUES:
        w.metric(name, "counter", help_text, doc["front"][key])
    for g in doc["groups"].values():
        group = g["name"]
        for name, mtype, help_text, key in _GROUP_VALUES:
            w.metric(name, mtype, help_text, g[key], group=group)
        for name, help_text, key, label in _GROUP_COUNTS:
            for value, count in g[key].items():
                w.metric(name, "counter", help_text, count, group=group, **{label: value})
        for name, help_text, key in _GROUP_HISTOGRAMS:
            latency = g["latency_seconds"][key]
            total = (latency["mean"] or 0) * g["requests_total"]
            w.histogram(
                name, help_text, g["bucket_bounds_seconds"], latency["buckets"], total, group=group
            )
        w.metric(
            "groupserver_workers", "gauge", "Worker processes.", len(g["workers"]), group=group
        )
        for worker in g["workers"]:
            for name, mtype, help_text, label, keys in _WORKER_VALUES:
                for value, key in keys.items():
                    labels = {label: value} if label else {}
                    w.metric(
                        name,
                        mtype,
                        help_text,
                        worker[key],
                        group=group,
                        pid=worker["pid"],
                        **labels,
                    )
    gov = doc.get("memory_governor") or {}
    if gov.get("enabled"):
        w.metric(
            "groupserver_memory_use_ratio",
            "gauge",
            "Memory use seen by the governor.",
            gov.get("use") or 0.0,
            source=gov.get("source", ""),
        )
        for reason, count in (gov.get("decisions") or {}).items():
            w.metric(
                "groupserver_governor_decisions_total",
                "counter",
                "Governor recycles and kills.",
                count,
                reason=reason,
            )
    return w.text()
