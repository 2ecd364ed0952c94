"""From a StackConfig to the complete list of files of a stack, in memory."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from stackgen import feeder, geoip
from stackgen.certificates import Certbot
from stackgen.dns_providers import RFC2136, TSIG_SECRET
from stackgen.env_file import literal_line
from stackgen.errors import InvalidInputError
from stackgen.inputs import read_bytes
from stackgen.models import (
    JellyfinNetwork,
    StackConfig,
    TlsMode,
    TlsSource,
    validate_tsig_secret,
)
from stackgen.parts import Access
from stackgen.proxies import get_proxy
from stackgen.proxies.base import GEO_FILE_HEAD, AdmittedNetwork, Proxy
from stackgen.targets import registry as targets
from stackgen.targets.stack_file import Rendered, StackFile
from stackgen.templating import render
from stackgen.writer import PlannedFile

COMPOSE_FILE: Final = "docker-compose.yml"
ENV_FILE: Final = ".env"
# The token gate's script, mounted read-only into its service (gate/compose-service.yml.j2).
GATE_SCRIPT: Final = "gate/gate.py"
# Always admitted by access.geo, whatever the database says: the container's own loopback
# (its healthcheck), besides access.lan and the proxy network (render adds those).
LOOPBACK: Final = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class GeoAllow:
    """What access.geo admits: the countries' networks from the database, and the ranges
    always admitted (access.lan, the proxy network, loopback), collapsed together."""

    countries: tuple[str, ...]
    built: datetime
    country_networks: int  # the countries' networks after collapsing, before the others
    networks: tuple[AdmittedNetwork, ...]

    @property
    def head(self) -> str:
        """The file's first line: what verify reads back (`verify.geo_on_disk`)."""
        summary = {
            "countries": list(self.countries),
            "database_built": self.built.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "country_networks": self.country_networks,
            "admitted": len(self.networks),
        }
        return f"{GEO_FILE_HEAD}{json.dumps(summary, separators=(',', ':'))}\n"


def geo_allow(config: StackConfig, stack_dir: Path) -> GeoAllow | None:
    """access.geo's networks, read from the database now (None: GeoIP off)."""
    geo = config.access.geo
    if not geo.on or geo.database is None:
        return None
    database = Path(geo.database).expanduser()
    found = geoip.country_networks(
        database if database.is_absolute() else stack_dir / database, geo.countries
    )
    empty = [code for code, count in found.per_country.items() if count == 0]
    if empty:
        raise InvalidInputError(
            f"access.geo.countries: the database ({found.database_type}) has no network for "
            f"{', '.join(empty)}: not a country code it uses (the United Kingdom is GB)"
        )
    always: list[AdmittedNetwork] = [*config.access.lan, *LOOPBACK]
    always += [n for n in (config.network.subnet, config.network.subnet6) if n is not None]
    networks = geoip.collapse([*found.networks, *always])
    return GeoAllow(tuple(geo.countries), found.built, len(found.networks), networks)


def geo_file(proxy: Proxy, config: StackConfig, allow: GeoAllow) -> PlannedFile | None:
    limit = proxy.geo_max_networks
    if limit is not None and len(allow.networks) > limit:
        raise InvalidInputError(
            f"access.geo: {len(allow.networks)} networks admitted, more than the {limit} "
            f"{config.proxy} reads: {proxy.geo_max_reason}; use nginx or HAProxy (a tree, no "
            "limit), or fewer countries"
        )
    target = proxy.geo_target(config)
    if target is None:
        return None
    return PlannedFile(target, proxy.geo_syntax(allow.head).render(allow.networks).encode())


def network_xml_path(config: StackConfig) -> str:
    # The official image sets JELLYFIN_CONFIG_DIR=/config/config.
    return f"{config.jellyfin.config_dir.rstrip('/')}/config/network.xml"


