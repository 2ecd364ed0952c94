"""Traefik v3: static traefik.toml + its dynamic files (file provider, no Docker socket)."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="traefik",
    default_image="traefik:v3.7.15",
    factory="stackgen.proxies.traefik.proxy:Traefik",
    rank=10,
)
