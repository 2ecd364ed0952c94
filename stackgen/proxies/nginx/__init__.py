"""nginx: one server file in conf.d, certificates through the shared certbot service."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="nginx",
    default_image="nginx:1.30.6",
    factory="stackgen.proxies.nginx.proxy:Nginx",
    rank=30,
)
