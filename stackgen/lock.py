"""One command at a time changes a stack folder.

`init`, `render`, `up`, `reload` and `down` hold `.stackgen/lock` (an OS lock through
`filelock`: the kernel drops it when its process dies, so a crashed command never blocks
anyone). A second command waits briefly, then names the holder and exits with
ExitCode.LOCKED. Under the lock, a write a killed run left unfinished is finished first.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from filelock import FileLock, Timeout

from stackgen import writer
from stackgen.errors import FilesystemError, LockedError

STATE_DIR: Final = ".stackgen"
LOCK_NAME: Final = f"{STATE_DIR}/lock"
HOLDER_NAME: Final = f"{STATE_DIR}/lock.holder"
WAIT_ENV: Final = "STACKGEN_LOCK_WAIT"
DEFAULT_WAIT: Final = 5.0


def wait_seconds() -> float:
    raw = os.environ.get(WAIT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        raise FilesystemError(f"{WAIT_ENV}={raw!r} is not a number of seconds") from None
    return max(0.0, value)


def holder(stack_dir: Path, *, patience: float = 0.0) -> str:
    """Who holds the lock, as its holder wrote it ("pid 123 (stackgen up)"). The holder
    writes it just after taking the lock: patience is how long to give it to do so."""
    deadline = time.monotonic() + patience
    while True:
        try:
            text = (stack_dir / HOLDER_NAME).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return text.splitlines()[0] if text else "another stackgen command (pid not recorded)"


@contextlib.contextmanager
def stack_lock(
    stack_dir: Path, command: str, *, progress: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the stack folder's lock for `command`; finish an interrupted write first."""
    created = _make_state_dir(stack_dir)
    lock = FileLock(str(stack_dir / LOCK_NAME), timeout=wait_seconds())
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"{stack_dir} is in use by {holder(stack_dir, patience=1.0)}: "
            "retry when it has finished"
        ) from None
    except OSError as error:
        _remove_if_unused(created)
        raise FilesystemError(f"cannot lock {stack_dir / LOCK_NAME}: {error}") from None
    try:
        with contextlib.suppress(OSError):  # only informative: a full disk must not stop us
            writer.write_atomic(
                stack_dir / HOLDER_NAME,
                f"pid {os.getpid()} (stackgen {command})\n".encode(),
                0o644,
            )
        note = writer.recover(stack_dir)
        if note and progress is not None:
            progress(note)
        yield
    finally:
        with contextlib.suppress(OSError):
            (stack_dir / HOLDER_NAME).unlink()
        state = stack_dir / STATE_DIR
        with contextlib.suppress(OSError):
            if state in created and os.listdir(state) == ["lock"]:
                # Unlinked while held: a waiter on this inode sees it gone and retries.
                (stack_dir / LOCK_NAME).unlink()
        lock.release()
        _remove_if_unused(created)


def _make_state_dir(stack_dir: Path) -> list[Path]:
    """The lock lives in the stack folder: create what is missing, remember it for cleanup."""
    created: list[Path] = []
    for folder in reversed([stack_dir / STATE_DIR, stack_dir, *stack_dir.parents]):
        if folder.is_dir():
            continue
        try:
            folder.mkdir(mode=0o755)
            os.chmod(folder, 0o755)  # noqa: S103 - as the writer makes folders, umask aside
        except FileExistsError:
            if not folder.is_dir():
                raise FilesystemError(f"{folder} exists and is not a folder") from None
            continue  # a concurrent command made it
        except OSError as error:
            _remove_if_unused(created)
            raise FilesystemError(f"cannot create {folder}: {error}") from None
        created.append(folder)
    return created


def _remove_if_unused(created: list[Path]) -> None:
    """A command that failed before writing leaves no empty folder behind."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()  # fails, as it should, when anything was written in it
