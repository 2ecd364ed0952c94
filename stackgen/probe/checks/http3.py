"""HTTP/3: advertised with Alt-Svc on HTTPS responses, and answering over QUIC."""

from __future__ import annotations

import re

from stackgen.probe import client
from stackgen.probe.base import NotApplicable, Outcome, check, failed, passed
from stackgen.probe.context import ProbeContext

HINT_HTTP3 = (
    "HTTP/3 needs UDP published on the HTTPS port (`443:443/udp`), the proxy's QUIC listener "
    "(Caddy `servers { protocols h1 h2 h3 }`, Traefik `[entryPoints.websecure.http3]`, nginx "
    "`listen 443 quic reuseport`, HAProxy `bind quic4@:443 ... alpn h3`) and "
    'an Alt-Svc header naming the public port (`h3=":443"`; Traefik advertisedPort)'
)
# The h3 alternative of an Alt-Svc value: h3=":443" (same host) or h3="host:443".
_ALT_SVC_H3 = re.compile(r'(?:^|,)\s*h3="([^"]*):(\d+)"')


def alt_svc_h3_port(values: list[str]) -> int | None:
    for value in values:
        match = _ALT_SVC_H3.search(value)
        if match and not match.group(1):
            return int(match.group(2))
    return None


@check("http3.get", "HTTP/3 is advertised and answers over QUIC", HINT_HTTP3)
def http3_get(ctx: ProbeContext) -> Outcome:
    """The web page over HTTP/1.1 names the h3 port in Alt-Svc, as a browser learns it;
    then {base}/health over QUIC on that UDP port must answer 200 Healthy."""
    expected = ctx.target.http3
    page = ctx.https(f"{ctx.url.base}/health")
    advertised = page.header_all("Alt-Svc")
    port = alt_svc_h3_port(advertised)
    details: dict[str, object] = {"alt_svc": advertised, "http3_expected": expected}
    if port is None:
        if expected:
            return failed("HTTP/3 is configured but no Alt-Svc names h3", HINT_HTTP3, **details)
        raise NotApplicable("the server advertises no HTTP/3 (Alt-Svc)")
    if expected is False:
        return failed(f"HTTP/3 is advertised on port {port} but off", HINT_HTTP3, **details)
    if port != ctx.url.port:
        details["port"] = port
        return failed(
            f"Alt-Svc sends clients to UDP port {port}, the public HTTPS port is {ctx.url.port}",
            HINT_HTTP3,
            **details,
        )
    resp = client.request_http3(ctx.target, f"{ctx.url.base}/health", port)
    body = resp.text().strip()
    details.update(status=resp.status, body=body[:200], port=port)
    if resp.status == 200 and body == "Healthy":
        return passed(f"Alt-Svc h3 on UDP {port}; /health over HTTP/3: 200 Healthy", **details)
    return failed(f"/health over HTTP/3: {resp.status} {body[:80]!r}", HINT_HTTP3, **details)


CHECKS = (http3_get,)
