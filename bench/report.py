"""Write REPORT.md and its plots into a `make bench` results folder.

Usage: python -m bench.report RESULTS_DIR  (reads summary.json and the per-run JSONs
that `stackgen bench` wrote there; writes RESULTS_DIR/REPORT.md and RESULTS_DIR/plots/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stackgen.bench.report import bar_chart_svg, cdf_svg

REPORT_NAME = "REPORT.md"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio_cell(doc: dict[str, Any] | None, metric: str) -> str:
    if not doc:
        return "-"
    found = doc.get("metrics", {}).get(metric, {}).get("compare")
    if not found:
        return "-"
    # The median and its interval (what a verdict is judged on), not the min-max range.
    low, high = found.get("low", found["min"]), found.get("high", found["max"])
    if found["kind"] == "ratio":
        return f"{found['median']:.2f} [{low:.2f}, {high:.2f}]"
    return f"{found['median']:+.2f} [{low:+.2f}, {high:+.2f}]"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(results: Path) -> int:
    summary = json.loads((results / "summary.json").read_text())
    plots = results / "plots"
    plots.mkdir(exist_ok=True)
    report = results / REPORT_NAME
    rel = plots.name
    proxies: dict[str, dict[str, Any]] = summary["proxies"]
    baselines = summary.get("baselines") or {}
    knobs = summary["knobs"]
    machine = summary["machine"]

    # Throughput per proxy against direct, the ceiling and the docs config (medians).
    bars: list[tuple[str, float | None, float | None, float | None]] = [
        ("Jellyfin stand-in direct (HTTP)", baselines.get("standin_direct_mbps"), None, None),
        ("plain HTTP file server", baselines.get("plain_http_mbps"), None, None),
        ("TLS ceiling (bare nginx HTTPS)", baselines.get("ceiling_mbps"), None, None),
    ]
    for proxy, s in proxies.items():
        bars.append((f"{proxy}: stackgen, HTTP/1.1", s.get("stream_mbps"), None, None))
        if s.get("stream_h2_mbps") is not None:
            bars.append((f"{proxy}: stackgen, h2", s.get("stream_h2_mbps"), None, None))
        if s.get("docs_stream_mbps") is not None:
            bars.append((f"{proxy}: docs config, HTTP/1.1", s.get("docs_stream_mbps"), None, None))
    (plots / "throughput.svg").write_text(
        bar_chart_svg(
            "Full-GET stream throughput, median of runs (MB/s)",
            bars,
            unit="MB/s",
            reference=baselines.get("ceiling_mbps"),
            reference_label="TLS ceiling",
        )
    )
    ratio_bars: list[tuple[str, float | None, float | None, float | None]] = []
    for proxy in proxies:
        doc = load(results, f"{proxy}-h1-vs-ceiling")
        found = (doc or {}).get("metrics", {}).get("cpu_s_per_gb", {}).get("compare")
        if found:
            ratio_bars.append((proxy, found["median"], found["low"], found["high"]))
    (plots / "vs-ceiling.svg").write_text(
        bar_chart_svg(
            "Proxy CPU-s per GB / bare TLS server's, same run (median, 90 % interval)",
            ratio_bars,
            unit="x",
            reference=1.5,
            reference_label="goal 1.5",
        )
    )
    api_series: dict[str, list[float]] = {}
    for proxy in proxies:
        doc = load(results, f"{proxy}-api-vs-direct")
        dist = (doc or {}).get("distributions", {}).get("api_latency_ms", {})
        if dist.get("proxied"):
            api_series[proxy] = dist["proxied"]
        if dist.get("direct") and "direct" not in api_series:
            api_series["direct"] = dist["direct"]
    (plots / "api-latency.svg").write_text(
        cdf_svg("API latency at 200 req/s, open loop (CDF)", api_series, unit="ms")
    )
    seek_series: dict[str, list[float]] = {}
    for proxy in proxies:
        doc = load(results, f"{proxy}-h1-vs-direct")
        dist = (doc or {}).get("distributions", {}).get("seek_ttfb_ms", {})
        if dist.get("proxied"):
            seek_series[proxy] = dist["proxied"]
        if dist.get("direct") and "direct" not in seek_series:
            seek_series["direct"] = dist["direct"]
    (plots / "seek-ttfb.svg").write_text(
        cdf_svg("Seek time to first byte, 1 MiB ranges (CDF)", seek_series, unit="ms")
    )

    lines = [
        "# stackgen bench report",
        "",
        f"Run {summary['started']} → {summary['finished']} (UTC), `make bench` on "
        f"{machine['nproc']} cores, load average {machine['loadavg_before']} before and "
        f"{machine['loadavg_after']} after. Knobs: {json.dumps(knobs)}.",
        "",
        "Every comparison is per interleaved pair (A-B-B-A): the cell shows the median over "
        "pairs and, in brackets, min-max. Ratios are proxied / baseline; latencies are "
        "milliseconds added over the baseline. How to read each number: "
        "`docs/performance.md`.",
        "",
        "## Baselines (same run)",
        "",
        "- Jellyfin stand-in direct (HTTP, sendfile): "
        f"{_fmt(baselines.get('standin_direct_mbps'), 0)} MB/s",
        "- TLS ceiling (bare nginx, HTTPS, same TLS settings): "
        f"{_fmt(baselines.get('ceiling_mbps'), 0)} MB/s",
        f"- plain HTTP (same nginx, no TLS): {_fmt(baselines.get('plain_http_mbps'), 0)} MB/s",
        f"- ceiling / stand-in direct: {_fmt(baselines.get('ceiling_vs_standin'))} — the origin's "
        "headroom: below 1 means the origin serves faster than TLS can carry it.",
        "- TLS ceiling's own CPU: "
        f"{_fmt(baselines.get('ceiling_cpu_s_per_gb'))} CPU-s per GB streamed (compare each "
        "proxy's row below)",
        f"- {knobs.get('streams', 'n/a')} paced players against the TLS ceiling (no proxy): "
        f"longest gap {_fmt(baselines.get('ceiling_streams_max_gap_ms'), 0)} ms (at "
        f"{_fmt(baselines.get('ceiling_streams_max_gap_at_s'), 1)} s), slowest start-up "
        f"{_fmt(baselines.get('ceiling_streams_first_byte_ms_max'), 0)} ms, errors "
        f"{_fmt(baselines.get('ceiling_streams_errors'))} — the machine's own share of any "
        "paced-stream gap",
        *(
            [
                "- the same players at Jellyfin direct (the stand-in, plain HTTP, no proxy): "
                f"longest gap {_fmt(baselines.get('direct_streams_max_gap_ms'), 0)} ms, of "
                "which the longest wait for a next response head "
                f"{_fmt(baselines.get('direct_streams_max_head_gap_ms'), 0)} ms, slowest "
                f"start-up {_fmt(baselines.get('direct_streams_first_byte_ms_max'), 0)} ms "
                "— the origin's own share"
            ]
            if "direct_streams_max_gap_ms" in baselines
            else []
        ),
        "",
        "## Per proxy",
        "",
        "| | " + " | ".join(proxies) + " |",
        "|---|" + "---|" * len(proxies),
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    docs = {p: load(results, f"{p}-h1-vs-docs") for p in proxies}
    main_docs = {p: load(results, f"{p}-h1-vs-direct") for p in proxies}
    api_docs = {p: load(results, f"{p}-api-vs-direct") for p in proxies}
    # These four rows are one run per proxy (`PROXY-h1-vs-ceiling`), interleaved pairs.
    ceilings = {p: load(results, f"{p}-h1-vs-ceiling") for p in proxies}
    row("stream MB/s, HTTP/1.1 (median)", [_fmt(proxies[p].get("stream_mbps"), 0) for p in proxies])
    row(".. bare TLS server, same run", [_fmt(proxies[p].get("ceiling_mbps"), 0) for p in proxies])
    row(".. / TLS ceiling", [_ratio_cell(ceilings[p], "stream_mbps") for p in proxies])
    row(
        "proxy CPU-s per GB / bare TLS server's, same run",
        [_ratio_cell(ceilings[p], "cpu_s_per_gb") for p in proxies],
    )
    row(".. / Jellyfin direct", [_ratio_cell(main_docs[p], "stream_mbps") for p in proxies])
    row(
        "h2 / HTTP/1.1, same proxy",
        [_ratio_cell(load(results, f"{p}-h2-vs-h1"), "stream_mbps") for p in proxies],
    )
    row(
        "h2 / TLS ceiling over h2",
        [_ratio_cell(load(results, f"{p}-h2-vs-ceiling-h2"), "stream_mbps") for p in proxies],
    )
    row("stackgen / docs config (HTTP/1.1)", [_ratio_cell(docs[p], "stream_mbps") for p in proxies])
    row(
        "stackgen / docs config (h2)",
        [_ratio_cell(load(results, f"{p}-h2-vs-docs-h2"), "stream_mbps") for p in proxies],
    )
    row("seek-heavy MB/s / direct", [_ratio_cell(main_docs[p], "seek_mbps") for p in proxies])
    row("seek TTFB p50, ms added", [_ratio_cell(main_docs[p], "seek_ttfb_p50_ms") for p in proxies])
    row("API p50, ms added", [_ratio_cell(api_docs[p], "api_p50_ms") for p in proxies])
    row("API p99, ms added", [_ratio_cell(api_docs[p], "api_p99_ms") for p in proxies])
    row("API p50, stackgen - docs, ms", [_ratio_cell(docs[p], "api_p50_ms") for p in proxies])
    row("API errors", [_fmt(proxies[p].get("api_errors")) for p in proxies])
    row(
        "WebSocket connect p50, ms added",
        [_ratio_cell(main_docs[p], "ws_connect_p50_ms") for p in proxies],
    )
    for bitrate in summary.get("knobs", {}).get("ramp_mbps") or []:
        key = f"{bitrate:g}"
        ceiling = (baselines.get("ceiling_capacity") or {}).get(key)
        row(
            f"stall-free players at {key} Mbit/s (bare TLS server: {_fmt(ceiling, 0)})",
            [_fmt((proxies[p].get("capacity") or {}).get(key), 0) for p in proxies],
        )
    row(
        "paced streams: max gap ms",
        [_fmt(proxies[p].get("streams_max_gap_ms"), 0) for p in proxies],
    )
    row(
        ".. when (s) / longest wait for a next head ms / slowest start-up ms",
        [
            f"{_fmt(proxies[p].get('streams_max_gap_at_s'), 1)} / "
            f"{_fmt(proxies[p].get('streams_max_head_gap_ms'), 0)} / "
            f"{_fmt(proxies[p].get('streams_first_byte_ms_max'), 0)}"
            for p in proxies
        ],
    )
    row(
        "paced streams: errors + byte mismatches",
        [_fmt(proxies[p].get("streams_failures")) for p in proxies],
    )
    row("proxy CPU s per GB streamed", [_fmt(proxies[p].get("cpu_s_per_gb")) for p in proxies])
    row(
        "proxy CPU s per 1,000 API calls",
        [_fmt(proxies[p].get("cpu_s_per_1000_api"), 3) for p in proxies],
    )
    row(
        "proxy RSS peak MiB (growth)",
        [
            f"{_fmt(proxies[p].get('rss_peak_mib'), 1)} "
            f"({_fmt(proxies[p].get('rss_growth_mib'), 1)})"
            for p in proxies
        ],
    )
    row(
        "`stackgen up` s, first / warm",
        [
            f"{_fmt(proxies[p].get('up_seconds_first'), 1)} / "
            f"{_fmt(proxies[p].get('up_seconds'), 1)}"
            for p in proxies
        ],
    )
    errors = {p: s["error"] for p, s in proxies.items() if s.get("error")}
    lines += [
        "",
        "## Plots",
        "",
        f"![throughput]({rel}/throughput.svg)",
        "",
        f"![vs ceiling]({rel}/vs-ceiling.svg)",
        "",
        f"![API latency]({rel}/api-latency.svg)",
        "",
        f"![seek TTFB]({rel}/seek-ttfb.svg)",
        "",
        "## Goals",
        "",
        f"Judged with {summary.get('goals_version', 'goals/1')} (explanations "
        f"{summary.get('limits_version', 'limits/1')}). A paired figure is its "
        "median over the pairs with the interval that covers the true median at 90 % or "
        "more; a goal whose interval straddles its target is **inconclusive**, not met.",
        "",
        "| proxy | goal | measured [interval] | target | |",
        "|---|---|---|---|---|",
    ]
    for goal in summary["goals"]:
        sign = {"ge": "≥", "le": "≤", "eq": "="}[goal["op"]]
        measured = "not measured" if goal["measured"] is None else f"{goal['measured']:.3g}"
        if goal.get("low") is not None and goal.get("low") != goal.get("high"):
            measured += f" [{goal['low']:.3g}, {goal['high']:.3g}], {goal.get('pairs')} pairs"
        state = goal.get("state") or ("met" if goal["ok"] else "missed")
        lines.append(
            f"| {goal['proxy']} | {goal['goal']} | {measured} | {sign} {goal['target']:g} | "
            f"{'ok' if state == 'met' else f'**{state}**'} |"
        )
    missed = [goal for goal in summary["goals"] if not goal["ok"]]
    if missed:
        lines += [
            "",
            "## Goals missed or inconclusive: by how much, and what limits them",
            "",
            "| proxy | goal | short by | what limits it (figures from this run) |",
            "|---|---|---|---|",
        ]
        for goal in missed:
            short, unit = goal.get("short_by"), goal.get("unit") or ""
            by = "n/a" if short is None else f"{short:.3g}{' ' + unit if unit != 'x' else ''}"
            lines.append(f"| {goal['proxy']} | {goal['goal']} | {by} | {goal.get('limit') or ''} |")
    if errors:
        lines += ["", "## Runs that broke", ""]
        lines += [f"- {p}: `{e.splitlines()[0][:300]}`" for p, e in errors.items()]
    lines.append("")
    report.write_text("\n".join(lines))
    print(f"wrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.report RESULTS_DIR")
    sys.exit(main(Path(sys.argv[1])))
