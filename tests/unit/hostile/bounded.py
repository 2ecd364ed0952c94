"""Running stackgen's CLI on hostile input inside limits: a child process with an
address-space cap and an alarm, so that a hang or a memory blow-up fails the test instead of
the machine."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from typer.testing import CliRunner

from stackgen.cli import Failure, app, failure

# Generous for a parser, tiny for a billion laughs (which takes gigabytes).
MEMORY_BYTES = 768 * 1024 * 1024
SECONDS = 20


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: killed (time or memory) or crashed with a traceback
    stderr: str
    traceback: str = ""

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


# Children are forked from a forkserver, a single-threaded process that has imported the CLI
# once: forking pytest itself, where another test's threads may hold a lock, could deadlock
# the child.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["stackgen.cli", "tests.unit.hostile.bounded"])


def run_bounded(
    *args: str, cwd: Path | None = None, seconds: int = SECONDS, memory: int = MEMORY_BYTES
) -> Outcome:
    """`stackgen ARGS` as `main()` would run it, in a child limited to `seconds` of wall time
    and `memory` more bytes of address space than it uses at its start."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, args=(args, cwd, seconds, memory, sender))
    child.start()
    sender.close()
    try:
        data = receiver.recv() if receiver.poll(seconds + 30) else None
    except EOFError:  # killed by its alarm or its memory limit before it could answer
        data = None
    finally:
        receiver.close()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
    if data is None:
        return Outcome(None, "", f"child died: exit code {child.exitcode}")
    return Outcome(data["code"], data["stderr"], data.get("traceback", ""))


def _child(
    args: tuple[str, ...], cwd: Path | None, seconds: int, memory: int, sender: Connection
) -> None:
    result: dict[str, object]
    try:
        used = _address_space()
        resource.setrlimit(resource.RLIMIT_AS, (used + memory, used + memory))
        signal.alarm(seconds)
        result = _invoke(args, cwd)
    except BaseException as error:
        result = {"code": None, "stderr": "", "traceback": repr(error)}
    with contextlib.suppress(BaseException):
        sender.send(result)
    sender.close()


def _invoke(args: tuple[str, ...], cwd: Path | None) -> dict[str, object]:
    with contextlib.chdir(cwd or Path.cwd()):
        result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"}, standalone_mode=False)
    error = result.exception
    if error is None or isinstance(error, SystemExit):
        code = result.return_value if isinstance(result.return_value, int) else result.exit_code
        return {"code": code, "stderr": result.stderr}
    if not isinstance(error, Failure):
        return {"code": None, "stderr": result.stderr, "traceback": repr(error)}
    message, code = failure(error)
    return {"code": code, "stderr": result.stderr + f"stackgen: error: {message}\n"}


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")
