"""From a StackConfig to the complete list of files of a stack, in memory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from stackgen.certificates import Certbot
from stackgen.dns_providers import RFC2136, TSIG_SECRET
from stackgen.env_file import literal_line
from stackgen.errors import InvalidInputError
from stackgen.models import (
    JellyfinNetwork,
    StackConfig,
    TlsMode,
    TlsSource,
    validate_tsig_secret,
)
from stackgen.parts import Access
from stackgen.proxies import get_proxy
from stackgen.targets import registry as targets
from stackgen.targets.stack_file import Rendered, StackFile
from stackgen.templating import render
from stackgen.writer import PlannedFile

COMPOSE_FILE: Final = "docker-compose.yml"
ENV_FILE: Final = ".env"
# The token gate's script, mounted read-only into its service (gate/compose-service.yml.j2).
GATE_SCRIPT: Final = "gate/gate.py"


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
    certs = proxy.certificates(config)
    if config.tls.source is TlsSource.CERTBOT and not isinstance(certs, Certbot):
        raise InvalidInputError(
            f"proxy {config.proxy!r} cannot take its certificate from certbot: it has no "
            "graceful reload to pick up a renewed one"
        )
    if config.tls.source is TlsSource.PROXY and isinstance(certs, Certbot):
        raise InvalidInputError(
            f"proxy {config.proxy!r} has no ACME client of its own for tls.mode "
            f"{config.tls.mode.value!r}: use tls.source 'certbot'"
        )
    stack_file: StackFile = targets.load(config.deploy.target, "stack_file")
    context: dict[str, object] = {
        "c": config,
        "proxy": proxy,
        "certs": certs,
        "tls_profile": proxy.tls_profile,
        "JellyfinNetwork": JellyfinNetwork,
        "TlsMode": TlsMode,
        "target": stack_file,
    }
    # In Jellyfin's own config folder, which Jellyfin writes.
    network_xml = PlannedFile(
        network_xml_path(config),
        render("jellyfin/network.xml.j2", **context).encode(),
        access=Access.WRITTEN,
    )
    files = [
        PlannedFile(t.target, render(t.template, **context).encode(), t.mode)
        for t in proxy.templates(config)
    ]
    if config.token_gate.on:
        files.append(PlannedFile(GATE_SCRIPT, render("gate/gate.py.j2", **context).encode()))
    templates = frozenset(f.path for f in files)
    files += [
        PlannedFile(s.target, s.content, s.mode, state=True, access=s.access)
        for s in proxy.state_files(config, stack_dir)
    ]
    files += _secret_files(config)
    # Rendered last: a target's stack file may name the files it mounts by their content.
    rendered = Rendered(
        templates, {f.path: f.content for f in files}, network_xml.content, stack_dir
    )
    context |= stack_file.context(config, rendered)
    stack = render(stack_file.template, **context).encode()
    files = [PlannedFile(COMPOSE_FILE, stack), network_xml, *files]
    directories = [
        (config.jellyfin.config_dir, 0o755),
        (config.jellyfin.cache_dir, 0o755),
        *proxy.directories(config),
    ]
    return files, directories


def _secret_files(config: StackConfig) -> list[PlannedFile]:
    if not config.dns_secret_names:
        return []
    return [secrets_file(config, {})]


def secrets_file(config: StackConfig, values: Mapping[str, str]) -> PlannedFile:
    """The DNS provider's credentials, `.env` (0600): names only in stackgen.toml, the values
    here (empty until the user, or `init --dns-credential`, fills them), each in single
    quotes so that Compose passes it as written (env_file.py)."""
    unknown = [name for name in values if name not in config.dns_secret_names]
    if unknown:
        known = ", ".join(config.dns_secret_names) or "none"
        raise InvalidInputError(
            f"--dns-credential {unknown[0]}: not a variable of this DNS provider ({known}); "
            "add it to tls.dns_env"
        )
    if config.deploy.env_file_literal:
        header = "# Secrets for the DNS-01 challenge. Fill the values; this file stays 0600."
    else:
        header = (
            "# Secrets for the DNS-01 challenge, each between single quotes (NAME='value'): "
            "Compose takes it as is. This file stays 0600."
        )
    lines = [header]
    for name in config.dns_secret_names:
        value = values.get(name, "")
        try:
            lines.append(literal_line(name, value, swarm=config.deploy.env_file_literal))
        except ValueError as error:
            raise InvalidInputError(f"--dns-credential {name}: the value {error}") from None
    secret = values.get(TSIG_SECRET)
    if config.dns_provider is RFC2136 and secret:
        try:
            validate_tsig_secret(secret)
        except ValueError as error:
            raise InvalidInputError(f"--dns-credential {TSIG_SECRET}: {error}") from None
    return PlannedFile(
        ENV_FILE, ("\n".join(lines) + "\n").encode(), 0o600, state=True, access=Access.PRIVATE
    )
