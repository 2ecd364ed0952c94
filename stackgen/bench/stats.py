"""Summaries of samples and of interleaved pairs.

Every comparison is made per pair (one proxied run next to one direct run, A-B-B-A), so
a load spike from a neighbour hits both sides of a pair; the spread over pairs says how
much one number can be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile out of range: {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    def to_json(self) -> dict[str, float | int | None]:
        return {k: _finite(v) for k, v in asdict(self).items()}


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        n=len(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=max(values) if values else math.nan,
        mean=sum(values) / len(values) if values else math.nan,
    )


Kind = Literal["ratio", "added"]

# Two-sided confidence for a verdict: the interval of the median of the pairs.
CONFIDENCE = 0.90


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """A distribution-free interval for the median: (low, high, its coverage).

    Order statistics x(k) and x(n-k+1) bracket the true median with probability
    1 - 2 * P(Binomial(n, 1/2) < k), whatever the distribution of one pair; the
    narrowest such interval whose coverage reaches `confidence` is returned. Too few
    values for that give (min, max) and the lower coverage they have: the caller
    must treat such an interval as not conclusive.
    """
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    n = len(ordered)

    def coverage(k: int) -> float:
        below = sum(math.comb(n, i) for i in range(k)) / float(2**n)
        return 1 - 2 * below

    best = 1
    for k in range(1, (n + 1) // 2 + 1):
        if coverage(k) >= confidence:
            best = k
    return ordered[best - 1], ordered[n - best], coverage(best)


@dataclass(frozen=True)
class Spread:
    """A per-pair comparison: `ratio` = proxied / baseline, `added` = proxied - baseline.

    `low`..`high` is the interval of the median at `coverage` (see `median_interval`)."""

    kind: Kind
    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float
    low: float
    high: float
    coverage: float

    def to_json(self) -> dict[str, str | float | int | None]:
        data: dict[str, str | float | int | None] = {"kind": self.kind, "n": self.n}
        for key in ("median", "q1", "q3", "min", "max", "low", "high", "coverage"):
            data[key] = _finite(getattr(self, key))
        return data


def compare_pairs(
    subject: Sequence[float | None], baseline: Sequence[float | None], kind: Kind
) -> Spread | None:
    """Compare pair by pair (index i of both lists is pair i); None without a pair.

    Both lists hold one entry per pair, None where that run failed: a missing run must
    leave a hole, never shift the later runs into the wrong pair, so lists of different
    lengths are refused. A pair with a missing or non-finite side, or a zero baseline
    for a ratio, is left out rather than guessed.
    """
    if len(subject) != len(baseline):
        raise ValueError(
            f"pairs misaligned: {len(subject)} subject runs, {len(baseline)} baseline runs"
        )
    values: list[float] = []
    for a, b in zip(subject, baseline, strict=True):
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        if kind == "ratio":
            if b == 0:
                continue
            values.append(a / b)
        else:
            values.append(a - b)
    if not values:
        return None
    low, high, cover = median_interval(values)
    return Spread(
        kind=kind,
        n=len(values),
        median=percentile(values, 50),
        q1=percentile(values, 25),
        q3=percentile(values, 75),
        min=min(values),
        max=max(values),
        low=low,
        high=high,
        coverage=round(cover, 4),
    )


def abba_order(pairs: int) -> list[tuple[int, str]]:
    """Run order for `pairs` pairs of subject "A" and baseline "B": A B B A A B B A ...

    Returns (pair index, side). Alternating which side goes first cancels a steady
    drift (warming caches, a neighbour's job ending) instead of favouring one side.
    """
    order: list[tuple[int, str]] = []
    for i in range(pairs):
        sides = ("A", "B") if i % 2 == 0 else ("B", "A")
        order.extend((i, side) for side in sides)
    return order


def _finite(value: float | int) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value
