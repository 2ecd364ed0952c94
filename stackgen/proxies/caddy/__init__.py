"""Caddy v2: one Caddyfile; Caddy obtains and renews its certificates itself."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="caddy",
    default_image="caddy:2.11.7",
    factory="stackgen.proxies.caddy.proxy:Caddy",
    geo_linear="Caddy's `remote_ip` matcher tries the admitted networks one by one",
    rank=20,
    no_rate_limit="the official Caddy image has no rate-limit module (it is a third-party "
    "plugin that needs a custom build)",
)
