"""From an `Imported` to a stack: the same `stackgen.toml` data `init` builds, the same
config builder, renderer and writer. Certificates the old proxy served come along as state
files of the new stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackgen.config_file import build_config
from stackgen.errors import ConflictError, InvalidInputError
from stackgen.importers.base import Imported, ReportAction, ReportEntry
from stackgen.importers.certs import (
    IMPORTED_CERT,
    IMPORTED_KEY,
    certificate_summary,
    read_acme_json,
    split_combined_pem,
)
from stackgen.importers.common import jellyfin_port
from stackgen.models import ProxyKind, StackConfig, TlsMode, default_run_as, validate_domain
from stackgen.parts import Access
from stackgen.probe import Report
from stackgen.proxies import get_proxy
from stackgen.stack import RenderOutcome, Stack, init_stack
from stackgen.writer import Action, PlannedFile

TRAEFIK_ACME = "traefik/acme.json"


@dataclass(frozen=True)
class ImportOutcome:
    imported: Imported
    config: StackConfig
    render: RenderOutcome
    # `stackgen verify`'s report on the old stack (--verify-old).
    old_report: Report | None = None

    @property
    def report(self) -> list[ReportEntry]:
        return self.imported.report

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.imported.source,
            "source_files": [str(f) for f in self.imported.files],
            "proxy": self.config.proxy,
            "domain": self.config.domain,
            "subpath": self.config.subpath,
            "tls_mode": self.config.tls.mode.value,
            "stack_dir": str(self.render.plan.stack_dir),
            "written": self.render.written,
            "report": [entry.to_json() for entry in self.report],
            "files": self.render.to_json()["files"],
            "verify_old": self.old_report.to_json() if self.old_report else None,
        }


def build_stack(
    imp: Imported,
    stack_dir: Path,
    *,
    to: ProxyKind | None,
    email: str | None,
    dry_run: bool,
    extra_state: Sequence[PlannedFile] = (),
) -> ImportOutcome:
    proxy = to or imp.source
    if imp.domain is None:
        raise InvalidInputError(
            f"{', '.join(str(f) for f in imp.files)}: no domain name for the Jellyfin site: "
            "expected a server name (nginx server_name, Apache ServerName, a Host rule, ...)"
        )
    try:
        domain = validate_domain(imp.domain)
    except ValueError as error:
        file, line = imp.domain_origin
        where = f"{file}:{line}" if line else file
        raise InvalidInputError(f"{where}: {error}") from None
    tls: dict[str, Any] = {}
    state: list[PlannedFile] = list(extra_state)
    mode = _certificates(imp, proxy, domain, tls, state)
    supported = get_proxy(proxy).tls_modes
    if mode not in supported:
        fallback = TlsMode.ACME
        why = (
            " (DNS-01 needs a provider plugin its image lacks)" if mode is TlsMode.ACME_DNS else ""
        )
        imp.add(
            "(TLS)",
            None,
            f"tls.mode {mode.value}",
            ReportAction.REPLACED,
            f"stackgen's {proxy} stack does not offer {mode.value!r}{why}: it obtains "
            "the certificate with HTTP-01 instead (tls.mode 'acme')",
        )
        mode = fallback
    if mode is TlsMode.ACME_DNS and imp.dns_provider:
        tls["dns_provider"] = imp.dns_provider
    tls["mode"] = mode.value
    if imp.ca_url:
        tls["ca_url"] = imp.ca_url
    data: dict[str, Any] = {
        "proxy": proxy,
        "domain": domain,
        "subpath": imp.subpath,
        "run_as": default_run_as(),
        "tls": tls,
        "jellyfin": _jellyfin(imp),
    }
    ports = {
        key: value
        for key, value in (("http", imp.http_port), ("https", imp.https_port))
        if value is not None
    }
    if ports:
        data["ports"] = ports
    address = email or imp.email
    if address:
        data["email"] = address
    elif mode.is_acme:
        raise InvalidInputError(
            "the old configuration names no ACME account email and the new stack obtains "
            "certificates: pass --email"
        )
    # Certificate files written by this import do not exist yet: their presence is this
    # module's own doing, the paths the old proxy named were checked when they were read.
    config = build_config(data, stack_dir, check_paths=False)
    outcome = init_stack(
        Stack(config, stack_dir),
        force=False,
        dry_run=True,
        state=state,
        instead="import into an empty folder",
    )
    given = {f.path for f in state}
    kept = [
        v.file.path
        for v in outcome.plan.verdicts
        if v.file.path in given and v.action is Action.KEEP
    ]
    if kept:
        raise ConflictError(
            f"{stack_dir / kept[0]} exists: the imported certificates would not be written; "
            "import into an empty folder"
        )
    if not dry_run:
        outcome = init_stack(Stack(config, stack_dir), force=False, dry_run=False, state=state)
    return ImportOutcome(imp, config, outcome)


def _jellyfin(imp: Imported) -> dict[str, Any]:
    if imp.upstream is None:
        raise InvalidInputError(
            f"{', '.join(str(f) for f in imp.files)}: Jellyfin's upstream was not found; "
            "name it with --jellyfin-url http://HOST:PORT"
        )
    return {"network_mode": imp.upstream.network_mode.value, "port": jellyfin_port(imp.upstream)}


def _certificates(
    imp: Imported, proxy: ProxyKind, domain: str, tls: dict[str, Any], state: list[PlannedFile]
) -> TlsMode:
    """Which TLS mode the new stack uses, and the certificate files it starts with."""
    mode = imp.tls_mode or TlsMode.ACME
    for wildcard in imp.wildcard_domains:
        imp.add(
            "(TLS)",
            None,
            f"domain {wildcard}",
            ReportAction.DROPPED,
            f"stackgen's certificate names {domain} only; a kept certificate that covers it "
            "is still served",
        )
    if imp.acme_store_file is not None:
        store = read_acme_json(imp.acme_store_file)
        where = str(imp.acme_store_file)
        if not store.certificates:
            imp.add(
                where,
                None,
                "acme.json",
                ReportAction.SKIPPED,
                "holds no certificate: the new stack obtains one",
            )
            return mode
        current = store.for_domain(domain)
        if proxy == "traefik":
            # Traefik writes it: the containers' user owns it.
            state.append(
                PlannedFile(TRAEFIK_ACME, store.to_v3(), 0o600, state=True, access=Access.WRITTEN)
            )
            detail = (
                f"; serves {certificate_summary(current.chain_pem)}"
                if current
                else (f"; none covers {domain}, so the new resolver obtains one")
            )
            imp.add(
                where,
                None,
                "acme.json",
                ReportAction.TRANSLATED,
                f"account and {len(store.certificates)} certificate(s) kept in {TRAEFIK_ACME} "
                f"(Traefik v3 layout, resolver 'acme', mode 0600){detail}",
            )
            return mode
        if current is None:
            imp.add(
                where,
                None,
                "acme.json",
                ReportAction.SKIPPED,
                f"no certificate in it covers {domain}: the new stack obtains one",
            )
            return mode
        _extracted(tls, state, current.chain_pem, current.key_pem)
        imp.add(
            where,
            None,
            "acme.json",
            ReportAction.TRANSLATED,
            f"certificate for {domain} ({certificate_summary(current.chain_pem)}) kept as "
            f"{IMPORTED_CERT} and {IMPORTED_KEY} (0600), tls.mode 'files': {proxy} has "
            "no Traefik store; before it expires switch to tls.mode 'acme' and `stackgen render`",
        )
        return TlsMode.FILES
    if imp.combined_pem is not None:
        chain, key = split_combined_pem(imp.combined_pem)
        _extracted(tls, state, chain, key)
        imp.add(
            str(imp.combined_pem),
            None,
            "crt",
            ReportAction.TRANSLATED,
            f"chain and key ({certificate_summary(chain)}) kept as {IMPORTED_CERT} and "
            f"{IMPORTED_KEY} (0600), tls.mode 'files'; before it expires switch to tls.mode "
            "'acme' and `stackgen render`",
        )
        return TlsMode.FILES
    if imp.kept_pair is not None:
        # Copied, never mounted from the old place: what the proxy reads is what was checked.
        _extracted(tls, state, *imp.kept_pair)
        return TlsMode.FILES
    return mode


def _extracted(tls: dict[str, Any], state: list[PlannedFile], chain: bytes, key: bytes) -> None:
    # The chain is 0600 too: it is a copy nobody else needs to read, and one rule is simpler.
    state.append(PlannedFile(IMPORTED_CERT, chain, 0o600, state=True))
    state.append(PlannedFile(IMPORTED_KEY, key, 0o600, state=True))
    tls["cert_file"] = IMPORTED_CERT
    tls["key_file"] = IMPORTED_KEY


__all__ = ["ImportOutcome", "build_stack"]
