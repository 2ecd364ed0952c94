"""Traefik v1.7 as the old docs set it up: `traefik.toml` (tomllib), `docker-compose.yml` with
`traefik.*` labels (PyYAML), and `acme.json`, in one folder or given one by one."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml

from stackgen import inputs
from stackgen.errors import InvalidInputError
from stackgen.importers import reasons
from stackgen.importers.base import (
    Imported,
    Importer,
    ReportAction,
    Site,
    Upstream,
    choose_site,
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
    use_certificate_files,
)
from stackgen.importers.sources import toml_lines, yaml_lines
from stackgen.models import ProxyKind, TlsMode

TOML_NAMES: Final = ("traefik.toml",)
COMPOSE_NAMES: Final = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
ACME_NAMES: Final = ("acme.json",)

# v1 frontend header options -> what stackgen does instead.
_HEADERS: Final[dict[str, tuple[ReportAction, str]]] = {
    "sslredirect": (ReportAction.REPLACED, f"removed in Traefik v2; {reasons.REDIRECT}"),
    "ssltemporaryredirect": (ReportAction.REPLACED, f"removed in Traefik v2; {reasons.REDIRECT}"),
    "sslhost": (ReportAction.REPLACED, f"removed in Traefik v2; {reasons.REDIRECT}"),
    "sslforcehost": (ReportAction.REPLACED, f"removed in Traefik v2; {reasons.REDIRECT}"),
    "sslproxyheaders": (ReportAction.REPLACED, reasons.FORWARDED),
    "stsseconds": (ReportAction.REPLACED, reasons.HSTS),
    "stsincludesubdomains": (ReportAction.REPLACED, reasons.HSTS),
    "stspreload": (ReportAction.REPLACED, reasons.HSTS),
    "forcestsheader": (ReportAction.REPLACED, reasons.HSTS),
    "framedeny": (ReportAction.DROPPED, reasons.FRAME),
    "customframeoptionsvalue": (ReportAction.DROPPED, reasons.FRAME),
    "contenttypenosniff": (ReportAction.REPLACED, reasons.NOSNIFF),
    "browserxssfilter": (ReportAction.DROPPED, reasons.XSS),
    "custombrowserxssvalue": (ReportAction.DROPPED, reasons.XSS),
    "contentsecuritypolicy": (ReportAction.REPLACED, reasons.CSP),
    "referrerpolicy": (ReportAction.REPLACED, reasons.REFERRER),
    "featurepolicy": (ReportAction.REPLACED, "stackgen sends its own Permissions-Policy"),
    "isdevelopment": (ReportAction.DROPPED, reasons.UNSUPPORTED),
}


@dataclass
class Frontend:
    name: str
    file: Path
    line: int | None
    rule: str
    upstreams: list[Upstream]
    # (directive, line, value) of everything else the frontend says.
    settings: list[tuple[str, int | None, Any]] = field(default_factory=list)
    container: str | None = None

    @property
    def hosts(self) -> list[str]:
        return _rule_values(self.rule, ("host",))


class TraefikV1Importer(Importer):
    name: ClassVar[str] = "traefik-v1"
    kind: ClassVar[ProxyKind] = "traefik"

    def detect(self, path: Path) -> float:
        if path.is_dir():
            return (
                1.0
                if any((path / n).is_file() for n in TOML_NAMES)
                else (
                    0.9
                    if any(
                        self.detect(path / n) >= 0.9 for n in COMPOSE_NAMES if (path / n).is_file()
                    )
                    else 0.0
                )
            )
        name = path.name.lower()
        if name in ACME_NAMES:
            return 0.9
        text = inputs.peek_text(path)
        if text is None:
            return 0.0
        if name.endswith(".toml") and re.search(
            r"(?m)^\s*\[(entryPoints|frontends|backends|acme|docker)\b", text
        ):
            return 1.0
        if name.endswith((".yml", ".yaml")) and re.search(
            r"traefik\.(frontend|port|enable|backend)", text
        ):
            return 0.9
        return 0.0

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        toml_file, compose_file, acme_file = _files(paths)
        imp = Imported("traefik", [f for f in (toml_file, compose_file, acme_file) if f])
        frontends: list[Frontend] = []
        static: dict[str, Any] = {}
        lines: dict[tuple[str, ...], int] = {}
        if toml_file:
            static, text = _read_toml(toml_file, "traefik.toml")
            lines = toml_lines(text)
            frontends += _toml_frontends(toml_file, static, lines)
            rules = _file_provider(toml_file, static, root)
            if rules is not None:
                imp.files.append(rules)
                dynamic, rules_text = _read_toml(rules, "rules file")
                frontends += _toml_frontends(rules, dynamic, toml_lines(rules_text))
        host_network: set[str] = set()
        if compose_file:
            label_frontends, host_network = _compose_frontends(compose_file, imp)
            frontends += label_frontends
        if not frontends:
            raise InvalidInputError(
                f"{', '.join(str(f) for f in imp.files)}: no frontend and no traefik.* labels: "
                "expected [frontends]/[backends] in traefik.toml or labels in docker-compose.yml"
            )
        site = choose_site(
            [Site(f.hosts, f.file, f.line or 0, f.upstreams) for f in frontends],
            jellyfin_url,
            ", ".join(str(f) for f in imp.files),
        )
        chosen = next(
            f for f in frontends if f.hosts == site.names and f.upstreams == site.upstreams
        )
        for other in frontends:
            if other is not chosen:
                imp.add_other_site(other.file, other.line, f"frontend {other.name} ({other.rule})")
        self._frontend(imp, chosen, jellyfin_url, host_network)
        if toml_file:
            self._static(imp, toml_file, static, lines, root)
        if acme_file:
            imp.acme_store_file = acme_file
        elif imp.tls_mode is not None and imp.tls_mode.is_acme:
            imp.add(
                "(acme.json)",
                None,
                "acme.json",
                ReportAction.SKIPPED,
                "not given: the new stack obtains its certificate (pass the folder or the "
                "file to keep the old one)",
            )
        finish(imp)
        return imp

    def _frontend(
        self, imp: Imported, fe: Frontend, wanted: Upstream | None, host_network: set[str]
    ) -> None:
        hosts = fe.hosts
        if hosts:
            imp.domain = hosts[0]
            imp.domain_origin = (str(fe.file), fe.line)
        imp.add(
            fe.file,
            fe.line,
            f"rule {fe.rule}",
            ReportAction.TRANSLATED,
            f"domain {hosts[0]!r}" if hosts else "no Host in the rule",
        )
        if len(hosts) > 1:
            imp.add(
                fe.file,
                fe.line,
                f"rule {fe.rule}",
                ReportAction.DROPPED,
                f"stackgen serves one name; {' '.join(hosts[1:])} not carried over",
            )
        upstream = next(u for u in fe.upstreams if u.is_jellyfin(wanted))
        if fe.container and fe.container not in host_network:
            # A container on a Docker network: stackgen's own `jellyfin` service replaces it.
            upstream = Upstream("http", "jellyfin", upstream.port)
        set_upstream(imp, upstream, fe.file, fe.line, f"backend {upstream.authority}")
        strip = _rule_values(fe.rule, ("pathprefixstrip", "pathstrip"))
        keep = _rule_values(fe.rule, ("pathprefix", "path"))
        if strip or keep:
            prefix = (strip or keep)[0]
            set_subpath(imp, prefix, bool(strip), fe.file, fe.line, f"rule {fe.rule}")
        for directive, line, value in fe.settings:
            key = directive.rsplit(".", 1)[-1].lower()
            if key in _HEADERS:
                imp.add(fe.file, line, directive, *_HEADERS[key])
            elif key == "customresponseheaders":
                for name, header_value in _header_pairs(value):
                    imp.add(
                        fe.file, line, f"{directive} {name}", *header_verdict(name, header_value)
                    )
            elif key == "customrequestheaders":
                for name, _ in _header_pairs(value):
                    imp.add(fe.file, line, f"{directive} {name}", *forwarded_header_verdict(name))
            elif key == "passhostheader":
                imp.add(fe.file, line, directive, ReportAction.REPLACED, reasons.FORWARDED)
            elif key in ("entrypoints",):
                imp.add(
                    fe.file,
                    line,
                    directive,
                    ReportAction.REPLACED,
                    "stackgen's router listens on its HTTPS entry point 'websecure'",
                )
            elif key in ("backend", "port", "enable", "network", "priority"):
                imp.add(
                    fe.file,
                    line,
                    directive,
                    ReportAction.TRANSLATED,
                    "folded into the route to Jellyfin",
                )
            else:
                imp.add(fe.file, line, directive, ReportAction.DROPPED, reasons.UNSUPPORTED)

    def _static(
        self,
        imp: Imported,
        file: Path,
        static: dict[str, Any],
        lines: dict[tuple[str, ...], int],
        root: Path,
    ) -> None:
        def at(*path: str) -> int | None:
            return lines.get(path)

        for key in ("logLevel", "debug", "checkNewVersion", "sendAnonymousUsage"):
            if key in static:
                imp.add(
                    file,
                    at(key),
                    key,
                    ReportAction.REPLACED,
                    "stackgen's own log settings (JSON access log without request paths)",
                )
        if "defaultEntryPoints" in static:
            imp.add(
                file,
                at("defaultEntryPoints"),
                "defaultEntryPoints",
                ReportAction.REPLACED,
                "stackgen's entry points 'web' (:80, redirecting) and 'websecure' (:443)",
            )
        for ep_name, ep in (static.get("entryPoints") or {}).items():
            base = ("entryPoints", ep_name)
            if "redirect" in ep:
                imp.add(
                    file,
                    at(*base, "redirect"),
                    f"entryPoints.{ep_name}.redirect",
                    ReportAction.REPLACED,
                    reasons.REDIRECT,
                )
            if "address" in ep:
                listen_port(
                    imp,
                    str(ep["address"]),
                    "tls" in ep,
                    file,
                    at(*base, "address"),
                    f"entryPoints.{ep_name}.address",
                )
            tls = ep.get("tls")
            if isinstance(tls, dict):
                if "minVersion" in tls:
                    imp.add(
                        file,
                        at(*base, "tls", "minVersion"),
                        f"entryPoints.{ep_name}.tls.minVersion",
                        *protocols_verdict(str(tls["minVersion"])),
                    )
                if "cipherSuites" in tls:
                    imp.add(
                        file,
                        at(*base, "tls", "cipherSuites"),
                        f"entryPoints.{ep_name}.tls.cipherSuites",
                        *ciphers_verdict(" ".join(map(str, tls["cipherSuites"]))),
                    )
                for cert in tls.get("certificates") or []:
                    if isinstance(cert, dict) and "certFile" in cert and "keyFile" in cert:
                        use_certificate_files(
                            imp,
                            str(cert["certFile"]),
                            str(cert["keyFile"]),
                            root,
                            file,
                            at(*base, "tls", "certificates"),
                            "tls.certificates",
                        )
        for section, reason in (
            ("retry", reasons.UNSUPPORTED),
            (
                "api",
                "the dashboard is not part of the Jellyfin stack "
                "(the docs exposed it without authentication)",
            ),
            ("web", "the dashboard is not part of the Jellyfin stack"),
            ("docker", "stackgen routes with the file provider: no Docker socket in the proxy"),
            ("file", "stackgen writes its own dynamic file (traefik/dynamic.toml)"),
        ):
            if section in static:
                action = (
                    ReportAction.REPLACED if section in ("docker", "file") else ReportAction.DROPPED
                )
                imp.add(file, at(section), f"[{section}]", action, reason)
        acme = static.get("acme")
        if isinstance(acme, dict):
            self._acme(imp, file, acme, lines)
        elif imp.tls_mode is None:
            imp.tls_mode = TlsMode.ACME

    def _acme(
        self, imp: Imported, file: Path, acme: dict[str, Any], lines: dict[tuple[str, ...], int]
    ) -> None:
        def at(*path: str) -> int | None:
            return lines.get(("acme", *path))

        if "email" in acme:
            imp.email = str(acme["email"])
            imp.add(
                file, at("email"), "acme.email", ReportAction.TRANSLATED, "email (the ACME account)"
            )
        if "caServer" in acme:
            imp.ca_url = str(acme["caServer"])
            imp.add(file, at("caServer"), "acme.caServer", ReportAction.TRANSLATED, "tls.ca_url")
        if "storage" in acme:
            imp.add(
                file,
                at("storage"),
                "acme.storage",
                ReportAction.TRANSLATED,
                "its account and certificates move to the new resolver's store",
            )
        for key in ("entryPoint", "onHostRule", "onDemand", "acmeLogging", "KeyType"):
            if key in acme:
                imp.add(
                    file,
                    at(key),
                    f"acme.{key}",
                    ReportAction.REPLACED,
                    "stackgen's resolver 'acme' (EC256 keys) is used by the Jellyfin router",
                )
        if isinstance(acme.get("dnsChallenge"), dict):
            dns = acme["dnsChallenge"]
            imp.tls_mode = TlsMode.ACME_DNS
            imp.dns_provider = str(dns.get("provider", "")) or None
            imp.add(
                file,
                at("dnsChallenge"),
                "acme.dnsChallenge",
                ReportAction.TRANSLATED,
                f"tls.mode 'acme-dns', provider {imp.dns_provider!r}; name its credential "
                "variables in tls.dns_env and fill them in .env",
            )
            for key in dns:
                if key != "provider":
                    imp.add(
                        file,
                        at("dnsChallenge", key),
                        f"acme.dnsChallenge.{key}",
                        ReportAction.DROPPED,
                        reasons.UNSUPPORTED,
                    )
        elif "tlsChallenge" in acme:
            imp.tls_mode = TlsMode.ACME_TLS_ALPN
            imp.add(
                file,
                at("tlsChallenge"),
                "acme.tlsChallenge",
                ReportAction.TRANSLATED,
                "tls.mode 'acme-tls-alpn'",
            )
        else:
            imp.tls_mode = TlsMode.ACME
            if "httpChallenge" in acme:
                imp.add(
                    file,
                    at("httpChallenge"),
                    "acme.httpChallenge",
                    ReportAction.TRANSLATED,
                    "tls.mode 'acme' (HTTP-01 on the 'web' entry point)",
                )
        for index, entry in enumerate(acme.get("domains") or []):
            if not isinstance(entry, dict):
                continue
            names = [str(entry.get("main", "")), *map(str, entry.get("sans") or [])]
            line = at("domains")
            for name in filter(None, names):
                if name.startswith("*."):
                    imp.wildcard_domains.append(name)
                else:
                    imp.add(
                        file,
                        line,
                        f"acme.domains[{index}] {name}",
                        ReportAction.DROPPED,
                        "stackgen's certificate names the Jellyfin domain only",
                    )


def _files(paths: Sequence[Path]) -> tuple[Path | None, Path | None, Path | None]:
    toml_file = compose_file = acme_file = None
    for path in paths:
        if path.is_dir():
            found = _files(
                [
                    path / n
                    for n in (*TOML_NAMES, *COMPOSE_NAMES, *ACME_NAMES)
                    if (path / n).is_file()
                ]
            )
            toml_file = toml_file or found[0]
            compose_file = compose_file or found[1]
            acme_file = acme_file or found[2]
        elif path.name.lower() in ACME_NAMES or path.suffix == ".json":
            acme_file = path
        elif path.suffix in (".yml", ".yaml"):
            compose_file = path
        else:
            toml_file = path
    return toml_file, compose_file, acme_file


def _read_toml(file: Path, what: str) -> tuple[dict[str, Any], str]:
    """The parsed TOML of `file` and its text (for `toml_lines`); `what` names it in the error."""
    text = read_text(file)
    try:
        with inputs.bounded_nesting(file, f"TOML (Traefik v1.7 {what})"):
            return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(f"{file}: {error}: expected TOML (Traefik v1.7 {what})") from None


def _file_provider(toml_file: Path, static: dict[str, Any], root: Path) -> Path | None:
    """`[file] filename = ...`: the rules file, beside traefik.toml (where the docs' compose
    file mounted it from) or at its path on the old server."""
    section = static.get("file")
    if not isinstance(section, dict) or not section.get("filename"):
        return None
    name = str(section["filename"])
    for candidate in (toml_file.parent / Path(name).name, under_root(root, name)):
        if candidate.is_file():
            return candidate
    raise InvalidInputError(
        f"{toml_file}: [file] filename {name!r} not found beside it or under --root {root}: "
        "expected the rules file with the frontends"
    )


def _toml_frontends(
    file: Path, static: dict[str, Any], lines: dict[tuple[str, ...], int]
) -> list[Frontend]:
    backends: dict[str, list[Upstream]] = {}
    for name, backend in (static.get("backends") or {}).items():
        servers = (backend or {}).get("servers") or {}
        backends[name] = [
            u
            for server in servers.values()
            if isinstance(server, dict)
            for u in [Upstream.parse(str(server.get("url", "")))]
            if u is not None
        ]
    frontends: list[Frontend] = []
    for name, fe in (static.get("frontends") or {}).items():
        if not isinstance(fe, dict):
            continue
        routes = fe.get("routes") or {}
        rule = ";".join(str(r.get("rule", "")) for r in routes.values() if isinstance(r, dict))
        base = ("frontends", name)
        settings: list[tuple[str, int | None, Any]] = []
        for key, value in fe.items():
            if key == "routes":
                continue
            if key == "headers" and isinstance(value, dict):
                for header_key, header_value in value.items():
                    settings.append(
                        (
                            f"headers.{header_key}",
                            lines.get((*base, "headers", header_key)),
                            header_value,
                        )
                    )
            else:
                settings.append((key, lines.get((*base, key)), value))
        frontends.append(
            Frontend(
                name,
                file,
                lines.get(base),
                rule,
                backends.get(str(fe.get("backend", "")), []),
                settings,
            )
        )
    return frontends


def _compose_frontends(file: Path, imp: Imported) -> tuple[list[Frontend], set[str]]:
    text = read_text(file)
    try:
        with inputs.bounded_nesting(file, "a docker-compose.yml"):
            node, data = inputs.yaml_tree(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise InvalidInputError(f"{where}: {problem}: expected a docker-compose.yml") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise InvalidInputError(f"{file}:1: expected a docker-compose.yml with services")
    lines = yaml_lines(node)
    frontends: list[Frontend] = []
    host_network: set[str] = set()
    for service, spec in data["services"].items():
        if not isinstance(spec, dict):
            continue
        if spec.get("network_mode") == "host":
            host_network.add(service)
        labels = _labels(spec.get("labels"))
        image = str(spec.get("image", ""))
        if image.startswith("traefik"):
            imp.add(
                file,
                lines.get(("services", service)),
                f"service {service} ({image})",
                ReportAction.REPLACED,
                "stackgen renders its own Traefik v3 service (no Docker socket)",
            )
            for index, key in enumerate(labels):
                imp.add(
                    file,
                    _label_line(lines, service, key, index),
                    f"label {key}",
                    ReportAction.SKIPPED,
                    "the Traefik dashboard's own route: not part of the Jellyfin stack",
                )
            continue
        if "jellyfin" in image or service == "jellyfin":
            imp.add(
                file,
                lines.get(("services", service)),
                f"service {service} ({image})",
                ReportAction.REPLACED,
                "stackgen renders its own Jellyfin service; mount your config, cache and media "
                "folders in stackgen.toml (jellyfin.config_dir, cache_dir, media)",
            )
        if labels.get("traefik.enable", "true").lower() == "false" or not any(
            k.startswith("traefik.") for k in labels
        ):
            continue
        port = _label_port(file, lines, service, labels)
        host = "127.0.0.1" if service in host_network else service
        rule = labels.get("traefik.frontend.rule", "")
        settings = [
            (
                key.removeprefix("traefik.frontend.").removeprefix("traefik."),
                _label_line(lines, service, key, index),
                value,
            )
            for index, (key, value) in enumerate(labels.items())
            if key != "traefik.frontend.rule"
        ]
        frontends.append(
            Frontend(
                service,
                file,
                _label_line(
                    lines,
                    service,
                    "traefik.frontend.rule",
                    list(labels).index("traefik.frontend.rule") if rule else 0,
                ),
                rule,
                [Upstream("http", host, port)],
                settings,
                container=service,
            )
        )
    return frontends, host_network


def _label_port(
    file: Path, lines: dict[tuple[Any, ...], int], service: str, labels: dict[str, str]
) -> int:
    raw = labels.get("traefik.port", "80").strip()
    # ASCII digits only: str.isdigit() also takes '²', which int() then refuses.
    if not re.fullmatch(r"[0-9]{1,5}", raw) or not 1 <= int(raw) <= 65535:
        index = list(labels).index("traefik.port")
        line = _label_line(lines, service, "traefik.port", index)
        where = f"{file}:{line}" if line else str(file)
        raise InvalidInputError(f"{where}: traefik.port {raw!r}: expected a port (1-65535)")
    return int(raw)


def _label_line(
    lines: dict[tuple[Any, ...], int], service: str, key: str, index: int
) -> int | None:
    """Labels are a mapping (line of the key) or a list of `key=value` (line of the item)."""
    base = ("services", service, "labels")
    return lines.get((*base, key)) or lines.get((*base, index)) or lines.get(base)


def _labels(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {k: v for k, _, v in pairs}
    return {}


def _rule_values(rule: str, names: tuple[str, ...]) -> list[str]:
    """`Host:a.com,b.com;PathPrefix:/jellyfin` -> the values of the named matchers."""
    values: list[str] = []
    for part in rule.split(";"):
        name, sep, rest = part.partition(":")
        if sep and name.strip().lower() in names:
            values += [v.strip() for v in rest.split(",") if v.strip()]
    return values


def _header_pairs(value: Any) -> list[tuple[str, str]]:
    """v1 wrote custom headers as a table, or in labels as `Name:value||Name:value`."""
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    pairs = []
    for item in str(value).split("||"):
        name, _, rest = item.partition(":")
        if name.strip():
            pairs.append((name.strip(), rest.strip()))
    return pairs
