"""Stack operations behind the CLI: init and render (plan, report, apply)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stackgen import writer
from stackgen.config_file import CONFIG_NAME, dump_config
from stackgen.errors import ConflictError, FilesystemError
from stackgen.models import StackConfig
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
    config: StackConfig,
    stack_dir: Path,
    *,
    force: bool,
    with_config: bool = False,
    state: Sequence[PlannedFile] = (),
) -> Plan:
    files, directories = render_stack(config, stack_dir)
    if state:
        # Initial contents of state files that an import brings along (a kept acme.json,
        # extracted certificates): they take the place of the rendered, empty ones.
        given = {f.path for f in state}
        files = [f for f in files if f.path not in given] + [
            PlannedFile(f.path, f.content, f.mode, state=True) for f in state
        ]
    if with_config:
        # The user's file from then on: init creates it, render never rewrites it.
        files = [PlannedFile(CONFIG_NAME, dump_config(config).encode(), 0o644, state=True), *files]
    return writer.plan(stack_dir, files, force=force, directories=directories)


def init_stack(
    config: StackConfig,
    stack_dir: Path,
    *,
    force: bool,
    dry_run: bool,
    state: Sequence[PlannedFile] = (),
) -> RenderOutcome:
    ensure_writable_dir(stack_dir)
    if (stack_dir / CONFIG_NAME).exists() and not force:
        raise ConflictError(
            f"{stack_dir / CONFIG_NAME} exists: edit it and run `stackgen render`, "
            "or re-run init with --force"
        )
    plan = plan_render(config, stack_dir, force=force, with_config=True, state=state)
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
