"""`stackgen import`: read the configuration of a proxy the user already runs (the formats of
Jellyfin's old reverse-proxy page), report every directive, and render the stackgen stack
that replaces it. One module per source format behind `Importer`; see docs/import.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from stackgen import inputs
from stackgen.errors import InvalidInputError
from stackgen.importers.apache import ApacheImporter
from stackgen.importers.base import Imported, Importer, ReportAction, ReportEntry, Upstream
from stackgen.importers.before_after import (
    compare_table,
    old_report_file,
    read_old_report,
    verify_old,
)
from stackgen.importers.build import ImportOutcome, build_stack
from stackgen.importers.caddy_v1 import CaddyV1Importer
from stackgen.importers.haproxy import HAProxyImporter
from stackgen.importers.nginx import NginxImporter
from stackgen.importers.traefik_v1 import TraefikV1Importer
from stackgen.models import ProxyKind

IMPORTERS: Final[tuple[Importer, ...]] = (
    TraefikV1Importer(),
    NginxImporter(),
    ApacheImporter(),
    HAProxyImporter(),
    CaddyV1Importer(),
)
# Below this, a file is not taken for any format.
MIN_CONFIDENCE: Final = 0.5


def detect(paths: Sequence[Path]) -> Importer:
    """The one format all the given paths are in."""
    for path in paths:
        if not path.exists():
            raise InvalidInputError(f"{path}: no such file or folder")
        if not path.is_dir():
            inputs.read_bytes(path)  # a FIFO, a device or a huge file: refused by name
    chosen: Importer | None = None
    for path in paths:
        scores = sorted(
            ((i.detect(path), index) for index, i in enumerate(IMPORTERS)), reverse=True
        )
        best, index = scores[0]
        if best < MIN_CONFIDENCE:
            raise InvalidInputError(
                f"{path}: not a recognised proxy configuration: expected Traefik v1.7 "
                "(traefik.toml, docker-compose.yml labels, acme.json), an nginx site, an "
                "Apache vhost, haproxy.cfg or a Caddy v1 Caddyfile"
            )
        importer = IMPORTERS[index]
        if chosen is not None and importer is not chosen:
            raise InvalidInputError(
                f"{path}: a {importer.name} file, but {paths[0]} is {chosen.name}: "
                "import one proxy's files at a time"
            )
        chosen = importer
    if chosen is None:
        raise InvalidInputError("no file to import")
    return chosen


def read(paths: Sequence[Path], *, jellyfin_url: str | None, root: Path) -> Imported:
    wanted = None
    if jellyfin_url:
        wanted = Upstream.parse(jellyfin_url)
        if wanted is None:
            raise InvalidInputError(f"--jellyfin-url {jellyfin_url!r}: expected http://HOST:PORT")
    importer = detect(paths)
    with inputs.bounded_nesting(", ".join(map(str, paths)), f"a {importer.name} configuration"):
        return importer.parse(paths, jellyfin_url=wanted, root=root.resolve())


def run_import(
    paths: Sequence[Path],
    stack_dir: Path,
    *,
    to: ProxyKind | None = None,
    email: str | None = None,
    jellyfin_url: str | None = None,
    root: Path = Path("/"),
    dry_run: bool = False,
    old_url: str | None = None,
    old_resolve: Sequence[str] = (),
    old_ca_file: Path | None = None,
) -> ImportOutcome:
    target = stack_dir.resolve()
    for old in (p.resolve() for p in paths):
        # The old files are only ever read: the stack goes neither into an old folder nor
        # beside an old file (where its docker-compose.yml could meet the old one).
        inside = old.is_dir() and (target == old or old in target.parents)
        if inside or target == old or (not old.is_dir() and target == old.parent):
            raise InvalidInputError(
                f"--dir {stack_dir}: the old configuration is there ({old}); "
                "render the new stack in another folder"
            )
    # Absolute from here on: a relative --root would leave paths relative to the wrong folder.
    imported = read(paths, jellyfin_url=jellyfin_url, root=root.resolve())
    extra = []
    old_report = None
    if old_url:
        # After parsing (bad input fails fast), before anything is written.
        old_report = verify_old(old_url, resolve=old_resolve, ca_file=old_ca_file)
        extra.append(old_report_file(old_report))
    outcome = build_stack(
        imported, stack_dir, to=to, email=email, dry_run=dry_run, extra_state=extra
    )
    if old_report is None:
        return outcome
    return dataclasses.replace(outcome, old_report=old_report)


def render_table(entries: Sequence[ReportEntry]) -> str:
    """The human report: one line per directive, grouped by what happened to it."""
    order = [
        ReportAction.TRANSLATED,
        ReportAction.REPLACED,
        ReportAction.DROPPED,
        ReportAction.SKIPPED,
    ]
    lines = []
    for action in order:
        for entry in (e for e in entries if e.action is action):
            where = (
                f"{Path(entry.source_file).name}:{entry.line}"
                if entry.line
                else Path(entry.source_file).name
            )
            lines.append(
                f"  {action.value:<10} {where:<24} {entry.directive[:40]:<40} {entry.reason}"
            )
    return "\n".join(lines)


__all__ = [
    "IMPORTERS",
    "ImportOutcome",
    "Imported",
    "Importer",
    "ReportAction",
    "ReportEntry",
    "compare_table",
    "detect",
    "read",
    "read_old_report",
    "render_table",
    "run_import",
]
