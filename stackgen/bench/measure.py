"""One bench run: every phase, proxied and direct interleaved A-B-B-A, into a document.

Phases (each bounded in count and time):
- stream: one full GET of the media file (curl) -> MB/s, and when the side's container
  is known, its CPU-seconds per GB served (cgroup counters around that transfer)
- seek: `seeks` Range requests of `seek_bytes` at random offsets on one connection
  (curl) -> MB/s of the pattern and time to first byte per request
- api: GET /System/Info/Public at `rate` per second for `duration`, open loop -> latency
- ws: `ws_connects` WebSocket handshakes on new connections -> connect time
- streams: `streams` paced streams at `bitrate_mbps` for `duration`, proxied only ->
  longest gap between chunks (not paired: it is a pass/fail property of the proxy)
- extra sides (`extras`: the bare TLS server, the same over plain HTTP, the published
  port): one full GET each right after the proxied side's in every pair, in a rotating
  order -> the gap split of `gap.py`
- ramp (with `ramp_bitrates`): buffered players (start-up buffer, read-ahead, seeks,
  staggered starts) at each bitrate, proxied only, their number ramped until one stalls
  -> the largest stall-free count per bitrate (`capacity.largest_passing`)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import platform
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stackgen.bench import curl, gap, h1, players
from stackgen.bench.capacity import largest_passing
from stackgen.bench.cgroup import Cgroup, CgroupError
from stackgen.bench.endpoint import Endpoint
from stackgen.bench.schedule import run_open_loop
from stackgen.bench.schema import METRICS, SCHEMA_VERSION
from stackgen.bench.stats import abba_order, compare_pairs, percentile
from stackgen.redaction import redact

PHASES = ("stream", "seek", "api", "ws", "streams")
RAMP_STAGGER_S = 0.25  # between two players' starts: viewers do not press play together
MiB = 1 << 20
MAX_DISTRIBUTION_SAMPLES = 2000  # per side: enough for a plot, small enough for a file


@dataclass(frozen=True)
class BenchSettings:
    pairs: int = 3
    duration: float = 5.0  # seconds of open-loop API per run, and of the paced streams
    rate: float = 200.0
    seeks: int = 40
    seek_bytes: int = MiB
    stream_max_time: float = 60.0
    streams: int = 4
    bitrate_mbps: float = 20.0
    ws_connects: int = 20
    media_path: str = "/Videos/stackgen-bench/stream?static=true"
    api_path: str = "/System/Info/Public"
    token: str = "stackgen-bench"
    check_bytes: bool = False  # compare paced streams with the stand-in's byte pattern
    only: frozenset[str] = frozenset(PHASES)
    seed: int = 9
    timeout: float = 10.0
    ramp_bitrates: tuple[float, ...] = ()  # Mbit/s; empty: no ramp
    ramp_seconds: float = 20.0  # each trial, per player
    ramp_max: int = 64  # players at most, per bitrate
    habits: h1.PlayerHabits = field(default_factory=h1.PlayerHabits)

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.pairs > 50:
            raise ValueError("pairs must be 1..50")
        if not 0 < self.duration <= 600:
            raise ValueError("duration must be in (0, 600] seconds")
        if not 0 < self.rate <= 5000:
            raise ValueError("rate must be in (0, 5000] requests per second")
        if not 0 <= self.streams <= 200:
            raise ValueError("streams must be 0..200")
        if any(not 0 < b <= 1000 for b in self.ramp_bitrates) or len(self.ramp_bitrates) > 8:
            raise ValueError("ramp bitrates must be in (0, 1000] Mbit/s, 8 at most")
        if not 1 <= self.ramp_max <= 200 or not 0 < self.ramp_seconds <= 600:
            raise ValueError("ramp-max must be 1..200 and ramp-seconds in (0, 600]")
        unknown = set(self.only) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(PHASES)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "duration_s": self.duration,
            "rate_rps": self.rate,
            "seeks": self.seeks,
            "seek_bytes": self.seek_bytes,
            "streams": self.streams,
            "bitrate_mbps": self.bitrate_mbps,
            "ws_connects": self.ws_connects,
            "media_path": redact(self.media_path),  # it may carry an api_key (a gated stack)
            "api_path": self.api_path,
            "phases": [p for p in PHASES if p in self.only],
            "seed": self.seed,
            "ramp_bitrates_mbps": list(self.ramp_bitrates),
            "ramp_seconds": self.ramp_seconds,
            "ramp_max": self.ramp_max,
            "player": {
                "start_s": self.habits.start_s,
                "buffer_s": self.habits.buffer_s,
                "seek_every_s": self.habits.seek_every_s,
                "stagger_s": RAMP_STAGGER_S,
            },
        }


Progress = Callable[[str], None]


@dataclass
class _Collected:
    # metric -> side -> pair index -> value: keyed by pair, so a failed run leaves a hole
    # instead of shifting every later run into the wrong pair.
    runs: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    pair: int = 0  # the pair being measured
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    api_sent: int = 0
    api_errors: int = 0
    api_late: int = 0
    api_max_send_lag_ms: float = 0.0
    api_connections: int = 0
    api_connections_by_side: dict[str, int] = field(default_factory=dict)
    api_stale_retries: int = 0

    def add(self, metric: str, side: str, value: float) -> None:
        self.runs.setdefault(metric, {}).setdefault(side, {})[self.pair] = value

    def series(self, metric: str, side: str, pairs: int) -> list[float | None]:
        """One entry per pair, None where that side's run failed or did not run."""
        by_pair = self.runs.get(metric, {}).get(side, {})
        return [by_pair.get(i) for i in range(pairs)]

    def sample(self, name: str, side: str, values: Sequence[float]) -> None:
        self.samples.setdefault(name, {}).setdefault(side, []).extend(values)


