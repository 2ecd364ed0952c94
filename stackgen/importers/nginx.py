"""nginx site files (conf.d / sites-enabled), read with crossplane."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import crossplane  # type: ignore[import-untyped]

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
    files_in,
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

Directive = dict[str, Any]

# What a site file may hold at its top level (it is included inside `http {}`).
TOP_LEVEL: Final = frozenset(
    {
        "server",
        "upstream",
        "map",
        "geo",
        "include",
        "limit_req_zone",
        "limit_conn_zone",
        "proxy_cache_path",
        "log_format",
        "resolver",
        "http",
        "events",
        "user",
        "worker_processes",
        "pid",
        "error_log",
        "access_log",
    }
)
SOCKET_LOCATIONS: Final = frozenset({"socket", "embywebsocket"})

_FIXED: Final[dict[str, tuple[ReportAction, str]]] = {
    "ssl_dhparam": (ReportAction.DROPPED, reasons.DHPARAM),
    "ssl_stapling": (ReportAction.DROPPED, reasons.OCSP),
    "ssl_stapling_verify": (ReportAction.DROPPED, reasons.OCSP),
    "ssl_trusted_certificate": (ReportAction.DROPPED, reasons.OCSP),
    "ssl_prefer_server_ciphers": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "ssl_session_cache": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "ssl_session_timeout": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "ssl_session_tickets": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "ssl_ecdh_curve": (ReportAction.REPLACED, reasons.TLS_SETTINGS),
    "http2": (ReportAction.REPLACED, reasons.HTTP2),
    "proxy_buffering": (ReportAction.REPLACED, reasons.BUFFERING),
    "proxy_request_buffering": (ReportAction.REPLACED, reasons.BUFFERING),
    "proxy_read_timeout": (ReportAction.REPLACED, reasons.BUFFERING),
    "proxy_send_timeout": (ReportAction.REPLACED, reasons.BUFFERING),
    "proxy_http_version": (ReportAction.REPLACED, reasons.WEBSOCKET),
    "proxy_pass_request_headers": (ReportAction.DROPPED, reasons.DEFAULT_ON),
    "client_max_body_size": (ReportAction.REPLACED, reasons.BODY_SIZE),
    "access_log": (ReportAction.REPLACED, reasons.LOGS),
    "error_log": (ReportAction.REPLACED, reasons.LOGS),
    "server_tokens": (ReportAction.REPLACED, reasons.SERVER_TOKENS),
}


@dataclass
class Server:
    file: Path
    line: int
    names: list[str]
    block: list[Directive]
    upstreams: list[tuple[Upstream, str, int]] = field(default_factory=list)  # (up, location, line)


class NginxImporter(TextFileImporter):
    name: ClassVar[str] = "nginx"
    kind: ClassVar[ProxyKind] = "nginx"

    def files_to_detect(self, folder: Path) -> list[Path]:
        return files_in(folder, _is_site_file)

    def score(self, file: Path, text: str) -> float:
        return pattern_score(
            text,
            (r"(?m)^\s*server\s*\{", 0.5),
            (r"(?m)^\s*(proxy_pass|server_name|listen)\s+[^;]+;", 0.4),
        )

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        files = expand_folders(paths, _is_site_file)
        imp = Imported("nginx", files)
        servers: list[Server] = []
        upstream_blocks: dict[str, list[Upstream]] = {}
        for file in files:
            parsed = _parse_file(file)
            for directive in parsed:
                name = directive["directive"]
                if name == "upstream" and directive.get("args"):
                    upstream_blocks[directive["args"][0]] = [
                        u
                        for d in directive.get("block", [])
                        if d["directive"] == "server" and d.get("args")
                        for u in [Upstream.parse(d["args"][0])]
                        if u is not None
                    ]
                elif name == "server":
                    server_names = [
                        a
                        for d in directive.get("block", [])
                        if d["directive"] == "server_name"
                        for a in d["args"]
                    ]
                    servers.append(
                        Server(file, directive["line"], server_names, directive.get("block", []))
                    )
                elif name not in TOP_LEVEL:
                    raise InvalidInputError(
                        f"{file}:{directive['line']}: unexpected {name!r} at the top level: "
                        "expected an nginx site file (server blocks)"
                    )
        if not servers:
            raise InvalidInputError(f"{files[0]}: no server block: expected an nginx site file")
        for server in servers:
            _substitute(server.block, _variables(server.block))
            server.upstreams = list(_proxy_passes(server.block, "", upstream_blocks))
        sites = _group(servers)
        chosen = choose_site(
            [
                Site(
                    list(names),
                    group[0].file,
                    group[0].line,
                    [u for s in group for u, _, _ in s.upstreams],
                )
                for names, group in sites.items()
            ],
            jellyfin_url,
            ", ".join(str(f) for f in files),
            commented=first_commented(files, r"proxy_pass\b"),
        )
        for key, group in sites.items():
            if key != tuple(chosen.names):
                for server in group:
                    imp.add_other_site(
                        server.file, server.line, f"server {' '.join(key) or '(no name)'}"
                    )
        group = sites[tuple(chosen.names)]
        self._site(imp, group, jellyfin_url, upstream_blocks, root)
        finish(imp)
        return imp

    def _site(
        self,
        imp: Imported,
        group: list[Server],
        wanted: Upstream | None,
        upstream_blocks: dict[str, list[Upstream]],
        root: Path,
    ) -> None:
        # Not a name a certificate is issued for: the catch-all, wildcards and regexes.
        names = [n for n in group[0].names if n and n != "_" and not n.startswith(("~", "*", "."))]
        if names:
            imp.domain = names[0]
            line = next(
                (d["line"] for d in group[0].block if d["directive"] == "server_name"),
                group[0].line,
            )
            imp.domain_origin = (str(group[0].file), line)
        # The main Jellyfin location: the shortest proxying one that is not a socket path.
        jellyfin = [
            (u, loc, line)
            for s in group
            for u, loc, line in s.upstreams
            if u.is_jellyfin(wanted) and _last_segment(loc) not in SOCKET_LOCATIONS
        ] or [
            (u, loc, line) for s in group for u, loc, line in s.upstreams if u.is_jellyfin(wanted)
        ]
        upstream, main_location, main_line = min(jellyfin, key=lambda t: len(t[1]))
        has_tls = False
        cert: tuple[str, int] | None = None
        key: str | None = None
        for server in group:
            for d in server.block:
                if d["directive"] == "listen" and "ssl" in d["args"]:
                    has_tls = True
                if d["directive"] == "ssl_certificate":
                    cert = (d["args"][0], d["line"])
                if d["directive"] == "ssl_certificate_key":
                    key = d["args"][0]
        for server in group:
            self._walk(
                imp, server.file, server.block, "", upstream, main_location, main_line, wanted
            )
        set_upstream(
            imp, upstream, group[0].file, main_line, f"proxy_pass (location {main_location or '/'})"
        )
        # nginx replaces the location's prefix only when proxy_pass has a URI of its own.
        strips = upstream.path != "" and upstream.path.rstrip("/") != main_location.rstrip("/")
        set_subpath(
            imp, main_location, strips, group[0].file, main_line, f"location {main_location}"
        )
        if cert and key:
            use_certificate_files(
                imp, cert[0], key, root, group[0].file, cert[1], "ssl_certificate"
            )
        elif has_tls:
            imp.tls_mode = TlsMode.ACME
        else:
            imp.tls_mode = TlsMode.ACME
            imp.add(
                group[0].file,
                group[0].line,
                "listen (no TLS)",
                ReportAction.REPLACED,
                "the old site served plain HTTP: stackgen serves HTTPS with a certificate it "
                "obtains (tls.mode 'acme') and redirects HTTP to it",
            )

    def _walk(
        self,
        imp: Imported,
        file: Path,
        block: list[Directive],
        location: str,
        upstream: Upstream,
        main_location: str,
        main_line: int,
        wanted: Upstream | None,
    ) -> None:
        for d in block:
            name, args, line = d["directive"], d.get("args", []), d["line"]
            shown = f"{name} {' '.join(args)}".strip()
            if name == "location":
                path = args[-1] if args else ""
                segment = _last_segment(path)
                proxied = [u for u, _, _ in _proxy_passes(d.get("block", []), path, {})]
                if segment == "embywebsocket":
                    imp.add(file, line, shown, ReportAction.DROPPED, reasons.EMBY_WEBSOCKET)
                elif segment == "socket":
                    imp.add(file, line, shown, ReportAction.REPLACED, reasons.WEBSOCKET)
                elif path == main_location:
                    self._walk(
                        imp,
                        file,
                        d.get("block", []),
                        path,
                        upstream,
                        main_location,
                        main_line,
                        wanted,
                    )
                elif main_location and path.rstrip("/") == main_location.rstrip("/"):
                    imp.add(file, line, shown, ReportAction.REPLACED, reasons.SUBPATH_REDIRECT)
                elif proxied and any(u.is_jellyfin(wanted) for u in proxied):
                    imp.add(
                        file,
                        line,
                        shown,
                        ReportAction.REPLACED,
                        "stackgen sends every path of the site to Jellyfin",
                    )
                else:
                    imp.add(
                        file,
                        line,
                        shown,
                        ReportAction.SKIPPED,
                        f"{reasons.NOT_JELLYFIN}: this location is not proxied to Jellyfin",
                    )
                continue
            if name == "proxy_pass":
                if location != main_location:
                    imp.add(file, line, shown, ReportAction.REPLACED, reasons.WEBSOCKET)
                continue  # the main one is reported by set_upstream
            if name == "server_name":
                extra = args[1:]
                imp.add(
                    file,
                    line,
                    shown,
                    ReportAction.TRANSLATED,
                    f"domain {args[0]!r}" if args else "",
                )
                if extra:
                    imp.add(
                        file,
                        line,
                        shown,
                        ReportAction.DROPPED,
                        f"stackgen serves one name; {' '.join(extra)} not carried over",
                    )
                continue
            if name == "listen" and args:
                listen_port(imp, args[0], "ssl" in args, file, line, shown)
            elif name == "return" and args and args[0] in ("301", "302", "307", "308"):
                imp.add(file, line, shown, ReportAction.REPLACED, reasons.REDIRECT)
            elif name in ("ssl_certificate", "ssl_certificate_key"):
                continue  # reported with the TLS decision
            elif name == "set":
                imp.add(file, line, shown, ReportAction.TRANSLATED, "resolved in proxy_pass")
            elif name == "ssl_protocols":
                imp.add(file, line, shown, *protocols_verdict(" ".join(args)))
            elif name == "ssl_ciphers":
                imp.add(file, line, shown, *ciphers_verdict(" ".join(args)))
            elif name == "include" and args and "letsencrypt" in args[0]:
                imp.add(
                    file,
                    line,
                    shown,
                    ReportAction.REPLACED,
                    f"certbot's TLS options file: {reasons.TLS_SETTINGS}",
                )
            elif name == "add_header" and args:
                imp.add(file, line, shown, *header_verdict(args[0], " ".join(args[1:])))
            elif name == "proxy_set_header" and args:
                imp.add(file, line, shown, *forwarded_header_verdict(args[0]))
            elif name in _FIXED:
                imp.add(file, line, shown, *_FIXED[name])
            elif name in ("root", "index", "try_files", "autoindex"):
                imp.add(
                    file,
                    line,
                    shown,
                    ReportAction.SKIPPED,
                    f"{reasons.NOT_JELLYFIN}: static content",
                )
            else:
                imp.add(file, line, shown, ReportAction.DROPPED, reasons.UNSUPPORTED)


def _is_site_file(file: Path) -> bool:
    return not file.name.startswith(".")


def _parse_file(file: Path) -> list[Directive]:
    read_text(file)  # a clear error for binary or unreadable files first
    _bounded_depth(file)
    # single: an `include` of another file (certbot's options) is reported, not followed;
    # no context checks: a site file is parsed outside the `http {}` that includes it.
    payload = crossplane.parse(
        str(file), single=True, check_ctx=False, check_args=False, catch_errors=True
    )
    for error in payload.get("errors", []):
        line = error.get("line")
        message = str(error.get("error", "syntax error"))
        message = re.sub(r"\s+in \S+:\d+$", "", message)
        raise InvalidInputError(f"{file}:{line}: {message}: expected nginx syntax")
    config = payload["config"][0]
    return list(config.get("parsed", []))


def _bounded_depth(file: Path) -> None:
    """crossplane builds blocks recursively: refuse deep nesting by name, before it does."""
    depth = 0
    try:
        for token, line, quoted in crossplane.lex(str(file)):
            if quoted:
                continue
            depth += 1 if token == "{" else -1 if token == "}" else 0
            if depth > inputs.MAX_NESTING:
                raise InvalidInputError(
                    f"{file}:{line}: blocks nested deeper than {inputs.MAX_NESTING} levels"
                )
    except crossplane.errors.NgxParserBaseException:
        return  # a syntax error: crossplane.parse reports it with its line


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _variables(block: list[Directive]) -> dict[str, str]:
    """`set $jellyfin 127.0.0.1;` (the newer docs' form) anywhere in the server block."""
    found: dict[str, str] = {}
    for d in block:
        if d["directive"] == "set" and len(d.get("args", [])) == 2:
            found.setdefault(d["args"][0].lstrip("$"), d["args"][1])
        found.update({k: v for k, v in _variables(d.get("block", [])).items() if k not in found})
    return found


def _substitute(block: list[Directive], variables: dict[str, str]) -> None:
    """proxy_pass with those variables written out; nginx's own ($host, ...) stay."""
    for d in block:
        if d["directive"] == "proxy_pass" and d.get("args"):
            d["args"] = [
                _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), d["args"][0])
            ]
        _substitute(d.get("block", []), variables)


def _proxy_passes(
    block: list[Directive], location: str, upstream_blocks: dict[str, list[Upstream]]
) -> list[tuple[Upstream, str, int]]:
    found: list[tuple[Upstream, str, int]] = []
    for d in block:
        if d["directive"] == "location":
            found += _proxy_passes(
                d.get("block", []), d["args"][-1] if d.get("args") else "", upstream_blocks
            )
        elif d["directive"] == "proxy_pass" and d.get("args"):
            upstream = Upstream.parse(d["args"][0])
            if upstream is None:
                continue
            named = upstream_blocks.get(upstream.host)
            if named:
                # `proxy_pass http://jellyfin_backend;` names an upstream block.
                upstream = Upstream(upstream.scheme, named[0].host, named[0].port, upstream.path)
            found.append((upstream, location, d["line"]))
    return found


def _group(servers: list[Server]) -> dict[tuple[str, ...], list[Server]]:
    """Servers sharing names are one site (its HTTP redirect server and its HTTPS server)."""
    groups: dict[tuple[str, ...], list[Server]] = {}
    for server in servers:
        groups.setdefault(tuple(server.names), []).append(server)
    return groups


def _last_segment(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1].lower()
