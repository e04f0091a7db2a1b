"""`groupserver status`: the stats document as a terminal table (one row per group)."""

from __future__ import annotations

from typing import Any


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}M"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _limit(worker: dict[str, Any]) -> str:
    """' limit N' when the worker runs fewer requests at once than it has threads (concurrency)."""
    limit = worker["concurrency"]
    return f" limit {limit}" if limit < worker["threads"] else ""


def render_table(doc: dict[str, Any], workers: bool = False) -> str:
    """A top-like table of the site's groups (and their workers when asked)."""
    gov = doc.get("memory_governor") or {}
    memory = f"  memory {gov['use'] * 100:.0f}% ({gov['source']})" if gov.get("use") else ""
    lines = [
        f"site {doc['site']}  master {doc['pid']}  generation {doc['generation']}  "
        f"up {doc['uptime_seconds']:.0f}s{memory}",
        "",
        f"{'GROUP':<14}{'PROCS':>6}{'THR':>5}{'BUSY':>6}{'UTIL':>7}{'REQ/S':>9}{'REQS':>9}"
        f"{'P50ms':>8}{'P99ms':>8}{'QP90ms':>8}{'BACKLOG':>8}{'USS':>7}{'RESTARTS':>9}",
    ]
    for g in doc["groups"].values():
        app, queue = g["latency_seconds"]["app"], g["latency_seconds"]["queue"]
        uss = sum(w["uss_bytes"] for w in g["workers"])
        flag = ""
        if g["failing"]:
            flag = " FAILING"
            serving = [  # a reload whose new code fails: the old workers still serve
                w["generation"]
                for w in g["workers"]
                if w["state"] == "ready" and w["generation"] < doc["generation"]
            ]
            if serving:
                flag += f" (generation {max(serving)} serving)"
        lines.append(
            f"{g['name']:<14}{len(g['workers']):>6}{g['threads_per_process']:>5}"
            f"{g['busy_threads']:>6}{g['capacity_utilisation'] * 100:>6.0f}%"
            f"{g['requests_per_second']:>9.1f}{g['requests_total']:>9}"
            f"{_ms(app['p50']):>8}{_ms(app['p99']):>8}{_ms(queue['p90']):>8}"
            f"{g['backlog']:>8}{_mib(uss):>7}{sum(g['restarts'].values()):>9}{flag}"
        )
        if workers:
            for w in g["workers"]:
                current = w["current_request"]
                doing = f"{current['url']} {current['age_seconds']:.1f}s" if current else ""
                lines.append(
                    f"  {w['pid']:<8}{w['state']:<9}{w['requests']:>8} req  "
                    f"busy {w['busy_threads']}/{w['threads']}{_limit(w)}  "
                    f"uss {_mib(w['uss_bytes'])}  "
                    f"cpu {w['cpu_percent']:.0f}%  ctx {w['involuntary_ctx_per_s']:.0f}/s  {doing}"
                )
    return "\n".join(lines)