def media_size(ep: Endpoint, settings: BenchSettings) -> int:
    """The media file's length, from a one-byte Range request's Content-Range."""

    async def ask() -> int:
        conn = await asyncio.wait_for(h1.AsyncConnection.open(ep), settings.timeout)
        try:
            reply = await asyncio.wait_for(
                conn.request(ep, "GET", ep.path(settings.media_path), {"Range": "bytes=0-0"}),
                settings.timeout,
            )
        finally:
            conn.close()
        total = reply.headers.get("content-range", "").rpartition("/")[2]
        if reply.status != 206 or not total.isdigit():
            raise h1.HttpError(
                f"{ep.url(settings.media_path)} answered {reply.status} to a Range request "
                "(is --media-path a direct-play stream?)"
            )
        return int(total)

    return asyncio.run(ask())


def run_bench(
    proxied: Endpoint,
    direct: Endpoint | None,
    settings: BenchSettings,
    progress: Progress,
    cpu: Mapping[str, Cgroup] | None = None,
    extras: Mapping[str, Endpoint] | None = None,
) -> dict[str, Any]:
    """`cpu` maps a side's name to its server's container cgroup (CPU per GB is measured
    for those sides only); `extras` maps a side of `gap.EXTRA_SIDES` to its endpoint."""
    extras = dict(extras or {})
    unknown = set(extras) - set(gap.EXTRA_SIDES)
    if unknown:
        raise ValueError(f"unknown extra side(s) {sorted(unknown)}")
    started = _now()
    load_before = list(os.getloadavg())
    size = media_size(proxied, settings)
    progress(f"media: {size / MiB:.0f} MiB at {redact(proxied.url(settings.media_path))}")
    sides: dict[str, Endpoint] = {"A": proxied}
    if direct is not None:
        sides["B"] = direct
    order = (
        abba_order(settings.pairs)
        if direct is not None
        else [(i, "A") for i in range(settings.pairs)]
    )
    got = _Collected()
    described: dict[str, dict[str, Any]] = {}
    for ep in [*sides.values(), *extras.values()]:
        described[ep.name] = {**ep.describe(), **_negotiated(ep, settings, got)}
    for pair, side in order:
        ep = sides[side]
        got.pair = pair
        tag = f"pair {pair + 1}/{settings.pairs} {ep.name}"
        # The same seek offsets for both sides of a pair: a pair differs only by the path.
        seek_rng = random.Random(settings.seed * 1000 + pair)  # noqa: S311 - not secrets
        offsets = seek_rng.sample(range(max(1, size - settings.seek_bytes)), k=settings.seeks)
        steps: list[tuple[str, Callable[[], str]]] = [
            (
                "stream",
                functools.partial(_stream, ep, size, settings, got, (cpu or {}).get(ep.name)),
            ),
            ("seek", functools.partial(_seek, ep, offsets, settings, got)),
            ("api", functools.partial(_api, ep, settings, got)),
            ("ws", functools.partial(_ws, ep, settings, got)),
        ]
        for phase, step in steps:
            if phase in settings.only:
                _phase(got, tag, phase, step, progress)
        if side == "A" and "stream" in settings.only:
            for name in gap.rotation([s for s in gap.EXTRA_SIDES if s in extras], pair):
                extra = extras[name]
                step = functools.partial(_stream, extra, size, settings, got, (cpu or {}).get(name))
                _phase(got, f"pair {pair + 1}/{settings.pairs} {name}", "stream", step, progress)
    streams = None
    if "streams" in settings.only and settings.streams > 0:
        progress(
            f"streams: {settings.streams} x {settings.bitrate_mbps:g} Mbit/s for "
            f"{settings.duration:g}s through {proxied.name}"
        )
        streams = paced_streams(proxied, size, settings)
        if streams["errors"]:
            got.errors += [redact(f"streams: {e}") for e in streams["error_samples"]]
    ramp = None
    if settings.ramp_bitrates:
        ramp = ramp_players(proxied, size, settings, progress)
        got.errors += [redact(str(e)) for e in ramp.pop("errors")]
    metrics: dict[str, Any] = {}
    for name in got.runs:
        unit, kind, better = METRICS[name]
        a = got.series(name, "proxied", settings.pairs)
        b = got.series(name, "direct", settings.pairs) if direct is not None else []
        spread = compare_pairs(a, b, "ratio" if kind == "ratio" else "added") if b else None
        metrics[name] = {
            "unit": unit,
            "better": better,
            "proxied": _rounded(a),
            "direct": _rounded(b),
            "compare": spread.to_json() if spread else None,
        }
    gap_doc = None
    if extras:
        named = ["proxied", *extras]
        gap_doc = gap.split(
            {n: _rounded(got.series("stream_mbps", n, settings.pairs)) for n in named},
            {
                n: _rounded(got.series("cpu_s_per_gb", n, settings.pairs))
                for n in named
                if n in (cpu or {})
            },
        )
        gap_doc["sides"] = {n: described[n] for n in extras}
    distributions = {
        name: {side: _thin(values) for side, values in by_side.items()}
        for name, by_side in got.samples.items()
    }
    return {
        "schema": SCHEMA_VERSION,
        "started": started,
        "finished": _now(),
        "machine": {
            "nproc": os.cpu_count() or 0,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "kernel": platform.release(),
            "python": platform.python_version(),
            "client": curl.curl_version(),
        },
        "settings": settings.to_json(),
        "targets": {
            "proxied": described["proxied"],
            "direct": described.get(direct.name) if direct else None,
        },
        "media_bytes": size,
        "metrics": metrics,
        "distributions": distributions,
        "api": {
            "rate_rps": settings.rate,
            "sent": got.api_sent,
            "errors": got.api_errors,
            "late_sends": got.api_late,
            "max_send_lag_ms": round(got.api_max_send_lag_ms, 3),
            "connections_opened": got.api_connections,
            # Per side: a proxy that closes kept-alive connections shows here first.
            "connections_by_side": dict(got.api_connections_by_side),
            "stale_retries": got.api_stale_retries,
        }
        if "api" in settings.only
        else None,
        "streams": streams,
        "ramp": ramp,
        "gap": gap_doc,
        "errors": got.errors,
    }


