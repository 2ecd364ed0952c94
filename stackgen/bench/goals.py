"""The benchmark's goals, evaluated over one `make bench` run (never over unit-test numbers).

Each goal reads one figure from the per-proxy summary that `bench/run.py` assembles; a
figure that was not measured is a missed goal ("not measured"), so a partial run can
never pass by omission.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Goal:
    key: str  # field of the per-proxy summary
    text: str
    op: Literal["ge", "le", "eq"]
    target: float
    unit: str


GOALS: tuple[Goal, ...] = (
    Goal("stream_vs_ceiling", "HTTPS stream >= 75 % of the TLS ceiling", "ge", 0.75, "x"),
    Goal("h2_vs_h1", "h2 stream >= 90 % of HTTP/1.1 on the same proxy", "ge", 0.90, "x"),
    Goal("stream_vs_docs", "stream >= 1.5x the Jellyfin-docs config", "ge", 1.5, "x"),
    Goal("streams_max_gap_ms", "20 x 100 Mbit/s streams: no gap over 250 ms", "le", 250, "ms"),
    Goal("streams_failures", "paced streams: no error, byte-exact", "eq", 0, ""),
    Goal("seek_ttfb_added_ms", "seek TTFB p50 <= direct + 1 ms", "le", 1.0, "ms"),
    Goal("api_p50_added_ms", "API at 200/s: p50 <= direct + 0.5 ms", "le", 0.5, "ms"),
    Goal("api_p99_added_ms", "API at 200/s: p99 <= direct + 2 ms", "le", 2.0, "ms"),
    Goal("api_errors", "API at 200/s: 0 errors", "eq", 0, ""),
    Goal("reload_failures", "0 failed requests across 20 reloads + rotation", "eq", 0, ""),
    Goal("reload_websocket_kept", "WebSocket kept across the reloads (1 = yes)", "eq", 1, ""),
    Goal("up_seconds", "stackgen up (warm) <= 5 s", "le", 5.0, "s"),
    Goal("rss_growth_mib", "proxy RSS growth while streaming <= 64 MiB", "le", 64, "MiB"),
)


@dataclass(frozen=True)
class Verdict:
    proxy: str
    goal: Goal
    measured: float | None

    @property
    def ok(self) -> bool:
        if self.measured is None or not math.isfinite(self.measured):
            return False
        if self.goal.op == "ge":
            return self.measured >= self.goal.target
        if self.goal.op == "le":
            return self.measured <= self.goal.target
        return self.measured == self.goal.target

    @property
    def short_by(self) -> float | None:
        """How far a measured figure is on the wrong side of its target (0 when met), in the
        goal's unit; None when nothing was measured."""
        if self.measured is None or not math.isfinite(self.measured):
            return None
        if self.goal.op == "ge":
            return max(0.0, self.goal.target - self.measured)
        if self.goal.op == "le":
            return max(0.0, self.measured - self.goal.target)
        return abs(self.measured - self.goal.target)

    def line(self) -> str:
        measured = "not measured" if self.measured is None else f"{self.measured:.3g}"
        sign = {"ge": ">=", "le": "<=", "eq": "=="}[self.goal.op]
        unit = f" {self.goal.unit}" if self.goal.unit else ""
        state = "ok" if self.ok else "MISSED"
        return (
            f"{state:6} {self.proxy:8} {self.goal.text}: measured {measured}{unit}, "
            f"target {sign} {self.goal.target:g}{unit}"
        )


def evaluate(summaries: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """One verdict per proxy and goal; `summaries` maps proxy -> summary fields."""
    verdicts = []
    for proxy, summary in summaries.items():
        for goal in GOALS:
            value = summary.get(goal.key)
            verdicts.append(
                Verdict(proxy, goal, float(value) if isinstance(value, int | float) else None)
            )
    return verdicts
