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
import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from stackgen.certificates import INTERMEDIATE, CertificateSource, TlsProfile
from stackgen.models import StackConfig, TlsMode, bind_source
from stackgen.parts import Access, Duration, InImageCommand, Mount, StateFile, TemplateFile, Tmpfs
from stackgen.proxies.spec import ProxySpec

# Jellyfin's documented minimum for uploads (docs/jellyfin.md).
JELLYFIN_MAX_BODY: Final = 20 * 1024 * 1024
# Jellyfin closes a kept-alive connection idle this long: Kestrel's KeepAliveTimeout, which
# Jellyfin 10.11 leaves at its default (docs/jellyfin.md).
JELLYFIN_KEEPALIVE_SECONDS: Final = 130
BannedAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AdmittedNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# The ban list's deny file (access.ban): its folder in the stack, which stackgen writes, and
# where the proxy's container reads it (a folder: an atomic replace of the file is seen).
BAN_DIR: Final = "ban"
BAN_PATH: Final = "/etc/stackgen-ban"
# The feeder's deny file (access.ban.feeder): fail2ban writes it in its own folder, the proxy
# reads it beside the user's (a folder too, read-only in the proxy).
FED_DIR: Final = "banned"
FED_PATH: Final = "/etc/stackgen-banned"
# The proxy's failed logins (access.ban.proxy_log): it sends one datagram per failed login to
# a unix socket the feeder's receiver binds in this folder (no data on disk: a socket), which
# the proxy mounts read-only; MARK starts the datagram's own text, after the syslog header.
LOGIN_DIR: Final = "logins"
LOGIN_PATH: Final = "/run/stackgen-logins"
LOGIN_SOCKET: Final = f"{LOGIN_PATH}/login.sock"
LOGIN_MARK: Final = "stackgen-login"
# The proxy's file watcher (compose-templates/watch-files.sh.j2), in its configuration folder:
# it wraps the proxy's command and reloads it gracefully when a file it reads changes.
WATCHER: Final = "watch-files.sh"
# How long after a watched file changed the watcher has surely applied it: it polls every
# 2 s, waits 1 s for the files to settle, then runs the graceful reload, whose switch from
# the old workers to the new ones takes a moment more (compose-templates/watch-files.sh.j2).
WATCH_LATENCY_SECONDS: Final = 5.0
# Each deny file's first line (a comment in every proxy's syntax).
DENY_FILE_HEAD: Final = (
    "# The ban list (access.ban), written by `stackgen ban`: these clients get 403.\n"
)
# The GeoIP allow file (access.geo): in the proxy's configuration folder, rewritten at every
# render from the country database; its first line says what it holds (verify reads it).
GEO_FILE_HEAD: Final = "# access.geo (stackgen writes this file at every render; do not edit): "
FED_FILE_HEAD: Final = (
    "# The ban list's feeder (fail2ban, access.ban.feeder) writes this file: these clients "
    "get 403.\n"
)


