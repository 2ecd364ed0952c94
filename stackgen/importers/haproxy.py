"""haproxy.cfg (the old docs' >= 1.7 and < 1.7 forms), read with a small parser of our own:
sections of one-line directives, no maintained Python parser exists."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final

from stackgen.errors import InvalidInputError
from stackgen.importers import reasons
from stackgen.importers.base import (
    Imported,
    ReportAction,
    Site,
    TextFileImporter,
    Upstream,
    choose_site,
    expand_folders,
    pattern_score,
    read_text,
    under_root,
)
from stackgen.importers.common import (
    ciphers_verdict,
    finish,
    forwarded_header_verdict,
    header_verdict,
    listen_port,
    protocols_verdict,
    set_subpath,
    set_upstream,
)
from stackgen.models import ProxyKind, TlsMode

SECTIONS: Final = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "userlist",
        "peers",
        "resolvers",
        "mailers",
        "program",
        "http-errors",
        "ring",
        "cache",
    }
)
# Removed in HAProxy 2.1: the < 1.7 era's way to add and rewrite headers.
LEGACY: Final = frozenset(
    {
        "reqadd",
        "reqrep",
        "reqirep",
        "reqdel",
        "reqidel",
        "rspadd",
        "rsprep",
        "rspirep",
        "rspdel",
        "rspidel",
    }
)


@dataclass
class Line:
    words: list[str]
    line: int

    @property
    def keyword(self) -> str:
        return self.words[0].lower()

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class Section:
    kind: str
    name: str
    line: int
    lines: list[Line] = field(default_factory=list)


def parse_haproxy(text: str, file: Path) -> list[Section]:
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body = _strip_comment(raw).strip()
        if not body:
            continue
        try:
            words = shlex.split(body, posix=True)
        except ValueError as error:
            raise InvalidInputError(f"{file}:{number}: {error}: expected balanced quotes") from None
        if words[0].lower() in SECTIONS and not raw[:1].isspace():
            sections.append(Section(words[0].lower(), words[1] if len(words) > 1 else "", number))
            continue
        if not sections:
            raise InvalidInputError(
                f"{file}:{number}: {words[0]!r}: expected a section (global, defaults, frontend, "
                "backend, listen)"
            )
        sections[-1].lines.append(Line(words, number))
    return sections


def _strip_comment(raw: str) -> str:
    # `#` starts a comment unless escaped or quoted (`\#`, "a#b").
    quote = ""
    for index, char in enumerate(raw):
        if char in "\"'" and (not quote or quote == char):
            quote = "" if quote else char
        elif char == "#" and not quote and (index == 0 or raw[index - 1] != "\\"):
            return raw[:index]
    return raw


@dataclass
class Route:
    """A backend and what sends traffic to it: host names and path prefixes of its ACLs."""

    backend: Section
    hosts: list[str]
    paths: list[str]
    servers: list[tuple[Upstream, int]]
    frontend: Section | None


class HAProxyImporter(TextFileImporter):
    name: ClassVar[str] = "haproxy"
    kind: ClassVar[ProxyKind] = "haproxy"

    def score(self, file: Path, text: str) -> float:
        return pattern_score(
            text,
            (r"(?m)^(frontend|backend|listen)\s+\S+", 0.6),
            (r"(?m)^\s+(bind|server|use_backend|default_backend)\s", 0.4),
        )

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        files = expand_folders(paths, lambda f: f.suffix == ".cfg")
        imp = Imported("haproxy", files)
        if len(files) != 1:
            raise InvalidInputError(f"{', '.join(map(str, paths))}: expected one haproxy.cfg")
        file = files[0]
        sections = parse_haproxy(read_text(file), file)
        routes = _routes(sections)
        if not routes:
            raise InvalidInputError(
                f"{file}: no backend with a server: expected an HAProxy configuration"
            )
        site = choose_site(
            [Site(r.hosts, file, r.backend.line, [u for u, _ in r.servers]) for r in routes],
            jellyfin_url,
            str(file),
        )
        route = next(r for r in routes if r.backend.line == site.line)
        for section in sections:
            if section.kind == "backend" and section is not route.backend:
                imp.add(
                    file,
                    section.line,
                    f"backend {section.name}",
                    ReportAction.SKIPPED,
                    "stackgen answers the ACME challenge itself"
                    if any("8888" in x.text or "letsencrypt" in section.name for x in section.lines)
                    else f"another site ({reasons.NOT_JELLYFIN})",
                )
            elif section.kind in ("global", "defaults"):
                for x in section.lines:
                    self._global(imp, file, x)
            elif section.kind in ("frontend", "listen") and section is route.frontend:
                self._frontend(imp, file, section, route, root)
            elif section.kind == "frontend":
                imp.add_other_site(file, section.line, f"frontend {section.name}")
        if route.hosts:
            imp.domain = route.hosts[0]
            imp.domain_origin = (
                str(file),
                route.frontend.line if route.frontend else route.backend.line,
            )
        upstream, line = next((u, n) for u, n in route.servers if u.is_jellyfin(jellyfin_url))
        self._backend(imp, file, route.backend, line)
        set_upstream(imp, upstream, file, line, f"server {upstream.authority}")
        if route.paths:
            strips = any(
                x.keyword == "http-request"
                and len(x.words) > 1
                and x.words[1] in ("set-path", "replace-path")
                for x in route.backend.lines
            )
            set_subpath(
                imp, route.paths[0], strips, file, route.backend.line, f"path_beg {route.paths[0]}"
            )
        if imp.tls_mode is None:
            imp.tls_mode = TlsMode.ACME
        finish(imp)
        return imp

    def _global(self, imp: Imported, file: Path, x: Line) -> None:
        k = x.keyword
        if k in (
            "ssl-default-bind-ciphers",
            "ssl-default-server-ciphers",
            "ssl-default-bind-ciphersuites",
        ):
            imp.add(file, x.line, x.text, *ciphers_verdict(" ".join(x.words[1:])))
        elif k in ("ssl-default-bind-options", "ssl-default-server-options"):
            options = " ".join(x.words[1:])
            old = "ssl-min-ver TLSv1.2" not in options and "no-tlsv11" not in options
            imp.add(
                file,
                x.line,
                x.text,
                *(protocols_verdict("TLSv1") if old else protocols_verdict(options)),
            )
        elif k == "tune.ssl.default-dh-param":
            imp.add(file, x.line, x.text, ReportAction.DROPPED, reasons.DHPARAM)
        elif k.startswith("timeout"):
            imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.BUFFERING)
        elif (k in ("log", "option") and "httplog" in x.words) or k == "log":
            imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.LOGS)
        else:
            imp.add(
                file,
                x.line,
                x.text,
                ReportAction.REPLACED,
                "stackgen renders its own global and defaults sections",
            )

    def _frontend(
        self, imp: Imported, file: Path, section: Section, route: Route, root: Path
    ) -> None:
        for x in section.lines:
            k, words = x.keyword, x.words
            if k == "bind":
                if "ssl" in words and "crt" in words:
                    crt = (
                        words[words.index("crt") + 1] if words.index("crt") + 1 < len(words) else ""
                    )
                    self._crt(imp, file, x, crt, root)
                if len(words) > 1:
                    listen_port(imp, words[1], "ssl" in words, file, x.line, f"bind {words[1]}")
                if "alpn" in words:
                    imp.add(file, x.line, "alpn", ReportAction.REPLACED, reasons.HTTP2)
            elif k == "redirect":
                imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.REDIRECT)
            elif k == "acl":
                if "hdr(host)" in words or "hdr_dom(host)" in words or "hdr_beg(host)" in words:
                    imp.add(file, x.line, x.text, ReportAction.TRANSLATED, "domain (Host ACL)")
                elif "path_beg" in words and route.paths and route.paths[0] in words:
                    imp.add(file, x.line, x.text, ReportAction.TRANSLATED, "subpath (path ACL)")
                else:
                    imp.add(
                        file, x.line, x.text, ReportAction.REPLACED, "stackgen renders its own ACLs"
                    )
            elif k in ("use_backend", "default_backend"):
                target = words[1] if len(words) > 1 else ""
                if target == route.backend.name:
                    imp.add(file, x.line, x.text, ReportAction.TRANSLATED, "the route to Jellyfin")
                else:
                    imp.add(
                        file,
                        x.line,
                        x.text,
                        ReportAction.SKIPPED,
                        f"routes to {target}, {reasons.NOT_JELLYFIN}",
                    )
            else:
                self._proxy_line(imp, file, x)

    def _backend(self, imp: Imported, file: Path, section: Section, server_line: int) -> None:
        for x in section.lines:
            if x.keyword == "server" and x.line == server_line:
                continue
            if x.keyword == "server":
                imp.add(
                    file, x.line, x.text, ReportAction.DROPPED, "stackgen proxies to one Jellyfin"
                )
            else:
                self._proxy_line(imp, file, x)

    def _proxy_line(self, imp: Imported, file: Path, x: Line) -> None:
        k, words = x.keyword, x.words
        if k in LEGACY:
            imp.add(
                file,
                x.line,
                x.text,
                ReportAction.REPLACED,
                f"removed in HAProxy 2.1 (the < 1.7 form); {reasons.FORWARDED}",
            )
        elif k == "http-request" and len(words) > 2 and words[1] in ("set-header", "add-header"):
            imp.add(file, x.line, x.text, *forwarded_header_verdict(words[2]))
        elif k == "http-response" and len(words) > 2 and words[1] in ("set-header", "add-header"):
            imp.add(file, x.line, x.text, *header_verdict(words[2], " ".join(words[3:])))
        elif k == "http-request" and len(words) > 1 and words[1] in ("set-path", "replace-path"):
            imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.PREFIX_STRIP)
        elif (
            k == "option"
            and len(words) > 1
            and words[1] in ("forwardfor", "http-server-close", "httpclose")
        ):
            imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.FORWARDED)
        elif k == "option" and len(words) > 1 and words[1] in ("httpchk", "httplog"):
            imp.add(
                file,
                x.line,
                x.text,
                ReportAction.REPLACED,
                "stackgen checks Jellyfin's /health itself",
            )
        elif k.startswith("timeout"):
            imp.add(file, x.line, x.text, ReportAction.REPLACED, reasons.BUFFERING)
        elif k == "mode":
            imp.add(file, x.line, x.text, ReportAction.TRANSLATED, "HTTP mode")
        else:
            imp.add(file, x.line, x.text, ReportAction.DROPPED, reasons.UNSUPPORTED)

    def _crt(self, imp: Imported, file: Path, x: Line, crt: str, root: Path) -> None:
        path = under_root(root, crt)
        if path.is_file():
            imp.tls_mode = TlsMode.FILES
            imp.combined_pem = path
            imp.add(
                file,
                x.line,
                x.text,
                ReportAction.TRANSLATED,
                f"HTTPS; the combined PEM {path} is split into chain and key",
            )
            return
        imp.tls_mode = TlsMode.ACME
        found = (
            "is a folder of certificates, which import does not read"
            if path.is_dir()
            else ("is not a file on this machine")
        )
        imp.add(
            file,
            x.line,
            x.text,
            ReportAction.REPLACED,
            f"{path} {found}: the certificate cannot be kept, stackgen "
            "obtains a new one (tls.mode 'acme'); import on the old server, or pass --root "
            "with a copy of its filesystem, to keep it",
        )


def _servers(section: Section) -> list[tuple[Upstream, int]]:
    """The `server NAME ADDRESS` lines of a section that name an address, with their line."""
    return [
        (u, x.line)
        for x in section.lines
        if x.keyword == "server" and len(x.words) > 2
        for u in [Upstream.parse(x.words[2])]
        if u is not None
    ]


def _routes(sections: list[Section]) -> list[Route]:
    backends = {s.name: s for s in sections if s.kind == "backend"}
    routes: list[Route] = []
    for section in sections:
        servers = _servers(section)
        if section.kind == "listen" and servers:
            hosts, paths = _acl_values(section, None)
            routes.append(Route(section, hosts, paths, servers, section))
    for frontend in (s for s in sections if s.kind == "frontend"):
        for x in frontend.lines:
            if x.keyword not in ("use_backend", "default_backend") or len(x.words) < 2:
                continue
            backend = backends.get(x.words[1])
            if backend is None or any(r.backend is backend for r in routes):
                continue
            servers = _servers(backend)
            condition = x.words[3:] if len(x.words) > 3 and x.words[2] in ("if", "unless") else []
            hosts, paths = _acl_values(frontend, condition)
            routes.append(Route(backend, hosts, paths, servers, frontend))
    return routes


def _acl_values(section: Section, condition: list[str] | None) -> tuple[list[str], list[str]]:
    """Host names and path prefixes of the ACLs a condition names (all, for a `listen`)."""
    hosts: list[str] = []
    paths: list[str] = []
    for x in section.lines:
        if x.keyword != "acl" or len(x.words) < 3:
            continue
        if condition is not None and x.words[1] not in condition:
            continue
        values = [w for w in x.words[3:] if not w.startswith("-")]
        if x.words[2].startswith("hdr") and "host" in x.words[2]:
            hosts += values
        elif x.words[2] == "path_beg":
            paths += values
    return hosts, paths
