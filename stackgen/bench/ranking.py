"""`stackgen bench --proxies all`: which proxy to recommend on this machine, and why.

Pure functions over one bench document per proxy, so the recommendation can be checked
against the figures printed under it. The proxies are measured one after the other (each
is a whole stack), not interleaved, so the machine may change between them: a lead smaller
than the runs' own spread is said to be one, never turned into a winner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackgen.bench import verdict


@dataclass(frozen=True)
class Standing:
    proxy: str
    mbps: float | None  # median full-GET MB/s through the proxy
    mbps_range: tuple[float, float] | None  # min, max over its runs
    cpu_s_per_gb: float | None
    streams_20: int | None  # streams of 20 Mbit/s, as the verdict counts them
    error: str | None = None


def _known(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def standing(proxy: str, doc: Mapping[str, Any] | None, error: str | None = None) -> Standing:
    if doc is None:
        return Standing(proxy, None, None, None, None, error or "not measured")
    metrics = doc.get("metrics", {})
    runs = _known(metrics.get("stream_mbps", {}).get("proxied", []))
    cpu = _median(_known(metrics.get("cpu_s_per_gb", {}).get("proxied", [])))
    cap = verdict.capacity(doc, 20.0)
    return Standing(
        proxy,
        _median(runs),
        (min(runs), max(runs)) if runs else None,
        cpu,
        cap.streams if cap else None,
        error or (f"{len(doc.get('errors') or [])} error(s)" if doc.get("errors") else None),
    )


def rank(standings: Sequence[Standing]) -> list[Standing]:
    """Measured proxies first, most throughput first, less CPU per GB breaking a tie."""

    def key(s: Standing) -> tuple[int, float, float]:
        if s.error or s.mbps is None:
            return (1, 0.0, 0.0)
        return (0, -s.mbps, s.cpu_s_per_gb if s.cpu_s_per_gb is not None else math.inf)

    return sorted(standings, key=key)


def recommendation(standings: Sequence[Standing]) -> list[str]:
    """The recommendation and its reason, first thing a user reads."""
    ranked = rank(standings)
    measured = [s for s in ranked if not s.error and s.mbps is not None]
    if not measured:
        return ["recommendation: none: no proxy could be measured on this machine"]
    best = measured[0]
    lines = [
        f"recommendation: {best.proxy}: the most throughput through the proxy on this "
        f"machine ({best.mbps:.0f} MB/s per connection"
        + (f", ~ {best.streams_20} x 20 Mbit/s streams" if best.streams_20 is not None else "")
        + (f", {best.cpu_s_per_gb:.2f} CPU-s per GB" if best.cpu_s_per_gb is not None else "")
        + ")"
    ]
    if len(measured) > 1:
        second = measured[1]
        if best.mbps_range and second.mbps_range and best.mbps_range[0] <= second.mbps_range[1]:
            cheaper = min(
                (s for s in measured[:2] if s.cpu_s_per_gb is not None),
                key=lambda s: s.cpu_s_per_gb or math.inf,
                default=None,
            )
            lines.append(
                f"  but {second.proxy} is within the runs' spread ({best.proxy} "
                f"{best.mbps_range[0]:.0f}-{best.mbps_range[1]:.0f} MB/s, {second.proxy} "
                f"{second.mbps_range[0]:.0f}-{second.mbps_range[1]:.0f}): either will do"
                + (
                    f"; {cheaper.proxy} costs less CPU per GB"
                    if cheaper is not None and cheaper is not best
                    else ""
                )
            )
        else:
            lines.append(
                f"  ahead of {second.proxy} ({second.mbps:.0f} MB/s) beyond the runs' spread"
            )
    failed = [s for s in ranked if s.error]
    for s in failed:
        lines.append(f"  {s.proxy}: {s.error}")
    lines.append(
        "  (each proxy measured in turn, not interleaved: the machine may change between "
        "them; figures from this machine only)"
    )
    return lines


def table(standings: Sequence[Standing]) -> list[str]:
    rows = [("proxy", "MB/s (median)", "min-max", "CPU-s/GB", "20 Mbit/s streams")]
    for s in rank(standings):
        rows.append(
            (
                s.proxy,
                "-" if s.mbps is None else f"{s.mbps:.0f}",
                "-" if s.mbps_range is None else f"{s.mbps_range[0]:.0f}-{s.mbps_range[1]:.0f}",
                "-" if s.cpu_s_per_gb is None else f"{s.cpu_s_per_gb:.2f}",
                "-" if s.streams_20 is None else str(s.streams_20),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def to_json(standings: Sequence[Standing]) -> list[dict[str, Any]]:
    return [
        {
            "proxy": s.proxy,
            "stream_mbps": s.mbps,
            "stream_mbps_range": list(s.mbps_range) if s.mbps_range else None,
            "cpu_s_per_gb": s.cpu_s_per_gb,
            "streams_20": s.streams_20,
            "error": s.error,
        }
        for s in rank(standings)
    ]
