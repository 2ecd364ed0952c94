"""A stack on this machine as one value (`Stack`: configuration, folder, proxy, target,
compose client) that render, check, lifecycle and verify share; and init and render (plan, report,
apply)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from stackgen import engine, inputs, writer
from stackgen.certificates.source import CA_CERT, CA_KEY, OWN_CERT, OWN_KEY
from stackgen.config_file import CONFIG_NAME, build_config, dump_config, load_config
from stackgen.engine import DockerClient
from stackgen.errors import ConflictError, FilesystemError, StackgenError
from stackgen.models import StackConfig, TlsMode
from stackgen.parts import Access
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


# Where a certificate and key the user brings (tls.mode `files`: `init --cert-file`, or an
# import) live in the stack: copied, so the proxy never mounts a path outside the folder.


def own_certificate(config: StackConfig, folder: Path) -> tuple[StackConfig, list[PlannedFile]]:
    """For tls.mode `files`: the configuration that serves a copy of the user's pair, and the
    copy (0600). The pair is read as untrusted input (regular files, bounded size) and the
    key matched to the certificate, before anything is written."""
    cert, key = config.tls.cert_file, config.tls.key_file
    if config.tls.mode is not TlsMode.FILES or cert is None or key is None:
        return config, []
    if (cert, key) == (OWN_CERT, OWN_KEY):
        return config, []
    chain, key_pem = inputs.read_tls_pair(stack_path(folder, cert), stack_path(folder, key))
    tls = config.tls.model_copy(update={"cert_file": OWN_CERT, "key_file": OWN_KEY})
    # The chain is 0600 too: a copy nobody else needs to read, and one rule is simpler.
    state = [
        PlannedFile(OWN_CERT, chain, 0o600, state=True),
        PlannedFile(OWN_KEY, key_pem, 0o600, state=True),
    ]
    return config.model_copy(update={"tls": tls}), state


def check_bundles(config: StackConfig, folder: Path) -> None:
    """tls.ca_bundle (mounted into the ACME client) and tls.trust_bundle (read by up, status
    and verify) hold PEM certificates: never a FIFO, a device or a file of secrets."""
    for raw in (config.tls.ca_bundle, config.tls.trust_bundle):
        if raw is not None:
            inputs.read_certificates(stack_path(folder, raw))


def stack_path(folder: Path, raw: str) -> Path:
    """A path of stackgen.toml: absolute, or relative to the stack folder (as the model)."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else folder / path


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
    # Initial contents of state files that an import brings along (a kept acme.json,
    # extracted certificates) or init is given (credentials) take the place of the rendered,
    # empty ones, before the stack file names a secret by its content.
    files, directories = render_stack(stack.config, stack.folder, state)
    tls_access = _tls_access(stack)
    files = [
        PlannedFile(f.path, f.content, tls_access[f.path][0], f.state, tls_access[f.path][1])
        if f.path in tls_access
        else f
        for f in files
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
    # Kept, not re-planned, after the first render: their owners still follow their access.
    plan.owned = [(path, access) for path, (_, access) in tls_access.items()]
    plan.owned.append((CONFIG_NAME, Access.CONTROL))  # planned by init only
    if config.tls.mode is TlsMode.INTERNAL:
        plan.owned += [(CA_KEY, Access.PRIVATE), (CA_CERT, Access.CONTROL)]
    return plan


def _tls_access(stack: Stack) -> dict[str, tuple[int, Access]]:
    """The served chain and key when they are files in the stack folder (modes internal and
    files): the chain anyone may read, the key the proxy reads through its group only."""
    pair = stack.config.tls_files
    if pair is None:
        return {}
    result = {}
    kinds = ((0o644, Access.CONTROL), (0o640, Access.SECRET))
    for path, (mode, access) in zip(pair, kinds, strict=True):
        relative = _inside(stack.folder, path)
        if relative is not None:
            result[relative] = (mode, access)
    return result


def _inside(folder: Path, path: str) -> str | None:
    """path (as stackgen.toml gives it) relative to the stack folder, None when outside."""
    candidate = PurePosixPath(path)
    if candidate.is_absolute() or ".." in candidate.parts or path.startswith("~"):
        return None
    return candidate.as_posix()


def init_stack(
    stack: Stack,
    *,
    force: bool,
    dry_run: bool,
    state: Sequence[PlannedFile] = (),
    instead: str = "pass --force to replace it",
) -> RenderOutcome:
    ensure_writable_dir(stack.folder)
    if (stack.folder / CONFIG_NAME).exists() and not force:
        raise ConflictError(
            f"{stack.folder / CONFIG_NAME} exists: edit it and run `stackgen render`, "
            "or re-run init with --force"
        )
    plan = plan_render(stack, force=force, with_config=True, state=state)
    if plan.conflicts and not force:
        # Without stackgen.toml nothing in the folder is proven stackgen's: a kept
        # docker-compose.yml would be someone else's stack under the new stackgen.toml.
        foreign = plan.conflicts[0].file.path
        raise ConflictError(
            f"{stack.folder / foreign} exists and is not stackgen's: it would stay "
            f"under the new stackgen.toml; move it away, or {instead}"
        )
    if force:
        # --force on init replaces stackgen.toml too, and the state it was given anew
        # (`--dns-credential` values in .env): the report says `overwrite` for each.
        given = {CONFIG_NAME, *(f.path for f in state)}
        plan.verdicts = [
            writer.Verdict(v.file, Action.FORCE, v.current)
            if v.file.path in given and v.action is Action.KEEP and v.current != v.file.content
            else v
            for v in plan.verdicts
        ]
    if not dry_run:
        writer.apply(plan)
    return RenderOutcome(plan, written=not dry_run)


def split_stacks(
    config: StackConfig, folder: Path, state: Sequence[PlannedFile] = ()
) -> list[tuple[Stack, list[PlannedFile]]]:
    """The stacks `init` writes from one configuration, each with the state files it starts
    with: the folder itself, or a sub-folder per side when the target splits the services
    between machines (`DeployConfig.sides`). A side's configuration is validated again as
    its own stackgen.toml will be read; the given state (an own certificate, DNS
    credentials) goes where the proxy runs, and the target adds what the sides share."""
    split = config.deploy.sides(config)
    if list(split) == [""]:
        return [(Stack(config, folder), list(state))]
    made = targets.load(config.deploy.target, "stack_file").side_state(split)
    stacks = []
    for name, side in split.items():
        sub = folder / name
        checked = build_config(tomllib.loads(dump_config(side)), sub, check_paths=False)
        given = list(state) if checked.deploy.runs_proxy else []
        given += [
            PlannedFile(f.target, f.content, f.mode, state=True, access=f.access)
            for f in made.get(name, [])
        ]
        stacks.append((Stack(checked, sub), given))
    return stacks


def init_stacks(
    stacks: Sequence[tuple[Stack, Sequence[PlannedFile]]], *, force: bool, dry_run: bool
) -> list[RenderOutcome]:
    """`init_stack` for each, every plan made (and refused) before any is written: nothing
    half-written when one side cannot be."""
    planned = [init_stack(stack, force=force, dry_run=True, state=state) for stack, state in stacks]
    if dry_run:
        return planned
    for outcome in planned:
        writer.apply(outcome.plan)
    return [RenderOutcome(outcome.plan, written=True) for outcome in planned]


def render_dir(stack: Stack, *, force: bool, dry_run: bool) -> RenderOutcome:
    ensure_writable_dir(stack.folder)
    plan = plan_render(stack, force=force)
    if not dry_run:
        writer.apply(plan)
    return RenderOutcome(plan, written=not dry_run)
