"""Running stackgen's CLI on hostile input inside limits: a forked child with an address-space
cap and an alarm, so that a hang or a memory blow-up fails the test instead of the machine."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
from dataclasses import dataclass
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


def run_bounded(
    *args: str, cwd: Path | None = None, seconds: int = SECONDS, memory: int = MEMORY_BYTES
) -> Outcome:
    """`stackgen ARGS` as `main()` would run it, in a child limited to `seconds` of wall time
    and `memory` more bytes of address space than the test process uses."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        result: dict[str, object]
        try:
            used = _address_space()
            resource.setrlimit(resource.RLIMIT_AS, (used + memory, used + memory))
            signal.alarm(seconds)
            result = _invoke(args, cwd)
        except BaseException as error:
            result = {"code": None, "stderr": "", "traceback": repr(error)}
        with contextlib.suppress(BaseException), os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(result))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not raw:
        return Outcome(None, "", f"child died: wait status {status}")
    data = json.loads(raw)
    return Outcome(data["code"], data["stderr"], data.get("traceback", ""))


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
