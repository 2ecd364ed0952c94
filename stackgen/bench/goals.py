"""The benchmark's goals, evaluated over one `make bench` run (never over unit-test numbers).

Each goal reads one figure from the per-proxy summary that `bench/run.py` assembles. A
figure is either exact (a count of errors, seconds of `up`) or a comparison over pairs,
given as an interval of its median (`{"median", "low", "high", "n", "coverage"}`, see
`stats.median_interval`). A verdict is:
- met / missed when the whole interval is on one side of the target,
- inconclusive when the interval straddles the target, or when there were too few pairs
  for it to reach its confidence (so a coin flip is never reported as a verdict),
- missed ("not measured") when the figure is absent, so a partial run never passes by
  omission.

`GOALS_VERSION` names this set of goals and targets; `summary.json` records it, and a new
target or goal is a new version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stackgen.bench.stats import CONFIDENCE

GOALS_VERSION = "goals/2"


@dataclass(frozen=True)
class Goal:
    key: str  # field of the per-proxy summary
    text: str
    op: Literal["ge", "le", "eq"]
    target: float
    unit: str


GOALS: tuple[Goal, ...] = (
    Goal(
        "relay_cpu_vs_ceiling",
        "proxy CPU-s per GB <= 1.5x the bare TLS server's, same run",
        "le",
        1.5,
        "x",
    ),
    Goal("h2_vs_h1", "h2 stream >= 90 % of HTTP/1.1 on the same proxy", "ge", 0.90, "x"),
    Goal("stream_vs_docs", "stream >= 1.5x the Jellyfin-docs config", "ge", 1.5, "x"),
    Goal(
        "capacity_100_vs_ceiling",
        "stall-free 100 Mbit/s players >= 75 % of the bare TLS server's",
        "ge",
        0.75,
        "x",
    ),
    Goal("streams_failures", "players: no error, byte-exact", "eq", 0, ""),
    Goal("seek_ttfb_added_ms", "seek TTFB p50 <= direct + 1 ms", "le", 1.0, "ms"),
    Goal("api_p50_added_ms", "API at 200/s: p50 <= direct + 0.5 ms", "le", 0.5, "ms"),
    Goal("api_p99_added_ms", "API at 200/s: p99 <= direct + 2 ms", "le", 2.0, "ms"),
    Goal("api_errors", "API at 200/s: 0 errors", "eq", 0, ""),
    Goal("reload_failures", "0 failed requests across 20 reloads + rotation", "eq", 0, ""),
    Goal("reload_websocket_kept", "WebSocket kept across the reloads (1 = yes)", "eq", 1, ""),
    Goal("up_seconds", "stackgen up (warm) <= 5 s", "le", 5.0, "s"),
    Goal("rss_growth_mib", "proxy RSS growth while streaming <= 64 MiB", "le", 64, "MiB"),
)

State = Literal["met", "missed", "inconclusive", "not measured"]


@dataclass(frozen=True)
class Figure:
    """One measured figure: exact (low == high == median, coverage 1) or an interval."""

    median: float
    low: float
    high: float
    n: int = 1
    coverage: float = 1.0

    @classmethod
    def read(cls, value: Any) -> Figure | None:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            number = float(value)
            return cls(number, number, number) if math.isfinite(number) else None
        if isinstance(value, Mapping):
            try:
                median, low, high = (float(value[k]) for k in ("median", "low", "high"))
            except (KeyError, TypeError, ValueError):
                return None
            if not all(math.isfinite(x) for x in (median, low, high)):
                return None
            return cls(median, low, high, int(value.get("n", 1)), float(value.get("coverage", 1.0)))
        return None


def interval(spread: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The figure a goal reads from a `compare` block of a bench document."""
    if not spread:
        return None
    keys = ("median", "low", "high", "n", "coverage")
    if any(spread.get(k) is None for k in keys):
        return None
    return {k: spread[k] for k in keys}


def _holds(op: str, value: float, target: float) -> bool:
    if op == "ge":
        return value >= target
    if op == "le":
        return value <= target
    return value == target


@dataclass(frozen=True)
class Verdict:
    proxy: str
    goal: Goal
    figure: Figure | None

    @property
    def measured(self) -> float | None:
        return None if self.figure is None else self.figure.median

    @property
    def state(self) -> State:
        figure = self.figure
        if figure is None:
            return "not measured"
        low_ok = _holds(self.goal.op, figure.low, self.goal.target)
        high_ok = _holds(self.goal.op, figure.high, self.goal.target)
        if low_ok != high_ok:
            return "inconclusive"  # the interval straddles the target
        if figure.coverage < CONFIDENCE:
            return "inconclusive"  # too few pairs for the interval to mean anything
        return "met" if low_ok else "missed"

    @property
    def ok(self) -> bool:
        return self.state == "met"

    @property
    def short_by(self) -> float | None:
        """How far the median is on the wrong side of its target (0 when met), in the
        goal's unit; None when nothing was measured."""
        if self.measured is None:
            return None
        if self.goal.op == "ge":
            return max(0.0, self.goal.target - self.measured)
        if self.goal.op == "le":
            return max(0.0, self.measured - self.goal.target)
        return abs(self.measured - self.goal.target)

    def measured_text(self) -> str:
        figure = self.figure
        if figure is None:
            return "not measured"
        if figure.low == figure.high:
            return f"{figure.median:.3g}"
        return (
            f"{figure.median:.3g} [{figure.low:.3g}, {figure.high:.3g}] "
            f"({figure.n} pairs, {figure.coverage:.0%})"
        )

    def line(self) -> str:
        sign = {"ge": ">=", "le": "<=", "eq": "=="}[self.goal.op]
        unit = f" {self.goal.unit}" if self.goal.unit else ""
        state = {"met": "ok", "missed": "MISSED", "inconclusive": "UNSURE"}.get(
            self.state, "MISSED"
        )
        return (
            f"{state:6} {self.proxy:8} {self.goal.text}: measured {self.measured_text()}"
            f"{unit}, target {sign} {self.goal.target:g}{unit}"
        )


def _figure(summary: Mapping[str, Any], key: str) -> Any:
    """A goal's figure: its interval (`summary["intervals"][key]`) when the run compared
    pairs for it, else the exact figure `summary[key]`."""
    intervals = summary.get("intervals")
    if isinstance(intervals, Mapping) and intervals.get(key) is not None:
        return intervals[key]
    return summary.get(key)


def evaluate(summaries: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """One verdict per proxy and goal; `summaries` maps proxy -> summary fields."""
    return [
        Verdict(proxy, goal, Figure.read(_figure(summary, goal.key)))
        for proxy, summary in summaries.items()
        for goal in GOALS
    ]
