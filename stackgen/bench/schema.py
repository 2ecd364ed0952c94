"""The JSON document `stackgen bench --json` prints (README "stackgen bench JSON").

Versioned by `schema`: a consumer checks it and refuses a major version it does not know.
Adding a field is a minor change (same major); renaming or removing one is a new major.
`validate` is the reference: the README's description and the unit tests follow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackgen.bench.endpoint import PATH_CONTAINER, PATH_LOOPBACK, PATH_PUBLISHED, PATH_URL
from stackgen.bench.gap import EXTRA_SIDES, PARTS

SCHEMA_VERSION = "stackgen-bench/1"
# `stackgen bench --proxies all --json`: the ranking, and one bench document per proxy.
COMPARISON_SCHEMA = "stackgen-bench-proxies/1"

# name -> (unit, comparison kind, which way is better)
METRICS: dict[str, tuple[str, str, str]] = {
    "stream_mbps": ("MB/s", "ratio", "higher"),
    "cpu_s_per_gb": ("CPU-s/GB", "ratio", "lower"),
    "seek_mbps": ("MB/s", "ratio", "higher"),
    "seek_ttfb_p50_ms": ("ms", "added", "lower"),
    "seek_ttfb_p99_ms": ("ms", "added", "lower"),
    "api_p50_ms": ("ms", "added", "lower"),
    "api_p99_ms": ("ms", "added", "lower"),
    "ws_connect_p50_ms": ("ms", "added", "lower"),
}
SIDES = ("proxied", "direct")
PATHS = (PATH_CONTAINER, PATH_PUBLISHED, PATH_LOOPBACK, PATH_URL)
DISTRIBUTIONS = ("seek_ttfb_ms", "api_latency_ms", "ws_connect_ms")


def validate(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a bench document (empty when it follows the schema)."""
    problems: list[str] = []

    def need(
        mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str
    ) -> Any:
        if key not in mapping:
            problems.append(f"{where}.{key} missing")
            return None
        value = mapping[key]
        if value is not None and not isinstance(value, kind):
            problems.append(f"{where}.{key} is {type(value).__name__}")
            return None
        return value

    if doc.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema is {doc.get('schema')!r}, expected {SCHEMA_VERSION!r}")
    for key in ("started", "finished"):
        need(doc, key, str, "$")
    machine = need(doc, "machine", dict, "$") or {}
    need(machine, "nproc", int, "machine")
    for key in ("loadavg_before", "loadavg_after"):
        load = need(machine, key, list, "machine")
        if load is not None and len(load) != 3:
            problems.append(f"machine.{key} must hold 3 numbers")
    need(doc, "settings", dict, "$")
    targets = need(doc, "targets", dict, "$") or {}
    need(targets, "proxied", dict, "targets")
    if "direct" not in targets:
        problems.append("targets.direct missing (null when not measured)")
    for side in SIDES:
        target = targets.get(side)
        if not isinstance(target, dict):
            continue
        where = f"targets.{side}"
        for key in ("url", "address", "protocol", "path"):
            need(target, key, str, where)
        need(target, "port", int, where)
        if target.get("path") not in PATHS:
            problems.append(f"{where}.path must be one of {', '.join(PATHS)}")
        # The negotiated TLS: null for plain http, or when the handshake failed (an error).
        for key in ("tls", "cipher", "alpn"):
            need(target, key, str, where)
    capacity = need(doc, "capacity", dict, "$") or {}
    for bitrate, cap in capacity.items():
        where = f"capacity.{bitrate}"
        if cap is None:
            continue
        if not isinstance(cap, dict):
            problems.append(f"{where} is not an object")
            continue
        need(cap, "streams", int, where)
        need(cap, "limit", str, where)
        need(cap, "core_share_per_stream", (int, float), where)
    verdict = need(doc, "verdict", list, "$") or []
    if not verdict or not all(isinstance(line, str) for line in verdict):
        problems.append("verdict must be a non-empty list of lines")
    for i, item in enumerate(need(doc, "expectations", list, "$") or []):
        if not isinstance(item, dict):
            problems.append(f"expectations[{i}] is not an object")
            continue
        need(item, "expect", str, f"expectations[{i}]")
        need(item, "passed", bool, f"expectations[{i}]")
    metrics = need(doc, "metrics", dict, "$") or {}
    for name, metric in metrics.items():
        where = f"metrics.{name}"
        if name not in METRICS:
            problems.append(f"{where}: unknown metric")
            continue
        if not isinstance(metric, dict):
            problems.append(f"{where} is not an object")
            continue
        unit, kind, _better = METRICS[name]
        if metric.get("unit") != unit:
            problems.append(f"{where}.unit must be {unit!r}")
        for side in SIDES:
            runs = need(metric, side, list, where)
            for value in runs or []:
                if value is not None and not isinstance(value, (int, float)):
                    problems.append(f"{where}.{side} holds {value!r}")
        compare = metric.get("compare")
        if compare is not None:
            if not isinstance(compare, dict) or compare.get("kind") != kind:
                problems.append(f"{where}.compare.kind must be {kind!r}")
            else:
                for key in ("n", "median", "q1", "q3", "min", "max", "low", "high", "coverage"):
                    need(compare, key, (int, float), f"{where}.compare")
    distributions = need(doc, "distributions", dict, "$") or {}
    for name, sides in distributions.items():
        if name not in DISTRIBUTIONS or not isinstance(sides, dict):
            problems.append(f"distributions.{name}: unknown or not an object")
    api = doc.get("api")
    if api is not None:
        for key in ("rate_rps", "sent", "errors"):
            need(api, key, (int, float), "api")
    streams = doc.get("streams")
    if streams is not None:
        for key in ("count", "bitrate_mbps", "duration_s", "bytes", "max_gap_ms", "errors"):
            need(streams, key, (int, float), "streams")
    ramp = doc.get("ramp")
    if ramp is not None:
        per_bitrate = need(ramp, "per_bitrate", dict, "ramp") or {}
        for bitrate, found in per_bitrate.items():
            where = f"ramp.per_bitrate.{bitrate}"
            if not isinstance(found, dict):
                problems.append(f"{where} is not an object")
                continue
            need(found, "stall_free", int, where)
            need(found, "limit", str, where)
            need(found, "trials", list, where)
    _validate_gap(doc.get("gap"), problems)
    need(doc, "errors", list, "$")
    return problems


