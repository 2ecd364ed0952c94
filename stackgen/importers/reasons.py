"""The reasons the report gives, shared by every format so the same directive is explained the
same way whichever proxy it came from."""

from __future__ import annotations

from typing import Final

REDIRECT: Final = (
    "stackgen's own HTTP to HTTPS redirect (301, path and query kept, "
    "/.well-known/acme-challenge/ still reachable for renewals)"
)
TLS_SETTINGS: Final = (
    "stackgen's Mozilla intermediate TLS: TLS 1.2 and 1.3, six AEAD suites, named curves"
)
OLD_TLS: Final = (
    "TLS 1.0/1.1 and CBC or RSA-key-exchange suites are insecure and flagged by scanners; "
    "stackgen serves Mozilla intermediate (TLS 1.2 and 1.3)"
)
OCSP: Final = "Let's Encrypt ended OCSP in 2025: stapling has nothing to staple"
DHPARAM: Final = "Mozilla intermediate has no DHE suites: no DH parameters are needed"
HSTS: Final = "stackgen sends HSTS max-age=63072000; includeSubDomains on every HTTPS response"
FRAME: Final = (
    "X-Frame-Options / frameDeny breaks casting and the LG webOS app, which embeds the web "
    "client in a frame; stackgen leaves it off (headers.frame_options opts in)"
)
XSS: Final = "X-XSS-Protection is obsolete (browsers removed the XSS auditor); not sent"
NOSNIFF: Final = "stackgen sends X-Content-Type-Options: nosniff itself"
CSP: Final = (
    "stackgen's Content-Security-Policy is one the web client survives (10.9+ needs "
    "'unsafe-eval' and blob: workers; no frame-ancestors, which breaks webOS); "
    "headers.content_security_policy changes it"
)
REFERRER: Final = "stackgen sends its own Referrer-Policy (headers.referrer_policy)"
CUSTOM_HEADER: Final = (
    "stackgen renders a fixed, checked header set; this header is not carried over "
    "(add it to the rendered proxy file by hand if you need it)"
)
FORWARDED: Final = (
    "stackgen always sends X-Forwarded-For, -Proto and -Host and keeps Host; Jellyfin reads "
    "them only from the proxies in KnownProxies, which stackgen writes"
)
REAL_IP: Final = "Jellyfin ignores X-Real-IP; the client address travels in X-Forwarded-For"
FORWARDED_PROTOCOL: Final = "X-Forwarded-Protocol is read by nothing; X-Forwarded-Proto is sent"
WEBSOCKET: Final = (
    "Jellyfin accepts WebSocket upgrades on any path; stackgen passes them on every request "
    "(HTTP/1.1 upstream, Upgrade and Connection forwarded), not only on /socket"
)
EMBY_WEBSOCKET: Final = "/embywebsocket is Emby's path; Jellyfin 10.x has no such endpoint"
BUFFERING: Final = (
    "stackgen renders unbuffered media responses and long read timeouts for paused streams "
    "itself (nginx: proxy_buffering off with 64k buffers)"
)
BODY_SIZE: Final = "stackgen sets its own request-body limit, large enough for uploads"
LOGS: Final = (
    "the proxy logs to the container's output, with request paths dropped: Jellyfin clients "
    "put api_key in the query string"
)
PREFIX_STRIP: Final = (
    "the old proxy stripped the subpath prefix before Jellyfin (a URI after the upstream's "
    "port): this causes redirect loops with Jellyfin's BaseUrl; stackgen keeps the prefix end "
    "to end and writes BaseUrl"
)
SUBPATH_REDIRECT: Final = "stackgen redirects the bare subpath to the subpath with a slash"
KNOWN_PROXIES: Final = (
    "the old setup did not set Jellyfin's KnownProxies, so Jellyfin ignored X-Forwarded-For "
    "and saw every client as the proxy; stackgen writes the proxy's pinned address to "
    "network.xml"
)
BASE_URL: Final = "written to Jellyfin's network.xml as BaseUrl, so the prefix is kept end to end"
DEFAULT_ON: Final = "the default already; nothing to carry over"
NOT_JELLYFIN: Final = "not part of the Jellyfin site"
UNSUPPORTED: Final = (
    "stackgen has no setting for this; not carried over (add it to the rendered proxy file "
    "by hand if you need it)"
)
HTTP2: Final = "stackgen enables HTTP/2 itself where the proxy supports it"
SERVER_TOKENS: Final = "stackgen hides the server version itself"
UPSTREAM_HTTPS: Final = (
    "Jellyfin's own HTTPS port (8920) is not needed behind a proxy: stackgen proxies to its "
    "HTTP port 8096 on the stack's network"
)
COMMENTED: Final = "commented out: not active in the old configuration, so not imported"
