"""Traefik v3: static traefik.toml + one dynamic file (file provider, no Docker socket)."""

from __future__ import annotations

import tomllib
from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, ProxyAcme, ServedPair, mounted_files
from stackgen.models import StackConfig, bind_source
from stackgen.parts import InImageCommand, Mount, StateFile, TemplateFile
from stackgen.proxies.base import Proxy
from stackgen.proxies.spec import ProxySpec
from stackgen.proxies.traefik import SPEC
from stackgen.proxies.traefik.rules import dynamic_problems, static_problems

SERVED: Final = ServedPair("/etc/stackgen/tls/fullchain.pem", "/etc/stackgen/tls/privkey.pem")
# Must exist at 0600 before the container starts: a missing bind source becomes a folder, and
# a looser mode makes Traefik silently drop the resolver.
ACME_STORAGE: Final = StateFile("traefik/acme.json", b"", 0o600)


class Traefik(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    conf_dir: ClassVar[str] = "traefik"
    conf_path: ClassVar[str] = "/etc/traefik"
    ban_refusal: ClassVar[str] = (
        "Traefik v3 has no deny-list middleware (ipAllowList cannot say 'everyone but'); "
        "not built yet"
    )
    supports_http3: ClassVar[bool] = True  # quic-go, in the official image
    acme_ca_path: ClassVar[str | None] = "/etc/stackgen/acme-ca.pem"

    def certificates(self, config: StackConfig) -> CertificateSource:
        if config.tls.mode.is_acme:
            return ProxyAcme(SERVED, storage=[ACME_STORAGE])
        return mounted_files(config, SERVED)

    def own_mounts(self, config: StackConfig) -> list[Mount]:
        why = "The folder, not single files: an editor's atomic replace would be missed."
        mounts = [Mount(bind_source(self.conf_dir), self.conf_path, comment=(why,))]
        if config.tls.mode.is_acme:
            mounts.append(Mount("./traefik/acme.json", "/etc/traefik/acme.json", read_only=False))
        return mounts

    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        return [
            TemplateFile("proxies/traefik/traefik.toml.j2", "traefik/traefik.toml"),
            TemplateFile("proxies/traefik/dynamic.toml.j2", "traefik/dynamic.toml"),
        ]

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # Traefik refuses unknown keys in its static file at start; `version` cannot load
        # a file, so the real test is a short start, done by `check` through static_problems
        # (schema) and by `up`'s health wait.
        return None

    def restart_files(self, config: StackConfig) -> frozenset[str]:
        # The dynamic file is watched; the static one is read once, at start.
        return frozenset({"traefik/traefik.toml"})

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        problems: list[str] = []
        for name, checker in (
            ("traefik/traefik.toml", static_problems),
            ("traefik/dynamic.toml", dynamic_problems),
        ):
            raw = files.get(name)
            if raw is None:
                problems.append(f"{name}: missing")
                continue
            try:
                document = tomllib.loads(raw.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                problems.append(f"{name}: not valid TOML: {error}")
                continue
            problems += [f"{name}: {problem}" for problem in checker(document)]
        return problems