@dataclass(frozen=True)
class DenySyntax:
    """A deny file in a proxy's syntax, cut into pieces any writer can put together (the
    feeder's script in fail2ban's container does, from these same pieces): with no address,
    `head` alone (a file the proxy reads as refusing no one); else `head`, `first`, each
    address through `each` (`{}` stands for it) joined by `between`, then `tail`."""

    head: str
    each: str
    first: str = ""
    between: str = ""
    tail: str = ""

    def render(self, addresses: Sequence[BannedAddress | AdmittedNetwork]) -> str:
        if not addresses:
            return self.head
        body = self.between.join(self.each.format(a) for a in addresses)
        return f"{self.head}{self.first}{body}{self.tail}"


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
    # How long such a connection may sit idle and still be reused: well below
    # JELLYFIN_KEEPALIVE_SECONDS, so the proxy never sends a request into a connection
    # Jellyfin is closing at that moment (a request with a body is not retried: the client
    # gets 502; docs/flakes.md).
    upstream_idle_timeout: ClassVar[Duration] = Duration(60)
    # For a proxy with its own ACME client: the container path where it reads the root a
    # private ACME server's own TLS certificate chains to (`acme_ca_bundle`, mounted there).
    acme_ca_path: ClassVar[str | None] = None
    # The ban list's deny file name (under BAN_DIR) in this proxy's syntax; None: the proxy
    # has none, for this reason.
    ban_file: ClassVar[str | None] = None
    ban_refusal: ClassVar[str] = "this proxy has no deny file yet"
    # The feeder's deny file name (under FED_DIR) when it differs from `ban_file` (Traefik's
    # feeder writes plain addresses, not its deny file's syntax).
    fed_name: ClassVar[str | None] = None
    # The GeoIP allow file's name in the configuration folder (access.geo); None: the
    # networks are written into the proxy's own configuration (Traefik's dynamic file).
    geo_file: ClassVar[str | None] = None
    # The most admitted networks the proxy starts and reloads with in reasonable time (None:
    # no limit found); more is refused at render, in one line, with this reason.
    geo_max_networks: ClassVar[int | None] = None
    geo_max_reason: ClassVar[str] = ""

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

    def deny_syntax(self, head: str, name: str) -> DenySyntax:
        """This proxy's deny file syntax, starting with the comment `head`; `name` tells two
        deny files apart where the syntax names what it declares (Caddy's matcher)."""
        raise NotImplementedError(f"{self.kind} has no deny file")

    def deny_file(self, addresses: Sequence[BannedAddress]) -> str:
        """The user's deny file naming `addresses` (ordered, each once), in this proxy's
        syntax; with none, a file the proxy reads as refusing no one."""
        return self.deny_syntax(DENY_FILE_HEAD, "stackgen_banned").render(addresses)

    def fed_syntax(self) -> DenySyntax:
        """The feeder's deny file (fail2ban's), in this proxy's syntax."""
        return self.deny_syntax(FED_FILE_HEAD, "stackgen_fed")

    # --- the GeoIP country allow list (access.geo) ------------------------------------------

    def geo_syntax(self, head: str) -> DenySyntax:
        """The admitted networks in this proxy's syntax (`{}`: one network), starting with
        the comment `head`: a file that refuses, with 403, every client outside them."""
        raise NotImplementedError(f"{self.kind} has no GeoIP allow file")

    def geo_target(self, config: StackConfig) -> str | None:
        """The allow file in the stack folder, or None (GeoIP off, or written inline)."""
        if not config.access.geo.on or self.geo_file is None:
            return None
        return f"{self.conf_dir}/{self.geo_file}"

    def geo_include(self, config: StackConfig) -> str | None:
        """Where the proxy's configuration reads the allow file in its container."""
        if self.geo_target(config) is None:
            return None
        return f"{self.conf_path}/{self.geo_file}"

    def geo_summary_file(self, config: StackConfig) -> str | None:
        """The stack file whose line starting with GEO_FILE_HEAD sums up access.geo."""
        return self.geo_target(config)

    # --- the ban list (access.ban) ----------------------------------------------------------

    def ban_file_name(self, config: StackConfig) -> str | None:
        return self.ban_file if config.access.ban.enabled else None

    def ban_include(self, config: StackConfig) -> str | None:
        """Where the proxy's configuration reads the deny file in its container, or None."""
        name = self.ban_file_name(config)
        return None if name is None else f"{BAN_PATH}/{name}"

    def feeder_on(self, config: StackConfig) -> bool:
        """Whether fail2ban feeds a second deny file (stackgen.feeder)."""
        return config.ban_feeder_on and self.ban_file_name(config) is not None

    def login_log_on(self, config: StackConfig) -> bool:
        """Whether the proxy sends its failed logins to the feeder (access.ban.proxy_log)."""
        return self.feeder_on(config) and config.ban_reads_proxy_log

    def fed_include(self, config: StackConfig) -> str | None:
        """Where the proxy reads the feeder's deny file in its container, or None."""
        if not self.feeder_on(config):
            return None
        return f"{FED_PATH}/{self.fed_file_name}"

    def fed_file(self, config: StackConfig) -> str | None:
        """The feeder's deny file in the stack folder, or None."""
        return f"{FED_DIR}/{self.fed_file_name}" if self.feeder_on(config) else None

    @property
    def fed_file_name(self) -> str | None:
        return self.fed_name or self.ban_file

    def deny_files(self, config: StackConfig) -> list[str]:
        """Container paths of every deny file the proxy reads: the user's, the feeder's."""
        return [path for path in (self.ban_include(config), self.fed_include(config)) if path]

    def ban_state_files(self, config: StackConfig) -> list[StateFile]:
        # Rendered empty once; then stackgen's `ban` command owns it (a re-render keeps it).
        name = self.ban_file_name(config)
        if name is None:
            return []
        files = [StateFile(f"{BAN_DIR}/{name}", self.deny_file([]).encode(), 0o644, Access.CONTROL)]
        fed = self.fed_file(config)
        if fed is not None:
            # fail2ban's: written by its container (the stack's user), read by the proxy.
            empty = self.fed_syntax().render([]).encode()
            files.append(StateFile(fed, empty, 0o644, Access.WRITTEN))
        return files

    def ban_mounts(self, config: StackConfig) -> list[Mount]:
        if self.ban_file_name(config) is None:
            return []
        why = "The ban list (access.ban): stackgen writes it, the proxy only reads it."
        mounts = [Mount(bind_source(BAN_DIR), BAN_PATH, live=True, comment=(why,))]
        if self.feeder_on(config):
            fed = "The feeder's deny file: fail2ban writes it, the proxy only reads it."
            mounts.append(Mount(bind_source(FED_DIR), FED_PATH, live=True, comment=(fed,)))
        if self.login_log_on(config):
            why = "The feeder's socket: one datagram per failed login (dropped if it is down)."
            mounts.append(Mount(bind_source(LOGIN_DIR), LOGIN_PATH, live=True, comment=(why,)))
        return mounts

    # --- the proxy with its certificate source: what render and lifecycle use --------------

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        watcher = [TemplateFile("watch-files.sh.j2", self.watcher, 0o755)]
        return [
            *self.own_templates(config),
            *(watcher if self.watches(config) else []),
            *self.certificates(config).templates(config),
        ]

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        return [
            *self.own_state_files(config),
            *self.ban_state_files(config),
            *self.certificates(config).state_files(config, stack_dir),
        ]

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        # The feeder's folder: fail2ban (the stack's user) replaces its file atomically.
        fed = [(FED_DIR, 0o755)] if self.feeder_on(config) else []
        # The feeder's socket: only the stack's user (the proxy's and fail2ban's) reaches it.
        fed += [(LOGIN_DIR, 0o700)] if self.login_log_on(config) else []
        return [
            *self.own_directories(config),
            *fed,
            *self.certificates(config).directories(config),
        ]

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
        if self.feeder_on(config):
            ban.append(Mount(FED_DIR, FED_PATH))
        mounts = [Mount(self.conf_dir, self.conf_path), *ban, *self.tls_mounts(config)]
        return tuple((m.source, m.target) for m in mounts)

    # --- the file watcher: reloads the proxy when a file it reads only on a reload changes --

    @property
    def watcher(self) -> str:
        """The watcher script in the stack (in the configuration folder, mounted already)."""
        return f"{self.conf_dir}/{WATCHER}"

    def watched_files(self, config: StackConfig) -> list[str]:
        """Container paths (shell patterns) whose change the watcher applies: the certificate
        source's, and the deny files."""
        return [*self.certificates(config).watched_files(), *self.deny_files(config)]

    def watches(self, config: StackConfig) -> bool:
        return bool(self.watched_files(config))

    def command(self, config: StackConfig) -> list[str] | None:
        """The container's command: the proxy in the foreground, wrapped by the watcher when
        it has files to watch (the reload runs with `sh -c`: quoted here so that it gets
        exactly these arguments); None: the image's own command."""
        foreground = self.foreground(config)
        if foreground is None:
            return None
        watched = self.watched_files(config)
        if not watched:
            return list(foreground)
        reload = self.reload_command(config)
        if reload is None:
            raise ValueError(f"{self.kind} watches {watched} but has no reload command")
        path = f"{self.conf_path}/{WATCHER}"
        return ["sh", path, shlex.join(reload), " ".join(watched), *foreground]

    def needs_restart(self, config: StackConfig, changed: set[str]) -> bool:
        # The watcher is the container's PID 1 wrapper: read once, at start.
        watcher = {self.watcher} if self.watches(config) else set()
        files = self.restart_files(config) | self.certificates(config).restart_files() | watcher
        return not files.isdisjoint(changed)
