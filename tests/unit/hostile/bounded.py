"""Running stackgen's CLI on hostile input inside limits: a child process with an
address-space cap, a CPU-time limit and a wall-clock alarm, so that a hang or a memory blow-up
fails the test instead of the machine.

The time bound is CPU time: a parser looping on crafted input burns CPU, and CPU time does not
grow when a busy machine (two CI workers, other stacks starting) leaves the child waiting for a
core, so the bound holds at any load. A hang that burns nothing (a read that blocks) is caught
by the wall-clock alarm, set several times wider for the same reason."""

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
# The wall-clock alarm, as a multiple of the CPU budget: wide enough that a child starved of
# CPU on a loaded machine is not mistaken for a hang.
WALL_FACTOR = 6


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
    """`stackgen ARGS` as `main()` would run it, in a child limited to `seconds` of CPU time
    (`seconds * WALL_FACTOR` of wall time) and `memory` more bytes of address space than it
    uses at its start."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, args=(args, cwd, seconds, memory, sender))
    child.start()
    sender.close()
    try:
        data = receiver.recv() if receiver.poll(seconds * WALL_FACTOR + 30) else None
    except EOFError:  # killed by a limit or its alarm before it could answer
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
        # SIGXCPU at the soft limit (counted from the fork server's child start, which has
        # spent almost none), SIGKILL a second later if it is caught or ignored.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime)
        resource.setrlimit(resource.RLIMIT_CPU, (spent + seconds, spent + seconds + 1))
        signal.alarm(seconds * WALL_FACTOR)
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
