"""nginx: one server file in conf.d, certificates through the certbot service."""

from __future__ import annotations

from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, certbot_or_files
from stackgen.certificates.certbot import SERVED, TLS_MODES
from stackgen.models import StackConfig, TlsMode
from stackgen.parts import InImageCommand, TemplateFile, Tmpfs, owned_tmpfs
from stackgen.proxies.base import DenySyntax, Proxy
from stackgen.proxies.nginx import SPEC
from stackgen.proxies.nginx.rules import conf_problems
from stackgen.proxies.spec import ProxySpec

# Mounted as /etc/nginx/conf.d, which the image's nginx.conf includes (and whose default.conf
# this hides).
CONF_DIR: Final = "nginx/conf.d"
CONF_FILE: Final = f"{CONF_DIR}/jellyfin.conf"
FOREGROUND: Final = ("nginx", "-g", "daemon off;")


class Nginx(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    tls_modes: ClassVar[frozenset[TlsMode]] = TLS_MODES
    # http_v3_module: in the official image's build since 1.25 (and in the test image's).
    supports_http3: ClassVar[bool] = True
    conf_dir: ClassVar[str] = CONF_DIR
    conf_path: ClassVar[str] = "/etc/nginx/conf.d"
    ban_file: ClassVar[str | None] = "deny.conf"
    # Not `*.conf`: the image's nginx.conf includes those at the http level by itself.
    geo_file: ClassVar[str | None] = "geo-allow.geo"

    def geo_syntax(self, head: str) -> DenySyntax:
        # The body of a `geo` block (a radix tree of networks): admitted ones map to 1.
        return DenySyntax(head, each="{} 1;\n")

    def deny_syntax(self, head: str, name: str) -> DenySyntax:
        # `deny` lines, included in the server block ahead of any `allow`.
        return DenySyntax(head, each="deny {};\n")

    def certificates(self, config: StackConfig) -> CertificateSource:
        return certbot_or_files(config, SERVED)

    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        return [TemplateFile("proxies/nginx/jellyfin.conf.j2", CONF_FILE)]

    def own_tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        why = "Owned by the user nginx runs as (temp files, pid file)."
        return [
            owned_tmpfs("/var/cache/nginx", config.uid, config.gid, why),
            owned_tmpfs("/run", config.uid, config.gid),
        ]

    def foreground(self, config: StackConfig) -> tuple[str, ...]:
        return FOREGROUND

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # nginx resolves proxy_pass host names when it loads its configuration, and this test
        # runs without a network: the upstream's name is given to it as loopback.
        script = f"echo '127.0.0.1 {config.jellyfin_host}' >>/etc/hosts && exec nginx -t"
        return InImageCommand(
            argv=("-c", script),
            mounts=self.conf_mounts(config),
            entrypoint="sh",
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        return ["nginx", "-s", "reload"]

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        raw = files.get(CONF_FILE)
        if raw is None:
            return [f"{CONF_FILE}: missing"]
        return [
            f"{CONF_FILE}: {problem}" for problem in conf_problems(raw.decode("utf-8", "replace"))
        ]
