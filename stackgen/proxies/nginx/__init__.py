"""nginx: one server file in conf.d, certificates through the shared certbot service."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="nginx",
    default_image="nginx:1.28.0",
    factory="stackgen.proxies.nginx.proxy:Nginx",
    rank=30,
)
