"""Response headers: HSTS, the security headers, and the ones that break Jellyfin clients
(docs/jellyfin.md, "Headers that break real clients")."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

from stackgen.probe import client
from stackgen.probe.base import UPSTREAM, NotApplicable, Outcome, check, failed, passed, warned
from stackgen.probe.checks.redirect import ACME_PATH, NO_PLAIN_HTTP, probe_path
from stackgen.probe.context import ProbeContext
from stackgen.probe.result import Status

HSTS_MIN_AGE = 63072000  # two years, Mozilla guideline

HINT_HSTS = (
    "send `Strict-Transport-Security: max-age=63072000; includeSubDomains` on every HTTPS "
    'response, errors included: nginx `add_header Strict-Transport-Security "..." always;` '
    "(an add_header inside a location drops the server-level ones); Apache `Header always "
    "set`; HAProxy `http-response set-header`; Traefik headers middleware stsSeconds + "
    "stsIncludeSubdomains; Caddy `header Strict-Transport-Security ...`"
)
HINT_HSTS_HTTP = (
    "send HSTS on HTTPS responses only (browsers ignore it on http://): move the header "
    "out of the port-80 server/frontend"
)
HINT_SECURITY = (
    "add `X-Content-Type-Options: nosniff`, `Referrer-Policy: strict-origin-when-cross-origin` "
    "and a `Permissions-Policy` (nginx `add_header ... always`, Apache `Header always set`, "
    "Traefik headers contentTypeNosniff/referrerPolicy/permissionsPolicy, Caddy `header`, "
    "HAProxy `http-response set-header`)"
)
HINT_FRAMES = (
    "remove `X-Frame-Options` and CSP `frame-ancestors`: the LG webOS app loads Jellyfin in a "
    "frame (Traefik: drop frameDeny/customFrameOptionsValue; nginx/Apache/HAProxy: delete the "
    "header line); keep them only with --frames-allowed"
)
HINT_CSP = (
    "jellyfin-web needs `script-src 'self' 'unsafe-eval' https://www.gstatic.com` (eval in "
    "10.9+, Chromecast sender) and `worker-src 'self' blob:`; e.g. `default-src https: data: "
    "blob:; script-src 'self' 'unsafe-inline' 'unsafe-eval' https://www.gstatic.com; "
    "worker-src 'self' blob:`"
)
HINT_SERVER = (
    "hide version numbers: nginx `server_tokens off`; Apache `ServerTokens Prod` + "
    "`ServerSignature Off`; HAProxy `http-response del-header Server`; remove X-Powered-By "
    "(Traefik/Caddy headers middleware with an empty value)"
)


# --- HSTS -------------------------------------------------------------------------------


def parse_hsts(value: str) -> tuple[int | None, bool]:
    """(max-age or None, includeSubDomains) from a Strict-Transport-Security value."""
    max_age: int | None = None
    subdomains = False
    for directive in value.split(";"):
        name, _, arg = directive.strip().partition("=")
        name = name.strip().lower()
        if name == "max-age":
            try:
                max_age = int(arg.strip().strip('"'))
            except ValueError:
                max_age = None
        elif name == "includesubdomains":
            subdomains = True
    return max_age, subdomains


def _hsts_of(resp: client.Response) -> tuple[str | None, int | None, bool]:
    value = resp.header("Strict-Transport-Security")
    if value is None:
        return None, None, False
    max_age, subdomains = parse_hsts(value)
    return value, max_age, subdomains


@check(
    "hsts.https",
    "HSTS on HTTPS responses, errors included",
    HINT_HSTS,
    per_protocol=True,
    needs=UPSTREAM,
)
def hsts_https(ctx: ProbeContext) -> Outcome:
    pages = {"page": ctx.web_page(), "error": ctx.error_page()}
    missing: list[str] = []
    short: list[str] = []
    subdomains_everywhere = True
    details: dict[str, object] = {}
    for label, resp in pages.items():
        value, max_age, subdomains = _hsts_of(resp)
        details[label] = {"url": resp.url, "status": resp.status, "hsts": value}
        if value is None or max_age is None:
            missing.append(f"{label} ({resp.status})")
        elif max_age < HSTS_MIN_AGE:
            short.append(f"{label} max-age={max_age}")
        subdomains_everywhere &= subdomains
    if missing:
        return failed(
            f"no valid Strict-Transport-Security on {', '.join(missing)}", HINT_HSTS, **details
        )
    if short:
        return warned(
            f"HSTS max-age below {HSTS_MIN_AGE}: {', '.join(short)}", HINT_HSTS, **details
        )
    note = "includeSubDomains set" if subdomains_everywhere else "without includeSubDomains"
    return passed(f"max-age >= {HSTS_MIN_AGE} on pages and errors, {note}", **details)


@check("hsts.http", "No HSTS on plain-HTTP responses", HINT_HSTS_HTTP)
def hsts_http(ctx: ProbeContext) -> Outcome:
    if not ctx.target.plain_http:
        raise NotApplicable(NO_PLAIN_HTTP)
    carrying: list[str] = []
    seen: list[str] = []
    for path in (probe_path(ctx), ACME_PATH):
        try:
            resp = ctx.http(path)
        except client.ProbeError:
            continue  # redirect.* reports an unreachable port 80
        seen.append(resp.url)
        if resp.header("Strict-Transport-Security") is not None:
            carrying.append(f"{resp.url} ({resp.status})")
    if not seen:
        return warned(
            "could not test: plain HTTP did not answer (see redirect.https)", HINT_HSTS_HTTP
        )
    if carrying:
        return warned(
            f"HSTS sent over plain HTTP, where browsers ignore it: {', '.join(carrying)}",
            HINT_HSTS_HTTP,
            urls=seen,
        )
    return passed("plain-HTTP responses carry no Strict-Transport-Security", urls=seen)


# --- security headers --------------------------------------------------------------------


@check(
    "headers.security",
    "nosniff, Referrer-Policy, Permissions-Policy; no client-breaking CORP",
    HINT_SECURITY,
    needs=UPSTREAM,
    per_protocol=True,
)
def headers_security(ctx: ProbeContext) -> Outcome:
    page = ctx.web_page()
    problems: list[tuple[Status, str]] = []
    nosniff = page.header("X-Content-Type-Options")
    if (nosniff or "").strip().lower() != "nosniff":
        problems.append((Status.WARN, "X-Content-Type-Options: nosniff missing"))
    if page.header("Referrer-Policy") is None:
        problems.append((Status.WARN, "Referrer-Policy missing"))
    if page.header("Permissions-Policy") is None:
        problems.append((Status.WARN, "Permissions-Policy missing"))
    corp = page.header("Cross-Origin-Resource-Policy")
    if corp is not None and corp.strip().lower() == "same-origin":
        problems.append(
            (
                Status.FAIL,
                "Cross-Origin-Resource-Policy: same-origin breaks images in Jellyfin Media Player",
            )
        )
    acao = page.header("Access-Control-Allow-Origin")
    if acao is not None and acao.strip() != "*":
        problems.append(
            (Status.WARN, f"Access-Control-Allow-Origin narrowed to {acao!r} breaks casting")
        )
    details = {
        "url": page.url,
        "x-content-type-options": nosniff,
        "referrer-policy": page.header("Referrer-Policy"),
        "permissions-policy": page.header("Permissions-Policy"),
        "cross-origin-resource-policy": corp,
    }
    if not problems:
        return passed("nosniff, Referrer-Policy and Permissions-Policy present", **details)
    reason = "; ".join(text for _, text in problems)
    if any(status is Status.FAIL for status, _ in problems):
        return failed(
            reason,
            "remove Cross-Origin-Resource-Policy (or set `cross-origin`); " + HINT_SECURITY,
            **details,
        )
    return warned(reason, HINT_SECURITY, **details)


def parse_csp(values: Sequence[str]) -> list[dict[str, list[str]]]:
    """Policies (one per header value / comma-separated entry), directive -> sources."""
    policies: list[dict[str, list[str]]] = []
    for value in values:
        for policy_text in value.split(","):
            policy: dict[str, list[str]] = {}
            for directive in policy_text.split(";"):
                tokens = directive.split()
                if tokens and tokens[0].lower() not in policy:  # first occurrence wins
                    policy[tokens[0].lower()] = tokens[1:]
            if policy:
                policies.append(policy)
    return policies


def _effective(policy: dict[str, list[str]], chain: Sequence[str]) -> list[str] | None:
    """Sources of the first directive present in the fallback chain; None = unrestricted."""
    for name in chain:
        if name in policy:
            return policy[name]
    return None


_HOST_SOURCE = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\*|(?:\*\.)?[^/:]+)(?::[0-9*]+)?(?:/.*)?$",
    re.I,
)


def allows_url(sources: Sequence[str], scheme: str, host: str) -> bool:
    """Whether a CSP source list allows a URL at scheme://host (paths ignored)."""
    for raw in sources:
        src = raw.lower()
        if src == "*" and scheme in ("http", "https"):
            return True
        if src == f"{scheme}:":
            return True
        m = _HOST_SOURCE.match(src)
        if not m or src.startswith("'"):
            continue
        if m.group("scheme") and m.group("scheme") != scheme:
            continue
        pattern = m.group("host")
        if pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


