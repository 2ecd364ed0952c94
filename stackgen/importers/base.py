"""What every importer produces: the facts of the old stack, and a report of each directive.

An importer reads one source format and fills an `Imported`; nothing here knows how a stack is
rendered. `stackgen.importers.build` turns an `Imported` into the same `stackgen.toml` data that
`stackgen init` builds, so the rendered stack is the ordinary one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from stackgen import inputs
from stackgen.errors import InvalidInputError
from stackgen.importers import reasons
from stackgen.models import JellyfinNetwork, ProxyKind, TlsMode

# Jellyfin's HTTP and HTTPS ports, and the service name the docs' compose files give it.
JELLYFIN_PORTS = frozenset({8096, 8920})
JELLYFIN_HOST = "jellyfin"


class ReportAction(StrEnum):
    TRANSLATED = "translated"  # carried over into stackgen.toml or the rendered stack
    REPLACED = "replaced"  # stackgen renders its own, better-known-good equivalent
    DROPPED = "dropped"  # harmful or obsolete: not carried over
    SKIPPED = "skipped"  # not about Jellyfin (another site, a comment, the dashboard)


@dataclass(frozen=True)
class ReportEntry:
    source_file: str
    line: int | None
    directive: str
    action: ReportAction
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "source_file": self.source_file,
            "line": self.line,
            "directive": self.directive,
            "action": self.action.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Upstream:
    """Where the old proxy sent Jellyfin's traffic."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> Upstream | None:
        """`http://host:port/path`, `ws://…`, or a bare `host:port`; None when it is neither."""
        text = url if "://" in url else f"http://{url}"
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            return None
        if not parts.hostname:
            return None
        scheme = parts.scheme.lower()
        if port is None:
            port = 443 if scheme in ("https", "wss") else 80
        return cls(scheme, parts.hostname.lower(), port, parts.path)

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def is_jellyfin(self, wanted: Upstream | None) -> bool:
        if wanted is not None:
            return (self.host, self.port) == (wanted.host, wanted.port)
        return self.port in JELLYFIN_PORTS or self.host == JELLYFIN_HOST

    @property
    def network_mode(self) -> JellyfinNetwork:
        # The docs' compose files name the container `jellyfin` on a shared network; every
        # other upstream (loopback, the docker0 gateway, a LAN address) is Jellyfin on the
        # host itself, which stackgen reaches through host.docker.internal.
        return JellyfinNetwork.BRIDGE if self.host == JELLYFIN_HOST else JellyfinNetwork.HOST


@dataclass
class Imported:
    """Everything an importer learnt; `None` means the source did not say."""

    source: ProxyKind
    files: list[Path]
    domain: str | None = None
    domain_origin: tuple[str, int | None] = ("", None)
    email: str | None = None
    subpath: str = ""
    upstream: Upstream | None = None
    tls_mode: TlsMode | None = None
    ca_url: str | None = None
    dns_provider: str | None = None
    wildcard_domains: list[str] = field(default_factory=list)
    # A certificate and key on this machine that the old proxy served (mode `files`).
    cert_file: Path | None = None
    key_file: Path | None = None
    # Their content, read once, the key matched to the certificate: the stack gets a copy.
    kept_pair: tuple[bytes, bytes] | None = None
    # One PEM holding chain and key (HAProxy's `crt`): split when the stack is built.
    combined_pem: Path | None = None
    # Traefik v1's acme.json, parsed (account and certificates).
    acme_store: dict[str, object] | None = None
    acme_store_file: Path | None = None
    # Ports the old proxy listened on (None: not said, stackgen's 80/443).
    http_port: int | None = None
    https_port: int | None = None
    report: list[ReportEntry] = field(default_factory=list)

    def add(
        self,
        source_file: Path | str,
        line: int | None,
        directive: str,
        action: ReportAction,
        reason: str,
    ) -> None:
        self.report.append(ReportEntry(str(source_file), line, directive, action, reason))

    def add_other_site(self, source_file: Path | str, line: int | None, directive: str) -> None:
        """A site of the old configuration that does not proxy to Jellyfin."""
        self.add(
            source_file,
            line,
            directive,
            ReportAction.SKIPPED,
            f"another site ({reasons.NOT_JELLYFIN})",
        )


class Importer(ABC):
    """One source format. `detect` is cheap and never raises; `parse` raises
    InvalidInputError naming the file and line of the first thing it cannot read."""

    name: ClassVar[str]
    kind: ClassVar[ProxyKind]

    @abstractmethod
    def detect(self, path: Path) -> float:
        """Confidence 0.0-1.0 that `path` (a file or a folder) is in this format."""

    @abstractmethod
    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        """Read the old configuration; never writes anything."""


