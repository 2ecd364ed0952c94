"""Traefik v3: static traefik.toml + dynamic files (file provider, no Docker socket)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, ProxyAcme, ServedPair, mounted_files
from stackgen.models import StackConfig, bind_source
from stackgen.parts import InImageCommand, Mount, StateFile, TemplateFile, Tmpfs
from stackgen.proxies.base import (
    DENY_FILE_HEAD,
    FED_FILE_HEAD,
    BannedAddress,
    DenySyntax,
    Proxy,
)
from stackgen.proxies.spec import ProxySpec
from stackgen.proxies.traefik import SPEC
from stackgen.proxies.traefik.rules import dynamic_problems, static_problems

SERVED: Final = ServedPair("/etc/stackgen/tls/fullchain.pem", "/etc/stackgen/tls/privkey.pem")
# Must exist at 0600 before the container starts: a missing bind source becomes a folder, and
# a looser mode makes Traefik silently drop the resolver.
ACME_STORAGE: Final = StateFile("traefik/acme.json", b"", 0o600)
DYNAMIC_FILE: Final = "dynamic.toml"
DYNAMIC_PATH: Final = f"/etc/traefik/{DYNAMIC_FILE}"
# With the ban list on, Traefik's file provider watches a folder composed in its own container
# (a tmpfs only its user can write) by COMPOSER, run before Traefik starts and by the file
# watcher on every change of its sources: the site's routes, the user's deny file, the
# feeder's address list. Any TOML file in the watched folder can define routers; fail2ban
# writes only addresses, turned into a router here by a strict check (docs/access.md).
COMPOSER: Final = "compose-dynamic.sh"
COMPOSED_PATH: Final = "/run/stackgen-traefik"
# The feeder's file: plain addresses, one a line (not TOML: it is data, never configuration).
FED_NAME: Final = "addresses.txt"
# The ban list's router: above every router of the site (theirs are at most 10001, or the
# length of their rule), below Traefik's own (the ACME challenge's, at the maximum).
BAN_PRIORITY: Final = 1_000_000_000
BAN_NAME: Final = "stackgen-banned"
FED_ROUTER: Final = "stackgen-fed"


class Traefik(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    conf_dir: ClassVar[str] = "traefik"
    conf_path: ClassVar[str] = "/etc/traefik"
    ban_file: ClassVar[str | None] = "deny.toml"
    fed_name: ClassVar[str | None] = FED_NAME
    # What the composer reads of the feeder's file, at most (a few thousand addresses is far
    # more than fail2ban bans at once): bytes, addresses, seconds.
    fed_max_bytes: ClassVar[int] = 256 * 1024
    fed_max_addresses: ClassVar[int] = 4096
    fed_read_seconds: ClassVar[int] = 2
    fed_router: ClassVar[str] = FED_ROUTER
    ban_priority: ClassVar[int] = BAN_PRIORITY
    routes_path: ClassVar[str] = DYNAMIC_PATH
    supports_http3: ClassVar[bool] = True  # quic-go, in the official image
    acme_ca_path: ClassVar[str | None] = "/etc/stackgen/acme-ca.pem"

    def deny_file(self, addresses: Sequence[BannedAddress]) -> str:
        # Traefik has no deny-list middleware and `ipAllowList` cannot say "everyone but":
        # a router matching the banned clients' own address (the connection's, as ClientIP
        # reads it) above every router of the site, whose middleware admits no one (403).
        # No address, no router: ClientIP needs one.
        if not addresses:
            return DENY_FILE_HEAD
        rule = " || ".join(f"ClientIP(`{address}`)" for address in addresses)
        return (
            f"{DENY_FILE_HEAD}"
            f"[http.routers.{BAN_NAME}]\n"
            f'  rule = "{rule}"\n'
            f"  priority = {BAN_PRIORITY}\n"
            '  entryPoints = ["websecure"]\n'
            f'  middlewares = ["{BAN_NAME}"]\n'
            '  service = "noop@internal"\n'
            f"  [http.routers.{BAN_NAME}.tls]\n"
            "\n"
            "# Admits no client: no connection comes from the unspecified address.\n"
            f"[http.middlewares.{BAN_NAME}.ipAllowList]\n"
            '  sourceRange = ["0.0.0.0/32"]\n'
        )

    def fed_syntax(self) -> DenySyntax:
        # Plain addresses: the composer checks each line and writes the router itself.
        return DenySyntax(head=FED_FILE_HEAD, each="{}\n")

    def composes(self, config: StackConfig) -> bool:
        """Whether Traefik's dynamic folder is composed (the ban list on) rather than its one
        routes file read as it is."""
        return self.ban_file_name(config) is not None

    def provider_source(self, config: StackConfig) -> str:
        """What Traefik's file provider reads: the composed folder, or the routes file."""
        return COMPOSED_PATH if self.composes(config) else DYNAMIC_PATH

    def foreground(self, config: StackConfig) -> tuple[str, ...] | None:
        # Composed once before Traefik starts, so that it starts with the whole site.
        if not self.composes(config):
            return None
        return ("sh", f"{self.conf_path}/{COMPOSER}", "traefik")

    def reload_command(self, config: StackConfig) -> list[str] | None:
        # Traefik's own watch of the composed folder applies what the composer renames in.
        return ["sh", f"{self.conf_path}/{COMPOSER}"] if self.composes(config) else None

    def watched_files(self, config: StackConfig) -> list[str]:
        # The composer's sources: the deny files, and the site's routes.
        routes = [self.routes_path] if self.composes(config) else []
        return [*super().watched_files(config), *routes]

    def own_tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        tmpfs = super().own_tmpfs(config)
        if self.composes(config):
            why = "The folder Traefik's file provider watches, composed: only its user writes it."
            options = f"uid={config.uid},gid={config.gid},mode=0700"
            tmpfs.append(Tmpfs(COMPOSED_PATH, options, (why,)))
        return tmpfs

    def geo_summary_file(self, config: StackConfig) -> str | None:
        # access.geo's middleware is in the site's routes file (traefik/dynamic.toml, which
        # the composer copies as it is): its summary line too.
        if not config.access.geo.on:
            return None
        return f"{self.conf_dir}/{DYNAMIC_FILE}"

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
            TemplateFile("proxies/traefik/dynamic.toml.j2", f"{self.conf_dir}/{DYNAMIC_FILE}"),
            *(
                [
                    TemplateFile(
                        f"proxies/traefik/{COMPOSER}.j2", f"{self.conf_dir}/{COMPOSER}", 0o755
                    )
                ]
                if self.composes(config)
                else []
            ),
        ]

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # Traefik refuses unknown keys in its static file at start; `version` cannot load
        # a file, so the real test is a short start, done by `check` through static_problems
        # (schema) and by `up`'s health wait.
        return None

    def restart_files(self, config: StackConfig) -> frozenset[str]:
        # The dynamic files are watched (a changed composer runs at the reload); the static
        # one is read once, at start.
        return frozenset({"traefik/traefik.toml"})

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        problems: list[str] = []
        for name, checker in (
            ("traefik/traefik.toml", static_problems),
            (f"{self.conf_dir}/{DYNAMIC_FILE}", dynamic_problems),
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