def _negotiated(ep: Endpoint, settings: BenchSettings, got: _Collected) -> dict[str, Any]:
    """The TLS version, cipher and ALPN the streaming client gets from `ep`."""
    try:
        return curl.negotiated(ep, settings.media_path, max_time=settings.timeout)
    except (OSError, curl.CurlError) as exc:
        got.errors.append(f"{ep.name}: {exc}"[:300])
        return {"tls": None, "cipher": None, "alpn": None}


def _phase(
    got: _Collected, tag: str, phase: str, run: Callable[[], str], progress: Progress
) -> None:
    try:
        progress(f"{tag}: {phase} {run()}")
    except (OSError, curl.CurlError, h1.HttpError, ValueError, TimeoutError) as exc:
        # The error may quote the URL it failed on, token included.
        message = redact(f"{tag}: {phase} failed: {type(exc).__name__}: {exc}")
        got.errors.append(message[:300])
        progress(message)


def _stream(
    ep: Endpoint, size: int, settings: BenchSettings, got: _Collected, group: Cgroup | None
) -> str:
    cpu0 = _cpu(group)
    (transfer,), _wall = curl.run_transfers(
        ep, settings.media_path, [None], max_time=settings.stream_max_time
    )
    cpu1 = _cpu(group)
    if transfer.status != 200 or transfer.size != size:
        raise curl.CurlError(f"full GET gave {transfer.status}, {transfer.size} of {size} bytes")
    mbps = transfer.size / transfer.total_s / 1e6
    got.add("stream_mbps", ep.name, mbps)
    if cpu0 is None or cpu1 is None:
        return f"{mbps:.0f} MB/s"
    per_gb = (cpu1 - cpu0) / (transfer.size / 1e9)
    got.add("cpu_s_per_gb", ep.name, per_gb)
    return f"{mbps:.0f} MB/s, {per_gb:.2f} CPU-s/GB"


