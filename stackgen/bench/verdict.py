"""The answer `stackgen bench` leads with: how many streams this stack carries, what one
stream costs the proxy, what bounds it, and the user's own thresholds (`--expect`).

Pure functions over a bench document, so every sentence can be checked against the
figures printed under it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The bitrates a verdict is stated in: a 1080p remux (20 Mbit/s) and a 4K remux (100).
VERDICT_BITRATES = (20.0, 100.0)


def _median(values: Sequence[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None and math.isfinite(v))
    if not known:
        return None
    mid = len(known) // 2
    return known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2


def _side(doc: Mapping[str, Any], metric: str, side: str = "proxied") -> float | None:
    found = doc.get("metrics", {}).get(metric)
    return _median(found.get(side, [])) if isinstance(found, Mapping) else None


def core_share_per_stream(cpu_s_per_gb: float, bitrate_mbps: float) -> float:
    """The share of one core the proxy spends on one stream of `bitrate_mbps`."""
    return cpu_s_per_gb * bitrate_mbps / 8 / 1000


@dataclass(frozen=True)
class Capacity:
    """How many streams of one bitrate fit, and what stops the next one."""

    bitrate_mbps: float
    streams: int
    limit: str  # "players" (measured), "proxy CPU", "throughput"
    by_throughput: int | None
    by_cpu: int | None
    core_share: float | None  # of one core, per stream


def capacity(doc: Mapping[str, Any], bitrate_mbps: float) -> Capacity | None:
    """Streams of `bitrate_mbps` this stack carries, from the run's own figures.

    Measured players (the `ramp` phase) win when they ran at this bitrate; otherwise
    the smaller of two bounds: the full-speed throughput of one connection divided by the
    bitrate, and the machine's cores divided by the proxy's CPU per stream.
    """
    mbps = _side(doc, "stream_mbps")
    cpu_per_gb = _side(doc, "cpu_s_per_gb")
    nproc = doc.get("machine", {}).get("nproc") or 0
    share = core_share_per_stream(cpu_per_gb, bitrate_mbps) if cpu_per_gb else None
    by_throughput = math.floor(mbps * 8 / bitrate_mbps) if mbps else None
    by_cpu = math.floor(nproc / share) if share and nproc else None
    measured = (doc.get("ramp") or {}).get("per_bitrate", {}).get(f"{bitrate_mbps:g}")
    if isinstance(measured, Mapping) and isinstance(measured.get("stall_free"), int):
        return Capacity(
            bitrate_mbps, measured["stall_free"], str(measured.get("limit") or "players"),
            by_throughput, by_cpu, share,
        )  # fmt: skip
    bounds = [(n, why) for n, why in ((by_cpu, "proxy CPU"), (by_throughput, "throughput")) if n]
    if not bounds:
        return None
    streams, limit = min(bounds)
    return Capacity(bitrate_mbps, streams, limit, by_throughput, by_cpu, share)


def capacity_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The `capacity` block of the JSON: per verdict bitrate, streams and what bounds them."""
    found: dict[str, Any] = {}
    for bitrate in VERDICT_BITRATES:
        cap = capacity(doc, bitrate)
        found[f"{bitrate:g}"] = None if cap is None else {
            "streams": cap.streams,
            "limit": cap.limit,
            "by_throughput": cap.by_throughput,
            "by_cpu": cap.by_cpu,
            "core_share_per_stream": None if cap.core_share is None else round(cap.core_share, 5),
        }  # fmt: skip
    return found


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    """The verdict, first thing a user reads."""
    caps = [c for c in (capacity(doc, b) for b in VERDICT_BITRATES) if c is not None]
    proxied = doc.get("targets", {}).get("proxied", {})
    path = proxied.get("path", "unknown path")
    if not caps:
        return [f"verdict: no streaming figure was measured (path: {path})"]
    carried = " or ".join(f"{c.streams} x {c.bitrate_mbps:g} Mbit/s" for c in caps)
    lines = [f"verdict: this stack carries ~ {carried} streams (measured via the {path})"]
    first = caps[0]
    if first.core_share is not None:
        lines.append(
            f"  the proxy uses {first.core_share * 100:.1f} % of a core per "
            f"{first.bitrate_mbps:g} Mbit/s stream (its container's cgroup CPU)"
        )
    nproc = doc.get("machine", {}).get("nproc")
    limit = {
        "proxy CPU": f"the proxy's CPU ({nproc} cores on this machine, shared with the client)",
        "throughput": "one connection's throughput from this client (TLS and relay on one core)",
        "players": "where one more player stalled (buffer empty), measured",
        "ramp-max": "not reached: every ramp trial played without a stall (raise --ramp-max)",
    }.get(first.limit, first.limit)
    lines.append(f"  your limit is {limit}")
    if path.startswith("loopback"):
        lines.append(
            "  note: measured through docker-proxy on 127.0.0.1, which a LAN client never "
            "crosses: these figures are lower than a LAN client's"
        )
    return lines


# --- thresholds (--expect) -------------------------------------------------------------------

_STREAMS = re.compile(r"^streams=(\d+)@(\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"^(api_p99_ms|api_p50_ms|seek_ttfb_ms)=(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Expectation:
    text: str  # as the user wrote it
    kind: str  # "streams" or a latency metric
    value: float  # streams wanted, or the latency bound in ms
    bitrate_mbps: float = 0.0


def parse_expectation(text: str) -> Expectation:
    """`streams=N@MBIT` (at least N streams of MBIT Mbit/s) or `api_p99_ms=MS`,
    `api_p50_ms=MS`, `seek_ttfb_ms=MS` (at most MS through the proxy)."""
    cleaned = text.strip().replace(" ", "")
    if match := _STREAMS.match(cleaned):
        streams, bitrate = int(match.group(1)), float(match.group(2))
        if streams < 1 or not 0 < bitrate <= 10_000:
            raise ValueError(f"--expect {text!r}: streams >= 1 and 0 < Mbit/s <= 10000")
        return Expectation(cleaned, "streams", streams, bitrate)
    if match := _NUMBER.match(cleaned):
        return Expectation(cleaned, match.group(1), float(match.group(2)))
    raise ValueError(
        f"--expect {text!r}: expected streams=N@MBIT, api_p50_ms=MS, api_p99_ms=MS "
        "or seek_ttfb_ms=MS"
    )


_LATENCY_METRIC = {
    "api_p99_ms": "api_p99_ms",
    "api_p50_ms": "api_p50_ms",
    "seek_ttfb_ms": "seek_ttfb_p50_ms",
}


@dataclass(frozen=True)
class Check:
    expectation: Expectation
    measured: float | None

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        if self.expectation.kind == "streams":
            return self.measured >= self.expectation.value
        return self.measured <= self.expectation.value

    def line(self) -> str:
        mark = "✓" if self.passed else "✗"
        e = self.expectation
        if self.measured is None:
            return f"{mark} {e.text}: not measured"
        if e.kind == "streams":
            return (
                f"{mark} {e.text}: {self.measured:.0f} streams of {e.bitrate_mbps:g} Mbit/s "
                f">= {e.value:.0f}"
            )
        return f"{mark} {e.text}: {self.measured:.2f} ms <= {e.value:g} ms"


def check(doc: Mapping[str, Any], expectations: Sequence[Expectation]) -> list[Check]:
    checks = []
    for e in expectations:
        if e.kind == "streams":
            cap = capacity(doc, e.bitrate_mbps)
            checks.append(Check(e, None if cap is None else float(cap.streams)))
        else:
            checks.append(Check(e, _side(doc, _LATENCY_METRIC[e.kind])))
    return checks
