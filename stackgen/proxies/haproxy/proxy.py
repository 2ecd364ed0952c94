"""HAProxy: one haproxy.cfg, certificates through the shared certbot service.

HAProxy serves no files, so certbot's webroot is answered by a small Lua service
(acme-webroot.lua; the official image and Debian's build have Lua). `crt` is the same file in
every mode: the combined chain + key that certbot's deploy hook builds, or, in modes
`internal` and `files`, the chain with its key mounted beside it as `<crt>.key`, which HAProxy
loads by itself (`ssl-load-extra-files`, 2.2+): no combined copy of the user's key is made.
"""

from __future__ import annotations

from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, certbot_or_files
from stackgen.certificates.certbot import SERVED_COMBINED, TLS_MODES
from stackgen.models import StackConfig, TlsMode
from stackgen.parts import InImageCommand, TemplateFile
from stackgen.proxies.base import DenySyntax, Proxy
from stackgen.proxies.haproxy import SPEC
from stackgen.proxies.spec import ProxySpec

# Mounted as the image's /usr/local/etc/haproxy (the folder: an atomic replace of the file
# would be missed by a single-file mount).
CONF_DIR: Final = "haproxy"
CONF_PATH: Final = "/usr/local/etc/haproxy"
CONF_FILE: Final = f"{CONF_PATH}/haproxy.cfg"
# Master-worker (-W): SIGUSR2 to the master starts new workers on the new configuration and
# lets the old ones finish their connections. -db: stay in the foreground.
FOREGROUND: Final = ("haproxy", "-W", "-db", "-f", CONF_FILE)


class HAProxy(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    tls_modes: ClassVar[frozenset[TlsMode]] = TLS_MODES
    # USE_QUIC on OpenSSL 3.5+'s QUIC API: the official image's build since 3.2 (and the
    # test image's).
    supports_http3: ClassVar[bool] = True
    conf_dir: ClassVar[str] = CONF_DIR
    conf_path: ClassVar[str] = CONF_PATH
    geo_file: ClassVar[str | None] = "geo-allow.lst"
    ban_file: ClassVar[str | None] = "deny.lst"

    def deny_syntax(self, head: str, name: str) -> DenySyntax:
        # A pattern file for `src -f`: one address a line, `#` starts a comment.
        return DenySyntax(head, each="{}\n")

    def geo_syntax(self, head: str) -> DenySyntax:
        # A pattern file for `src -f` (HAProxy keeps networks in a prefix tree).
        return DenySyntax(head, each="{}\n")

    def certificates(self, config: StackConfig) -> CertificateSource:
        # `crt` is one file in every mode (see the module's docstring).
        return certbot_or_files(config, SERVED_COMBINED)

    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        files = [TemplateFile("proxies/haproxy/haproxy.cfg.j2", f"{CONF_DIR}/haproxy.cfg")]
        if self.certificates(config).webroot_path:
            # HAProxy serves no files: a Lua service answers from certbot's webroot.
            files.append(
                TemplateFile("proxies/haproxy/acme-webroot.lua.j2", f"{CONF_DIR}/acme-webroot.lua")
            )
        if config.token_gate.on:
            # HAProxy has no auth_request: a Lua action asks the gate with its HTTP client.
            files.append(TemplateFile("proxies/haproxy/gate.lua.j2", f"{CONF_DIR}/gate.lua"))
        return files

    def foreground(self, config: StackConfig) -> tuple[str, ...]:
        # Given in full: the image's entrypoint adds -W -db only when `haproxy` comes first.
        return FOREGROUND

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # As the stack's user: the key files are readable by it alone.
        return InImageCommand(
            argv=("haproxy", "-c", "-f", CONF_FILE),
            mounts=self.conf_mounts(config),
            user=config.run_as,
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        # PID 1 is the container's init (compose `init: true`): it forwards the signal to
        # HAProxy's master.
        return ["sh", "-c", "kill -USR2 1"]