def render_stack(
    config: StackConfig, stack_dir: Path, state: Sequence[PlannedFile] = ()
) -> tuple[list[PlannedFile], list[tuple[str, int]]]:
    """Every file of the stack plus the folders it needs. Raises before anything is written.
    `state`: initial contents of state files given from outside (an import's, `init
    --dns-credential`'s), in place of the rendered ones."""
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
    geo = geo_allow(config, stack_dir) if config.deploy.runs_proxy else None
    context: dict[str, object] = {
        "c": config,
        "proxy": proxy,
        "certs": certs,
        "tls_profile": proxy.tls_profile,
        "JellyfinNetwork": JellyfinNetwork,
        "TlsMode": TlsMode,
        "target": stack_file,
        "feeder": feeder,
        "geo": geo,
    }
    deploy = config.deploy
    # In Jellyfin's own config folder, which Jellyfin writes (only where Jellyfin runs: a
    # target that splits the stack renders it on Jellyfin's side).
    network_xml = PlannedFile(
        network_xml_path(config),
        render("jellyfin/network.xml.j2", **context).encode(),
        access=Access.WRITTEN,
    )
    files: list[PlannedFile] = []
    if deploy.runs_proxy:
        files += [
            PlannedFile(t.target, render(t.template, **context).encode(), t.mode)
            for t in proxy.templates(config)
        ]
        allow_file = geo_file(proxy, config, geo) if geo is not None else None
        if allow_file is not None:
            files.append(allow_file)
        if config.token_gate.on:
            files.append(PlannedFile(GATE_SCRIPT, render("gate/gate.py.j2", **context).encode()))
        syntax = proxy.fed_syntax() if proxy.feeder_on(config) else None
        files += [
            PlannedFile(t.target, render(t.template, **context, syntax=syntax).encode(), t.mode)
            for t in feeder.templates(proxy, config)
        ]
    templates = frozenset(f.path for f in files)
    if deploy.runs_proxy:
        files += [
            PlannedFile(s.target, s.content, s.mode, state=True, access=s.access)
            for s in proxy.state_files(config, stack_dir)
        ]
        files += _secret_files(config, stack_dir)
    if state:
        given = {f.path for f in state}
        files = [f for f in files if f.path not in given] + [
            PlannedFile(f.path, f.content, f.mode, state=True, access=f.access) for f in state
        ]
    # Rendered last: a target's stack file may name the files it mounts by their content.
    rendered = Rendered(
        templates, {f.path: f.content for f in files}, network_xml.content, stack_dir
    )
    context |= stack_file.context(config, rendered)
    stack = render(stack_file.template, **context).encode()
    files = [PlannedFile(COMPOSE_FILE, stack), *files]
    directories: list[tuple[str, int]] = []
    if deploy.runs_jellyfin:
        files.insert(1, network_xml)
        directories += [(config.jellyfin.config_dir, 0o755), (config.jellyfin.cache_dir, 0o755)]
        if proxy.feeder_on(config):
            # Mounted into the feeder: made here, or Docker would make it, owned by root,
            # and Jellyfin could not write its log.
            directories.append((feeder.log_folder(config), 0o755))
    if deploy.runs_proxy:
        directories += proxy.directories(config)
    return files, directories


def _secret_files(config: StackConfig, stack_dir: Path) -> list[PlannedFile]:
    if not config.dns_secret_names:
        return []
    if not config.deploy.credentials_as_secrets:
        return [_env_file(config, {})]
    # Kept as the user filled them; planned with that content, so that a target naming a
    # secret by its content names this one.
    files = []
    for path in config.dns_credential_files.values():
        on_disk = stack_dir / path
        content = read_bytes(on_disk) if on_disk.is_file() else b""
        files.append(_credential_file(path, content))
    return files


def secrets_files(config: StackConfig, values: Mapping[str, str]) -> list[PlannedFile]:
    """The DNS provider's credentials as `init --dns-credential` gives them: names only in
    stackgen.toml, the values in `.env` (0600), each in single quotes so that Compose passes
    it as written (env_file.py), or, where the target hands them over as secrets, each in
    its own file (0600) under `secrets/`. Every variable gets its file, empty until filled."""
    unknown = [name for name in values if name not in config.dns_secret_names]
    if unknown:
        known = ", ".join(config.dns_secret_names) or "none"
        raise InvalidInputError(
            f"--dns-credential {unknown[0]}: not a variable of this DNS provider ({known}); "
            "add it to tls.dns_env"
        )
    for name, value in values.items():
        if any(c in value for c in "\r\n\0"):
            raise InvalidInputError(f"--dns-credential {name}: the value must be one line")
    secret = values.get(TSIG_SECRET)
    if config.dns_provider is RFC2136 and secret:
        try:
            validate_tsig_secret(secret)
        except ValueError as error:
            raise InvalidInputError(f"--dns-credential {TSIG_SECRET}: {error}") from None
    if not config.deploy.credentials_as_secrets:
        return [_env_file(config, values)]
    return [
        _credential_file(path, values.get(name, "").encode())
        for name, path in config.dns_credential_files.items()
    ]


def _credential_file(path: str, content: bytes) -> PlannedFile:
    return PlannedFile(path, content, 0o600, state=True, access=Access.PRIVATE)


def _env_file(config: StackConfig, values: Mapping[str, str]) -> PlannedFile:
    header = (
        "# Secrets for the DNS-01 challenge, each between single quotes (NAME='value'): "
        "Compose takes it as is. This file stays 0600."
    )
    lines = [header]
    for name in config.dns_secret_names:
        value = values.get(name, "")
        try:
            lines.append(literal_line(name, value))
        except ValueError as error:
            raise InvalidInputError(f"--dns-credential {name}: the value {error}") from None
    return PlannedFile(
        ENV_FILE, ("\n".join(lines) + "\n").encode(), 0o600, state=True, access=Access.PRIVATE
    )
