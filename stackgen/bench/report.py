"""Human output of a bench document: a table for stderr and a dependency-free SVG.

SVG rather than matplotlib: a bar chart of a handful of ratios needs no plotting stack,
so `stackgen bench --plot` works in the base install (and in CI) with nothing extra.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from stackgen.bench import gap
from stackgen.bench.stats import percentile

_LABELS = {
    "stream_mbps": "stream, full GET",
    "cpu_s_per_gb": "server CPU per GB streamed",
    "seek_mbps": "stream, seek-heavy (1 MiB ranges)",
    "seek_ttfb_p50_ms": "seek TTFB p50",
    "seek_ttfb_p99_ms": "seek TTFB p99",
    "api_p50_ms": "API p50",
    "api_p99_ms": "API p99",
    "ws_connect_p50_ms": "WebSocket connect p50",
}


def _median(values: Sequence[float | None]) -> float:
    return percentile([v for v in values if v is not None], 50)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"{text} {unit}".strip()


def _compare(compare: Mapping[str, Any] | None) -> str:
    if not compare:
        return "-"
    # The interval of the median (see stats.median_interval), not min-max: it is what a
    # verdict is judged on.
    low, high = compare.get("low", compare["min"]), compare.get("high", compare["max"])
    cover = compare.get("coverage")
    tail = f"n={compare['n']}" + (f", {cover:.0%}" if isinstance(cover, float) else "")
    if compare["kind"] == "ratio":
        return f"x{compare['median']:.2f} [{low:.2f}, {high:.2f}] ({tail})"
    return f"{compare['median']:+.2f} ms [{low:+.2f}, {high:+.2f}] ({tail})"


def render_table(doc: Mapping[str, Any]) -> str:
    rows = [("metric", "proxied (median)", "direct (median)", "proxied vs direct, per pair")]
    for name, metric in doc.get("metrics", {}).items():
        rows.append(
            (
                _LABELS.get(name, name),
                _fmt(_median(metric["proxied"]), metric["unit"]),
                _fmt(_median(metric["direct"]), metric["unit"]) if metric["direct"] else "-",
                _compare(metric.get("compare")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    table = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    table.insert(1, "  ".join("-" * w for w in widths))
    # The answer first, then the user's own thresholds, then the details.
    lines = list(doc.get("verdict") or [])
    for expectation in doc.get("expectations") or []:
        lines.append(expectation.get("line") or "")
    lines += ["", *_connection_lines(doc), *table, *gap.lines(doc.get("gap"))]
    api = doc.get("api")
    if api:
        lines.append(
            f"API: {api['sent']} requests at {api['rate_rps']:g}/s (open loop), "
            f"{api['errors']} errors, {api['late_sends']} sent late by the client"
        )
    streams = doc.get("streams")
    if streams:
        lines.append(
            f"streams: {streams['count']} x {streams['bitrate_mbps']:g} Mbit/s for "
            f"{streams['duration_s']:g}s: max gap {streams['max_gap_ms']:.0f} ms"
            + (
                f" (at {streams['max_gap_at_s']:.1f}s; start-up up to "
                f"{streams['first_byte_ms_max']:.0f} ms)"
                if streams.get("max_gap_at_s") is not None
                and streams.get("first_byte_ms_max") is not None
                else ""
            )
            + f", {streams['errors']} errors"
            + (
                f", {streams['byte_mismatches']} byte mismatches"
                if streams.get("byte_mismatches") is not None
                else ""
            )
        )
    machine = doc.get("machine", {})
    lines.append(
        f"machine: {machine.get('nproc')} cores, load {machine.get('loadavg_before')} -> "
        f"{machine.get('loadavg_after')}"
    )
    for error in doc.get("errors", []):
        lines.append(f"error: {error}")
    return "\n".join(lines)


def _connection_lines(doc: Mapping[str, Any]) -> list[str]:
    lines = []
    for side, target in (doc.get("targets") or {}).items():
        if not target:
            continue
        tls = (
            f"{target.get('tls')} {target.get('cipher')}, ALPN {target.get('alpn')}"
            if target.get("tls")
            else "no TLS"
        )
        lines.append(
            f"{side}: {target.get('address')}:{target.get('port')} via the "
            f"{target.get('path')}, {tls}"
        )
    return lines


# --- SVG -----------------------------------------------------------------------------------


def bar_chart_svg(
    title: str,
    bars: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    unit: str,
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """Horizontal bars (label, value, low, high); whiskers from low to high when given."""
    row_h, left, right, top = 26, 260, 120, 40
    width = 820
    height = top + row_h * len(bars) + 30
    finite = [
        v for _, value, _, hi in bars for v in (value, hi) if v is not None and math.isfinite(v)
    ]
    scale_max = max([*finite, reference or 0.0, 1e-9]) * 1.1
    plot_w = width - left - right

    def x(value: float) -> float:
        return left + plot_w * max(0.0, value) / scale_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (label, value, low, high) in enumerate(bars):
        y = top + i * row_h
        out.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{html.escape(label)}</text>'
        )
        if value is not None and math.isfinite(value):
            out.append(
                f'<rect x="{left}" y="{y + 4}" width="{x(value) - left:.1f}" height="{row_h - 8}" '
                'fill="#4a7bb7"/>'
            )
            if low is not None and high is not None:
                out.append(
                    f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y + row_h / 2}" '
                    f'y2="{y + row_h / 2}" stroke="black" stroke-width="1.5"/>'
                )
            out.append(
                f'<text x="{x(max(value, high or value)) + 6:.1f}" y="{y + 16}">'
                f"{html.escape(_fmt(value, unit))}</text>"
            )
    if reference is not None:
        rx = x(reference)
        out.append(
            f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{top - 6}" y2="{height - 24}" '
            'stroke="#c0392b" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{rx:.1f}" y="{height - 8}" fill="#c0392b" text-anchor="middle">'
            f"{html.escape(reference_label)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cdf_svg(title: str, series: Mapping[str, Sequence[float]], *, unit: str) -> str:
    """Latency distributions as cumulative curves (x: latency, y: share of requests)."""
    width, height, left, bottom, top, right = 820, 360, 60, 40, 40, 170
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    x_max = percentile(values, 99.5) * 1.1 if values else 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    colors = ["#4a7bb7", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for tick in range(5):
        tx = left + plot_w * tick / 4
        out.append(
            f'<text x="{tx:.0f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{x_max * tick / 4:.1f} {html.escape(unit)}</text>"
        )
        ty = top + plot_h - plot_h * tick / 4
        out.append(f'<text x="{left - 6}" y="{ty + 4:.0f}" text-anchor="end">{tick * 25}%</text>')
    for i, (name, samples) in enumerate(series.items()):
        ordered = sorted(v for v in samples if math.isfinite(v))
        if not ordered:
            continue
        color = colors[i % len(colors)]
        points = []
        for j, v in enumerate(ordered):
            px = left + plot_w * min(v, x_max) / x_max
            py = top + plot_h - plot_h * (j + 1) / len(ordered)
            points.append(f"{px:.1f},{py:.1f}")
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
            f'points="{" ".join(points)}"/>'
        )
        ly = top + 14 + i * 16
        out.append(
            f'<text x="{left + plot_w + 10}" y="{ly}" fill="{color}">{html.escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bench_plot(doc: Mapping[str, Any]) -> str:
    """`stackgen bench --plot`: proxied/direct ratios per metric, then API latency CDF."""
    bars = []
    for name, metric in doc.get("metrics", {}).items():
        compare = metric.get("compare")
        if compare and compare["kind"] == "ratio":
            bars.append(
                (_LABELS.get(name, name), compare["median"], compare["min"], compare["max"])
            )
    chart = bar_chart_svg(
        "proxied / direct throughput (median of pairs, whisker min-max)",
        bars,
        unit="x",
        reference=1.0,
        reference_label="direct",
    )
    api = doc.get("distributions", {}).get("api_latency_ms", {})
    if not api:
        return chart
    cdf = cdf_svg("API latency (open loop)", api, unit="ms")
    # Two charts in one file: stack them in an outer SVG.
    inner_h = [int(_attr(chart, "height")), int(_attr(cdf, "height"))]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="820" height="{sum(inner_h)}">\n'
        f'<g>{chart}</g>\n<g transform="translate(0,{inner_h[0]})">{cdf}</g>\n</svg>\n'
    )


def _attr(svg: str, name: str) -> str:
    head = svg.split(">", 1)[0]
    return head.split(f'{name}="', 1)[1].split('"', 1)[0]
