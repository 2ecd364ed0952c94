"""From a StackConfig to the complete list of files of a stack, in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from stackgen.errors import InvalidInputError
from stackgen.models import JellyfinNetwork, StackConfig, TlsMode
from stackgen.proxies import get_proxy
from stackgen.templating import render
from stackgen.writer import PlannedFile

COMPOSE_FILE: Final = "docker-compose.yml"
ENV_FILE: Final = ".env"


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
            f"proxy {config.proxy!r} does not support tls.mode {config.tls.mode.value!r}"
        )
    if config.http3 and not proxy.supports_http3:
        raise InvalidInputError(f"http3: {proxy.http3_refusal}")
    context = {
        "c": config,
        "proxy": proxy,
        "certs": proxy.certificates(config),
        "tls_profile": proxy.tls_profile,
        "JellyfinNetwork": JellyfinNetwork,
        "TlsMode": TlsMode,
    }
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
        PlannedFile(s.target, s.content, s.mode, state=True)
        for s in proxy.state_files(config, stack_dir)
    ]
    files += _secret_files(config)
    directories = [
        (config.jellyfin.config_dir, 0o755),
        (config.jellyfin.cache_dir, 0o755),
        *proxy.directories(config),
    ]
    return files, directories


def _secret_files(config: StackConfig) -> list[PlannedFile]:
    if not config.tls.dns_env:
        return []
    # Names only in stackgen.toml; the values live here, filled by the user.
    lines = ["# Secrets for the DNS-01 challenge. Fill the values; this file stays 0600."]
    lines += [f"{name}=" for name in config.tls.dns_env]
    return [PlannedFile(ENV_FILE, ("\n".join(lines) + "\n").encode(), 0o600, state=True)]
