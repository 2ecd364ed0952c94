"""The one runner for subprocesses: logs the exact command, raises one error type."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from stackgen.errors import DockerError

log = logging.getLogger("stackgen.process")


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandError(DockerError):
    def __init__(self, result: Completed) -> None:
        self.result = result
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        super().__init__(f"`{shlex.join(result.argv)}` exited {result.returncode}: {last}")


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    input_text: str | None = None,
) -> Completed:
    log.debug("running %s", shlex.join(argv))
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
    except FileNotFoundError:
        raise DockerError(f"`{argv[0]}` is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise DockerError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from None
    result = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(result)
    return result
