"""Traefik v3: static traefik.toml + one dynamic file (file provider, no Docker socket)."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="traefik",
    default_image="traefik:v3.7.15",
    factory="stackgen.proxies.traefik.proxy:Traefik",
    geo_linear="Traefik's `ipAllowList` tries the admitted networks one by one",
    rank=10,
    no_ban_feeder="Traefik's one file provider reads one folder, which holds the site's "
    "routes beside your deny file, so a folder fail2ban could write would let it rewrite the "
    "routes",
)
