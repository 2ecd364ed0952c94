"""The pure parts of `stackgen bench`: schedule, statistics, schema, goals, output."""

from __future__ import annotations

import asyncio
import http.server
import math
import threading
import xml.etree.ElementTree as ET

import pytest

from stackgen.bench import goals, players, report, schema, stats
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


def _doc() -> dict[str, object]:
    spread = stats.compare_pairs([300.0, 320.0], [600.0, 640.0], "ratio")
    added = stats.compare_pairs([2.0, 2.5], [1.0, 1.2], "added")
    assert spread and added
    return {
        "schema": schema.SCHEMA_VERSION,
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "machine": {"nproc": 2, "loadavg_before": [1, 1, 1], "loadavg_after": [1, 1, 1]},
        "settings": {"pairs": 2},
        "targets": {"proxied": {"url": "https://x"}, "direct": None},
        "metrics": {
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
        "stream_vs_ceiling": 0.8,
        "h2_vs_h1": 0.5,
        "api_errors": 0,
        "up_seconds": 12.4,
    }
    verdicts = {v.goal.key: v for v in goals.evaluate({"nginx": summary})}
    assert verdicts["stream_vs_ceiling"].ok
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
    assert goals.Verdict("p", ge, 0.70).short_by == pytest.approx(0.05)
    assert goals.Verdict("p", ge, 0.80).short_by == 0
    assert goals.Verdict("p", le, 300).short_by == pytest.approx(50)
    assert goals.Verdict("p", le, None).short_by is None


class _PatternRanges(http.server.BaseHTTPRequestHandler):
    """Range requests over the stand-in's media pattern (byte i is i % 251)."""

    protocol_version = "HTTP/1.1"
    size = 8 << 20
    pattern = bytes(range(251)) * (size // 251 + 2)

    def do_GET(self) -> None:
        first, _, last = self.headers["Range"].removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last), self.size - 1)
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
