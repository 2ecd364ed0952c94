"""Traefik v3: static traefik.toml + one dynamic file (file provider, no Docker socket)."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="traefik",
    default_image="traefik:v3.7.15",
    factory="stackgen.proxies.traefik.proxy:Traefik",
    rank=10,
    no_ban_feeder="Traefik's one file provider reads one folder, which holds the site's "
    "routes beside your deny file, so a folder fail2ban could write would let it rewrite the "
    "routes",
    no_login_log="Traefik has one access log, which can keep only some status codes and "
    "leave out some routers (per-router observability) but then is no longer the site's own "
    "access log, and writes only to a file or its output, never to a socket",
)
