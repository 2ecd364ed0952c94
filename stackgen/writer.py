"""The one writer: every file stackgen puts on disk goes through here.

A render is planned in memory first. Each destination is classified against what is on disk
and against the hashes of what stackgen last wrote (`.stackgen/manifest.json`):

- create     the file does not exist
- identical  on disk and rendered are the same (a mode drift is repaired)
- update     stackgen wrote it, nobody edited it since, the rendering changed
- conflict   somebody edited it since stackgen wrote it: kept unless `force`
- keep       a state file (acme.json, .env, keys) that exists: never replaced

Applying is transactional: new contents go to temporary files first, replaced files are set
aside, and any failure puts every path back as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from stackgen.errors import FilesystemError

MANIFEST: Final = ".stackgen/manifest.json"


class Action(StrEnum):
    CREATE = "create"
    IDENTICAL = "identical"
    UPDATE = "update"
    CONFLICT = "conflict"
    FORCE = "overwrite"  # a conflict replaced because the user said --force
    KEEP = "keep"


WRITES: Final = frozenset({Action.CREATE, Action.UPDATE, Action.FORCE})


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the stack folder, POSIX separators
    content: bytes
    mode: int = 0o644
    state: bool = False  # created once, then owned by the stack or the user


@dataclass(frozen=True)
class Verdict:
    file: PlannedFile
    action: Action
    current: bytes | None = None
    mode_drift: bool = False

    @property
    def writes(self) -> bool:
        return self.action in WRITES or (self.action is Action.IDENTICAL and self.mode_drift)

    def diff(self) -> str:
        if self.action not in (Action.CREATE, Action.UPDATE, Action.CONFLICT, Action.FORCE):
            return ""
        old = (self.current or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = self.file.content.decode("utf-8", "replace").splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(
                old,
                new,
                fromfile=f"a/{self.file.path}" if self.current is not None else "/dev/null",
                tofile=f"b/{self.file.path}",
            )
        )


@dataclass
class Plan:
    stack_dir: Path
    verdicts: list[Verdict]
    directories: list[tuple[str, int]] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.action is Action.CONFLICT]

    @property
    def changes(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.writes]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_manifest(stack_dir: Path) -> dict[str, str]:
    path = stack_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise FilesystemError(f"cannot read {path}: {error}") from None
    files = data.get("files", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in files.items()}


def plan(
    stack_dir: Path,
    files: Iterable[PlannedFile],
    *,
    force: bool = False,
    directories: Sequence[tuple[str, int]] = (),
) -> Plan:
    manifest = read_manifest(stack_dir)
    verdicts = [_classify(stack_dir, f, manifest, force) for f in files]
    return Plan(stack_dir, verdicts, list(directories))


def _classify(stack_dir: Path, file: PlannedFile, manifest: dict[str, str], force: bool) -> Verdict:
    target = stack_dir / file.path
    if target.is_dir():
        raise FilesystemError(f"{target} is a folder where stackgen writes a file")
    try:
        current = target.read_bytes()
        current_mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        return Verdict(file, Action.CREATE)
    except OSError as error:
        raise FilesystemError(f"cannot read {target}: {error}") from None
    if file.state:
        return Verdict(file, Action.KEEP, current)
    drift = current_mode != file.mode
    if current == file.content:
        return Verdict(file, Action.IDENTICAL, current, mode_drift=drift)
    if manifest.get(file.path) == sha256(current):
        return Verdict(file, Action.UPDATE, current)
    return Verdict(file, Action.FORCE if force else Action.CONFLICT, current)


def apply(plan: Plan) -> None:
    """Write every change of the plan, or nothing at all."""
    stack_dir = plan.stack_dir
    created_dirs: list[Path] = []
    staged: list[tuple[Path, Path]] = []  # (temporary, target)
    set_aside: list[tuple[Path, Path]] = []  # (backup, target)
    placed: list[Path] = []
    try:
        created_dirs += _make_dir(stack_dir, 0o755)
        for relative, mode in plan.directories:
            created_dirs += _make_dir(stack_dir / relative, mode)
        for verdict in plan.changes:
            target = stack_dir / verdict.file.path
            created_dirs += _make_dir(target.parent, 0o755)
            staged.append((_stage(target, verdict.file.content, verdict.file.mode), target))
        for temporary, target in staged:
            if target.exists():
                backup = target.with_name(f".{target.name}.stackgen-old")
                os.replace(target, backup)
                set_aside.append((backup, target))
            os.replace(temporary, target)
            placed.append(target)
        _write_manifest(stack_dir, plan)
    except BaseException as error:
        for target in reversed(placed):
            with contextlib.suppress(OSError):
                target.unlink()
        for backup, target in reversed(set_aside):
            with contextlib.suppress(OSError):
                os.replace(backup, target)
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        for directory in reversed(created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(error, OSError):
            raise FilesystemError(f"cannot write in {stack_dir}: {error}") from None
        raise
    for backup, _ in set_aside:
        with contextlib.suppress(OSError):
            backup.unlink()


def _make_dir(path: Path, mode: int) -> list[Path]:
    """Create path and missing parents; return what was created (for rollback)."""
    if path.is_dir():
        return []
    if path.exists():
        raise FilesystemError(f"{path} exists and is not a folder")
    created: list[Path] = []
    for parent in reversed([path, *path.parents]):
        if not parent.exists():
            parent.mkdir(mode=mode)
            os.chmod(parent, mode)  # mkdir's mode is filtered by the umask
            created.append(parent)
    return created


def _stage(target: Path, content: bytes, mode: int) -> Path:
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".stackgen-new", dir=target.parent
    )
    try:
        os.fchmod(fd, mode)  # before any byte lands: a secret is never world-readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _write_manifest(stack_dir: Path, plan: Plan) -> None:
    manifest = read_manifest(stack_dir)
    for verdict in plan.verdicts:
        if verdict.file.state:
            continue
        if verdict.action in (Action.CREATE, Action.UPDATE, Action.FORCE, Action.IDENTICAL):
            manifest[verdict.file.path] = sha256(verdict.file.content)
    content = json.dumps({"version": 1, "files": dict(sorted(manifest.items()))}, indent=2) + "\n"
    target = stack_dir / MANIFEST
    _make_dir(target.parent, 0o755)
    os.replace(_stage(target, content.encode(), 0o644), target)
