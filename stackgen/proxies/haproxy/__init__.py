"""HAProxy: one haproxy.cfg, certificates through the shared certbot service."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="haproxy",
    default_image="haproxy:3.4.7",
    factory="stackgen.proxies.haproxy.proxy:HAProxy",
    rank=40,
)