def _cpu(group: Cgroup | None) -> float | None:
    if group is None:
        return None
    try:
        return group.cpu_seconds()
    except (OSError, CgroupError, ValueError):
        return None


def _seek(ep: Endpoint, offsets: Sequence[int], settings: BenchSettings, got: _Collected) -> str:
    ranges: list[tuple[int, int] | None] = [(o, o + settings.seek_bytes - 1) for o in offsets]
    transfers, wall = curl.run_transfers(ep, settings.media_path, ranges, max_time=settings.timeout)
    bad = [t for t in transfers if t.status != 206 or t.size != settings.seek_bytes]
    if bad:
        raise curl.CurlError(f"{len(bad)} Range request(s) failed, e.g. {bad[0].status}")
    ttfb = [t.ttfb_s * 1000 for t in transfers]
    got.add("seek_ttfb_p50_ms", ep.name, percentile(ttfb, 50))
    got.add("seek_ttfb_p99_ms", ep.name, percentile(ttfb, 99))
    mbps = sum(t.size for t in transfers) / wall / 1e6
    got.add("seek_mbps", ep.name, mbps)
    got.sample("seek_ttfb_ms", ep.name, ttfb)
    return f"TTFB p50 {percentile(ttfb, 50):.2f} ms, {mbps:.0f} MB/s"


def _api(ep: Endpoint, settings: BenchSettings, got: _Collected) -> str:
    async def go() -> tuple[Any, h1.ConnectionPool]:
        pool = h1.ConnectionPool(ep)
        headers = {"Accept": "application/json"}
        path = ep.path(settings.api_path)
        # Warm one connection first: the open loop measures requests, not the handshake.
        await asyncio.wait_for(pool.request("GET", path, headers), settings.timeout)

        async def send() -> None:
            reply = await pool.request("GET", path, headers)
            if reply.status != 200:
                raise h1.HttpError(f"API call answered {reply.status}")

        try:
            result = await run_open_loop(
                settings.rate, settings.duration, send, timeout=settings.timeout
            )
        finally:
            pool.close()
        return result, pool

    result, pool = asyncio.run(go())
    got.api_sent += result.sent
    got.api_errors += result.errors
    got.api_late += result.late_sends
    got.api_max_send_lag_ms = max(got.api_max_send_lag_ms, result.max_send_lag_ms)
    got.api_connections += pool.opened
    side_total = got.api_connections_by_side.get(ep.name, 0) + pool.opened
    got.api_connections_by_side[ep.name] = side_total
    got.api_stale_retries += pool.stale_retries
    got.errors += [redact(f"api {ep.name}: {e}") for e in result.error_samples]
    p50 = percentile(result.latencies_ms, 50)
    p99 = percentile(result.latencies_ms, 99)
    got.add("api_p50_ms", ep.name, p50)
    got.add("api_p99_ms", ep.name, p99)
    got.sample("api_latency_ms", ep.name, result.latencies_ms)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {result.errors} errors of {result.sent}"


