"""What limits a missed goal, said with the figures of the same run.

`make bench` must not stop at "missed": for every goal a proxy misses, the report says by
how much and what bounds it. Each explanation below reads the run's own measurements (the
proxy's CPU per GB beside the TLS ceiling's, the ceiling's own paced-stream gaps, the h2
ceiling) so the claim can be checked against the numbers printed next to it; the fixed
parts state what the proxies offer (or do not offer) to change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stackgen.bench.goals import Verdict

# The explanations' version, recorded in summary.json beside the goals' (a changed
# explanation of the same figures is a new version).
LIMITS_VERSION = "limits/3"

Summary = Mapping[str, Any]
Explainer = Callable[[Verdict, Summary, Summary], str]

GO_PROXIES = {"traefik", "caddy"}

# Where a proxy's data path has a setting worth naming, what stackgen sets and why it
# stops there (each measured in docs/performance.md).
RELAY_SETTINGS = {
    "nginx": "stackgen sets `proxy_buffer_size 64k` (the relay chunk with buffering off), "
    "upstream keep-alive and `http2_chunk_size 64k`",
    "haproxy": "stackgen sets `tune.bufsize 65536`; HAProxy relays with splice-free "
    "user-space copies under TLS",
    "apache": "stackgen sets `ProxyIOBufferSize 65536`, the largest that measured faster; "
    "mod_proxy copies each buffer through its bucket brigade",
    "traefik": "Traefik exposes no buffer setting for its reverse proxy (Go's httputil "
    'copy with 32 KiB buffers); stackgen sets `flushInterval = "100ms"`, not `-1s`, '
    "which lost uploads' replies to a race (docs/flakes.md)",
    "caddy": "Caddy's reverse_proxy copies with fixed buffers; `flush_interval -1` is set "
    "so nothing waits for a buffer to fill",
}


def _num(value: Any, digits: int = 2, *, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _relay_cpu(v: Verdict, s: Summary, b: Summary) -> str:
    return (
        f"CPU: the proxy spent {_num(s.get('cpu_s_per_gb'))} CPU-s per GB against the bare "
        f"TLS server's {_num(s.get('ceiling_cpu_s_per_gb'))} in the same interleaved run, "
        "with the same cipher. The difference "
        "is reading every byte from Jellyfin over the Docker bridge and copying it through "
        "the proxy, on the same 2 cores as the client and the origin, so each extra "
        "CPU-second per GB is taken from the client (a separate machine in real use). "
        f"{RELAY_SETTINGS.get(v.proxy, '')}."
    )


def _h2_vs_h1(v: Verdict, s: Summary, b: Summary) -> str:
    vs_h2_ceiling = _num(s.get("h2_stream_vs_ceiling_h2"))
    if v.proxy in GO_PROXIES:
        return (
            "Go's HTTP/2 server: Traefik and Caddy both serve h2 with Go's standard library, "
            "whose data path has no setting in either proxy (Traefik's entry point offers "
            "only maxConcurrentStreams for h2, Caddy only the protocol list). Against the "
            f"TLS ceiling over h2 this proxy reached {vs_h2_ceiling}x. Users who need full "
            "speed per stream can set `http2 = false`."
        )
    return (
        f"the h2 framing path: against the TLS ceiling over h2 this proxy reached "
        f"{vs_h2_ceiling}x, so the loss is in the proxy's h2 relay, not in TLS. "
        f"{RELAY_SETTINGS.get(v.proxy, '')}. `http2 = false` gives HTTP/1.1's figure."
    )


def _stream_vs_docs(v: Verdict, s: Summary, b: Summary) -> str:
    docs, ceiling = s.get("docs_stream_mbps"), b.get("ceiling_mbps")
    if (
        isinstance(docs, int | float)
        and isinstance(ceiling, int | float)
        and docs * v.goal.target > ceiling
    ):
        return (
            f"the TLS ceiling: the docs config already streams at {docs:.0f} MB/s, so "
            f"{v.goal.target:g}x of it ({docs * v.goal.target:.0f} MB/s) is above what "
            f"bare TLS carries on this machine ({ceiling:.0f} MB/s). The docs config is "
            "not slow for this proxy; stackgen's differences are correctness and "
            f"hardening, plus the relay setting: {RELAY_SETTINGS.get(v.proxy, '')}."
        )
    best = b.get("best_stream_vs_ceiling")
    if (
        isinstance(docs, int | float)
        and isinstance(ceiling, int | float)
        and isinstance(best, int | float)
        and ceiling > 0
    ):
        wanted = v.goal.target * docs / ceiling
        if wanted > best:
            return (
                f"the TLS ceiling, nearly: the docs config already streams at {docs:.0f} MB/s, "
                f"{docs / ceiling:.2f}x the bare TLS server, so {v.goal.target:g}x of it would "
                f"be {wanted:.2f}x the ceiling, more than any proxy reached in this run (best "
                f"{best:.2f}x). The docs config is not slow for this proxy; stackgen's "
                f"differences are correctness and hardening, plus "
                f"{RELAY_SETTINGS.get(v.proxy, '')}."
            )
        return (
            f"the proxy's relay: the docs config streams at {docs / ceiling:.2f}x the TLS "
            f"ceiling and stackgen's at {_num(s.get('stream_vs_ceiling'))}x, both bounded by "
            f"the relay's cost ({_num(s.get('cpu_s_per_gb'))} CPU-s per GB against the bare "
            f"TLS server's {_num(b.get('ceiling_cpu_s_per_gb'))}), not by a setting the docs "
            f"config lacks; {RELAY_SETTINGS.get(v.proxy, '')}."
        )
    return (
        f"the relay settings: the docs config streams at {_num(docs, 0)} MB/s against "
        f"stackgen's {_num(s.get('stream_mbps'), 0)}; {RELAY_SETTINGS.get(v.proxy, '')}."
    )


def _capacity(v: Verdict, s: Summary, b: Summary) -> str:
    own = (s.get("capacity") or {}).get("100")
    ceiling = (b.get("ceiling_capacity") or {}).get("100")
    return (
        f"the relay's cost per stream: {_num(own, 0)} buffered 100 Mbit/s players played "
        f"without a stall through the proxy against {_num(ceiling, 0)} from the bare TLS "
        f"server in the same run; the proxy spent {_num(s.get('cpu_s_per_gb'))} CPU-s per "
        f"GB against the server's {_num(s.get('ceiling_cpu_s_per_gb'))}, on the 2 cores "
        f"the players share. {RELAY_SETTINGS.get(v.proxy, '')}."
    )


def _seek(v: Verdict, s: Summary, b: Summary) -> str:
    return (
        "one extra hop per Range request: the proxy's TLS record and its request to "
        "Jellyfin over the bridge (kept alive); see the seek TTFB row."
    )


def _api(v: Verdict, s: Summary, b: Summary) -> str:
    opened, direct = s.get("api_connections"), s.get("api_connections_direct")
    cost = (
        f"the proxy spent {_num(s.get('cpu_s_per_1000_api'), 3)} CPU-s per 1,000 calls on "
        "the 2 cores the client and Jellyfin share"
    )
    if isinstance(opened, int) and isinstance(direct, int) and opened > 2 * max(direct, 1):
        keepalive = (
            " (httpd's default `MaxKeepAliveRequests 100` closes a connection after 100 requests)"
            if v.proxy == "apache"
            else ""
        )
        return (
            f"closed keep-alive connections: the client had to open {opened} connections "
            f"through the proxy against {direct} to Jellyfin direct for the same "
            f"{_num(s.get('api_calls'), 0)} calls per side{keepalive}, and each new one "
            f"costs a TCP and TLS handshake inside the measured latency; {cost}."
        )
    return (
        f"per-request cost: {cost}; the client opened {_num(opened, 0)} connections through "
        f"the proxy against {_num(direct, 0)} direct, so the tail is not reconnections."
    )


def _reload(v: Verdict, s: Summary, b: Summary) -> str:
    reload = s.get("reload") or {}
    return (
        f"{reload.get('failures', 'n/a')} failed requests over "
        f"{reload.get('reloads_done', 'n/a')} reloads; details in the reload section of "
        "the proxy's result (the proxy's reload drains and replaces its workers)."
    )


def _websocket(v: Verdict, s: Summary, b: Summary) -> str:
    reload = s.get("reload") or {}
    if v.proxy == "caddy":
        return (
            "Caddy closes proxied WebSockets when its config is reloaded, after "
            "`stream_close_delay` (stackgen sets it so a client reconnects, not loses a "
            f"stream); measured: {reload.get('websocket', 'n/a')}."
        )
    return f"the WebSocket was closed across reloads: {reload.get('websocket', 'n/a')}."


def _up(v: Verdict, s: Summary, b: Summary) -> str:
    # Bench stacks take their certificate from files: no certbot runs, so it is no cause.
    return (
        f"the readiness wait: `up` took {_num(s.get('up_seconds_first'), 1)} s the first "
        f"time and {_num(s.get('up_seconds'), 1)} s warm (right after the certificate "
        "rotation). It waits for Docker's healthchecks (one every 2 s per service, so one "
        "missed check costs 2 s) and then a verified HTTPS request through the proxy; this "
        "run does not time those steps apart, so which one holds it is not known from it."
    )


def _generic(v: Verdict, s: Summary, b: Summary) -> str:
    return "see the per-proxy table: no specific bound is known for this goal."


EXPLAINERS: dict[str, Explainer] = {
    "relay_cpu_vs_ceiling": _relay_cpu,
    "h2_vs_h1": _h2_vs_h1,
    "stream_vs_docs": _stream_vs_docs,
    "capacity_100_vs_ceiling": _capacity,
    "seek_ttfb_added_ms": _seek,
    "api_p50_added_ms": _api,
    "api_p99_added_ms": _api,
    "reload_failures": _reload,
    "reload_websocket_kept": _websocket,
    "up_seconds": _up,
}


def explain(verdict: Verdict, summary: Summary, baselines: Summary) -> str:
    """One sentence or three on what bounds a missed goal, with this run's figures."""
    if verdict.measured is None:
        error = str(summary.get("error") or "").splitlines()
        why = error[0][:200] if error else "the phase did not run (a knob turned it off?)"
        return f"not measured: {why}"
    if verdict.state == "inconclusive" and verdict.figure is not None:
        figure = verdict.figure
        return (
            f"inconclusive: the median's interval [{figure.low:.3g}, {figure.high:.3g}] over "
            f"{figure.n} pairs ({figure.coverage:.0%} coverage) does not settle the target "
            f"{verdict.goal.target:g}; more pairs, on a quieter machine, would."
        )
    explainer = EXPLAINERS.get(verdict.goal.key, _generic)
    return explainer(verdict, summary, baselines)
