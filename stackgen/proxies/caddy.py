"""Caddy v2: one Caddyfile; Caddy obtains and renews its certificates itself."""

from __future__ import annotations

from typing import ClassVar, Final

from stackgen.models import ProxyKind, StackConfig, TlsMode
from stackgen.proxies.base import InImageCommand, Proxy, TemplateFile

# Folders in the stack, mounted as a whole: an editor's (or stackgen's) atomic replace of
# the Caddyfile would be missed by a single-file bind mount.
CONF_DIR: Final = "caddy/etc"
# /data holds the ACME account and the certificates: it must survive a re-creation.
DATA_DIR: Final = "caddy/data"
CONFIG_DIR: Final = "caddy/config"
CADDYFILE: Final = "/etc/caddy/Caddyfile"


class Caddy(Proxy):
    kind: ClassVar[ProxyKind] = ProxyKind.CADDY
    # DNS-01 needs a DNS provider plugin, which the official image does not contain (it
    # would take a custom build with xcaddy): refused rather than rendered half-working.
    tls_modes: ClassVar[frozenset[TlsMode]] = frozenset(TlsMode) - {TlsMode.ACME_DNS}
    # A site on loopback inside the container, for the healthcheck only (never published).
    health_port: ClassVar[int] = 8082
    conf_dir: ClassVar[str] = CONF_DIR
    data_dir: ClassVar[str] = DATA_DIR
    config_dir: ClassVar[str] = CONFIG_DIR
    # Container paths of the served pair (modes internal, files) and of the private ACME
    # server's root.
    cert_path: ClassVar[str] = "/etc/stackgen/tls/fullchain.pem"
    key_path: ClassVar[str] = "/etc/stackgen/tls/privkey.pem"
    acme_ca_path: ClassVar[str] = "/etc/stackgen/acme-ca.pem"

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return [TemplateFile("proxies/caddy/Caddyfile.j2", f"{CONF_DIR}/Caddyfile")]

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        # Private keys live in /data: nobody else reads them.
        return [(DATA_DIR, 0o700), (CONFIG_DIR, 0o700)]

    def tls_mounts(self, config: StackConfig) -> list[tuple[str, str]]:
        """(stack path, container path), read-only: certificate files, private CA's root."""
        mounts: list[tuple[str, str]] = []
        if config.tls_files:
            mounts += [(config.tls_files[0], self.cert_path), (config.tls_files[1], self.key_path)]
        if config.acme_ca_bundle:
            mounts.append((config.acme_ca_bundle, self.acme_ca_path))
        return mounts

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # `validate` provisions every module, so it loads the certificate files and the
        # private CA's root too: they are mounted as in the stack.
        return InImageCommand(
            argv=("caddy", "validate", "--config", CADDYFILE, "--adapter", "caddyfile"),
            mounts=((CONF_DIR, "/etc/caddy"), *self.tls_mounts(config)),
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        # Talks to the admin API on localhost:2019 inside the container (never published).
        return ["caddy", "reload", "--config", CADDYFILE, "--adapter", "caddyfile"]
