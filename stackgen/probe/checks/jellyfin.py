"""Jellyfin through the proxy: alive, reachable under the base, and seeing the public
scheme/host (i.e. the proxy's forwarded headers were honoured — docs/jellyfin.md)."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from stackgen.probe import client
from stackgen.probe.base import UPSTREAM, NotApplicable, Outcome, check, failed, passed, warned
from stackgen.probe.context import ProbeContext

HINT_UPSTREAM = (
    "the proxy cannot reach Jellyfin or routes elsewhere: check the upstream (Jellyfin "
    "listens on 8096; host-network Jellyfin is reached via host.docker.internal mapped to "
    "host-gateway) and the route's Host/PathPrefix rule"
)
HINT_FORWARDED = (
    "Jellyfin ignored the forwarded headers: put the proxy's address (or its network's "
    "CIDR) in KnownProxies in /config/config/network.xml and restart Jellyfin; make the "
    "proxy send X-Forwarded-Proto https and X-Forwarded-Host (nginx `proxy_set_header "
    'X-Forwarded-Proto $scheme;`, Apache `RequestHeader set X-Forwarded-Proto "https"`, '
    "HAProxy `http-request set-header X-Forwarded-Proto https if { ssl_fc }`; Traefik and "
    "Caddy send them) and keep Host"
)
HINT_SUBPATH = (
    "keep the prefix end to end and set Jellyfin's BaseUrl to it: Caddy `redir /sub /sub/` + "
    "`reverse_proxy /sub/* jellyfin:8096`; nginx `location /sub/ { proxy_pass "
    "http://jellyfin:8096; }` (no URI after the port) plus `location = /sub { return 301 "
    "/sub/; }`; Traefik PathPrefix without a strip-prefix middleware"
)
HINT_LOOP = (
    "a redirect loop or a redirect out of the base usually means the proxy strips the "
    "prefix while Jellyfin's BaseUrl is set (or the reverse), or both the proxy and "
    "Jellyfin redirect http<->https: keep the prefix and let only the proxy redirect to https"
)


@check(
    "jellyfin.health",
    "Jellyfin /health answers Healthy",
    HINT_UPSTREAM,
    per_protocol=True,
    needs=UPSTREAM,
)
def jellyfin_health(ctx: ProbeContext) -> Outcome:
    resp = ctx.https(f"{ctx.url.base}/health")
    body = resp.text().strip()
    details = {"url": resp.url, "status": resp.status, "body": body[:200]}
    if resp.status == 200 and body == "Healthy":
        return passed("200 Healthy", **details)
    if resp.status == 503 or body in ("Degraded", "Unhealthy"):
        return failed(
            f"{resp.status} {body[:40]!r}: Jellyfin is still starting (or its start-up failed)",
            "wait for start-up to finish and run again; if it stays, read Jellyfin's log",
            **details,
        )
    if resp.status == 200:
        return failed(
            f"200 but the body is {body[:40]!r}, not 'Healthy': "
            "something other than Jellyfin answered",
            HINT_UPSTREAM,
            **details,
        )
    return failed(f"{resp.status} {resp.reason} instead of 200 Healthy", HINT_UPSTREAM, **details)


def _public_info(ctx: ProbeContext) -> tuple[client.Response, dict[str, object]]:
    resp = ctx.https(f"{ctx.url.base}/System/Info/Public")
    if resp.status != 200:
        raise client.ProbeError(f"/System/Info/Public answered {resp.status} {resp.reason}")
    try:
        data = json.loads(resp.body)
    except ValueError as exc:
        raise client.ProbeError(f"/System/Info/Public is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise client.ProbeError("/System/Info/Public is not a JSON object")
    return resp, data


@check("jellyfin.info", "Jellyfin /System/Info/Public is reachable", HINT_UPSTREAM, needs=UPSTREAM)
def jellyfin_info(ctx: ProbeContext) -> Outcome:
    _resp, data = _public_info(ctx)
    missing = [k for k in ("ProductName", "Version", "Id") if not data.get(k)]
    details = {k: data.get(k) for k in ("ProductName", "Version", "ServerName", "Id")}
    if missing:
        return failed(
            f"JSON lacks {', '.join(missing)}: not a Jellyfin answer", HINT_UPSTREAM, **details
        )
    return passed(f"{data['ProductName']} {data['Version']}", **details)


@check(
    "jellyfin.forwarded",
    "Jellyfin sees the public https URL (forwarded headers honoured)",
    HINT_FORWARDED,
    needs=UPSTREAM,
)
def jellyfin_forwarded(ctx: ProbeContext) -> Outcome:
    # LocalAddress comes from ApplicationHost.GetSmartApiUrl(HttpRequest): built from the
    # request (scheme/host after forwarded-header processing) only when network.xml has
    # EnablePublishedServerUriByRequest=true; else JELLYFIN_PublishedServerUrl if set;
    # else Jellyfin's own bind address (http://172.x.y.z:8096). Only the first case says
    # anything about forwarded headers, so a bind address is "cannot judge", not a fail.
    if ctx.target.from_lan:
        raise NotApplicable("a LAN client is sent to the LAN URL (see jellyfin.lan-url)")
    _resp, data = _public_info(ctx)
    local = str(data.get("LocalAddress") or "")
    expected = ctx.url.origin + ctx.url.base
    details = {"LocalAddress": local, "expected": expected}
    parts = urlsplit(local)
    host = (parts.hostname or "").lower()
    if not local:
        return failed("LocalAddress is empty", HINT_FORWARDED, **details)
    if host != ctx.url.host and _is_ip(host):
        return warned(
            f"cannot judge: Jellyfin reports its own address {local} (LocalAddress reflects "
            "the request only with EnablePublishedServerUriByRequest)",
            "set <EnablePublishedServerUriByRequest>true</EnablePublishedServerUriByRequest> "
            "in /config/config/network.xml (or JELLYFIN_PublishedServerUrl to the public URL) "
            "so clients and this check see the public URL",
            **details,
        )
    if host != ctx.url.host:
        return failed(
            f"Jellyfin advertises {local}: Host/X-Forwarded-Host not honoured, or "
            "JELLYFIN_PublishedServerUrl names another URL",
            HINT_FORWARDED,
            **details,
        )
    if parts.scheme != "https":
        return failed(
            f"Jellyfin believes it is served over {parts.scheme}:// ({local}): "
            "X-Forwarded-Proto was not honoured",
            HINT_FORWARDED,
            **details,
        )
    if not ctx.url.same_origin(parts):
        return failed(
            f"Jellyfin believes its port is {parts.port}, the public URL is {ctx.url.origin}",
            HINT_FORWARDED + " (the Host the proxy forwards must carry the public port)",
            **details,
        )
    if parts.path.rstrip("/") != ctx.url.base:
        return failed(
            f"Jellyfin's base is {parts.path or '/'!r}, the public base is {ctx.url.base or '/'!r}",
            "set BaseUrl in network.xml to the public subpath and keep the prefix in the proxy",
            **details,
        )
    return passed(f"LocalAddress is {local}", **details)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@check(
    "jellyfin.web",
    "The web client loads under the base",
    HINT_UPSTREAM,
    per_protocol=True,
    needs=UPSTREAM,
)
def jellyfin_web(ctx: ProbeContext) -> Outcome:
    # From {base}/web, as users type it: Jellyfin redirects it to {base}/web/ with an
    # absolute URL built from the scheme and host it believes (forwarded headers), so a
    # proxy Jellyfin does not trust sends the browser to http://internal-host/web/.
    trail = ctx.follow(f"{ctx.url.base}/web", 3)
    details: dict[str, object] = {"urls": trail.urls}
    if trail.final is None:
        leaves = (trail.problem or "").startswith("redirect leaves https://")
        return failed(
            f"{ctx.url.base}/web did not load: {trail.problem}",
            HINT_FORWARDED if leaves else HINT_LOOP,
            **details,
        )
    resp = trail.final
    details["status"] = resp.status
    content_type = resp.header("Content-Type") or ""
    looks_html = "html" in content_type.lower() or b"<html" in resp.body[:4096].lower()
    if resp.status == 200 and looks_html:
        return passed(f"200 HTML at {resp.url}", **details)
    return failed(
        f"{resp.url} answered {resp.status} {content_type or 'without Content-Type'}, "
        "not the web client",
        HINT_UPSTREAM,
        **details,
    )


@check(
    "jellyfin.subpath-redirect",
    "The bare subpath redirects into it",
    HINT_SUBPATH,
    per_protocol=True,
    needs=UPSTREAM,
)
def jellyfin_subpath_redirect(ctx: ProbeContext) -> Outcome:
    base = ctx.url.base
    if not base:
        raise NotApplicable("the URL has no subpath")
    resp = ctx.https(base)
    details: dict[str, object] = {"url": resp.url, "status": resp.status}
    if resp.is_redirect:
        location = resp.location
        details["location"] = location
        parts = urlsplit(location)
        if ctx.url.same_origin(parts) and parts.path.startswith(base + "/"):
            return passed(f"{base} redirects to {parts.path}", **details)
        return failed(f"{base} redirects to {location}, outside {base}/", HINT_SUBPATH, **details)
    if resp.status == 200:
        return warned(
            f"{base} answers 200 without redirecting to {base}/: relative links may break",
            HINT_SUBPATH,
            **details,
        )
    return failed(
        f"{base} answered {resp.status} instead of redirecting to {base}/", HINT_SUBPATH, **details
    )


@check(
    "jellyfin.redirect-loop",
    "No redirect loop from the base",
    HINT_LOOP,
    per_protocol=True,
    needs=UPSTREAM,
)
def jellyfin_redirect_loop(ctx: ProbeContext) -> Outcome:
    trail = ctx.follow(f"{ctx.url.base}/", 10)
    details: dict[str, object] = {"urls": trail.urls}
    if trail.final is None:
        return failed(trail.problem or "redirects did not end", HINT_LOOP, **details)
    hops = len(trail.hops) - 1
    return passed(f"{hops} redirect(s) to {trail.final.url} ({trail.final.status})", **details)


HINT_LAN = (
    "Jellyfin picks the URL by the client's address after X-Forwarded-For: the proxy must "
    "be in KnownProxies, JELLYFIN_PublishedServerUrl must be unset (it overrides "
    "PublishedServerUriBySubnet for everyone), EnablePublishedServerUriByRequest false, "
    "Jellyfin on the host network with an address in each LAN subnet, and LAN clients must "
    "reach the proxy without a NAT that hides their address"
)


@check("jellyfin.lan-url", "Jellyfin sends this client to the URL for its side", HINT_LAN)
def jellyfin_lan_url(ctx: ProbeContext) -> Outcome:
    """With a LAN URL (PublishedServerUriBySubnet), LocalAddress must be the LAN URL for a
    LAN client (`from_lan`) and the public URL for anyone else; the reason names which
    URL this side got."""
    lan = ctx.target.lan_url
    if lan is None:
        raise NotApplicable("no LAN URL is configured")
    _resp, data = _public_info(ctx)
    local = str(data.get("LocalAddress") or "").rstrip("/")
    public = ctx.url.origin + ctx.url.base
    side, other = ("LAN", "internet") if ctx.target.from_lan else ("internet", "LAN")
    article = "a" if ctx.target.from_lan else "an"
    expected, wrong = (
        (lan.rstrip("/"), public) if ctx.target.from_lan else (public, lan.rstrip("/"))
    )
    details = {"side": side, "local_address": local, "lan_url": lan, "public_url": public}
    if local == expected:
        return passed(f"{article} {side} client is sent to {local}", **details)
    if local == wrong:
        return failed(
            f"{article} {side} client is sent to the {other} URL {local}", HINT_LAN, **details
        )
    return failed(
        f"{article} {side} client is sent to {local or 'nothing'!r}, expected {expected}",
        HINT_LAN,
        **details,
    )


CHECKS = (
    jellyfin_health,
    jellyfin_info,
    jellyfin_forwarded,
    jellyfin_lan_url,
    jellyfin_web,
    jellyfin_subpath_redirect,
    jellyfin_redirect_loop,
)
