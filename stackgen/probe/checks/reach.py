"""Can the probe reach the proxy, and the proxy Jellyfin? Asked first: when either answer is
no, that is the one root cause, and the checks that depend on it are reported as not run
instead of each failing with a hint about something else (runner.py)."""

from __future__ import annotations

import contextlib
import ssl

from stackgen.probe import client
from stackgen.probe.base import PROXY, Outcome, check, failed, passed
from stackgen.probe.context import ProbeContext

HINT_PROXY = (
    "start the stack (`stackgen up`), then look at the proxy (`stackgen status`, "
    "`stackgen logs <proxy>`); for `--url`, check the name or `--resolve HOST:IP` and the "
    "port, and that a firewall lets you in"
)
HINT_UPSTREAM = (
    "the proxy answers but Jellyfin does not: see `stackgen status` and `stackgen logs "
    "jellyfin` (stopped, crashed, still starting?); if Jellyfin runs, the proxy's upstream "
    "is wrong (jellyfin:8096 on the stack network; host-network Jellyfin via "
    "host.docker.internal mapped to host-gateway)"
)
# What a proxy answers by itself when its upstream is gone (nginx, Apache and Caddy 502,
# Traefik and HAProxy 503, any of them 504 on a timeout).
GATEWAY_ERRORS = frozenset({502, 503, 504})


@check("reach.proxy", "The proxy accepts connections", HINT_PROXY, needs=None)
def reach_proxy(ctx: ProbeContext) -> Outcome:
    # TCP only: a TLS handshake that fails is the tls.* checks' to explain, in detail.
    url = ctx.url
    where = f"{url.host} ({ctx.target.address_for(url.host)}) port {url.port}"
    try:
        sock = client.open_tcp(ctx.target, url.host, url.port)
    except client.ProbeError as exc:
        return failed(f"nothing answers: {exc}", HINT_PROXY, address=where)
    with contextlib.suppress(OSError):
        sock.close()
    return passed(f"{where} accepts connections", address=where)


def gateway_error(resp: client.Response) -> bool:
    """A proxy's own error for a missing upstream, not an answer from Jellyfin. Jellyfin's
    503s say who they are: Retry-After while it starts, the health verdict on /health."""
    if resp.status not in GATEWAY_ERRORS:
        return False
    if resp.status == 503 and resp.header("Retry-After"):
        return False
    return resp.text().strip() not in ("Unhealthy", "Degraded")


@check("reach.upstream", "Jellyfin answers through the proxy", HINT_UPSTREAM, needs=PROXY)
def reach_upstream(ctx: ProbeContext) -> Outcome:
    try:
        resp = ctx.https(f"{ctx.url.base}/health")
    except (client.ProbeError, ssl.SSLError, OSError) as exc:
        return failed(
            f"no HTTPS answer from the proxy: {exc}",
            "see the tls.* checks for the handshake, and the proxy's log (`stackgen logs <proxy>`)",
        )
    details: dict[str, object] = {
        "url": resp.url,
        "status": resp.status,
        "server": resp.header("Server"),
    }
    if gateway_error(resp) and resp.status == 503:
        # Jellyfin's main app answers 503 "loading" (in the server's language) to every
        # route but /System/Ping while its start-up tasks run: the ping tells it apart.
        ping = ctx.https(f"{ctx.url.base}/System/Ping")
        details["ping_status"] = ping.status
        if ping.status == 200 and ping.text().strip().strip('"') == "Jellyfin Server":
            return passed(
                f"Jellyfin answers through the proxy, still loading ({ctx.url.base}/health "
                "503, /System/Ping 200)",
                **details,
            )
    if gateway_error(resp):
        return failed(
            f"the proxy answers {resp.status} {resp.reason} for {ctx.url.base}/health: "
            "it cannot reach Jellyfin",
            HINT_UPSTREAM,
            **details,
        )
    return passed(f"{ctx.url.base}/health answered {resp.status} through the proxy", **details)


CHECKS = (reach_proxy, reach_upstream)
