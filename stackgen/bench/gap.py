"""Where a stack's throughput goes: the gap between plain HTTP and what a client gets
through the proxy, split into the parts that have different owners.

With `--ceiling`, `stackgen bench` also streams the same bytes, over the same network path,
from a throwaway bare file server that holds the stack's own certificate: once over TLS (the
*ceiling*: what TLS alone allows on this machine) and once over plain HTTP. Each full GET
of a pair is then one of

- `plain`: the file server, no TLS;
- `ceiling`: the file server, the stack's TLS (same cipher as every side);
- `proxied`: the stack's proxy at the path the run chose (a LAN client's, by default);
- `published` (with `--via both`): the proxy at its published port, through the engine's
  userland docker-proxy when that port is on loopback.

and the gap is three per-pair ratios, each with the interval of its median:

- `tls` = ceiling / plain: what TLS itself costs (nobody's choice but the cipher's);
- `relay` = proxied / ceiling: the proxy's own relay cost, the only part that is the
  proxy's (1.0 = it relays as fast as a bare TLS server serves a file);
- `docker_proxy` = published / proxied: the hop no LAN client crosses.

Pure functions over the series a run collected, so every figure printed can be checked
against the runs under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stackgen.bench.stats import Spread, compare_pairs

# The extra sides, in the order a pair runs them (rotated from pair to pair).
CEILING, PLAIN, PUBLISHED = "ceiling", "plain", "published"
EXTRA_SIDES = (CEILING, PLAIN, PUBLISHED)
# part -> (subject side, baseline side, what the ratio says)
PARTS: dict[str, tuple[str, str, str]] = {
    "tls": (CEILING, PLAIN, "TLS itself: the bare TLS server / the same server over plain HTTP"),
    "relay": ("proxied", CEILING, "the proxy's relay: the proxy / the bare TLS server"),
    "docker_proxy": (
        PUBLISHED,
        "proxied",
        "docker-proxy: the published port / the proxy container's address",
    ),
}


def rotation(sides: Sequence[str], pair: int) -> list[str]:
    """The extra sides in pair `pair`'s order: each one goes first in turn, so a drift
    over the run is shared out instead of always landing on the same side."""
    if not sides:
        return []
    shift = pair % len(sides)
    return [*sides[shift:], *sides[:shift]]


def split(
    mbps: Mapping[str, Sequence[float | None]],
    cpu_s_per_gb: Mapping[str, Sequence[float | None]] | None = None,
) -> dict[str, Any]:
    """The `gap` block: per part, the per-pair ratio (None where a side did not run), and
    the proxy's CPU per GB against the bare TLS server's when both were charged."""
    parts: dict[str, Any] = {}
    for part, (subject, baseline, meaning) in PARTS.items():
        spread = _ratio(mbps, subject, baseline)
        parts[part] = None if spread is None else {"meaning": meaning, **spread.to_json()}
    cpu = _ratio(cpu_s_per_gb or {}, "proxied", CEILING)
    return {
        "stream_mbps": {side: list(values) for side, values in mbps.items()},
        "cpu_s_per_gb": {side: list(values) for side, values in (cpu_s_per_gb or {}).items()},
        "parts": parts,
        "relay_cpu": None if cpu is None else cpu.to_json(),
    }


def _ratio(
    series: Mapping[str, Sequence[float | None]], subject: str, baseline: str
) -> Spread | None:
    if subject not in series or baseline not in series:
        return None
    return compare_pairs(series[subject], series[baseline], "ratio")


def lines(gap: Mapping[str, Any] | None) -> list[str]:
    """The split for people: one line per part that was measured."""
    if not gap:
        return []
    found = []
    for part, (_subject, _baseline, meaning) in PARTS.items():
        spread = gap.get("parts", {}).get(part)
        if not spread:
            continue
        found.append(
            f"  {part.replace('_', '-')}: x{spread['median']:.2f} "
            f"[{spread['low']:.2f}, {spread['high']:.2f}] (n={spread['n']}) - {meaning}"
        )
    cpu = gap.get("relay_cpu")
    if cpu:
        found.append(
            f"  relay CPU: x{cpu['median']:.2f} [{cpu['low']:.2f}, {cpu['high']:.2f}] "
            "the bare TLS server's CPU-seconds per GB"
        )
    return ["gap (full GET, per pair, median [interval]):", *found] if found else []
