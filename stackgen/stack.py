"""Stack operations behind the CLI: init and render (plan, report, apply)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stackgen import writer
from stackgen.config_file import CONFIG_NAME, dump_config
from stackgen.errors import ConflictError, FilesystemError
from stackgen.models import StackConfig, TlsMode
from stackgen.render import render_stack
from stackgen.writer import Action, Plan, PlannedFile


@dataclass(frozen=True)
class RenderOutcome:
    plan: Plan
    written: bool

    def to_json(self) -> dict[str, object]:
        return {
            "stack_dir": str(self.plan.stack_dir),
            "written": self.written,
            "files": [
                {"path": v.file.path, "action": v.action.value, "mode": oct(v.file.mode)}
                for v in self.plan.verdicts
            ],
            "conflicts": [v.file.path for v in self.plan.conflicts],
        }


def ensure_writable_dir(stack_dir: Path) -> None:
    """Fail before rendering when the folder cannot hold a stack."""
    if stack_dir.exists() and not stack_dir.is_dir():
        raise FilesystemError(f"{stack_dir} exists and is not a folder")
    probe = stack_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise FilesystemError(f"{probe} is not writable")


def plan_render(
    config: StackConfig, stack_dir: Path, *, force: bool, with_config: bool = False
) -> Plan:
    files, directories = render_stack(config, stack_dir)
    if with_config:
        # The user's file from then on: init creates it, render never rewrites it.
        files = [PlannedFile(CONFIG_NAME, dump_config(config).encode(), 0o644, state=True), *files]
    owner = (config.uid, config.gid)  # given to them when stackgen runs as root
    plan = writer.plan(stack_dir, files, force=force, directories=directories, owner=owner)
    if config.tls.mode is TlsMode.INTERNAL and config.tls_files:
        plan.owned = list(config.tls_files)  # kept, not re-planned, after the first render
    return plan


def init_stack(
    config: StackConfig, stack_dir: Path, *, force: bool, dry_run: bool
) -> RenderOutcome:
    ensure_writable_dir(stack_dir)
    if (stack_dir / CONFIG_NAME).exists() and not force:
        raise ConflictError(
            f"{stack_dir / CONFIG_NAME} exists: edit it and run `stackgen render`, "
            "or re-run init with --force"
        )
    plan = plan_render(config, stack_dir, force=force, with_config=True)
    if force:
        # --force on init replaces stackgen.toml too.
        plan.verdicts = [
            writer.Verdict(v.file, Action.FORCE, v.current)
            if v.file.path == CONFIG_NAME and v.action is Action.KEEP
            else v
            for v in plan.verdicts
        ]
    if not dry_run:
        writer.apply(plan)
    return RenderOutcome(plan, written=not dry_run)


def render_dir(
    config: StackConfig, stack_dir: Path, *, force: bool, dry_run: bool
) -> RenderOutcome:
    ensure_writable_dir(stack_dir)
    plan = plan_render(config, stack_dir, force=force)
    if not dry_run:
        writer.apply(plan)
    return RenderOutcome(plan, written=not dry_run)
