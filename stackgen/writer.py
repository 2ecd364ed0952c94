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
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from stackgen.errors import FilesystemError
from stackgen.parts import Access

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
    access: Access = Access.CONTROL


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
    # Files not planned this time (kept state, such as the served key) whose owner still
    # follows their access.
    owned: list[tuple[str, Access]] = field(default_factory=list)
    # The Compose project, kept in the manifest so `down` and `status` find the containers
    # when stackgen.toml is gone or broken.
    project: str | None = None
    # Folders below which no link is followed: the stack folder, then folders configured
    # outside it (an absolute jellyfin.config_dir).
    roots: tuple[Path, ...] = ()

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
    roots = (stack_dir, *(stack_dir / d for d, _ in directories if Path(d).is_absolute()))
    verdicts = [_classify(stack_dir, roots, f, manifest, force) for f in files]
    plan = Plan(stack_dir, verdicts, list(directories), warnings, owner)
    plan.roots = roots
    return plan


def _classify(
    stack_dir: Path,
    roots: Sequence[Path],
    file: PlannedFile,
    manifest: dict[str, str],
    force: bool,
) -> Verdict:
    target = stack_dir / file.path
    try:
        found = _read_file(roots, target)
    except OSError as error:
        raise FilesystemError(f"cannot read {target}: {error}") from None
    if found is None:
        return Verdict(file, Action.CREATE)
    current, current_mode = found
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
    roots = plan.roots or (stack_dir,)
    # Staged with their final owner: a key is never, even for a moment, someone else's.
    staged_owner = owners(plan) if os.geteuid() == 0 else {}
    created_dirs: list[Path] = []
    entries: list[_Entry] = []
    committed = False
    try:
        created_dirs += _make_dir(stack_dir, 0o755)
        folders = [(stack_dir / relative, mode) for relative, mode in plan.directories]
        folders += [((stack_dir / v.file.path).parent, 0o755) for v in plan.changes]
        folders.append(((stack_dir / JOURNAL).parent, 0o755))
        for folder, mode in folders:
            with _folder(roots, folder, create=mode, created=created_dirs):
                pass
        for verdict in plan.changes:
            owner = staged_owner.get(stack_dir / verdict.file.path)
            entries.append(_prepare(roots, stack_dir, verdict, owner))
        _fsync_dirs({e.target.parent for e in entries} | {p.parent for p in created_dirs})
        manifest = _next_manifest(stack_dir, plan)
        project = plan.project or manifest_project(stack_dir)
        _write_journal(stack_dir, entries, manifest, project)
        committed = True  # from here on a killed run is finished by the next one
        for entry in entries:
            _replace(roots, entry.temp, entry.target)
        _fsync_dirs({e.target.parent for e in entries})
        _write_manifest(stack_dir, manifest, project)
        _finish(stack_dir, entries, roots)
    except BaseException as error:
        if committed:
            try:
                _roll_back(stack_dir, entries, roots)
            except OSError as second:
                # The journal and the backups stay: the next command puts things right.
                raise FilesystemError(
                    f"cannot write in {stack_dir}: {error}; nor undo it ({second}): "
                    "the next stackgen command that changes the stack will"
                ) from None
        for entry in entries:
            for aux in (entry.temp, entry.backup):
                if aux is not None:
                    with contextlib.suppress(OSError, FilesystemError):
                        _unlink(roots, aux)
        for directory in reversed(created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(error, OSError):
            raise FilesystemError(f"cannot write in {stack_dir}: {error}") from None
        raise
    if plan.owner is not None:
        _chown_all(plan)


def _prepare(
    roots: Sequence[Path], stack_dir: Path, verdict: Verdict, owner: tuple[int, int] | None
) -> _Entry:
    target = stack_dir / verdict.file.path
    temp = _stage(target, verdict.file.content, verdict.file.mode, owner, roots)
    backup = None
    if verdict.current is not None:
        backup = _backup(roots, target, verdict.current, verdict.current_mode or 0o600)
    return _Entry(target, temp, backup, sha256(verdict.file.content))


def _backup(roots: Sequence[Path], target: Path, current: bytes, mode: int) -> Path:
    """A second name for the file about to be replaced: free, and restorable by a rename."""
    name = target.with_name(f".{target.name}.{os.urandom(4).hex()}.old{TEMP_SUFFIX}")
    try:
        with _folder(roots, target.parent) as parent:
            os.link(
                target.name, name.name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False
            )
    except OSError:  # a filesystem without hard links: a copy does the same job
        staged = _stage(target, current, mode, None, roots)
        _replace(roots, staged, name)
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
    write_atomic(
        stack_dir / JOURNAL, (json.dumps(data, indent=2) + "\n").encode(), 0o644, (stack_dir,)
    )


def _finish(stack_dir: Path, entries: Iterable[_Entry], roots: Sequence[Path]) -> None:
    """The transaction is complete: drop the journal first, then the now useless backups."""
    journal = stack_dir / JOURNAL
    _unlink((stack_dir,), journal)
    _fsync_dirs({journal.parent})
    for entry in entries:
        if entry.backup is not None:
            _unlink(roots, entry.backup)


def _roll_back(stack_dir: Path, entries: list[_Entry], roots: Sequence[Path]) -> None:
    """Put back every replaced file from its backup, remove created ones, then the journal."""
    for entry in reversed(entries):
        if entry.backup is not None and entry.backup.exists():
            _replace(roots, entry.backup, entry.target)
        elif entry.backup is None and not entry.temp.exists():
            _unlink(roots, entry.target)
        _unlink(roots, entry.temp)
    _fsync_dirs({e.target.parent for e in entries})
    journal = stack_dir / JOURNAL
    _unlink((stack_dir,), journal)
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
    roots = (stack_dir,)
    finishable = all(e.temp.exists() or _digest(roots, e.target) == e.digest for e in entries)
    try:
        if finishable:
            for entry in entries:
                if entry.temp.exists():
                    _replace(roots, entry.temp, entry.target)
            _fsync_dirs({e.target.parent for e in entries})
            project = data.get("project")
            _write_manifest(
                stack_dir,
                {str(k): str(v) for k, v in manifest.items()},
                project if isinstance(project, str) else manifest_project(stack_dir),
            )
            _finish(stack_dir, entries, roots)
        else:
            _roll_back(stack_dir, entries, roots)
        _sweep(stack_dir)
    except OSError as error:
        raise FilesystemError(
            f"cannot finish the interrupted write in {stack_dir}: {error}"
        ) from None
    done = "finished" if finishable else "rolled back"
    return f"{done} the write an interrupted run left in {stack_dir}"


def _sweep(stack_dir: Path) -> int:
    return sum(remove_stale_temporaries(folder) for folder in _folders(stack_dir))


def _digest(roots: Sequence[Path], path: Path) -> str | None:
    try:
        found = _read_file(roots, path)
    except (OSError, FilesystemError):
        return None
    return sha256(found[0]) if found is not None else None


def _folders(stack_dir: Path) -> list[Path]:
    """The stack's folders, none reached through a link."""
    folders = [stack_dir]
    for depth in range(1, _SWEEP_DEPTH + 1):
        folders += [
            p
            for p in stack_dir.glob("/".join(["*"] * depth))
            if p.is_dir()
            and not any(q.is_symlink() for q in (p, *p.parents) if stack_dir in q.parents)
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


# --- links ------------------------------------------------------------------------------------
# A container owns the folders it writes (Jellyfin's /config) and can plant a symbolic link
# in them; stackgen, often root, must never write, read, chmod or chown through one. Below
# the stack folder (or a folder configured outside it) every component is opened with
# O_NOFOLLOW and every operation is made relative to the folder's descriptor, so a link
# swapped in between a check and a write is still never followed.

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _base(roots: Sequence[Path], path: Path) -> Path:
    """The trusted folder path lies in: the stack folder, or a folder configured outside it
    (the user's own path, links included); else path's own folder."""
    for root in roots:
        if path == root or root in path.parents:
            return root
    return path.parent


def _link_error(path: Path, parent_fd: int, name: str) -> FilesystemError:
    try:
        pointed = os.readlink(name, dir_fd=parent_fd)
    except OSError:
        pointed = "?"
    return FilesystemError(
        f"{path} is a symbolic link (to {pointed}): stackgen never writes through a link, "
        "which a container can plant in a folder it writes; remove it and run again"
    )


def _is_link(parent_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode)
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _folder(
    roots: Sequence[Path],
    folder: Path,
    *,
    create: int | None = None,
    created: list[Path] | None = None,
) -> Iterator[int]:
    """A descriptor of folder, reached from its base without following any link; missing
    folders are made with mode `create` (and listed in `created`) when it is given."""
    base = _base(roots, folder) if folder not in roots else folder
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    path = base
    try:
        for part in folder.relative_to(base).parts:
            path = path / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create is None:
                    raise
                os.mkdir(part, create, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(child, create)  # mkdir's mode is filtered by the umask
                if created is not None:
                    created.append(path)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                    raise _link_error(path, fd, part) from None
                if error.errno == errno.ENOTDIR:
                    raise FilesystemError(f"{path} exists and is not a folder") from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _read_file(roots: Sequence[Path], target: Path) -> tuple[bytes, int] | None:
    """Content and mode of a regular file, None when missing; a link or a folder is refused."""
    try:
        with _folder(roots, target.parent) as parent:
            try:
                fd = os.open(target.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            except OSError as error:
                if error.errno == errno.ELOOP and _is_link(parent, target.name):
                    raise _link_error(target, parent, target.name) from None
                raise
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                if stat.S_ISDIR(st.st_mode):
                    raise FilesystemError(f"{target} is a folder where stackgen writes a file")
                return handle.read(), stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise FilesystemError(f"{target} is a folder where stackgen writes a file") from None


def _replace(roots: Sequence[Path], source: Path, target: Path) -> None:
    """os.replace of two names in one folder, relative to that folder's safe descriptor
    (a rename replaces a link in target's place itself, never what it points to)."""
    with _folder(roots, target.parent) as parent:
        os.replace(source.name, target.name, src_dir_fd=parent, dst_dir_fd=parent)


def _unlink(roots: Sequence[Path], path: Path) -> None:
    with contextlib.suppress(FileNotFoundError), _folder(roots, path.parent) as parent:
        os.unlink(path.name, dir_fd=parent)


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


def _stage(
    target: Path,
    content: bytes,
    mode: int,
    owner: tuple[int, int] | None,
    roots: Sequence[Path] = (),
) -> Path:
    """A complete, synced temporary beside target (a new name: O_EXCL, never a link)."""
    name = f".{target.name}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
    with _folder(roots or (target.parent,), target.parent) as parent:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent)
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
                os.unlink(name, dir_fd=parent)
            raise
    return target.with_name(name)


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


def write_atomic(target: Path, content: bytes, mode: int, roots: Sequence[Path] = ()) -> None:
    """One file replaced by a single rename of a complete, synced temporary; no link below
    roots (default: target's folder) is followed."""
    roots = roots or (target.parent,)
    _replace(roots, _stage(target, content, mode, None, roots), target)
    _fsync_dirs({target.parent})


def _write_manifest(stack_dir: Path, manifest: dict[str, str], project: str | None) -> None:
    data: dict[str, object] = {"version": 1, "files": dict(sorted(manifest.items()))}
    if project:
        data["project"] = project
    content = json.dumps(data, indent=2) + "\n"
    target = stack_dir / MANIFEST
    with _folder((stack_dir,), target.parent, create=0o755):
        pass
    write_atomic(target, content.encode(), 0o644, (stack_dir,))


def owners(plan: Plan) -> dict[Path, tuple[int, int]]:
    """Who owns what, when stackgen runs as root: run_as owns what the containers write (the
    planned folders, everything in them, and state such as acme.json); a key a container
    reads is the invoking user's with run_as's group; everything else (stackgen.toml, the
    compose file, .env, .stackgen/, the CA key, the proxy's configuration) stays the
    invoking user's, so no container user can change what root runs next."""
    if plan.owner is None:
        return {}
    me = (os.geteuid(), os.getegid())
    uid, gid = plan.owner
    stack_dir = plan.stack_dir
    written = [stack_dir / relative for relative, _ in plan.directories]

    def is_written(path: Path) -> bool:
        return any(path == folder or folder in path.parents for folder in written)

    result: dict[Path, tuple[int, int]] = {}
    files = [(stack_dir / v.file.path, v.file.access) for v in plan.verdicts]
    files += [(stack_dir / relative, access) for relative, access in plan.owned]
    for path, access in files:
        if access is Access.WRITTEN or is_written(path):
            result[path] = (uid, gid)
        elif access is Access.SECRET:
            result[path] = (me[0], gid)
        else:
            result[path] = me
        # The folders between the stack folder and the file (traefik/, tls/, and inside a
        # written folder jellyfin/config/config).
        for parent in path.parents:
            if stack_dir not in parent.parents or ".." in parent.relative_to(stack_dir).parts:
                break
            result.setdefault(parent, (uid, gid) if is_written(parent) else me)
    for folder in written:
        result[folder] = (uid, gid)
    metadata = stack_dir / MANIFEST
    result[metadata.parent] = me
    result[metadata] = me
    return result


def _group_readable(parent: int, name: str) -> None:
    """A key the proxy reads through its group: 0640 (a key kept from an earlier version,
    or the user's own, may be 0600)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)


def _chown_all(plan: Plan) -> None:
    """Give each path its owner (`owners`): root can give files away; anyone else already
    owns what they wrote."""
    if plan.owner is None or os.geteuid() != 0:
        return
    roots = plan.roots or (plan.stack_dir,)
    secrets = {
        plan.stack_dir / v.file.path for v in plan.verdicts if v.file.access is Access.SECRET
    }
    secrets |= {plan.stack_dir / relative for relative, a in plan.owned if a is Access.SECRET}
    for path, (uid, gid) in owners(plan).items():
        try:
            with _folder(roots, path.parent) as parent:
                os.chown(path.name, uid, gid, dir_fd=parent, follow_symlinks=False)
                if path in secrets:
                    _group_readable(parent, path.name)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise FilesystemError(f"cannot give {path} to {uid}:{gid}: {error}") from None
