"""One error hierarchy: every user-facing failure is a StackgenError with a stable exit code.

The CLI prints `str(error)` on one line and exits with `error.exit_code`; no traceback is
shown for these. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented, stable exit codes (README "Exit codes")."""

    OK = 0
    PROBLEMS_FOUND = 1  # check/verify found failures, or render --diff found changes
    USAGE = 2  # malformed command line (Click's own code)
    INVALID_INPUT = 3  # a value or stackgen.toml is invalid
    FILESYSTEM = 4  # folder is a file, unwritable, stackgen.toml missing
    CONFLICT = 5  # a hand-edited file would be overwritten (use --force)
    DOCKER = 6  # engine/Compose unreachable, or a docker command failed
    UNHEALTHY = 7  # the stack did not become healthy in time
    LOCKED = 8  # another stackgen command is changing this stack folder
    DEGRADED = 9  # status: a service is missing, not running or not healthy
    INTERRUPTED = 130  # SIGINT (Ctrl-C), or SIGTERM during `up`


class StackgenError(Exception):
    exit_code: ExitCode = ExitCode.PROBLEMS_FOUND

    def __init__(self, message: str) -> None:
        # One line, always: multi-line detail belongs in logs, not in the error.
        super().__init__(" ".join(message.split()))


class InvalidInputError(StackgenError):
    exit_code = ExitCode.INVALID_INPUT


class FilesystemError(StackgenError):
    exit_code = ExitCode.FILESYSTEM


class ConflictError(StackgenError):
    exit_code = ExitCode.CONFLICT


class DockerError(StackgenError):
    exit_code = ExitCode.DOCKER


class UnhealthyError(StackgenError):
    exit_code = ExitCode.UNHEALTHY


class ProblemsFoundError(StackgenError):
    exit_code = ExitCode.PROBLEMS_FOUND


class LockedError(StackgenError):
    exit_code = ExitCode.LOCKED


class DegradedError(StackgenError):
    exit_code = ExitCode.DEGRADED


class InterruptedError_(StackgenError):
    """Reported by the CLI for a StackInterrupted: Typer turns a bare KeyboardInterrupt into
    a silent exit 130, this keeps the line that says what was left."""

    exit_code = ExitCode.INTERRUPTED


class StackInterrupted(KeyboardInterrupt):
    """An interrupt after which stackgen put the stack in a known state: the message says
    which. A KeyboardInterrupt still, so whatever stops on Ctrl-C (pytest) stops on it."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