def _validate_gap(found: Any, problems: list[str]) -> None:
    """`gap` (`--ceiling`): absent or null without a ceiling; otherwise each part of
    `gap.PARTS` is null (a side it needs did not run) or a ratio with its interval."""
    if found is None:
        return
    if not isinstance(found, dict):
        problems.append("gap is not an object")
        return
    parts = found.get("parts")
    if not isinstance(parts, dict) or set(parts) != set(PARTS):
        problems.append(f"gap.parts must name exactly {', '.join(PARTS)}")
    if not isinstance(parts, dict):
        parts = {}
    for part, spread in [*parts.items(), ("relay_cpu", found.get("relay_cpu"))]:
        if spread is None:
            continue
        where = "gap.relay_cpu" if part == "relay_cpu" else f"gap.parts.{part}"
        if not isinstance(spread, dict) or spread.get("kind") != "ratio":
            problems.append(f"{where} must be a ratio")
            continue
        for key in ("n", "median", "low", "high", "coverage"):
            if not isinstance(spread.get(key), (int, float)):
                problems.append(f"{where}.{key} must be a number")
    for key in ("stream_mbps", "cpu_s_per_gb"):
        series = found.get(key)
        if not isinstance(series, dict) or not all(
            isinstance(v, list) and all(x is None or isinstance(x, (int, float)) for x in v)
            for v in series.values()
        ):
            problems.append(f"gap.{key} must map each side to its runs")
    sides = found.get("sides")
    if not isinstance(sides, dict) or not sides or set(sides) - set(EXTRA_SIDES):
        problems.append(f"gap.sides must name the extra sides measured ({', '.join(EXTRA_SIDES)})")
        return
    for side, target in sides.items():
        if not isinstance(target, dict) or target.get("path") not in PATHS:
            problems.append(f"gap.sides.{side}.path must be one of {', '.join(PATHS)}")
            continue
        for key in ("url", "address", "protocol"):
            if not isinstance(target.get(key), str):
                problems.append(f"gap.sides.{side}.{key} must be a string")


def validate_comparison(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a `--proxies all` document (empty when it follows its schema)."""
    problems: list[str] = []
    if doc.get("schema") != COMPARISON_SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}, expected {COMPARISON_SCHEMA!r}")
    standings = doc.get("proxies")
    if not isinstance(standings, list) or not standings:
        problems.append("proxies must be a non-empty list")
        standings = []
    for i, item in enumerate(standings):
        if not isinstance(item, dict) or not isinstance(item.get("proxy"), str):
            problems.append(f"proxies[{i}] must name its proxy")
            continue
        for key in ("stream_mbps", "cpu_s_per_gb"):
            if item.get(key) is not None and not isinstance(item[key], (int, float)):
                problems.append(f"proxies[{i}].{key} must be a number or null")
        if item.get("error") is not None and not isinstance(item["error"], str):
            problems.append(f"proxies[{i}].error must be a string or null")
    lines = doc.get("recommendation")
    if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
        problems.append("recommendation must be a non-empty list of lines")
    runs = doc.get("runs")
    if not isinstance(runs, dict):
        problems.append("runs must map each proxy to its bench document (or null)")
        runs = {}
    for proxy, run in runs.items():
        if run is not None:
            problems += [f"runs.{proxy}: {p}" for p in validate(run)]
    return problems