class TextFileImporter(Importer):
    """A format whose files are recognised by their text: a file scores by `score`, an
    unreadable one 0.0, and a folder as the best of its `files_to_detect`."""

    def detect(self, path: Path) -> float:
        if path.is_dir():
            return max((self.detect(p) for p in self.files_to_detect(path)), default=0.0)
        text = inputs.peek_text(path)
        return 0.0 if text is None else self.score(path, text)

    def files_to_detect(self, folder: Path) -> list[Path]:
        return files_in(folder)

    @abstractmethod
    def score(self, file: Path, text: str) -> float:
        """Confidence 0.0-1.0 that `file`, whose text is `text`, is in this format."""


def pattern_score(text: str, *weights: tuple[str, float], start: float = 0.0) -> float:
    """`start` plus the weight of each (regex, weight) whose regex is found in `text`, at most
    1.0: the confidence of a `TextFileImporter.score` built from telltale lines."""
    score = start
    for pattern, weight in weights:
        if re.search(pattern, text):
            score += weight
    return min(score, 1.0)


def files_in(folder: Path, keep: Callable[[Path], bool] = lambda _: True) -> list[Path]:
    """The files directly in `folder` that `keep` accepts, by name; subfolders are not read."""
    return sorted(p for p in folder.iterdir() if p.is_file() and keep(p))


def expand_folders(
    paths: Sequence[Path], keep: Callable[[Path], bool] = lambda _: True
) -> list[Path]:
    """The files to parse: each folder of `paths` stands for its files that `keep` accepts
    (`files_in`), each file for itself (whatever its name), in the order given."""
    return [f for p in paths for f in (files_in(p, keep) if p.is_dir() else [p])]


def first_commented(files: Sequence[Path], pattern: str) -> str:
    """`file:line` of the first comment line matching `pattern` (a regex), or ''."""
    for file in files:
        text = inputs.peek_text(file)
        if text is None:
            continue
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if re.match(rf"^\s*#+\s*(?:{pattern})", line):
                return f"{file}:{number}"
    return ""


def read_text(path: Path) -> str:
    """An old configuration file: regular, bounded in size, UTF-8 (`inputs.read_text`)."""
    return inputs.read_text(path)


def under_root(root: Path, path: str) -> Path:
    """An absolute path of the old server, found under `root` (a copy of its filesystem, or
    `/` when importing on the server itself); never anywhere else (`inputs.confined`)."""
    return inputs.confined(root, path)


@dataclass
class Site:
    """One virtual host of a file that may hold several: what selection needs."""

    names: list[str]
    file: Path
    line: int
    upstreams: list[Upstream]

    @property
    def label(self) -> str:
        return " ".join(self.names) or "(no name)"


def choose_site(
    sites: Sequence[Site], wanted: Upstream | None, what: str, *, commented: str = ""
) -> Site:
    """The one site that proxies to Jellyfin. Several sites under one name (an HTTP and an
    HTTPS server) are merged by the caller before this is asked. `commented` names where a
    commented-out proxy line is, for the error when nothing active proxies."""
    matching = [s for s in sites if any(u.is_jellyfin(wanted) for u in s.upstreams)]
    if not matching and commented and not any(s.upstreams for s in sites):
        raise InvalidInputError(
            f"{commented}: the proxy lines are commented out (as the old docs ship them) and no "
            "active line proxies anywhere: expected the configuration the old proxy runs"
        )
    if not matching:
        target = (
            f"to {wanted.authority}"
            if wanted
            else "to Jellyfin (port 8096/8920 or host 'jellyfin')"
        )
        seen = sorted({u.authority for s in sites for u in s.upstreams})
        listing = f" (upstreams seen: {', '.join(seen)})" if seen else ""
        raise InvalidInputError(
            f"{what}: no site proxies {target}{listing}; "
            "name Jellyfin's address with --jellyfin-url http://HOST:PORT"
        )
    names = {tuple(s.names) for s in matching}
    if len(names) > 1:
        labels = ", ".join(f"{s.label} ({s.file}:{s.line})" for s in matching)
        raise InvalidInputError(
            f"{what}: several sites proxy to Jellyfin: {labels}; "
            "pick one with --jellyfin-url http://HOST:PORT"
        )
    return matching[0]
