"""Certificates through certbot, for the proxies that have no ACME client of their own (nginx,
Apache, HAProxy): HTTP-01 with a webroot the proxy serves.

How it fits together (TLS mode `acme`):

- The proxy always reads the same files, `certs/fullchain.pem` and `certs/privkey.pem` (and
  `certs/haproxy.pem`, chain + key, for a proxy whose served pair is `combined`), mounted
  read-only at `/etc/stackgen/certs`. stackgen creates them once as a self-signed
  placeholder, so the proxy can start and answer the first challenge.
- The `certbot` service runs `certbot/run.sh`: `certbot certonly --webroot`, retried with a
  bounded back-off until it succeeds, then `certbot renew` every 12 hours. Its deploy hook
  (`certbot/deploy-hook.sh`) replaces the files in `certs/` atomically and writes
  `certs/deployed`, which certbot's healthcheck waits for (so `up --wait` returns once the
  real certificate is there).
- The proxy's command is wrapped by the proxy's file watcher (`Proxy.command`), which runs the
  proxy in the foreground and calls its graceful reload when the files in `certs/` change:
  first issuance and every renewal, without a Docker socket.

In modes `internal` and `files` there is no certbot: the two certificate files are mounted
at the same container paths, so the proxy's own config does not depend on the mode.

A proxy gets this source from its `certificates(config)`; the base proxy then adds the
source's templates, files, folders, mounts and service, and the proxy's watcher reloads it
when the certificate files change (`watched_files`). Nothing here depends on which proxy it
is, beyond the served paths it is given (`ServedPair`), so any proxy whose image has a shell
can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from stackgen.certificates.source import CertificateSource, ServedPair, mounted_files
from stackgen.models import StackConfig, TlsMode, TlsSource, bind_source
from stackgen.parts import Mount, StateFile, TemplateFile, Tmpfs, owned_tmpfs
from stackgen.pki import placeholder_pair

# HTTP-01 through the proxy's webroot, DNS-01 through one of certbot's DNS plugins (the
# provider's credentials come from the stack's .env, or a swarm's secrets). TLS-ALPN-01
# would need the proxy to serve the challenge certificate: not offered.
TLS_MODES: Final = frozenset({TlsMode.ACME, TlsMode.ACME_DNS, TlsMode.INTERNAL, TlsMode.FILES})
# Modes in which certbot obtains the certificate.
CERTBOT_MODES: Final = frozenset({TlsMode.ACME, TlsMode.ACME_DNS})


@dataclass(frozen=True)
class Layout:
    """Where the machinery's files live, in the stack folder and in the containers."""

    # Stack folder (relative paths).
    certs_dir: str = "certs"
    webroot_dir: str = "acme-webroot"
    state_dir: str = "letsencrypt"  # account, keys, lineages: must persist
    scripts_dir: str = "certbot"
    # Containers.
    certs_path: str = "/etc/stackgen/certs"
    webroot_path: str = "/var/www/acme"
    state_path: str = "/etc/letsencrypt"
    scripts_path: str = "/stackgen"
    ca_bundle_path: str = "/etc/stackgen/acme-ca.pem"
    # Written by the deploy hook after the certificate files: the domains deployed.
    marker: str = "deployed"

    @property
    def fullchain(self) -> str:
        return f"{self.certs_path}/fullchain.pem"

    @property
    def privkey(self) -> str:
        return f"{self.certs_path}/privkey.pem"

    @property
    def combined(self) -> str:
        return f"{self.certs_path}/haproxy.pem"

    @property
    def marker_path(self) -> str:
        return f"{self.certs_path}/{self.marker}"

    @property
    def dns_credentials_path(self) -> str:
        """The DNS plugin's INI, written at start from the environment (or the secrets'
        files): tmpfs, 0600."""
        return "/tmp/stackgen-dns.ini"


LAYOUT: Final = Layout()
# What a proxy fed by certbot reads, in every mode (certbot, internal CA, user files).
SERVED: Final = ServedPair(LAYOUT.fullchain, LAYOUT.privkey)
SERVED_COMBINED: Final = ServedPair(LAYOUT.fullchain, LAYOUT.privkey, LAYOUT.combined)


