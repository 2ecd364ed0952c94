"""The one interface every proxy implements, and every value its templates may read.

A proxy is a package `stackgen/proxies/<name>/` (or any package registered with
`registry.register`): `__init__.py` declares its `SPEC` (name, default image, class), its
class subclasses `Proxy`, and its templates live in one folder. Nothing else in stackgen
knows proxy specifics. Templates receive `c` (the StackConfig), `proxy` (this object),
`certs` (its certificate source) and `tls_profile`; they read only what is declared here or
on the proxy's own class.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Final

from stackgen.certificates import INTERMEDIATE, CertificateSource, TlsProfile
from stackgen.models import StackConfig, TlsMode, bind_source
from stackgen.parts import Access, Duration, InImageCommand, Mount, StateFile, TemplateFile, Tmpfs
from stackgen.proxies.spec import ProxySpec

# Jellyfin's documented minimum for uploads (docs/jellyfin.md).
JELLYFIN_MAX_BODY: Final = 20 * 1024 * 1024
BannedAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# The ban list's deny file (access.ban): its folder in the stack, which stackgen writes, and
# where the proxy's container reads it (a folder: an atomic replace of the file is seen).
BAN_DIR: Final = "ban"
BAN_PATH: Final = "/etc/stackgen-ban"
# Each deny file's first line (a comment in every proxy's syntax).
DENY_FILE_HEAD: Final = (
    "# The ban list (access.ban), written by `stackgen ban`: these clients get 403.\n"
)


class Proxy(ABC):
    spec: ClassVar[ProxySpec]
    # TLS modes this proxy implements; the CLI refuses the others with one line.
    tls_modes: ClassVar[frozenset[TlsMode]] = frozenset(TlsMode)
    # Its configuration folder: in the stack, and where its container sees it (mounted as a
    # folder: an editor's or stackgen's atomic replace of a file would be missed by a
    # single-file bind mount).
    conf_dir: ClassVar[str]
    conf_path: ClassVar[str]
    # A listener on loopback inside the container, for the healthcheck only (never published).
    health_port: ClassVar[int] = 8082
    # A paused stream and an idle WebSocket must outlive this much inactivity.
    stream_timeout: ClassVar[Duration] = Duration(3600)
    max_body_bytes: ClassVar[int] = JELLYFIN_MAX_BODY
    tls_profile: ClassVar[TlsProfile] = INTERMEDIATE
    # HTTP/3 (QUIC) needs support in the proxy's official image; without it `http3 = true`
    # is refused with this reason, in one line.
    supports_http3: ClassVar[bool] = False
    http3_refusal: ClassVar[str] = "this proxy has no HTTP/3 support"
    # How much of a stream the proxy moves from Jellyfin to the client in one step. The
    # proxies' defaults (4-16 KiB) cost far more CPU per streamed byte: measured with
    # `make bench` / bench/tune.py, docs/performance.md.
    relay_buffer_bytes: ClassVar[int] = 64 * 1024
    # Idle connections to Jellyfin kept open for the next request (a proxy that does not
    # keep them by itself opens one per API call: docs/performance.md).
    upstream_idle_connections: ClassVar[int] = 16
    # For a proxy with its own ACME client: the container path where it reads the root a
    # private ACME server's own TLS certificate chains to (`acme_ca_bundle`, mounted there).
    acme_ca_path: ClassVar[str | None] = None
    # The ban list's deny file name (under BAN_DIR) in this proxy's syntax; None: the proxy
    # has none, for this reason.
    ban_file: ClassVar[str | None] = None
    ban_refusal: ClassVar[str] = "this proxy has no deny file yet"

    @property
    def kind(self) -> str:
        return self.spec.name

    @property
    def service(self) -> str:
        """Compose service name of the proxy (what `stackgen logs` takes)."""
        return self.spec.name

    @property
    def template_dir(self) -> str:
        """Template name prefix of this proxy's own templates."""
        return f"proxies/{self.spec.name}"

    def image(self, config: StackConfig) -> str:
        return config.images.of(self.spec.name)

    @abstractmethod
    def certificates(self, config: StackConfig) -> CertificateSource:
        """Where the served certificate comes from, for this configuration."""

    @abstractmethod
    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        """The proxy's config files (besides docker-compose.yml and network.xml)."""

    def own_state_files(self, config: StackConfig) -> list[StateFile]:
        return []

    def own_directories(self, config: StackConfig) -> list[tuple[str, int]]:
        """Folders (stack path, mode) the proxy's container writes to, created before it starts:
        Docker would create a missing bind source itself, owned by root."""
        return []

    def foreground(self, config: StackConfig) -> Sequence[str] | None:
        """The proxy's command in the foreground; None: the image's own command."""
        return None

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        """The proxy's own config test, run inside its image (`nginx -t`, ...)."""
        return None

    def reload_command(self, config: StackConfig) -> Sequence[str] | None:
        """Run with `docker compose exec` in the proxy container; None: it watches its files."""
        return None

    def restart_files(self, config: StackConfig) -> frozenset[str]:
        """Stack files the proxy reads only at start: changing one needs a restart (which
        drops connections); `reload_command` or the proxy's own watch applies the others."""
        return frozenset()

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        """Rule checks stackgen can do without Docker on the files as they are on disk."""
        return []

    def deny_file(self, addresses: Sequence[BannedAddress]) -> str:
        """The deny file naming `addresses` (ordered, each once), in this proxy's syntax;
        with none, a file the proxy reads as refusing no one."""
        raise NotImplementedError(f"{self.kind} has no deny file")

    # --- the ban list (access.ban) ----------------------------------------------------------

    def ban_file_name(self, config: StackConfig) -> str | None:
        return self.ban_file if config.access.ban.enabled else None

    def ban_include(self, config: StackConfig) -> str | None:
        """Where the proxy's configuration reads the deny file in its container, or None."""
        name = self.ban_file_name(config)
        return None if name is None else f"{BAN_PATH}/{name}"

    def ban_state_files(self, config: StackConfig) -> list[StateFile]:
        # Rendered empty once; then stackgen's `ban` command owns it (a re-render keeps it).
        name = self.ban_file_name(config)
        if name is None:
            return []
        return [StateFile(f"{BAN_DIR}/{name}", self.deny_file([]).encode(), 0o644, Access.CONTROL)]

    def ban_mounts(self, config: StackConfig) -> list[Mount]:
        if self.ban_file_name(config) is None:
            return []
        why = "The ban list (access.ban): stackgen writes it, the proxy only reads it."
        return [Mount(bind_source(BAN_DIR), BAN_PATH, live=True, comment=(why,))]

    # --- the proxy with its certificate source: what render and lifecycle use --------------

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return [*self.own_templates(config), *self.certificates(config).templates(config)]

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        return [
            *self.own_state_files(config),
            *self.ban_state_files(config),
            *self.certificates(config).state_files(config, stack_dir),
        ]

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        return [*self.own_directories(config), *self.certificates(config).directories(config)]

    def tls_mounts(self, config: StackConfig) -> list[Mount]:
        """Read-only mounts the proxy needs for TLS: the certificate source's, and the
        private ACME server's root where the proxy reads it."""
        mounts = self.certificates(config).proxy_mounts(config)
        if config.acme_ca_bundle and self.acme_ca_path is not None:
            mounts.append(Mount(config.acme_ca_bundle, self.acme_ca_path, file=True))
        return mounts

    def own_mounts(self, config: StackConfig) -> list[Mount]:
        """Its configuration folder, read-only: the folder, not the file (an atomic replace
        of a file would be missed by a single-file bind mount)."""
        why = "The folder, not the file: an atomic replace of the file would be missed."
        return [Mount(bind_source(self.conf_dir), self.conf_path, comment=(why,))]

    def own_tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        return [Tmpfs("/tmp")]

    def mounts(self, config: StackConfig) -> list[Mount]:
        """Everything mounted into the proxy's container: its own, then for TLS."""
        return [*self.own_mounts(config), *self.ban_mounts(config), *self.tls_mounts(config)]

    def tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        return self.own_tmpfs(config)

    def conf_mounts(self, config: StackConfig) -> tuple[tuple[str, str], ...]:
        """(stack path, container path) of its configuration and TLS files: what its own
        config test in its image reads."""
        ban = [Mount(BAN_DIR, BAN_PATH)] if self.ban_file_name(config) else []
        mounts = [Mount(self.conf_dir, self.conf_path), *ban, *self.tls_mounts(config)]
        return tuple((m.source, m.target) for m in mounts)

    def command(self, config: StackConfig) -> list[str] | None:
        foreground = self.foreground(config)
        if foreground is None:
            return None
        return self.certificates(config).command(self.reload_command(config), foreground)

    def needs_restart(self, config: StackConfig, changed: set[str]) -> bool:
        files = self.restart_files(config) | self.certificates(config).restart_files()
        return not files.isdisjoint(changed)
