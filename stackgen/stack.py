"""A stack on this machine as one value (`Stack`: configuration, folder, proxy, target,
compose client) that render, check, lifecycle and verify share; and init and render (plan, report,
apply)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from stackgen import engine, writer
from stackgen.config_file import CONFIG_NAME, dump_config, load_config
from stackgen.engine import DockerClient
from stackgen.errors import ConflictError, FilesystemError, StackgenError
from stackgen.models import StackConfig, TlsMode
from stackgen.proxies import get_proxy
from stackgen.proxies.base import Proxy
from stackgen.render import COMPOSE_FILE, network_xml_path, render_stack
from stackgen.targets import registry as targets
from stackgen.writer import Action, Plan, PlannedFile

if TYPE_CHECKING:
    from stackgen.targets.base import Target


@dataclass(frozen=True)
class Stack:
    config: StackConfig
    folder: Path

    @classmethod
    def load(cls, folder: Path) -> Stack:
        return cls(load_config(folder), folder)

    @cached_property
    def proxy(self) -> Proxy:
        return get_proxy(self.config.proxy)

    @cached_property
    def compose(self) -> DockerClient:
        """The stack's compose project (no engine call until it is used)."""
        return engine.compose_client(self.config.project, self.folder / COMPOSE_FILE, self.folder)

    @cached_property
    def target(self) -> Target:
        """What runs the stack (`deploy.target`): its operations on the engine."""
        target: Target = targets.load(self.config.deploy.target, "operations")
        return target

    @property
    def network_xml(self) -> Path:
        return self.folder / network_xml_path(self.config)


def project_name(folder: Path, given: str | None) -> str:
    """The Compose project of a stack folder for the commands that must work on a broken
    one (`down`, `status`): from stackgen.toml when it reads, else from the manifest, else
    `given` (`--project`); else the reason stackgen.toml could not be read."""
    try:
        return load_config(folder, check_paths=False).project
    except StackgenError as error:
        project = writer.manifest_project(folder) or given
        if project is None:
            raise type(error)(f"{error} (`--project NAME` names the stack to act on)") from None
        return project


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
    stack: Stack,
    *,
    force: bool,
    with_config: bool = False,
    state: Sequence[PlannedFile] = (),
) -> Plan:
    files, directories = render_stack(stack.config, stack.folder)
    if state:
        # Initial contents of state files that an import brings along (a kept acme.json,
        # extracted certificates): they take the place of the rendered, empty ones.
        given = {f.path for f in state}
        files = [f for f in files if f.path not in given] + [
            PlannedFile(f.path, f.content, f.mode, state=True) for f in state
        ]
    if with_config:
        # The user's file from then on: init creates it, render never rewrites it.
        config_file = PlannedFile(
            CONFIG_NAME, dump_config(stack.config).encode(), 0o644, state=True
        )
        files = [config_file, *files]
    config = stack.config
    owner = (config.uid, config.gid)  # given to them when stackgen runs as root
    plan = writer.plan(stack.folder, files, force=force, directories=directories, owner=owner)
    plan.project = config.project
    if config.tls.mode is TlsMode.INTERNAL and config.tls_files:
        plan.owned = list(config.tls_files)  # kept, not re-planned, after the first render
    return plan


def init_stack(
    stack: Stack, *, force: bool, dry_run: bool, state: Sequence[PlannedFile] = ()
) -> RenderOutcome:
    ensure_writable_dir(stack.folder)
    if (stack.folder / CONFIG_NAME).exists() and not force:
        raise ConflictError(
            f"{stack.folder / CONFIG_NAME} exists: edit it and run `stackgen render`, "
            "or re-run init with --force"
        )
    plan = plan_render(stack, force=force, with_config=True, state=state)
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


def render_dir(stack: Stack, *, force: bool, dry_run: bool) -> RenderOutcome:
    ensure_writable_dir(stack.folder)
    plan = plan_render(stack, force=force)
    if not dry_run:
        writer.apply(plan)
    return RenderOutcome(plan, written=not dry_run)
