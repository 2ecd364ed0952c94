"""The one writer: every file stackgen puts on disk goes through here.

A render is planned in memory first. Each destination is classified against what is on disk
and against the hashes of what stackgen last wrote (`.stackgen/manifest.json`):

- create     the file does not exist
- identical  on disk and rendered are the same (a mode drift is repaired)
- update     stackgen wrote it, nobody edited it since, the rendering changed
- conflict   somebody edited it since stackgen wrote it: kept unless `force`
- keep       a state file (acme.json, .env, keys) that exists: never replaced

Applying is crash-safe. Every new content is staged in a complete, fsynced temporary file
beside its target, and every file about to be replaced gets a hard link (a backup that costs
no space). Then a journal naming all of them is written atomically: that is the commit point.
Each target is then replaced by one atomic rename of its temporary (a target never stops
existing), the manifest is written, and the journal and backups are removed. A run killed
before the journal leaves only temporaries, which the next run deletes; a run killed after it
is finished by the next command (`recover`), or rolled back from the backups if it cannot be
finished. Auxiliary files all end in `.stackgen-tmp`.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
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
JOURNAL: Final = ".stackgen/journal.json"
TEMP_SUFFIX: Final = ".stackgen-tmp"
# Names an earlier writer used: `.NAME.XXXX.stackgen-new` (a temporary) and
# `.NAME.stackgen-old` (the only copy of a file it had moved aside when it was killed).
_LEGACY_TEMP: Final = ".stackgen-new"
_LEGACY_BACKUP: Final = ".stackgen-old"


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
    current_mode: int | None = None

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
    warnings: list[str] = field(default_factory=list)
    # uid, gid: owner of every file and folder written, applied only when running as root.
    owner: tuple[int, int] | None = None
    owned: list[str] = field(default_factory=list)  # more paths to give to owner
    # The Compose project, kept in the manifest so `down` and `status` find the containers
    # when stackgen.toml is gone or broken.
    project: str | None = None

    @property
    def conflicts(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.action is Action.CONFLICT]

    @property
    def changes(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.writes]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_manifest(stack_dir: Path) -> dict[str, str]:
    """What stackgen last wrote (path -> sha256); raises FilesystemError when unreadable."""
    path = stack_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise FilesystemError(f"cannot read {path}: {error}") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise FilesystemError(f"cannot read {path}: not a stackgen manifest")
    return dict(files)


def manifest_project(stack_dir: Path) -> str | None:
    """The Compose project the manifest records; None when it is missing or unreadable."""
    try:
        data = json.loads((stack_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    project = data.get("project") if isinstance(data, dict) else None
    return project if isinstance(project, str) and project else None


def _manifest_or_empty(stack_dir: Path, warnings: list[str]) -> dict[str, str]:
    """A damaged manifest must not block every command. Without it, no file can be proven
    unedited, so each one that differs from the rendering is kept as a hand edit: nothing is
    lost, and the next write replaces the manifest."""
    try:
        return read_manifest(stack_dir)
    except FilesystemError as error:
        warnings.append(
            f"{error}; treated as empty: files that differ from the rendering are kept as "
            "hand edits (`stackgen render --force` replaces them)"
        )
        return {}


def plan(
    stack_dir: Path,
    files: Iterable[PlannedFile],
    *,
    force: bool = False,
    directories: Sequence[tuple[str, int]] = (),
    owner: tuple[int, int] | None = None,
) -> Plan:
    warnings: list[str] = []
    if (stack_dir / JOURNAL).exists():
        warnings.append(
            f"an interrupted write is pending in {stack_dir}: "
            "`stackgen render` finishes it (or rolls it back)"
        )
    manifest = _manifest_or_empty(stack_dir, warnings)
    verdicts = [_classify(stack_dir, f, manifest, force) for f in files]
    return Plan(stack_dir, verdicts, list(directories), warnings, owner)


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
        return Verdict(file, Action.KEEP, current, current_mode=current_mode)
    drift = current_mode != file.mode
    if current == file.content:
        return Verdict(file, Action.IDENTICAL, current, mode_drift=drift, current_mode=current_mode)
    if manifest.get(file.path) == sha256(current):
        return Verdict(file, Action.UPDATE, current, current_mode=current_mode)
    action = Action.FORCE if force else Action.CONFLICT
    return Verdict(file, action, current, current_mode=current_mode)


@dataclass(frozen=True)
class _Entry:
    """One replacement of the transaction; temp and backup live beside target."""

    target: Path
    temp: Path
    backup: Path | None  # a hard link to the replaced file; None for a created file
    digest: str

    def to_json(self, stack_dir: Path) -> dict[str, str | None]:
        return {
            "target": _relative(stack_dir, self.target),
            "temp": self.temp.name,
            "backup": self.backup.name if self.backup else None,
            "sha256": self.digest,
        }

    @classmethod
    def from_json(cls, stack_dir: Path, data: object) -> _Entry:
        if not isinstance(data, dict):
            raise ValueError("an entry is not an object")
        target = stack_dir / str(data["target"])
        temp, backup = str(data["temp"]), data.get("backup")
        for name in (temp, backup):
            if name is not None and (not str(name).endswith(TEMP_SUFFIX) or "/" in str(name)):
                raise ValueError(f"{name!r} is not a stackgen temporary")
        return cls(
            target,
            target.with_name(temp),
            target.with_name(str(backup)) if backup is not None else None,
            str(data["sha256"]),
        )


def _relative(stack_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(stack_dir).as_posix()
    except ValueError:  # a folder configured outside the stack (an absolute config_dir)
        return str(path)


def apply(plan: Plan) -> None:
    """Write every change of the plan, or nothing at all, even when killed (module doc)."""
    stack_dir = plan.stack_dir
    if (stack_dir / JOURNAL).exists():
        # Its temporaries are still needed: the plan was made on a half-written folder.
        raise FilesystemError(f"an interrupted write is pending in {stack_dir}: recover first")
    created_dirs: list[Path] = []
    entries: list[_Entry] = []
    committed = False
    try:
        created_dirs += _make_dir(stack_dir, 0o755)
        for relative, mode in plan.directories:
            created_dirs += _make_dir(stack_dir / relative, mode)
        for verdict in plan.changes:
            created_dirs += _make_dir((stack_dir / verdict.file.path).parent, 0o755)
        created_dirs += _make_dir((stack_dir / JOURNAL).parent, 0o755)
        for verdict in plan.changes:
            entries.append(_prepare(stack_dir, verdict, plan.owner))
        _fsync_dirs({e.target.parent for e in entries} | {p.parent for p in created_dirs})
        manifest = _next_manifest(stack_dir, plan)
        project = plan.project or manifest_project(stack_dir)
        _write_journal(stack_dir, entries, manifest, project)
        committed = True  # from here on a killed run is finished by the next one
        for entry in entries:
            os.replace(entry.temp, entry.target)
        _fsync_dirs({e.target.parent for e in entries})
        _write_manifest(stack_dir, manifest, project)
        _finish(stack_dir, entries)
    except BaseException as error:
        if committed:
            try:
                _roll_back(stack_dir, entries)
            except OSError as second:
                # The journal and the backups stay: the next command puts things right.
                raise FilesystemError(
                    f"cannot write in {stack_dir}: {error}; nor undo it ({second}): "
                    "the next stackgen command that changes the stack will"
                ) from None
        for entry in entries:
            for aux in (entry.temp, entry.backup):
                if aux is not None:
                    with contextlib.suppress(OSError):
                        aux.unlink()
        for directory in reversed(created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(error, OSError):
            raise FilesystemError(f"cannot write in {stack_dir}: {error}") from None
        raise
    if plan.owner is not None:
        _chown_all(plan)


def _prepare(stack_dir: Path, verdict: Verdict, owner: tuple[int, int] | None) -> _Entry:
    target = stack_dir / verdict.file.path
    temp = _stage(target, verdict.file.content, verdict.file.mode, owner)
    backup = None
    if verdict.current is not None:
        backup = _backup(target, verdict.current, verdict.current_mode or 0o600)
    return _Entry(target, temp, backup, sha256(verdict.file.content))


def _backup(target: Path, current: bytes, mode: int) -> Path:
    """A second name for the file about to be replaced: free, and restorable by a rename."""
    name = target.with_name(f".{target.name}.{os.urandom(4).hex()}.old{TEMP_SUFFIX}")
    try:
        os.link(target, name)
    except OSError:  # a filesystem without hard links: a copy does the same job
        staged = _stage(target, current, mode, None)
        os.replace(staged, name)
    return name


def _next_manifest(stack_dir: Path, plan: Plan) -> dict[str, str]:
    manifest = _manifest_or_empty(stack_dir, [])
    for verdict in plan.verdicts:
        if verdict.file.state:
            continue
        if verdict.action in (Action.CREATE, Action.UPDATE, Action.FORCE, Action.IDENTICAL):
            manifest[verdict.file.path] = sha256(verdict.file.content)
    return dict(sorted(manifest.items()))


def _write_journal(
    stack_dir: Path, entries: list[_Entry], manifest: dict[str, str], project: str | None
) -> None:
    data = {
        "version": 1,
        "entries": [e.to_json(stack_dir) for e in entries],
        "manifest": manifest,
        "project": project,
    }
    write_atomic(stack_dir / JOURNAL, (json.dumps(data, indent=2) + "\n").encode(), 0o644)


def _finish(stack_dir: Path, entries: Iterable[_Entry]) -> None:
    """The transaction is complete: drop the journal first, then the now useless backups."""
    journal = stack_dir / JOURNAL
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    _fsync_dirs({journal.parent})
    for entry in entries:
        if entry.backup is not None:
            with contextlib.suppress(FileNotFoundError):
                entry.backup.unlink()


def _roll_back(stack_dir: Path, entries: list[_Entry]) -> None:
    """Put back every replaced file from its backup, remove created ones, then the journal."""
    for entry in reversed(entries):
        if entry.backup is not None and entry.backup.exists():
            os.replace(entry.backup, entry.target)
        elif entry.backup is None and not entry.temp.exists():
            with contextlib.suppress(FileNotFoundError):
                entry.target.unlink()
        with contextlib.suppress(FileNotFoundError):
            entry.temp.unlink()
    _fsync_dirs({e.target.parent for e in entries})
    journal = stack_dir / JOURNAL
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    _fsync_dirs({journal.parent})


# How deep `recover` looks for temporaries: the deepest file stackgen writes in the stack
# folder is jellyfin/config/config/network.xml.
_SWEEP_DEPTH: Final = 3


def recover(stack_dir: Path) -> str | None:
    """Finish (or, if it cannot be finished, roll back) a write a killed run left, and remove
    its temporaries; say what was done in one line. Run it under the stack's lock, before
    reading stackgen.toml."""
    journal = stack_dir / JOURNAL
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        manifest = data["manifest"]
        entries = [_Entry.from_json(stack_dir, item) for item in data["entries"]]
        if not isinstance(manifest, dict):
            raise ValueError("no manifest")
    except FileNotFoundError:
        removed = _sweep(stack_dir)
        if removed:
            return f"removed {removed} temporary file(s) an interrupted run left in {stack_dir}"
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FilesystemError(
            f"{journal} (an interrupted write) is unreadable ({error}): delete it, then run "
            "`stackgen render --force` to rewrite the stack from stackgen.toml"
        ) from None
    finishable = all(e.temp.exists() or _digest(e.target) == e.digest for e in entries)
    try:
        if finishable:
            for entry in entries:
                if entry.temp.exists():
                    os.replace(entry.temp, entry.target)
            _fsync_dirs({e.target.parent for e in entries})
            project = data.get("project")
            _write_manifest(
                stack_dir,
                {str(k): str(v) for k, v in manifest.items()},
                project if isinstance(project, str) else manifest_project(stack_dir),
            )
            _finish(stack_dir, entries)
        else:
            _roll_back(stack_dir, entries)
        _sweep(stack_dir)
    except OSError as error:
        raise FilesystemError(
            f"cannot finish the interrupted write in {stack_dir}: {error}"
        ) from None
    done = "finished" if finishable else "rolled back"
    return f"{done} the write an interrupted run left in {stack_dir}"


def _sweep(stack_dir: Path) -> int:
    return sum(remove_stale_temporaries(folder) for folder in _folders(stack_dir))


def _digest(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


def _folders(stack_dir: Path) -> list[Path]:
    folders = [stack_dir]
    for depth in range(1, _SWEEP_DEPTH + 1):
        folders += [
            p for p in stack_dir.glob("/".join(["*"] * depth)) if p.is_dir() and not p.is_symlink()
        ]
    return folders


def remove_stale_temporaries(folder: Path) -> int:
    """Delete what a killed run left in folder; return how many. Only call it when no journal
    is pending: then no temporary or backup is needed any more (targets were never moved
    aside)."""
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0
    removed = 0
    for path in names:
        if path.name.endswith((TEMP_SUFFIX, _LEGACY_TEMP)) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
        elif path.name.endswith(_LEGACY_BACKUP) and path.is_file():
            # The earlier writer moved a file aside before replacing it: if it was killed
            # in between, this is the only copy of the file.
            original = path.with_name(path.name[1 : -len(_LEGACY_BACKUP)])
            if original.exists():
                path.unlink()
            else:
                os.replace(path, original)
            removed += 1
    return removed


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


def _stage(target: Path, content: bytes, mode: int, owner: tuple[int, int] | None) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, mode)  # before any byte lands: a secret is never world-readable
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _fsync_dirs(folders: Iterable[Path]) -> None:
    """A rename or a new name is durable only once its folder is synced."""
    for folder in sorted(set(folders)):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        except OSError as error:
            if error.errno not in (
                errno.EINVAL,
                errno.ENOTSUP,
            ):  # folders some filesystems can't sync
                raise
        finally:
            os.close(fd)


def write_atomic(target: Path, content: bytes, mode: int) -> None:
    """One file replaced by a single rename of a complete, synced temporary."""
    os.replace(_stage(target, content, mode, None), target)
    _fsync_dirs({target.parent})


def _write_manifest(stack_dir: Path, manifest: dict[str, str], project: str | None) -> None:
    data: dict[str, object] = {"version": 1, "files": dict(sorted(manifest.items()))}
    if project:
        data["project"] = project
    content = json.dumps(data, indent=2) + "\n"
    target = stack_dir / MANIFEST
    _make_dir(target.parent, 0o755)
    write_atomic(target, content.encode(), 0o644)


def _chown_all(plan: Plan) -> None:
    """--run-as: the containers' user owns what they read or write (root can give it away;
    anyone else already owns what they wrote)."""
    if plan.owner is None or os.geteuid() != 0:
        return
    uid, gid = plan.owner
    paths = [plan.stack_dir / relative for relative, _ in plan.directories]
    paths += [plan.stack_dir / v.file.path for v in plan.verdicts]
    paths += [plan.stack_dir / relative for relative in plan.owned]
    # The folders stackgen made for its files (traefik/, tls/, ...), not the stack folder.
    paths += {
        parent
        for v in plan.verdicts
        for parent in (plan.stack_dir / v.file.path).parents
        if plan.stack_dir in parent.parents and parent.name != ".stackgen"
    }
    for path in paths:
        try:
            os.lchown(path, uid, gid)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise FilesystemError(f"cannot give {path} to {uid}:{gid}: {error}") from None
