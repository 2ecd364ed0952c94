"""From a StackConfig to the complete list of files of a stack, in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from stackgen import pki
from stackgen.errors import InvalidInputError
from stackgen.models import JellyfinNetwork, StackConfig, TlsMode
from stackgen.proxies import get_proxy
from stackgen.templating import render
from stackgen.writer import PlannedFile

COMPOSE_FILE: Final = "docker-compose.yml"
ENV_FILE: Final = ".env"
# Where the proxy container finds certificates of modes `internal` and `files`.
TLS_DIR: Final = "tls"


def network_xml_path(config: StackConfig) -> str:
    # The official image sets JELLYFIN_CONFIG_DIR=/config/config.
    return f"{config.jellyfin.config_dir.rstrip('/')}/config/network.xml"


def render_stack(
    config: StackConfig, stack_dir: Path
) -> tuple[list[PlannedFile], list[tuple[str, int]]]:
    """Every file of the stack plus the folders it needs. Raises before anything is written."""
    proxy = get_proxy(config.proxy)
    if config.tls.mode not in proxy.tls_modes:
        raise InvalidInputError(
            f"proxy {config.proxy.value!r} does not support tls.mode {config.tls.mode.value!r}"
        )
    context = {"c": config, "proxy": proxy, "JellyfinNetwork": JellyfinNetwork, "TlsMode": TlsMode}
    files = [
        PlannedFile(COMPOSE_FILE, render("docker-compose.yml.j2", **context).encode()),
        PlannedFile(
            network_xml_path(config), render("jellyfin/network.xml.j2", **context).encode()
        ),
    ]
    files += [
        PlannedFile(t.target, render(t.template, **context).encode(), t.mode)
        for t in proxy.templates(config)
    ]
    files += [
        PlannedFile(s.target, s.content, s.mode, state=True) for s in proxy.state_files(config)
    ]
    files += _secret_files(config, stack_dir)
    directories = [
        (config.jellyfin.config_dir, 0o755),
        (config.jellyfin.cache_dir, 0o755),
        *proxy.directories(config),
    ]
    return files, directories


def _secret_files(config: StackConfig, stack_dir: Path) -> list[PlannedFile]:
    files: list[PlannedFile] = []
    if config.tls.dns_env:
        # Names only in stackgen.toml; the values live here, filled by the user.
        lines = ["# Secrets for the DNS-01 challenge. Fill the values; this file stays 0600."]
        lines += [f"{name}=" for name in config.tls.dns_env]
        files.append(PlannedFile(ENV_FILE, ("\n".join(lines) + "\n").encode(), 0o600, state=True))
    if config.tls.mode is TlsMode.INTERNAL and not (stack_dir / TLS_DIR / "ca.pem").exists():
        pair = pki.issue_internal(config.domain)
        files += [
            PlannedFile(f"{TLS_DIR}/ca.pem", pair.ca_cert_pem, 0o644, state=True),
            PlannedFile(f"{TLS_DIR}/ca-key.pem", pair.ca_key_pem, 0o600, state=True),
            PlannedFile(f"{TLS_DIR}/fullchain.pem", pair.fullchain_pem, 0o644, state=True),
            PlannedFile(f"{TLS_DIR}/privkey.pem", pair.key_pem, 0o600, state=True),
        ]
    return files
