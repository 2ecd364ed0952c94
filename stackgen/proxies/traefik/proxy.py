"""Traefik v3: static traefik.toml + dynamic files (file provider, no Docker socket)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, ProxyAcme, ServedPair, mounted_files
from stackgen.models import StackConfig, bind_source
from stackgen.parts import InImageCommand, Mount, StateFile, TemplateFile
from stackgen.proxies.base import BAN_DIR, BAN_PATH, DENY_FILE_HEAD, BannedAddress, Proxy
from stackgen.proxies.spec import ProxySpec
from stackgen.proxies.traefik import SPEC
from stackgen.proxies.traefik.rules import dynamic_problems, static_problems

SERVED: Final = ServedPair("/etc/stackgen/tls/fullchain.pem", "/etc/stackgen/tls/privkey.pem")
# Must exist at 0600 before the container starts: a missing bind source becomes a folder, and
# a looser mode makes Traefik silently drop the resolver.
ACME_STORAGE: Final = StateFile("traefik/acme.json", b"", 0o600)
DYNAMIC_FILE: Final = "dynamic.toml"
# The ban list's router: above every router of the site (theirs are at most 10001, or the
# length of their rule), below Traefik's own (the ACME challenge's, at the maximum).
BAN_PRIORITY: Final = 1_000_000_000
BAN_NAME: Final = "stackgen-banned"


class Traefik(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    conf_dir: ClassVar[str] = "traefik"
    conf_path: ClassVar[str] = "/etc/traefik"
    ban_file: ClassVar[str | None] = "deny.toml"
    # Its file provider watches the folder the deny file is in: no reload, no watcher.
    watches_ban_natively: ClassVar[bool] = True
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

    def dynamic_dir(self, config: StackConfig) -> str:
        """The stack folder of the site's dynamic file. Traefik has one file provider, and it
        watches one folder (not its sub-folders): with the ban list on, that is the deny
        file's, so the site's routes are rendered beside it."""
        return BAN_DIR if self.ban_file_name(config) else self.conf_dir

    def dynamic_folder(self, config: StackConfig) -> str:
        """That folder in Traefik's container."""
        return BAN_PATH if self.ban_file_name(config) else self.conf_path

    def geo_summary_file(self, config: StackConfig) -> str | None:
        # access.geo's middleware is in the site's dynamic file (one file provider, which
        # reads one file with the ban list off): its summary line too.
        if not config.access.geo.on:
            return None
        return f"{self.dynamic_dir(config)}/{DYNAMIC_FILE}"

    def dynamic_path(self, config: StackConfig) -> str:
        return f"{self.dynamic_folder(config)}/{DYNAMIC_FILE}"

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
            TemplateFile(
                "proxies/traefik/dynamic.toml.j2", f"{self.dynamic_dir(config)}/{DYNAMIC_FILE}"
            ),
        ]

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # Traefik refuses unknown keys in its static file at start; `version` cannot load
        # a file, so the real test is a short start, done by `check` through static_problems
        # (schema) and by `up`'s health wait.
        return None

    def restart_files(self, config: StackConfig) -> frozenset[str]:
        # The dynamic files are watched; the static one is read once, at start.
        return frozenset({"traefik/traefik.toml"})

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        problems: list[str] = []
        for name, checker in (
            ("traefik/traefik.toml", static_problems),
            (f"{self.dynamic_dir(config)}/{DYNAMIC_FILE}", dynamic_problems),
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
