"""The pure parts of `stackgen bench`: schedule, statistics, schema, goals, output."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import math
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from stackgen.bench import goals, players, report, schema, stats, verdict
from stackgen.bench.endpoint import url_endpoint
from stackgen.bench.measure import BenchSettings
from stackgen.bench.schedule import due_times, run_open_loop


def test_percentile_interpolates() -> None:
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([5], 99) == 5
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_compare_pairs_ratio_and_added_with_spread() -> None:
    spread = stats.compare_pairs([50, 80, 90], [100, 100, 100], "ratio")
    assert spread is not None
    assert (spread.median, spread.min, spread.max, spread.n) == (0.8, 0.5, 0.9, 3)
    added = stats.compare_pairs([2.0, 3.0], [1.0, 1.0], "added")
    assert added is not None and added.median == 1.5 and added.kind == "added"


def test_compare_pairs_leaves_out_broken_pairs() -> None:
    spread = stats.compare_pairs([1.0, math.nan, 3.0], [0.0, 1.0, 1.5], "ratio")
    assert spread is not None and spread.n == 1 and spread.median == 2.0
    assert stats.compare_pairs([], [], "ratio") is None
    assert stats.compare_pairs([1.0], [math.inf], "added") is None


def test_abba_order_alternates_who_goes_first() -> None:
    sides = [side for _pair, side in stats.abba_order(3)]
    assert sides == ["A", "B", "B", "A", "A", "B"]
    assert [pair for pair, _ in stats.abba_order(2)] == [0, 0, 1, 1]


def test_due_times_are_bounded_and_evenly_spaced() -> None:
    times = due_times(200, 2)
    assert len(times) == 400 and times[0] == 0 and times[1] == pytest.approx(0.005)
    with pytest.raises(ValueError):
        due_times(0, 1)


def test_open_loop_does_not_wait_for_slow_requests() -> None:
    """One request stalls 300 ms: later ones still leave on schedule (open loop), and
    the stalled one's latency counts from its due time."""
    calls = 0

    async def send() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)

    async def go() -> tuple[object, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await run_open_loop(50, 0.4, send)
        return result, loop.time() - start

    result, elapsed = asyncio.run(go())
    assert result.sent == 20 and result.errors == 0  # type: ignore[attr-defined]
    latencies = result.latencies_ms  # type: ignore[attr-defined]
    assert max(latencies) >= 290  # the stalled one
    assert sorted(latencies)[len(latencies) // 2] < 50  # the others were not held back
    assert elapsed < 0.8


def test_open_loop_counts_errors_and_timeouts() -> None:
    async def send() -> None:
        raise ConnectionResetError("boom")

    result = asyncio.run(run_open_loop(100, 0.05, send, timeout=0.5))
    assert result.sent == 5 and result.errors == 5 and not result.latencies_ms
    assert "ConnectionResetError" in result.error_samples[0]


def _target(path: str = "container address") -> dict[str, object]:
    return {
        "url": "https://jf.test",
        "address": "172.30.0.3",
        "port": 443,
        "protocol": "http/1.1",
        "path": path,
        "tls": "TLSv1.3",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "alpn": "http/1.1",
    }


def _doc(path: str = "container address") -> dict[str, Any]:
    doc = _measured(path)
    doc["capacity"] = verdict.capacity_json(doc)
    doc["verdict"] = verdict.verdict_lines(doc)
    doc["expectations"] = []
    return doc


def _measured(path: str = "container address") -> dict[str, Any]:
    spread = stats.compare_pairs([300.0, 320.0], [600.0, 640.0], "ratio")
    added = stats.compare_pairs([2.0, 2.5], [1.0, 1.2], "added")
    assert spread and added
    return {
        "schema": schema.SCHEMA_VERSION,
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "machine": {"nproc": 2, "loadavg_before": [1, 1, 1], "loadavg_after": [1, 1, 1]},
        "settings": {"pairs": 2},
        "targets": {"proxied": _target(path), "direct": None},
        "metrics": {
            "cpu_s_per_gb": {
                "unit": "CPU-s/GB",
                "better": "lower",
                "proxied": [2.0, 2.0],
                "direct": [],
                "compare": None,
            },
            "stream_mbps": {
                "unit": "MB/s",
                "better": "higher",
                "proxied": [300.0, 320.0],
                "direct": [600.0, 640.0],
                "compare": spread.to_json(),
            },
            "api_p50_ms": {
                "unit": "ms",
                "better": "lower",
                "proxied": [2.0, 2.5],
                "direct": [1.0, 1.2],
                "compare": added.to_json(),
            },
        },
        "distributions": {"api_latency_ms": {"proxied": [1.0, 2.0], "direct": [0.5]}},
        "api": {"rate_rps": 200, "sent": 800, "errors": 0, "late_sends": 0},
        "streams": {
            "count": 2,
            "bitrate_mbps": 20,
            "duration_s": 5,
            "bytes": 1000,
            "max_gap_ms": 12.5,
            "errors": 0,
        },
        "errors": [],
    }


def test_schema_accepts_a_well_formed_document() -> None:
    assert schema.validate(_doc()) == []


def test_schema_names_what_is_wrong() -> None:
    doc = _doc()
    doc["schema"] = "stackgen-bench/0"
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    metrics["stream_mbps"]["unit"] = "Mbit/s"
    metrics["bogus"] = {}
    del doc["errors"]
    problems = schema.validate(doc)
    assert any("schema is" in p for p in problems)
    assert any("stream_mbps.unit" in p for p in problems)
    assert any("bogus" in p for p in problems)
    assert any("$.errors missing" in p for p in problems)


def test_table_and_plot_render() -> None:
    doc = _doc()
    table = report.render_table(doc)
    assert "stream, full GET" in table and "x0.50" in table and "+1.15 ms" in table
    ET.fromstring(report.bench_plot(doc))  # well-formed SVG


def test_goals_pass_miss_and_not_measured() -> None:
    summary = {
        "relay_cpu_vs_ceiling": {"median": 1.2, "low": 1.1, "high": 1.3, "n": 8, "coverage": 0.93},
        "h2_vs_h1": 0.5,
        "api_errors": 0,
        "up_seconds": 12.4,
    }
    verdicts = {v.goal.key: v for v in goals.evaluate({"nginx": summary})}
    assert verdicts["relay_cpu_vs_ceiling"].state == "met"
    assert "1.2 [1.1, 1.3] (8 pairs, 93%)" in verdicts["relay_cpu_vs_ceiling"].line()
    assert not verdicts["h2_vs_h1"].ok
    assert verdicts["api_errors"].ok
    assert not verdicts["up_seconds"].ok and "measured 12.4 s" in verdicts["up_seconds"].line()
    assert not verdicts["reload_failures"].ok  # not measured never passes
    assert "not measured" in verdicts["reload_failures"].line()


def test_settings_are_bounded() -> None:
    with pytest.raises(ValueError):
        BenchSettings(pairs=0)
    with pytest.raises(ValueError):
        BenchSettings(duration=1000)
    with pytest.raises(ValueError):
        BenchSettings(only=frozenset({"bogus"}))


def test_direct_endpoint_from_url() -> None:
    ep = url_endpoint("direct", "http://10.0.0.5:8096/jf/", resolve={}, ca_file=None, http2=True)
    assert (ep.scheme, ep.address, ep.port, ep.base) == ("http", "10.0.0.5", 8096, "/jf")
    assert ep.protocol == "http/1.1"  # h2 needs TLS here
    assert ep.url("/health") == "http://10.0.0.5:8096/jf/health"
    tls = url_endpoint(
        "ceiling", "https://jf.test:8443", resolve={"jf.test": "10.0.0.1"}, ca_file=None, http2=True
    )
    assert tls.protocol == "h2" and "--resolve" in tls.curl_args()
    with pytest.raises(ValueError):
        url_endpoint("direct", "ftp://x", resolve={}, ca_file=None, http2=False)


def test_pool_retries_a_get_once_when_a_reused_connection_was_closed() -> None:
    """The server closes a kept-alive connection right after its first answer (as a graceful
    reload does): the next GET on it is retried on a new connection, and counted."""
    from stackgen.bench.endpoint import Endpoint
    from stackgen.bench.h1 import ConnectionPool

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()  # no keep-alive promise broken on purpose: the client must cope

    async def go() -> tuple[int, int, int]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ep = Endpoint("direct", "http", "127.0.0.1", "127.0.0.1", port, "")
        pool = ConnectionPool(ep)
        try:
            first = await pool.request("GET", "/", {})
            await asyncio.sleep(0.05)  # let the close arrive
            second = await pool.request("GET", "/", {})
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
        return first.status + second.status, pool.stale_retries, pool.opened

    assert asyncio.run(go()) == (400, 1, 2)


def test_short_by_says_how_far_a_missed_goal_is() -> None:
    ge = goals.Goal("x", "ratio", "ge", 0.75, "x")
    le = goals.Goal("y", "gap", "le", 250, "ms")

    def exact(value: float) -> goals.Figure:
        figure = goals.Figure.read(value)
        assert figure is not None
        return figure

    assert goals.Verdict("p", ge, exact(0.70)).short_by == pytest.approx(0.05)
    assert goals.Verdict("p", ge, exact(0.80)).short_by == 0
    assert goals.Verdict("p", le, exact(300)).short_by == pytest.approx(50)
    assert goals.Verdict("p", le, None).short_by is None


def _interval(median: float, low: float, high: float, n: int = 8) -> dict[str, float]:
    _low, _high, coverage = stats.median_interval([float(i) for i in range(n)])
    return {"median": median, "low": low, "high": high, "n": n, "coverage": coverage}


@pytest.mark.parametrize(
    ("figure", "state"),
    [
        (_interval(0.80, 0.77, 0.83), "met"),
        (_interval(0.70, 0.66, 0.73), "missed"),
        # The median meets the target but the pairs' interval straddles it: a coin flip.
        (_interval(0.76, 0.70, 0.81), "inconclusive"),
        (_interval(0.74, 0.70, 0.81), "inconclusive"),
        # Clear of the target, but 3 pairs cannot reach 90 % confidence.
        (_interval(0.80, 0.78, 0.82, n=3), "inconclusive"),
        (None, "not measured"),
    ],
)
def test_a_verdict_is_inconclusive_when_its_interval_straddles_the_target(
    figure: dict[str, float] | None, state: str
) -> None:
    goal = goals.Goal("x", "ratio", "ge", 0.75, "x")
    verdict = goals.Verdict("p", goal, goals.Figure.read(figure))
    assert verdict.state == state
    assert verdict.ok is (state == "met")
    if state == "inconclusive":
        assert verdict.line().startswith("UNSURE")


def test_median_interval_is_the_order_statistics_with_enough_coverage() -> None:
    values = [8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0]
    # n = 8: [x(2), x(7)] covers the median with 1 - 2 * 9/256 = 93 %; [x(3), x(6)] only 71 %.
    assert stats.median_interval(values) == (2.0, 7.0, pytest.approx(1 - 18 / 256))
    low, high, coverage = stats.median_interval([3.0, 1.0, 2.0])
    assert (low, high) == (1.0, 3.0) and coverage == pytest.approx(0.75)
    assert stats.median_interval([5.0]) == (5.0, 5.0, 0.0)
    with pytest.raises(ValueError):
        stats.median_interval([])


def test_a_failed_run_leaves_a_hole_instead_of_shifting_the_pairs() -> None:
    """Pair 0's proxied run failed: pair 1's proxied run must still be compared with pair
    1's direct run (the old lists-by-arrival paired it with pair 0's)."""
    from stackgen.bench.measure import _Collected

    got = _Collected()
    runs = {(0, "direct"): 100.0, (1, "proxied"): 90.0, (1, "direct"): 200.0,
            (2, "proxied"): 180.0, (2, "direct"): 200.0}  # fmt: skip
    for pair, ab in stats.abba_order(3):
        got.pair = pair
        side = {"A": "proxied", "B": "direct"}[ab]
        if (pair, side) in runs:  # (0, "proxied") failed: nothing recorded
            got.add("stream_mbps", side, runs[pair, side])
    proxied = got.series("stream_mbps", "proxied", 3)
    direct = got.series("stream_mbps", "direct", 3)
    assert proxied == [None, 90.0, 180.0] and direct == [100.0, 200.0, 200.0]
    spread = stats.compare_pairs(proxied, direct, "ratio")
    assert spread is not None and spread.n == 2
    assert (spread.min, spread.max) == (0.45, 0.9)  # shifted pairs would give 0.9 and 0.9
    with pytest.raises(ValueError, match="misaligned"):
        stats.compare_pairs([90.0, 180.0], [100.0, 200.0, 200.0], "ratio")


def test_tls_details_are_read_from_curls_verbose_output() -> None:
    from stackgen.bench import curl

    old = (
        "* SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256\n"
        "* ALPN, server accepted to use h2\n"
    )
    new = (
        "* SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256 / X25519 / id-ecPublicKey\n"
        "* ALPN: server accepted http/1.1\n"
    )
    assert curl.parse_tls(old) == {
        "tls": "TLSv1.3",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "alpn": "h2",
    }
    assert curl.parse_tls(new)["alpn"] == "http/1.1"
    assert curl.parse_tls("") == {"tls": None, "cipher": None, "alpn": None}


def test_every_https_side_offers_the_one_pinned_cipher_and_records_its_path() -> None:
    from stackgen.bench import endpoint

    tls = url_endpoint("ceiling", "https://jf.test:8443", resolve={}, ca_file=None, http2=False)
    args = tls.curl_args()
    assert args[args.index("--tls13-ciphers") + 1] == "TLS_AES_128_GCM_SHA256"
    assert "--tlsv1.3" in args
    plain = url_endpoint("direct", "http://10.0.0.5:8096", resolve={}, ca_file=None, http2=False)
    assert "--tls13-ciphers" not in plain.curl_args()
    assert endpoint.path_for("127.0.0.1") == endpoint.PATH_LOOPBACK
    assert endpoint.path_for("::1") == endpoint.PATH_LOOPBACK
    assert endpoint.path_for("192.168.1.10") == endpoint.PATH_PUBLISHED
    assert tls.describe()["path"] == endpoint.PATH_URL


class _PatternRanges(http.server.BaseHTTPRequestHandler):
    """Range requests over the stand-in's media pattern (byte i is i % 251)."""

    protocol_version = "HTTP/1.1"
    size = 8 << 20
    pattern = bytes(range(251)) * (size // 251 + 2)

    def do_GET(self) -> None:
        first, _, last = self.headers["Range"].removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last or self.size - 1), self.size - 1)
        body = self.pattern[start % 251 : start % 251 + end - start + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{self.size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_players_run_as_processes_and_read_byte_exact() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PatternRanges)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ep = url_endpoint(
            "proxied",
            f"http://127.0.0.1:{server.server_address[1]}",
            resolve={},
            ca_file=None,
            http2=False,
        )
        results = players.run_players(
            ep,
            "/media",
            count=3,
            size=_PatternRanges.size,
            bitrate_bps=8e6,
            duration=1.0,
            check_bytes=True,
            timeout=5.0,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert len(results) == 3
    for result in results:
        assert result.errors == []
        assert result.mismatches == 0
        # 1 MB/s for 1 s, paced: about 1 MB each, never the whole file at once.
        assert 0.5e6 < result.bytes < 2e6


def test_capacity_is_the_smaller_of_throughput_and_proxy_cpu() -> None:
    doc = _measured()  # 310 MB/s on one connection, 2.0 CPU-s per GB, 2 cores
    at_20 = verdict.capacity(doc, 20)
    assert at_20 is not None
    # 310 MB/s = 2480 Mbit/s -> 124 streams; 2.0 CPU-s/GB x 2.5 MB/s = 0.5 % of a core each
    # -> 400 on 2 cores: throughput bounds it.
    assert (at_20.by_throughput, at_20.by_cpu, at_20.streams) == (124, 400, 124)
    assert at_20.limit == "throughput" and at_20.core_share == pytest.approx(0.005)
    metrics = doc["metrics"]
    metrics["cpu_s_per_gb"]["proxied"] = [20.0, 20.0]  # a costly relay: 5 % of a core each
    at_20 = verdict.capacity(doc, 20)
    assert at_20 is not None and (at_20.streams, at_20.limit) == (40, "proxy CPU")
    doc["ramp"] = {"per_bitrate": {"20": {"stall_free": 31, "limit": "players"}}}
    at_20 = verdict.capacity(doc, 20)
    assert at_20 is not None and (at_20.streams, at_20.limit) == (31, "players")


def test_the_verdict_comes_first_and_says_the_path() -> None:
    doc = _doc()
    lines = doc["verdict"]
    assert lines[0] == (
        "verdict: this stack carries ~ 124 x 20 Mbit/s or 24 x 100 Mbit/s streams "
        "(measured via the container address)"
    )
    assert "0.5 % of a core per 20 Mbit/s stream" in lines[1]
    assert lines[2].startswith("  your limit is one connection's throughput")
    assert report.render_table(doc).startswith(lines[0])
    loopback = _doc("loopback (docker-proxy)")["verdict"]
    assert any("docker-proxy on 127.0.0.1" in line for line in loopback)
    assert not any("docker-proxy on 127.0.0.1" in line for line in lines)


def test_expectations_parse_and_judge_k6_style() -> None:
    doc = _doc()
    wanted = [
        verdict.parse_expectation(text)
        for text in ("streams=10@40", "streams=30@100", "api_p50_ms=5", "seek_ttfb_ms=1")
    ]
    checks = verdict.check(doc, wanted)
    assert [c.passed for c in checks] == [True, False, True, False]
    assert checks[0].line() == "✓ streams=10@40: 62 streams of 40 Mbit/s >= 10"
    assert checks[1].line() == "✗ streams=30@100: 24 streams of 100 Mbit/s >= 30"
    assert checks[3].line() == "✗ seek_ttfb_ms=1: not measured"
    for bad in ("streams=10", "streams=0@40", "streams=5@-1", "p99=3", "api_p99_ms=fast"):
        with pytest.raises(ValueError, match="--expect"):
            verdict.parse_expectation(bad)


def test_schema_requires_tls_path_and_capacity() -> None:
    doc = _doc()
    doc["targets"]["proxied"]["path"] = "somewhere"
    del doc["targets"]["proxied"]["cipher"]
    del doc["capacity"]
    doc["verdict"] = []
    problems = schema.validate(doc)
    assert any("targets.proxied.path must be one of" in p for p in problems)
    assert "targets.proxied.cipher missing" in problems
    assert "$.capacity missing" in problems
    assert any(p.startswith("verdict") for p in problems)


def test_cgroup_counters_are_read_from_v2_and_v1(tmp_path: Path) -> None:
    from stackgen.bench.cgroup import Cgroup, CgroupError

    cid = "ab" * 32
    v2 = tmp_path / "v2" / "system.slice" / f"docker-{cid}.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (v2 / "memory.stat").write_text("anon 1048576\nfile 5\n")
    group = Cgroup(cid, root=tmp_path / "v2")
    assert (group.cpu_seconds(), group.anon_bytes()) == (2.5, 1 << 20)
    v1 = tmp_path / "v1"
    (v1 / "cpuacct" / "docker" / cid).mkdir(parents=True)
    (v1 / "cpuacct" / "docker" / cid / "cpuacct.usage").write_text("1500000000\n")
    assert Cgroup(cid, root=v1).cpu_seconds() == 1.5
    with pytest.raises(CgroupError, match="no cgroup found"):
        Cgroup("cd" * 32, root=v1)


def test_a_player_buffer_stalls_only_when_it_runs_dry() -> None:
    from stackgen.bench.capacity import PlayerBuffer

    # 1 MB/s of media, starts after 2 MB, holds at most 4 MB.
    player = PlayerBuffer(rate=1e6, start_bytes=2e6, capacity=4e6)
    assert player.want(0.0) == 4_000_000
    player.feed(1_000_000, 0.5)
    assert player.playing_since is None  # still filling the start-up buffer
    player.feed(3_000_000, 1.0)  # 4 MB buffered: plays from t=1, full
    assert player.playing_since == 1.0 and player.want(1.0) == 0
    assert player.want(2.0) == 1_000_000  # one second played: room for one more
    player.feed(1_000_000, 2.0)
    # Nothing more until t=7.5: the 4 MB held ran out at t=6, a stall from then.
    player.feed(500_000, 7.5)
    assert player.stalls == 1 and player.events == [("stall", 6.0)]
    assert player.playing_since is None  # re-buffering: needs 2 MB again
    player.feed(1_500_000, 8.0)
    assert player.playing_since == 8.0 and player.stalled_s == pytest.approx(2.0)
    # A seek drops the buffer; refilling after it is not a stall.
    player.seek(9.0)
    player.feed(2_000_000, 10.5)
    assert player.stalls == 1 and player.playing_since == 10.5
    # ... unless the refill takes longer than the start-up timeout (5 s by default).
    player.seek(11.0)
    player.feed(100_000, 16.5)
    assert player.stalls == 2 and player.events[-1] == ("slow start", 16.0)
    player.feed(100_000, 30.0)
    assert player.stalls == 2  # counted once per start-up


def test_a_steady_player_never_stalls() -> None:
    from stackgen.bench.capacity import PlayerBuffer

    player = PlayerBuffer(rate=1e6, start_bytes=1e6, capacity=3e6)
    now = 0.0
    for _ in range(200):  # 100 KB every 0.1 s: exactly the bitrate
        player.feed(100_000, now)
        now += 0.1
    assert player.stalls == 0 and player.level(now) >= 0


@pytest.mark.parametrize(("breaking_point", "start", "limit"), [(37, 1, 200), (1, 1, 64),
                         (0, 1, 64), (200, 1, 200), (5, 8, 64), (64, 4, 64)])  # fmt: skip
def test_the_capacity_search_finds_the_largest_stall_free_count(
    breaking_point: int, start: int, limit: int
) -> None:
    from stackgen.bench.capacity import largest_passing

    found, trials = largest_passing(lambda n: n <= breaking_point, start=start, limit=limit)
    assert found == min(breaking_point, limit)
    assert len(trials) <= 2 * limit.bit_length() + 1  # bounded
    assert all(t.passed == (t.count <= breaking_point) for t in trials)
    with pytest.raises(ValueError):
        largest_passing(lambda n: True, start=0, limit=10)


class _HangUpRanges(_PatternRanges):
    """Open-ended Range responses a player abandons (a seek closes the connection)."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


class _SlowRanges(_HangUpRanges):
    """The same media, sent at about 1.3 MB/s (64 KiB every 50 ms)."""

    def do_GET(self) -> None:
        first = int(self.headers["Range"].removeprefix("bytes=").partition("-")[0])
        body = self.pattern[first % 251 : first % 251 + self.size - first]
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the player hangs up when it is done
            for i in range(0, len(body), 64 << 10):
                self.wfile.write(body[i : i + (64 << 10)])
                time.sleep(0.05)

    def handle_error(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(("handler", "mbit", "stalls"), [(_HangUpRanges, 8.0, False),
                                                         (_SlowRanges, 40.0, True)])  # fmt: skip
def test_buffered_players_read_ahead_seek_and_report_stalls(
    handler: type[http.server.BaseHTTPRequestHandler], mbit: float, stalls: bool
) -> None:
    """Against a fast server, staggered players with seeks never stall and read every
    byte right; against one slower than the bitrate, each stalls."""
    from stackgen.bench.h1 import PlayerHabits

    server = _serve(handler)
    try:
        ep = url_endpoint(
            "proxied", f"http://127.0.0.1:{server.server_address[1]}",
            resolve={}, ca_file=None, http2=False,
        )  # fmt: skip
        results = players.run_buffered_players(
            ep, "/media", count=2, size=_PatternRanges.size, bitrate_bps=mbit * 1e6,
            duration=2.0, habits=PlayerHabits(start_s=0.2, buffer_s=1.0, seek_every_s=0.7),
            stagger_s=0.2, check_bytes=True, timeout=5.0,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert len(results) == 2
    for result in results:
        assert result.errors == [] and result.mismatches == 0, result
        assert result.bytes > 0 and result.first_byte_ms is not None
        # One request at the start, one per seek, and one when the media ended and
        # started over.
        assert result.requests >= result.seeks + 1
        if stalls:
            assert result.stalls >= 1 and result.first_stall_at_s is not None
        else:
            assert result.seeks >= 1
            assert result.stalls == 0 and result.stalled_s == 0
