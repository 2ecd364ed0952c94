"""Apache httpd 2.4: one complete httpd.conf, certificates through the certbot service."""

from stackgen.proxies.spec import ProxySpec

SPEC = ProxySpec(
    name="apache",
    default_image="httpd:2.4.71",
    factory="stackgen.proxies.apache.proxy:Apache",
    geo_linear="Apache's `Require ip` lines tries the admitted networks one by one",
    rank=50,
    no_rate_limit="httpd 2.4 has no module that counts requests per client (mod_ratelimit "
    "limits bandwidth; mod_evasive and mod_security are not in the official image)",
)
