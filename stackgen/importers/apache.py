"""Apache httpd vhosts (mod_proxy), read with a small parser of our own: no maintained Python
parser for httpd's configuration syntax exists."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final

from stackgen import inputs
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
    first_commented,
    pattern_score,
    read_text,
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
    use_certificate_files,
)
from stackgen.models import ProxyKind, TlsMode

_SECTION_OPEN = re.compile(r"^<\s*([A-Za-z][\w.]*)\s*([^>]*)>\s*$")
_SECTION_CLOSE = re.compile(r"^</\s*([A-Za-z][\w.]*)\s*>\s*$")
_DIRECTIVE = re.compile(r"^[A-Za-z][\w.-]*(\s|$)")

_FIXED: Final[dict[str, tuple[ReportAction, str]]] = {
    "proxypassreverse": (ReportAction.REPLACED, "stackgen renders its own ProxyPassReverse"),
    "proxypreservehost": (ReportAction.REPLACED, reasons.FORWARDED),
    "proxyrequests": (ReportAction.REPLACED, "stackgen keeps forward proxying off"),
    "proxytimeout": (ReportAction.REPLACED, reasons.BUFFERING),
    "sslengine": (ReportAction.TRANSLATED, "HTTPS on ports.https"),
    "sslcertificatechainfile": (
        ReportAction.DROPPED,
        "the chain is served from the certificate file (certbot's fullchain.pem)",
    ),
    "sslhonorcipherorder": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "sslcompression": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "sslsessiontickets": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "sslopensslconfcmd": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "sslusestapling": (ReportAction.DROPPED, reasons.OCSP),
    "sslstaplingcache": (ReportAction.DROPPED, reasons.OCSP),
    "protocols": (ReportAction.REPLACED, reasons.HTTP2),
    "errorlog": (ReportAction.REPLACED, reasons.LOGS),
    "customlog": (ReportAction.REPLACED, reasons.LOGS),
    "loglevel": (ReportAction.REPLACED, reasons.LOGS),
    "servertokens": (ReportAction.REPLACED, reasons.SERVER_TOKENS),
    "serversignature": (ReportAction.REPLACED, reasons.SERVER_TOKENS),
    "limitrequestbody": (ReportAction.REPLACED, reasons.BODY_SIZE),
    "documentroot": (ReportAction.SKIPPED, f"{reasons.NOT_JELLYFIN}: static content"),
    "rewriteengine": (ReportAction.REPLACED, "stackgen renders its own rewrites"),
    "rewritecond": (ReportAction.REPLACED, "stackgen renders its own rewrites"),
}


@dataclass
class Node:
    name: str
    args: list[str]
    line: int
    children: list[Node] = field(default_factory=list)
    section: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            yield child
            yield from child.walk()


@dataclass(frozen=True)
class CommentedBlock:
    first: int
    last: int
    header: str


def parse_apache(text: str, file: Path) -> tuple[Node, list[CommentedBlock]]:
    """httpd's syntax: one directive a line, `\\` continues a line, `<Section args>` nests,
    `#` starts a comment line. Commented-out `<VirtualHost>` blocks are returned apart, for
    the report."""
    root = Node("(file)", [], 0, section=True)
    stack = [root]
    commented: list[CommentedBlock] = []
    open_comment: tuple[int, str] | None = None
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        start = number + 1
        raw = lines[number]
        number += 1
        while raw.endswith("\\") and number < len(lines):
            raw = raw[:-1] + " " + lines[number]
            number += 1
        stripped = raw.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if open_comment is None and re.match(r"(?i)^<VirtualHost\b", body):
                open_comment = (start, body)
            elif open_comment is not None and re.match(r"(?i)^</VirtualHost\s*>", body):
                commented.append(CommentedBlock(open_comment[0], start, open_comment[1]))
                open_comment = None
            continue
        if not stripped:
            continue
        closing = _SECTION_CLOSE.match(stripped)
        if closing:
            if len(stack) == 1 or stack[-1].key != closing.group(1).lower():
                expected = f"</{stack[-1].name}>" if len(stack) > 1 else "no closing tag"
                raise InvalidInputError(f"{file}:{start}: {stripped}: expected {expected}")
            stack.pop()
            continue
        opening = _SECTION_OPEN.match(stripped)
        if opening:
            node = Node(
                opening.group(1), _split(opening.group(2), file, start), start, section=True
            )
            stack[-1].children.append(node)
            stack.append(node)
            if len(stack) > inputs.MAX_NESTING:
                raise InvalidInputError(
                    f"{file}:{start}: sections nested deeper than {inputs.MAX_NESTING} levels"
                )
            continue
        if not _DIRECTIVE.match(stripped):
            raise InvalidInputError(
                f"{file}:{start}: {stripped[:40]!r}: expected an Apache directive or <Section>"
            )
        name, _, rest = stripped.partition(" ")
        stack[-1].children.append(Node(name, _split(rest, file, start), start))
    if len(stack) > 1:
        section = stack[-1]
        raise InvalidInputError(
            f"{file}:{section.line}: <{section.name}> is never closed: expected </{section.name}>"
        )
    _location_paths(root)
    return root, commented


def _location_paths(section: Node) -> None:
    """Inside `<Location /p>`, `ProxyPass URL` takes its path from the section: written out
    here, so every ProxyPass has (path, URL)."""
    for child in section.children:
        if child.section:
            if child.key in ("location", "locationmatch") and child.args:
                for node in child.children:
                    if node.key in ("proxypass", "proxypassreverse") and len(node.args) == 1:
                        node.args = [child.args[0], *node.args]
            _location_paths(child)


def _split(text: str, file: Path, line: int) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError as error:
        raise InvalidInputError(f"{file}:{line}: {error}: expected balanced quotes") from None


@dataclass
class VHost:
    node: Node
    file: Path
    names: list[str]
    upstreams: list[tuple[Upstream, str, int]]  # (upstream, path, line)


class ApacheImporter(TextFileImporter):
    name: ClassVar[str] = "apache"
    kind: ClassVar[ProxyKind] = "apache"

    def score(self, file: Path, text: str) -> float:
        return pattern_score(text, (r"(?im)^\s*#?\s*<VirtualHost\b", 1.0))

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        files = expand_folders(paths)
        imp = Imported("apache", files)
        vhosts: list[VHost] = []
        commented_all: list[tuple[Path, CommentedBlock]] = []
        for file in files:
            tree, commented = parse_apache(read_text(file), file)
            commented_all += [(file, c) for c in commented]
            for node in [tree, *tree.walk()]:
                if node.key == "virtualhost":
                    names = [
                        a
                        for c in node.children
                        if c.key in ("servername", "serveralias")
                        for a in c.args
                    ]
                    vhosts.append(VHost(node, file, names, _upstreams(node)))
        for file, block in commented_all:
            imp.add(
                file,
                block.first,
                f"#{block.header} (lines {block.first}-{block.last})",
                ReportAction.SKIPPED,
                reasons.COMMENTED,
            )
        if not vhosts:
            raise InvalidInputError(f"{files[0]}: no active <VirtualHost>: expected an Apache site")
        groups: dict[str, list[VHost]] = {}
        for vhost in vhosts:
            groups.setdefault((vhost.names or [""])[0].lower(), []).append(vhost)
        site = choose_site(
            [
                Site(
                    g[0].names, g[0].file, g[0].node.line, [u for v in g for u, _, _ in v.upstreams]
                )
                for g in groups.values()
            ],
            jellyfin_url,
            ", ".join(str(f) for f in files),
            commented=first_commented(files, r"ProxyPass\b"),
        )
        chosen = groups[(site.names or [""])[0].lower()]
        for key, group in groups.items():
            if group is not chosen:
                for v in group:
                    imp.add_other_site(
                        v.file, v.node.line, f"<VirtualHost {' '.join(v.node.args)}> {key}"
                    )
        self._site(imp, chosen, jellyfin_url, root)
        finish(imp)
        return imp

    def _site(self, imp: Imported, group: list[VHost], wanted: Upstream | None, root: Path) -> None:
        first = group[0]
        if first.names:
            imp.domain = first.names[0]
            line = next(
                (c.line for c in first.node.children if c.key == "servername"), first.node.line
            )
            imp.domain_origin = (str(first.file), line)
        candidates = [
            t
            for v in group
            for t in v.upstreams
            if t[0].is_jellyfin(wanted) and _last(t[1]) not in ("socket", "embywebsocket")
        ] or [t for v in group for t in v.upstreams if t[0].is_jellyfin(wanted)]
        upstream, path, line = min(candidates, key=lambda t: len(t[1]))
        main_file = next(v.file for v in group if (upstream, path, line) in v.upstreams)
        cert = key = None
        tls = False
        for vhost in group:
            secure = any(
                n.key == "sslengine" and [a.lower() for a in n.args[:1]] == ["on"]
                for n in vhost.node.walk()
            )
            for address in vhost.node.args:
                listen_port(
                    imp, address, secure, vhost.file, vhost.node.line, f"<VirtualHost {address}>"
                )
        for vhost in group:
            for node in vhost.node.walk():
                args = node.args
                shown = f"{node.name} {' '.join(args)}".strip()
                k = node.key
                if node.section:
                    continue
                if k == "sslengine" and args and args[0].lower() == "on":
                    tls = True
                if k == "sslcertificatefile" and args:
                    cert = (args[0], node.line, vhost.file)
                    continue
                if k == "sslcertificatekeyfile" and args:
                    key = args[0]
                    continue
                if k == "proxypass" and len(args) >= 2:
                    target = Upstream.parse(args[1])
                    if node.line == line and target == upstream:
                        continue  # reported by set_upstream
                    if args[1] == "!":
                        imp.add(
                            vhost.file,
                            node.line,
                            shown,
                            ReportAction.REPLACED,
                            "stackgen excludes the ACME challenge path itself",
                        )
                    elif _last(args[0]) == "embywebsocket":
                        imp.add(
                            vhost.file,
                            node.line,
                            shown,
                            ReportAction.DROPPED,
                            reasons.EMBY_WEBSOCKET,
                        )
                    else:
                        imp.add(
                            vhost.file,
                            node.line,
                            shown,
                            ReportAction.REPLACED,
                            f"{reasons.WEBSOCKET} (a separate ws:// ProxyPass for /socket was "
                            "reported to break SyncPlay)",
                        )
                    continue
                self._directive(imp, vhost.file, node, shown)
        set_upstream(imp, upstream, main_file, line, f"ProxyPass {path}")
        # ProxyPass maps its path onto the URL's: the prefix survives only when both agree.
        strips = upstream.path.rstrip("/") != path.rstrip("/")
        set_subpath(imp, path, strips, main_file, line, f"ProxyPass {path}")
        if cert and key:
            use_certificate_files(imp, cert[0], key, root, cert[2], cert[1], "SSLCertificateFile")
        else:
            imp.tls_mode = TlsMode.ACME
            if not tls:
                imp.add(
                    first.file,
                    first.node.line,
                    f"<VirtualHost {' '.join(first.node.args)}>",
                    ReportAction.REPLACED,
                    "the old site served plain HTTP (its TLS block commented out?): stackgen "
                    "serves HTTPS with a certificate it obtains (tls.mode 'acme')",
                )

    def _directive(self, imp: Imported, file: Path, node: Node, shown: str) -> None:
        k, args = node.key, node.args
        if k in ("servername", "serveralias"):
            if k == "servername":
                imp.add(
                    file,
                    node.line,
                    shown,
                    ReportAction.TRANSLATED,
                    f"domain {args[0]!r}" if args else "",
                )
            else:
                imp.add(file, node.line, shown, ReportAction.DROPPED, "stackgen serves one name")
        elif k == "redirect" or (k == "rewriterule" and any("https://" in a for a in args)):
            imp.add(file, node.line, shown, ReportAction.REPLACED, reasons.REDIRECT)
        elif k == "rewriterule":
            imp.add(file, node.line, shown, ReportAction.REPLACED, reasons.WEBSOCKET)
        elif k == "sslprotocol":
            imp.add(file, node.line, shown, *protocols_verdict(" ".join(args)))
        elif k == "sslciphersuite":
            imp.add(file, node.line, shown, *ciphers_verdict(" ".join(args)))
        elif k == "header" and len(args) >= 3:
            name = args[2] if args[0].lower() in ("always", "onsuccess") else args[1]
            imp.add(file, node.line, shown, *header_verdict(name, " ".join(args[2:])))
        elif k == "requestheader" and len(args) >= 2:
            imp.add(file, node.line, shown, *forwarded_header_verdict(args[1]))
        elif k == "include" and args and "letsencrypt" in args[0]:
            imp.add(
                file,
                node.line,
                shown,
                ReportAction.REPLACED,
                f"certbot's TLS options file: {reasons.TLS_SETTINGS}",
            )
        elif k in _FIXED:
            imp.add(file, node.line, shown, *_FIXED[k])
        else:
            imp.add(file, node.line, shown, ReportAction.DROPPED, reasons.UNSUPPORTED)


def _upstreams(vhost: Node) -> list[tuple[Upstream, str, int]]:
    found: list[tuple[Upstream, str, int]] = []
    rewrites: list[tuple[Upstream, str, int]] = []  # after ProxyPass: the main one wins ties
    for node in vhost.walk():
        if node.key == "proxypass" and len(node.args) >= 2 and node.args[1] != "!":
            upstream = Upstream.parse(node.args[1])
            if upstream is not None:
                found.append((upstream, node.args[0], node.line))
        elif (
            node.key == "rewriterule"
            and len(node.args) >= 3
            and "P" in node.args[2].strip("[]").upper().split(",")
        ):
            upstream = Upstream.parse(node.args[1].split("$", 1)[0])
            if upstream is not None:
                rewrites.append((upstream, "/", node.line))
    return found + rewrites


def _last(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1].lower()