class Certbot(CertificateSource):
    """The certbot service beside the proxy (tls.mode `acme`)."""

    webroot_path: ClassVar[str | None] = LAYOUT.webroot_path
    proxy_reads_files: ClassVar[bool] = True
    service_template: ClassVar[str | None] = "certbot/compose-service.yml.j2"
    layout: ClassVar[Layout] = LAYOUT

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        folder = self.layout.scripts_dir
        return [
            TemplateFile("certbot/run.sh.j2", f"{folder}/run.sh", 0o755),
            TemplateFile("certbot/deploy-hook.sh.j2", f"{folder}/deploy-hook.sh", 0o755),
        ]

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        # A self-signed placeholder, so the proxy can start and answer the first challenge.
        pair = placeholder_pair(config.domain)
        folder = self.layout.certs_dir
        files = [
            StateFile(f"{folder}/fullchain.pem", pair.fullchain_pem, 0o644),
            StateFile(f"{folder}/privkey.pem", pair.key_pem, 0o600),
        ]
        if self.served.combined:
            files.append(
                StateFile(f"{folder}/haproxy.pem", pair.fullchain_pem + pair.key_pem, 0o600)
            )
        return files

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        return [
            # The proxy's workers (another user) read challenge tokens from here.
            (self.layout.webroot_dir, 0o755),
            # Account key and every private key certbot ever obtained.
            (self.layout.state_dir, 0o700),
            (self.layout.certs_dir, 0o755),
        ]

    def proxy_mounts(self, config: StackConfig) -> list[Mount]:
        layout = self.layout
        # Not certbot's scripts: the proxy's own file watcher reloads it (Proxy.command).
        return [
            Mount(bind_source(layout.certs_dir), layout.certs_path),
            Mount(bind_source(layout.webroot_dir), layout.webroot_path),
        ]

    def service_mounts(self, config: StackConfig) -> list[Mount]:
        """The certbot service's own mounts."""
        layout = self.layout
        mounts = [
            Mount(bind_source(layout.scripts_dir), layout.scripts_path),
            Mount(
                bind_source(layout.state_dir),
                layout.state_path,
                read_only=False,
                comment=("Account, keys and certificates: must persist.",),
            ),
            Mount(
                bind_source(layout.webroot_dir),
                layout.webroot_path,
                read_only=False,
                comment=("Challenge tokens, served by the proxy (read-only there).",),
            ),
            Mount(
                bind_source(layout.certs_dir),
                layout.certs_path,
                read_only=False,
                comment=("The files the proxy reads; the deploy hook replaces them.",),
            ),
        ]
        if config.acme_ca_bundle:
            mounts.append(Mount(config.acme_ca_bundle, layout.ca_bundle_path, file=True))
        return mounts + self.credential_mounts(config)

    def service_tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        """Owned by the user certbot runs as: its lock, work and log folders."""
        folders = ("/tmp", "/var/lib/letsencrypt", "/var/log/letsencrypt")
        tmpfs = [owned_tmpfs(folder, config.uid, config.gid) for folder in folders]
        comment = ("Owned by the user certbot runs as: its lock, work and log folders.",)
        return [Tmpfs(tmpfs[0].target, tmpfs[0].options, comment), *tmpfs[1:]]

    def watched_files(self) -> list[str]:
        # The deploy hook replaces them: the proxy reloads on the new pair.
        return [f"{self.layout.certs_path}/*.pem"]

    def deployed_marker(self) -> str | None:
        # The deploy hook writes it after the new pair (`Layout.marker`).
        return f"{self.layout.certs_dir}/{self.layout.marker}"


def uses_certbot(config: StackConfig, *, own_client: bool) -> bool:
    """Whether certbot obtains the certificate: in an ACME mode, for a proxy without an ACME
    client of its own, or when asked (`tls.source = "certbot"`), or for DNS-01 on a proxy
    whose client has no DNS provider (Caddy's official image)."""
    if config.tls.mode not in CERTBOT_MODES:
        return False
    return not own_client or config.tls.source is TlsSource.CERTBOT


def certbot_or_files(config: StackConfig, served: ServedPair) -> CertificateSource:
    """certbot in modes `acme` and `acme-dns`, the mounted pair in `internal` and `files`."""
    if config.tls.mode in CERTBOT_MODES:
        return Certbot(served)
    return mounted_files(config, served)
