"""Traefik v3: static traefik.toml + one dynamic file (file provider, no Docker socket)."""

from __future__ import annotations

import tomllib
from typing import ClassVar

from stackgen.models import ProxyKind, StackConfig
from stackgen.proxies.base import InImageCommand, Proxy, StateFile, TemplateFile
from stackgen.proxies.traefik_rules import dynamic_problems, static_problems


class Traefik(Proxy):
    kind: ClassVar[ProxyKind] = ProxyKind.TRAEFIK

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return [
            TemplateFile("proxies/traefik/traefik.toml.j2", "traefik/traefik.toml"),
            TemplateFile("proxies/traefik/dynamic.toml.j2", "traefik/dynamic.toml"),
        ]

    def state_files(self, config: StackConfig) -> list[StateFile]:
        # Must exist at 0600 before the container starts: a missing bind source becomes a
        # folder, and a looser mode makes Traefik silently drop the resolver.
        return [StateFile("traefik/acme.json", b"", 0o600)] if config.tls.mode.is_acme else []

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # Traefik refuses unknown keys in its static file at start; `version` cannot load
        # a file, so the real test is a short start, done by `check` through static_problems
        # (schema) and by `up`'s health wait.
        return None

    def needs_restart(self, config: StackConfig, changed: set[str]) -> bool:
        # The dynamic file is watched; the static one is read once, at start.
        return "traefik/traefik.toml" in changed

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
