"""Traefik v3: static traefik.toml + its dynamic files (file provider, no Docker socket)."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="traefik",
    default_image="traefik:v3.7.15",
    factory="stackgen.proxies.traefik.proxy:Traefik",
    geo_linear="Traefik's `ipAllowList` tries the admitted networks one by one",
    rank=10,
    no_login_log="Traefik has one access log, which can keep only some status codes and "
    "leave out some routers (per-router observability) but then is no longer the site's own "
    "access log, and writes only to a file or its output, never to a socket",
)
