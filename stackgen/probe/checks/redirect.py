"""Port 80: everything redirects to HTTPS, except what the ACME HTTP-01 responder needs."""

from __future__ import annotations

from urllib.parse import urlsplit

from stackgen.probe.base import NotApplicable, Outcome, check, failed, passed, warned
from stackgen.probe.context import ProbeContext

ACME_PATH = "/.well-known/acme-challenge/stackgen-probe"

HINT_REDIRECT = (
    "redirect every plain-HTTP request permanently to https with path and query: "
    "Traefik entryPoints.web.http.redirections.entryPoint (to=websecure, scheme=https, "
    "permanent=true); Caddy does it by itself; nginx `return 301 https://$host$request_uri;`; "
    "HAProxy `http-request redirect scheme https code 301 unless { ssl_fc }`; Apache "
    "`RewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]`"
)
HINT_ACME = (
    "let /.well-known/acme-challenge/ through on port 80 before the https redirect: nginx "
    "`location ^~ /.well-known/acme-challenge/ { root /var/www/certbot; }`; Apache "
    "`ProxyPass /.well-known/acme-challenge/ !` + an Alias to the webroot; HAProxy an ACL "
    "`path_beg /.well-known/acme-challenge/` to the certbot backend placed before the "
    "redirect; Traefik and Caddy route the challenge themselves (do not add your own "
    "redirect router on port 80)"
)


NO_PLAIN_HTTP = (
    "no plain-HTTP port is published: the certificate comes over DNS-01 or TLS-ALPN-01 "
    "and no redirect listener was asked for"
)


def probe_path(ctx: ProbeContext) -> str:
    # Under the base, with a query whose order and encoding must survive the redirect.
    return f"{ctx.url.base}/stackgen-probe/some/path?q=1&r=a%20b"


@check("redirect.https", "HTTP redirects to HTTPS (permanent, path and query kept)", HINT_REDIRECT)
def redirect_https(ctx: ProbeContext) -> Outcome:
    if not ctx.target.plain_http:
        raise NotApplicable(NO_PLAIN_HTTP)
    path = probe_path(ctx)
    resp = ctx.http(path)
    details: dict[str, object] = {"url": resp.url, "status": resp.status}
    if not resp.is_redirect:
        return failed(
            f"plain HTTP answered {resp.status} instead of redirecting to https",
            HINT_REDIRECT,
            **details,
        )
    location = resp.location
    details["location"] = location
    parts = urlsplit(location)
    want = urlsplit(ctx.url.url(path))
    if parts.scheme != "https":
        return failed(f"redirects to {location}, which is not https", HINT_REDIRECT, **details)
    if not ctx.url.same_origin(parts):
        return failed(
            f"redirects to {parts.netloc}, expected {ctx.url.netloc}", HINT_REDIRECT, **details
        )
    if parts.path != want.path:
        return failed(
            f"redirect lost the path: {location} (expected {ctx.url.url(path)})",
            HINT_REDIRECT,
            **details,
        )
    if parts.query != want.query:
        return failed(
            f"redirect lost or changed the query: {location} (expected ?{want.query})",
            "keep the query string: nginx `$request_uri` (not `$uri`), Apache without a "
            "trailing `?` in the RewriteRule target, HAProxy `redirect scheme` keeps it",
            **details,
        )
    if resp.status in (301, 308):
        return passed(f"{resp.status} to https, path and query kept", **details)
    return warned(
        f"{resp.status} is a temporary redirect; browsers will not remember it",
        "use 301 or 308 (Traefik `permanent = true`, nginx `return 301`, HAProxy `code 301`)",
        **details,
    )


@check("redirect.acme-path", "ACME HTTP-01 path is not redirected to HTTPS", HINT_ACME)
def redirect_acme_path(ctx: ProbeContext) -> Outcome:
    if not ctx.target.plain_http:
        raise NotApplicable(NO_PLAIN_HTTP)
    if ctx.target.acme_http01 is False:
        # Nothing answers HTTP-01 on such a stack, so redirecting the path like any other
        # is right; judging it would fail a correct stack.
        raise NotApplicable("the certificates do not come from ACME HTTP-01")
    resp = ctx.http(ACME_PATH)
    details: dict[str, object] = {"url": resp.url, "status": resp.status}
    if resp.is_redirect:
        location = resp.location
        details["location"] = location
        if urlsplit(location).scheme == "https":
            return failed(
                f"{ACME_PATH} is redirected to https ({location}); HTTP-01 renewals depend on "
                "the https side answering the challenge",
                HINT_ACME,
                **details,
            )
        return warned(f"{ACME_PATH} is redirected to {location}", HINT_ACME, **details)
    if resp.status in (200, 404):
        return passed(
            f"served on plain HTTP ({resp.status} from the challenge responder)", **details
        )
    return warned(
        f"{ACME_PATH} answered {resp.status}; is the ACME responder reachable?",
        HINT_ACME,
        **details,
    )


CHECKS = (redirect_https, redirect_acme_path)
