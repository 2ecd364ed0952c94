"""Caddy v2: one Caddyfile; Caddy obtains and renews its certificates itself."""

from __future__ import annotations

from typing import ClassVar, Final

from stackgen.certificates import (
    Certbot,
    CertificateSource,
    ProxyAcme,
    ServedPair,
    mounted_files,
    uses_certbot,
)
from stackgen.certificates import certbot as certbot_source
from stackgen.models import StackConfig, TlsMode, bind_source
from stackgen.parts import InImageCommand, Mount, TemplateFile
from stackgen.proxies.base import DenySyntax, Proxy
from stackgen.proxies.caddy import SPEC
from stackgen.proxies.spec import ProxySpec

# Folders in the stack, mounted as a whole: an editor's (or stackgen's) atomic replace of
# the Caddyfile would be missed by a single-file bind mount.
CONF_DIR: Final = "caddy/etc"
# /data holds the ACME account and the certificates: it must survive a re-creation.
DATA_DIR: Final = "caddy/data"
CONFIG_DIR: Final = "caddy/config"
CADDYFILE: Final = "/etc/caddy/Caddyfile"
# Container paths of the served pair (modes internal, files).
SERVED: Final = ServedPair("/etc/stackgen/tls/fullchain.pem", "/etc/stackgen/tls/privkey.pem")


class Caddy(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    # DNS-01 needs a DNS provider module, which the official image does not contain (it
    # would take a custom build with xcaddy): there the certbot service obtains the
    # certificate, and Caddy reloads it when it changes.
    tls_modes: ClassVar[frozenset[TlsMode]] = frozenset(TlsMode)
    supports_http3: ClassVar[bool] = True  # quic-go, in the official image
    conf_dir: ClassVar[str] = CONF_DIR
    conf_path: ClassVar[str] = "/etc/caddy"
    geo_file: ClassVar[str | None] = "geo-allow.caddy"
    ban_file: ClassVar[str | None] = "deny.caddy"

    def deny_syntax(self, head: str, name: str) -> DenySyntax:
        # A snippet imported into the site block; `remote_ip` needs at least one range, so
        # an empty list is a file with no directive at all. Each file names its own matcher.
        return DenySyntax(
            head,
            first=f"@{name} remote_ip ",
            each="{}",
            between=" ",
            tail=f"\nrespond @{name} 403\n",
        )

    def geo_syntax(self, head: str) -> DenySyntax:
        # A snippet imported into the site block: one `remote_ip` line a network, merged by
        # Caddy into one matcher, negated: everyone outside gets 403.
        return DenySyntax(
            head,
            first="@stackgen_geo_refused {\n\tnot {\n",
            each="\t\tremote_ip {}\n",
            tail="\t}\n}\nrespond @stackgen_geo_refused 403\n",
        )

    data_dir: ClassVar[str] = DATA_DIR
    config_dir: ClassVar[str] = CONFIG_DIR
    acme_ca_path: ClassVar[str | None] = "/etc/stackgen/acme-ca.pem"

    def certificates(self, config: StackConfig) -> CertificateSource:
        own_client = config.tls.mode is not TlsMode.ACME_DNS
        if uses_certbot(config, own_client=own_client):
            return Certbot(certbot_source.SERVED)
        # Caddy's ACME account and certificates live in /data (own_directories).
        return ProxyAcme(SERVED) if config.tls.mode.is_acme else mounted_files(config, SERVED)

    def foreground(self, config: StackConfig) -> tuple[str, ...] | None:
        # Given only when the file watcher wraps it; otherwise the image's own command.
        if not self.watches(config):
            return None
        return ("caddy", "run", "--config", CADDYFILE, "--adapter", "caddyfile")

    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        return [TemplateFile("proxies/caddy/Caddyfile.j2", f"{CONF_DIR}/Caddyfile")]

    def own_mounts(self, config: StackConfig) -> list[Mount]:
        why = "The folder, not the file: an atomic replace of the Caddyfile would be missed."
        keep = "Certificates, keys and the ACME account: must persist."
        return [
            Mount(bind_source(self.conf_dir), self.conf_path, comment=(why,)),
            Mount(bind_source(self.data_dir), "/data", read_only=False, comment=(keep,)),
            Mount(bind_source(self.config_dir), "/config", read_only=False),
        ]

    def own_directories(self, config: StackConfig) -> list[tuple[str, int]]:
        # Private keys live in /data: nobody else reads them.
        return [(DATA_DIR, 0o700), (CONFIG_DIR, 0o700)]

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # `validate` provisions every module, so it loads the certificate files and the
        # private CA's root too: they are mounted as in the stack.
        return InImageCommand(
            argv=("caddy", "validate", "--config", CADDYFILE, "--adapter", "caddyfile"),
            mounts=self.conf_mounts(config),
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        # Talks to the admin API on localhost:2019 inside the container (never published).
        command = ["caddy", "reload", "--config", CADDYFILE, "--adapter", "caddyfile"]
        if self.certificates(config).watched_files():
            # A renewed certificate leaves the Caddyfile as it was, and Caddy skips a reload
            # of an unchanged configuration unless forced (then it loads the files again).
            command.append("--force")
        return command