def _ws(ep: Endpoint, settings: BenchSettings, got: _Collected) -> str:
    path = ep.path(f"/socket?api_key={settings.token}")

    async def go() -> list[float]:
        times = []
        for _ in range(settings.ws_connects):
            times.append(
                await asyncio.wait_for(h1.websocket_handshake(ep, path), settings.timeout) * 1000
            )
        return times

    times = asyncio.run(go())
    p50 = percentile(times, 50)
    got.add("ws_connect_p50_ms", ep.name, p50)
    got.sample("ws_connect_ms", ep.name, times)
    return f"connect p50 {p50:.2f} ms"


def paced_streams(ep: Endpoint, size: int, settings: BenchSettings) -> dict[str, Any]:
    results = players.run_players(
        ep,
        settings.media_path,
        count=settings.streams,
        size=size,
        bitrate_bps=settings.bitrate_mbps * 1e6,
        duration=settings.duration,
        check_bytes=settings.check_bytes,
        timeout=settings.timeout,
    )
    errors = [e for r in results for e in r.errors]
    total = sum(r.bytes for r in results)
    worst = max(results, key=lambda r: r.max_gap_ms, default=None)
    starts = [r.first_byte_ms for r in results if r.first_byte_ms is not None]
    return {
        "target": ep.name,
        "count": settings.streams,
        "bitrate_mbps": settings.bitrate_mbps,
        "duration_s": settings.duration,
        "bytes": total,
        "achieved_mbps": round(total * 8 / settings.duration / 1e6 / max(1, settings.streams), 2),
        "max_gap_ms": round(worst.max_gap_ms, 3) if worst else 0.0,
        "max_gap_at_s": round(worst.max_gap_at_s, 3) if worst else None,
        "max_head_gap_ms": round(max((r.max_head_gap_ms for r in results), default=0.0), 3),
        "first_byte_ms_max": round(max(starts), 3) if starts else None,
        "requests": sum(r.requests for r in results),
        "reconnects": sum(r.reconnects for r in results),
        "errors": len(errors),
        "error_samples": errors[:5],
        "byte_mismatches": sum(r.mismatches for r in results) if settings.check_bytes else None,
    }


def _rounded(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else round(v, 4) for v in values]


def ramp_players(
    ep: Endpoint, size: int, settings: BenchSettings, progress: Progress
) -> dict[str, Any]:
    """Per bitrate, the largest number of buffered players that all played without a
    stall or an error (each trial `ramp_seconds` per player)."""
    per_bitrate: dict[str, Any] = {}
    errors: list[str] = []
    for bitrate in settings.ramp_bitrates:

        def passes(count: int, bitrate: float = bitrate) -> bool:
            results = players.run_buffered_players(
                ep, settings.media_path, count=count, size=size,
                bitrate_bps=bitrate * 1e6, duration=settings.ramp_seconds,
                habits=settings.habits, stagger_s=RAMP_STAGGER_S,
                check_bytes=settings.check_bytes, timeout=settings.timeout,
            )  # fmt: skip
            stalls = sum(r.stalls for r in results)
            failed = [e for r in results for e in r.errors]
            mismatches = sum(r.mismatches for r in results)
            errors.extend(f"ramp {bitrate:g} Mbit/s x {count}: {e}" for e in failed[:2])
            ok = stalls == 0 and not failed and mismatches == 0
            progress(
                f"ramp: {count} x {bitrate:g} Mbit/s: {stalls} stall(s), {len(failed)} "
                f"error(s){', byte mismatches' if mismatches else ''} -> "
                f"{'stall-free' if ok else 'stalled'}"
            )
            return ok

        found, trials = largest_passing(passes, start=1, limit=settings.ramp_max)
        per_bitrate[f"{bitrate:g}"] = {
            "stall_free": found,
            "limit": "players" if found < settings.ramp_max else "ramp-max",
            "trials": [{"players": t.count, "stall_free": t.passed} for t in trials],
        }
    return {"per_bitrate": per_bitrate, "errors": errors[:10]}


def _thin(values: Sequence[float]) -> list[float]:
    """At most MAX_DISTRIBUTION_SAMPLES values, evenly spread over the sorted samples."""
    ordered = sorted(values)
    if len(ordered) > MAX_DISTRIBUTION_SAMPLES:
        step = (len(ordered) - 1) / (MAX_DISTRIBUTION_SAMPLES - 1)
        ordered = [ordered[round(i * step)] for i in range(MAX_DISTRIBUTION_SAMPLES)]
    return [round(v, 4) for v in ordered]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
