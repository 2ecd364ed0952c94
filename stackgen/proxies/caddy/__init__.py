"""Caddy v2: one Caddyfile; Caddy obtains and renews its certificates itself."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="caddy",
    default_image="caddy:2.11.7",
    factory="stackgen.proxies.caddy.proxy:Caddy",
    rank=20,
)
