"""Caddy v1 Caddyfiles, read with a small parser of our own: Caddy v2's adapter does not read
v1's syntax and no Python parser exists."""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    pattern_score,
    read_text,
    under_root,
)
from stackgen.importers.common import (
    finish,
    forwarded_header_verdict,
    header_verdict,
    protocols_verdict,
    set_subpath,
    set_upstream,
    use_certificate_files,
)
from stackgen.models import ProxyKind, TlsMode

_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|[{}]|[^\s{}"]+')

_PROXY_OPTIONS: Final[dict[str, tuple[ReportAction, str]]] = {
    "transparent": (ReportAction.REPLACED, reasons.FORWARDED),
    "websocket": (ReportAction.REPLACED, reasons.WEBSOCKET),
    "insecure_skip_verify": (ReportAction.DROPPED, reasons.UPSTREAM_HTTPS),
    "keepalive": (ReportAction.REPLACED, reasons.BUFFERING),
    "timeout": (ReportAction.REPLACED, reasons.BUFFERING),
    "flush_interval": (ReportAction.REPLACED, reasons.BUFFERING),
}
_DIRECTIVES: Final[dict[str, tuple[ReportAction, str]]] = {
    "gzip": (
        ReportAction.DROPPED,
        "media is not worth compressing; Caddy v2 compresses nothing unless told",
    ),
    "log": (ReportAction.REPLACED, reasons.LOGS),
    "errors": (ReportAction.REPLACED, reasons.LOGS),
    "timeouts": (ReportAction.REPLACED, reasons.BUFFERING),
    "limits": (ReportAction.REPLACED, reasons.BODY_SIZE),
    "root": (ReportAction.SKIPPED, f"{reasons.NOT_JELLYFIN}: static content"),
}


@dataclass
class Entry:
    """A directive: its words, its line, and the lines of its `{ }` block."""

    words: list[str]
    line: int
    block: list[Entry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.words[0].lower()

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class SiteBlock:
    addresses: list[str]
    line: int
    directives: list[Entry]

    def hosts(self) -> list[str]:
        return [a for a in (_address(x)[0] for x in self.addresses) if a]

    def path(self) -> str:
        return next((p for p in (_address(x)[1] for x in self.addresses) if p), "")


def parse_caddyfile(text: str, file: Path) -> list[SiteBlock]:
    """v1's grammar: site addresses, then directives one a line, inside `{ }` unless the
    file holds a single site; a directive's own block opens with `{` at its line's end."""
    lines: list[tuple[int, list[str]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        raw_tokens = _TOKEN.findall(raw)
        # A comment starts at an unquoted word beginning with '#'; a quoted '#' is text.
        cut = next((i for i, t in enumerate(raw_tokens) if t.startswith("#")), len(raw_tokens))
        tokens = [t[1:-1] if t[:1] in '"`' else t for t in raw_tokens[:cut]]
        if tokens:
            lines.append((number, tokens))
    sites: list[SiteBlock] = []
    index = 0
    while index < len(lines):
        number, tokens = lines[index]
        if tokens == ["}"] or tokens[0] == "{":
            raise InvalidInputError(
                f"{file}:{number}: unexpected {tokens[0]!r}: expected a site address"
            )
        if tokens[-1] == "{":
            addresses = [a.rstrip(",") for a in tokens[:-1] if a.rstrip(",")]
            block, index = _block(lines, index + 1, file, number)
            sites.append(SiteBlock(addresses, number, block))
            continue
        if (
            not sites
            and index == 0
            and not any(t[-1] == "{" and len(t) == 1 for _, t in lines[1:2])
        ):
            # A single site without braces: addresses on the first line, the rest is its body.
            rest = lines[1:]
            block, end = _entries(rest, 0, file, top=True)
            if end != len(rest):
                raise InvalidInputError(
                    f"{file}:{rest[end][0]}: unexpected '}}': expected a directive"
                )
            return [SiteBlock([a.rstrip(",") for a in tokens], number, block)]
        raise InvalidInputError(
            f"{file}:{number}: {' '.join(tokens)[:40]!r}: expected a site address followed by '{{'"
        )
    return sites


def _block(
    lines: list[tuple[int, list[str]]], index: int, file: Path, opened: int, depth: int = 1
) -> tuple[list[Entry], int]:
    if depth > inputs.MAX_NESTING:
        raise InvalidInputError(
            f"{file}:{opened}: blocks nested deeper than {inputs.MAX_NESTING} levels"
        )
    entries, end = _entries(lines, index, file, top=False, depth=depth)
    if end >= len(lines):
        raise InvalidInputError(f"{file}:{opened}: '{{' is never closed: expected '}}'")
    return entries, end + 1


def _entries(
    lines: list[tuple[int, list[str]]], index: int, file: Path, *, top: bool, depth: int = 0
) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    while index < len(lines):
        number, tokens = lines[index]
        if tokens == ["}"]:
            if top:
                return entries, index
            return entries, index
        if "}" in tokens or tokens[0] == "{":
            raise InvalidInputError(
                f"{file}:{number}: braces go at the end of a line: expected a directive"
            )
        if tokens[-1] == "{":
            block, index = _block(lines, index + 1, file, number, depth + 1)
            entries.append(Entry(tokens[:-1], number, block))
            continue
        entries.append(Entry(tokens, number))
        index += 1
    return entries, index


def _address(text: str) -> tuple[str, str]:
    """`https://host:443/path` -> (host, path); a bare `:80` has no host."""
    rest = re.sub(r"^[a-z]+://", "", text.strip())
    host_port, _, path = rest.partition("/")
    host = host_port.rsplit(":", 1)[0] if host_port.count(":") == 1 else host_port
    return host.lower(), f"/{path}" if path else ""


class CaddyV1Importer(TextFileImporter):
    name: ClassVar[str] = "caddy-v1"
    kind: ClassVar[ProxyKind] = "caddy"

    def score(self, file: Path, text: str) -> float:
        return pattern_score(
            text,
            (r"(?m)^\s*proxy\s+\S+\s+\S+", 0.4),
            (r"(?m)^\s*(transparent|websocket)\s*$", 0.3),
            start=0.6 if _is_caddyfile(file) else 0.0,
        )

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        files = expand_folders(paths, _is_caddyfile)
        imp = Imported("caddy", files)
        blocks = [(file, b) for file in files for b in parse_caddyfile(read_text(file), file)]
        if not blocks:
            raise InvalidInputError(f"{', '.join(map(str, files))}: no site: expected a Caddyfile")
        groups: dict[tuple[str, ...], list[tuple[Path, SiteBlock]]] = {}
        for file, block in blocks:
            groups.setdefault(tuple(block.hosts()), []).append((file, block))
        site = choose_site(
            [
                Site(
                    list(hosts), g[0][0], g[0][1].line, [u for _, b in g for u, _, _ in _proxies(b)]
                )
                for hosts, g in groups.items()
            ],
            jellyfin_url,
            ", ".join(map(str, files)),
        )
        chosen = groups[tuple(site.names)]
        for group in groups.values():
            if group is not chosen:
                for file, block in group:
                    imp.add_other_site(file, block.line, " ".join(block.addresses))
        self._site(imp, chosen, jellyfin_url, root)
        finish(imp)
        return imp

    def _site(
        self,
        imp: Imported,
        group: list[tuple[Path, SiteBlock]],
        wanted: Upstream | None,
        root: Path,
    ) -> None:
        main = [
            (f, b, u, p, n) for f, b in group for u, p, n in _proxies(b) if u.is_jellyfin(wanted)
        ]
        file, block, upstream, proxy_from, line = main[0]
        hosts = block.hosts()
        if hosts:
            imp.domain = hosts[0]
            imp.domain_origin = (str(file), block.line)
        imp.add(
            file,
            block.line,
            " ".join(block.addresses),
            ReportAction.TRANSLATED,
            f"domain {hosts[0]!r}" if hosts else "site address",
        )
        imp.tls_mode = TlsMode.ACME
        for other_file, other in group:
            for entry in other.directives:
                self._directive(imp, other_file, entry, root, main_line=line)
        set_upstream(imp, upstream, file, line, f"proxy {proxy_from} {upstream.authority}")
        prefix = block.path() or (proxy_from if proxy_from != "/" else "")
        strips = any(
            e.name == "without" for p in block.directives if p.name == "proxy" for e in p.block
        )
        set_subpath(imp, prefix, strips, file, line, f"site {' '.join(block.addresses)}")
        if imp.tls_mode is TlsMode.ACME and imp.cert_file is None and imp.domain:
            stored = _v1_store(root, imp.domain)
            if stored is not None:
                # Caddy v2 does not read v1's store: the pair is served as files instead.
                use_certificate_files(
                    imp, stored[0], stored[1], root, file, block.line, "automatic HTTPS"
                )
            else:
                imp.add(
                    file,
                    block.line,
                    "automatic HTTPS",
                    ReportAction.REPLACED,
                    f"no certificate for {imp.domain} in Caddy v1's store (CADDYPATH: "
                    f"{', '.join(CADDYPATHS)} under --root): the new Caddy obtains one "
                    "(tls.mode 'acme')",
                )

    def _directive(
        self, imp: Imported, file: Path, entry: Entry, root: Path, *, main_line: int
    ) -> None:
        name, words = entry.name, entry.words
        if name == "proxy":
            if entry.line != main_line:
                imp.add(file, entry.line, entry.text, ReportAction.REPLACED, reasons.WEBSOCKET)
            for option in entry.block:
                if option.name == "without":
                    continue  # reported with the subpath
                if option.name in _PROXY_OPTIONS:
                    imp.add(file, option.line, option.text, *_PROXY_OPTIONS[option.name])
                elif option.name == "header_upstream" and len(option.words) > 1:
                    imp.add(
                        file, option.line, option.text, *forwarded_header_verdict(option.words[1])
                    )
                elif option.name == "header_downstream" and len(option.words) > 1:
                    imp.add(
                        file,
                        option.line,
                        option.text,
                        *header_verdict(option.words[1], " ".join(option.words[2:])),
                    )
                else:
                    imp.add(
                        file, option.line, option.text, ReportAction.DROPPED, reasons.UNSUPPORTED
                    )
        elif name == "tls":
            self._tls(imp, file, entry, root)
        elif name == "redir":
            targets = [e.words for e in entry.block] or [words[1:]]
            is_subpath = any(len(t) >= 2 and t[1].rstrip("/") == t[0].rstrip("/") for t in targets)
            imp.add(
                file,
                entry.line,
                entry.text,
                ReportAction.REPLACED,
                reasons.SUBPATH_REDIRECT if is_subpath else reasons.REDIRECT,
            )
        elif name == "header":
            pairs = [e.words for e in entry.block] if entry.block else [words[2:]]
            for pair in pairs:
                if pair:
                    imp.add(
                        file,
                        entry.line,
                        f"header {' '.join(pair)}",
                        *header_verdict(pair[0].lstrip("-"), " ".join(pair[1:])),
                    )
        elif name in _DIRECTIVES:
            imp.add(file, entry.line, entry.text, *_DIRECTIVES[name])
        else:
            imp.add(file, entry.line, entry.text, ReportAction.DROPPED, reasons.UNSUPPORTED)

    def _tls(self, imp: Imported, file: Path, entry: Entry, root: Path) -> None:
        words = entry.words[1:]
        if words == ["off"]:
            imp.add(
                file,
                entry.line,
                entry.text,
                ReportAction.REPLACED,
                "the old site served plain HTTP: stackgen serves HTTPS (tls.mode 'acme')",
            )
        elif words == ["self_signed"]:
            imp.tls_mode = TlsMode.INTERNAL
            imp.add(
                file,
                entry.line,
                entry.text,
                ReportAction.TRANSLATED,
                "tls.mode 'internal' (a local CA stackgen creates)",
            )
        elif len(words) == 1 and "@" in words[0]:
            imp.email = words[0]
            imp.add(
                file, entry.line, entry.text, ReportAction.TRANSLATED, "email (the ACME account)"
            )
        elif len(words) == 2:
            use_certificate_files(imp, words[0], words[1], root, file, entry.line, entry.text)
        for option in entry.block:
            if option.name == "protocols":
                imp.add(
                    file, option.line, option.text, *protocols_verdict(" ".join(option.words[1:]))
                )
            elif option.name == "ca" and len(option.words) > 1:
                imp.ca_url = option.words[1]
                imp.add(file, option.line, option.text, ReportAction.TRANSLATED, "tls.ca_url")
            elif option.name in ("ciphers", "curves", "key_type", "must_staple"):
                imp.add(file, option.line, option.text, ReportAction.REPLACED, reasons.TLS_SETTINGS)
            elif option.name == "dns" and len(option.words) > 1:
                imp.add(
                    file,
                    option.line,
                    option.text,
                    ReportAction.REPLACED,
                    "Caddy v2's official image has no DNS provider plugins: HTTP-01 instead",
                )
            else:
                imp.add(file, option.line, option.text, ReportAction.DROPPED, reasons.UNSUPPORTED)


# Where Caddy v1 kept its data ($CADDYPATH): root's home, the packaged service's, and the
# path the official systemd unit set.
CADDYPATHS: Final = ("/root/.caddy", "/etc/ssl/caddy", "/var/lib/caddy/.caddy")


def _is_caddyfile(file: Path) -> bool:
    return file.name.lower().startswith("caddyfile")


def _v1_store(root: Path, domain: str) -> tuple[str, str] | None:
    """The certificate and key Caddy v1 obtained for `domain`, as paths on the old server:
    `$CADDYPATH/acme/<CA host>/sites/<domain>/<domain>.crt` and `.key`."""
    for caddypath in CADDYPATHS:
        acme = under_root(root, caddypath) / "acme"
        if not acme.is_dir():
            continue
        for site in sorted(acme.glob(f"*/sites/{domain}")):
            crt, key = site / f"{domain}.crt", site / f"{domain}.key"
            if crt.is_file() and key.is_file():
                relative = site.relative_to(root)
                return (f"/{relative}/{domain}.crt", f"/{relative}/{domain}.key")
    return None


def _proxies(block: SiteBlock) -> list[tuple[Upstream, str, int]]:
    found: list[tuple[Upstream, str, int]] = []
    for entry in block.directives:
        if entry.name == "proxy" and len(entry.words) >= 3:
            for target in entry.words[2:]:
                upstream = Upstream.parse(target)
                if upstream is not None:
                    found.append((upstream, entry.words[1], entry.line))
    return found
