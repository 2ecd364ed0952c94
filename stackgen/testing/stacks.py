"""Stacks for tests: render with stackgen's own API, start, prove, explain, remove.

`StackFactory` knows nothing of pytest (the plugin and stackgen's own test suite are its two
users). Each stack gets free ports, its own subnet and a unique Compose project, so that
any number of them can run side by side; `close()` removes everything a stack created —
containers, network, volumes and, for ACME stacks, its Pebble.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from stackgen import engine, lifecycle
from stackgen.allocate import Allocator
from stackgen.config_file import build_config, load_config
from stackgen.errors import StackgenError
from stackgen.models import CREDENTIALS_DIR, ProxyKind, StackConfig, TlsMode, default_run_as
from stackgen.probe import Report, run_checks
from stackgen.proxies import available
from stackgen.redaction import redact
from stackgen.stack import Stack, init_stack
from stackgen.testing.http import resolving_session
from stackgen.testing.options import DEFAULT_DOMAIN, DEFAULT_TIMEOUT
from stackgen.testing.pebble import PebbleCA
from stackgen.verify import stack_target

DEFAULT_EMAIL = "admin@stackgen.test"
# Every project the factory makes starts so: a later run recognises a killed run's leftovers.
PROJECT_PREFIX = "sgt"
ACME_MODES = (TlsMode.ACME, TlsMode.ACME_TLS_ALPN)
LOG_TAIL_LINES = 200
CONFIG_SUFFIXES = (".yml", ".yaml", ".toml", ".xml", ".conf", ".cfg", ".lua", ".sh", "")


class StackError(Exception):
    """A stack could not be created, started or reached (the message says which)."""


@dataclass(frozen=True)
class Ports:
    """Where a stack publishes on `listen_address` (and where host-network Jellyfin listens)."""

    http: int
    https: int
    jellyfin: int


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class StackHandle:
    """One stack: where it is, how to reach it, and how to prove it.

    `url` is the public base URL without a trailing slash (`stack.url + "/health"`);
    `resolve` is `host:ip` as curl's --resolve and `stackgen verify --resolve` take it.
    """

    dir: Path
    config: StackConfig
    pebble: PebbleCA | None = None
    notes: list[str] = field(default_factory=list)
    started: bool = False
    closed: bool = False

    @property
    def compose_project(self) -> str:
        return self.config.project

    @property
    def domain(self) -> str:
        return self.config.domain

    @property
    def url(self) -> str:
        return self.config.public_url.rstrip("/")

    @property
    def address(self) -> str:
        return self.config.connect_address

    @property
    def resolve(self) -> str:
        return f"{self.config.domain}:{self.address}"

    @property
    def http_port(self) -> int:
        return self.config.ports.http

    @property
    def https_port(self) -> int:
        return self.config.ports.https

    @property
    def ca_file(self) -> Path | None:
        """What a client must trust to verify the served chain (None: the system store)."""
        trust = self.config.client_trust_file
        return (self.dir / trust).resolve() if trust else None

    def session(self) -> requests.Session:
        """A requests session that trusts `ca_file` and reaches `domain` at `address`."""
        return resolving_session({self.config.domain: self.address}, self.ca_file)

    def verify(
        self,
        only: Collection[str] | None = None,
        *,
        media_path: str | None = None,
        timeout: float = 10.0,
    ) -> Report:
        """`stackgen verify --dir` as an object: `report.ok`, `report.failed`, `report.get(id)`."""
        target = stack_target(
            Stack.load(self.dir), timeout=timeout, observed=True, media_path=media_path
        )
        return run_checks(target, only=only)

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker compose` on this stack's project (e.g. `compose("restart", "jellyfin")`)."""
        project = ["--project-directory", str(self.dir), "-p", self.compose_project]
        return subprocess.run(
            ["docker", "compose", *project, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def logs(self, service: str | None = None, *, tail: int = LOG_TAIL_LINES) -> str:
        """The containers' recent logs (all services, or one), prefixed by service."""
        try:
            lines = "".join(lifecycle.logs(Stack(self.config, self.dir), service, False))
        except StackgenError as error:
            return f"(no logs: {error})"
        # A failing test's report may be published (CI artefacts): no token in it.
        return redact("\n".join(lines.splitlines()[-tail * 3 :]))

    def config_files(self) -> dict[str, str]:
        """Every generated config, by stack-relative path; private keys, .env and a swarm's
        credential files (`secrets/`) left out."""
        files: dict[str, str] = {}
        for path in sorted(self.dir.rglob("*")):
            relative = path.relative_to(self.dir)
            if (
                path.is_file()
                and path.suffix in CONFIG_SUFFIXES
                and "key" not in path.name
                and path.name != ".env"
                and relative.parts[0] != CREDENTIALS_DIR
                and not any(part.startswith(".") for part in relative.parts)
                and "cache" not in relative.parts
                and path.stat().st_size < 200_000
            ):
                files[str(relative)] = path.read_text(errors="replace")
        return files

    def diagnostics(self) -> str:
        """Logs, notes and configs: what a failing test's report carries."""
        parts = [f"stack folder: {self.dir}", f"compose project: {self.compose_project}"]
        parts += self.notes
        if self.started:
            kind = Stack(self.config, self.dir).target.logs_source
            parts.append(f"=== {kind} logs ===\n" + self.logs())
        if self.pebble is not None:
            parts.append("=== pebble ===\n" + self.pebble.log_tail())
        parts += [f"=== {name} ===\n{text}" for name, text in self.config_files().items()]
        return redact("\n".join(parts))


@dataclass
class StackFactory:
    """Makes stacks under `base_dir` and remembers them until `close_all()`."""

    base_dir: Path
    images: Mapping[str, str] = field(default_factory=dict)
    timeout: int = DEFAULT_TIMEOUT
    allocator: Allocator = field(default_factory=Allocator)
    # A subclass adds what one test suite wants on its stacks (stackgen's own: `directory`).
    handle_class: type[StackHandle] = StackHandle
    stacks: list[StackHandle] = field(default_factory=list)

    def create(
        self,
        proxy: str,
        *,
        subpath: str = "",
        tls: str = "internal",
        network: str = "bridge",
        domain: str = DEFAULT_DOMAIN,
        config: Mapping[str, Any] | None = None,
        start: bool = True,
        ports: Ports | None = None,
        subnet: str | ipaddress.IPv4Network | None = None,
        pebble: PebbleCA | None = None,
        project: str | None = None,
        name: str | None = None,
        on_start_failure: Callable[[StackHandle], None] | None = None,
    ) -> StackHandle:
        """Render (and with `start`, bring up) a stack; see the README's fixture reference.

        `ports`, `subnet`, `pebble` and `project` are chosen here unless given; `config`
        is merged over the generated stackgen.toml data (e.g. `{"headers": {...}}`).
        """
        try:
            if proxy not in available():
                raise ValueError(f"unknown proxy {proxy!r} (available: {', '.join(available())})")
            kind: ProxyKind = proxy
            mode = TlsMode(tls)
        except ValueError as error:
            raise StackError(str(error)) from None
        owner = project or f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        directory = self.base_dir / (name or owner)
        own_pebble = None
        try:
            if ports is None:
                http, https, jellyfin = self.allocator.ports(3, owner)
                ports = Ports(http=http, https=https, jellyfin=jellyfin)
            if subnet is None:
                subnet = self.allocator.subnet(owner)
            if mode in ACME_MODES and pebble is None:
                own_pebble = pebble = self._start_pebble(
                    directory.with_name(f"{owner}-pebble"), ports, owner
                )
        except BaseException:
            self.allocator.release(owner)  # PebbleCA.start stops what it started itself
            raise
        data = _merge(
            self._config_data(kind, mode, domain, subpath, network, ports, subnet, owner, pebble),
            config or {},
        )
        try:
            stack_config = build_config(data, directory)
            init_stack(Stack(stack_config, directory), force=False, dry_run=False)
            handle = self.handle_class(
                dir=directory, config=load_config(directory), pebble=own_pebble
            )
        except StackgenError as error:
            self._release(owner, own_pebble)
            raise StackError(f"stackgen init {proxy}: {error}") from None
        except BaseException:
            self._release(owner, own_pebble)
            raise
        self.stacks.append(handle)
        if start:
            self.start(handle, on_failure=on_start_failure)
        return handle

    def start(
        self, handle: StackHandle, *, on_failure: Callable[[StackHandle], None] | None = None
    ) -> None:
        """`stackgen up`: healthy containers, then Jellyfin answering through the proxy."""
        handle.started = True  # from here on, logs are worth attaching
        progress: list[str] = []
        try:
            lifecycle.up(
                Stack(handle.config, handle.dir), timeout=self.timeout, progress=progress.append
            )
        except Exception as error:
            handle.notes.append("stackgen up:\n" + "\n".join(progress))
            if on_failure is not None:
                on_failure(handle)
            if isinstance(error, StackgenError):
                raise StackError(f"stackgen up {handle.compose_project}: {error}") from None
            raise
        handle.notes.append("stackgen up:\n" + "\n".join(progress))

    def close(self, handle: StackHandle) -> None:
        """Remove containers, network and volumes; stop its Pebble; free its claims."""
        if handle.closed:
            return
        handle.closed = True
        try:
            if handle.started:
                remove_stack(handle)
        finally:
            self._release(handle.compose_project, handle.pebble)

    def close_all(self) -> None:
        errors: list[str] = []
        for handle in reversed(self.stacks):
            try:
                self.close(handle)
            except Exception as error:  # one stuck stack must not keep the others up
                errors.append(f"{handle.compose_project}: {error}")
        self.stacks.clear()
        if errors:
            raise StackError("teardown failed: " + "; ".join(errors))

    # ----------------------------------------------------------------- internals

    def _release(self, owner: str, pebble: PebbleCA | None) -> None:
        try:
            if pebble is not None:
                pebble.stop()
        finally:
            self.allocator.release(owner)

    def _start_pebble(self, state_dir: Path, ports: Ports, owner: str) -> PebbleCA:
        # Pebble validates HTTP-01/TLS-ALPN-01 on the stack's own published ports, so each
        # ACME stack has its own Pebble; its four listeners take free ports too.
        acme, management, dns, challtestsrv = self.allocator.ports(4, owner)
        ca = PebbleCA(
            state_dir,
            http_port=ports.http,
            tls_port=ports.https,
            dns_port=dns,
            challtestsrv_management_port=challtestsrv,
            acme_port=acme,
            management_port=management,
        )
        return ca.start()  # on failure, the caller releases the owner's claims

    def _config_data(
        self,
        kind: ProxyKind,
        mode: TlsMode,
        domain: str,
        subpath: str,
        network: str,
        ports: Ports,
        subnet: str | ipaddress.IPv4Network,
        project: str,
        pebble: PebbleCA | None,
    ) -> dict[str, Any]:
        """stackgen.toml's content (README "Configuration reference"), as `init` writes it."""
        images = dict(self.images)
        jellyfin: dict[str, Any] = {"network_mode": network, "port": ports.jellyfin}
        if "jellyfin" in images:
            jellyfin["image"] = images.pop("jellyfin")
        tls: dict[str, Any] = {"mode": mode.value}
        if mode.is_acme and pebble is not None:
            tls |= {
                "ca_url": pebble.directory_url,
                "ca_bundle": str(pebble.listener_ca_file),
                "trust_bundle": str(pebble.issuer_root_file),
            }
        data: dict[str, Any] = {
            "proxy": kind,
            "domain": domain,
            "subpath": subpath,
            "project": project,
            "run_as": default_run_as(),
            "tls": tls,
            "ports": {"http": ports.http, "https": ports.https, "listen_address": "127.0.0.1"},
            "network": {"subnet": str(subnet)},
            "jellyfin": jellyfin,
            "images": images,
        }
        if mode.is_acme:
            data["email"] = DEFAULT_EMAIL
        return data


def remove_stack(handle: StackHandle) -> None:
    """`stackgen down --volumes`, falling back to Compose by project name alone."""
    try:
        lifecycle.down(Stack(handle.config, handle.dir), volumes=True)
    except StackgenError:
        remove_project(handle.compose_project)


def remove_project(project: str) -> None:
    """Remove a Compose project's containers, networks and volumes by its labels."""
    # An empty project folder: Compose must find the project by its labels alone, never a
    # compose file that happens to lie in the working directory.
    with tempfile.TemporaryDirectory() as empty:
        client = engine.project_client(project, Path(empty))
        with contextlib.suppress(engine.DockerException):
            client.compose.down(remove_orphans=True, volumes=True, timeout=2)


def leftover_projects(prefix: str = PROJECT_PREFIX, kept: Collection[str] = ()) -> list[str]:
    """Projects this module made in a process that no longer runs (a killed test run),
    except those left running on purpose (`kept`). Every stack the factory makes has a
    network of its own, labelled with its project: the engine's networks name them all."""
    dead = []
    for project in sorted({network.project for network in engine.network_subnets()}):
        pid = project.removeprefix(prefix).partition("-")[0]
        if project in kept:
            continue
        if project.startswith(prefix) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            dead.append(project)
    return dead
