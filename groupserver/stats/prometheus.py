"""Render the stats document in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: Any) -> str:
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


def render(doc: dict[str, Any]) -> str:
    """The whole /metrics page."""
    w = _Writer()
    site = doc["site"]
    w.metric("groupserver_up", "gauge", "The master is running.", 1, site=site)
    for g in doc["groups"].values():
        group = g["name"]
        w.metric(
            "groupserver_requests_total",
            "counter",
            "Requests served.",
            g["requests_total"],
            group=group,
        )
        for status_class, count in g["responses"].items():
            w.metric(
                "groupserver_responses_total",
                "counter",
                "Responses by status class.",
                count,
                group=group,
                status=status_class,
            )
        bounds = g["bucket_bounds_seconds"]
        app, queue = g["latency_seconds"]["app"], g["latency_seconds"]["queue"]
        w.histogram(
            "groupserver_request_duration_seconds",
            "Time in the application (from taking the request to the response's end).",
            bounds,
            app["buckets"],
            (app["mean"] or 0) * g["requests_total"],
            group=group,
        )
        w.histogram(
            "groupserver_queue_wait_seconds",
            "Time waiting for a request thread (from accept to a thread taking it).",
            bounds,
            queue["buckets"],
            (queue["mean"] or 0) * g["requests_total"],
            group=group,
        )
        w.metric(
            "groupserver_busy_threads",
            "gauge",
            "Request threads serving now.",
            g["busy_threads"],
            group=group,
        )
        w.metric(
            "groupserver_idle_threads",
            "gauge",
            "Request threads free now.",
            g["idle_threads"],
            group=group,
        )
        w.metric(
            "groupserver_capacity_utilisation",
            "gauge",
            "Busy thread-seconds over available thread-seconds, last 10 s.",
            g["capacity_utilisation"],
            group=group,
        )
        w.metric(
            "groupserver_backlog",
            "gauge",
            "Connections waiting in the group's queue.",
            g["backlog"],
            group=group,
        )
        w.metric(
            "groupserver_backlog_max",
            "gauge",
            "Largest backlog seen.",
            g["backlog_max"],
            group=group,
        )
        for reason, count in g["shed"].items():
            w.metric(
                "groupserver_shed_total",
                "counter",
                "Requests refused by queue_timeout or by limits.",
                count,
                group=group,
                reason=reason,
            )
        for reason, count in g["restarts"].items():
            w.metric(
                "groupserver_restarts_total",
                "counter",
                "Workers replaced, by reason.",
                count,
                group=group,
                reason=reason,
            )
        w.metric(
            "groupserver_workers", "gauge", "Worker processes.", len(g["workers"]), group=group
        )
        for worker in g["workers"]:
            pid = worker["pid"]
            for kind in ("rss", "uss", "pss"):
                w.metric(
                    "groupserver_worker_memory_bytes",
                    "gauge",
                    "Worker memory (rss, uss, pss).",
                    worker[f"{kind}_bytes"],
                    group=group,
                    pid=pid,
                    kind=kind,
                )
            w.metric(
                "groupserver_worker_cpu_percent",
                "gauge",
                "Worker CPU use.",
                worker["cpu_percent"],
                group=group,
                pid=pid,
            )
            for kind in ("voluntary", "involuntary"):
                w.metric(
                    "groupserver_worker_context_switches_per_second",
                    "gauge",
                    "Context switches per second, all threads.",
                    worker[f"{kind}_ctx_per_s"],
                    group=group,
                    pid=pid,
                    kind=kind,
                )
            w.metric(
                "groupserver_worker_requests_total",
                "counter",
                "Requests by worker.",
                worker["requests"],
                group=group,
                pid=pid,
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