@check(
    "headers.frames",
    "No X-Frame-Options / frame-ancestors (LG webOS app)",
    HINT_FRAMES,
    needs=UPSTREAM,
    per_protocol=True,
)
def headers_frames(ctx: ProbeContext) -> Outcome:
    page = ctx.web_page()
    found: list[str] = []
    xfo = page.header("X-Frame-Options")
    if xfo is not None:
        found.append(f"X-Frame-Options: {xfo}")
    for policy in parse_csp(page.header_all("Content-Security-Policy")):
        if "frame-ancestors" in policy:
            found.append("CSP frame-ancestors " + " ".join(policy["frame-ancestors"]))
    details = {"url": page.url, "found": found, "frames_allowed": ctx.target.frames_allowed}
    if not found:
        return passed("no X-Frame-Options and no frame-ancestors", **details)
    if ctx.target.frames_allowed:
        return passed(f"framing restricted as opted in: {'; '.join(found)}", **details)
    return failed(f"{'; '.join(found)} breaks the LG webOS app", HINT_FRAMES, **details)


@check(
    "headers.csp",
    "Content-Security-Policy lets jellyfin-web run",
    HINT_CSP,
    per_protocol=True,
    needs=UPSTREAM,
)
def headers_csp(ctx: ProbeContext) -> Outcome:
    page = ctx.web_page()
    values = page.header_all("Content-Security-Policy")
    if not values:
        report_only = page.header("Content-Security-Policy-Report-Only")
        return warned(
            "no Content-Security-Policy" + (" (only Report-Only)" if report_only else ""),
            "add a CSP; " + HINT_CSP,
            url=page.url,
        )
    problems: list[str] = []
    for policy in parse_csp(values):
        script = _effective(policy, ("script-src", "default-src"))
        if script is not None:
            lowered = [s.lower() for s in script]
            if "'unsafe-eval'" not in lowered:
                problems.append("script-src lacks 'unsafe-eval'")
            if not allows_url(script, "https", "www.gstatic.com"):
                problems.append("script-src does not allow https://www.gstatic.com (Chromecast)")
        worker = _effective(policy, ("worker-src", "child-src", "script-src", "default-src"))
        if worker is not None and "blob:" not in [s.lower() for s in worker]:
            problems.append("worker-src (or its fallback) does not allow blob:")
    details = {"url": page.url, "csp": values}
    if problems:
        return failed("; ".join(dict.fromkeys(problems)), HINT_CSP, **details)
    return passed("CSP allows 'unsafe-eval', https://www.gstatic.com and blob: workers", **details)


_VERSION = re.compile(r"\d")


@check(
    "headers.server-version",
    "Server / X-Powered-By carry no version",
    HINT_SERVER,
    per_protocol=True,
    needs=UPSTREAM,
)
def headers_server_version(ctx: ProbeContext) -> Outcome:
    responses: list[client.Response] = [ctx.web_page(), ctx.error_page()]
    if ctx.target.plain_http:
        with contextlib.suppress(client.ProbeError):  # port 80 problems: redirect.https
            responses.append(ctx.http(probe_path(ctx)))
    leaks: dict[str, str] = {}
    seen: dict[str, str] = {}
    for resp in responses:
        for name in ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version"):
            for value in resp.header_all(name):
                seen[name] = value
                if _VERSION.search(value) or name.startswith("X-AspNet"):
                    leaks[f"{name} on {resp.url}"] = value
    if leaks:
        first = next(iter(leaks.items()))
        return failed(
            f"version disclosed: {first[0].split(' on ')[0]}: {first[1]}", HINT_SERVER, leaks=leaks
        )
    return passed("no version number in Server / X-Powered-By", headers=seen)


CHECKS = (
    hsts_https,
    hsts_http,
    headers_security,
    headers_frames,
    headers_csp,
    headers_server_version,
)
