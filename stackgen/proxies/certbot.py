"""Certificates through certbot, shared by the proxies that have no ACME client of their own
(nginx, Apache, HAProxy): HTTP-01 with a webroot the proxy serves.

How it fits together (TLS mode `acme`):

- The proxy always reads the same files, `certs/fullchain.pem` and `certs/privkey.pem` (and
  `certs/haproxy.pem`, chain + key, for a proxy with `combined_pem`), mounted read-only at
  `/etc/stackgen/certs`. stackgen creates them once as a self-signed placeholder, so the
  proxy can start and answer the first challenge.
- The `certbot` service runs `certbot/run.sh`: `certbot certonly --webroot`, retried with a
  bounded back-off until it succeeds, then `certbot renew` every 12 hours. Its deploy hook
  (`certbot/deploy-hook.sh`) replaces the files in `certs/` atomically and writes
  `certs/deployed`, which certbot's healthcheck waits for (so `up --wait` returns once the
  real certificate is there).
- The proxy's command is wrapped by `certbot/watch-certs.sh`, which runs the proxy in the
  foreground and calls its graceful reload when the files in `certs/` change: first
  issuance and every renewal, without a Docker socket.

In modes `internal` and `files` there is no certbot: the two certificate files are mounted
at the same container paths, so the proxy's own config does not depend on the mode.

A proxy module subclasses `CertbotProxy`, adds `certbot_templates(config)` to its templates,
includes `certbot/proxy-volumes.yml.j2` in its volumes and `certbot/compose-service.yml.j2`
after its service, and wraps its command with `watch_command` when `uses_certbot` (see
nginx.py and `compose-templates/proxies/nginx/compose-services.yml.j2`).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from stackgen.models import (
    HSTS_MAX_AGE,
    TLS12_CIPHERS_OPENSSL,
    TLS_CURVES_OPENSSL,
    StackConfig,
    TlsMode,
    bind_source,
)
from stackgen.pki import placeholder_pair
from stackgen.proxies.base import Proxy, StateFile, TemplateFile

# certbot's webroot flow answers HTTP-01 only: TLS-ALPN-01 would need the proxy to serve the
# challenge certificate, DNS-01 a provider plugin the official image does not contain.
TLS_MODES: Final = frozenset({TlsMode.ACME, TlsMode.INTERNAL, TlsMode.FILES})

# Marks the placeholder, so a person (or a check) looking at the served certificate knows
# why it is not trusted.


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
    def watch_script(self) -> str:
        return f"{self.scripts_path}/watch-certs.sh"


LAYOUT: Final = Layout()


class CertbotProxy(Proxy):
    """A proxy whose certificates come from the shared certbot service (mode `acme`)."""

    tls_modes: ClassVar[frozenset[TlsMode]] = TLS_MODES
    layout: ClassVar[Layout] = LAYOUT
    # HAProxy's `crt` takes one PEM with chain and key: the hook then builds haproxy.pem.
    combined_pem: ClassVar[bool] = False
    # All three are OpenSSL-based: the models' OpenSSL spellings, for their templates.
    tls12_ciphers: ClassVar[tuple[str, ...]] = TLS12_CIPHERS_OPENSSL
    tls_curves: ClassVar[tuple[str, ...]] = TLS_CURVES_OPENSSL
    hsts_max_age: ClassVar[int] = HSTS_MAX_AGE

    def uses_certbot(self, config: StackConfig) -> bool:
        return config.tls.mode is TlsMode.ACME

    def certbot_templates(self, config: StackConfig) -> list[TemplateFile]:
        if not self.uses_certbot(config):
            return []
        folder = self.layout.scripts_dir
        return [
            TemplateFile("certbot/run.sh.j2", f"{folder}/run.sh", 0o755),
            TemplateFile("certbot/deploy-hook.sh.j2", f"{folder}/deploy-hook.sh", 0o755),
            TemplateFile("certbot/watch-certs.sh.j2", f"{folder}/watch-certs.sh", 0o755),
        ]

    def state_files(self, config: StackConfig) -> list[StateFile]:
        if not self.uses_certbot(config):
            return []
        pair = placeholder_pair(config.domain)
        folder = self.layout.certs_dir
        files = [
            StateFile(f"{folder}/fullchain.pem", pair.fullchain_pem, 0o644),
            StateFile(f"{folder}/privkey.pem", pair.key_pem, 0o600),
        ]
        if self.combined_pem:
            files.append(
                StateFile(f"{folder}/haproxy.pem", pair.fullchain_pem + pair.key_pem, 0o600)
            )
        return files

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        if not self.uses_certbot(config):
            return []
        return [
            # The proxy's workers (another user) read challenge tokens from here.
            (self.layout.webroot_dir, 0o755),
            # Account key and every private key certbot ever obtained.
            (self.layout.state_dir, 0o700),
            (self.layout.certs_dir, 0o755),
        ]

    def tls_mounts(self, config: StackConfig) -> list[tuple[str, str]]:
        """Read-only mounts (stack path, container path) the proxy needs for TLS: the same
        container paths in every mode."""
        layout = self.layout
        if self.uses_certbot(config):
            return [
                (bind_source(layout.certs_dir), layout.certs_path),
                (bind_source(layout.webroot_dir), layout.webroot_path),
                (bind_source(layout.scripts_dir), layout.scripts_path),
            ]
        if config.tls_files:
            return [
                (config.tls_files[0], layout.fullchain),
                (config.tls_files[1], layout.privkey),
            ]
        return []

    def needs_restart(self, config: StackConfig, changed: set[str]) -> bool:
        # The watcher is the proxy container's PID 1 wrapper: read once, at start.
        return f"{self.layout.scripts_dir}/watch-certs.sh" in changed

    def watch_command(self, reload: Sequence[str], command: Sequence[str]) -> list[str]:
        """The proxy's command wrapped by the certificate watcher (see watch-certs.sh), which
        runs `reload` with `sh -c`: quoted here so that it gets exactly these arguments."""
        return ["sh", self.layout.watch_script, shlex.join(reload), *command]
